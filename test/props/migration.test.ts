/**
 * Migration properties (fast-check, fixed seeds) on qemu-9.2 ↔ qemu-9.2, pc-i440fx-9.2:
 *  (a) transparency: removing the migrate steps changes no byte stream, and neither run has a
 *      finding;
 *  (b) save → load → save gives the identical stream;
 *  (c) hostile streams only ever throw LoadError (refused), or load and are then judged: a
 *      destination either keeps its devices within their invariants or names how QEMU would
 *      mishandle its state (unsafe-load); a whole run with a tampered stream never ends in a
 *      model assert or a hang.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Mutation, mutate } from '../../bench/robustness.js';
import { Ev, type EventSink, MigPhase, RunState } from '../../src/model/events.js';
import { NUM_PIRQS, PIRQ_ISA_IRQ, pciSetIrq } from '../../src/model/irqchip.js';
import { cloneRam, Machine } from '../../src/model/machine.js';
import { builtinRegistry, findMachine } from '../../src/model/migration/builds.js';
import type { DeviceHazard } from '../../src/model/migration/context.js';
import { LoadError } from '../../src/model/migration/stream.js';
import { loadVm, saveVm } from '../../src/model/migration/vm.js';
import type { Schedule } from '../../src/model/schedule/types.js';
import { validateSchedule } from '../../src/model/schedule/validate.js';
import { UartTimer, uartCheckInvariants } from '../../src/model/uart16550/uart.js';
import { inQueueOf, NUM_QUEUES } from '../../src/model/virtio-serial/state.js';
import { u16 } from '../../src/model/virtio-serial/virtqueue.js';
import { World } from '../../src/model/world.js';
import { judge } from '../../src/oracles/verdict.js';

const BUILDS = builtinRegistry();
const MS = 1_000_000;
const US = 1_000;

// ---------------------------------------------------------------------------------------------
// The schedule arbitrary

type Json = Record<string, unknown>;

interface Shape {
  irq: 'intx' | 'msix';
  ports: readonly number[];
  uart: { fifo: boolean; trigger: 1 | 4 | 8 | 14; ier: number } | null;
  /** Data steps between the migrations: chunks[0] before the first one, and so on. */
  chunks: DataAction[][];
  migrations: MigrationAction[];
  /** A pause without a migration, after chunk `at` (if any). */
  pause: { after: number; gap: number; len: number } | null;
  tail: number;
  seed: number;
}

interface DataAction {
  gap: number;
  step: Json;
}

interface MigrationAction {
  /** Host ns since the previous step. */
  gap: number;
  downtime: number;
  /** false: the destination stays paused until a vm.cont that follows the downtime. */
  autostart: boolean;
  /** The VM is stopped before the migration and continued after it. */
  paused: boolean;
  contGap: number;
}

const bytesArb = (max: number) =>
  fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: max });

function dataAction(ports: readonly number[]): fc.Arbitrary<DataAction> {
  const port = fc.constantFrom(...ports);
  const step = fc.oneof(
    bytesArb(20).map((data): Json => ({ do: 'guest.uart.write', dev: 'serial0', data })),
    bytesArb(20).map((data): Json => ({ do: 'host.uart.send', dev: 'serial0', data })),
    fc
      .tuple(port, fc.oneof({ weight: 4, arbitrary: bytesArb(40) }, { weight: 1, arbitrary: bytesArb(400) }))
      .map(([p, data]): Json => ({ do: 'guest.vport.write', dev: 'vser0', port: p, data })),
    fc
      .tuple(port, bytesArb(40))
      .map(([p, data]): Json => ({ do: 'host.vport.send', dev: 'vser0', port: p, data })),
  );
  return fc.record({ gap: fc.integer({ min: 0, max: 3 * MS }), step });
}

const migrationAction: fc.Arbitrary<MigrationAction> = fc.record({
  gap: fc.oneof(fc.integer({ min: 0, max: 200 * US }), fc.integer({ min: 0, max: 8 * MS })),
  downtime: fc.oneof(fc.constant(300 * US), fc.integer({ min: 0, max: 3 * MS })),
  autostart: fc.boolean(),
  paused: fc.boolean(),
  contGap: fc.integer({ min: 1 * US, max: 3 * MS }),
});

