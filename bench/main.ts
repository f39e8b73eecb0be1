import { builtinRegistry } from '../src/model/migration/builds.js';
import type { Schedule } from '../src/model/schedule/types.js';
import { judge } from '../src/oracles/verdict.js';
import { fuzzBench } from './fuzz.js';
import { replayBench } from './replay.js';
import { migrationHeavy, uartHeavy, virtioHeavy } from './schedules.js';

/**
 * `npm run bench`: the performance table. Benchmarks are measurements, never tests; the
 * figures are printed with their goals. `-- --quick` runs each part briefly.
 */
interface Row {
  figure: string;
  value: number;
  unit: string;
  goal: string;
}

const quick = process.argv.includes('--quick');
const builds = builtinRegistry();

/** Simulated (executed) events per second of one schedule, judged by every oracle. */
function eventsPerSecond(name: string, s: Schedule): Row {
  const minMs = quick ? 200 : 2000;
  // Warm up the JIT before timing.
  for (let i = 0; i < (quick ? 1 : 3); i++) judge(s, { builds });
  let events = 0;
  let findings = 0;
  const t0 = performance.now();
  let runs = 0;
  do {
    const v = judge(s, { builds });
    events += v.events;
    findings += v.findings.length;
    runs++;
  } while (performance.now() - t0 < minMs);
  const seconds = (performance.now() - t0) / 1000;
  if (findings > 0) console.warn(`warning: the ${name} workload produced findings`);
  return {
    figure: `simulated events/s, ${name} (${Math.round(events / runs)} events/run)`,
    value: events / seconds,
    unit: 'events/s',
    goal: '>= 5,000,000',
  };
}

const rows: Row[] = [
  eventsPerSecond('UART-heavy', uartHeavy(quick ? 200 : 2000)),
  eventsPerSecond('virtio-heavy', virtioHeavy(quick ? 200 : 2000)),
  eventsPerSecond('migration-heavy', migrationHeavy(quick ? 100 : 1000)),
  ...replayBench(quick),
  ...fuzzBench(quick),
];

const fmt = (v: number): string => (v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(2));
console.log('| figure | value | unit | goal |');
console.log('|---|---:|---|---|');
for (const r of rows) console.log(`| ${r.figure} | ${fmt(r.value)} | ${r.unit} | ${r.goal} |`);
