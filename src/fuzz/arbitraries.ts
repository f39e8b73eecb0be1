import fc from 'fast-check';
import { xorshift128plus } from 'pure-rand/generator/xorshift128plus';
import type { BuildRegistry } from '../model/migration/builds.js';

/**
 * Schedule generation (fast-check arbitraries). A generated schedule is the JSON document a
 * user would write (docs/schedule.md); the validator normalises it like any input. Choices
 * are biased toward what finds migration bugs: build pairs with a common machine type, data
 * lengths around FIFO sizes and trigger levels, and step times clustered just before and
 * after each migration.
 */

export interface BuildPair {
  readonly src: string;
  readonly dst: string;
  readonly machines: readonly string[];
}

/** buildPairs' answers per registry and list of builds: mutators ask at every mutation. */
const pairsMemo = new WeakMap<BuildRegistry, Map<string, readonly BuildPair[]>>();

/** Every (source, destination) pair of the allowed builds with a machine type both offer. */
export function buildPairs(builds: BuildRegistry, allowed: readonly string[]): readonly BuildPair[] {
  let memo = pairsMemo.get(builds);
  if (memo === undefined) {
    memo = new Map();
    pairsMemo.set(builds, memo);
  }
  const key = allowed.join('\u0000');
  let pairs = memo.get(key);
  if (pairs === undefined) {
    pairs = listPairs(builds, allowed);
    memo.set(key, pairs);
  }
  return pairs;
}

function listPairs(builds: BuildRegistry, allowed: readonly string[]): readonly BuildPair[] {
  const pairs: BuildPair[] = [];
  for (const src of allowed) {
    for (const dst of allowed) {
      const a = builds.get(src);
      const b = builds.get(dst);
      if (!a || !b) continue;
      const machines = a.machines.map((m) => m.name).filter((n) => b.machines.some((m) => m.name === n));
      if (machines.length > 0) pairs.push(Object.freeze({ src, dst, machines: Object.freeze(machines) }));
    }
  }
  return Object.freeze(pairs);
}

export const SERIAL = 'serial0';
export const VSER = 'vser0';
export const MS = 1_000_000;

/** Lengths at and around FIFO sizes and trigger levels. */
const LENGTHS = [1, 2, 3, 4, 5, 7, 8, 9, 13, 14, 15, 16, 17, 24, 31, 32, 33, 64, 65, 200];
/**
 * A port's lengths add the sizes around a guest buffer (PORT_BUF_SIZE, 64 bytes) and a
 * socket backend's buffer (SOCKET_BUF, 256): past it the port throttles with an element
 * popped, half-written when earlier bytes were still buffered.
 */
const PORT_LENGTHS = [...LENGTHS, 63, 100, 128, 255, 256, 257, 300, 520];
/** Printable ASCII, kept as a string: a queued document stays small (a byte per byte). */
const dataOf = (lengths: readonly number[]): fc.Arbitrary<string> =>
  fc
    .constantFrom(...lengths)
    .chain((n) => fc.array(fc.integer({ min: 0x20, max: 0x7e }), { minLength: n, maxLength: n }))
    .map((bytes) => String.fromCharCode(...bytes));
const dataArb = dataOf(LENGTHS);
const portDataArb = dataOf(PORT_LENGTHS);
/** Line controls: 5-8 data bits, 2 stop bits, parity, break (bit 6). */
const LCRS = [0x00, 0x03, 0x07, 0x0b, 0x1b, 0x3b, 0x43];
/** Divisors of 115200 baud: the fastest, 9600 (the reset value, 12), 1200, 300, the slowest. */
const DIVIDERS = [1, 2, 12, 96, 384, 0xffff];
/**
 * A data step may repeat: copies this far apart land inside a socket backend's drain period
 * (SOCKET_DRAIN_NS, 100 µs) or a slow backend's writability wait (SLOW_WATCH_NS, 50 µs), so
 * the backend is still full when the next one comes.
 */
const REPEATS = [1, 1, 1, 1, 2, 3, 5];
const REPEAT_GAPS = [1000, 10_000, 40_000, 90_000];

interface Shape {
  pair: BuildPair;
  machine: string;
  serial: boolean;
  /** The guest opens the UART at boot (else at its first guest.uart step). */
  serialOpen: boolean;
  /**
   * `console`: the first port is a virtconsole port. `openAtBoot`: a guest application opens
   * every port right after boot (a port nobody opens moves no guest data).
   */
  vser: { irq: 'intx' | 'msix'; ports: number[]; console: boolean; openAtBoot: boolean } | null;
}

