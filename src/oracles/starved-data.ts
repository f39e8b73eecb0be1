import { Ev, MigPhase, streamDev } from '../model/events.js';
import { uart8250Pending } from '../model/guest/serial8250.js';
import { MSIX_ENTRIES, vectorOfMsix } from '../model/irqchip.js';
import type { Machine } from '../model/machine.js';
import { Fcr, Ier, Iir, Lsr, Mcr } from '../model/uart16550/regs.js';
import { inQueueOf } from '../model/virtio-serial/state.js';
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

/** Stopwatch keys: one per stream (dev * 64 + port * 2 + direction, as stream ids). */
const KEYS_PER_DEV = 64;
const NONE = -1;

interface Starved {
  /** Index in WHERE, or NONE. */
  where: number;
  bytes: number;
  /** What lets the bytes move and is missing, for the message. */
  why: string;
}

const NOT_STARVED: Starved = { where: NONE, bytes: 0, why: '' };

function uartTx(m: Machine, dev: number): Starved {
  const d = m.devices[dev]!;
  if (d.kind !== 'uart') return NOT_STARVED;
  const s = d.s;
  if (s.mcr & Mcr.LOOP || m.chardevs.uart[dev]!.state === 'hung-up') return NOT_STARVED;
  const fifo = (s.fcr & Fcr.FE) !== 0;
  const holding = fifo ? s.xmitFifo.num : s.lsr & Lsr.THRE ? 0 : 1;
  const bytes = holding + (s.tsrRetry > 0 ? 1 : 0);
  if (bytes === 0) return driverTx(m, dev);
  const where = s.tsrRetry > 0 ? W.tsr : fifo ? W['xmit-fifo'] : W.thr;
  return { where, bytes, why: `the backend accepts writes (LSR=0x${hex(s.lsr)}, tsr_retry=${s.tsrRetry})` };
}

/**
 * Bytes the guest's 8250 driver keeps for a THRE interrupt (IER.THRI on) that will not come:
 * THR empty and no interrupt pending, e.g. a THRI lost by the 1.x serial_post_load.
 */
function driverTx(m: Machine, dev: number): Starved {
  const d = m.devices[dev]!;
  const drv = m.ram.guest.drivers[dev];
  if (d.kind !== 'uart' || drv?.kind !== 'uart' || m.ram.guest.disabled[dev]) return NOT_STARVED;
  const s = d.s;
  const bytes = uart8250Pending(drv.d);
  if (bytes === 0 || !(s.ier & Ier.THRI) || !(s.lsr & Lsr.THRE) || !(s.iir & Iir.NO_INT)) return NOT_STARVED;
  return {
    where: W.driver,
    bytes,
    why: `IER.THRI is set, THR is empty and no interrupt is pending (IIR=0x${hex(s.iir)}, thr_ipending=${s.thrIpending})`,
  };
}

function uartRx(m: Machine, dev: number): Starved {
  const d = m.devices[dev]!;
  if (d.kind !== 'uart' || m.ram.guest.disabled[dev]) return NOT_STARVED;
  const s = d.s;
  const fifo = (s.fcr & Fcr.FE) !== 0;
  const bytes = fifo ? s.recvFifo.num : s.lsr & Lsr.DR ? 1 : 0;
  if (bytes === 0 || !(s.ier & Ier.RDI)) return NOT_STARVED;
  if (!(s.iir & Iir.NO_INT) || s.fifoTimeoutNs >= 0) return NOT_STARVED;
  const level = fifo ? `, trigger level ${s.recvFifoItl}` : '';
  return {
    where: fifo ? W['recv-fifo'] : W.rbr,
    bytes,
    why: `IER.RDI is set and no interrupt is pending (IIR=0x${hex(s.iir)}${level}, no character timeout armed)`,
  };
}

function portTx(m: Machine, dev: number, port: number): Starved {
  const d = m.devices[dev]!;
  if (d.kind !== 'vser') return NOT_STARVED;
  const p = d.s.ports.find((x) => x.id === port);
  const r = m.rings(dev).rings[inQueueOf(port) + 1];
  if (!p?.elem || !r || !m.chardevs.vport[dev]!.get(port)?.connected) return NOT_STARVED;
  const bytes = r.bufLen[p.elem.id]! - p.elem.offset;
  if (bytes <= 0) return NOT_STARVED;
  return {
    where: W['out-buffer'],
    bytes,
    why: `its backend is connected (throttled=${p.throttled ? 1 : 0})`,
  };
}

