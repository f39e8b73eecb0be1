import type { StateSink } from '../events.js';
import type { Machine } from '../machine.js';
import { Lsr } from '../uart16550/regs.js';
import { UartTimer } from '../uart16550/uart.js';
import { C_IVQ, inQueueOf } from '../virtio-serial/state.js';
import { u16 } from '../virtio-serial/virtqueue.js';

/**
 * The device state that decides what a migration can break, read at each migrate instant
 * (the stopped source, once its sections are saved) and after each load (the destination,
 * before it runs), as small bucketed features. The fuzzer's coverage counts them, so a
 * schedule that reaches a rare state at save time (a throttled port holding a half-written
 * element, a TSR waiting on a slow backend, a vector pending in the LAPIC) is kept and
 * mutated further even when nothing after the migration differs yet. Reading state here
 * changes nothing and emits no event: runs and traces are the same with or without a sink.
 */

export const StatePhase = { SAVED: 0, LOADED: 1 } as const;

/** Feature numbers: append only (coverage maps of a resumed campaign hash them). */
export const StateFeature = {
  RUN_STATE: 1,
  TIMERS_ARMED: 2,
  CPU_DISPATCH_PENDING: 3,
  LAPIC_IRR: 4,
  IOAPIC_IRR: 5,
  IOAPIC_REMOTE_IRR: 6,
  IOAPIC_MASKED_PENDING: 7,
  PIC_IRR: 8,
  MSIX_PENDING: 9,
  PCI_INTX: 10,
  /** The guest disabled the device's interrupt (bit 1), one arrived meanwhile (bit 0). */
  GUEST_IRQ_OFF: 11,
  // 16550
  UART_RX_FIFO: 16,
  UART_TX_FIFO: 17,
  UART_TSR_BUSY: 18,
  UART_TSR_RETRY: 19,
  UART_FIFO_TIMEOUT_ARMED: 20,
  UART_THR_IPENDING: 21,
  UART_TIMEOUT_IPENDING: 22,
  UART_IIR: 23,
  UART_IER: 24,
  UART_FCR: 25,
  UART_LCR: 26,
  UART_DIVIDER: 27,
  UART_WATCH: 28,
  UART_BACKEND_INPUT: 29,
  UART_XMIT_TIMER_ARMED: 30,
  UART_POLL_ARMED: 31,
  // virtio-serial (device)
  VSER_ISR: 40,
  VSER_STATUS: 41,
  VSER_POST_LOAD: 42,
  VSER_CTRL_QUEUED: 43,
  // virtio-serial (per port: value = port id << 8 | bucket)
  PORT_THROTTLED: 48,
  PORT_ELEM_OFFSET: 49,
  PORT_CONNECTED: 50,
  PORT_OUT_INUSE: 51,
  PORT_IN_UNREAD: 52,
  PORT_BACKEND_BUFFERED: 53,
  PORT_BACKEND_INPUT: 54,
} as const;

/** 0, 1, 2-3, 4-7, 8-15, 16-31, ...: a count's order of magnitude. */
export function log2Bucket(n: number): number {
  return n <= 0 ? 0 : 32 - Math.clz32(n);
}

const bit = (b: boolean): number => (b ? 1 : 0);

/** Emits every feature of `m`'s state to `sink`. */
export function probeState(m: Machine, phase: number, sink: StateSink): void {
  const f = (dev: number, feature: number, value: number): void => sink.state(phase, dev, feature, value);
  f(-1, StateFeature.RUN_STATE, m.runState);
  let armed = 0;
  for (let slot = 1; slot < m.slotExpiry.length; slot++) if (m.slotExpiry[slot]! >= 0) armed++;
  f(-1, StateFeature.TIMERS_ARMED, log2Bucket(armed));
  f(-1, StateFeature.CPU_DISPATCH_PENDING, bit(m.slotExpiry[0]! >= 0));
  probeIrqchip(m, f);
  for (const [dev, d] of m.devices.entries()) {
    if (d.kind === 'uart') probeUart(m, dev, f);
    else probeVser(m, dev, f);
  }
}

type Feature = (dev: number, feature: number, value: number) => void;

/** Pending interrupts per controller: what a load can lose or leave stuck. */
function probeIrqchip(m: Machine, f: Feature): void {
  const { lapic, ioapic, pic, msix, pci } = m.irq;
  // Native scans: most of the 256 vectors are never requested.
  let irr = 0;
  for (let v = lapic.irr.indexOf(1); v >= 0; v = lapic.irr.indexOf(1, v + 1)) irr++;
  f(-1, StateFeature.LAPIC_IRR, log2Bucket(irr));
  for (const d of m.devices) {
    const pin = d.gsi;
    f(-1, StateFeature.IOAPIC_IRR, (pin << 1) | ioapic.irr[pin]!);
    f(-1, StateFeature.IOAPIC_REMOTE_IRR, (pin << 1) | ioapic.remoteIrr[pin]!);
    f(-1, StateFeature.IOAPIC_MASKED_PENDING, (pin << 1) | (ioapic.masked[pin]! & ioapic.level[pin]!));
    if (pin < 16) f(-1, StateFeature.PIC_IRR, (pin << 1) | ((pic.irr >> pin) & 1));
  }
  const g = m.ram.guest;
  for (const [dev, d] of m.devices.entries()) {
    f(dev, StateFeature.GUEST_IRQ_OFF, (g.disabled[dev]! << 1) | g.pending[dev]!);
    if (d.kind !== 'vser') continue;
    if (d.s.msix) {
      const base = dev * 2;
      f(dev, StateFeature.MSIX_PENDING, (msix.pending[base]! << 1) | msix.pending[base + 1]!);
    } else {
      f(dev, StateFeature.PCI_INTX, pci.irqState[dev]!);
    }
  }
}

