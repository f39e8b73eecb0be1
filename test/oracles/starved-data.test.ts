import { describe, expect, it } from 'vitest';
import { CoverageSink } from '../../src/fuzz/coverage.js';
import { Ev, streamId } from '../../src/model/events.js';
import { vectorOfMsix } from '../../src/model/irqchip.js';
import type { Schedule } from '../../src/model/schedule/types.js';
import { validateSchedule } from '../../src/model/schedule/validate.js';
import type { OracleName } from '../../src/oracles/types.js';
import { DEFAULT_ORACLE_PARAMS } from '../../src/oracles/types.js';
import { judge } from '../../src/oracles/verdict.js';
import { builds, type Event, judged } from './judged.js';

/**
 * starved-data: bytes a device holds that stay put past the deadline while the VM runs and
 * they could move. The real case it exists for is rhel-7.5 on machine types with
 * migrate_pre_2_2 (fidelity audit rank 6): C2Devel/qemu-kvm hw/char/serial.c's
 * serial_fifo_timeout_timer_needed and serial_timeout_ipending_needed still return false
 * there, so bytes below the receive trigger level arrive on the destination with neither RDI
 * nor a character timeout, and the guest never reads them.
 */

const MS = 1_000_000;
const DEADLINE = DEFAULT_ORACLE_PARAMS.deadlineNs;
const MIGRATE_AT = 3.1 * MS;

function uart(opts: {
  build: string;
  machine: string;
  src: string;
  dst?: string;
  steps: unknown[];
  seed?: number;
  horizon?: number;
}): Schedule {
  return validateSchedule(
    {
      format: 'migfuzz.schedule',
      version: 1,
      seed: opts.seed ?? 1,
      machine: opts.machine,
      src: { build: opts.build, backends: { serial0: opts.src } },
      dst: { build: opts.build, backends: { serial0: opts.dst ?? opts.src } },
      devices: { serial0: { kind: 'isa-serial', irq: 4 } },
      steps: opts.steps,
      horizon: opts.horizon ?? 40 * MS,
    },
    builds,
  );
}

/**
 * 3 bytes below a trigger level of 14, then a migration within 4 character times (9600
 * baud: about 4 ms), so the character timeout is still pending when the source stops.
 */
const belowTrigger = (build: string, machine: string, extra: unknown[] = []): Schedule =>
  uart({
    build,
    machine,
    src: 'open',
    steps: [
      { at: 0.5 * MS, do: 'guest.uart.config', dev: 'serial0', fifo: true, trigger: 14, ier: 1 },
      { at: 3 * MS, do: 'host.uart.send', dev: 'serial0', data: 'abc' },
      { at: MIGRATE_AT, do: 'migrate' },
      ...extra,
    ],
  });

const RX = streamId(0, 0, true);
const delivered = (events: Event[], stream: number): string =>
  String.fromCharCode(
    ...events.filter((e) => e.kind === Ev.BYTE_DELIVER && e.dev === stream).map((e) => e.a),
  );
const completedAt = (events: Event[]): number => events.find((e) => e.kind === Ev.MIGRATION && e.a === 5)!.at;