const shapeArb = (pairs: readonly BuildPair[]): fc.Arbitrary<Shape> =>
  fc
    .record({
      pair: fc.constantFrom(...pairs),
      serial: fc.boolean(),
      vser: fc.option(
        fc.record({
          irq: fc.constantFrom<'intx' | 'msix'>('intx', 'intx', 'intx', 'msix'),
          ports: fc.subarray([1, 2, 3], { minLength: 1 }),
          console: fc.constantFrom(false, false, false, true),
          openAtBoot: fc.constantFrom(true, true, true, false),
        }),
        { freq: 4 },
      ),
      machineIndex: fc.nat(),
      serialOpen: fc.constantFrom(true, true, true, false),
    })
    .map(({ pair, serial, vser, machineIndex, serialOpen }) => ({
      pair,
      machine: pair.machines[machineIndex % pair.machines.length]!,
      serial: serial || vser === null,
      serialOpen,
      vser,
    }));

type StepBody = Record<string, unknown> & { do: string };

function stepBodies(shape: Shape): fc.Arbitrary<StepBody>[] {
  const out: fc.Arbitrary<StepBody>[] = [
    fc.constant({ do: 'migrate' }),
    fc.record({
      do: fc.constant('migrate'),
      downtime: fc.constantFrom(0, 1000, 50_000, 2 * MS),
      autostart: fc.boolean(),
    }),
    fc.constantFrom<StepBody>({ do: 'vm.stop' }, { do: 'vm.cont' }),
  ];
  if (shape.serial) {
    const dev = SERIAL;
    out.push(
      fc.record({
        do: fc.constant('guest.uart.config'),
        dev: fc.constant(dev),
        fifo: fc.boolean(),
        trigger: fc.constantFrom(1, 4, 8, 14),
        ier: fc.constantFrom(0, 1, 3, 5, 7, 15),
      }),
      fc.record(
        {
          do: fc.constant('guest.uart.config'),
          dev: fc.constant(dev),
          lcr: fc.constantFrom(...LCRS),
          divider: fc.constantFrom(...DIVIDERS),
        },
        { requiredKeys: ['do', 'dev'] },
      ),
      fc.record({ do: fc.constant('guest.uart.write'), dev: fc.constant(dev), data: dataArb }),
      fc.record({ do: fc.constant('guest.uart.write'), dev: fc.constant(dev), data: dataArb }),
      fc.record({ do: fc.constant('host.uart.send'), dev: fc.constant(dev), data: dataArb }),
      fc.record({ do: fc.constant('host.uart.send'), dev: fc.constant(dev), data: dataArb }),
      fc.record({
        do: fc.constant('host.uart.backend'),
        dev: fc.constant(dev),
        state: fc.constantFrom('open', 'hung-up', 'closed', 'slow'),
      }),
      fc.record({ do: fc.constantFrom('guest.irq.mask', 'guest.irq.unmask'), dev: fc.constant(dev) }),
    );
  }
  if (shape.vser) {
    const dev = VSER;
    const port = fc.constantFrom(...shape.vser.ports);
    out.push(
      fc.record({
        do: fc.constantFrom('guest.vport.open', 'guest.vport.open', 'guest.vport.close'),
        dev: fc.constant(dev),
        port,
      }),
      fc.record({ do: fc.constant('guest.vport.write'), dev: fc.constant(dev), port, data: portDataArb }),
      fc.record({ do: fc.constant('guest.vport.write'), dev: fc.constant(dev), port, data: portDataArb }),
      fc.record({ do: fc.constant('host.vport.send'), dev: fc.constant(dev), port, data: portDataArb }),
      fc.record({
        do: fc.constantFrom('host.vport.connect', 'host.vport.disconnect'),
        dev: fc.constant(dev),
        port,
      }),
      fc.record({ do: fc.constantFrom('guest.irq.mask', 'guest.irq.unmask'), dev: fc.constant(dev) }),
    );
  }
  return out;
}

/** When ports opened at boot are opened: after the guest driver's probe. */
const OPEN_AT = 100_000;

/** Offsets from a migration where bugs live: just before, during the downtime, just after. */
const NEAR = [-5 * MS, -MS, -100_000, -10_000, -1000, 0, 1, 1000, 2000, 3000, 310_000, 400_000, MS, 5 * MS];

function backendsArb(shape: Shape): fc.Arbitrary<Record<string, string>> {
  const parts: Record<string, fc.Arbitrary<string>> = {};
  if (shape.serial) parts[SERIAL] = fc.constantFrom('open', 'open', 'hung-up', 'slow', 'closed');
  for (const p of shape.vser?.ports ?? [])
    parts[`${VSER}.port${p}`] = fc.constantFrom('socket-server', 'socket-client');
  return fc.record(parts);
}

