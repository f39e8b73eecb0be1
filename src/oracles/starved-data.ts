import { Ev, MigPhase, streamDev } from '../model/events.js';
import { uart8250Pending } from '../model/guest/serial8250.js';
import { MSIX_ENTRIES, vectorOfMsix } from '../model/irqchip.js';
import type { Machine } from '../model/machine.js';
import { Fcr, Ier, Iir, Lsr, Mcr } from '../model/uart16550/regs.js';
import { UartTimer } from '../model/uart16550/uart.js';
import { findPort, inQueueOf } from '../model/virtio-serial/state.js';
import { Stopwatches } from './deadline.js';
import type { Oracle, OracleContext } from './types.js';

/**
 * starved-data: bytes a device holds stay put past the deadline while the VM runs and
 * nothing stops them from moving. A held byte is not lost, so the byte accounting never sees
 * a device that simply stops moving data (after a load, a transmitter or a receiver that
 * nothing will wake again). Where bytes can sit, and when they could move:
 *
 * - UART TX in TSR (a write being retried), THR or the xmit FIFO, while the backend accepts
 *   writes (any state but a hung-up reader; not in loopback, where TX goes to RX at once);
 *   or still in the guest driver's buffer while it waits, IER.THRI on, for a THRE interrupt
 *   that is not pending although THR is empty (a THRI lost in migration).
 * - UART RX in RBR or the recv FIFO, while the guest listens (IER.RDI set, the interrupt not
 *   disabled) and nothing will make it read them: no interrupt pending (IIR shows none) and
 *   no character timeout armed (fifo_timeout_timer), e.g. bytes below the trigger level on a
 *   destination that did not receive the timeout subsections (rhel-7.5, pre-2.2 machines).
 * - A virtio-serial port's out-buffer (the popped element being written) while its backend
 *   is connected: a socket peer drains its buffer, so a throttled port unthrottles soon.
 * - A port's in-buffers (used, not yet consumed by the guest) with no notification pending:
 *   ISR bit 0 clear (INTx), or no MSI-X message pending or at the CPU.
 *
 * The count is of the oldest held byte: a byte that moves (delivered or dropped) starts it
 * again, so a slow reader that takes bytes one by one is not starving them. Counting is in
 * vm_clock time (running time only) and carries over a migration, as guest time does. A count that reaches half the deadline is a near-miss for coverage.
 */

/** Where held bytes sit: part of the signature key. */
const WHERE = ['tsr', 'thr', 'xmit-fifo', 'rbr', 'recv-fifo', 'out-buffer', 'in-buffers', 'driver'] as const;
type Where = (typeof WHERE)[number];
const W = Object.fromEntries(WHERE.map((w, i) => [w, i])) as Record<Where, number>;

const NONE = -1;

/**
 * What holds a stream's bytes: where (an index in WHERE, or NONE), how many, and two values
 * of the device state for the message (see `why`). Flush judges every stream of a touched
 * device at every instant, so the checks fill a record in place and the message is written
 * only when the oracle fires.
 */
interface Starved {
  where: number;
  bytes: number;
  a: number;
  b: number;
}

function holds(out: Starved, where: number, bytes: number, a: number, b: number): number {
  out.where = where;
  out.bytes = bytes;
  out.a = a;
  out.b = b;
  return where;
}

/** What lets the bytes move and is missing, for the message. */
function why(where: number, a: number, b: number): string {
  switch (where) {
    case W.tsr:
    case W.thr:
    case W['xmit-fifo']:
      return `the backend accepts writes (LSR=0x${hex(a)}, tsr_retry=${b})`;
    case W.driver:
      return `IER.THRI is set, THR is empty and no interrupt is pending (IIR=0x${hex(a)}, thr_ipending=${b})`;
    case W.rbr:
    case W['recv-fifo']: {
      const level = where === W['recv-fifo'] ? `, trigger level ${b}` : '';
      return `IER.RDI is set and no interrupt is pending (IIR=0x${hex(a)}${level}, no character timeout armed)`;
    }
    case W['out-buffer']:
      return `its backend is connected (throttled=${a})`;
    default:
      return 'no notification is pending (ISR and MSI-X clear)';
  }
}