const shapeArb: fc.Arbitrary<Shape> = fc
  .record({
    irq: fc.constantFrom<'intx' | 'msix'>('intx', 'msix'),
    ports: fc.constantFrom([1], [1, 2], [2, 5]),
    uart: fc.option(
      fc.record({
        fifo: fc.boolean(),
        trigger: fc.constantFrom<1 | 4 | 8 | 14>(1, 4, 8, 14),
        // RDI always: a guest that never reads keeps the host's bytes in its backend.
        ier: fc.integer({ min: 0, max: 7 }).map((x) => 1 | (x << 1)),
      }),
      { nil: null },
    ),
    migrations: fc.array(migrationAction, { minLength: 1, maxLength: 3 }),
    pause: fc.option(
      fc.record({
        after: fc.nat(3),
        gap: fc.integer({ min: 0, max: 2 * MS }),
        len: fc.integer({ min: 1 * US, max: 4 * MS }),
      }),
      { nil: null },
    ),
    tail: fc.integer({ min: 0, max: 5 * MS }),
    seed: fc.nat(),
  })
  .chain((s) =>
    fc
      .array(fc.array(dataAction(s.ports), { maxLength: 5 }), {
        minLength: s.migrations.length + 1,
        maxLength: s.migrations.length + 1,
      })
      .map((chunks) => ({ ...s, chunks })),
  );

/** The schedule document; every migrate step's downtime is over before the next step. */
function toDoc(shape: Shape): Json {
  const steps: Json[] = [];
  const push = (at: number, step: Json) => steps.push({ at, ...step });
  push(200 * US, { do: 'guest.vport.open', dev: 'vser0', port: shape.ports[0] });
  if (shape.ports[1] !== undefined)
    push(300 * US, { do: 'guest.vport.open', dev: 'vser0', port: shape.ports[1] });
  if (shape.uart) push(400 * US, { do: 'guest.uart.config', dev: 'serial0', ...shape.uart });
  let t = 1 * MS;
  shape.chunks.forEach((chunk, i) => {
    for (const a of chunk) {
      t += a.gap;
      push(t, a.step);
    }
    if (shape.pause && shape.pause.after === i) {
      t += shape.pause.gap;
      push(t, { do: 'vm.stop' });
      t += shape.pause.len;
      push(t, { do: 'vm.cont' });
    }
    const m = shape.migrations[i];
    if (!m) return;
    t += m.gap;
    if (m.paused) {
      push(t, { do: 'vm.stop' });
      t += 10 * US;
    }
    push(t, { do: 'migrate', downtime: m.downtime, autostart: m.autostart });
    t += m.downtime + 1 * US;
    if (m.paused || !m.autostart) {
      t += m.contGap;
      push(t, { do: 'vm.cont' });
    }
    t += 1 * US;
  });
  const backends: Json = { serial0: 'open' };
  for (const p of shape.ports) backends[`vser0.port${p}`] = 'socket';
  return {
    format: 'migfuzz.schedule',
    version: 1,
    seed: shape.seed,
    machine: 'pc-i440fx-9.2',
    src: { build: 'qemu-9.2', backends },
    dst: { build: 'qemu-9.2', backends },
    devices: {
      serial0: { kind: 'isa-serial', irq: 4 },
      vser0: { kind: 'virtio-serial', irq: shape.irq, ports: shape.ports.map((id) => ({ id })) },
    },
    steps,
    horizon: t + shape.tail + 40 * MS,
  };
}

const scheduleArb: fc.Arbitrary<Schedule> = shapeArb.map((s) => validateSchedule(toDoc(s), BUILDS));

function withoutMigrations(s: Schedule): Schedule {
  return { ...s, steps: s.steps.filter((x) => x.do !== 'migrate') };
}

// ---------------------------------------------------------------------------------------------
// Running

type Streams = Map<number, number[]>;

function deliveries(): { sink: EventSink; streams: Streams } {
  const streams: Streams = new Map();
  return {
    streams,
    sink: {
      event(_at, kind, _vm, dev, a) {
        if (kind !== Ev.BYTE_DELIVER) return;
        const list = streams.get(dev) ?? [];
        list.push(a);
        streams.set(dev, list);
      },
    },
  };
}

const sorted = (m: Streams): [number, number[]][] => [...m].sort((x, y) => x[0] - y[0]);

/**
 * Bytes the host offered that a source's chardev still held when the guest left it: they
 * belong to that host's connection (docs/oracles.md) and are by design never delivered to
 * the destination, so a schedule that strands some is outside the transparency property.
 * Also tells whether some migration happened with bytes in flight inside the VM.
 */
function examine(s: Schedule): { stranded: boolean; inFlight: boolean } {
  let stranded = false;
  let inFlight = false;
  const world = new World(s, { builds: BUILDS });
  world.sink = {
    event(_at, kind, vm, _dev, a) {
      if (kind !== Ev.MIGRATION) return;
      const m = world.vms[vm];
      if (a === MigPhase.SAVED && m && holdsData(m)) inFlight = true;
      if (a !== MigPhase.COMPLETED) return;
      const src = world.vms[1 - vm];
      if (!src) return;
      for (const b of src.chardevs.uart) if (b && b.input.length > 0) stranded = true;
      for (const p of src.chardevs.vport) {
        if (p) for (const b of p.values()) if (b.input.length > 0) stranded = true;
      }
    },
  };
  expect(world.run().kind).toBe('horizon');
  return { stranded, inFlight };
}

