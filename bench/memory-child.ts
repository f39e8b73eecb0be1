import { Campaign } from '../src/fuzz/campaign.js';
import { BUILTIN_BUILDS, builtinRegistry } from '../src/model/migration/builds.js';

/**
 * Runs a campaign of N executions (every build, no corpus) and prints its resident set size:
 * the peak, after the first quarter, and at the end, in MB (one JSON line). Run it with
 * --expose-gc: the quarter and end readings are taken after a full collection, so that they
 * compare what the campaign keeps. Without it, a reading lands anywhere in the collector's
 * cycle: the same campaign (whose queue is full from ~50,000 executions on, with 22-23 MB
 * live) read 7% and 15% of growth on two runs.
 */
const execs = Number(process.argv[2] ?? '200000');
const collect = (globalThis as { gc?: () => void }).gc ?? ((): void => {});
const c = new Campaign({ seed: 1, builds: builtinRegistry(), allowed: BUILTIN_BUILDS.map((b) => b.name) });
const mb = (): number => process.memoryUsage().rss / 1e6;
const settled = (): number => {
  collect();
  return mb();
};
let peak = 0;
let quarter = 0;
while (c.execs < execs) {
  c.step();
  if (c.execs % 256 === 0) peak = Math.max(peak, mb());
  if (quarter === 0 && c.execs >= execs / 4) quarter = settled();
}
peak = Math.max(peak, mb());
const end = settled();
console.log(JSON.stringify({ peakMb: peak, quarterMb: quarter, endMb: end }));
