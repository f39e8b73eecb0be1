/**
 * Builds and machine types, as data (MODEL.md §6). A build is a bundle of device revisions
 * plus the machine types it offers; a machine type implies compat flags the devices read.
 * Users add builds from a JSON file: a base build plus revision switches.
 */

export const SERIAL_SUBSECTIONS = [
  'serial/thr_ipending',
  'serial/tsr',
  'serial/recv_fifo',
  'serial/xmit_fifo',
  'serial/fifo_timeout_timer',
  'serial/timeout_ipending',
  'serial/poll',
] as const;
export type SerialSubsection = (typeof SERIAL_SUBSECTIONS)[number];

export interface Revisions {
  /**
   * virtio-serial's reaction to a port whose host connection differs from the source's:
   * 'in-load' sends PORT_OPEN during load (31abe21f, QEMU <= 1.2: seed bug A); 'timer' defers
   * it to a vm_clock timer at 1 ns that fires after vm_start (80dcfb8532, QEMU >= 1.3).
   */
  virtioSerialPortOpen: 'in-load' | 'timer';
  /** Serial subsections this build knows (sends when needed, accepts on load). */
  serialSubsections: readonly SerialSubsection[];
  /** serial_post_load's tsr/TEMT consistency checks (added with the subsections in 2.3). */
  serialPostLoadChecks: boolean;
  /** Subsections whose needed() returns false on machine types with migrate_pre_2_2 (RHEL). */
  serialGatedPre22: readonly SerialSubsection[];
  /**
   * When the CPU's LAPIC state from the stream is installed: 'end-of-load' in
   * cpu_synchronize_all_post_init (before 78d6a05d, 2017), overwriting deliveries made during
   * load; 'post-load' in the apic section's own post_load (78d6a05d onwards).
   */
  lapicLoad: 'end-of-load' | 'post-load';
  /**
   * virtio_load's "Guest index inconsistent with Host index" (avail idx - last_avail_idx above
   * the ring size): 'fail-load' returns -1 (QEMU <= 5.1); 'device-broken' loads anyway and the
   * device must be reset ("virtio: skip guest index check on device load", 5.2; later
   * virtio_error, which marks it broken): an unsafe load.
   */
  virtioGuestIndexCheck: RevisionChoice<'virtioGuestIndexCheck'>;
  /**
   * The 16550's code (src/model/uart16550/): 'transmit-timer' is the 1.x hw/serial.c (up to
   * QEMU 1.4: transmit paced by a vm_clock transmit_timer, a refused write dropped at once,
   * THRE resampled on every IER write, serial_post_load doing the full FCR write; uart-1x.ts);
   * 'write-watch' retries a refused write from a G_IO_OUT watch (1.5 onwards; uart.ts).
   */
  uartGeneration: RevisionChoice<'uartGeneration'>;
  /**
   * poll_msl after serial_reset: 'reset-zero' (QEMU <= 2.3: serial_reset sets poll_msl = 0
   * and the ISA realize never probes the backend, so serial/poll is needed, and sent, until
   * the guest reads MSR or writes IER and serial_update_msl finds no TIOCM); 'probed' (a30cf876,
   * "check if backed by a physical serial port at realize time": -1 from the start).
   */
  serialPollMsl: RevisionChoice<'serialPollMsl'>;
  /**
   * serial_update_parameters: 'integer' (QEMU <= 4.x and RHEL 7: `speed = baudbase /
   * divider`, `char_transmit_time = (NANOSECONDS_PER_SECOND / speed) * frame_size` in integer
   * math, nothing done for divider 0); 'float' (9.2: `float speed`, 3500 when the divider is
   * 0, the character time truncated from float).
   */
  serialSpeed: RevisionChoice<'serialSpeed'>;
}

/**
 * Revisions that pick one of a few named behaviours, with their choices: build files and
 * traces read them from this table.
 */
export const REVISION_CHOICES = {
  virtioGuestIndexCheck: ['fail-load', 'device-broken'],
  uartGeneration: ['transmit-timer', 'write-watch'],
  serialPollMsl: ['reset-zero', 'probed'],
  serialSpeed: ['integer', 'float'],
} as const;
export type RevisionChoice<K extends keyof typeof REVISION_CHOICES> = (typeof REVISION_CHOICES)[K][number];

export interface MachineType {
  name: string;
  /** Downstream RHEL global set by pc_compat_rhel710: gates serial subsections. */
  migratePre22: boolean;
}

export interface Build {
  name: string;
  revisions: Revisions;
  machines: readonly MachineType[];
}

const NONE: readonly SerialSubsection[] = [];
const machines = (names: readonly string[], pre22: readonly string[] = []): MachineType[] =>
  names.map((name) => ({ name, migratePre22: pre22.includes(name) }));

const PC_1 = ['pc-1.0', 'pc-1.1', 'pc-1.2', 'pc-1.3'];
const I440FX_2 = [
  '2.0',
  '2.1',
  '2.2',
  '2.3',
  '2.4',
  '2.5',
  '2.6',
  '2.7',
  '2.8',
  '2.9',
  '2.10',
  '2.11',
  '2.12',
];
const I440FX_LATER = ['3.0', '3.1', '4.0', '4.1', '4.2', '5.0', '5.1', '5.2', '6.0', '6.1', '6.2'].concat([
  '7.0',
  '7.1',
  '7.2',
  '8.0',
  '8.1',
  '8.2',
  '9.0',
  '9.1',
  '9.2',
]);
const RHEL74 = [
  'rhel6.6.0',
  ...['7.0.0', '7.1.0', '7.2.0', '7.3.0', '7.4.0'].map((v) => `pc-i440fx-rhel${v}`),
];
const RHEL_PRE22 = ['rhel6.6.0', 'pc-i440fx-rhel7.0.0'];