function uartTx(m: Machine, dev: number, out: Starved): number {
  const d = m.devices[dev]!;
  if (d.kind !== 'uart') return NONE;
  const s = d.s;
  if (s.mcr & Mcr.LOOP || m.chardevs.uart[dev]!.state === 'hung-up') return NONE;
  const fifo = (s.fcr & Fcr.FE) !== 0;
  const holding = fifo ? s.xmitFifo.num : s.lsr & Lsr.THRE ? 0 : 1;
  const bytes = holding + (s.tsrRetry > 0 ? 1 : 0);
  if (bytes === 0) return driverTx(m, dev, out);
  const where = s.tsrRetry > 0 ? W.tsr : fifo ? W['xmit-fifo'] : W.thr;
  return holds(out, where, bytes, s.lsr, s.tsrRetry);
}

/**
 * Bytes the guest's 8250 driver keeps for a THRE interrupt (IER.THRI on) that will not come:
 * THR empty and no interrupt pending, e.g. a THRI lost by the 1.x serial_post_load.
 */
function driverTx(m: Machine, dev: number, out: Starved): number {
  const d = m.devices[dev]!;
  const drv = m.ram.guest.drivers[dev];
  if (d.kind !== 'uart' || drv?.kind !== 'uart' || m.ram.guest.disabled[dev]) return NONE;
  const s = d.s;
  const bytes = uart8250Pending(drv.d);
  if (bytes === 0 || !(s.ier & Ier.THRI) || !(s.lsr & Lsr.THRE) || !(s.iir & Iir.NO_INT)) return NONE;
  return holds(out, W.driver, bytes, s.iir, s.thrIpending);
}

function uartRx(m: Machine, dev: number, out: Starved): number {
  const d = m.devices[dev]!;
  if (d.kind !== 'uart' || m.ram.guest.disabled[dev]) return NONE;
  const s = d.s;
  const fifo = (s.fcr & Fcr.FE) !== 0;
  const bytes = fifo ? s.recvFifo.num : s.lsr & Lsr.DR ? 1 : 0;
  if (bytes === 0 || !(s.ier & Ier.RDI)) return NONE;
  if (!(s.iir & Iir.NO_INT) || m.timerExpiry(dev, UartTimer.FIFO_TIMEOUT) >= 0) return NONE;
  return holds(out, fifo ? W['recv-fifo'] : W.rbr, bytes, s.iir, s.recvFifoItl);
}

function portTx(m: Machine, dev: number, port: number, out: Starved): number {
  const d = m.devices[dev]!;
  if (d.kind !== 'vser') return NONE;
  // Most of the time no element is popped: that answer needs neither the ring nor the backend.
  const p = findPort(d.s, port);
  if (!p?.elem) return NONE;
  const r = m.rings(dev).rings[inQueueOf(port) + 1];
  if (!r || !m.chardevs.vport[dev]!.get(port)?.connected) return NONE;
  const bytes = r.bufLen[p.elem.id]! - p.elem.offset;
  if (bytes <= 0) return NONE;
  return holds(out, W['out-buffer'], bytes, p.throttled ? 1 : 0, 0);
}

function portRx(m: Machine, dev: number, port: number, out: Starved): number {
  const d = m.devices[dev]!;
  const drv = m.ram.guest.drivers[dev];
  if (d.kind !== 'vser' || drv?.kind !== 'vser' || m.ram.guest.disabled[dev]) return NONE;
  const q = inQueueOf(port);
  const r = m.rings(dev).rings[q];
  if (!r) return NONE;
  let bytes = 0;
  for (let i = drv.d.lastUsed.get(q) ?? 0; i !== r.usedIdx; i = (i + 1) & 0xffff)
    bytes += r.usedLen[i % r.num]!;
  if (bytes === 0 || notificationPending(m, dev)) return NONE;
  return holds(out, W['in-buffers'], bytes, 0, 0);
}

/** A notification that makes the guest's handler consume the used buffers is on its way. */
function notificationPending(m: Machine, dev: number): boolean {
  const d = m.devices[dev]!;
  if (d.kind !== 'vser') return false;
  if (!d.s.msix) return (d.s.isr & 1) === 1;
  const { msix, lapic } = m.irq;
  for (let e = 0; e < MSIX_ENTRIES; e++) {
    const v = vectorOfMsix(dev, e);
    if (msix.pending[dev * MSIX_ENTRIES + e] || lapic.irr[v] || lapic.isr[v]) return true;
  }
  return false;
}