/** The stopped source holds bytes in flight: UART FIFOs/TSR, a popped element, unread buffers. */
function holdsData(m: Machine): boolean {
  for (const [dev, d] of m.devices.entries()) {
    const drv = m.ram.guest.drivers[dev]!;
    if (d.kind === 'uart') {
      if (d.s.recvFifo.num > 0 || d.s.xmitFifo.num > 0 || d.s.tsrRetry > 0) return true;
      if (drv.kind === 'uart' && drv.d.tx.length > drv.d.txHead) return true;
      continue;
    }
    if (d.s.ports.some((p) => p.elem !== null)) return true;
    if (drv.kind !== 'vser') continue;
    for (const p of drv.d.ports) {
      if (p.out.length > 0) return true;
      const r = m.rings(dev).rings[inQueueOf(p.id)];
      if (r && (drv.d.lastUsed.get(inQueueOf(p.id)) ?? 0) !== r.usedIdx) return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Invariants of a loaded destination

const isBit = (v: number): boolean => v === 0 || v === 1;

function machineInvariants(m: Machine): string[] {
  const errs: string[] = [];
  const bits = (name: string, a: ArrayLike<number>) => {
    for (let i = 0; i < a.length; i++) if (!isBit(a[i]!)) errs.push(`${name}[${i}]=${a[i]}`);
  };
  const { lapic, ioapic, pci, msix } = m.irq;
  bits('lapic.irr', lapic.irr);
  bits('lapic.isr', lapic.isr);
  bits('lapic.tmr', lapic.tmr);
  bits('ioapic.level', ioapic.level);
  bits('ioapic.irr', ioapic.irr);
  bits('ioapic.remoteIrr', ioapic.remoteIrr);
  bits('ioapic.levelTriggered', ioapic.levelTriggered);
  bits('ioapic.masked', ioapic.masked);
  bits('pci.irqState', pci.irqState);
  bits('msix.masked', msix.masked);
  bits('msix.pending', msix.pending);
  const sums = new Array<number>(NUM_PIRQS).fill(0);
  for (const [dev, d] of m.devices.entries()) {
    if (d.kind === 'vser' && !d.s.msix) sums[d.s.pirq]! += pci.irqState[dev]!;
    if (d.kind === 'vser' && d.s.msix && pci.irqState[dev] !== 0)
      errs.push(`MSI-X device ${dev} asserts INTx`);
  }
  for (let p = 0; p < NUM_PIRQS; p++) {
    if (pci.pirqCount[p] !== sums[p])
      errs.push(`pirqCount[${p}]=${pci.pirqCount[p]} but ${sums[p]} raise it`);
  }
  for (const [dev, d] of m.devices.entries()) {
    if (d.kind === 'uart') {
      const s = d.s;
      const broken = uartCheckInvariants(s);
      if (broken !== null) errs.push(`uart ${dev}: ${broken}`);
      // thr_ipending, timeout_ipending and poll_msl are plain INT32s QEMU never checks: the
      // device reads them as truth values (poll_msl: as a sign), whatever they hold.
      for (const [name, v] of [
        ['thr_ipending', s.thrIpending],
        ['timeout_ipending', s.timeoutIpending],
        ['poll_msl', s.pollMsl],
      ] as const)
        if (!(Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31)) errs.push(`uart ${dev}: ${name}=${v}`);
      const fifoTimeout = m.timerExpiry(dev, UartTimer.FIFO_TIMEOUT);
      if (!(fifoTimeout === -1 || (Number.isSafeInteger(fifoTimeout) && fifoTimeout >= 0)))
        errs.push(`uart ${dev}: fifo timeout ${fifoTimeout}`);
      if (!(Number.isSafeInteger(s.charTransmitTimeNs) && s.charTransmitTimeNs > 0))
        errs.push(`uart ${dev}: char_transmit_time=${s.charTransmitTimeNs}`);
      if ((s.fcr & 0xc9) !== s.fcr) errs.push(`uart ${dev}: fcr=0x${s.fcr.toString(16)}`);
      continue;
    }
    const s = d.s;
    if (!(Number.isInteger(s.isr) && s.isr >= 0 && s.isr <= 0xff)) errs.push(`vser ${dev}: isr=${s.isr}`);
    const rings = m.rings(dev).rings;
    for (let q = 0; q < NUM_QUEUES; q++) {
      const vq = s.queues[q]!;
      const r = rings[q];
      if (!r) {
        if (vq.lastAvailIdx !== 0 || vq.inuse !== 0) errs.push(`vser ${dev} vq ${q}: indices without a ring`);
        continue;
      }
      const avail = u16(r.availIdx - vq.lastAvailIdx);
      const inuse = u16(vq.lastAvailIdx - r.usedIdx);
      if (avail > r.num) errs.push(`vser ${dev} vq ${q}: ${avail} available of ${r.num}`);
      if (vq.inuse !== inuse || inuse > r.num)
        errs.push(`vser ${dev} vq ${q}: inuse ${vq.inuse} vs ${inuse}`);
    }
    for (const p of s.ports) {
      if (!p.elem) continue;
      const q = inQueueOf(p.id) + 1;
      const r = rings[q];
      if (!r || p.elem.id >= r.num || p.elem.offset > r.bufLen[p.elem.id]!) {
        errs.push(`vser ${dev} port ${p.id}: element out of range`);
        continue;
      }
      // A popped element is one of the queue's in-flight descriptors.
      const vq = s.queues[q]!;
      let found = false;
      for (let k = 1; k <= vq.inuse; k++) {
        if (r.availRing[u16(vq.lastAvailIdx - k) % r.num] === p.elem.id) found = true;
      }
      if (!found)
        errs.push(`vser ${dev} port ${p.id}: element ${p.elem.id} is not in flight (inuse ${vq.inuse})`);
    }
  }
  return errs;
}

// ---------------------------------------------------------------------------------------------
// Stopped machines

interface Stopped {
  world: World;
  src: Machine;
  stream: Uint8Array;
}

/** Runs the schedule up to `stopAt` (host ns), then stops the guest's VM and saves it. */
function stopAt(s: Schedule, at: number): Stopped {
  const cut: Schedule = { ...s, steps: s.steps.filter((x) => x.at < at), horizon: at };
  const world = new World(cut, { builds: BUILDS });
  expect(world.run().kind).toBe('horizon');
  const src = world.guestVm;
  if (src.running) src.vmStop(RunState.FINISH_MIGRATE);
  return { world, src, stream: saveVm(src) };
}

/** An incoming destination for `src`, built as World.startMigration builds one. */
function freshDestination({ world, src }: Stopped): Machine {
  const to = 1 - src.vm;
  const side = to === 1 ? world.schedule.dst : world.schedule.src;
  const build = BUILDS.get(side.build)!;
  const dst = new Machine(world, {
    vm: to,
    build,
    machineType: findMachine(build, world.schedule.machine)!,
    devices: Object.entries(world.schedule.devices),
    backends: side.backends as Record<string, string>,
  });
  dst.startIncoming();
  dst.ram = cloneRam(src.ram);
  return dst;
}

const stoppedArb: fc.Arbitrary<[Schedule, number]> = scheduleArb.chain((s) =>
  fc.tuple(fc.constant(s), fc.integer({ min: 1, max: s.steps[s.steps.length - 1]!.at + 5 * MS })),
);

// ---------------------------------------------------------------------------------------------

describe('migration transparency (qemu-9.2 ↔ qemu-9.2)', () => {
  it('removing the migrate steps changes no byte stream, and neither run has a finding', () => {
    let compared = 0;
    let crossed = 0;
    let inFlight = 0;
    fc.assert(
      fc.property(scheduleArb, (s) => {
        const seen = examine(s);
        fc.pre(!seen.stranded);
        if (seen.inFlight) inFlight++;
        const mig = deliveries();
        const withMig = judge(s, { builds: BUILDS, sink: mig.sink });
        const plain = deliveries();
        const without = judge(withoutMigrations(s), { builds: BUILDS, sink: plain.sink });
        expect(withMig.findings).toEqual([]);
        expect(without.findings).toEqual([]);
        expect(withMig.end).toBe('horizon');
        expect(sorted(mig.streams)).toEqual(sorted(plain.streams));
        compared++;
        if (mig.streams.size > 0) crossed++;
      }),
      { seed: 0x5eed_0a, numRuns: 300 },
    );
    // Not vacuous: most generated schedules were compared, and they carried data.
    expect(compared).toBeGreaterThanOrEqual(250);
    expect(crossed).toBeGreaterThanOrEqual(220);
    // ... and some migrations happened with bytes in flight in the devices or guest memory.
    expect(inFlight).toBeGreaterThanOrEqual(30);
  });
});

describe('save → load → save', () => {
  it('gives the identical stream on machines stopped at random points', () => {
    fc.assert(
      fc.property(stoppedArb, ([s, at]) => {
        const stopped = stopAt(s, at);
        const dst = freshDestination(stopped);
        loadVm(dst, stopped.stream);
        expect(dst.runState).toBe(RunState.INMIGRATE);
        expect(saveVm(dst)).toEqual(stopped.stream);
      }),
      { seed: 0x5eed_0b, numRuns: 300 },
    );
  });

  // The same on the other builds, each on both sides: what a build does not migrate it does
  // not migrate twice, and what it rebuilds (thr_ipending, fcr) it rebuilds the same way.
  const others: [string, string][] = [
    ['qemu-1.2', 'pc-1.2'],
    ['qemu-1.3', 'pc-1.3'],
    ['qemu-2.3', 'pc-i440fx-2.3'],
    ['rhel-7.4', 'rhel6.6.0'],
    ['rhel-7.5', 'rhel6.6.0'],
    ['rhel-7.5', 'pc-i440fx-rhel7.5.0'],
  ];
  it('gives the identical stream on the other builds too', () => {
    fc.assert(
      fc.property(stoppedArb, fc.constantFrom(...others), ([s, at], [build, machine]) => {
        const moved: Schedule = {
          ...s,
          machine,
          src: { ...s.src, build },
          dst: { ...s.dst, build },
        };
        const stopped = stopAt(moved, at);
        const dst = freshDestination(stopped);
        try {
          loadVm(dst, stopped.stream);
        } catch (e) {
          // Seed bug B: a pending TSR is not sent on rhel6.6.0 and the check refuses the load.
          expect(e).toBeInstanceOf(LoadError);
          expect([build, machine, (e as LoadError).key]).toEqual(['rhel-7.4', 'rhel6.6.0', 'tsr-not-empty']);
          return;
        }
        expect(saveVm(dst)).toEqual(stopped.stream);
      }),
      { seed: 0x5eed_10, numRuns: 300 },
    );
  });
});

// ---------------------------------------------------------------------------------------------

const interesting = fc.oneof(
  fc.integer({ min: 0, max: 255 }),
  fc.constantFrom(0x00, 0x01, 0x02, 0x04, 0x05, 0x0f, 0x10, 0x1f, 0x20, 0x40, 0x7e, 0x7f, 0x80, 0xfe, 0xff),
);

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('flip' as const), pos: fc.nat(), bit: fc.nat(7) }) },
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('set' as const), pos: fc.nat(), value: interesting }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('insert' as const),
      pos: fc.nat(),
      bytes: fc.array(interesting, { minLength: 1, maxLength: 8 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('delete' as const),
      pos: fc.nat(),
      len: fc.integer({ min: 1, max: 8 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), pos: fc.nat() }) },
);

