import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/cli/args.js';
import { InputError } from '../../src/cli/exit-codes.js';
import { type FuzzIo, runFuzz, TABLE_WIDTH } from '../../src/cli/fuzz-command.js';
import { fuzzSettings, parseDuration } from '../../src/cli/fuzz-settings.js';
import { signatureDir } from '../../src/cli/out-dir.js';
import { BUILTIN_BUILDS } from '../../src/model/migration/builds.js';
import { scheduleToJson } from '../../src/model/schedule/to-json.js';
import { parseSchedule } from '../../src/model/schedule/validate.js';
import { replayTrace } from '../../src/replay/replay.js';
import { decodeTrace } from '../../src/replay/trace.js';
import { builds, ROOT } from '../replay/helpers.js';

/**
 * `migfuzz fuzz` (docs/cli.md) run in-process with a fake clock: the AFL-shaped output
 * directory, resuming from it, and the usage and input errors.
 */

const tmp = mkdtempSync(join(tmpdir(), 'migfuzz-fuzz-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const emptyCorpus = join(tmp, 'empty-corpus');
mkdirSync(emptyCorpus);
const read = (file: string): string => readFileSync(file, 'utf8');

/** A fake io: the clock advances 7 ms per reading, output is collected, no signals. */
function fakeIo(): FuzzIo & { text: () => string } {
  let t = 1_700_000_000_000;
  const out: string[] = [];
  return {
    now: () => {
      t += 7;
      return t;
    },
    isTty: false,
    write: (s) => out.push(s),
    onStop: () => {},
    readText: read,
    text: () => out.join(''),
  };
}

const OUT = join(tmp, 'out');
const ARGS = ['--execs', '400', '--seed', '1', '--corpus', emptyCorpus, '--out', OUT];

interface Stats {
  start_time: number;
  seed: number;
  execs: number;
  execs_per_sec: number;
  corpus_size: number;
  coverage: number;
  findings: Record<string, number>;
}
const stats = (): Stats => JSON.parse(read(join(OUT, 'fuzzer_stats.json'))) as Stats;

describe('migfuzz fuzz --execs 400 --seed 1 from an empty corpus', () => {
  let code: number;
  let printed: string;
  let firstStats: Stats;
  let firstQueue: string[];
  beforeAll(async () => {
    const io = fakeIo();
    code = await runFuzz(fuzzSettings(ARGS, read, 0), io);
    printed = io.text();
    firstStats = stats();
    firstQueue = readdirSync(join(OUT, 'queue')).sort();
  });

  it('exits 1 with findings and prints the table with replay commands', () => {
    expect(code).toBe(1);
    expect(printed).toMatch(/^migfuzz: fuzzing .* with seed 1, 1 worker\(s\), into /);
    // A group header per kind: new findings (with their builds) or known ones (with their cause).
    expect(printed).toMatch(/^ {2}signature +(builds|known cause) +count {2}first seen$/m);
    // Every line of the table but the reproduce commands fits 100 columns.
    const table = printed.slice(printed.search(/^(NEW|known) \(/m));
    for (const line of table.trimEnd().split('\n'))
      if (!line.includes('npx migfuzz')) expect(line.length, line).toBeLessThanOrEqual(TABLE_WIDTH);
    expect(printed).toMatch(/^\d+ new, \d+ known, in 400 executions$/m);
    const crashes = readdirSync(join(OUT, 'crashes'));
    expect(crashes.length).toBeGreaterThan(0);
    for (const sig of crashes) {
      expect(printed).toContain(`npx migfuzz replay ${join(OUT, 'crashes', sig, 'shrunk.mpk')}`);
    }
  });

  it('writes queue/, crashes/SIG/{original,shrunk}.{json,mpk} and finding.json, hangs/', () => {
    for (const sub of ['queue', 'crashes', 'hangs']) expect(existsSync(join(OUT, sub))).toBe(true);
    expect(firstQueue.length).toBeGreaterThan(0);
    for (const name of firstQueue) {
      expect(name).toMatch(/^id:\d{6},exec:\d+,op:[a-z-]+\.json$/);
      // Every queue entry is a schedule the CLI can run.
      expect(() => parseSchedule(read(join(OUT, 'queue', name)), builds)).not.toThrow();
    }
    const crashes = readdirSync(join(OUT, 'crashes'));
    expect(crashes.length).toBeGreaterThan(0);
    for (const sig of crashes) {
      const dir = join(OUT, 'crashes', sig);
      expect(readdirSync(dir).sort()).toEqual([
        'finding.json',
        'original.json',
        'original.mpk',
        'shrunk.json',
        'shrunk.mpk',
      ]);
      const finding = JSON.parse(read(join(dir, 'finding.json')));
      expect(signatureDir(finding.signature)).toBe(sig);
      expect(finding).toMatchObject({ seed: 1 });
      expect(finding.first_exec).toBeGreaterThan(0);
      const original = parseSchedule(read(join(dir, 'original.json')), builds);
      const shrunk = parseSchedule(read(join(dir, 'shrunk.json')), builds);
      expect(shrunk.steps.length).toBeLessThanOrEqual(original.steps.length);
      for (const [json, mpk] of [
        [original, 'original.mpk'],
        [shrunk, 'shrunk.mpk'],
      ] as const) {
        const t = decodeTrace(readFileSync(join(dir, mpk)));
        expect(scheduleToJson(t.schedule)).toEqual(scheduleToJson(json));
        expect(t.verdict.findings.map((f) => f.signature)).toContain(finding.signature);
      }
    }
  });

  it('finds both seed bugs, and every saved shrunk trace replays identically', () => {
    for (const sig of ['stuck-irq-line:vser0:remote-irr', 'migration-failed:serial0:tsr-not-empty'])
      expect(existsSync(join(OUT, 'crashes', signatureDir(sig), 'finding.json')), sig).toBe(true);
    for (const sig of readdirSync(join(OUT, 'crashes'))) {
      const r = replayTrace(decodeTrace(readFileSync(join(OUT, 'crashes', sig, 'shrunk.mpk'))));
      expect(r.identical, sig).toBe(true);
    }
  });

  it('fuzzer_stats.json: execs, execs/s, corpus size, coverage, findings by signature, start time, seed', () => {
    expect(firstStats.seed).toBe(1);
    expect(firstStats.execs).toBeGreaterThanOrEqual(400);
    expect(firstStats.execs_per_sec).toBeGreaterThan(0);
    expect(firstStats.corpus_size).toBeGreaterThan(0);
    expect(firstStats.coverage).toBeGreaterThan(0);
    // Seconds since the epoch of the (fake) clock when the campaign started.
    expect(firstStats.start_time).toBeGreaterThanOrEqual(1_700_000_000);
    expect(firstStats.start_time).toBeLessThan(1_700_000_001);
    expect(Object.keys(firstStats.findings)).toContain('migration-failed:serial0:tsr-not-empty');
    for (const n of Object.values(firstStats.findings)) expect(n).toBeGreaterThan(0);
    expect(Object.keys(firstStats.findings).length).toBe(
      readdirSync(join(OUT, 'crashes')).length + readdirSync(join(OUT, 'hangs')).length,
    );
  });

  it('plot_data.csv: a header and one row per stats update, the last one the final state', () => {
    const rows = read(join(OUT, 'plot_data.csv')).trim().split('\n');
    expect(rows[0]).toBe('# relative_time_s,execs,execs_per_sec,corpus_size,coverage,findings');
    expect(rows.length).toBeGreaterThan(1);
    for (const row of rows.slice(1)) expect(row).toMatch(/^\d+\.\d,\d+,\d+,\d+,\d+,\d+$/);
    const last = rows.at(-1)!.split(',').map(Number);
    expect(last[1]).toBe(firstStats.execs);
    expect(last[3]).toBe(firstStats.corpus_size);
    expect(last[4]).toBe(firstStats.coverage);
    expect(last[5]).toBe(Object.keys(firstStats.findings).length);
  });

  it('a second run on the same --out resumes: it reads the queue and does not save known crashes again', async () => {
    const crashes = readdirSync(join(OUT, 'crashes'));
    // Mark every saved shrunk schedule: a crash saved again would overwrite the mark.
    for (const sig of crashes) writeFileSync(join(OUT, 'crashes', sig, 'shrunk.json'), 'MARK');
    const queued = new Map(firstQueue.map((n) => [n, read(join(OUT, 'queue', n))]));
    const io = fakeIo();
    await runFuzz(fuzzSettings(ARGS, read, 0), io);
    for (const sig of crashes) expect(read(join(OUT, 'crashes', sig, 'shrunk.json'))).toBe('MARK');
    expect(io.text()).toContain('; saved before:');
    // The earlier run's findings are listed again, with their first execution and origin.
    for (const sig of crashes) expect(io.text()).toContain(`${join(OUT, 'crashes', sig)}`);
    expect(io.text()).toMatch(
      /^migfuzz: resuming from \d+ queue entries of .* \(\d+ executions and \d+ findings so far; --fresh starts over\)$/m,
    );
    const s = stats();
    // Totals go on from the first campaign's, and so does the plot.
    expect(s.execs).toBe(firstStats.execs + 400);
    for (const [sig, n] of Object.entries(firstStats.findings))
      expect(s.findings[sig]).toBeGreaterThanOrEqual(n);
    const plotRows = read(join(OUT, 'plot_data.csv')).trim().split('\n').slice(1);
    const execsColumn = plotRows.map((row) => Number(row.split(',')[1]));
    expect(execsColumn).toEqual([...execsColumn].sort((a, b) => a - b));
    expect(execsColumn.at(-1)).toBe(s.execs);
    // The earlier entries were imported into the new campaign's queue.
    expect(s.corpus_size).toBeGreaterThanOrEqual(firstQueue.length);
    expect(s.corpus_size).toBeGreaterThan(firstStats.corpus_size);
    // Earlier queue files are kept as they were; new ones continue the numbering.
    const now = readdirSync(join(OUT, 'queue')).sort();
    for (const [name, text] of queued) expect(read(join(OUT, 'queue', name))).toBe(text);
    const ids = now.filter((n) => !queued.has(n)).map((n) => Number(/^id:(\d+)/.exec(n)![1]));
    for (const id of ids) expect(id).toBeGreaterThanOrEqual(firstQueue.length);
  });
});

describe('fuzz settings and input errors', () => {
  it('usage errors: --time with --execs, a bad --seed, an unknown build, a FILE, bad numbers', () => {
    const settings = (argv: string[]) => () => fuzzSettings(argv, read, 0);
    expect(settings(['--time', '10s', '--execs', '5'])).toThrow(UsageError);
    expect(settings(['--time', '10s', '--execs', '5'])).toThrow('give --time or --execs, not both');
    for (const seed of ['-1', 'x', '1.5', '4294967296'])
      expect(settings(['--seed', seed]), seed).toThrow(UsageError);
    expect(settings(['--builds', 'qemu-1.2,qemu-77.0'])).toThrow(/unknown build "qemu-77.0"/);
    expect(settings(['--builds', 'qemu-77.0'])).toThrow(UsageError);
    expect(settings(['extra'])).toThrow(UsageError);
    expect(settings(['--execs', '0'])).toThrow(UsageError);
    expect(settings(['--workers', '0'])).toThrow(UsageError);
    expect(settings(['--time', 'soon'])).toThrow(UsageError);
    expect(settings(['--time', '0s'])).toThrow('--time: "0s" is no time at all');
  });

  it('defaults: 60 s, one worker, out/, corpus/seeds, every built-in build; the seed from the clock', () => {
    const s = fuzzSettings([], read, 2 ** 32 + 5);
    expect(s).toMatchObject({ seed: 5, timeMs: 60_000, execs: null, workers: 1, out: 'out' });
    expect(s.corpus).toBeNull(); // corpus/seeds when there is one
    expect(s.allowed).toEqual(BUILTIN_BUILDS.map((b) => b.name));
    expect(fuzzSettings(['--execs', '9', '--seed', '4294967295'], read, 0)).toMatchObject({
      seed: 4294967295,
      execs: 9,
      timeMs: null,
    });
    expect(parseDuration('90')).toBe(90_000);
    expect(parseDuration('2m')).toBe(120_000);
    expect(parseDuration('250ms')).toBe(250);
  });

  it('a missing corpus directory is an input error (exit 3 in main), even corpus/seeds named', async () => {
    const named = fuzzSettings(
      ['--execs', '5', '--corpus', join('corpus', 'seeds'), '--out', join(tmp, 'o')],
      read,
      0,
    );
    const cwd = process.cwd();
    process.chdir(tmp);
    try {
      await expect(runFuzz(named, fakeIo())).rejects.toThrow(
        `${join('corpus', 'seeds')}: no such corpus directory`,
      );
    } finally {
      process.chdir(cwd);
    }
    const st = fuzzSettings(
      ['--execs', '10', '--corpus', join(tmp, 'no-corpus'), '--out', join(tmp, 'out-missing')],
      read,
      0,
    );
    await expect(runFuzz(st, fakeIo())).rejects.toThrow(InputError);
    await expect(runFuzz(st, fakeIo())).rejects.toThrow(
      `${join(tmp, 'no-corpus')}: no such corpus directory`,
    );
  });

  it('the seed corpus runs first and joins the queue', async () => {
    const out = join(tmp, 'out-seeds');
    const io = fakeIo();
    await runFuzz(
      fuzzSettings(
        ['--execs', '64', '--seed', '3', '--corpus', `${ROOT}corpus/seeds`, '--out', out],
        read,
        0,
      ),
      io,
    );
    const s = JSON.parse(read(join(out, 'fuzzer_stats.json'))) as Stats;
    // bug-a and bug-b are among the seeds: their signatures are found at once.
    expect(Object.keys(s.findings)).toEqual(
      expect.arrayContaining(['stuck-irq-line:vser0:remote-irr', 'migration-failed:serial0:tsr-not-empty']),
    );
    expect(s.corpus_size).toBeGreaterThanOrEqual(5);
    // Initial inputs are not copied into queue/ (they are in the corpus already).
    for (const name of readdirSync(join(out, 'queue'))) expect(name).not.toContain('op:initial');
  });

  it('--builds also restricts the starting inputs and a resumed queue to those builds', async () => {
    const out = join(tmp, 'out-builds');
    const argv = ['--execs', '64', '--seed', '3', '--corpus', `${ROOT}corpus/seeds`, '--out', out];
    // A first campaign over every build fills queue/ with entries of many builds.
    await runFuzz(fuzzSettings(argv, read, 0), fakeIo());
    const buildsOf = (dir: string): Set<string> =>
      new Set(
        readdirSync(dir).flatMap((n) => {
          const doc = JSON.parse(read(join(dir, n))) as { src: { build: string }; dst: { build: string } };
          return [doc.src.build, doc.dst.build];
        }),
      );
    expect(buildsOf(join(out, 'queue')).size).toBeGreaterThan(1);
    const before = new Set(readdirSync(join(out, 'queue')));
    // Resumed with --builds qemu-9.2: neither the seeds (bug A is qemu-1.2, bug B rhel-7.4)
    // nor the earlier entries of other builds run, so nothing else is found or queued.
    const io = fakeIo();
    await runFuzz(fuzzSettings([...argv, '--builds', 'qemu-9.2'], read, 0), io);
    // They were saved by the first campaign and are listed as such, not found again.
    for (const sig of ['stuck-irq-line:vser0:remote-irr', 'migration-failed:serial0:tsr-not-empty'])
      expect(io.text()).toContain(
        `saved before:\n    npx migfuzz replay ${join(out, 'crashes', sig, 'shrunk.mpk')}`,
      );
    const added = readdirSync(join(out, 'queue')).filter((n) => !before.has(n));
    expect(added.length).toBeGreaterThan(0);
    for (const n of added) {
      const doc = JSON.parse(read(join(out, 'queue', n))) as {
        src: { build: string };
        dst: { build: string };
      };
      expect([doc.src.build, doc.dst.build]).toEqual(['qemu-9.2', 'qemu-9.2']);
    }
  });

  it('--event-budget: a hang under it is shrunk and recorded under it, and replays identically', async () => {
    const out = join(tmp, 'out-budget');
    await runFuzz(
      fuzzSettings(
        ['--execs', '30', '--seed', '1', '--corpus', emptyCorpus, '--out', out, '--event-budget', '200'],
        read,
        0,
      ),
      fakeIo(),
    );
    const dir = join(out, 'hangs', signatureDir('hang:-:event-budget'));
    const finding = JSON.parse(read(join(dir, 'finding.json'))) as { message: string };
    expect(finding.message).toContain('200');
    for (const name of ['original', 'shrunk']) {
      const trace = decodeTrace(readFileSync(join(dir, `${name}.mpk`)));
      expect(trace.stats.eventBudget).toBe(200);
      expect(trace.verdict.findings.map((f) => f.signature)).toContain('hang:-:event-budget');
      expect(replayTrace(trace).identical).toBe(true);
    }
    const shrunk = JSON.parse(read(join(dir, 'shrunk.json'))) as { steps: unknown[] };
    const original = JSON.parse(read(join(dir, 'original.json'))) as { steps: unknown[] };
    expect(shrunk.steps.length).toBeLessThanOrEqual(original.steps.length);
  });

  it('--no-coverage: findings as usual, but no queue entry is written and no coverage counted', async () => {
    const out = join(tmp, 'out-no-coverage');
    const st = fuzzSettings(
      ['--execs', '300', '--seed', '1', '--corpus', emptyCorpus, '--out', out, '--no-coverage'],
      read,
      0,
    );
    expect(st.coverage).toBe(false);
    expect(fuzzSettings(ARGS, read, 0).coverage).toBe(true);
    const code = await runFuzz(st, fakeIo());
    const s = JSON.parse(read(join(out, 'fuzzer_stats.json'))) as Stats;
    expect(s.execs).toBe(300);
    expect(s.coverage).toBe(0);
    expect(readdirSync(join(out, 'queue'))).toEqual([]);
    expect(code).toBe(Object.keys(s.findings).length > 0 ? 1 : 0);
  });
});
