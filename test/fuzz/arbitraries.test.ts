import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildPairs, MS, SERIAL, sampleOne, scheduleArb, VSER } from '../../src/fuzz/arbitraries.js';
import { BUILTIN_BUILDS, builtinRegistry } from '../../src/model/migration/builds.js';
import { validateSchedule } from '../../src/model/schedule/validate.js';

/**
 * Schedule generation (src/fuzz/arbitraries.ts): every generated document is a valid
 * schedule, build pairs share a machine type, and generation is a function of the seed.
 */

const builds = builtinRegistry();
const ALL = BUILTIN_BUILDS.map((b) => b.name);
const machinesOf = (name: string): string[] => builds.get(name)!.machines.map((m) => m.name);

type Doc = {
  machine: string;
  src: { build: string; backends: Record<string, string> };
  dst: { build: string; backends: Record<string, string> };
  devices: Record<string, { kind: string; ports?: { id: number }[] }>;
  steps: ({ at: number; do: string } & Record<string, unknown>)[];
  horizon: number;
};

describe('buildPairs', () => {
  it('lists exactly the (src, dst) pairs of allowed builds with a common machine type, and those types', () => {
    const pairs = buildPairs(builds, ALL);
    expect(pairs.length).toBeGreaterThan(0);
    for (const src of ALL) {
      for (const dst of ALL) {
        const common = machinesOf(src).filter((m) => machinesOf(dst).includes(m));
        const pair = pairs.find((p) => p.src === src && p.dst === dst);
        if (common.length === 0) expect(pair, `${src}→${dst}`).toBeUndefined();
        else expect(pair?.machines, `${src}→${dst}`).toEqual(common);
      }
    }
    // Each build migrates to itself.
    for (const b of ALL) expect(pairs.some((p) => p.src === b && p.dst === b)).toBe(true);
  });

  it('only uses the allowed builds and ignores unknown names', () => {
    const pairs = buildPairs(builds, ['qemu-1.2', 'no-such-build', 'rhel-7.4']);
    for (const p of pairs) {
      expect(['qemu-1.2', 'rhel-7.4']).toContain(p.src);
      expect(['qemu-1.2', 'rhel-7.4']).toContain(p.dst);
      for (const m of p.machines) {
        expect(machinesOf(p.src)).toContain(m);
        expect(machinesOf(p.dst)).toContain(m);
      }
    }
    expect(buildPairs(builds, ['no-such-build'])).toEqual([]);
    expect(() => scheduleArb(builds, ['no-such-build'])).toThrow(/share a machine type/);
  });
});