/** The draws of one schedule on a shape's devices (steps as [body, anchor, near, uniform, repeats, gap]). */
interface Draws {
  seed: number;
  srcBackends: Record<string, string>;
  dstBackends: Record<string, string>;
  migrateAt: number[];
  steps: [StepBody, number, number, number, number, number][];
}

function drawsArb(shape: Shape): fc.Arbitrary<Draws> {
  return fc.record({
    seed: fc.nat({ max: 0xffff }),
    srcBackends: backendsArb(shape),
    dstBackends: backendsArb(shape),
    migrateAt: fc.array(fc.integer({ min: 2, max: 40 }), { minLength: 1, maxLength: 3 }),
    steps: fc.array(
      fc.tuple(
        fc.oneof(...stepBodies(shape)),
        fc.nat(),
        fc.constantFrom(...NEAR),
        fc.integer({ min: 0, max: 45 * MS }),
        fc.constantFrom(...REPEATS),
        fc.constantFrom(...REPEAT_GAPS),
      ),
      { minLength: 1, maxLength: 16 },
    ),
  });
}

/** A whole schedule document for the allowed builds. */
export function scheduleArb(builds: BuildRegistry, allowed: readonly string[]): fc.Arbitrary<object> {
  const pairs = buildPairs(builds, allowed);
  if (pairs.length === 0) throw new Error('no two allowed builds share a machine type');
  /**
   * drawsArb per set of devices (the UART or not, the ports): it depends on nothing else, and
   * building it for every schedule cost more than drawing from it.
   */
  const draws = new Map<string, fc.Arbitrary<Draws>>();
  return shapeArb(pairs).chain((shape) => {
    const key = `${shape.serial} ${shape.vser?.ports.join(',') ?? '-'}`;
    let arb = draws.get(key);
    if (arb === undefined) {
      arb = drawsArb(shape);
      draws.set(key, arb);
    }
    return arb.map((g) => {
      const migrations = [...new Set(g.migrateAt)].sort((a, b) => a - b).map((ms) => ms * MS);
      const steps: StepBody[] = migrations.map((at) => ({ at, do: 'migrate' }));
      if (shape.vser?.openAtBoot)
        for (const port of shape.vser.ports)
          steps.push({ at: OPEN_AT, do: 'guest.vport.open', dev: VSER, port });
      for (const [body, anchor, near, uniform, repeats, gap] of g.steps) {
        // Half the steps cluster around a migration, half anywhere.
        const at = anchor % 2 === 0 ? migrations[(anchor >> 1) % migrations.length]! + near : uniform;
        const copies = 'data' in body ? repeats : 1;
        for (let k = 0; k < copies; k++) steps.push({ ...body, at: Math.max(0, at + k * gap) });
      }
      steps.sort((a, b) => (a.at as number) - (b.at as number));
      const last = steps.length > 0 ? (steps[steps.length - 1]!.at as number) : 0;
      return document(shape, g.seed, g.srcBackends, g.dstBackends, steps, last + 25 * MS);
    });
  });
}

function document(
  shape: Shape,
  seed: number,
  srcBackends: Record<string, string>,
  dstBackends: Record<string, string>,
  steps: StepBody[],
  horizon: number,
): object {
  const devices: Record<string, object> = {};
  if (shape.serial)
    devices[SERIAL] = { kind: 'isa-serial', irq: 4, ...(shape.serialOpen ? {} : { guestOpen: false }) };
  if (shape.vser)
    devices[VSER] = {
      kind: 'virtio-serial',
      irq: shape.vser.irq,
      ports: shape.vser.ports.map((id, i) =>
        i === 0 && shape.vser?.console ? { id, console: true } : { id },
      ),
    };
  return {
    format: 'migfuzz.schedule',
    version: 1,
    seed,
    machine: shape.machine,
    src: { build: shape.pair.src, backends: srcBackends },
    dst: { build: shape.pair.dst, backends: dstBackends },
    devices,
    steps,
    horizon,
  };
}

/** fast-check's bias frequency for run 0 (runIdToFrequency(0)). */
const FIRST_RUN_BIAS = 2;

/**
 * What `fc.sample(arb, { seed, numRuns: 1 })[0]` draws (the same value), without the runner's
 * setup on every call: a campaign generates a schedule for every fifth execution or more.
 * fast-check's sampler draws from its default generator (xorshift128plus) on the seed, jumped
 * once, at bias frequency 2 (its first run).
 */
export function sampleOne<T>(arb: fc.Arbitrary<T>, seed: number): T {
  const rng = xorshift128plus(seed);
  rng.jump();
  return arb.generate(new fc.Random(rng), FIRST_RUN_BIAS).value;
}
