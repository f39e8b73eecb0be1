import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Campaign, type FindingRecord } from '../src/fuzz/campaign.js';
import { Executor } from '../src/fuzz/execute.js';
import type { Doc } from '../src/fuzz/mutate.js';
import { shrink } from '../src/fuzz/shrink.js';
import { BUILTIN_BUILDS, builtinRegistry } from '../src/model/migration/builds.js';
import type { Schedule } from '../src/model/schedule/types.js';
import { validateSchedule } from '../src/model/schedule/validate.js';
import { World } from '../src/model/world.js';
import { judge } from '../src/oracles/verdict.js';
import { measurePower, type PowerOptions, powerMarkdown, powerRows } from './power/table.js';
import type { Row } from './row.js';
import { computeCeiling, syncBench } from './scaling.js';

/**
 * Campaign figures: executions per second of the real `migfuzz fuzz` on 1 and 2 workers; the
 * power table (power/table.ts: every benchmark bug, guided against --no-coverage and plain
 * fc.check); shrinking the seed bugs' first finds; memory of a long campaign (measured in a
 * child process).
 */
const SEED_BUGS = {
  A: 'stuck-irq-line:vser0:remote-irr',
  B: 'migration-failed:serial0:tsr-not-empty',
} as const;
type Bug = keyof typeof SEED_BUGS;
const BUGS: Bug[] = ['A', 'B'];

const builds = builtinRegistry();
const allowed = BUILTIN_BUILDS.map((b) => b.name);
const BIN = fileURLToPath(new URL('../src/cli/bin.js', import.meta.url));

/** Executions per second of one CLI campaign: over the whole run, and once warmed up. */
interface Rate {
  whole: number;
  warm: number;
}

/**
 * Runs the CLI campaign over every build from an empty corpus for `seconds`; its rate over
 * the whole run, and from `warmUp` seconds on (from its plot_data.csv, one row a second).
 * The first seconds of a campaign are not its pace: V8 compiles the hot code on a thread of
 * its own (about 4 s of CPU in the first 3,000 executions, measured with --trace-opt), and
 * most early inputs reach new coverage, so nearly every execution writes a queue file. Two
 * workers pay both twice on the same two cores; an hour-long campaign pays them once.
 */
