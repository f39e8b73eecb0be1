import type { Machine } from '../../src/model/machine.js';
import { Lsr } from '../../src/model/uart16550/regs.js';
import { fifoReset } from '../../src/model/uart16550/state.js';
import { fifoTimeoutDel, uartUpdateIrq } from '../../src/model/uart16550/uart.js';

/**
 * The planted-bug suite (`npm run power`): migration bugs planted in a test-only build of the
 * model, never in the shipped one. Each is a patch of the destination's device state once its
 * sections are loaded (the `patchLoad` injection point of judge(), which the CLI never sets):
 * what a load that forgets, rewinds or mis-restores one piece of state would leave. Each has
 * a hand-written witness schedule (test/power.test.ts: a finding with the plant, none on the
 * shipped model), so a bug no oracle could ever see is not counted.
 */
export interface PlantedBug {
  /** Kebab-case, stable. */
  id: string;
  area: 'serial' | 'virtio-serial' | 'interrupts';
  /** What the guest or the host sees: lost or repeated data, or a device that stalls. */
  effect: 'loss' | 'duplication' | 'stall' | 'lost-interrupt' | 'stuck-line';
  /** The state the migrate instant must catch for the bug to matter. */
  needs: string;
  /** One sentence: what the planted load does wrong. */
  account: string;
  patch: (m: Machine) => void;
  /** The witness schedule, relative to the repository root. */
  witness: string;
}

const uarts = (m: Machine) => m.devices.flatMap((d) => (d.kind === 'uart' ? [d.s] : []));
const vsers = (m: Machine) => m.devices.flatMap((d) => (d.kind === 'vser' ? [d.s] : []));
const witness = (id: string): string => `bench/power/witnesses/${id}.json`;

