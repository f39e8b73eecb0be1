import { virtioConsoleOpen } from '../guest/virtio-console.js';
import type { Machine } from '../machine.js';
import { Fcr } from '../uart16550/regs.js';
import type { UartState } from '../uart16550/state.js';
import { UartTimer, uartUpdateIrq } from '../uart16550/uart.js';
import { MAX_PORTS, type VserState } from '../virtio-serial/state.js';
import { type SerialImage, serialStateSection } from './serial-section.js';
import { LoadError, StreamReader } from './stream.js';
import { loadSection } from './vmstate.js';

/**
 * A run's source VM started from a real QEMU stream's device state (`run --from-stream`):
 * the serial sections go through the model's own serial loader, the virtio-serial ports
 * take the stream's connection state. What the stream cannot carry into a run is refused
 * with a LoadError: a device count or port set that differs from the schedule's, a host
 * connection the schedule's backend contradicts, a popped element (its buffer is in guest
 * RAM, which the run does not take from the stream).
 */
export interface SourceState {
  /** vm_clock (ns) when the stream was saved: loaded timer expiries are taken relative to it. */
  vmClockNs: number | null;
  /** Each serial section's body (vmstate_serial, read at version 3), by instance id. */
  serials: Uint8Array[];
  /** Each virtio-serial device's port block, in stream order. */
  vsers: {
    maxNrPorts: number;
    portsMap: number[];
    ports: { id: number; guestConnected: number; hostConnected: number; elemPopped: boolean }[];
  }[];
}

function misfit(message: string, section: string, instance: number): LoadError {
  return new LoadError(message, 'stream-misfit', section, instance);
}

/** Applied to the source right after power-on, once the guest's drivers have probed. */
export function applySourceState(m: Machine, st: SourceState): void {
  const uarts = m.devices.filter((d) => d.kind === 'uart');
  const vsers = m.devices.filter((d) => d.kind === 'vser');
  if (st.serials.length !== uarts.length)
    throw misfit(
      `the stream has ${st.serials.length} serial device(s), the schedule ${uarts.length}`,
      'serial',
      0,
    );
  if (st.vsers.length !== vsers.length)
    throw misfit(
      `the stream has ${st.vsers.length} virtio-serial device(s), the schedule ${vsers.length}`,
      'virtio-console',
      0,
    );
  for (const [i, d] of uarts.entries()) loadSerial(m, d.name, d.s, st.serials[i]!, i, st.vmClockNs);
  for (const [i, d] of vsers.entries()) applyPorts(m, d.name, d.s, st.vsers[i]!, i);
}

function loadSerial(
  m: Machine,
  name: string,
  s: UartState,
  body: Uint8Array,
  instance: number,
  savedAtNs: number | null,
): void {
  const r = new StreamReader(body);
  const img: SerialImage = { m, dev: s.dev, s, fcrVmstate: 0 };
  const ctx = { m, rev: m.build.revisions, pre22: m.machineType.migratePre22 };
  try {
    // vmstate_isa_serial's one field: vmstate_serial, read at its own version (serialSection).
    const inner = serialStateSection(m.build.revisions);
    loadSection(r, inner, img, ctx, inner.version);
  } catch (e) {
    if (e instanceof LoadError) throw misfit(`${name}: ${e.message}`, 'serial', instance);
    throw e;
  }
  if (r.remaining > 0)
    throw misfit(`${name}: ${r.remaining} bytes after the serial state`, 'serial', instance);
  // Expiries are absolute on the saved VM's vm_clock: keep their distance from "now".
  for (const timer of [UartTimer.FIFO_TIMEOUT, UartTimer.MODEM_POLL]) {
    const at = m.timerExpiry(s.dev, timer);
    if (at < 0) continue;
    if (savedAtNs === null)
      throw misfit(`${name}: a timer is pending but the stream has no vm_clock`, 'serial', instance);
    const now = m.vmNow();
    m.timerMod(s.dev, timer, Math.max(now, at - savedAtNs + now));
  }
  // The guest's 8250 driver keeps shadows of what it programmed; the line follows the state.
  const drv = m.ram.guest.drivers[s.dev]!;
  if (drv.kind === 'uart') {
    drv.d.ier = s.ier;
    drv.d.fifo = (s.fcr & Fcr.FE) !== 0;
  }
  uartUpdateIrq(s, m);
}

function applyPorts(
  m: Machine,
  name: string,
  s: VserState,
  v: SourceState['vsers'][number],
  instance: number,
): void {
  const fail = (msg: string): never => {
    throw misfit(`${name}: ${msg}`, 'virtio-console', instance);
  };
  if (v.maxNrPorts !== MAX_PORTS) fail(`max_nr_ports ${v.maxNrPorts}, the model has ${MAX_PORTS}`);
  if (v.portsMap.length !== 1 || v.portsMap[0] !== s.portsMap) {
    const map = v.portsMap.map((w) => `0x${w.toString(16)}`).join(' ');
    fail(`ports_map ${map} differs from the schedule's 0x${s.portsMap.toString(16)}`);
  }
  const drv = m.ram.guest.drivers[s.dev]!;
  for (const p of v.ports) {
    const port =
      s.ports.find((x) => x.id === p.id) ?? fail(`the stream's port ${p.id} is not in the schedule`);
    if (p.elemPopped)
      fail(`port ${p.id} has a popped element; its buffer is guest RAM, which a run does not take`);
    const backend = m.chardevs.vport[s.dev]!.get(p.id)!;
    // virtio_serial_load_device compares the raw byte: any non-zero value is "connected".
    if ((p.hostConnected !== 0) !== backend.connected) {
      const state = backend.connected ? 'socket' : 'none';
      fail(
        `port ${p.id}: the stream says host_connected=${p.hostConnected}, the schedule's src backend is "${state}"`,
      );
    }
    // A guest application had the port open: the guest opens it (PORT_OPEN once it is added).
    if (p.guestConnected !== 0 && drv.kind === 'vser') virtioConsoleOpen(drv.d, m, port.id);
  }
}
