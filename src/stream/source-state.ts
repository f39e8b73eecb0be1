import type { SourceState } from '../model/migration/from-stream.js';
import type { DecodedStream } from './decode.js';

/**
 * What `run --from-stream` takes from a decoded real stream: the serial sections' bodies (the
 * model's loader reads them), each virtio-serial device's port block, and the vm_clock at
 * save time from the `timer` section (vmstate_timers v2: cpu_ticks_offset, 8 unused bytes,
 * cpu_clock_offset, which holds vm_clock while the VM is stopped). Everything else in the
 * stream is left out.
 */
export function sourceStateOf(bytes: Uint8Array, d: DecodedStream): SourceState {
  const full = d.sections.filter((s) => s.type === 'full');
  const serials = full
    .filter((s) => s.body.kind === 'serial')
    .sort((a, b) => a.instance - b.instance)
    .map((s) => bytes.slice(s.bodyOffset, s.bodyOffset + s.bodyLength));
  const vsers: SourceState['vsers'] = [];
  for (const s of full) {
    if (s.body.kind !== 'virtio-console') continue;
    const v = s.body.virtio.serial;
    vsers.push({
      maxNrPorts: v.max_nr_ports,
      portsMap: v.ports_map,
      ports: v.ports.map((p) => ({
        id: p.id,
        guestConnected: p.guest_connected,
        hostConnected: p.host_connected,
        elemPopped: p.elem_popped !== 0,
      })),
    });
  }
  const timer = full.find(
    (s) => s.idstr === 'timer' && s.instance === 0 && s.version === 2 && s.bodyLength === 24,
  );
  let vmClockNs: number | null = null;
  if (timer) {
    const view = new DataView(bytes.buffer, bytes.byteOffset + timer.bodyOffset + 16, 8);
    const ns = view.getBigInt64(0);
    if (ns >= 0n && ns <= BigInt(Number.MAX_SAFE_INTEGER)) vmClockNs = Number(ns);
  }
  return { vmClockNs, serials, vsers };
}
