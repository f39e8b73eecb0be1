import fc from 'fast-check';
import { scheduleArb } from '../../src/fuzz/arbitraries.js';
import { Campaign, type CampaignConfig, type FindingRecord } from '../../src/fuzz/campaign.js';
import type { BuildRegistry } from '../../src/model/migration/builds.js';
import { validateSchedule } from '../../src/model/schedule/validate.js';
import type { Finding } from '../../src/oracles/types.js';
import { judge } from '../../src/oracles/verdict.js';

/**
 * The three searchers the power figures compare, each from an empty corpus until a finding
 * that counts or a budget: the guided campaign, the same campaign with coverage feedback off
 * (`fuzz --no-coverage`), and plain fast-check (fc.check over the schedule arbitrary: no
 * corpus, no mutation, no coverage).
 */
export type Searcher = 'guided' | 'no-coverage' | 'fc.check';
export const SEARCHERS: readonly Searcher[] = ['guided', 'no-coverage', 'fc.check'];

export interface Find {
  /** Executions up to and including the one that found it; Infinity when missed. */
  execs: number;
  seconds: number;
}
export const MISSED: Find = { execs: Infinity, seconds: Infinity };

export interface SearchTarget {
  builds: BuildRegistry;
  allowed: readonly string[];
  /** A planted bug (bench/power/planted.ts), or none: the builds' own bugs. */
  patchLoad?: CampaignConfig['patchLoad'];
  /** Whether a finding on `schedule` is the bug searched for. */
  counts: (f: Pick<Finding, 'signature'>, schedule: FindingRecord['schedule']) => boolean;
}

export interface Budget {
  maxExecs: number;
  maxSeconds: number;
}

export function search(searcher: Searcher, seed: number, t: SearchTarget, budget: Budget): Find {
  return searcher === 'fc.check'
    ? fcCheck(seed, t, budget)
    : campaign(searcher === 'guided', seed, t, budget);
}

function campaign(coverage: boolean, seed: number, t: SearchTarget, budget: Budget): Find {
  const c = new Campaign({ seed, builds: t.builds, allowed: t.allowed, coverage, patchLoad: t.patchLoad });
  const t0 = performance.now();
  const deadline = t0 + budget.maxSeconds * 1000;
  while (c.execs < budget.maxExecs) {
    for (const f of c.step().newFindings) {
      if (t.counts(f, f.schedule)) return { execs: c.execs, seconds: (performance.now() - t0) / 1000 };
    }
    // The clock is read every 64 executions: a read costs more than a short run.
    if ((c.execs & 63) === 0 && performance.now() > deadline) break;
  }
  return MISSED;
}

/** fc.check of "no run shows the bug", stopping at the first counterexample. */
function fcCheck(seed: number, t: SearchTarget, budget: Budget): Find {
  let execs = 0;
  const t0 = performance.now();
  const deadline = t0 + budget.maxSeconds * 1000;
  let found: Find = MISSED;
  const property = fc.property(scheduleArb(t.builds, t.allowed), (doc) => {
    if (found !== MISSED) return true;
    execs++;
    const s = validateSchedule(doc, t.builds);
    const v = judge(s, { builds: t.builds, patchLoad: t.patchLoad });
    if (v.findings.some((f) => t.counts(f, s))) {
      found = { execs, seconds: (performance.now() - t0) / 1000 };
      return false;
    }
    return true;
  });
  fc.check(property, {
    seed,
    numRuns: budget.maxExecs,
    // Only the first counterexample's time matters: no shrinking.
    endOnFailure: true,
    interruptAfterTimeLimit: budget.maxSeconds * 1000,
  });
  if (found === MISSED && performance.now() > deadline) return MISSED;
  return found;
}

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
export const worst = (xs: readonly number[]): number => Math.max(...xs);

/** Figures as tables print them: "not found" for a miss. */
export const fmt = (v: number, digits = 2): string =>
  !Number.isFinite(v)
    ? 'not found'
    : v >= 100
      ? Math.round(v).toLocaleString('en-US')
      : Number.isInteger(v)
        ? String(v)
        : v.toFixed(digits);

/**
 * A bug is deep when the unguided campaign needs more than this many executions (median):
 * a campaign generates every input until its queue holds 100 entries (the young-queue rule
 * of campaign.ts), so a bug found before that is found by the same inputs with or without
 * coverage, and its ratio is 1× whatever the guidance is worth. Past 1,000 executions both
 * campaigns have mutated their queues for hundreds of executions.
 */
export const DEEP_EXECS = 1000;
export const isDeep = (unguided: readonly Find[]): boolean =>
  median(unguided.map((f) => f.execs)) > DEEP_EXECS;