/**
 * Loads on a fresh destination: a LoadError is fine (refused), anything else thrown fails the
 * property. `unsafe`: accepted, with a state the device would mishandle (named).
 */
function hostileLoad(
  stopped: Stopped,
  bytes: Uint8Array,
): { ok: boolean; unsafe: DeviceHazard[]; dst: Machine } {
  const dst = freshDestination(stopped);
  try {
    return { ok: true, unsafe: loadVm(dst, bytes), dst };
  } catch (e) {
    if (e instanceof LoadError) return { ok: false, unsafe: [], dst };
    throw e;
  }
}

/**
 * hostileLoad, then the invariants of a destination that loaded safely. Returns 'safe',
 * 'unsafe' (accepted, judged unsafe-load) or 'refused'.
 */
function hostileLoadChecked(stopped: Stopped, bytes: Uint8Array): 'safe' | 'unsafe' | 'refused' {
  const res = hostileLoad(stopped, bytes);
  if (!res.ok) return 'refused';
  if (res.unsafe.length > 0) {
    // Each names the QEMU function whose access or assert the state runs into.
    for (const h of res.unsafe) expect(h.message).toMatch(/fifo8_|serial_xmit|virtio_/);
    return 'unsafe';
  }
  expect(machineInvariants(res.dst)).toEqual([]);
  // The destination may migrate on (ping-pong): what it loaded, it can save.
  expect(saveVm(res.dst).length).toBeGreaterThan(0);
  return 'safe';
}