function campaignRate(workers: number, seconds: number, warmUp: number): Rate {
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
    const rows = readFileSync(join(dir, 'out', 'plot_data.csv'), 'utf8')
      .split('\n')
      .filter((line) => /^[\d.]/.test(line))
      .map((line) => line.split(',').map(Number) as [number, number]);
    const [endS, endExecs] = rows[rows.length - 1]!;
    const [fromS, fromExecs] = rows.find(([s]) => s >= warmUp) ?? rows[0]!;
    return { whole: endExecs / endS, warm: (endExecs - fromExecs) / (endS - fromS) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Where an execution's time goes, as rates over the same inputs: `count` executions of the
 * campaign after `warm` (generation, mutation, queue and all), then the inputs they ran, run
 * again as a batch by the executor (validation, judge, coverage), by the model and its oracles
 * (judge), and by the model alone. Each bounds the ones before it: no work on the fuzzer's side
 * takes the campaign past what judge does on its own inputs.
 */
function executionParts(warm: number, count: number): Row[] {
  const c = new Campaign({ seed: 1, builds, allowed });
  while (c.execs < warm) c.step();
  const docs: Doc[] = [];
  let t0 = performance.now();
  for (let i = 0; i < count; i++) docs.push(c.step().input);
  const campaign = (count / (performance.now() - t0)) * 1000;
  const schedules: Schedule[] = [];
  for (const d of docs) {
    try {
      schedules.push(validateSchedule(d, builds));
    } catch {
      // an invalid input: the executor's pass counts it, the model's cannot run it
    }
  }
  let events = 0;
  for (const s of schedules) events += judge(s, { builds }).events;
  /** Inputs per second of `run` over `inputs`. */
  const rate = <T>(inputs: readonly T[], run: (input: T) => void): number => {
    t0 = performance.now();
    for (const input of inputs) run(input);
    return (inputs.length / (performance.now() - t0)) * 1000;
  };
  const executor = new Executor(builds);
  const executed = rate(docs, (d) => executor.run(d));
  const judged = rate(schedules, (s) => judge(s, { builds }));
  const model = rate(schedules, (s) => new World(s, { builds }).run());
  const from = warm.toLocaleString('en-US');
  const to = (warm + count).toLocaleString('en-US');
  const group = `One execution by parts (executions ${from}-${to} of the campaign: ${Math.round(events / schedules.length)} events each on average)`;
  return [
    { group, figure: 'the campaign', value: campaign, unit: 'execs/s', goal: '' },
    {
      group,
      figure: 'its inputs again: the executor (validation, judge, coverage)',
      value: executed,
      unit: 'execs/s',
      goal: '',
    },
    {
      group,
      figure: 'its inputs again: the model and its oracles (judge)',
      value: judged,
      unit: 'execs/s',
      goal: '',
    },
    {
      group,
      figure: 'its inputs again: the model alone (World.run)',
      value: model,
      unit: 'execs/s',
      goal: '',
    },
  ];
}

/** The guided campaign from no corpus, every build, until it has found both seed bugs. */
function firstFinds(seed: number, maxExecs: number): Record<Bug, FindingRecord | null> {
  const c = new Campaign({ seed, builds, allowed });
  const first: Record<Bug, FindingRecord | null> = { A: null, B: null };
  while (c.execs < maxExecs && !(first.A && first.B)) {
    for (const f of c.step().newFindings) {
      for (const bug of BUGS) if (f.signature === SEED_BUGS[bug] && !first[bug]) first[bug] = f;
    }
  }
  return first;
}

function power(quick: boolean): Row[] {
  const opts: PowerOptions = quick
    ? { seeds: 3, bugs: 2, budget: { maxExecs: 5_000, maxSeconds: 10 } }
    : { seeds: 10, budget: { maxExecs: 200_000, maxSeconds: 60 } };
  const measured = measurePower(opts, (line) => console.error(line));
  console.log(`\n${powerMarkdown(measured)}`);
  return powerRows(measured, opts);
}

function shrinking(seeds: number, maxExecs: number): Row[] {
  const rows: Row[] = [];
  const shrinks: Record<Bug, { seconds: number; before: number; after: number }[]> = { A: [], B: [] };
  for (let seed = 1; seed <= seeds; seed++) {
    const first = firstFinds(seed, maxExecs);
    for (const bug of BUGS) {
      const f = first[bug];
      if (!f) continue;
      const t0 = performance.now();
      const r = shrink(f.schedule, f.signature, builds);
      shrinks[bug].push({
        seconds: (performance.now() - t0) / 1000,
        before: r.stepsBefore,
        after: r.stepsAfter,
      });
    }
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
  // --expose-gc: the growth is read after full collections (see memory-child.ts).
  const out = execFileSync(process.execPath, ['--expose-gc', child, String(execs)], { encoding: 'utf8' });
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
  const [seconds, warmUp] = quick ? [4, 1] : [40, 10];
  // The ceiling is taken just before and just after the campaigns, so that both see the
  // same machine (other processes on it included); their mean is the yardstick.
  const iterations = quick ? 50_000_000 : 300_000_000;
  const before = await computeCeiling(2, quick ? 1 : 3, iterations);
  const one = campaignRate(1, seconds, warmUp);
  const two = campaignRate(2, seconds, warmUp);
  const after = await computeCeiling(2, quick ? 1 : 3, iterations);
  const group = `Executions per second (default campaign, every build, empty corpus, ${seconds} s)`;
  const warm = `after the first ${warmUp} s`;
  return [
    { group, figure: `1 worker, ${warm}`, value: one.warm, unit: 'execs/s', goal: '>= 5,000' },
    { group, figure: `2 workers, ${warm}`, value: two.warm, unit: 'execs/s', goal: '' },
    { group, figure: `scaling, 2 workers / 1, ${warm}`, value: two.warm / one.warm, unit: '×', goal: '' },
    { group, figure: '1 worker, the whole run', value: one.whole, unit: 'execs/s', goal: '' },
    { group, figure: '2 workers, the whole run', value: two.whole, unit: 'execs/s', goal: '' },
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
      figure: `2-worker scaling as a share of the ceiling, ${warm}`,
      value: (two.warm / one.warm / ((before + after) / 2)) * 100,
      unit: '%',
      goal: '>= 90',
    },
    {
      group,
      figure: '2-worker scaling as a share of the ceiling, the whole run',
      value: (two.whole / one.whole / ((before + after) / 2)) * 100,
      unit: '%',
      goal: '',
    },
    ...executionParts(quick ? 2_000 : 20_000, quick ? 1_000 : 5_000),
    ...power(quick),
    ...shrinking(3, quick ? 5_000 : 50_000),
    ...memory(quick ? 10_000 : 200_000),
    ...(await syncBench(quick ? 3 : 60)),
  ];
}