describe('rhel-7.5: receive bytes below the trigger level after a migration', () => {
  it('starve on pc-i440fx-rhel7.0.0 (migrate_pre_2_2 gates the timeout subsections)', () => {
    const { verdict, events } = judged(belowTrigger('rhel-7.5', 'pc-i440fx-rhel7.0.0'));
    expect(delivered(events, RX)).toBe('');
    expect(verdict.findings).toHaveLength(1);
    const f = verdict.findings[0]!;
    expect(f.signature).toBe('starved-data:serial0:rx-recv-fifo');
    expect(f.device).toBe('serial0');
    // Counted from the end of the load: the destination has no timer and no interrupt.
    expect(f.at).toBe(completedAt(events) + DEADLINE);
    expect(f.message).toContain('3 byte(s) held in recv-fifo');
    expect(f.message).toContain('trigger level 14');
    // Nothing else sees it: the bytes are held, not lost.
    expect(verdict.findings.map((x) => x.oracle)).toEqual(['starved-data']);
  });

  it.each([
    ['rhel-7.5', 'pc-i440fx-rhel7.4.0'],
    ['qemu-9.2', 'pc-i440fx-9.2'],
  ])('are read through the migrated character timeout on %s / %s', (build, machine) => {
    const { signatures, events } = judged(belowTrigger(build, machine));
    expect(signatures).toEqual([]);
    expect(delivered(events, RX)).toBe('abc');
    // The read came from the destination's CTI, after the migration.
    const read = events.find((e) => e.kind === Ev.BYTE_DELIVER && e.dev === RX)!;
    expect(read.vm).toBe(1);
    expect(read.at).toBeGreaterThan(completedAt(events));
  });

  it('are not starved while the VM stays paused (only running time counts)', () => {
    const s = belowTrigger('rhel-7.5', 'pc-i440fx-rhel7.0.0');
    const paused = validateSchedule(
      {
        ...JSON.parse(JSON.stringify(s)),
        steps: [...s.steps.slice(0, 2), { at: MIGRATE_AT, do: 'migrate', autostart: false }],
      },
      builds,
    );
    expect(judged(paused).signatures).toEqual([]);
  });

  it('a near-miss (held for half the deadline, then read) is a coverage point, not a finding', () => {
    // 11 more bytes 6 ms after the load reach the trigger level: RDI, and the guest reads all.
    const s = belowTrigger('rhel-7.5', 'pc-i440fx-rhel7.0.0', [
      { at: MIGRATE_AT + 6.5 * MS, do: 'host.uart.send', dev: 'serial0', data: 'defghijklmn' },
    ]);
    const misses: [OracleName, number][] = [];
    const v = judge(s, { builds, nearMiss: { nearMiss: (o, k) => misses.push([o, k]) } });
    expect(v.findings).toEqual([]);
    expect(misses).toHaveLength(1);
    expect(misses[0]![0]).toBe('starved-data');
    // The same run without the near-miss covers fewer points.
    const withMiss = new CoverageSink();
    judge(s, { builds, sink: withMiss, nearMiss: withMiss });
    const without = new CoverageSink();
    judge(s, { builds, sink: without });
    expect(withMiss.touched.length).toBe(without.touched.length + 1);
  });
});

describe('transmit', () => {
  const TX = streamId(0, 0, false);

  // serial_xmit (QEMU 2.0-2.2, @003f8dbc): a refused write leaves the byte in TSR with
  // tsr_retry > 0 and a G_IO_OUT watch, and raises the THRE interrupt only once a write
  // succeeds; without the serial/tsr subsection the destination loads tsr_retry 0 and no
  // watch: the byte is gone and the guest's driver waits for THRE for ever.
  const thrHeld = (build: string, machine: string): Schedule =>
    uart({
      build,
      machine,
      src: 'hung-up',
      dst: 'open',
      steps: [
        { at: 0.5 * MS, do: 'guest.uart.config', dev: 'serial0', fifo: false, ier: 1 },
        { at: 1 * MS, do: 'guest.uart.write', dev: 'serial0', data: 'xy' },
        { at: 2 * MS, do: 'migrate' },
      ],
    });

  it('a TSR byte loaded without its retry state is lost on qemu-2.2, and the driver starves', () => {
    const { verdict, events } = judged(thrHeld('qemu-2.2', 'pc-i440fx-2.2'));
    expect(verdict.findings.map((f) => f.signature).sort()).toEqual([
      'data-loss:serial0:tx-lost',
      'starved-data:serial0:tx-driver',
    ]);
    const starved = verdict.findings.find((f) => f.oracle === 'starved-data');
    expect(starved?.at).toBe(completedAt(events) + DEADLINE);
    expect(delivered(events, TX)).toBe('');
  });

  it('qemu-9.2 migrates serial/tsr and re-adds the watch: both bytes go', () => {
    const { signatures, events } = judged(thrHeld('qemu-9.2', 'pc-i440fx-9.2'));
    expect(signatures).toEqual([]);
    expect(delivered(events, TX)).toBe('xy');
  });

  it('bytes waiting for a hung-up reader are not starved (the backend accepts nothing)', () => {
    const s = uart({
      build: 'qemu-9.2',
      machine: 'pc-i440fx-9.2',
      src: 'hung-up',
      steps: [{ at: 1 * MS, do: 'guest.uart.write', dev: 'serial0', data: 'waiting' }],
    });
    const { signatures, events } = judged(s);
    expect(signatures).toEqual([]);
    expect(delivered(events, TX)).toBe('');
  });

  it('a slow reader taking bytes one by one for longer than the deadline is progress', () => {
    const data = 'a slow console takes each byte after a few EAGAINs, '.repeat(4);
    const s = uart({
      build: 'qemu-9.2',
      machine: 'pc-i440fx-9.2',
      src: 'slow',
      steps: [{ at: 1 * MS, do: 'guest.uart.write', dev: 'serial0', data }],
      horizon: 80 * MS,
    });
    const { signatures, events } = judged(s);
    const moves = events.filter(
      (e) => (e.kind === Ev.BYTE_DELIVER || e.kind === Ev.BYTE_DISCARD) && e.dev === TX,
    );
    expect(moves).toHaveLength(data.length);
    // Bytes were held the whole time, for well over the deadline.
    expect(moves.at(-1)!.at - moves[0]!.at).toBeGreaterThan(2 * DEADLINE);
    expect(signatures).toEqual([]);
  });
});

