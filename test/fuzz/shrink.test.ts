import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { Campaign } from '../../src/fuzz/campaign.js';
import { shrink } from '../../src/fuzz/shrink.js';
import { BUILTIN_BUILDS, builtinRegistry } from '../../src/model/migration/builds.js';
import { scheduleToJson } from '../../src/model/schedule/to-json.js';
import type { Schedule } from '../../src/model/schedule/types.js';
import { parseSchedule, validateSchedule } from '../../src/model/schedule/validate.js';
import { judge } from '../../src/oracles/verdict.js';

/**
 * Shrinking (src/fuzz/shrink.ts): the result keeps the signature and is 1-minimal; each seed
 * bug shrinks to a handful of steps from what a campaign first finds.
 */

/** Every schedule the shrinker runs, as JSON (the real judgeSafely still runs it). */
const ran = vi.hoisted(() => [] as string[]);
vi.mock('../../src/fuzz/execute.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/fuzz/execute.js')>();
  return {
    ...real,
    judgeSafely: (...args: Parameters<typeof real.judgeSafely>) => {
      ran.push(JSON.stringify(scheduleToJson(args[0])));
      return real.judgeSafely(...args);
    },
  };
});

const builds = builtinRegistry();
const ALL = BUILTIN_BUILDS.map((b) => b.name);
const BUG_A = 'stuck-irq-line:vser0:remote-irr';
const BUG_B = 'migration-failed:serial0:tsr-not-empty';

const shows = (s: Schedule, signature: string): boolean =>
  judge(s, { builds }).findings.some((f) => f.signature === signature);

/** The schedule without step i. */
function without(s: Schedule, i: number): Schedule {
  const doc = scheduleToJson(s) as { steps: unknown[] };
  return validateSchedule({ ...doc, steps: doc.steps.filter((_, j) => j !== i) }, builds);
}

function expectOneMinimal(s: Schedule, signature: string): void {
  expect(shows(s, signature)).toBe(true);
  for (let i = 0; i < s.steps.length; i++)
    expect(shows(without(s, i), signature), `step ${i} (${s.steps[i]!.do}) can go`).toBe(false);
}

/** What a campaign (no corpus) first finds for each seed bug. */
function firstFinds(seed: number): Map<string, Schedule> {
  const c = new Campaign({ seed, builds, allowed: ALL });
  while (c.execs < 3000 && !(c.findings.has(BUG_A) && c.findings.has(BUG_B))) c.step();
  return new Map([BUG_A, BUG_B].map((sig) => [sig, c.findings.get(sig)!.schedule]));
}

describe('shrink', () => {
  describe.each([1, 2, 3])('from campaign seed %i', (seed) => {
    let found: Map<string, Schedule>;
    beforeAll(() => {
      found = firstFinds(seed);
    });
    it.each([
      [BUG_A, 6],
      [BUG_B, 8],
    ])('%s shrinks to at most %i steps, keeps the signature and is 1-minimal', (sig, maxSteps) => {
      const start = found.get(sig)!;
      expect(start).toBeDefined();
      const r = shrink(start, sig, builds);
      expect(r.stepsBefore).toBe(start.steps.length);
      expect(r.stepsAfter).toBe(r.schedule.steps.length);
      expect(r.stepsAfter).toBeLessThanOrEqual(Math.min(maxSteps, r.stepsBefore));
      expect(r.tries).toBeGreaterThan(0);
      expectOneMinimal(r.schedule, sig);
      // Same builds: the bug is the pair's.
      expect(r.schedule.src.build).toBe(start.src.build);
      expect(r.schedule.dst.build).toBe(start.dst.build);
    });
  });

  const seedFile = (n: string): Schedule =>
    parseSchedule(readFileSync(new URL(`../../corpus/seeds/${n}.json`, import.meta.url), 'utf8'), builds);

  it('shrinks the hand-written seed bugs too, deterministically', () => {
    const a = shrink(seedFile('bug-a-virtio-serial'), BUG_A, builds);
    expect(a.stepsAfter).toBe(1);
    expectOneMinimal(a.schedule, BUG_A);
    const b = shrink(seedFile('bug-b-serial'), BUG_B, builds);
    expect(b.stepsAfter).toBeLessThanOrEqual(2);
    expectOneMinimal(b.schedule, BUG_B);
    expect(scheduleToJson(shrink(seedFile('bug-b-serial'), BUG_B, builds).schedule)).toEqual(
      scheduleToJson(b.schedule),
    );
  });

  it('simplifies more than steps: data, unused devices and backends, the seed, the horizon', () => {
    const start = seedFile('bug-b-serial');
    const r = shrink(start, BUG_B, builds);
    const doc = scheduleToJson(r.schedule) as {
      seed: number;
      horizon: number;
      steps: { data?: unknown }[];
    };
    expect(doc.seed).toBe(0);
    expect(doc.horizon).toBeLessThan(start.horizon);
    for (const s of doc.steps) if (typeof s.data === 'string') expect(s.data.length).toBeLessThanOrEqual(1);
    expect(r.schedule.steps.length).toBeLessThan(start.steps.length);
  });

  it('runs no candidate twice (runs are deterministic: a lost signature stays lost)', () => {
    for (const seed of [1, 2]) {
      for (const [sig, start] of firstFinds(seed)) {
        ran.length = 0;
        const r = shrink(start, sig, builds);
        expect(ran.length).toBe(r.tries);
        expect(new Set(ran).size, `${sig} from seed ${seed}`).toBe(ran.length);
      }
    }
  });

  it('stops at maxTries or maxEvents, and says it may not be minimal', () => {
    const r = shrink(seedFile('bug-b-serial'), BUG_B, builds, { maxTries: 2 });
    expect(r.tries).toBe(2);
    expect(r.minimal).toBe(false);
    expect(shows(r.schedule, BUG_B)).toBe(true);
    // The first candidate run uses up the event allowance: no second one.
    const e = shrink(seedFile('bug-b-serial'), BUG_B, builds, { maxEvents: 1 });
    expect(e.tries).toBe(1);
    expect(e.minimal).toBe(false);
    expect(shrink(seedFile('bug-b-serial'), BUG_B, builds).minimal).toBe(true);
  });
});