describe('scheduleArb', () => {
  it('every generated schedule validates and is well formed (fixed seeds)', () => {
    for (const allowed of [ALL, ['qemu-1.2', 'qemu-1.3'], ['rhel-7.4', 'rhel-7.5'], ['qemu-9.2']]) {
      const pairs = buildPairs(builds, allowed);
      fc.assert(
        fc.property(scheduleArb(builds, allowed), (raw) => {
          const doc = raw as Doc;
          const s = validateSchedule(doc, builds);
          expect(s.steps.length).toBe(doc.steps.length);
          // A pair the builds allow, on a machine type both offer.
          const pair = pairs.find((p) => p.src === doc.src.build && p.dst === doc.dst.build);
          expect(pair?.machines).toContain(doc.machine);
          // Sorted steps, each on a declared device and port, a migration among them.
          for (let i = 1; i < doc.steps.length; i++)
            expect(doc.steps[i]!.at).toBeGreaterThanOrEqual(doc.steps[i - 1]!.at);
          expect(doc.steps.some((st) => st.do === 'migrate')).toBe(true);
          for (const st of doc.steps) {
            expect(st.at).toBeGreaterThanOrEqual(0);
            if (typeof st.dev !== 'string') continue;
            expect([SERIAL, VSER]).toContain(st.dev);
            const dev = doc.devices[st.dev]!;
            expect(dev).toBeDefined();
            if (typeof st.port === 'number') expect(dev.ports!.map((p) => p.id)).toContain(st.port);
          }
          // The run lasts past the last step, so its effects are judged.
          expect(doc.horizon).toBeGreaterThanOrEqual(doc.steps.at(-1)!.at + 25 * MS);
        }),
        { seed: 42 + allowed.length, numRuns: 300 },
      );
    }
  });

  it('generates both devices, both irq modes and several build pairs', () => {
    const docs = fc.sample(scheduleArb(builds, ALL), { seed: 5, numRuns: 400 }) as Doc[];
    const has = (p: (d: Doc) => boolean): boolean => docs.some(p);
    expect(has((d) => SERIAL in d.devices && !(VSER in d.devices))).toBe(true);
    expect(has((d) => VSER in d.devices && !(SERIAL in d.devices))).toBe(true);
    expect(has((d) => SERIAL in d.devices && VSER in d.devices)).toBe(true);
    const irqs = new Set(docs.map((d) => (d.devices[VSER] as { irq?: string } | undefined)?.irq));
    expect(irqs).toEqual(new Set([undefined, 'intx', 'msix']));
    expect(new Set(docs.map((d) => `${d.src.build}→${d.dst.build}`)).size).toBeGreaterThan(10);
    expect(has((d) => d.src.build !== d.dst.build)).toBe(true);
  });

  it('generates line settings, data past a socket buffer, writes inside the throttle window, console ports', () => {
    const docs = fc.sample(scheduleArb(builds, ALL), { seed: 6, numRuns: 600 }) as Doc[];
    const steps = docs.flatMap((d) => d.steps);
    const configs = steps.filter((s) => s.do === 'guest.uart.config');
    expect(configs.some((s) => typeof s.lcr === 'number' && s.lcr !== 0x03)).toBe(true);
    expect(new Set(configs.map((s) => s.divider).filter((x) => x !== undefined)).size).toBeGreaterThan(3);
    // SOCKET_BUF: a guest write longer than a socket backend's buffer throttles the port.
    const portWrites = steps.filter((s) => s.do === 'guest.vport.write');
    expect(portWrites.some((s) => (s.data as string).length > 256)).toBe(true);
    // The same write again within SOCKET_DRAIN_NS (100 us): the socket has not drained yet.
    const burst = (d: Doc): boolean =>
      d.steps.some((a, i) =>
        d.steps.some(
          (b, j) =>
            j > i &&
            b.do === 'guest.vport.write' &&
            a.do === b.do &&
            a.port === b.port &&
            b.at - a.at < 100_000,
        ),
      );
    expect(docs.filter(burst).length).toBeGreaterThan(5);
    expect(
      docs.some((d) =>
        (d.devices[VSER]?.ports as { console?: boolean }[] | undefined)?.some((p) => p.console),
      ),
    ).toBe(true);
    // Ports opened right after boot, by most generated guests.
    const opened = docs.filter(
      (d) => VSER in d.devices && d.steps.some((s) => s.do === 'guest.vport.open' && s.at === 100_000),
    );
    expect(opened.length).toBeGreaterThan(docs.filter((d) => VSER in d.devices).length / 2);
  });

  it('is deterministic for a seed, and different seeds give different schedules', () => {
    const sample = (seed: number): unknown[] => fc.sample(scheduleArb(builds, ALL), { seed, numRuns: 50 });
    expect(sample(7)).toEqual(sample(7));
    expect(JSON.stringify(sample(7))).toBe(JSON.stringify(sample(7)));
    expect(sample(8)).not.toEqual(sample(7));
  });

  it('sampleOne draws what fc.sample draws for the same seed (campaigns generate with it)', () => {
    const arb = scheduleArb(builds, ALL);
    for (const seed of [0, 1, 7, 12345, 0x7ffffffe, 987654321]) {
      expect(JSON.stringify(sampleOne(arb, seed))).toBe(
        JSON.stringify(fc.sample(arb, { seed, numRuns: 1 })[0]),
      );
    }
    expect(sampleOne(fc.integer(), 3)).toBe(fc.sample(fc.integer(), { seed: 3, numRuns: 1 })[0]);
  });
});
