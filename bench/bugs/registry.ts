/**
 * The benchmark of real migration bugs: each a buggy and a fixed set of builds, the finding
 * that proves it, and a hand-written witness schedule (found on the buggy builds, clean on the
 * fixed ones: test/bench-bugs.test.ts). The power table (`npm run bench`) runs every searcher
 * on every bug from an empty corpus.
 */
export interface BenchBugBuilds {
  /** Builds the campaign may pick (source and destination alike). */
  allowed: readonly string[];
  /** Builds to register on top of the built-in ones, as in a `--builds-file` document. */
  buildFile?: { builds: readonly object[] };
}

export interface BenchBug {
  /** Kebab-case, stable: results are keyed by it. */
  id: string;
  /** The fix's subject line (or the bug report's title). */
  title: string;
  /** QEMU commit and release, bug tracker id, or mailing-list patch. */
  provenance: string;
  /** One paragraph: what broke, when, and how a migration shows it. */
  account: string;
  buggy: BenchBugBuilds;
  fixed: BenchBugBuilds;
  /** A finding whose signature matches counts as finding this bug. */
  signature: RegExp;
  /** The witness schedule, relative to the repository root. */
  witness: string;
  /**
   * Set when only a hostile source (a `migrate` step's `hostile` fields) shows the bug: the
   * generator never makes one, so no searcher can find it and the power table leaves it out.
   */
  needsHostileSource?: true;
}

/** Machine types `{name}` for a build-file entry. */
const machines = (names: readonly string[]): { name: string }[] => names.map((name) => ({ name }));
const i440fx = (versions: readonly string[]): string[] => versions.map((v) => `pc-i440fx-${v}`);
/** pc-i440fx-1.4 … 4.2, the machine types QEMU 4.2 offers besides pc-0.x/pc-1.x. */
const I440FX_TO_4_2 = i440fx([
  ...['1.4', '1.5', '1.6', '1.7', '2.0', '2.1', '2.2', '2.3', '2.4', '2.5', '2.6', '2.7', '2.8'],
  ...['2.9', '2.10', '2.11', '2.12', '3.0', '3.1', '4.0', '4.1', '4.2'],
]);

/**
 * QEMU 4.2 for the modelled devices: today's revisions except the integer serial speed
 * (float speed came after 4.x) and "Guest index inconsistent" still failing the load (<= 5.1).
 */
const QEMU_4_2 = {
  name: 'qemu-4.2',
  base: 'qemu-7.2',
  revisions: { serialSpeed: 'integer', virtioGuestIndexCheck: 'fail-load' },
  machines: machines(I440FX_TO_4_2),
};

/** A build with one fix applied: `BUILD+COMMIT` is BUILD whose `revisions` switch to the fix. */
const withFix = (base: string, commit: string, revisions: object) => ({
  name: `${base}+${commit}`,
  base,
  revisions,
});

/** A build restricted to one of its RHEL machine types with migrate_pre_2_2 (pc_compat_rhel710). */
const onPre22Machine = (base: string, machine: string) => ({
  name: `${base}-${machine.replace('pc-i440fx-', '')}`,
  base,
  machines: [{ name: machine, migratePre22: true }],
});