const hex = (v: number): string => v.toString(16).padStart(2, '0');

/** The starvation state of a stream (its device, port and direction): where, or NONE; details in `out`. */
function starvedAt(m: Machine, dev: number, port: number, rx: boolean, out: Starved): number {
  if (m.devices[dev]!.kind === 'uart') {
    if (port !== 0) return NONE;
    return rx ? uartRx(m, dev, out) : uartTx(m, dev, out);
  }
  return rx ? portRx(m, dev, port, out) : portTx(m, dev, port, out);
}

export function starvedData({ world, params, report, nearMiss }: OracleContext): Oracle {
  const n = world.deviceNames.length;
  /** The streams of each device: port ids (0 for a UART). */
  const portsOf = world.deviceNames.map((name) => {
    const spec = world.schedule.devices[name]!;
    return spec.kind === 'virtio-serial' ? spec.ports.map((p) => p.id) : [0];
  });
  /**
   * Keys: one per stream, dev * perDev + port * 2 + direction, perDev covering the highest
   * port id (a stream id has 64 per device: the per-run arrays stay small).
   */
  let maxPort = 0;
  for (const ports of portsOf) for (const port of ports) maxPort = Math.max(maxPort, port);
  const perDev = 2 * (1 + maxPort);
  const size = n * perDev;
  const keyOf = (stream: number): number => streamDev(stream) * perDev + (stream & 63);
  const streamOf = (key: number): number => Math.floor(key / perDev) * 64 + (key % perDev);
  const watch = new Stopwatches(world, size, params.deadlineNs);
  /**
   * Per VM and key: what a running count is about (the last starved state seen), for the
   * report: where, bytes, a, b at heldAt(vm, key) (one buffer: every run makes it).
   */
  const held = new Float64Array(8 * size);
  const heldAt = (vm: number, key: number): number => 4 * (vm * size + key);
  /** starvedAt's answer, reused. */
  const found: Starved = { where: NONE, bytes: 0, a: 0, b: 0 };
  const nearMissed = new Uint8Array(size);
  /** Per VM and key: a byte of the stream moved (delivered or dropped) since the last judgement. */
  const moved = [new Uint8Array(size), new Uint8Array(size)];
  /**
   * Per VM: devices whose state changed (a bit each) at host time dirtyAt. A device's state
   * is judged after the whole instant has run (at the first event of a later instant, or at
   * the end), never in the middle of an access.
   */
  const dirty = [0, 0];
  const dirtyAt = [0, 0];
  /** The streams of each device, as keys. */
  const keysOf = portsOf.map((ports, dev) => {
    const keys: number[] = [];
    for (const port of ports) keys.push(dev * perDev + port * 2, dev * perDev + port * 2 + 1);
    return keys;
  });

  const fire = (vm: number, key: number, at: number): void => {
    const i = heldAt(vm, key);
    const whereIndex = held[i]!;
    const bytes = held[i + 1]!;
    const stream = streamOf(key);
    const dev = streamDev(stream);
    const device = world.deviceNames[dev]!;
    const rx = (stream & 1) === 1;
    const vser = world.vms[vm]!.devices[dev]!.kind === 'vser';
    const port = (stream >> 1) & 31;
    const where = WHERE[whereIndex]!;
    report(
      {
        oracle: 'starved-data',
        device,
        at,
        message: `${device}${vser ? ` port ${port}` : ''} ${rx ? 'host→guest' : 'guest→host'}: ${bytes} byte(s) held in ${where} for ${params.deadlineNs} ns of running time although ${why(whereIndex, held[i + 2]!, held[i + 3]!)}`,
      },
      `${rx ? 'rx' : 'tx'}-${vser ? `port${port}-` : ''}${where}`,
    );
  };

  /**
   * Judges a running count up to vm time `untilVm`: past the deadline it fires (and stops),
   * past half the deadline it is a near-miss (once per stream in a run).
   */
  const settle = (vm: number, key: number, untilVm: number): void => {
    const at = watch.crossed(vm, key, untilVm);
    if (at >= 0) {
      fire(vm, key, at);
      watch.stop(vm, key);
    } else if (!nearMissed[key] && watch.elapsed(vm, key, untilVm) * 2 >= params.deadlineNs) {
      nearMissed[key] = 1;
      nearMiss('starved-data', (key & 1) * WHERE.length + held[heldAt(vm, key)]!);
    }
  };

  const flush = (vm: number): void => {
    const mask = dirty[vm]!;
    if (mask === 0) return;
    dirty[vm] = 0;
    const m = world.vms[vm];
    if (!m) return;
    const atVm = m.clock.enabled ? dirtyAt[vm]! + m.clock.offsetNs : m.clock.frozenNs;
    const movedVm = moved[vm]!;
    for (let dev = 0; dev < n; dev++) {
      if (!(mask & (1 << dev))) continue;
      const keys = keysOf[dev]!;
      for (let k = 0; k < keys.length; k++) {
        const key = keys[k]!;
        const where = starvedAt(m, dev, (key - dev * perDev) >> 1, (key & 1) === 1, found);
        if (movedVm[key] && watch.running(vm, key)) {
          // Progress: the oldest byte left, so what is held now has waited only from here.
          settle(vm, key, atVm);
          watch.stop(vm, key);
        }
        movedVm[key] = 0;
        if (where !== NONE) {
          // The place can change while the bytes stay starved (TSR, then the FIFO): one count.
          watch.start(vm, key, atVm);
          const i = heldAt(vm, key);
          held[i] = where;
          held[i + 1] = found.bytes;
          held[i + 2] = found.a;
          held[i + 3] = found.b;
        } else if (watch.running(vm, key)) {
          settle(vm, key, atVm);
          watch.stop(vm, key);
        }
      }
    }
  };

  const touch = (at: number, vm: number, dev: number): void => {
    if (vm < 0 || vm > 1) return;
    if (dirty[vm] !== 0 && at > dirtyAt[vm]!) flush(vm);
    dirtyAt[vm] = at;
    dirty[vm]! |= dev < 0 ? (1 << n) - 1 : 1 << dev;
  };

  /** Judges the running counts of `vm` now (before its clock stops, or at the end). */
  const check = (vm: number): void => {
    const m = world.vms[vm];
    if (!m?.clock.enabled) return;
    const now = m.vmNow();
    for (let key = 0; key < size; key++) if (watch.running(vm, key)) settle(vm, key, now);
  };

  return {
    kinds: [
      Ev.STEP,
      Ev.TIMER,
      Ev.DEV_IRQ,
      Ev.MSI,
      Ev.HANDLER,
      Ev.EOI,
      Ev.REG_READ,
      Ev.REG_WRITE,
      Ev.RUN_STATE,
      Ev.MIGRATION,
      Ev.BYTE_ACCEPT,
      Ev.BYTE_DELIVER,
      Ev.BYTE_DISCARD,
      Ev.BACKEND,
      Ev.HOST_CONNECTED,
      Ev.IRQ_MASK,
    ],
    onEvent(at, kind, vm, dev, a) {
      switch (kind) {
        case Ev.STEP:
          // A step acts on the guest's VM; what it touches emits its own events.
          return touch(at, world.active, -1);
        case Ev.TIMER: {
          // Slot 0 is the vCPU's interrupt dispatch: any device may be served.
          const m = world.vms[vm];
          return touch(at, vm, dev === 0 || !m ? -1 : m.slotDev[dev]!);
        }
        case Ev.EOI:
          return touch(at, vm, -1);
        case Ev.BYTE_DELIVER:
        case Ev.BYTE_DISCARD:
          touch(at, vm, streamDev(dev));
          moved[vm]![keyOf(dev)] = 1;
          return;
        case Ev.BYTE_ACCEPT:
          return touch(at, vm, streamDev(dev));
        case Ev.RUN_STATE:
          if (dirty[vm] !== 0 && at > dirtyAt[vm]!) flush(vm);
          check(vm);
          return touch(at, vm, -1);
        case Ev.MIGRATION:
          flush(0);
          flush(1);
          if (a === MigPhase.DST_CREATED || a === MigPhase.FAILED) watch.reset(vm);
          if (a === MigPhase.COMPLETED) {
            // Guest time goes on: what the source had counted continues on the destination.
            watch.migrate(1 - vm, vm, false);
            held.copyWithin(heldAt(vm, 0), heldAt(1 - vm, 0), heldAt(1 - vm, size));
          }
          return touch(at, vm, -1);
        default:
          return touch(at, vm, dev);
      }
    },
    finish() {
      flush(0);
      flush(1);
      check(world.active);
    },
  };
}
