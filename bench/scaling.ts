import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { CoverageSink, VirginMap } from '../src/fuzz/coverage.js';
import { judgeSafely } from '../src/fuzz/execute.js';
import { builtinRegistry } from '../src/model/migration/builds.js';
import { parseSchedule } from '../src/model/schedule/validate.js';
import type { Row } from './row.js';

/**
 * What the machine itself allows, and what syncing buys:
 * - the ceiling: N threads of pure compute (no memory traffic to speak of) against one, in
 *   this run, so that campaign scaling is read against what the cores really give (two
 *   hyperthreads, or cores shared with other work, give less than 2×);
 * - coverage after the same time of 2 instances sharing a sync dir against 2 isolated ones,
 *   each pair judged by the union of its queues re-run in one coverage map.
 */

const BIN = fileURLToPath(new URL('../src/cli/bin.js', import.meta.url));

/** A fixed amount of integer work: the same on every thread, no allocation. */
const COMPUTE = `
const { parentPort, workerData } = require('node:worker_threads');
let h = 0x9e3779b9;
for (let i = 0; i < workerData; i++) {
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) + i;
  h ^= h >>> 13;
}
parentPort.postMessage(h);
`;

function computeOn(threads: number, iterations: number): Promise<number> {
  const t0 = performance.now();
  const done = Array.from(
    { length: threads },
    () =>
      new Promise<void>((resolve, reject) => {
        const w = new Worker(COMPUTE, { eval: true, workerData: iterations });
        w.once('message', () => resolve());
        w.once('error', reject);
      }),
  );
  return Promise.all(done).then(() => performance.now() - t0);
}

/**
 * Throughput of `threads` threads of pure compute over one thread's (the ideal is `threads`):
 * the median of `rounds` pairs of runs, alternated so that drift hits both alike.
 */
export async function computeCeiling(threads: number, rounds: number, iterations: number): Promise<number> {
  await computeOn(1, iterations / 10); // warm-up
  const ratios: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const one = await computeOn(1, iterations);
    const many = await computeOn(threads, iterations);
    ratios.push((threads * one) / many);
  }
  return median(ratios);
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function runCli(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    // With the GC flag of `npm start` (see src/cli/bin.ts); exit 1 only means findings.
    const p = spawn(process.execPath, ['--single-threaded-gc', BIN, ...args], { stdio: 'ignore' });
    p.once('error', reject);
    p.once('exit', () => resolve());
  });
}

interface PairResult {
  dirs: string[];
  /** Executions of each instance. */
  execs: number[];
}

/** The execution that found a queue entry, from its name (`id:N,exec:E,op:...`). */
const foundAt = (name: string): number => Number(/,exec:(\d+),/.exec(name)?.[1] ?? Number.POSITIVE_INFINITY);

/**
 * The coverage of the queue entries of the given campaign directories that their instance
 * found within its first `maxExec` executions, in one map.
 */
function unionCoverage(dirs: string[], maxExec = Number.POSITIVE_INFINITY): number {
  const builds = builtinRegistry();
  const virgin = new VirginMap();
  const cov = new CoverageSink();
  for (const dir of dirs) {
    const queue = join(dir, 'queue');
    for (const name of readdirSync(queue).filter((n) => n.endsWith('.json') && foundAt(n) <= maxExec)) {
      const s = parseSchedule(readFileSync(join(queue, name), 'utf8'), builds);
      cov.reset();
      judgeSafely(s, builds, cov);
      virgin.merge(cov);
    }
  }
  return virgin.covered;
}

const statsExecs = (dir: string): number =>
  (JSON.parse(readFileSync(join(dir, 'fuzzer_stats.json'), 'utf8')) as { execs: number }).execs;

/** Two instances at once for `seconds`, every build, empty corpus, seeds 1 and 2. */
async function pair(root: string, synced: boolean, seconds: number): Promise<PairResult> {
  const empty = join(root, 'corpus');
  mkdirSync(empty, { recursive: true });
  const sync = join(root, synced ? 'sync' : 'apart');
  const dirs = ['a', 'b'].map((name) => join(sync, name));
  await Promise.all(
    ['a', 'b'].map((name, i) =>
      runCli([
        'fuzz',
        '--time',
        `${seconds}s`,
        '--seed',
        String(i + 1),
        '--corpus',
        empty,
        ...(synced ? ['--sync-dir', sync, '--instance', name] : ['--out', dirs[i]!]),
      ]),
    ),
  );
  return { dirs, execs: dirs.map(statsExecs) };
}

export async function syncBench(seconds: number): Promise<Row[]> {
  const root = mkdtempSync(join(tmpdir(), 'migfuzz-bench-sync-'));
  try {
    const synced = await pair(root, true, seconds);
    const apart = await pair(root, false, seconds);
    const sum = (xs: number[]): number => xs.reduce((x, y) => x + y, 0);
    const timed = [unionCoverage(synced.dirs), unionCoverage(apart.dirs)] as const;
    // At equal executions: what each pair had found when each of its instances had run as
    // many executions as the slowest of the four (a synced instance counts what it imports).
    const equal = Math.min(...synced.execs, ...apart.execs);
    const even = [unionCoverage(synced.dirs, equal), unionCoverage(apart.dirs, equal)] as const;
    const group = `Sync dir (2 instances on this machine, ${seconds} s each, every build, empty corpus)`;
    const unit = 'map indices';
    return [
      { group, figure: 'synced: executions of both', value: sum(synced.execs), unit: 'execs', goal: '' },
      { group, figure: 'isolated: executions of both', value: sum(apart.execs), unit: 'execs', goal: '' },
      { group, figure: 'synced: coverage of both queues after the time', value: timed[0], unit, goal: '' },
      { group, figure: 'isolated: coverage of both queues after the time', value: timed[1], unit, goal: '' },
      {
        group,
        figure: 'synced / isolated coverage after the time',
        value: timed[0] / timed[1],
        unit: '×',
        goal: '> 1',
      },
      { group, figure: `synced: coverage at ${equal} executions each`, value: even[0], unit, goal: '' },
      { group, figure: `isolated: coverage at ${equal} executions each`, value: even[1], unit, goal: '' },
      {
        group,
        figure: 'synced / isolated coverage at equal executions',
        value: even[0] / even[1],
        unit: '×',
        goal: '> 1',
      },
    ];
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
