import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { scheduleArb } from '../src/fuzz/arbitraries.js';
import { Campaign, type FindingRecord } from '../src/fuzz/campaign.js';
import { shrink } from '../src/fuzz/shrink.js';
import { BUILTIN_BUILDS, builtinRegistry } from '../src/model/migration/builds.js';
import { validateSchedule } from '../src/model/schedule/validate.js';
import { judge } from '../src/oracles/verdict.js';
import type { Row } from './row.js';
import { computeCeiling, syncBench } from './scaling.js';

/**
 * Campaign figures: executions per second of the real `migfuzz fuzz` on 1 and 2 workers; how
 * many executions and seconds each seed bug takes, guided against a plain fast-check
 * baseline (the same schedule arbitrary under fc.check: no corpus, no coverage); shrinking;
 * memory of a long campaign (measured in a child process).
 */
export const SEED_BUGS = {
  A: 'stuck-irq-line:vser0:remote-irr',
  B: 'migration-failed:serial0:tsr-not-empty',
} as const;
type Bug = keyof typeof SEED_BUGS;
const BUGS: Bug[] = ['A', 'B'];

const builds = builtinRegistry();
const allowed = BUILTIN_BUILDS.map((b) => b.name);
const BIN = fileURLToPath(new URL('../src/cli/bin.js', import.meta.url));

