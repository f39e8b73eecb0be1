/**
 * Builds and machine types, as data (MODEL.md §6). A build is a bundle of device revisions
 * plus the machine types it offers; a machine type implies compat flags the devices read.
 * Users add builds from a JSON file: a base build plus revision switches.
 */

import { assert } from '../assert.js';

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
   * it to a vm_clock timer at 1 ns that fires after vm_start (80dcfb8532, QEMU >= 1.3);
   * 'never' is virtio_serial_load before 31abe21f ("virtio-serial: save/load: Send target host
   * connection status if different", 2010): the source's host_connected is read and dropped,
   * and the guest keeps believing what the source told it.
   */
  virtioSerialPortOpen: 'never' | 'in-load' | 'timer';
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
   * The host_connected byte virtio_serial_save_device writes for each port: 'port' the port's
   * own (every QEMU release); 'post-load-record' the value a pending post-load record holds,
   * i.e. what the guest was last told, while the record's timer has not run (the proposed fix
   * of the paused re-migration, docs/findings/virtio-serial-paused-remigration.md).
   */
  virtioSerialSaveHostConnected: RevisionChoice<'virtioSerialSaveHostConnected'>;
  /**
   * QEMU_CLOCK_VIRTUAL on a VM that has never run (an -incoming destination): 'enabled' before
   * 3fdd0ee3 ("timer: set vm_clock disabled default", QEMU 2.7, 2016), so vm_clock timers that
   * are due at the loaded clock value (80dcfb8532's post-load timer at 1 ns) run on the next
   * main-loop pass even while paused or mid-load; 'disabled' from 3fdd0ee3 on: they wait
   * for vm_start (qemu_clock_init, resume_all_vcpus).
   */
  vmClockAtCreation: RevisionChoice<'vmClockAtCreation'>;
  /**
   * virtio_load's "Guest index inconsistent with Host index" (avail idx - last_avail_idx above
   * the ring size): 'fail-load' returns -1 (QEMU <= 5.1); 'device-broken' loads anyway and the
   * device must be reset ("virtio: skip guest index check on device load", 5.2; later
   * virtio_error, which marks it broken): an unsafe load.
   */
  virtioGuestIndexCheck: RevisionChoice<'virtioGuestIndexCheck'>;
  /**
   * virtio_load's bound on the queue_sel it reads from the stream: 'none' (QEMU <= 2.0.0) keeps
   * any value, which later indexes vdev->vq[] (VIRTIO_PCI_QUEUE_MAX entries) on the guest's
   * next queue register access: a source writes past the array (CVE-2013-6399, "virtio: avoid
   * buffer overrun on incoming migration", in QEMU 2.0.1 and 2.1); 'fail-load' returns -1 when
   * queue_sel >= VIRTIO_PCI_QUEUE_MAX (later VIRTIO_QUEUE_MAX). The model bounds it by today's
   * 1024 on every build, though 1.x-2.3 had 64 queues.
   */
  virtioQueueSelCheck: RevisionChoice<'virtioQueueSelCheck'>;
  /**
   * The 16550's code (src/model/uart16550/): 'transmit-timer' is the 1.x hw/serial.c (up to
   * QEMU 1.4: transmit paced by a vm_clock transmit_timer, a refused write dropped at once,
   * THRE resampled on every IER write, serial_post_load doing the full FCR write; uart-1x.ts);
   * 'watch-ioport' is 1.5 to 2.2 (hw/char/serial.c @003f8dbc): a refused write retried from a
   * G_IO_OUT watch, but IER and FCR still written by the old serial_ioport_write (THRE
   * resampled on every IER write, before 1645b8ee; FCR flushes that leave LSR alone) and
   * serial_post_load running that full FCR write, serial_update_irq included; 'write-watch'
   * is 2.3 onwards (uart.ts): 1645b8ee's rising-edge THRE and the serial_write_fcr setter that
   * serial_post_load calls without touching the IRQ.
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
  /**
   * The devices that carry the 16550's "serial" vmsd: 'isa' (every release) only isa-serial,
   * whose section wraps vmstate_serial; 'isa-and-core' the core SerialState device too
   * (c9808d6028 "serial: realize the serial device", QEMU 5.0 development up to 5.0.0-rc1):
   * the stream carries each UART's state twice, as "serial" instances 2n and 2n+1, and a build
   * without the copy fails on it ("Unknown savevm section or instance 'serial' 1"; f602d047
   * "serial: Fix double migration data", 5.0.0-rc2, Launchpad 1869426).
   */
  serialVmsd: RevisionChoice<'serialVmsd'>;
}

