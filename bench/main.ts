import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { builtinRegistry } from '../src/model/migration/builds.js';
import type { Schedule } from '../src/model/schedule/types.js';
import { judge } from '../src/oracles/verdict.js';
import { fuzzBench } from './fuzz.js';
import { replayBench } from './replay.js';
import { reportBench } from './report.js';
import { DECODERS, robustnessCases, SLOW_CASE_MS } from './robustness.js';
import type { Row } from './row.js';
import { migrationHeavy, uartHeavy, virtioHeavy } from './schedules.js';

/**
 * `npm run bench`: the performance table, every figure with its unit and goal, measured in
 * one run (ratios hold on a noisy machine), printed as Markdown and written to
 * bench/results.json. Benchmarks are measurements, never tests. `-- --quick` runs each part
 * briefly (CI keeps the bench working without judging the numbers).
 */
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
    group: 'Simulated events per second (one core)',
    figure: `${name} (${Math.round(events / runs)} events/run)`,
    value: events / seconds,
    unit: 'events/s',
    goal: '>= 5,000,000',
  };
}

/**
 * `-- --robustness`: only the decoders under hostile input (bench/robustness.ts), 100,000
 * cases per decoder (2,000 with --quick); its rows replace the earlier Robustness rows of
 * bench/results.json and leave the others.
 */
const robustness = process.argv.includes('--robustness');

function robustnessRows(): Row[] {
  const cases = quick ? 2_000 : 100_000;
  const out: Row[] = [];
  console.log('| decoder | cases | failures | slowest ms |\n|---|---:|---:|---:|');
  for (const [i, decoder] of DECODERS.entries()) {
    const r = robustnessCases(decoder, cases, 0x7ab0_0000 + i);
    console.log(`| ${decoder} | ${r.cases} | ${r.failures} | ${r.slowestMs.toFixed(2)} |`);
    if (r.firstFailure) console.log(`  first failure: ${r.firstFailure}`);
    const group = 'Robustness';
    out.push(
      { group, figure: `${decoder}: cases`, value: r.cases, unit: 'cases', goal: '>= 100,000' },
      { group, figure: `${decoder}: failures`, value: r.failures, unit: 'cases', goal: '0' },
      {
        group,
        figure: `${decoder}: slowest case`,
        value: r.slowestMs,
        unit: 'ms',
        goal: `< ${SLOW_CASE_MS}`,
      },
    );
  }
  return out;
}

const rows: Row[] = robustness
  ? robustnessRows()
  : [
      eventsPerSecond('UART-heavy', uartHeavy(quick ? 200 : 2000)),
      eventsPerSecond('virtio-heavy', virtioHeavy(quick ? 200 : 2000)),
      eventsPerSecond('migration-heavy', migrationHeavy(quick ? 100 : 1000)),
      ...(await fuzzBench(quick)),
      ...replayBench(quick),
      ...(await reportBench(quick)),
    ];

const fmt = (v: number): string =>
  !Number.isFinite(v) ? 'not found' : v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(2);
let group = '';
for (const r of rows) {
  if (r.group !== group) {
    group = r.group;
    console.log(`\n**${group}**\n\n| figure | value | unit | goal |\n|---|---:|---|---|`);
  }
  console.log(`| ${r.figure} | ${fmt(r.value)} | ${r.unit} | ${r.goal} |`);
}

const file = new URL('./results.json', new URL('../../bench/', import.meta.url));
const json = (r: Row) => ({ ...r, value: Number.isFinite(r.value) ? r.value : null });
/**
 * This run's rows; the earlier results' rows of the other kind (the Robustness group, or
 * everything else after `--robustness`) are kept, so neither run erases the other's figures.
 */
function results(): object {
  let earlier: { rows?: unknown } = {};
  try {
    earlier = JSON.parse(readFileSync(file.pathname, 'utf8')) as { rows?: unknown };
  } catch {
    // no earlier results: only these rows
  }
  const other = (r: Row): boolean => (r.group === 'Robustness') !== robustness;
  const kept = Array.isArray(earlier.rows) ? (earlier.rows as Row[]).filter(other) : [];
  const mine = rows.map(json);
  return robustness
    ? { ...earlier, robustnessQuick: quick, node: process.version, rows: [...kept, ...mine] }
    : { ...earlier, quick, node: process.version, rows: [...mine, ...kept] };
}
writeFileSync(`${file.pathname}.tmp`, `${JSON.stringify(results(), null, 1)}\n`);
renameSync(`${file.pathname}.tmp`, file.pathname);
console.log(`\nwritten to bench/results.json`);