/** Runs the CLI campaign over every build from an empty corpus; its final execs/s. */
function campaignRate(workers: number, seconds: number): number {
  const dir = mkdtempSync(join(tmpdir(), 'migfuzz-bench-'));
  const empty = join(dir, 'corpus');
  mkdirSync(empty);
  try {
    const args = [
      'fuzz',
      '--time',
      `${seconds}s`,
      '--workers',
      String(workers),
      '--seed',
      '1',
      '--corpus',
      empty,
    ];
    try {
      // With the GC flag of `npm start` (see src/cli/bin.ts).
      execFileSync(process.execPath, ['--single-threaded-gc', BIN, ...args, '--out', join(dir, 'out')], {
        stdio: 'ignore',
      });
    } catch {
      // exit 1 means findings; the rate is what is measured here
    }
    const stats = JSON.parse(readFileSync(join(dir, 'out', 'fuzzer_stats.json'), 'utf8')) as {
      execs_per_sec: number;
    };
    return stats.execs_per_sec;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

interface Find {
  execs: number;
  seconds: number;
}

/** The guided campaign from no corpus: executions and seconds until each bug. */
function guided(
  seed: number,
  maxExecs: number,
): { finds: Record<Bug, Find>; first: Record<Bug, FindingRecord | null> } {
  const c = new Campaign({ seed, builds, allowed });
  const t0 = performance.now();
  const finds = { A: { execs: Infinity, seconds: Infinity }, B: { execs: Infinity, seconds: Infinity } };
  const first: Record<Bug, FindingRecord | null> = { A: null, B: null };
  while (c.execs < maxExecs && !(first.A && first.B)) {
    for (const f of c.step().newFindings) {
      for (const bug of BUGS) {
        if (f.signature !== SEED_BUGS[bug] || first[bug]) continue;
        first[bug] = f;
        finds[bug] = { execs: c.execs, seconds: (performance.now() - t0) / 1000 };
      }
    }
  }
  return { finds, first };
}

/** Plain property-based testing: fc.check of "no run shows the signature". */
function baseline(seed: number, bug: Bug, maxExecs: number): Find {
  let execs = 0;
  const t0 = performance.now();
  const property = fc.property(scheduleArb(builds, allowed), (doc) => {
    execs++;
    const s = validateSchedule(doc, builds);
    return !judge(s, { builds }).findings.some((f) => f.signature === SEED_BUGS[bug]);
  });
  const r = fc.check(property, { seed, numRuns: maxExecs, endOnFailure: true });
  return r.failed
    ? { execs, seconds: (performance.now() - t0) / 1000 }
    : { execs: Infinity, seconds: Infinity };
}

function timeToBug(seeds: number, maxExecs: number): Row[] {
  const rows: Row[] = [];
  const g: Record<Bug, Find[]> = { A: [], B: [] };
  const b: Record<Bug, Find[]> = { A: [], B: [] };
  const shrinks: Record<Bug, { seconds: number; before: number; after: number }[]> = { A: [], B: [] };
  for (let seed = 1; seed <= seeds; seed++) {
    const run = guided(seed, maxExecs);
    for (const bug of BUGS) {
      g[bug].push(run.finds[bug]);
      b[bug].push(baseline(seed, bug, maxExecs));
      const f = run.first[bug];
      if (f && shrinks[bug].length < 3) {
        const t0 = performance.now();
        const r = shrink(f.schedule, f.signature, builds);
        shrinks[bug].push({
          seconds: (performance.now() - t0) / 1000,
          before: r.stepsBefore,
          after: r.stepsAfter,
        });
      }
    }
  }
  const group = `Time to bug (${seeds} seeds, empty corpus)`;
  for (const bug of BUGS) {
    const ge = g[bug].map((x) => x.execs);
    const be = b[bug].map((x) => x.execs);
    rows.push(
      {
        group,
        figure: `bug ${bug}, guided: executions (median)`,
        value: median(ge),
        unit: 'execs',
        goal: '',
      },
      {
        group,
        figure: `bug ${bug}, guided: executions (worst)`,
        value: Math.max(...ge),
        unit: 'execs',
        goal: '',
      },
      {
        group,
        figure: `bug ${bug}, guided: seconds (median)`,
        value: median(g[bug].map((x) => x.seconds)),
        unit: 's',
        goal: '< 1',
      },
      {
        group,
        figure: `bug ${bug}, guided: seconds (worst)`,
        value: Math.max(...g[bug].map((x) => x.seconds)),
        unit: 's',
        goal: '',
      },
      {
        group,
        figure: `bug ${bug}, baseline fc.check: executions (median)`,
        value: median(be),
        unit: 'execs',
        goal: '',
      },
      {
        group,
        figure: `bug ${bug}, baseline fc.check: executions (worst)`,
        value: Math.max(...be),
        unit: 'execs',
        goal: '',
      },
      {
        group,
        figure: `bug ${bug}, baseline fc.check: seconds (median)`,
        value: median(b[bug].map((x) => x.seconds)),
        unit: 's',
        goal: '',
      },
      {
        group,
        figure: `bug ${bug}: baseline / guided executions (medians)`,
        value: median(be) / median(ge),
        unit: '×',
        goal: bug === 'B' ? '>= 5 (the harder bug)' : '',
      },
    );
  }
  for (const bug of BUGS) {
    const s = shrinks[bug];
    const group2 = 'Shrinking (first finds of the first seeds)';
    rows.push(
      {
        group: group2,
        figure: `bug ${bug}: seconds to shrink (worst)`,
        value: Math.max(...s.map((x) => x.seconds)),
        unit: 's',
        goal: '<= 5',
      },
      {
        group: group2,
        figure: `bug ${bug}: steps before (worst)`,
        value: Math.max(...s.map((x) => x.before)),
        unit: 'steps',
        goal: '',
      },
      {
        group: group2,
        figure: `bug ${bug}: steps after (worst)`,
        value: Math.max(...s.map((x) => x.after)),
        unit: 'steps',
        goal: bug === 'A' ? '<= 6' : '<= 8',
      },
    );
  }
  return rows;
}

/** A long campaign in a child process: its peak RSS, and growth from the first quarter on. */
function memory(execs: number): Row[] {
  const child = fileURLToPath(new URL('./memory-child.js', import.meta.url));
  const out = execFileSync(process.execPath, [child, String(execs)], { encoding: 'utf8' });
  const m = JSON.parse(out) as { peakMb: number; quarterMb: number; endMb: number };
  const group = `Memory (${execs.toLocaleString('en-US')}-execution campaign)`;
  return [
    { group, figure: 'peak RSS', value: m.peakMb, unit: 'MB', goal: '< 300' },
    {
      group,
      figure: 'RSS growth, first quarter to end',
      value: ((m.endMb - m.quarterMb) / m.quarterMb) * 100,
      unit: '%',
      goal: '< 10',
    },
  ];
}

export async function fuzzBench(quick: boolean): Promise<Row[]> {
  const seconds = quick ? 2 : 10;
  // The ceiling is taken just before and just after the campaigns, so that both see the
  // same machine (other processes on it included); their mean is the yardstick.
  const iterations = quick ? 50_000_000 : 300_000_000;
  const before = await computeCeiling(2, quick ? 1 : 3, iterations);
  const one = campaignRate(1, seconds);
  const two = campaignRate(2, seconds);
  const after = await computeCeiling(2, quick ? 1 : 3, iterations);
  const group = 'Executions per second (default campaign, every build, empty corpus)';
  return [
    { group, figure: '1 worker', value: one, unit: 'execs/s', goal: '>= 5,000' },
    { group, figure: '2 workers', value: two, unit: 'execs/s', goal: '' },
    { group, figure: 'scaling, 2 workers / 1', value: two / one, unit: '×', goal: '' },
    {
      group,
      figure: "the machine's ceiling: 2 threads of pure compute / 1, before",
      value: before,
      unit: '×',
      goal: '',
    },
    {
      group,
      figure: "the machine's ceiling: 2 threads of pure compute / 1, after",
      value: after,
      unit: '×',
      goal: '',
    },
    {
      group,
      figure: '2-worker scaling as a share of the ceiling',
      value: (two / one / ((before + after) / 2)) * 100,
      unit: '%',
      goal: '>= 90',
    },
    ...timeToBug(quick ? 3 : 10, quick ? 5_000 : 50_000),
    ...memory(quick ? 10_000 : 200_000),
    ...(await syncBench(quick ? 3 : 60)),
  ];
}