export const PLANTED: readonly PlantedBug[] = [
  {
    id: 'serial-tsr-dropped',
    area: 'serial',
    effect: 'loss',
    needs: 'a byte in the TSR waiting on a slow or hung-up backend',
    account: 'The load marks the transmitter empty: the byte the source was retrying is gone.',
    patch: (m) => {
      for (const s of uarts(m)) {
        if (s.lsr & Lsr.TEMT) continue;
        s.lsr |= Lsr.TEMT;
        s.tsrRetry = 0;
        m.chrRemoveWatch(s.dev, 0);
      }
    },
    witness: witness('serial-tsr-dropped'),
  },
  {
    id: 'serial-watch-dropped',
    area: 'serial',
    effect: 'stall',
    needs: 'a byte in the TSR waiting on a slow or hung-up backend',
    account:
      'The load keeps tsr_retry but does not re-add the chardev watch: the transmitter waits ' +
      'for a wakeup that never comes, and every later byte queues behind it.',
    patch: (m) => {
      for (const s of uarts(m)) if (s.tsrRetry > 0) m.chrRemoveWatch(s.dev, 0);
    },
    witness: witness('serial-watch-dropped'),
  },
  {
    id: 'serial-rx-timeout-dropped',
    area: 'serial',
    effect: 'stall',
    needs: 'received bytes below the FIFO trigger level, the character timeout armed',
    account:
      'The load drops the FIFO timeout timer: bytes below the trigger level never raise an ' +
      'interrupt and sit unread.',
    patch: (m) => {
      for (const s of uarts(m)) fifoTimeoutDel(s, m);
    },
    witness: witness('serial-rx-timeout-dropped'),
  },
  {
    id: 'serial-rx-fifo-dropped',
    area: 'serial',
    effect: 'loss',
    needs: 'received bytes the guest has not read',
    account: 'The load empties the receive FIFO (a missing recv_fifo subsection): unread input is lost.',
    patch: (m) => {
      for (const s of uarts(m)) {
        if (s.recvFifo.num === 0) continue;
        fifoReset(s.recvFifo);
        s.lsr &= ~Lsr.DR;
        s.timeoutIpending = 0;
        uartUpdateIrq(s, m);
      }
    },
    witness: witness('serial-rx-fifo-dropped'),
  },
  {
    id: 'serial-thri-dropped',
    area: 'serial',
    effect: 'stall',
    needs: 'a THRE interrupt pending, not yet taken by the guest',
    account:
      'The load clears thr_ipending (the 1.x bug, planted on the modern build): the guest ' +
      'driver waits for a THRE interrupt to send its next bytes.',
    patch: (m) => {
      for (const s of uarts(m)) {
        if (!s.thrIpending) continue;
        s.thrIpending = 0;
        uartUpdateIrq(s, m);
      }
    },
    witness: witness('serial-thri-dropped'),
  },
  {
    id: 'vser-elem-rewound',
    area: 'virtio-serial',
    effect: 'duplication',
    needs: 'a throttled port holding a half-written element',
    account:
      "The load restores a popped element's descriptor but not its offset: the part the " +
      'source already wrote to the backend is written again.',
    patch: (m) => {
      for (const s of vsers(m)) for (const p of s.ports) if (p.elem) p.elem.offset = 0;
    },
    witness: witness('vser-elem-rewound'),
  },
  {
    id: 'vser-flush-dropped',
    area: 'virtio-serial',
    effect: 'stall',
    needs: 'a throttled port holding a popped element',
    account:
      'The load marks a port with a popped element throttled but schedules no flush: the ' +
      "port's output never moves again.",
    patch: (m) => {
      for (const [dev, d] of m.devices.entries()) {
        if (d.kind !== 'vser') continue;
        for (const p of d.s.ports) {
          const b = m.chardevs.vport[dev]?.get(p.id);
          if (p.elem && b) b.watch = false;
        }
      }
    },
    witness: witness('vser-flush-dropped'),
  },
  {
    id: 'vser-isr-dropped',
    area: 'virtio-serial',
    effect: 'stall',
    needs: 'a virtio ISR bit the guest has not read (INTx)',
    account:
      'The load zeroes the ISR: the interrupt for buffers the device already used is never ' +
      'seen, and the guest never reclaims them.',
    patch: (m) => {
      for (const s of vsers(m)) s.isr = 0;
    },
    witness: witness('vser-isr-dropped'),
  },
  {
    id: 'vser-guest-closed',
    area: 'virtio-serial',
    effect: 'stall',
    needs: 'a port the guest has open',
    account:
      'The load forgets guest_connected: the device drops what the host sends to a port the ' +
      'guest still has open.',
    patch: (m) => {
      for (const s of vsers(m)) for (const p of s.ports) p.guestConnected = false;
    },
    witness: witness('vser-guest-closed'),
  },
  {
    id: 'lapic-irr-dropped',
    area: 'interrupts',
    effect: 'lost-interrupt',
    needs: 'a vector pending in the LAPIC, not yet taken by the CPU',
    account: 'The load installs the LAPIC with an empty IRR: a delivered interrupt is lost.',
    patch: (m) => {
      m.irq.lapic.irr.fill(0);
      m.stagedLapic?.irr.fill(0);
    },
    witness: witness('lapic-irr-dropped'),
  },
  {
    id: 'lapic-tmr-dropped',
    area: 'interrupts',
    effect: 'stuck-line',
    needs: 'a level-triggered vector pending in the LAPIC, not yet taken by the CPU',
    account:
      'The load installs the LAPIC without its trigger-mode bits: the pending level vector is ' +
      'taken as an edge one, its EOI is not broadcast to the IOAPIC, and Remote-IRR stays set.',
    patch: (m) => {
      m.irq.lapic.tmr.fill(0);
      m.stagedLapic?.tmr.fill(0);
    },
    witness: witness('lapic-tmr-dropped'),
  },
  {
    id: 'ioapic-remote-irr-stuck',
    area: 'interrupts',
    effect: 'stuck-line',
    needs: 'a level-triggered line asserted at the migrate instant',
    account:
      'The load sets Remote-IRR on every asserted level pin (a line replayed into the IOAPIC ' +
      'before the LAPIC is installed, as seed bug A): the pin never delivers again.',
    patch: (m) => {
      const io = m.irq.ioapic;
      for (const d of m.devices) {
        if (d.kind === 'vser' && !d.s.msix && m.irq.pci.irqState[d.s.dev]) io.remoteIrr[d.gsi] = 1;
      }
    },
    witness: witness('ioapic-remote-irr-stuck'),
  },
];
