import { Campaign } from '../src/fuzz/campaign.js';
import { BUILTIN_BUILDS, builtinRegistry } from '../src/model/migration/builds.js';

/**
 * Runs a campaign of N executions (every build, no corpus) and prints its resident set size:
 * the peak, at the end of the first quarter, and at the end, in MB (one JSON line). Run it
 * with --expose-gc: those two readings are taken after a full collection, so that they
 * compare what the campaign keeps. Without it, a reading lands anywhere in the collector's
 * cycle: the same campaign read 7% and 15% of growth on two runs. Even after a collection,
 * the old space V8 keeps (its size follows the live heap by a factor it picks at each
 * collection) moves by several MB from one reading to the next: 36, 28 and 37 MB at 50,000,
 * 100,000 and 150,000 executions for a live old space of 18-20 MB. So each of the two is the
 * median of READINGS readings spread over the last 5% of its stretch.
 */
const READINGS = 5;
const execs = Number(process.argv[2] ?? '200000');
const collect = (globalThis as { gc?: () => void }).gc ?? ((): void => {});
const c = new Campaign({ seed: 1, builds: builtinRegistry(), allowed: BUILTIN_BUILDS.map((b) => b.name) });
const mb = (): number => process.memoryUsage().rss / 1e6;
const settled = (): number => {
  collect();
  return mb();
};
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
/** The executions after which each stretch's readings are taken. */
const readingsUpTo = (end: number): number[] =>
  Array.from({ length: READINGS }, (_, i) => Math.round(end - (execs * 0.05 * i) / (READINGS - 1)));
const atQuarter = new Set(readingsUpTo(execs / 4));
const atEnd = new Set(readingsUpTo(execs));
const quarter: number[] = [];
const end: number[] = [];
let peak = 0;
while (c.execs < execs) {
  c.step();
  if (c.execs % 256 === 0) peak = Math.max(peak, mb());
  if (atQuarter.has(c.execs)) quarter.push(settled());
  if (atEnd.has(c.execs)) end.push(settled());
}
peak = Math.max(peak, mb());
console.log(JSON.stringify({ peakMb: peak, quarterMb: median(quarter), endMb: median(end) }));
