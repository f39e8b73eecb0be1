import type { Build, BuildRegistry, Revisions } from '../model/migration/builds.js';
import type { DeviceSpec, Schedule } from '../model/schedule/types.js';

/**
 * The causes of findings migfuzz already knows: the two seed bugs, what historical builds are
 * documented to do wrong, and the one real problem of today's QEMU. A finding is "known" when
 * its signature is one a cause produces and the run's builds have that cause (a revision
 * switch of either side: a ping-pong migration loads on both). The same signature on builds
 * without the cause is new: data-loss on qemu-9.2 is not the old FIFO problem.
 *
 * Causes are keyed on revisions, not build names, so a user's build file with
 * `virtioSerialPortOpen: "in-load"` shows bug A as known too. docs/signatures.md is checked
 * against this table by a test.
 */
export interface KnownCause {
  /** Short name, shown in the findings table. */
  name: string;
  /** What goes wrong and where it was fixed (or that it is not). */
  summary: string;
  /** The builds that have it, in words (for the docs). */
  when: string;
  /** Does a run from `src` to `dst` have this cause? */
  has(src: Revisions, dst: Revisions): boolean;
  /** The signatures it produces: oracle, the kind of device, and the key. */
  signatures: readonly { oracle: string; kind: DeviceSpec['kind']; key: string }[];
}

const either =
  (p: (r: Revisions) => boolean) =>
  (src: Revisions, dst: Revisions): boolean =>
    p(src) || p(dst);

const serial = (oracle: string, key: string) => ({ oracle, kind: 'isa-serial' as const, key });
const vser = (oracle: string, key: string) => ({ oracle, kind: 'virtio-serial' as const, key });

/** What a 16550 shows when its FIFO, TSR and timer state do not travel with the migration. */
const SERIAL_STATE_LOST = [
  serial('data-loss', 'rx-lost'),
  serial('data-loss', 'tx-lost'),
  serial('data-corruption', 'phantom-read'),
  serial('data-corruption', 'reordered'),
  serial('lost-interrupt', 'handler-not-run'),
];