/** A schedule of these devices and steps (qemu-9.2 unless said), 2 ms long, port backends on both sides. */
function smallSchedule(
  devices: Record<string, unknown>,
  steps: Record<string, unknown>[],
  build = 'qemu-9.2',
  machine = 'pc-i440fx-9.2',
): Schedule {
  return validateSchedule(
    {
      format: 'migfuzz.schedule',
      version: 1,
      seed: 1,
      machine,
      src: { build, backends: { 'vser0.port1': 'socket' } },
      dst: { build, backends: { 'vser0.port1': 'socket' } },
      devices,
      steps,
      horizon: 2 * MS,
    },
    BUILDS,
  );
}

/** Offset of section `name`'s full-section record (its type byte) in a stream. */
function sectionAt(stream: Uint8Array, name: string): number {
  const bytes = [name.length, ...[...name].map((c) => c.charCodeAt(0))];
  for (let i = 0; i < stream.length; i++) if (bytes.every((b, j) => stream[i + j] === b)) return i - 5;
  throw new Error(`no section ${name}`);
}

/** An idle machine (virtio-serial only), stopped after boot, and the offset of its stream's
 * virtio-console INTA irq_state byte (after the PCIDevice's version_id and config space). */
function idleVser(irq: 'intx' | 'msix'): { stopped: Stopped; irqStateAt: number } {
  const s = smallSchedule({ vser0: { kind: 'virtio-serial', irq, ports: [{ id: 1 }] } }, [
    { at: 500 * US, do: 'guest.vport.open', dev: 'vser0', port: 1 },
  ]);
  const stopped = stopAt(s, 2 * MS);
  const name = '0000:00:04.0/virtio-console';
  // type, be32 section id, str8 name, be32 instance id, be32 version id, then the PCIDevice:
  // be32 version_id, 256 bytes of config space, be32 irq_state per pin (INTA's low byte).
  const irqStateAt = sectionAt(stopped.stream, name) + 5 + 1 + name.length + 4 + 4 + 4 + 256 + 3;
  expect(stopped.stream[irqStateAt]).toBe(0);
  return { stopped, irqStateAt };
}

