import { createHash } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtinRegistry } from '../../src/model/migration/builds.js';
import type { Schedule } from '../../src/model/schedule/types.js';
import { parseSchedule } from '../../src/model/schedule/validate.js';
import { judge } from '../../src/oracles/verdict.js';

/**
 * A run is a pure function of its schedule (DESIGN.md 5-6): the same schedule gives the same
 * executed events and the same verdict, run after run, interleaved with other runs, and in
 * another thread that loaded its own copy of the model.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SEEDS_DIR = join(ROOT, 'corpus', 'seeds');
const builds = builtinRegistry();

const seedFiles = readdirSync(SEEDS_DIR)
  .filter((f) => f.endsWith('.json'))
  .sort();
const seedText = (file: string): string => readFileSync(join(SEEDS_DIR, file), 'utf8');

interface Run {
  events: number[];
  verdict: string;
}

/** The event log as a flat list of (at, kind, vm, dev, a, b), and the verdict as JSON. */
function runOnce(s: Schedule): Run {
  const events: number[] = [];
  const v = judge(s, { builds, sink: { event: (...e) => events.push(...e) } });
  return { events, verdict: JSON.stringify(v) };
}

/** SHA-256 of the log, each number as a little-endian float64; the worker does the same. */
function digest(events: readonly number[]): string {
  return createHash('sha256')
    .update(new Uint8Array(Float64Array.from(events).buffer))
    .digest('hex');
}

describe('determinism in one process', () => {
  it('has seed schedules to check', () => {
    expect(seedFiles.length).toBeGreaterThanOrEqual(5);
  });

  it('every seed gives the same events and verdict twice, whatever ran in between', () => {
    const first = new Map(seedFiles.map((f) => [f, runOnce(parseSchedule(seedText(f), builds))]));
    // Second pass in reverse order: no state may leak from one run into the next.
    for (const f of [...seedFiles].reverse()) {
      const again = runOnce(parseSchedule(seedText(f), builds));
      const before = first.get(f)!;
      expect(again.events.length, f).toBe(before.events.length);
      expect(again.events, f).toEqual(before.events);
      expect(again.verdict, f).toBe(before.verdict);
    }
  });

  it('holds with faults injected and for perturbed seeds and step times (property)', () => {
    const schedules = seedFiles.map((f) => parseSchedule(seedText(f), builds));
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: schedules.length - 1 }),
        fc.nat({ max: 0xffff_ffff }),
        fc.integer({ min: 0, max: 500_000 }),
        (i, seed, shift) => {
          const base = schedules[i]!;
          const s: Schedule = {
            ...base,
            seed,
            steps: base.steps.map((x) => ({ ...x, at: x.at + shift })),
            horizon: base.horizon + shift,
          };
          const a = runOnce(s);
          const b = runOnce(s);
          expect(b.events).toEqual(a.events);
          expect(b.verdict).toBe(a.verdict);
        },
      ),
      { seed: 20240611, numRuns: 40 },
    );
    const s = schedules[0]!;
    const fault = { kind: 'drop-delivery', vector: 0x3b, count: 3 } as const;
    const one = judge(s, { builds, fault });
    const two = judge(s, { builds, fault });
    expect(two).toEqual(one);
  });
});

/**
 * Another thread: the TypeScript sources are transpiled (no type check, so parallel edits
 * that do not type-check yet cannot break this test, and dist/ is left alone) into a
 * temporary directory that sees the project's node_modules, and a worker_threads Worker runs
 * every seed there and hashes its log.
 */
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
(async () => {
  const { builtinRegistry } = await import(workerData.base + '/src/model/migration/builds.js');
  const { parseSchedule } = await import(workerData.base + '/src/model/schedule/validate.js');
  const { judge } = await import(workerData.base + '/src/oracles/verdict.js');
  const builds = builtinRegistry();
  const out = [];
  for (const { file, text } of workerData.seeds) {
    const events = [];
    const v = judge(parseSchedule(text, builds), {
      builds,
      sink: { event: (...e) => events.push(...e) },
    });
    const hash = createHash('sha256').update(new Uint8Array(Float64Array.from(events).buffer)).digest('hex');
    out.push({ file, count: events.length / 6, hash, verdict: JSON.stringify(v) });
  }
  parentPort.postMessage(out);
})().catch((e) => parentPort.postMessage({ error: String(e && e.stack || e) }));
`;

function transpileTree(fromDir: string, toDir: string): number {
  let n = 0;
  for (const name of readdirSync(fromDir)) {
    const from = join(fromDir, name);
    if (statSync(from).isDirectory()) {
      n += transpileTree(from, join(toDir, name));
      continue;
    }
    if (!name.endsWith('.ts')) continue;
    const out = ts.transpileModule(readFileSync(from, 'utf8'), {
      fileName: from,
      compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 },
    });
    mkdirSync(toDir, { recursive: true });
    writeFileSync(join(toDir, name.replace(/\.ts$/, '.js')), out.outputText);
    n++;
  }
  return n;
}

interface WorkerResult {
  file: string;
  count: number;
  hash: string;
  verdict: string;
}

describe('determinism across threads', () => {
  let dir = '';
  let results: WorkerResult[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'migfuzz-determinism-'));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    const files = transpileTree(join(ROOT, 'src'), join(dir, 'src'));
    expect(files).toBeGreaterThan(10);
    const reply = await new Promise<unknown>((resolve, reject) => {
      const w = new Worker(WORKER, {
        eval: true,
        workerData: {
          base: pathToFileURL(dir).href,
          seeds: seedFiles.map((file) => ({ file, text: seedText(file) })),
        },
      });
      w.once('message', (m) => {
        resolve(m);
        void w.terminate();
      });
      w.once('error', reject);
    });
    if (!Array.isArray(reply)) throw new Error(`worker failed: ${(reply as { error: string }).error}`);
    results = reply as WorkerResult[];
  }, 30_000);

  afterAll(() => {
    if (dir && relative(tmpdir(), dirname(dir)) === '') rmSync(dir, { recursive: true, force: true });
  });

  it('the worker ran every seed', () => {
    expect(results.map((r) => r.file)).toEqual(seedFiles);
  });

  it.each(seedFiles)('%s: the worker hashes the same event log and gives the same verdict', (file) => {
    const here = runOnce(parseSchedule(seedText(file), builds));
    const there = results.find((r) => r.file === file)!;
    expect(there.count).toBe(here.events.length / 6);
    expect(there.hash).toBe(digest(here.events));
    expect(there.verdict).toBe(here.verdict);
  });
});
