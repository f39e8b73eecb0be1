import { Ev } from '../events.js';
import type { Machine } from '../machine.js';
import { Fcr, Ier, Iir, Lsr, MAX_XMIT_RETRY, UART_FIFO_LENGTH } from '../uart16550/regs.js';
import type { UartState } from '../uart16550/state.js';
import { UartTimer, updateParameters, writeFcr } from '../uart16550/uart.js';
import { writeFcr1x } from '../uart16550/uart-1x.js';
import type { Revisions, SerialSubsection } from './builds.js';
import type { MigCtx } from './context.js';
import {
  custom,
  fieldAt,
  loadSection,
  type PostLoadResult,
  saveSection,
  timerField,
  type VmField,
  type VmSection,
  type VmSubsection,
} from './vmstate.js';

/**
 * The "serial" section (hw/char/serial.c vmstate_serial, version 3, minimum 2), with its
 * seven subsections and serial_post_load. Which subsections a build knows, which ones the
 * RHEL migrate_pre_2_2 flag disables, and whether post_load checks TSR consistency are build
 * revisions (MODEL.md §6): seed bug B lives in that table.
 */
export interface SerialImage {
  m: Machine;
  /** The device index, which names its timers in the machine's table (timerField). */
  dev: number;
  s: UartState;
  /** fcr_vmstate: fcr travels in a shadow and is applied in post_load, never written directly. */
  fcrVmstate: number;
}

const u8 = (name: keyof UartState & string): VmField<SerialImage, MigCtx> => fieldAt(`s.${name}`, 'u8');

/**
 * vmstate_fifo8 (util/fifo8.c) has no checks: any head and num load, and the device mishandles
 * them later (uartLoadHazard names how). The data buffer is sized by the local capacity.
 */
const FIFO_FIELDS = (fifo: 'recvFifo' | 'xmitFifo'): VmField<SerialImage, MigCtx>[] => [
  fieldAt(`s.${fifo}.data`, { buffer: UART_FIFO_LENGTH }),
  fieldAt(`s.${fifo}.head`, 'u32'),
  fieldAt(`s.${fifo}.num`, 'u32'),
];

/**
 * Each subsection's upstream needed() and fields. The int fields are plain VMSTATE_INT32s:
 * QEMU checks none of their values, and the device reads them as truth values.
 */
const SUBSECTIONS: Record<SerialSubsection, Omit<VmSubsection<SerialImage, MigCtx>, 'name' | 'version'>> = {
  'serial/thr_ipending': {
    needed: ({ s }) =>
      (s.ier & Ier.THRI) !== 0 && s.thrIpending !== ((s.iir & Iir.ID_MASK) === Iir.THRI ? 1 : 0),
    fields: [fieldAt('s.thrIpending', 'i32')],
  },
  'serial/tsr': {
    needed: ({ s }) => s.tsrRetry !== 0,
    // serial_post_load clamps tsr_retry, so any u32 is accepted here.
    fields: [fieldAt('s.tsrRetry', 'u32'), u8('thr'), u8('tsr')],
  },
  'serial/recv_fifo': { needed: ({ s }) => s.recvFifo.num > 0, fields: FIFO_FIELDS('recvFifo') },
  'serial/xmit_fifo': { needed: ({ s }) => s.xmitFifo.num > 0, fields: FIFO_FIELDS('xmitFifo') },
  'serial/fifo_timeout_timer': {
    // timer_pending(s->fifo_timeout_timer)
    needed: ({ m, dev }) => m.timerExpiry(dev, UartTimer.FIFO_TIMEOUT) >= 0,
    fields: [timerField('fifo_timeout_timer', UartTimer.FIFO_TIMEOUT)],
  },
  'serial/timeout_ipending': {
    needed: ({ s }) => s.timeoutIpending !== 0,
    fields: [fieldAt('s.timeoutIpending', 'i32')],
  },
  'serial/poll': {
    needed: ({ s }) => s.pollMsl >= 0,
    fields: [fieldAt('s.pollMsl', 'i32'), timerField('modem_status_poll', UartTimer.MODEM_POLL)],
  },
};

const stateCache = new Map<Revisions, VmSection<SerialImage, MigCtx>>();
const isaCache = new Map<Revisions, VmSection<SerialImage, MigCtx>>();

/** vmstate_serial as a build describes it (cached per revision set). */
export function serialStateSection(rev: Revisions): VmSection<SerialImage, MigCtx> {
  let section = stateCache.get(rev);
  if (!section) {
    section = makeStateSection(rev);
    stateCache.set(rev, section);
  }
  return section;
}