describe('hostile streams: INTx state the bus does not back', () => {
  // irq_state = 1 with ISR = 0 and a PCIBUS count of 0 once drove the PIRQ count to -1 (a
  // model assert out of loadVm) instead of failing the load.
  it('an INTx irq_state of 1 that the PCIBUS count does not back fails with LoadError', () => {
    const { stopped, irqStateAt } = idleVser('intx');
    const bytes = stopped.stream.slice();
    bytes[irqStateAt] = 1;
    const dst = freshDestination(stopped);
    expect(() => loadVm(dst, bytes)).toThrow(LoadError);
  });

  // An MSI-X device's INTx level is not counted by any PIRQ: a stream saying it is high is refused.
  it('an MSI-X device whose stream says its INTx line is high is refused or left consistent', () => {
    const { stopped, irqStateAt } = idleVser('msix');
    const bytes = stopped.stream.slice();
    bytes[irqStateAt] = 1;
    const { ok, dst } = hostileLoad(stopped, bytes);
    expect(ok ? machineInvariants(dst) : []).toEqual([]);
  });

  it('the unmutated streams of those machines load', () => {
    for (const irq of ['intx', 'msix'] as const) {
      const { stopped } = idleVser(irq);
      expect(hostileLoad(stopped, stopped.stream).ok).toBe(true);
    }
  });
});

describe('hostile streams', () => {
  // Machines in varied states, from the schedule arbitrary (fixed seed).
  const bases: Stopped[] = fc
    .sample(stoppedArb, { seed: 0x5eed_0c, numRuns: 24 })
    .map(([s, at]) => stopAt(s, at));

  it('the bases load unmutated', () => {
    for (const b of bases) expect(hostileLoad(b, b.stream).ok).toBe(true);
  });

  it('mutated streams throw only LoadError; the ones that load keep every invariant or are unsafe', () => {
    const outcomes = { safe: 0, unsafe: 0, refused: 0 };
    fc.assert(
      fc.property(
        fc.nat(bases.length - 1),
        fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
        (i, muts) => {
          const base = bases[i]!;
          outcomes[hostileLoadChecked(base, mutate(base.stream, muts))]++;
        },
      ),
      { seed: 0x5eed_0d, numRuns: 12_000 },
    );
    // Many mutations land in field values and load: the invariant checks ran, and some
    // loaded states were judged unsafe.
    expect(outcomes.safe).toBeGreaterThan(600);
    expect(outcomes.unsafe).toBeGreaterThan(0);
  });

  // A whole run whose source is hostile: each migration's stream is mutated. The destination
  // refuses it (migration-failed), or runs it, or stops it as an unsafe load: never a model
  // assert (the model ran into a state it cannot execute) and never a hang.
  it('runs with tampered streams end judged, never in a model assert or a hang', () => {
    const ends = new Map<string, number>();
    fc.assert(
      fc.property(scheduleArb, fc.array(mutationArb, { minLength: 1, maxLength: 3 }), (s, muts) => {
        const v = judge(s, { builds: BUILDS, tamper: (stream) => mutate(stream, muts) });
        expect(v.findings.filter((f) => f.oracle === 'model-assert' || f.oracle === 'hang')).toEqual([]);
        ends.set(v.end, (ends.get(v.end) ?? 0) + 1);
      }),
      { seed: 0x5eed_11, numRuns: 400 },
    );
    expect(ends.get('horizon')).toBeGreaterThan(0);
    expect(ends.get('unsafe-load')).toBeGreaterThan(0);
  });

  it('truncated streams always fail with LoadError', () => {
    fc.assert(
      fc.property(fc.nat(bases.length - 1), fc.nat(), (i, cut) => {
        const base = bases[i]!;
        const n = cut % base.stream.length;
        const { ok } = hostileLoad(base, base.stream.slice(0, n));
        expect(ok).toBe(false);
      }),
      { seed: 0x5eed_0e, numRuns: 500 },
    );
  });

  it('random streams, bare or behind a valid header, throw only LoadError', () => {
    const header = bases[0]!.stream.slice(0, 4 + 4 + 1 + 4 + 'pc-i440fx-9.2'.length);
    expect(String.fromCharCode(...header.subarray(13))).toBe('pc-i440fx-9.2');
    fc.assert(
      fc.property(
        fc.nat(bases.length - 1),
        fc.boolean(),
        fc.uint8Array({ maxLength: 600 }),
        (i, withHeader, body) => {
          const bytes = withHeader ? Uint8Array.from([...header, ...body]) : body;
          hostileLoadChecked(bases[i]!, bytes);
        },
      ),
      { seed: 0x5eed_0f, numRuns: 1500 },
    );
  });
});

