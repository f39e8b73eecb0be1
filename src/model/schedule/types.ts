/**
 * The schedule: the fuzz input, format `migfuzz.schedule` version 1 (docs/schedule.md).
 * These are the validated, normalised forms: `data` is always bytes, optional fields have
 * their defaults filled in. `validate.ts` turns untrusted JSON into these or a ScheduleError.
 */
import type { HostileEdits } from '../migration/hostile.js';

export const SCHEDULE_FORMAT = 'migfuzz.schedule';
export const SCHEDULE_VERSION = 1;

export type UartBackendState = 'open' | 'hung-up' | 'closed' | 'slow';
/**
 * A virtio-serial port's chardev, as QEMU's socket chardev has it:
 * - `socket-client` (`server=off`): QEMU connects out at its start, so the port is connected at
 *   realize (host_connected before the guest exists, and on a destination before any load);
 * - `socket-server` (a listening socket): no client until `host.vport.connect`; a client that
 *   connects while the VM does not run is announced at vm_start (the held CHR_EVENT_OPENED);
 * - `socket`: the name `socket-client` had before; the same backend;
 * - `none`: the name `socket-server` had before; the same backend (no peer until a connect).
 */
export type VportBackendState = 'none' | 'socket' | 'socket-server' | 'socket-client';

/** The port backends connected at realize (QEMU's client-mode socket chardev). */
export const CONNECTED_AT_REALIZE: readonly VportBackendState[] = ['socket', 'socket-client'];

export interface IsaSerialDevice {
  kind: 'isa-serial';
  /** ISA IRQ number (3-15, not 2: that is the i8259 cascade). */
  irq: number;
  /**
   * The guest's driver opens the port at boot (default). false: a port nobody opens (no
   * console, no getty), left as serial_reset made it until the first guest.uart step.
   */
  guestOpen: boolean;
}

export interface VirtioSerialPortSpec {
  /** Port id, 1..30 (port 0 is the console port the device always has). */
  id: number;
  name?: string;
  /** A virtconsole port (CONSOLE_PORT is sent for it). */
  console?: boolean;
}

export interface VirtioSerialDevice {
  kind: 'virtio-serial';
  irq: 'intx' | 'msix';
  ports: VirtioSerialPortSpec[];
}

export type DeviceSpec = IsaSerialDevice | VirtioSerialDevice;

export interface SideSpec {
  build: string;
  /** Keys: a UART device name, or `DEV.portN` for a virtio-serial port. */
  backends: Record<string, UartBackendState | VportBackendState>;
}

export type Step =
  | {
      at: number;
      do: 'guest.uart.config';
      dev: string;
      fifo?: boolean;
      trigger?: 1 | 4 | 8 | 14;
      ier?: number;
      lcr?: number;
      divider?: number;
    }
  | { at: number; do: 'guest.uart.write'; dev: string; data: Uint8Array }
  | { at: number; do: 'guest.vport.open' | 'guest.vport.close'; dev: string; port: number }
  | { at: number; do: 'guest.vport.write'; dev: string; port: number; data: Uint8Array }
  | { at: number; do: 'host.uart.send'; dev: string; data: Uint8Array }
  | { at: number; do: 'host.uart.backend'; dev: string; state: UartBackendState }
  | { at: number; do: 'host.vport.connect' | 'host.vport.disconnect'; dev: string; port: number }
  | { at: number; do: 'host.vport.send'; dev: string; port: number; data: Uint8Array }
  | {
      at: number;
      do: 'migrate';
      downtime: number;
      autostart: boolean;
      /** A hostile source: the stream carries these serial fields instead (migration/hostile.ts). */
      hostile?: HostileEdits;
    }
  | { at: number; do: 'vm.stop' | 'vm.cont' }
  | { at: number; do: 'guest.irq.mask' | 'guest.irq.unmask'; dev: string };

export type StepKind = Step['do'];

export const STEP_KINDS: readonly StepKind[] = [
  'guest.uart.config',
  'guest.uart.write',
  'guest.vport.open',
  'guest.vport.close',
  'guest.vport.write',
  'host.uart.send',
  'host.uart.backend',
  'host.vport.connect',
  'host.vport.disconnect',
  'host.vport.send',
  'migrate',
  'vm.stop',
  'vm.cont',
  'guest.irq.mask',
  'guest.irq.unmask',
];

export interface Schedule {
  format: typeof SCHEDULE_FORMAT;
  version: typeof SCHEDULE_VERSION;
  /** u32: seeds the model's PRNG. */
  seed: number;
  machine: string;
  src: SideSpec;
  dst: SideSpec;
  /** In declaration order: a device's index is its position here. */
  devices: Record<string, DeviceSpec>;
  steps: Step[];
  /** Host ns at which the run ends. */
  horizon: number;
}

/** Bad input: one line that says what is wrong and where (e.g. `steps[3].port: no port 2 on vser0`). */
export class ScheduleError extends Error {
  override readonly name = 'ScheduleError';
}

export const DEFAULT_DOWNTIME_NS = 300_000;

/**
 * The builds a schedule migrates between, as summaries print them: `A → B` for one
 * migration, `A ⇄ B (N migrations)` for a ping-pong (each `migrate` leaves the VM running the
 * guest: a failed one leaves it where it was, so the direction of each is the run's to say),
 * `A, no migration` without any. `arrow` joins the pair (`→`, or `->` for plain ASCII).
 */
export function buildsPath(s: Schedule, arrow = ' → '): string {
  const n = s.steps.filter((x) => x.do === 'migrate').length;
  if (n === 0) return `${s.src.build}, no migration`;
  if (n === 1) return `${s.src.build}${arrow}${s.dst.build}`;
  return `${s.src.build} ⇄ ${s.dst.build} (${n} migrations)`;
}