export const BUILTIN_BUILDS: readonly Build[] = [
  {
    name: 'qemu-1.2',
    revisions: {
      virtioSerialPortOpen: 'in-load',
      serialSubsections: NONE,
      serialPostLoadChecks: false,
      serialGatedPre22: NONE,
      lapicLoad: 'end-of-load',
      virtioGuestIndexCheck: 'fail-load',
      uartGeneration: 'transmit-timer',
      serialPollMsl: 'reset-zero',
      serialSpeed: 'integer',
    },
    machines: machines(PC_1.slice(0, 3)),
  },
  {
    name: 'qemu-1.3',
    revisions: {
      virtioSerialPortOpen: 'timer',
      serialSubsections: NONE,
      serialPostLoadChecks: false,
      serialGatedPre22: NONE,
      lapicLoad: 'end-of-load',
      virtioGuestIndexCheck: 'fail-load',
      uartGeneration: 'transmit-timer',
      serialPollMsl: 'reset-zero',
      serialSpeed: 'integer',
    },
    machines: machines(PC_1),
  },
  {
    // 2.0-2.2: the watch-based serial_xmit (from 1.5) without subsections; a write the backend
    // refuses leaves TEMT=0 with tsr_retry > 0, which 2.3's serial_post_load rejects.
    name: 'qemu-2.2',
    revisions: {
      virtioSerialPortOpen: 'timer',
      serialSubsections: NONE,
      serialPostLoadChecks: false,
      serialGatedPre22: NONE,
      lapicLoad: 'end-of-load',
      virtioGuestIndexCheck: 'fail-load',
      uartGeneration: 'write-watch',
      serialPollMsl: 'reset-zero',
      serialSpeed: 'integer',
    },
    machines: machines([...PC_1, ...I440FX_2.slice(0, 3).map((v) => `pc-i440fx-${v}`)]),
  },
  {
    name: 'qemu-2.3',
    revisions: {
      virtioSerialPortOpen: 'timer',
      serialSubsections: SERIAL_SUBSECTIONS,
      serialPostLoadChecks: true,
      serialGatedPre22: NONE,
      lapicLoad: 'end-of-load',
      virtioGuestIndexCheck: 'fail-load',
      uartGeneration: 'write-watch',
      serialPollMsl: 'reset-zero',
      serialSpeed: 'integer',
    },
    machines: machines([...PC_1, ...I440FX_2.slice(0, 4).map((v) => `pc-i440fx-${v}`)]),
  },
  {
    // qemu-kvm-rhev 2.9: every serial subsection disabled on pre-2.2 machine types.
    name: 'rhel-7.4',
    revisions: {
      virtioSerialPortOpen: 'timer',
      serialSubsections: SERIAL_SUBSECTIONS,
      serialPostLoadChecks: true,
      serialGatedPre22: SERIAL_SUBSECTIONS,
      lapicLoad: 'end-of-load',
      virtioGuestIndexCheck: 'fail-load',
      uartGeneration: 'write-watch',
      serialPollMsl: 'probed',
      serialSpeed: 'integer',
    },
    machines: machines(RHEL74, RHEL_PRE22),
  },
  {
    // qemu-kvm-rhev 2.10 with c782c664: tsr and both FIFOs always sent.
    name: 'rhel-7.5',
    revisions: {
      virtioSerialPortOpen: 'timer',
      serialSubsections: SERIAL_SUBSECTIONS,
      serialPostLoadChecks: true,
      serialGatedPre22: [
        'serial/thr_ipending',
        'serial/fifo_timeout_timer',
        'serial/timeout_ipending',
        'serial/poll',
      ],
      lapicLoad: 'post-load',
      virtioGuestIndexCheck: 'fail-load',
      uartGeneration: 'write-watch',
      serialPollMsl: 'probed',
      serialSpeed: 'integer',
    },
    machines: machines([...RHEL74, 'pc-i440fx-rhel7.5.0'], RHEL_PRE22),
  },
  {
    name: 'qemu-9.2',
    revisions: {
      virtioSerialPortOpen: 'timer',
      serialSubsections: SERIAL_SUBSECTIONS,
      serialPostLoadChecks: true,
      serialGatedPre22: NONE,
      lapicLoad: 'post-load',
      virtioGuestIndexCheck: 'device-broken',
      uartGeneration: 'write-watch',
      serialPollMsl: 'probed',
      serialSpeed: 'float',
    },
    machines: machines([...I440FX_2, ...I440FX_LATER].map((v) => `pc-i440fx-${v}`)),
  },
];

export type BuildRegistry = ReadonlyMap<string, Build>;

export function builtinRegistry(): BuildRegistry {
  return new Map(BUILTIN_BUILDS.map((b) => [b.name, b]));
}

export function findMachine(build: Build, machine: string): MachineType | undefined {
  return build.machines.find((m) => m.name === machine);
}
