import type { BuildRegistry } from '../model/migration/builds.js';
import type { Schedule } from '../model/schedule/types.js';
import { CoverageSink, VirginMap } from './coverage.js';
import { judgeSafely } from './execute.js';

/**
 * libFuzzer's `-merge=1` for schedules: of the inputs of campaigns run apart, keep the few
 * that together reach everything any of them reached. Inputs run cheapest first (executed
 * events, then their order in `inputs`), and one is kept when it adds a (map index, hit
 * bucket) pair not yet covered: a greedy cover, as libFuzzer's merge does by size.
 * Deterministic: the same inputs give the same choice.
 */
export interface MergeResult {
  /** Indices into `inputs` of the inputs kept, in the order they were taken. */
  kept: number[];
  /** Map indices the union reaches (the kept inputs reach all of them). */
  covered: number;
}

export function mergeInputs(
  inputs: readonly Schedule[],
  builds: BuildRegistry,
  eventBudget?: number,
): MergeResult {
  const sink = new CoverageSink();
  // Each run's coverage as (index, hits) pairs: a whole map per input would not scale.
  const runs = inputs.map((s, i) => {
    sink.reset();
    const { events } = judgeSafely(s, builds, sink, eventBudget);
    const idx = Uint16Array.from(sink.touched);
    return { i, events, idx, hits: Uint8Array.from(idx, (j) => sink.map[j]!) };
  });
  runs.sort((a, b) => a.events - b.events || a.i - b.i);
  const union = new VirginMap();
  const kept: number[] = [];
  for (const r of runs) {
    sink.reset();
    r.idx.forEach((j, k) => {
      sink.map[j] = r.hits[k]!;
      sink.touched.push(j);
    });
    if (union.merge(sink) > 0) kept.push(r.i);
  }
  return { kept, covered: union.covered };
}
