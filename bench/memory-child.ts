import { Campaign } from '../src/fuzz/campaign.js';
import { BUILTIN_BUILDS, builtinRegistry } from '../src/model/migration/builds.js';

/**
 * Runs a campaign of N executions (every build, no corpus) and prints its resident set size:
 * the peak, after the first quarter, and at the end, in MB (one JSON line).
 */
const execs = Number(process.argv[2] ?? '200000');
const c = new Campaign({ seed: 1, builds: builtinRegistry(), allowed: BUILTIN_BUILDS.map((b) => b.name) });
const mb = (): number => process.memoryUsage().rss / 1e6;
let peak = 0;
let quarter = 0;
while (c.execs < execs) {
  c.step();
  if (c.execs % 256 === 0) peak = Math.max(peak, mb());
  if (quarter === 0 && c.execs >= execs / 4) quarter = mb();
}
const end = mb();
console.log(JSON.stringify({ peakMb: Math.max(peak, end), quarterMb: quarter, endMb: end }));