/**
 * States an honest source never saves, written by a doctored source: the destination must
 * refuse them with a LoadError (or settle them) instead of running into a broken invariant
 * later, once it runs or migrates again.
 */
describe('hostile streams: a doctored source', () => {
  /** A stopped source with a UART in FIFO mode and a virtio-serial port the guest opened. */
  const doctored = (build?: string, machine?: string): Stopped =>
    stopAt(
      smallSchedule(
        {
          uart0: { kind: 'isa-serial', irq: 4 },
          vser0: { kind: 'virtio-serial', irq: 'intx', ports: [{ id: 1 }] },
        },
        [
          { at: 500 * US, do: 'guest.uart.config', dev: 'uart0', fifo: true },
          { at: 500 * US, do: 'guest.vport.open', dev: 'vser0', port: 1 },
        ],
        build,
        machine,
      ),
      2 * MS,
    );
  const vserOf = (m: Machine) => {
    const d = m.devices[1]!;
    if (d.kind !== 'vser') throw new Error('device 1 is not virtio-serial');
    return d.s;
  };
  const loadError = (stopped: Stopped): LoadError => {
    try {
      loadVm(freshDestination(stopped), saveVm(stopped.src));
    } catch (e) {
      if (e instanceof LoadError) return e;
      throw e;
    }
    throw new Error('the load succeeded');
  };

  it('a popped element at offset -1 (int64 all ones) is out of range', () => {
    const stopped = doctored();
    vserOf(stopped.src).ports[0]!.elem = { id: 0, offset: -1 };
    expect(loadError(stopped).message).toMatch(/port 1: popped element out of range/);
  });

  it('a popped element that is not in flight (nothing popped from its queue)', () => {
    const stopped = doctored();
    vserOf(stopped.src).ports[0]!.elem = { id: 0, offset: 0 };
    const e = loadError(stopped);
    expect(e.message).toMatch(/port 1: popped element 0 is not in flight/);
    expect(e.key).toBe('elem');
  });

  const uartOf = (m: Machine) => {
    const d = m.devices[0]!;
    if (d.kind !== 'uart') throw new Error('device 0 is not a UART');
    expect(d.s.fcr & 1).toBe(1);
    return d.s;
  };
  /** Loads the doctored source's stream: accepted, with the hazards it carries. */
  const accepted = (stopped: Stopped): DeviceHazard[] =>
    loadVm(freshDestination(stopped), saveVm(stopped.src));

  // serial_post_load checks only tsr_retry against TEMT: QEMU loads this, and serial_xmit
  // later hits its assert once the watch has sent TSR.
  it('a TSR retry with THRE clear and an empty transmit FIFO loads, judged unsafe', () => {
    const stopped = doctored();
    const s = uartOf(stopped.src);
    s.lsr &= ~0x60; // THRE and TEMT clear: TSR and the FIFO said to hold bytes
    s.tsrRetry = 1;
    const [h] = accepted(stopped);
    expect(h?.key).toBe('xmit-fifo-empty');
    expect(h?.message).toMatch(/serial_xmit fails assert\(!fifo8_is_empty\(&s->xmit_fifo\)\)/);
  });

  // ../realqemu HOSTILE-STREAM: QEMU 7.2 loads every Fifo8 state (vmstate_fifo8 checks
  // nothing), then crashes in fifo8_pop, aborts in fifo8_push, or storms.
  it.each([
    [
      'recv_fifo {head 0x7ffffff0, num 16}: SIGSEGV in fifo8_pop',
      'recvFifo',
      0x7ffffff0,
      16,
      'recv-fifo-head',
      /fifo8_pop reads data\[head\] out of bounds at the next RBR read/,
    ],
    [
      'xmit_fifo {head 0x7ffffff0, num 16}: SIGSEGV in fifo8_pop',
      'xmitFifo',
      0x7ffffff0,
      16,
      'xmit-fifo-head',
      /fifo8_pop reads data\[head\] out of bounds at the next transmit/,
    ],
    [
      'xmit_fifo {head 0, num 17}: fifo8_push assert',
      'xmitFifo',
      0,
      17,
      'xmit-fifo-num',
      /fifo8_push's assert\(fifo->num < fifo->capacity\)/,
    ],
    [
      'recv_fifo {head 0, num 0xffffffff}: interrupt storm',
      'recvFifo',
      0,
      0xffffffff,
      'recv-fifo-num',
      /interrupt storm/,
    ],
  ] as const)('%s: loads, judged unsafe', (_name, fifo, head, num, key, message) => {
    const stopped = doctored();
    const s = uartOf(stopped.src);
    s[fifo].head = head;
    s[fifo].num = num;
    // LSR as the experiment set it: DR with received bytes, THRE clear with bytes to send.
    if (fifo === 'recvFifo') s.lsr |= 1;
    const hazards = accepted(stopped);
    expect(hazards.map((h) => h.key)).toEqual([key]);
    expect(hazards[0]!.message).toMatch(message);
  });

  it('the same FIFO state with the FIFOs disabled is safe (enabling them resets both)', () => {
    const stopped = doctored();
    const s = uartOf(stopped.src);
    s.xmitFifo.num = 17;
    s.fcr = 0;
    expect(accepted(stopped)).toEqual([]);
  });

  // virtio_load's "Guest index inconsistent with Host index": a failed load until QEMU 5.2
  // ("virtio: skip guest index check on device load"); since then the load goes on and
  // virtio_error leaves the device broken until reset.
  it('a last_avail_idx more than a ring ahead of the guest: refused by qemu-2.3, unsafe on qemu-9.2', () => {
    // The first queue the guest set up (the control receive queue).
    const q = 2;
    const skew = (stopped: Stopped): Stopped => {
      expect(stopped.src.rings(1).rings[q]).not.toBeNull();
      const vq = vserOf(stopped.src).queues[q]!;
      vq.lastAvailIdx = u16(vq.lastAvailIdx - 0x200);
      return stopped;
    };
    const old = loadError(skew(doctored('qemu-2.3', 'pc-i440fx-2.3')));
    expect([old.key, old.message]).toEqual([
      'queue-index',
      expect.stringMatching(/^virtio-serial: VQ 2 size 0x[0-9a-f]+ Guest index inconsistent with Host index/),
    ]);
    const hazards = accepted(skew(doctored()));
    expect(hazards.map((h) => [h.key, h.dev])).toEqual([['guest-index', 1]]);
    expect(hazards[0]!.message).toMatch(/virtio_error marks the device broken/);
  });

  it('a vm_clock past the longest run', () => {
    const stopped = doctored();
    stopped.src.clock.frozenNs = Number.MAX_SAFE_INTEGER;
    expect(loadError(stopped).message).toMatch(/^timer: field vmNs: value .* out of range/);
  });

  it('a LAPIC vector in service at rest', () => {
    const stopped = doctored();
    stopped.src.irq.lapic.isr[0xff] = 1;
    expect(loadError(stopped).key).toBe('apic-isr');
  });

  it('the ioapic section before PCIBUS: input levels come from the bus however the stream is ordered', () => {
    const stopped = doctored();
    const { src } = stopped;
    const vs = vserOf(src);
    vs.isr = 1;
    pciSetIrq(src.irq, src, 1, vs.pirq, 1);
    const gsi = PIRQ_ISA_IRQ[vs.pirq]!;
    expect(src.irq.ioapic.level[gsi]).toBe(1);
    const stream = saveVm(src);
    // Records are contiguous: PCIBUS, then ioapic, then serial. Swap the first two.
    const pci = sectionAt(stream, 'PCIBUS');
    const io = sectionAt(stream, 'ioapic');
    const end = sectionAt(stream, 'serial');
    const swapped = Uint8Array.from([
      ...stream.subarray(0, pci),
      ...stream.subarray(io, end),
      ...stream.subarray(pci, io),
      ...stream.subarray(end),
    ]);
    const m = freshDestination(stopped);
    loadVm(m, swapped);
    expect(m.irq.pci.pirqCount[vs.pirq]).toBe(1);
    expect(m.irq.ioapic.level[gsi]).toBe(1);
  });
});