/**
 * Revisions that pick one of a few named behaviours, with their choices: build files and
 * traces read them from this table.
 */
export const REVISION_CHOICES = {
  virtioSerialSaveHostConnected: ['port', 'post-load-record'],
  vmClockAtCreation: ['enabled', 'disabled'],
  virtioGuestIndexCheck: ['fail-load', 'device-broken'],
  virtioQueueSelCheck: ['none', 'fail-load'],
  uartGeneration: ['transmit-timer', 'watch-ioport', 'write-watch'],
  serialPollMsl: ['reset-zero', 'probed'],
  serialSpeed: ['integer', 'float'],
  serialVmsd: ['isa', 'isa-and-core'],
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

const range = (prefix: string, versions: readonly string[]): string[] => versions.map((v) => prefix + v);
/** pc-0.10 … pc-0.15 (pc-0.10/0.11 removed in 4.0, cc425b5d; the rest in 5.0). */
const PC_0 = range('pc-0.', ['10', '11', '12', '13', '14', '15']);
/** pc-1.0 … pc-1.3 (removed in 6.0). */
const PC_1 = range('pc-', ['1.0', '1.1', '1.2', '1.3']);
/** pc-i440fx-1.4 … 1.7 (deprecated in 7.2 -M help, removed in 8.2). */
const I440FX_1 = range('pc-i440fx-', ['1.4', '1.5', '1.6', '1.7']);
/** pc-i440fx-2.0 … 2.3 (deprecated in 8.2, removed in 9.1). */
const I440FX_2_0 = range('pc-i440fx-', ['2.0', '2.1', '2.2', '2.3']);
/** pc-i440fx-2.4 … 2.12 (deprecated in 9.1 under the 3-years/6-years policy). */
const I440FX_2_4 = range('pc-i440fx-', ['2.4', '2.5', '2.6', '2.7', '2.8', '2.9', '2.10', '2.11', '2.12']);
const I440FX_3_TO_7_2 = range('pc-i440fx-', ['3.0', '3.1', '4.0', '4.1', '4.2', '5.0', '5.1', '5.2']).concat(
  range('pc-i440fx-', ['6.0', '6.1', '6.2', '7.0', '7.1', '7.2']),
);
const I440FX_8_TO_9_2 = range('pc-i440fx-', ['8.0', '8.1', '8.2', '9.0', '9.1', '9.2']);
/**
 * RHEL 7's qemu-kvm-rhev (hw/i386/pc_piix.c): rhel6.0.0 … rhel6.6.0 and pc-i440fx-rhel7.x.0.
 * pc_compat_rhel710 sets migrate_pre_2_2 ("Disable all the extra subsections that were added
 * in 2.2"); pc_compat_rhel700 and every rhel6 compat function call it in turn.
 */
const RHEL6 = range('rhel6.', ['0.0', '1.0', '2.0', '3.0', '4.0', '5.0', '6.0']);
const RHEL74 = [...RHEL6, ...range('pc-i440fx-rhel', ['7.0.0', '7.1.0', '7.2.0', '7.3.0', '7.4.0'])];
const RHEL_PRE22 = [...RHEL6, 'pc-i440fx-rhel7.0.0', 'pc-i440fx-rhel7.1.0'];

/**
 * The built-in builds in the build-file shape (docs/builds.md): each its base plus the
 * revisions that changed between the two, so that a release reads as the commits it brought,
 * and a new revision switch touches its first build and the builds that differ. The oldest
 * build lists every revision.
 */
export type BuiltinBuild =
  | { name: string; base?: undefined; revisions: Revisions; machines: readonly MachineType[] }
  | { name: string; base: string; revisions: Partial<Revisions>; machines: readonly MachineType[] };

export const BUILTIN_DELTAS: readonly BuiltinBuild[] = [
  {
    name: 'qemu-1.2',
    revisions: {
      virtioSerialPortOpen: 'in-load',
      serialSubsections: NONE,
      serialPostLoadChecks: false,
      serialGatedPre22: NONE,
      lapicLoad: 'end-of-load',
      virtioSerialSaveHostConnected: 'port',
      vmClockAtCreation: 'enabled',
      virtioGuestIndexCheck: 'fail-load',
      virtioQueueSelCheck: 'none',
      uartGeneration: 'transmit-timer',
      serialPollMsl: 'reset-zero',
      serialSpeed: 'integer',
      serialVmsd: 'isa',
    },
    machines: machines([...PC_0, ...PC_1.slice(0, 3)]),
  },
  {
    // 80dcfb8532: the port-open event deferred to a vm_clock timer.
    name: 'qemu-1.3',
    base: 'qemu-1.2',
    revisions: { virtioSerialPortOpen: 'timer' },
    machines: machines([...PC_0, ...PC_1]),
  },
  {
    // 2.0-2.2: the watch-based serial_xmit (from 1.5) without subsections; a write the backend
    // refuses leaves TEMT=0 with tsr_retry > 0, which 2.3's serial_post_load rejects. IER, FCR
    // and serial_post_load are still the old serial_ioport_write's (@003f8dbc). virtio_load
    // checks queue_sel (CVE-2013-6399).
    name: 'qemu-2.2',
    base: 'qemu-1.3',
    revisions: { virtioQueueSelCheck: 'fail-load', uartGeneration: 'watch-ioport' },
    machines: machines([...PC_0, ...PC_1, ...I440FX_1, ...I440FX_2_0.slice(0, 3)]),
  },
  {
    // The serial subsections and serial_post_load's checks; today's 16550 code.
    name: 'qemu-2.3',
    base: 'qemu-2.2',
    revisions: {
      serialSubsections: SERIAL_SUBSECTIONS,
      serialPostLoadChecks: true,
      uartGeneration: 'write-watch',
    },
    machines: machines([...PC_0, ...PC_1, ...I440FX_1, ...I440FX_2_0]),
  },
  {
    // qemu-kvm-rhev 2.9: every serial subsection disabled on pre-2.2 machine types; 3fdd0ee3
    // and a30cf876 from upstream.
    name: 'rhel-7.4',
    base: 'qemu-2.3',
    revisions: {
      serialGatedPre22: SERIAL_SUBSECTIONS,
      vmClockAtCreation: 'disabled',
      serialPollMsl: 'probed',
    },
    machines: machines(RHEL74, RHEL_PRE22),
  },
  {
    // qemu-kvm-rhev 2.10 with c782c664: tsr and both FIFOs always sent; 78d6a05d.
    name: 'rhel-7.5',
    base: 'rhel-7.4',
    revisions: {
      serialGatedPre22: [
        'serial/thr_ipending',
        'serial/fifo_timeout_timer',
        'serial/timeout_ipending',
        'serial/poll',
      ],
      lapicLoad: 'post-load',
    },
    machines: machines([...RHEL74, 'pc-i440fx-rhel7.5.0'], RHEL_PRE22),
  },
  {
    // Today's QEMU: after 2.3, 3fdd0ee3 (2.7), 78d6a05d (2.10), a30cf876, the skipped guest
    // index check (5.2) and the float serial speed.
    name: 'qemu-9.2',
    base: 'qemu-2.3',
    revisions: {
      lapicLoad: 'post-load',
      vmClockAtCreation: 'disabled',
      virtioGuestIndexCheck: 'device-broken',
      serialPollMsl: 'probed',
      serialSpeed: 'float',
    },
    machines: machines([...I440FX_2_4, ...I440FX_3_TO_7_2, ...I440FX_8_TO_9_2]),
  },
  {
    // Debian 12's QEMU (7.2), the binary real-QEMU confirmation runs: the same device
    // revisions as 9.2 for the modelled devices (7.2's serial_update_parameters has the float
    // speed and the 3500 fallback too), and the machine types of `-M help`.
    name: 'qemu-7.2',
    base: 'qemu-9.2',
    revisions: {},
    machines: machines([...I440FX_1, ...I440FX_2_0, ...I440FX_2_4, ...I440FX_3_TO_7_2]),
  },
];

/** Each built-in build with its base's revisions filled in. */
function resolveBuiltins(list: readonly BuiltinBuild[]): Build[] {
  const done = new Map<string, Build>();
  for (const b of list) {
    let revisions: Revisions;
    if (b.base === undefined) revisions = b.revisions;
    else {
      const base = done.get(b.base);
      assert(base !== undefined, `builtin build ${b.name}: base ${b.base} not defined before it`);
      revisions = { ...base.revisions, ...b.revisions };
    }
    done.set(b.name, { name: b.name, revisions, machines: b.machines });
  }
  return [...done.values()];
}

export const BUILTIN_BUILDS: readonly Build[] = resolveBuiltins(BUILTIN_DELTAS);

export type BuildRegistry = ReadonlyMap<string, Build>;

export function builtinRegistry(): BuildRegistry {
  return new Map(BUILTIN_BUILDS.map((b) => [b.name, b]));
}

export function findMachine(build: Build, machine: string): MachineType | undefined {
  return build.machines.find((m) => m.name === machine);
}
