import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Campaign, type CampaignConfig, type CoveredEntry } from '../../src/fuzz/campaign.js';
import { BUILTIN_BUILDS, builtinRegistry } from '../../src/model/migration/builds.js';
import { scheduleToJson } from '../../src/model/schedule/to-json.js';
import { parseSchedule } from '../../src/model/schedule/validate.js';

/**
 * The coverage-guided loop (src/fuzz/campaign.ts): a function of its seed, and able to find
 * both seed bugs from nothing.
 */

const builds = builtinRegistry();
const ALL = BUILTIN_BUILDS.map((b) => b.name);
const BUG_A = 'stuck-irq-line:vser0:remote-irr';
const BUG_B = 'migration-failed:serial0:tsr-not-empty';

/** A seed schedule of corpus/seeds/, and the same as a queue document. */
const seedSchedule = (name: string) =>
  parseSchedule(readFileSync(new URL(`../../corpus/seeds/${name}.json`, import.meta.url), 'utf8'), builds);
const seedDoc = (name: string) => scheduleToJson(seedSchedule(name)) as never;

const campaign = (seed: number, extra: Partial<CampaignConfig> = {}): Campaign =>
  new Campaign({ seed, builds, allowed: ALL, ...extra });

/** Everything observable about a campaign after `execs` executions, as plain data. */
function trail(seed: number, execs: number): { steps: unknown[]; queue: unknown[]; findings: unknown[] } {
  const c = campaign(seed);
  const steps: unknown[] = [];
  for (let i = 0; i < execs; i++) {
    const r = c.step();
    steps.push([r.events, r.newEntry?.id ?? null, r.newFindings.map((f) => f.signature)]);
  }
  return {
    steps,
    queue: c.queue.map((e) => ({ ...e })),
    findings: [...c.findings.values()].map((f) => ({ ...f, schedule: scheduleToJson(f.schedule) })),
  };
}

