import { validateBuildFile } from '../../src/model/migration/build-file.js';
import { builtinRegistry } from '../../src/model/migration/builds.js';
import { BENCH_BUGS, type BenchBug } from '../bugs/registry.js';
import type { Row } from '../row.js';
import {
  type Budget,
  DEEP_EXECS,
  type Find,
  fmt,
  isDeep,
  median,
  SEARCHERS,
  type Searcher,
  search,
  worst,
} from './search.js';

/**
 * The power table (`npm run bench`, README "Fuzzer power"): for every benchmark bug
 * (bench/bugs/registry.ts), executions and seconds to its first find from an empty corpus
 * over several seeds (median and worst), for the three searchers run in this one process:
 * the guided campaign, the same campaign with coverage feedback off (`fuzz --no-coverage`),
 * and plain fc.check over the schedule arbitrary. Each searcher gets the bug's buggy builds
 * only, and stops at the first finding whose signature is the bug's.
 */
export interface PowerOptions {
  seeds: number;
  budget: Budget;
  /** At most this many bugs (the first ones of the registry). */
  bugs?: number;
}

export interface BugPower {
  bug: BenchBug;
  finds: Record<Searcher, Find[]>;
}

export function measurePower(opts: PowerOptions, log: (line: string) => void = () => {}): BugPower[] {
  const out: BugPower[] = [];
  const searchable = BENCH_BUGS.filter((b) => !b.needsHostileSource);
  for (const bug of searchable.slice(0, opts.bugs ?? searchable.length)) {
    const base = builtinRegistry();
    const builds = bug.buggy.buildFile ? validateBuildFile(bug.buggy.buildFile, base) : base;
    const target = {
      builds,
      allowed: bug.buggy.allowed,
      counts: (f: { signature: string }) => bug.signature.test(f.signature),
    };
    const finds = { guided: [], 'no-coverage': [], 'fc.check': [] } as Record<Searcher, Find[]>;
    for (let seed = 1; seed <= opts.seeds; seed++) {
      for (const s of SEARCHERS) finds[s].push(search(s, seed, target, opts.budget));
    }
    out.push({ bug, finds });
    log(
      `${bug.id}: ${SEARCHERS.map((s) => `${s} ${fmt(median(finds[s].map((f) => f.execs)))}`).join(', ')} (median executions)`,
    );
  }
  return out;
}

/** Unguided executions over guided ones (medians): how much the guidance is worth on a bug. */
export const ratio = (p: BugPower, unguided: Searcher): number =>
  median(p.finds[unguided].map((f) => f.execs)) / median(p.finds.guided.map((f) => f.execs));

export function powerRows(power: readonly BugPower[], opts: PowerOptions): Row[] {
  const group = `Fuzzer power (${opts.seeds} seeds per searcher, empty corpus, at most ${opts.budget.maxSeconds} s or ${opts.budget.maxExecs.toLocaleString('en-US')} executions)`;
  const rows: Row[] = [];
  for (const p of power) {
    for (const s of SEARCHERS) {
      const e = p.finds[s].map((f) => f.execs);
      const t = p.finds[s].map((f) => f.seconds);
      const found = e.filter(Number.isFinite).length;
      rows.push(
        { group, figure: `${p.bug.id}, ${s}: found`, value: found, unit: `of ${e.length}`, goal: '' },
        {
          group,
          figure: `${p.bug.id}, ${s}: executions (median)`,
          value: median(e),
          unit: 'execs',
          goal: '',
        },
        { group, figure: `${p.bug.id}, ${s}: executions (worst)`, value: worst(e), unit: 'execs', goal: '' },
        {
          group,
          figure: `${p.bug.id}, ${s}: seconds (median)`,
          value: median(t),
          unit: 's',
          goal: s === 'guided' ? '< 60, every seed' : '',
        },
        { group, figure: `${p.bug.id}, ${s}: seconds (worst)`, value: worst(t), unit: 's', goal: '' },
      );
    }
    rows.push(
      {
        group,
        figure: `${p.bug.id}: no-coverage / guided executions (medians)`,
        value: ratio(p, 'no-coverage'),
        unit: '×',
        goal: '',
      },
      {
        group,
        figure: `${p.bug.id}: fc.check / guided executions (medians)`,
        value: ratio(p, 'fc.check'),
        unit: '×',
        goal: '',
      },
    );
  }
  // The deepest third by unguided (no-coverage) executions: where guidance must pay.
  const deep = [...power]
    .sort(
      (a, b) =>
        median(b.finds['no-coverage'].map((f) => f.execs)) -
        median(a.finds['no-coverage'].map((f) => f.execs)),
    )
    .slice(0, Math.max(1, Math.round(power.length / 3)));
  rows.push({
    group,
    figure: `deepest third (${deep.map((p) => p.bug.id).join(', ')}): no-coverage / guided executions (median of the ratios)`,
    value: median(deep.map((p) => ratio(p, 'no-coverage'))),
    unit: '×',
    goal: '>= 3',
  });
  // The bugs past the young-queue phase: only there do the two campaigns run different inputs.
  const past = power.filter((p) => isDeep(p.finds['no-coverage']));
  if (past.length > 0)
    rows.push({
      group,
      figure: `deeper than ${DEEP_EXECS.toLocaleString('en-US')} unguided executions (${past.map((p) => p.bug.id).join(', ')}): no-coverage / guided executions (median of the ratios)`,
      value: median(past.map((p) => ratio(p, 'no-coverage'))),
      unit: '×',
      goal: '',
    });
  return rows;
}

/** The README's table: one line per bug, median / worst executions per searcher. */
export function powerMarkdown(power: readonly BugPower[]): string {
  const lines = [
    '| bug | guided: execs (median / worst) | s (median / worst) | --no-coverage: execs | fc.check: execs | no-coverage / guided | fc.check / guided |',
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  const cell = (fs: Find[]): string =>
    `${fmt(median(fs.map((f) => f.execs)))} / ${fmt(worst(fs.map((f) => f.execs)))}`;
  for (const p of power) {
    const t = p.finds.guided.map((f) => f.seconds);
    lines.push(
      `| ${p.bug.id} | ${cell(p.finds.guided)} | ${fmt(median(t))} / ${fmt(worst(t))} | ${cell(p.finds['no-coverage'])} | ${cell(p.finds['fc.check'])} | ${fmt(ratio(p, 'no-coverage'))}× | ${fmt(ratio(p, 'fc.check'))}× |`,
    );
  }
  return lines.join('\n');
}