/**
 * The section a build saves for an ISA serial port: vmstate_isa_serial (hw/char/serial-isa.c;
 * hw/char/serial.c before 2.x), version 3, minimum 2, whose one field is
 * VMSTATE_STRUCT(state, ISASerialState, 0, vmstate_serial, SerialState). vmstate_load_state
 * loads a struct field at the inner description's own version_id (vmstate.c: `curr_elem,
 * field->vmsd, field->vmsd->version_id`), so a v2 section is read with the v3 fields
 * (fcr_vmstate included) and serial_post_load always sees version 3; the inner subsections
 * follow the inner fields. The bytes are those of vmstate_serial at version 3. Every modelled
 * build has the wrapper: it came with the serial qdev conversion (QEMU 0.13), before any of them.
 */
export function serialSection(rev: Revisions): VmSection<SerialImage, MigCtx> {
  let section = isaCache.get(rev);
  if (!section) {
    const inner = serialStateSection(rev);
    section = {
      name: 'serial',
      version: 3,
      minVersion: 2,
      fields: [
        custom<SerialImage, MigCtx>('state', {
          save: (w, o, ctx) => saveSection(w, inner, o, ctx),
          load: (r, o, ctx) => loadSection(r, inner, o, ctx, inner.version),
        }),
      ],
      subsections: [],
    };
    isaCache.set(rev, section);
  }
  return section;
}

function makeStateSection(rev: Revisions): VmSection<SerialImage, MigCtx> {
  const hasSubsections = rev.serialSubsections.length > 0;
  return {
    name: 'serial',
    version: 3,
    minVersion: 2,
    fields: [
      // VMSTATE_UINT16_V(divider, SerialState, 2): v1 streams had an 8-bit divider.
      fieldAt('s.divider', 'u16', { since: 2 }),
      ...(['rbr', 'ier', 'iir', 'lcr', 'mcr', 'lsr', 'msr', 'scr'] as const).map(u8),
      fieldAt('fcrVmstate', 'u8', { since: 3 }),
    ],
    subsections: rev.serialSubsections.map((name, index) => {
      const sub = SUBSECTIONS[name];
      const gated = rev.serialGatedPre22.includes(name);
      return {
        name,
        version: 1,
        fields: sub.fields,
        // Downstream RHEL: "Disable all the extra subsections that were added in 2.2".
        needed: (o, ctx) => {
          const needed = !(gated && ctx.pre22) && sub.needed(o, ctx);
          if (needed) o.m.emit(Ev.SUBSECTION, o.s.dev, index, 0);
          return needed;
        },
        preLoad: (o) => o.m.emit(Ev.SUBSECTION, o.s.dev, index, 1),
      };
    }),
    preSave: (o) => {
      o.fcrVmstate = o.s.fcr;
    },
    // The -1 sentinels mean "subsection absent" (added with the subsections in 2.3).
    preLoad: hasSubsections
      ? (o) => {
          o.s.thrIpending = -1;
          o.s.pollMsl = -1;
        }
      : undefined,
    postLoad: (o, ctx) => serialPostLoad(o, ctx),
  };
}

/**
 * serial_post_load: runs after every subsection, always at version 3 (see serialSection): its
 * `version_id < 3` case (fcr_vmstate = 0) never runs in QEMU either. Today's never touches
 * the IRQ line; the one before 2.3 (1.x, and 1.5-2.2 @003f8dbc) runs the full FCR write,
 * which recomputes IIR with the destination's own thr_ipending (0: not migrated), so a
 * pending THRE interrupt is lost, and moves the line mid-load.
 */
function serialPostLoad(o: SerialImage, ctx: MigCtx): PostLoadResult {
  const s = o.s;
  if (s.generation !== 'write-watch') {
    writeFcr1x(s, o.m, o.fcrVmstate);
    updateParameters(s);
    // The i8259's section may set the pin after the line moved here.
    o.m.uartLoaded(s.dev);
    return null;
  }
  o.m.uartLoaded(s.dev);
  if (s.thrIpending === -1) s.thrIpending = (s.iir & Iir.ID_MASK) === Iir.THRI ? 1 : 0;
  if (ctx.rev.serialPostLoadChecks) {
    if (s.tsrRetry > 0) {
      if (s.lsr & Lsr.TEMT) {
        return {
          // error_report's %d of the uint32_t: 0xffffffff prints as -1.
          message: `inconsistent state in serial device (tsr empty, tsr_retry=${s.tsrRetry | 0}`,
          key: 'tsr-empty',
        };
      }
    } else if (!(s.lsr & Lsr.TEMT)) {
      return {
        message: 'inconsistent state in serial device (tsr not empty, tsr_retry=0',
        key: 'tsr-not-empty',
      };
    }
  }
  if (s.tsrRetry > 0) {
    s.tsrRetry = Math.min(s.tsrRetry, MAX_XMIT_RETRY);
    // The chardev watch is not migrated: re-add it (it fires once the VM runs).
    o.m.chrAddWatch(s.dev, 0);
  }
  s.lastBreakEnable = (s.lcr >> 6) & 1;
  writeFcr(s, o.fcrVmstate & Fcr.STICKY);
  updateParameters(s);
  return null;
}
