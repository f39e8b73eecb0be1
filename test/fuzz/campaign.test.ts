import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Campaign, type CampaignConfig } from '../../src/fuzz/campaign.js';
import { BUILTIN_BUILDS, builtinRegistry } from '../../src/model/migration/builds.js';
import { parseSchedule, scheduleToJson } from '../../src/model/schedule/validate.js';

/**
 * The coverage-guided loop (src/fuzz/campaign.ts): a function of its seed, and able to find
 * both seed bugs from nothing.
 */

const builds = builtinRegistry();
const ALL = BUILTIN_BUILDS.map((b) => b.name);
const BUG_A = 'stuck-irq-line:vser0:remote-irr';
const BUG_B = 'migration-failed:serial0:tsr-not-empty';

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

  it('runs its initial inputs first, keeping all of them in the queue', () => {
    const seedFile = (n: string) =>
      parseSchedule(readFileSync(new URL(`../../corpus/seeds/${n}.json`, import.meta.url), 'utf8'), builds);
    const initial = [seedFile('bug-b-serial'), seedFile('uart-echo')];
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

  it('importEntry queues without running; the queue then feeds mutation', () => {
    const c = campaign(4);
    const doc = scheduleToJson(
      parseSchedule(
        readFileSync(new URL('../../corpus/seeds/uart-echo.json', import.meta.url), 'utf8'),
        builds,
      ),
    ) as never;
    c.importEntry(doc);
    expect(c.execs).toBe(0);
    expect(c.queue).toEqual([{ id: 0, doc, op: 'imported', exec: 0, fresh: 0 }]);
    for (let i = 0; i < 50; i++) c.step();
    const ops = new Set(Object.keys(c.mutatorStats.tried));
    expect(ops.has('fresh')).toBe(true);
    expect([...ops].some((op) => op !== 'fresh' && op !== 'initial')).toBe(true);
    const tried = Object.values(c.mutatorStats.tried).reduce((a, b) => a + b, 0);
    expect(tried).toBe(50);
  });
});
