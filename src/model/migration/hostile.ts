import type { UartState } from '../uart16550/state.js';
import type { VserState } from '../virtio-serial/state.js';
import { BUILTIN_BUILDS, SERIAL_SUBSECTIONS } from './builds.js';
import { serialStateSection } from './serial-section.js';
import { transportOf } from './virtio-section.js';
import type { IntType } from './vmstate.js';

/**
 * A hostile migration source (a `migrate` step's `hostile`): the stream it sends carries the
 * given serial fields (or virtio-serial's queue_sel) instead of its device's own, everything else as an honest source saves
 * it. Only a doctored QEMU sends such state (a guest cannot reach it); QEMU's loader takes
 * most of it (vmstate_fifo8 checks nothing), and the destination is then judged like any
 * other (refused, or unsafe-load). `stream craft` writes the loaded state into a real stream.
 */

/** Fields by device name, each by its QEMU name (`recv_fifo.head`, `lsr`, `queue_sel`) → value. */
export type HostileEdits = Record<string, Record<string, number>>;

/** QEMU's name for a model field: `s.recvFifo.head` → `recv_fifo.head`, `fcrVmstate` → `fcr_vmstate`. */
export function qemuFieldName(name: string): string {
  return name
    .replace(/^s\./, '')
    .split('.')
    .map((part) => part.replace(/[A-Z]/g, (ch) => `_${ch.toLowerCase()}`))
    .join('.');
}

const RANGE: Record<Exclude<IntType, 'i64'>, [number, number]> = {
  u8: [0, 0xff],
  u16: [0, 0xffff],
  u32: [0, 0xffffffff],
  i32: [-0x80000000, 0x7fffffff],
};

export interface HostileField {
  /** The UartState path (`recvFifo.head`). */
  path: readonly string[];
  min: number;
  max: number;
}

/**
 * The integer fields of vmstate_serial and its subsections a hostile source can set, from
 * the model's own description (every subsection): not fcr_vmstate (the source copies fcr
 * into it), not the timers (absolute vm_clock expiries) or the FIFOs' data bytes.
 */
export const HOSTILE_SERIAL_FIELDS: ReadonlyMap<string, HostileField> = (() => {
  const modern = BUILTIN_BUILDS.find(
    (b) => b.revisions.serialSubsections.length === SERIAL_SUBSECTIONS.length,
  );
  const section = serialStateSection(modern!.revisions);
  const out = new Map<string, HostileField>();
  for (const f of [...section.fields, ...section.subsections.flatMap((s) => s.fields)]) {
    const t = f.type;
    if (typeof t !== 'string' || t === 'bool' || t === 'i64' || !f.name.startsWith('s.')) continue;
    const [min, max] = RANGE[t];
    out.set(qemuFieldName(f.name), { path: f.name.slice(2).split('.'), min, max });
  }
  return out;
})();

/** A copy of the UART's state with the hostile fields written in (the device keeps its own). */
export function doctoredUart(s: UartState, fields: Record<string, number>): UartState {
  const copy: UartState = {
    ...s,
    recvFifo: { ...s.recvFifo, data: s.recvFifo.data.slice() },
    xmitFifo: { ...s.xmitFifo, data: s.xmitFifo.data.slice() },
  };
  for (const [name, value] of Object.entries(fields)) {
    const f = HOSTILE_SERIAL_FIELDS.get(name);
    if (!f) continue; // the schedule validator lets only known fields through
    let holder = copy as unknown as Record<string, unknown>;
    for (const p of f.path.slice(0, -1)) holder = holder[p] as Record<string, unknown>;
    holder[f.path[f.path.length - 1]!] = value;
  }
  return copy;
}

/**
 * The virtio-serial fields a hostile source can set: virtio_save's queue_sel (be16), which
 * virtio_load before CVE-2013-6399's check kept whatever its value.
 */
export const HOSTILE_VIRTIO_FIELDS: ReadonlyMap<string, Omit<HostileField, 'path'>> = new Map([
  ['queue_sel', { min: 0, max: 0xffff }],
]);

/** The virtio-serial device with the hostile fields in its saved transport (the device keeps its own). */
export function doctoredVser(s: VserState, fields: Record<string, number>): VserState {
  const transport = { ...transportOf(s) };
  if (fields.queue_sel !== undefined) transport.queueSel = fields.queue_sel;
  return { ...s, transport };
}