function probeUart(m: Machine, dev: number, f: Feature): void {
  const d = m.devices[dev]!;
  if (d.kind !== 'uart') return;
  const s = d.s;
  f(dev, StateFeature.UART_RX_FIFO, uartLevel(s.recvFifo.num, s.recvFifoItl));
  f(dev, StateFeature.UART_TX_FIFO, log2Bucket(s.xmitFifo.num));
  f(dev, StateFeature.UART_TSR_BUSY, bit((s.lsr & Lsr.TEMT) === 0));
  f(dev, StateFeature.UART_TSR_RETRY, s.tsrRetry < 0 ? 15 : log2Bucket(s.tsrRetry));
  f(dev, StateFeature.UART_FIFO_TIMEOUT_ARMED, bit(m.timerExpiry(dev, UartTimer.FIFO_TIMEOUT) >= 0));
  f(dev, StateFeature.UART_XMIT_TIMER_ARMED, bit(m.timerExpiry(dev, UartTimer.TRANSMIT) >= 0));
  f(dev, StateFeature.UART_POLL_ARMED, bit(m.timerExpiry(dev, UartTimer.MODEM_POLL) >= 0));
  f(dev, StateFeature.UART_THR_IPENDING, bit(s.thrIpending !== 0));
  f(dev, StateFeature.UART_TIMEOUT_IPENDING, bit(s.timeoutIpending !== 0));
  f(dev, StateFeature.UART_IIR, s.iir & 0x0f);
  f(dev, StateFeature.UART_IER, s.ier & 0x0f);
  f(dev, StateFeature.UART_FCR, (s.fcr & 1) | (s.recvFifoItl << 1));
  f(dev, StateFeature.UART_LCR, s.lcr);
  f(dev, StateFeature.UART_DIVIDER, log2Bucket(s.divider));
  f(dev, StateFeature.UART_WATCH, bit(m.chrWatchPending(dev, 0)));
  f(dev, StateFeature.UART_BACKEND_INPUT, log2Bucket(m.chardevs.uart[dev]?.input.length ?? 0));
}

/** The receive FIFO's level against its trigger: empty, below, at, above, full. */
function uartLevel(num: number, trigger: number): number {
  if (num === 0) return 0;
  if (num < trigger) return 1;
  if (num === trigger) return 2;
  return num < 16 ? 3 : 4;
}

function probeVser(m: Machine, dev: number, f: Feature): void {
  const d = m.devices[dev]!;
  if (d.kind !== 'vser') return;
  const s = d.s;
  const rings = m.rings(dev).rings;
  const guest = m.ram.guest.drivers[dev];
  f(dev, StateFeature.VSER_ISR, s.isr & 3);
  f(dev, StateFeature.VSER_STATUS, log2Bucket(s.status));
  f(dev, StateFeature.VSER_POST_LOAD, bit(s.postLoad !== null));
  // Control messages the device placed that the guest has not read yet.
  const civq = rings[C_IVQ];
  const lastUsed = guest?.kind === 'vser' ? (guest.d.lastUsed.get(C_IVQ) ?? 0) : 0;
  f(dev, StateFeature.VSER_CTRL_QUEUED, civq ? log2Bucket(u16(civq.usedIdx - lastUsed)) : 0);
  for (const p of s.ports) {
    const port = (feature: number, value: number): void => f(dev, feature, (p.id << 8) | value);
    const out = rings[inQueueOf(p.id) + 1];
    const inq = rings[inQueueOf(p.id)];
    port(StateFeature.PORT_THROTTLED, bit(p.throttled));
    // A popped element: not started, started, half-written or more (of its buffer).
    const elemLen = p.elem && out ? out.bufLen[p.elem.id]! : 0;
    port(
      StateFeature.PORT_ELEM_OFFSET,
      !p.elem ? 0 : p.elem.offset === 0 ? 1 : 2 * p.elem.offset < elemLen ? 2 : 3,
    );
    port(StateFeature.PORT_CONNECTED, (bit(p.guestConnected) << 1) | bit(p.hostConnected));
    port(StateFeature.PORT_OUT_INUSE, log2Bucket(s.queues[inQueueOf(p.id) + 1]!.inuse));
    const readTo =
      guest?.kind === 'vser' ? (guest.d.lastUsed.get(inQueueOf(p.id)) ?? 0) : inq ? inq.usedIdx : 0;
    port(StateFeature.PORT_IN_UNREAD, inq ? log2Bucket(u16(inq.usedIdx - readTo)) : 0);
    const b = m.chardevs.vport[dev]?.get(p.id);
    port(StateFeature.PORT_BACKEND_BUFFERED, log2Bucket(b?.buffered ?? 0));
    port(StateFeature.PORT_BACKEND_INPUT, log2Bucket(b?.input.length ?? 0));
  }
}
