import { execFileSync, execSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeTrace } from '../../src/replay/trace.js';
import { ROOT, SEEDS, seedPath, seedTrace } from './helpers.js';

/**
 * Record a run here, then record it again and replay the trace in a fresh process and in a
 * worker thread: the same digest everywhere. The other side runs the compiled dist/ output
 * (`npm run build` first: vitest runs TypeScript, plain node cannot).
 */

const DIST = join(ROOT, 'dist');
const distUrl = pathToFileURL(DIST).href;
const tmp = mkdtempSync(join(tmpdir(), 'migfuzz-determinism-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Records each seed and replays each trace given; prints {seed: recordDigest, trace: replayDigest}. */
const SCRIPT = `
export async function digests(base, seeds, traces) {
  const { readFileSync } = await import('node:fs');
  const { builtinRegistry } = await import(base + '/src/model/migration/builds.js');
  const { parseSchedule } = await import(base + '/src/model/schedule/validate.js');
  const { recordRun } = await import(base + '/src/replay/record.js');
  const { replayTrace } = await import(base + '/src/replay/replay.js');
  const { decodeTrace } = await import(base + '/src/replay/trace.js');
  const builds = builtinRegistry();
  const recorded = seeds.map((f) => recordRun(parseSchedule(readFileSync(f, 'utf8'), builds), builds).digest);
  const replayed = traces.map((f) => {
    const r = replayTrace(decodeTrace(readFileSync(f)));
    return { identical: r.identical, digest: r.replayed.digest };
  });
  return { recorded, replayed };
}
`;

let traceFiles: string[] = [];
const here = (): string[] => SEEDS.map((s) => seedTrace(s).digest);

beforeAll(() => {
  try {
    execSync('npm run build', { cwd: ROOT, stdio: 'pipe' });
  } catch (e) {
    // Type errors elsewhere (parallel work) still emit JavaScript; what is needed must exist.
    if (
      !existsSync(join(DIST, 'src/replay/replay.js')) ||
      !existsSync(join(DIST, 'src/cli/replay-commands.js'))
    ) {
      throw e;
    }
  }
  writeFileSync(join(tmp, 'digests.mjs'), SCRIPT);
  traceFiles = SEEDS.map((s) => {
    const file = join(tmp, `${s}.mpk`);
    writeFileSync(file, encodeTrace(seedTrace(s)));
    return file;
  });
}, 120_000);

describe('determinism of recording and replay', () => {
  it('a fresh process records the same digests and replays every trace identically', () => {
    const main = `
      import { digests } from ${JSON.stringify(pathToFileURL(join(tmp, 'digests.mjs')).href)};
      const [seeds, traces] = JSON.parse(process.argv[1]);
      console.log(JSON.stringify(await digests(${JSON.stringify(distUrl)}, seeds, traces)));
    `;
    const out = execFileSync(
      process.execPath,
      ['--input-type=module', '-e', main, JSON.stringify([SEEDS.map(seedPath), traceFiles])],
      { encoding: 'utf8' },
    );
    const r = JSON.parse(out) as { recorded: string[]; replayed: { identical: boolean; digest: string }[] };
    expect(r.recorded).toEqual(here());
    expect(r.replayed).toEqual(here().map((digest) => ({ identical: true, digest })));
  });

  it('a worker thread does too', async () => {
    const worker = `
      const { parentPort, workerData } = require('node:worker_threads');
      import(workerData.script)
        .then((m) => m.digests(workerData.base, workerData.seeds, workerData.traces))
        .then((r) => parentPort.postMessage(r), (e) => parentPort.postMessage({ error: String(e && e.stack || e) }));
    `;
    const reply = await new Promise<unknown>((resolve, reject) => {
      const w = new Worker(worker, {
        eval: true,
        workerData: {
          script: pathToFileURL(join(tmp, 'digests.mjs')).href,
          base: distUrl,
          seeds: SEEDS.map(seedPath),
          traces: traceFiles,
        },
      });
      w.once('message', (m) => {
        resolve(m);
        void w.terminate();
      });
      w.once('error', reject);
    });
    expect(reply).not.toHaveProperty('error');
    const r = reply as { recorded: string[]; replayed: { identical: boolean; digest: string }[] };
    expect(r.recorded).toEqual(here());
    expect(r.replayed).toEqual(here().map((digest) => ({ identical: true, digest })));
  });

  it('as commands in a real process: run --trace then replay exits 0; a damaged trace exits 3 with one line', () => {
    // The commands as main.ts wires them (src/cli/replay-commands.ts), in a process of their own.
    const cli = (args: string[]): { status: number | null; stdout: string; stderr: string } => {
      const main = `
        import * as c from ${JSON.stringify(`${distUrl}/src/cli/replay-commands.js`)};
        import { builtinRegistry } from ${JSON.stringify(`${distUrl}/src/model/migration/builds.js`)};
        import { parseSchedule } from ${JSON.stringify(`${distUrl}/src/model/schedule/validate.js`)};
        import { readFileSync } from 'node:fs';
        const [cmd, ...rest] = JSON.parse(process.argv[1]);
        if (cmd === 'run') {
          const builds = builtinRegistry();
          const v = c.runRecorded(parseSchedule(readFileSync(rest[0], 'utf8'), builds), builds, rest[2]);
          process.exitCode = v.findings.length > 0 ? 1 : 0;
        } else {
          process.exitCode = cmd === 'replay' ? c.cmdReplay(rest) : c.cmdShow(rest);
        }
      `;
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', main, JSON.stringify(args)], {
        encoding: 'utf8',
      });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    };
    const a = join(tmp, 'a.mpk');
    expect(cli(['run', seedPath('bug-a-virtio-serial'), '--trace', a]).status).toBe(1);
    const ok = cli(['replay', a]);
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/: identical: 76 events replayed/);
    const bytes = readFileSync(a);
    // A byte inside the events' bin (near the end of the data, before verdict/digest/stats).
    const at = bytes.indexOf(Buffer.from('verdict')) - 3;
    bytes[at] = bytes[at]! ^ 0xff;
    const bad = join(tmp, 'bad.mpk');
    writeFileSync(bad, bytes);
    const r = cli(['replay', bad]);
    expect([3, 4]).toContain(r.status);
    if (r.status === 3) {
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^migfuzz: .*bad\.mpk: /);
    }
    expect(r.stderr).not.toMatch(/^\s+at /m);
    const vcd = join(tmp, 'a.vcd');
    expect(cli(['show', a, '--vcd', vcd]).status).toBe(0);
    expect(readFileSync(vcd, 'utf8')).toContain('$enddefinitions $end');
  });
});