export const BENCH_BUGS: readonly BenchBug[] = [
  {
    id: 'virtio-serial-open-in-load',
    title: 'virtio-serial-bus: post_load send_event when vm is running',
    provenance: 'QEMU 80dcfb8532 (1.3), fixing 31abe21f4f02',
    account:
      'Up to 1.2, virtio_serial_load sent VIRTIO_CONSOLE_PORT_OPEN for a port whose host ' +
      'connection differed from the source, and raised the interrupt, while the destination ' +
      'was still loading. The IOAPIC latched it, the end-of-load LAPIC push discarded it, and ' +
      'the line stayed high with Remote IRR set: the guest never saw another interrupt on it.',
    buggy: { allowed: ['qemu-1.2'] },
    fixed: { allowed: ['qemu-1.3'] },
    signature: /^stuck-irq-line:vser0:remote-irr/,
    witness: 'bench/bugs/witnesses/virtio-serial-open-in-load.json',
  },
  {
    id: 'serial-subsections-pre22-rhel',
    title: 'serial: always transmit send/receive buffers on migration',
    provenance: 'qemu-kvm-rhev c782c6646a28 (RHEL 7.5), BZ 1459945',
    account:
      'RHEL 7.4 disabled every serial subsection on pre-2.2 machine types, so a refused ' +
      'transmit (tsr_retry > 0, TEMT clear) reached a destination whose serial_post_load ' +
      'rejected it: "inconsistent state in serial device", and FIFO bytes were lost.',
    buggy: { allowed: ['rhel-7.4'] },
    fixed: { allowed: ['rhel-7.5'] },
    signature: /^migration-failed:serial0:tsr-not-empty/,
    witness: 'corpus/seeds/bug-b-serial.json',
  },
  {
    id: 'virtio-serial-host-status-dropped',
    title: 'virtio-serial: save/load: Send target host connection status if different',
    provenance: 'QEMU 31abe21f4f026171128e6fbafb40062ae1872bd5 (2010)',
    account:
      "Before 31abe21f, virtio_serial_load read each port's host_connected from the stream " +
      "and dropped it: a destination whose chardev was connected while the source's was not " +
      'never sent PORT_OPEN, so the guest went on believing the host was away and its writers ' +
      'waited for ever. The fix sent the event from inside the load (which brought bug A; ' +
      '80dcfb8532 deferred it to a timer in 1.3, the fixed build here).',
    buggy: {
      allowed: ['pre-31abe21f'],
      buildFile: {
        builds: [
          // qemu-1.2 with virtio_serial_load as it was before the commit.
          { name: 'pre-31abe21f', base: 'qemu-1.2', revisions: { virtioSerialPortOpen: 'never' } },
        ],
      },
    },
    fixed: { allowed: ['qemu-1.3'] },
    signature: /^stale-guest-view:vser0:host-connected$/,
    witness: 'bench/bugs/witnesses/virtio-serial-host-status-dropped.json',
  },
  {
    id: 'virtio-serial-timer-before-vm-start',
    title: 'timer: set vm_clock disabled default',
    provenance: 'QEMU 3fdd0ee3 (2.7, 2016)',
    account:
      "80dcfb8532's post-load timer was meant to fire after vm_start, but until 3fdd0ee3 the " +
      'virtual clock of a destination that never ran was enabled: the timer, due at 1 ns, ' +
      'fired on the first main-loop pass after the virtio-serial section loaded. When the ' +
      "stream's end had not arrived yet, that pass came before the end-of-load LAPIC push, " +
      'which wiped the PORT_OPEN interrupt: bug A again, with the INTx line stuck with ' +
      'Remote-IRR set.',
    buggy: { allowed: ['qemu-1.3'] },
    fixed: {
      allowed: ['qemu-1.3+3fdd0ee3'],
      buildFile: { builds: [withFix('qemu-1.3', '3fdd0ee3', { vmClockAtCreation: 'disabled' })] },
    },
    signature: /^stuck-irq-line:vser0:remote-irr$/,
    witness: 'bench/bugs/witnesses/virtio-serial-timer-mid-load.json',
  },
  {
    id: 'lapic-state-at-end-of-load',
    title: 'x86/lapic: Load LAPIC state at post_load',
    provenance: 'QEMU 78d6a05d2f69cbfa6e95f0a4a24a2c934969913b (2.10, 2017)',
    account:
      "Until 78d6a05d, KVM's LAPIC state from the stream was written at the very end of the " +
      'load (cpu_synchronize_all_post_init), over whatever a device had delivered while the ' +
      'load ran. The real report was an RTC interrupt lost (a Windows guest hung); here it is ' +
      "virtio-serial's post-load PORT_OPEN delivered while the stream's end is awaited: the " +
      'same witness as 3fdd0ee3, fixed by the other half of the cure.',
    buggy: { allowed: ['qemu-1.3'] },
    fixed: {
      allowed: ['qemu-1.3+78d6a05d'],
      buildFile: { builds: [withFix('qemu-1.3', '78d6a05d', { lapicLoad: 'post-load' })] },
    },
    signature: /^stuck-irq-line:vser0:remote-irr$/,
    witness: 'bench/bugs/witnesses/virtio-serial-timer-mid-load.json',
  },
  {
    id: 'serial-double-migration-data',
    title: 'serial: Fix double migration data',
    provenance:
      'QEMU f602d047ac21fc10bc325bf12fe61f4f5c4360d4 (5.0.0-rc2), fixing c9808d6028; Launchpad 1869426',
    account:
      'c9808d6028 ("serial: realize the serial device") made the core SerialState a device of ' +
      'its own, with vmstate_serial as its vmsd, while isa-serial kept wrapping the same state: ' +
      'every UART went into the stream twice, as "serial" instances 0 and 1. Any build without ' +
      'the copy refused the stream: "Unknown savevm section or instance \'serial\' 1", so a ' +
      '5.0 release candidate could not migrate back to 4.2. f602d047 dropped the core vmsd ' +
      'before 5.0 shipped.',
    buggy: {
      allowed: ['qemu-5.0-rc1', 'qemu-4.2'],
      buildFile: {
        builds: [
          QEMU_4_2,
          {
            name: 'qemu-5.0-rc1',
            base: 'qemu-4.2',
            revisions: { serialVmsd: 'isa-and-core' },
            machines: machines([...I440FX_TO_4_2, 'pc-i440fx-5.0']),
          },
        ],
      },
    },
    fixed: {
      allowed: ['qemu-5.0', 'qemu-4.2'],
      buildFile: {
        builds: [
          QEMU_4_2,
          { name: 'qemu-5.0', base: 'qemu-4.2', machines: machines([...I440FX_TO_4_2, 'pc-i440fx-5.0']) },
        ],
      },
    },
    signature: /^migration-failed:serial0:unknown-section$/,
    witness: 'bench/bugs/witnesses/serial-double-migration-data.json',
  },
  {
    id: 'serial-poll-needless',
    title: 'serial: check if backed by a physical serial port at realize time',
    provenance: 'QEMU a30cf8760f4a59797fc060c3c5a13b7749551d0c (after 2.3)',
    account:
      'serial_reset left poll_msl at 0 and the ISA realize never asked the backend for modem ' +
      'lines, so serial/poll was needed, and sent, until the guest read MSR or wrote IER. A 2.3 ' +
      'VM whose UART nobody had opened migrated back to 2.2 failed on a subsection the older ' +
      'build did not know. Its signature is shared with every other backward-migration refusal ' +
      '(a needed subsection is a refusal by design), so a campaign counts those too.',
    buggy: { allowed: ['qemu-2.3', 'qemu-2.2'] },
    fixed: {
      allowed: ['qemu-2.3+a30cf876', 'qemu-2.2'],
      buildFile: { builds: [withFix('qemu-2.3', 'a30cf876', { serialPollMsl: 'probed' })] },
    },
    signature: /^migration-failed:serial0:unknown-subsection$/,
    witness: 'bench/bugs/witnesses/serial-poll-needless.json',
  },
  {
    id: 'serial-post-load-fcr-write',
    title: 'serial_post_load: the full FCR write (serial_ioport_write) before the serial_write_fcr setter',
    provenance:
      'QEMU 1.x hw/serial.c and up to 2.2 hw/char/serial.c (@003f8dbc) serial_post_load: ' +
      'serial_ioport_write(s, 0x02, fcr_vmstate); QEMU 2.3: serial_write_fcr, "Initialize fcr ' +
      'via setter to perform essential side-effects", and the serial/thr_ipending subsection',
    account:
      "Up to 2.2, serial_post_load re-ran the guest's FCR write in the middle of the load, " +
      'serial_update_irq included. thr_ipending was not migrated, so IIR was recomputed with the ' +
      "destination's 0: a THRE interrupt the source had raised and the guest had not yet " +
      "taken vanished, the line dropped during the load, and Linux's 8250 driver, waiting for " +
      'that interrupt to send the rest of its buffer, never transmitted again. 2.3 calls a ' +
      'setter that leaves the IRQ alone and migrates (or rebuilds) thr_ipending.',
    buggy: { allowed: ['qemu-1.3', 'qemu-2.2'] },
    fixed: { allowed: ['qemu-2.3'] },
    signature: /^starved-data:serial0:tx-driver$/,
    witness: 'bench/bugs/witnesses/serial-post-load-fcr-write.json',
  },
  {
    id: 'serial-fifo-pre-2.3',
    title: 'serial: the recv_fifo and fifo_timeout_timer subsections (QEMU 2.3)',
    provenance:
      'QEMU 2.3 hw/char/serial.c vmstate_serial_recv_fifo and vmstate_serial_fifo_timeout_timer ' +
      '(qemu-kvm-rhev c782c664: "When subsections were added in qemu 2.3")',
    account:
      "Before 2.3 the 16550's receive FIFO and its character-timeout timer were not migrated: " +
      'bytes the host had sent and the guest had not read yet (below the trigger level, ' +
      'waiting for the timeout interrupt) were gone on the destination, which kept only LSR ' +
      'and IIR. 2.3 sends the FIFO and the pending timeout when they are not empty.',
    buggy: { allowed: ['qemu-2.2'] },
    fixed: { allowed: ['qemu-2.3'] },
    signature: /^data-loss:serial0:rx-lost$/,
    witness: 'bench/bugs/witnesses/serial-fifo-pre-2.3.json',
  },
  {
    id: 'serial-tsr-pre-2.3',
    title: 'serial: the tsr subsection and serial_post_load checks (QEMU 2.3)',
    provenance:
      'QEMU 2.3 hw/char/serial.c vmstate_serial_tsr and serial_post_load ("inconsistent state ' +
      'in serial device (tsr not empty, tsr_retry=0")',
    account:
      "2.0-2.2's serial_xmit retried a refused write from a G_IO_OUT watch, leaving TEMT clear " +
      'and tsr_retry > 0 while the reader was hung up, and migrated neither. A 2.3 destination, ' +
      'whose serial_post_load checks that TEMT agrees with tsr_retry, refused such a stream, so ' +
      'a 2.2 VM with a blocked console could not move to 2.3; 2.3 to 2.3 carries serial/tsr.',
    buggy: { allowed: ['qemu-2.2', 'qemu-2.3'] },
    fixed: { allowed: ['qemu-2.3'] },
    signature: /^migration-failed:serial0:tsr-not-empty$/,
    witness: 'bench/bugs/witnesses/serial-tsr-pre-2.3.json',
  },
  {
    id: 'rhel-pre22-rhel7.1.0',
    title: 'serial: always transmit send/receive buffers on migration (pc-i440fx-rhel7.1.0)',
    provenance:
      'qemu-kvm-rhev hw/i386/pc_piix.c pc_compat_rhel710 (migrate_pre_2_2); fixed by ' +
      'c782c6646a2806a95a953bcfdb7c4801edfe65a4 (RHEL 7.5), BZ 1459945',
    account:
      'pc_compat_rhel710 sets migrate_pre_2_2 ("Disable all the extra subsections that were ' +
      'added in 2.2"), so pc-i440fx-rhel7.1.0, not only the rhel6 and rhel7.0.0 types, ran ' +
      'with every serial subsection gated on RHEL 7.4: a transmitter waiting on a hung-up ' +
      'reader failed the migration with "inconsistent state in serial device". Seed bug B on ' +
      'the machine type the model first missed.',
    buggy: {
      allowed: ['rhel-7.4-rhel7.1.0'],
      buildFile: { builds: [onPre22Machine('rhel-7.4', 'pc-i440fx-rhel7.1.0')] },
    },
    fixed: {
      allowed: ['rhel-7.5-rhel7.1.0'],
      buildFile: { builds: [onPre22Machine('rhel-7.5', 'pc-i440fx-rhel7.1.0')] },
    },
    signature: /^migration-failed:serial0:tsr-not-empty$/,
    witness: 'bench/bugs/witnesses/rhel-pre22-rhel7.1.0.json',
  },
  {
    id: 'rhel-timeout-gated',
    title:
      'RHEL 7: serial/fifo_timeout_timer and serial/timeout_ipending still gated on pre-2.2 machine types',
    provenance:
      'qemu-kvm-rhev 7d2e8f9662feb64c0b15b6fd53e06e3c56921f27 (the migrate_pre_2_2 gating), ' +
      'kept for the timeout subsections by c782c6646a28 (RHEL 7.5); upstream never gated them',
    account:
      "c782c664 ungated tsr and both FIFOs but left the character timeout's two subsections " +
      'gated on migrate_pre_2_2 machine types: bytes below the receive trigger level migrate ' +
      'in the FIFO, but the destination never arms the timeout that would tell the guest, so ' +
      'they wait until more input arrives. Fixed here as upstream has it (nothing gated).',
    buggy: { allowed: ['rhel-7.5'] },
    fixed: {
      allowed: ['rhel-7.5+ungated'],
      buildFile: {
        builds: [{ name: 'rhel-7.5+ungated', base: 'rhel-7.5', revisions: { serialGatedPre22: [] } }],
      },
    },
    signature: /^starved-data:serial0:rx-recv-fifo$/,
    witness: 'bench/bugs/witnesses/rhel-timeout-gated.json',
  },
  {
    id: 'virtio-serial-paused-remigration',
    title:
      'virtio-serial: a paused destination migrated on before cont drops the port-open event it owes the guest',
    provenance:
      'found by migfuzz and confirmed on a real QEMU 7.2 (docs/findings/virtio-serial-paused-remigration.md); ' +
      'not fixed upstream: the fixed build is the proposed patch',
    account:
      "Not historical: today's QEMU. A destination started paused keeps the source's " +
      'host_connected in its post-load record until vm_start; migrated on before `cont`, its ' +
      "virtio_serial_save_device writes the port's own host_connected instead, so the next " +
      'destination sees no difference and never sends PORT_OPEN: the guest believes a ' +
      'connected host is away (or the reverse). The proposed fix saves what the guest was last told.',
    buggy: { allowed: ['qemu-9.2'] },
    fixed: {
      allowed: ['qemu-9.2-remigration-fix'],
      buildFile: {
        builds: [
          {
            name: 'qemu-9.2-remigration-fix',
            base: 'qemu-9.2',
            revisions: { virtioSerialSaveHostConnected: 'post-load-record' },
          },
        ],
      },
    },
    signature: /^stale-guest-view:vser0:host-connected-unsent-at-save$/,
    witness: 'bench/bugs/witnesses/virtio-serial-paused-remigration.json',
  },
  {
    id: 'virtio-queue-sel-unchecked',
    title: 'virtio: avoid buffer overrun on incoming migration',
    provenance:
      'CVE-2013-6399: QEMU 2.0.1/2.1 hw/virtio/virtio.c virtio_load, "if (vdev->queue_sel >= ' +
      'VIRTIO_PCI_QUEUE_MAX) return -1" (pkgsrc patch-hw_virtio_virtio.c backports it to QEMU 2.0.0)',
    account:
      'Up to QEMU 2.0.0, virtio_load read queue_sel from the stream and kept it whatever its ' +
      "value; the guest's next VIRTIO_PCI_QUEUE_PFN or QUEUE_NUM access indexes vdev->vq[] with " +
      'it, so a doctored source could write past the array into the destination QEMU. The fix ' +
      'fails the load instead. Here a hostile source sends queue_sel 1024 for a virtio-serial ' +
      'device: qemu-1.3 accepts it (an unsafe load), the fixed build refuses the stream.',
    buggy: { allowed: ['qemu-1.3'] },
    fixed: {
      allowed: ['qemu-1.3+cve-2013-6399'],
      buildFile: { builds: [withFix('qemu-1.3', 'cve-2013-6399', { virtioQueueSelCheck: 'fail-load' })] },
    },
    signature: /^unsafe-load:vser0:queue-sel$/,
    witness: 'bench/bugs/witnesses/virtio-queue-sel-unchecked.json',
    needsHostileSource: true,
  },
];