describe('Campaign', () => {
  it('the same seed gives the same executions, findings and queue (300 executions)', () => {
    const a = trail(7, 300);
    const b = trail(7, 300);
    expect(a.queue.length).toBeGreaterThan(10);
    expect(a.findings.length).toBeGreaterThan(0);
    expect(b.steps).toEqual(a.steps);
    expect(b.queue).toEqual(a.queue);
    expect(b.findings).toEqual(a.findings);
  });

  it('different seeds give different campaigns', () => {
    const a = trail(7, 300);
    const b = trail(8, 300);
    expect(b.queue).not.toEqual(a.queue);
    expect(b.steps).not.toEqual(a.steps);
  });

  it.each([1, 2, 3])('seed %i finds both seed bugs from no corpus within 3000 executions', (seed) => {
    const c = campaign(seed);
    while (c.execs < 3000 && !(c.findings.has(BUG_A) && c.findings.has(BUG_B))) c.step();
    expect(c.findings.has(BUG_A), `bug A after ${c.execs}`).toBe(true);
    expect(c.findings.has(BUG_B), `bug B after ${c.execs}`).toBe(true);
    for (const sig of [BUG_A, BUG_B]) {
      const f = c.findings.get(sig)!;
      expect(f.firstExec).toBeGreaterThanOrEqual(1);
      expect(f.firstExec).toBeLessThanOrEqual(c.execs);
      expect(f.signature).toBe(sig);
    }
    expect(c.findings.get(BUG_B)!.oracle).toBe('migration-failed');
    // Generated and mutated inputs are (nearly) all valid schedules.
    expect(c.invalid).toBeLessThan(c.execs / 10);
  });

  it('with coverage off (fuzz --no-coverage): every input is a parent, none is new, nothing is covered', () => {
    const run = (seed: number) => {
      const c = campaign(seed, { coverage: false, maxQueue: 64 });
      const reported: unknown[] = [];
      for (let i = 0; i < 300; i++) reported.push(c.step().newEntry);
      return { c, reported };
    };
    const { c, reported } = run(4);
    expect(reported.every((e) => e === null)).toBe(true);
    expect(c.virgin.covered).toBe(0);
    // Bounded by maxQueue; mutants of earlier inputs were run.
    expect(c.queue.length).toBe(64);
    const mutated = Object.entries(c.mutatorStats.tried).filter(([op]) => op !== 'fresh');
    expect(mutated.reduce((n, [, k]) => n + k, 0)).toBeGreaterThan(100);
    // Still a function of the seed.
    expect(run(4).c.queue.map((e) => e.doc)).toEqual(c.queue.map((e) => e.doc));
    // Findings are still bucketed as with coverage.
    expect(c.findings.size).toBeGreaterThan(0);
  });

  it('runs its initial inputs first, keeping all of them in the queue', () => {
    const initial = [seedSchedule('bug-b-serial'), seedSchedule('uart-echo')];
    const c = campaign(1, { initial });
    const first = c.step();
    expect(first.newEntry).toMatchObject({ id: 0, op: 'initial', exec: 1 });
    expect(first.newFindings.map((f) => f.signature)).toEqual([BUG_B]);
    expect(first.newFindings[0]).toMatchObject({ firstExec: 1, count: 1, builds: 'rhel-7.4→rhel-7.4' });
    expect(c.step().newEntry).toMatchObject({ id: 1, op: 'initial' });
    expect(c.queue.map((e) => e.doc)).toEqual(initial.map(scheduleToJson));
    // A finding seen again is counted, not reported as new.
    const again = campaign(2, { initial: [initial[0]!, initial[0]!] });
    again.step();
    expect(again.step().newFindings).toEqual([]);
    expect(again.findings.get(BUG_B)!.count).toBe(2);
  });

  it('importEntry runs the input before new work, keeping it only if it reaches new coverage', () => {
    const doc = seedDoc('uart-echo');
    const c = campaign(4);
    c.importEntry(doc);
    expect(c.execs).toBe(0);
    const first = c.step();
    expect(c.execs).toBe(1);
    expect(first.newEntry).toMatchObject({ id: 0, doc, op: 'imported', exec: 1, cost: first.events });
    expect(first.newEntry!.newBuckets).toBeGreaterThan(0);
    // The same input again adds nothing: it is run, and not queued.
    c.importEntry(doc);
    expect(c.step()).toMatchObject({ newEntry: null });
    expect(c.queue).toHaveLength(1);
    // A young queue is mostly fresh generation; then its entries are mutated.
    for (let i = 0; i < 1000; i++) c.step();
    const ops = new Set(Object.keys(c.mutatorStats.tried));
    expect(ops.has('fresh')).toBe(true);
    expect([...ops].some((op) => op !== 'fresh' && op !== 'imported')).toBe(true);
    const tried = Object.values(c.mutatorStats.tried).reduce((a, b) => a + b, 0);
    expect(tried).toBe(1002);
  });

  it("importCovered merges another worker's entries as running them would, without an execution", () => {
    // Another worker's first 300 executions, and the entries they queued with their coverage.
    const other = campaign(11);
    const found: CoveredEntry[] = [];
    for (let i = 0; i < 300; i++) {
      const r = other.step();
      if (r.newEntry) {
        const { doc, cost, reached } = r.newEntry;
        found.push({ doc, cost, reached, buckets: r.newEntryBuckets! });
      }
    }
    expect(found.length).toBeGreaterThan(20);
    // Two campaigns that ran 100 executions of their own take them in: one runs each, one merges.
    const ran = campaign(12);
    const merged = campaign(12);
    for (let i = 0; i < 100; i++) {
      ran.step();
      merged.step();
    }
    for (const e of found) ran.importEntry(e.doc);
    for (let i = 0; i < found.length; i++) ran.step();
    for (const e of found) merged.importCovered(e);
    expect(merged.execs).toBe(100);
    expect(merged.virgin.bits).toEqual(ran.virgin.bits);
    expect(merged.virgin.covered).toBe(ran.virgin.covered);
    const summary = (c: Campaign) => c.queue.map((e) => [e.op, e.cost, e.newBuckets, [...e.reached]]);
    expect(summary(merged)).toEqual(summary(ran));
    // Reached only what is known: nothing joins.
    const before = merged.queue.length;
    merged.importCovered(found[0]!);
    expect(merged.queue).toHaveLength(before);
  });

  it('rates entries by cost: the favoured ones are the cheapest to reach each map index', () => {
    const c = campaign(5);
    for (let i = 0; i < 2000; i++) c.step();
    const favoured = c.queue.filter((e) => e.ratedFor > 0);
    expect(favoured.length).toBeGreaterThan(0);
    expect(favoured.length).toBeLessThan(c.queue.length);
    // Every rating is held by some entry, and favoured entries are cheaper on the whole.
    const ratings = c.queue.reduce((n, e) => n + e.ratedFor, 0);
    expect(ratings).toBeGreaterThanOrEqual(c.virgin.covered);
    const mean = (es: typeof c.queue) => es.reduce((n, e) => n + e.cost, 0) / es.length;
    expect(mean(favoured)).toBeLessThan(mean(c.queue.filter((e) => e.ratedFor === 0)));
  });

  it('keeps the queue bounded, dropping unfavoured entries first', () => {
    const c = campaign(6, { maxQueue: 150 });
    for (let i = 0; i < 2000; i++) c.step();
    expect(c.queue).toHaveLength(150);
    const favoured = c.queue.filter((e) => e.ratedFor > 0).length;
    // Far more of the kept entries are favoured than in an unbounded queue of the same run.
    const free = campaign(6);
    for (let i = 0; i < 2000; i++) free.step();
    const freeShare = free.queue.filter((e) => e.ratedFor > 0).length / free.queue.length;
    expect(favoured / 150).toBeGreaterThan(freeShare);
  });

  it('a small queue bound still leaves room for mutation (the young-queue share follows the bound)', () => {
    const c = campaign(7, { maxQueue: 50 });
    for (let i = 0; i < 600; i++) c.step();
    const tried = c.mutatorStats.tried;
    const mutated = Object.entries(tried)
      .filter(([op]) => op !== 'fresh')
      .reduce((n, [, k]) => n + k, 0);
    expect(mutated).toBeGreaterThan(300);
  });

  it('a finding on an input run elsewhere first (another worker, a resumed queue) counts 0 here', () => {
    const doc = seedDoc('bug-b-serial');
    const c = campaign(8);
    c.importEntry(doc);
    expect(c.step().newFindings.map((f) => [f.signature, f.count])).toEqual([[BUG_B, 0]]);
    c.importEntry(doc);
    c.step();
    expect(c.findings.get(BUG_B)!.count).toBe(0);
  });
});
