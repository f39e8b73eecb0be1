import { Ev } from '../events.js';
import type { GuestIo } from './io.js';
import { cloneUart8250, makeUart8250, type Uart8250, uart8250Boot, uart8250Interrupt } from './serial8250.js';
import {
  cloneVirtioConsole,
  makeVirtioConsole,
  type VirtioConsole,
  virtioConsoleBoot,
  virtioConsoleInterrupt,
} from './virtio-console.js';

/**
 * The guest: its drivers and what it observed. All of it is guest memory, so it travels with
 * the VM on migration (a copy, as RAM is copied; the source keeps its own in case the
 * migration fails).
 */
export type Driver = { kind: 'uart'; d: Uart8250 } | { kind: 'vser'; d: VirtioConsole };

export interface GuestState {
  drivers: Driver[];
  /** Per device: the guest disabled its interrupt (guest.irq.mask; Linux disable_irq). */
  disabled: Uint8Array;
  /**
   * Per device: an interrupt arrived while disabled; the driver masked the source and will
   * replay it on enable (Linux lazy disable: IRQS_PENDING and check_irq_resend).
   */
  pending: Uint8Array;
  /** Per device: handler runs. */
  handlerRuns: Int32Array;
}

export interface GuestDeviceSpec {
  kind: 'uart' | 'vser';
  /** A UART the driver opens at boot (false: at its first use). */
  open?: boolean;
  msix?: boolean;
  portIds?: number[];
}

export function makeGuest(devices: GuestDeviceSpec[]): GuestState {
  return {
    drivers: devices.map(
      (s, dev): Driver =>
        s.kind === 'uart'
          ? { kind: 'uart', d: makeUart8250(dev, s.open !== false) }
          : { kind: 'vser', d: makeVirtioConsole(dev, s.msix ?? false, s.portIds ?? []) },
    ),
    disabled: new Uint8Array(devices.length),
    pending: new Uint8Array(devices.length),
    handlerRuns: new Int32Array(devices.length),
  };
}

export function cloneGuest(g: GuestState): GuestState {
  return {
    drivers: g.drivers.map(
      (x): Driver =>
        x.kind === 'uart'
          ? { kind: 'uart', d: cloneUart8250(x.d) }
          : { kind: 'vser', d: cloneVirtioConsole(x.d) },
    ),
    disabled: g.disabled.slice(),
    pending: g.pending.slice(),
    handlerRuns: g.handlerRuns.slice(),
  };
}

/** Drivers probe their devices at boot. */
export function guestBoot(g: GuestState, io: GuestIo): void {
  for (const x of g.drivers) {
    if (x.kind === 'uart') {
      if (x.d.openAtBoot) uart8250Boot(x.d, io);
    } else {
      virtioConsoleBoot(x.d, io);
    }
  }
}

/**
 * The CPU took `vector`; `devs` are the devices whose source uses it (shared pins share a
 * vector). Each enabled device's handler runs; a disabled one is masked at its source and
 * remembered as pending.
 */
export function guestInterrupt(g: GuestState, io: GuestIo, vector: number, devs: readonly number[]): void {
  for (const dev of devs) {
    if (g.disabled[dev]) {
      if (!g.pending[dev]) {
        g.pending[dev] = 1;
        io.maskSource(dev, true);
      }
      continue;
    }
    runHandler(g, io, dev, vector);
  }
}

function runHandler(g: GuestState, io: GuestIo, dev: number, vector: number): void {
  const x = g.drivers[dev]!;
  g.handlerRuns[dev]!++;
  io.emit(Ev.HANDLER, dev, vector, 0);
  if (x.kind === 'uart') uart8250Interrupt(x.d, io);
  else virtioConsoleInterrupt(x.d, io);
}

/** `guest.irq.mask`: disable_irq (lazy: the source is masked only if an interrupt comes). */
export function guestIrqDisable(g: GuestState, io: GuestIo, dev: number): void {
  if (g.disabled[dev]) return;
  g.disabled[dev] = 1;
  io.emit(Ev.IRQ_MASK, dev, 1, 0);
}

/**
 * `guest.irq.unmask`: enable_irq. A source masked meanwhile is unmasked: a level line still
 * asserted is delivered again by the IOAPIC, a pending MSI-X message is sent; an edge
 * interrupt is replayed in software (check_irq_resend resends edge interrupts only).
 */
export function guestIrqEnable(g: GuestState, io: GuestIo, dev: number, vector: number, edge: boolean): void {
  if (!g.disabled[dev]) return;
  g.disabled[dev] = 0;
  io.emit(Ev.IRQ_MASK, dev, 0, 0);
  if (!g.pending[dev]) return;
  g.pending[dev] = 0;
  io.maskSource(dev, false);
  if (edge) runHandler(g, io, dev, vector);
}