export const KNOWN_CAUSES: readonly KnownCause[] = [
  {
    name: 'bug A',
    summary:
      'virtio-serial sent PORT_OPEN and raised its interrupt while the destination was still loading; the LAPIC state installed at the end of load wiped the delivery (fixed by QEMU 80dcfb8532)',
    when: 'a side with virtioSerialPortOpen "in-load" (qemu-1.2)',
    has: either((r) => r.virtioSerialPortOpen === 'in-load'),
    signatures: [
      vser('lost-interrupt', 'handler-not-run'),
      vser('stuck-irq-line', 'remote-irr'),
      vser('stale-guest-view', 'host-connected'),
    ],
  },
  {
    name: 'host status dropped',
    summary:
      "virtio_serial_load before 31abe21f read the source's host_connected and dropped it: a destination whose chardev state differs never tells the guest",
    when: 'a side with virtioSerialPortOpen "never" (builds before 31abe21f, 2010)',
    has: either((r) => r.virtioSerialPortOpen === 'never'),
    signatures: [vser('stale-guest-view', 'host-connected')],
  },
  {
    name: 'double serial section',
    summary:
      'from c9808d6028 to f602d047 (QEMU 5.0 release candidates) the core SerialState registered vmstate_serial beside isa-serial: a second "serial" section that builds without it refuse ("Unknown savevm section or instance \'serial\' 1", Launchpad 1869426)',
    when: 'a side with serialVmsd "isa-and-core" (qemu-5.0-rc1 in bench/bugs)',
    has: either((r) => r.serialVmsd === 'isa-and-core'),
    signatures: [serial('migration-failed', 'unknown-section')],
  },
  {
    name: 'bug B',
    summary:
      'downstream RHEL skipped the 16550\'s tsr and FIFO subsections on pre-2.2 machine types: "inconsistent state in serial device" or lost FIFO bytes (fixed by c782c664)',
    when: 'a side whose serialGatedPre22 includes serial/tsr (rhel-7.4), on a pre-2.2 machine type',
    has: either((r) => r.serialGatedPre22.includes('serial/tsr')),
    signatures: [serial('migration-failed', 'tsr-not-empty'), ...SERIAL_STATE_LOST],
  },
  {
    name: 'pre-2.3 serial',
    summary:
      "QEMU before 2.3 migrated none of the 16550's FIFO, TSR or timer state (the subsections came in 2.3): bytes in flight are lost or reordered, a FIFO reads empty with DR set",
    when: 'a side with no serialSubsections (qemu-1.2, qemu-1.3, qemu-2.2)',
    has: either((r) => r.serialSubsections.length === 0),
    signatures: [
      ...SERIAL_STATE_LOST,
      // 2.0-2.2 leave TEMT=0 with tsr_retry > 0 after a refused write; 2.3's post_load rejects it.
      serial('migration-failed', 'tsr-not-empty'),
      // The retry state stays behind: a byte held for transmit never moves on the destination.
      serial('starved-data', 'tx-thr'),
      serial('starved-data', 'tx-tsr'),
      serial('starved-data', 'tx-xmit-fifo'),
      // Neither thr_ipending nor the timeout state travels: received bytes wait for nothing.
      serial('starved-data', 'rx-rbr'),
      serial('starved-data', 'rx-recv-fifo'),
    ],
  },
  {
    name: '1.x 16550',
    summary:
      'serial_post_load before 2.3 (hw/serial.c in 1.x, hw/char/serial.c up to 2.2 @003f8dbc): its full FCR write recomputes IIR during the load and loses a pending THRE interrupt (the guest driver waits for ever), and a FIFO reset leaves LSR.DR set (the guest reads a NUL)',
    when: 'a side with uartGeneration "transmit-timer" or "watch-ioport" (qemu-1.2, qemu-1.3, qemu-2.2)',
    has: either((r) => r.uartGeneration !== 'write-watch'),
    signatures: [
      serial('starved-data', 'tx-driver'),
      serial('data-corruption', 'duplicated'),
      serial('data-corruption', 'altered'),
    ],
  },
  {
    name: 'RHEL timeout gating',
    summary:
      'RHEL 7 still gates the timeout subsections on pre-2.2 machine types after c782c664: bytes below the receive trigger level wait for a character timeout the destination never arms',
    when: 'a side whose serialGatedPre22 includes serial/timeout_ipending (rhel-7.4, rhel-7.5), on a pre-2.2 machine type',
    has: either((r) => r.serialGatedPre22.includes('serial/timeout_ipending')),
    signatures: [serial('starved-data', 'rx-recv-fifo'), serial('starved-data', 'rx-rbr')],
  },
  {
    name: 'mid-load main loop',
    summary:
      'a stream that arrives in parts lets the main loop run once during the load: chardev handlers (the 16550 keeps receiving and transmitting) and, before 3fdd0ee3 (2.7), vm_clock timers such as the post-load timer raise interrupts that the end-of-load LAPIC push then wipes (the residual window of bug A; fixed by 78d6a05d)',
    when: 'a side with lapicLoad "end-of-load" (qemu-1.x, qemu-2.x, rhel-7.4)',
    has: either((r) => r.lapicLoad === 'end-of-load'),
    signatures: [
      serial('lost-interrupt', 'handler-not-run'),
      serial('stuck-irq-line', 'edge-held'),
      vser('lost-interrupt', 'handler-not-run'),
      vser('stuck-irq-line', 'remote-irr'),
      vser('stale-guest-view', 'host-connected'),
    ],
  },
  {
    name: 'backward migration',
    summary:
      'a newer build sends a serial subsection the older destination does not know; QEMU fails such a load too ("unknown subsection")',
    when: 'the two builds know different serial subsections (qemu-2.3 onwards with qemu-1.x)',
    has: (src, dst) =>
      src.serialSubsections.some((s) => !dst.serialSubsections.includes(s)) ||
      dst.serialSubsections.some((s) => !src.serialSubsections.includes(s)),
    signatures: [serial('migration-failed', 'unknown-subsection')],
  },
  {
    name: 'queue_sel unchecked',
    summary:
      "virtio_load kept a queue_sel past vdev->vq[] from the stream, which the guest's next queue register access then indexes: a source writes outside the array (CVE-2013-6399, checked from QEMU 2.0.1/2.1)",
    when: 'a destination with virtioQueueSelCheck "none" (qemu-1.x)',
    has: (_src, dst) => dst.virtioQueueSelCheck === 'none',
    signatures: [vser('unsafe-load', 'queue-sel')],
  },
  {
    name: 'paused re-migration',
    summary:
      "a paused VM migrated on before `cont` forgets the port-open event its post-load timer owed the guest (today's QEMU too: corpus/regressions/qemu-9.2-paused-remigration.mpk)",
    when: 'a side with virtioSerialPortOpen "timer" whose vm_clock waits for vm_start (3fdd0ee3 onwards: rhel-7.x, qemu-7.2, qemu-9.2)',
    has: either((r) => r.virtioSerialPortOpen === 'timer' && r.vmClockAtCreation === 'disabled'),
    signatures: [vser('stale-guest-view', 'host-connected-unsent-at-save')],
  },
];

/** The known cause of a finding of `schedule`, or null when it is new. */
export function knownCause(
  f: { signature: string; device: string | null },
  schedule: Schedule,
  builds: BuildRegistry,
): KnownCause | null {
  const [oracle, , key] = f.signature.split(':');
  const kind = f.device === null ? undefined : schedule.devices[f.device]?.kind;
  const src: Build | undefined = builds.get(schedule.src.build);
  const dst: Build | undefined = builds.get(schedule.dst.build);
  if (!src || !dst || kind === undefined) return null;
  return (
    KNOWN_CAUSES.find(
      (c) =>
        c.signatures.some((s) => s.oracle === oracle && s.kind === kind && s.key === key) &&
        c.has(src.revisions, dst.revisions),
    ) ?? null
  );
}
