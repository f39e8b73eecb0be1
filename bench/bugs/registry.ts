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
}

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
    witness: 'corpus/seeds/bug-a-virtio-serial.json',
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
];