describe('virtio-serial in-buffers', () => {
  const SEND_AT = 5 * MS;
  const vser = (irq: 'intx' | 'msix'): Schedule =>
    validateSchedule(
      {
        format: 'migfuzz.schedule',
        version: 1,
        seed: 1,
        machine: 'pc-i440fx-9.2',
        src: { build: 'qemu-9.2', backends: { 'vser0.port1': 'socket' } },
        dst: { build: 'qemu-9.2', backends: { 'vser0.port1': 'socket' } },
        devices: { vser0: { kind: 'virtio-serial', irq, ports: [{ id: 1, name: 'org.test.0' }] } },
        steps: [
          { at: 1 * MS, do: 'guest.vport.open', dev: 'vser0', port: 1 },
          { at: SEND_AT, do: 'host.vport.send', dev: 'vser0', port: 1, data: 'hello' },
        ],
        horizon: 40 * MS,
      },
      builds,
    );
  /** The 1-based count of the MSI-X message sent at SEND_AT (the fault's `count`). */
  const messageAtSend = (s: Schedule): number => {
    const sent = judged(s).events.filter((e) => e.kind === Ev.MSI && e.b === 1);
    return sent.findIndex((e) => e.at === SEND_AT) + 1;
  };

  it('starve when the MSI-X message is lost (virtio_notify sent nothing that remains)', () => {
    const s = vser('msix');
    const count = messageAtSend(s);
    expect(count).toBeGreaterThan(0);
    const { verdict } = judged(s, { kind: 'drop-delivery', vector: vectorOfMsix(0, 1), count });
    const starved = verdict.findings.find((f) => f.oracle === 'starved-data');
    expect(starved?.signature).toBe('starved-data:vser0:rx-port1-in-buffers');
    expect(starved?.at).toBe(SEND_AT + DEADLINE);
    expect(starved?.message).toContain('5 byte(s) held in in-buffers');
  });

  it('with INTx a lost delivery leaves ISR set: a notification is pending, the line is stuck instead', () => {
    const s = vser('intx');
    const { events } = judged(s);
    const vector = events.find((e) => e.kind === Ev.IOAPIC_DELIVER && e.at === SEND_AT)!.a;
    const count = events.filter(
      (e) => e.kind === Ev.IOAPIC_DELIVER && e.a === vector && e.at <= SEND_AT,
    ).length;
    const { signatures } = judged(s, { kind: 'drop-delivery', vector, count });
    expect(signatures).toContain('stuck-irq-line:vser0:remote-irr');
    expect(signatures.filter((x) => x.startsWith('starved-data'))).toEqual([]);
  });
});
