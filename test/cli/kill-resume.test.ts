import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtinRegistry } from '../../src/model/migration/builds.js';
import { parseSchedule } from '../../src/model/schedule/validate.js';
import { decodeTrace } from '../../src/replay/trace.js';
import { BIN, buildCli, ROOT } from '../replay/helpers.js';

/**
 * Issue 7: a real campaign process (the compiled CLI) killed with SIGKILL at several points,
 * each kill hitting a campaign resumed from the previous one's directory. After every kill,
 * each file under its real name is whole (written atomically: a temporary name, then a
 * rename); only temporary files may be left over. A last short campaign on the directory
 * resumes from it and exits normally.
 */

const tmp = mkdtempSync(join(tmpdir(), 'migfuzz-kill-resume-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const OUT = join(tmp, 'out');
// The seeds find both bugs at once: kills also land while findings are shrunk and saved.
const CORPUS = join(ROOT, 'corpus', 'seeds');
const builds = builtinRegistry();
/** writeFileAtomic's temporary names: FILE.tmp-PID. */
const TEMP = /\.tmp-\d+$/;

beforeAll(() => {
  buildCli();
}, 120_000);

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI; with `killAfterMs`, SIGKILLs it that long after it printed its first line. */
function cli(args: string[], killAfterMs?: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (killAfterMs !== undefined && timer === undefined)
        timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

interface Check {
  queue: number;
  findings: number;
  incompleteFindings: number;
  temps: string[];
}

/** Every file under OUT with a real name must be whole; returns what is there. */
function checkOut(): Check {
  const temps: string[] = [];
  const files = readdirSync(OUT, { recursive: true, encoding: 'utf8' }).filter((f) =>
    statSync(join(OUT, f)).isFile(),
  );
  for (const f of files) if (TEMP.test(f)) temps.push(f);
  const real = new Set(files.filter((f) => !TEMP.test(f)));

  const queue = readdirSync(join(OUT, 'queue')).filter((n) => !TEMP.test(n));
  for (const name of queue) {
    expect(name).toMatch(/^id:\d{6},exec:\d+,op:[^/]+\.json$/);
    // Each entry is a whole, valid schedule.
    expect(() => parseSchedule(readFileSync(join(OUT, 'queue', name), 'utf8'), builds), name).not.toThrow();
  }

  let findings = 0;
  let incompleteFindings = 0;
  for (const sub of ['crashes', 'hangs']) {
    for (const sig of readdirSync(join(OUT, sub))) {
      const dir = join(OUT, sub, sig);
      const has = (n: string): boolean => real.has(join(sub, sig, n));
      for (const n of ['original.json', 'shrunk.json']) {
        if (has(n)) expect(() => parseSchedule(readFileSync(join(dir, n), 'utf8'), builds), n).not.toThrow();
      }
      for (const n of ['original.mpk', 'shrunk.mpk']) {
        if (!has(n)) continue;
        const bytes = readFileSync(join(dir, n));
        // A model that threw has no trace: the file says why instead.
        if (bytes.subarray(0, 9).toString() === 'no trace:') continue;
        expect(() => decodeTrace(bytes), join(sig, n)).not.toThrow();
      }
      if (has('finding.json')) {
        // finding.json is written last: its presence means the directory is complete.
        findings++;
        const record = JSON.parse(readFileSync(join(dir, 'finding.json'), 'utf8')) as Record<string, unknown>;
        expect(typeof record.signature).toBe('string');
        for (const n of ['original.json', 'shrunk.json', 'original.mpk', 'shrunk.mpk'])
          expect(has(n), n).toBe(true);
      } else {
        incompleteFindings++;
      }
    }
  }

  if (real.has('fuzzer_stats.json')) {
    const stats = JSON.parse(readFileSync(join(OUT, 'fuzzer_stats.json'), 'utf8')) as Record<string, unknown>;
    expect(stats.seed).toBe(3);
    expect(typeof stats.execs).toBe('number');
  }
  if (real.has('plot_data.csv')) {
    const lines = readFileSync(join(OUT, 'plot_data.csv'), 'utf8').split('\n');
    expect(lines[0]).toMatch(/^# relative_time_s,/);
    expect(lines.at(-1)).toBe('');
    for (const line of lines.slice(1, -1)) expect(line).toMatch(/^[\d.]+(,\d+){5}$/);
  }
  return { queue: queue.length, findings, incompleteFindings, temps };
}

describe('a campaign killed with SIGKILL, then resumed', () => {
  const args = ['fuzz', '--time', '30s', '--seed', '3', '--corpus', CORPUS, '--out', OUT];
  const seen: Check[] = [];

  // Delays after the campaign's first line: early (corpus, first batches), while the seeds'
  // findings are shrunk and saved, and later in the search; each kill hits a resumed campaign.
  for (const [i, delay] of [50, 300, 800, 1500].entries()) {
    it(`kill ${i + 1}, ${delay} ms after it started: every file under its real name is whole`, async () => {
      const r = await cli(args, delay);
      expect(r.signal, r.stderr).toBe('SIGKILL');
      expect(r.stderr).toBe('');
      if (i > 0 && (seen.at(-1)?.queue ?? 0) > 0)
        expect(r.stdout).toMatch(/^migfuzz: resuming from \d+ queue entr/m);
      const c = checkOut();
      seen.push(c);
    });
  }

  it('the directory grew across the kills', () => {
    expect(seen).toHaveLength(4);
    expect(seen.at(-1)!.queue).toBeGreaterThan(0);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.queue).toBeGreaterThanOrEqual(seen[i - 1]!.queue);
  });

  it('a short campaign on the killed directory resumes from it and exits normally', async () => {
    const before = checkOut();
    const r = await cli(['fuzz', '--execs', '200', '--seed', '3', '--corpus', CORPUS, '--out', OUT]);
    expect(r.signal).toBeNull();
    expect(r.stderr).toBe('');
    expect([0, 1]).toContain(r.code);
    expect(r.stdout).toMatch(new RegExp(`^migfuzz: resuming from ${before.queue} queue entr`, 'm'));
    // Findings saved by the killed campaigns are not saved again.
    if (before.findings > 0) expect(r.stdout).toContain('; saved before:');
    const after = checkOut();
    expect(after.queue).toBeGreaterThanOrEqual(before.queue);
    expect(after.findings).toBeGreaterThanOrEqual(before.findings);
    // A finding whose saving a kill interrupted is saved whole when found again.
    expect(after.findings + after.incompleteFindings).toBeGreaterThanOrEqual(before.findings);
  });
});

describe('a campaign on two worker threads', () => {
  it('runs exactly --execs executions between them, and saves the seed bugs it finds', async () => {
    const out = join(tmp, 'workers');
    const r = await cli([
      'fuzz',
      '--execs',
      '301',
      '--workers',
      '2',
      '--seed',
      '1',
      '--corpus',
      CORPUS,
      '--out',
      out,
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(1);
    const stats = JSON.parse(readFileSync(join(out, 'fuzzer_stats.json'), 'utf8')) as {
      execs: number;
      workers: number;
      findings: Record<string, number>;
    };
    expect(stats).toMatchObject({ execs: 301, workers: 2 });
    for (const sig of ['stuck-irq-line:vser0:remote-irr', 'migration-failed:serial0:tsr-not-empty']) {
      expect(stats.findings[sig]).toBeGreaterThanOrEqual(1);
      const dir = join(out, 'crashes', sig);
      expect(readdirSync(dir).sort()).toEqual(
        ['finding.json', 'original.json', 'original.mpk', 'shrunk.json', 'shrunk.mpk'].sort(),
      );
    }
    expect(r.stdout).toContain('#301\t');
  });
});