function portRx(m: Machine, dev: number, port: number): Starved {
  const d = m.devices[dev]!;
  const drv = m.ram.guest.drivers[dev];
  if (d.kind !== 'vser' || drv?.kind !== 'vser' || m.ram.guest.disabled[dev]) return NOT_STARVED;
  const q = inQueueOf(port);
  const r = m.rings(dev).rings[q];
  if (!r) return NOT_STARVED;
  let bytes = 0;
  for (let i = drv.d.lastUsed.get(q) ?? 0; i !== r.usedIdx; i = (i + 1) & 0xffff)
    bytes += r.usedLen[i % r.num]!;
  if (bytes === 0 || notificationPending(m, dev)) return NOT_STARVED;
  return { where: W['in-buffers'], bytes, why: 'no notification is pending (ISR and MSI-X clear)' };
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

/** The starvation state of one stream (key = its stream id). */
function starvedAt(m: Machine, key: number): Starved {
  const dev = streamDev(key);
  const port = (key >> 1) & 31;
  const rx = (key & 1) === 1;
  if (m.devices[dev]!.kind === 'uart') {
    if (port !== 0) return NOT_STARVED;
    return rx ? uartRx(m, dev) : uartTx(m, dev);
  }
  return rx ? portRx(m, dev, port) : portTx(m, dev, port);
}

export function starvedData({ world, params, report, nearMiss }: OracleContext): Oracle {
  const n = world.deviceNames.length;
  const size = n * KEYS_PER_DEV;
  const watch = new Stopwatches(world, size, params.deadlineNs);
  /** Per VM and key: what a running count is about (the last starved state seen), for the report. */
  const held: (Starved | null)[][] = [new Array(size).fill(null), new Array(size).fill(null)];
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
  /** The streams of each device, as stopwatch keys. */
  const keysOf = world.deviceNames.map((name, dev) => {
    const spec = world.schedule.devices[name]!;
    const ports = spec.kind === 'virtio-serial' ? spec.ports.map((p) => p.id) : [0];
    return ports.flatMap((port) => [dev * KEYS_PER_DEV + port * 2, dev * KEYS_PER_DEV + port * 2 + 1]);
  });

  const fire = (vm: number, key: number, at: number, s: Starved): void => {
    const dev = streamDev(key);
    const device = world.deviceNames[dev]!;
    const rx = (key & 1) === 1;
    const vser = world.vms[vm]!.devices[dev]!.kind === 'vser';
    const port = (key >> 1) & 31;
    const where = WHERE[s.where]!;
    report(
      {
        oracle: 'starved-data',
        device,
        at,
        message: `${device}${vser ? ` port ${port}` : ''} ${rx ? 'host→guest' : 'guest→host'}: ${s.bytes} byte(s) held in ${where} for ${params.deadlineNs} ns of running time although ${s.why}`,
      },
      `${rx ? 'rx' : 'tx'}-${vser ? `port${port}-` : ''}${where}`,
    );
  };

  /**
   * Judges a running count up to vm time `untilVm`: past the deadline it fires (and stops),
   * past half the deadline it is a near-miss (once per stream in a run).
   */
  const settle = (vm: number, key: number, untilVm: number): void => {
    const s = held[vm]![key]!;
    const at = watch.crossed(vm, key, untilVm);
    if (at >= 0) {
      fire(vm, key, at, s);
      watch.stop(vm, key);
    } else if (!nearMissed[key] && watch.elapsed(vm, key, untilVm) * 2 >= params.deadlineNs) {
      nearMissed[key] = 1;
      nearMiss('starved-data', (key & 1) * WHERE.length + s.where);
    }
  };

  const flush = (vm: number): void => {
    const mask = dirty[vm]!;
    if (mask === 0) return;
    dirty[vm] = 0;
    const m = world.vms[vm];
    if (!m) return;
    const atVm = m.clock.enabled ? dirtyAt[vm]! + m.clock.offsetNs : m.clock.frozenNs;
    for (let dev = 0; dev < n; dev++) {
      if (!(mask & (1 << dev))) continue;
      for (const key of keysOf[dev]!) {
        const s = starvedAt(m, key);
        if (moved[vm]![key] && watch.running(vm, key)) {
          // Progress: the oldest byte left, so what is held now has waited only from here.
          settle(vm, key, atVm);
          watch.stop(vm, key);
        }
        moved[vm]![key] = 0;
        if (s.where !== NONE) {
          // The place can change while the bytes stay starved (TSR, then the FIFO): one count.
          watch.start(vm, key, atVm);
          held[vm]![key] = s;
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
          moved[vm]![dev] = 1;
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
            watch.migrate(1 - vm, vm, () => false);
            held[vm] = held[1 - vm]!.slice();
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
