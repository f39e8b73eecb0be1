import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Packr, Unpackr } from 'msgpackr';
import { afterAll, afterEach, beforeEach, describe, expect, it, type MockInstance, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { ROOT } from '../replay/helpers.js';
import { STACK } from './capture.js';

/**
 * Issue 7: an unwritable output directory, a missing or unreadable corpus directory, a trace of
 * a newer format: one clear line on stderr, a non-zero exit (3, an input problem), and nothing
 * half-written.
 */

const tmp = mkdtempSync(join(tmpdir(), 'migfuzz-fuzz-errors-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const emptyCorpus = join(tmp, 'empty-corpus');
mkdirSync(emptyCorpus);
/** A plain file: a path under it fails with ENOTDIR, even for root. */
const aFile = join(tmp, 'a-file');
writeFileSync(aFile, 'not a directory\n');

/** A regression trace rewritten as version 2 (a newer migfuzz's). */
function newerTrace(): Uint8Array {
  const doc = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' }).unpack(
    readFileSync(join(ROOT, 'corpus', 'regressions', 'bug-b-shrunk.mpk')),
  ) as Record<string, unknown>;
  doc.version = 2;
  return new Packr({ useRecords: false, variableMapSize: true }).pack(doc);
}

let err: MockInstance<(...args: unknown[]) => void>;
let out: MockInstance<(...args: unknown[]) => void>;
let stdout: string[] = [];
beforeEach(() => {
  err = vi.spyOn(console, 'error').mockImplementation(() => {}) as unknown as typeof err;
  out = vi.spyOn(console, 'log').mockImplementation(() => {}) as unknown as typeof out;
  stdout = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
    stdout.push(String(s));
    return true;
  });
});
afterEach(() => {
  vi.restoreAllMocks();
});

/** Runs the command line in this process: its exit code and its stderr lines. */
async function cli(argv: string[]): Promise<{ code: number; err: string[] }> {
  const code = await main(argv);
  const lines = err.mock.calls.flatMap((args) => args.map(String).join(' ').split('\n'));
  const all = [...lines, ...out.mock.calls.map(String), ...stdout].join('\n');
  expect(all).not.toMatch(STACK);
  return { code, err: lines };
}

/** Every file under `dir`, relative. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort();
}

const fuzz = (extra: string[]): string[] => ['fuzz', '--execs', '50', '--seed', '1', ...extra];

describe('fuzz: an output directory that cannot be written', () => {
  it('--out under a plain file: exit 3, one line naming the directory, nothing written', async () => {
    const dir = join(aFile, 'out');
    const r = await cli(fuzz(['--corpus', emptyCorpus, '--out', dir]));
    expect(r.code).toBe(3);
    expect(r.err).toEqual([
      `migfuzz: ${dir}: cannot create the output directory (a path component is not a directory)`,
    ]);
    expect(readFileSync(aFile, 'utf8')).toBe('not a directory\n');
  });

  it('--out naming a plain file: exit 3, the file untouched', async () => {
    const r = await cli(fuzz(['--corpus', emptyCorpus, '--out', aFile]));
    expect(r.code).toBe(3);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).toMatch(/^migfuzz: .*a-file: cannot create the output directory \(/);
    expect(statSync(aFile).isFile()).toBe(true);
    expect(readFileSync(aFile, 'utf8')).toBe('not a directory\n');
  });

  it('an earlier directory whose queue/ is a file: exit 3, one line', async () => {
    const dir = join(tmp, 'queue-is-a-file');
    mkdirSync(dir);
    writeFileSync(join(dir, 'queue'), 'x');
    const r = await cli(fuzz(['--corpus', emptyCorpus, '--out', dir]));
    expect(r.code).toBe(3);
    expect(r.err).toEqual([`migfuzz: ${dir}: cannot create the output directory (a file is in the way)`]);
    expect(filesUnder(dir)).toEqual(['queue']);
  });

  it('a write failing during the campaign: exit 3, one line, no partial file under its real name', async () => {
    const dir = join(tmp, 'write-fails');
    mkdirSync(dir);
    // The stats file's temporary name (writeFileAtomic: FILE.tmp-PID) taken by a directory:
    // opening it for writing fails as a full or read-only disk would.
    mkdirSync(join(dir, `fuzzer_stats.json.tmp-${process.pid}`));
    const r = await cli(fuzz(['--corpus', join(ROOT, 'corpus', 'seeds'), '--out', dir]));
    expect(r.code).toBe(3);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).toMatch(/^migfuzz: .*fuzzer_stats\.json: cannot write \(is a directory\)$/);
    expect(existsSync(join(dir, 'fuzzer_stats.json'))).toBe(false);
    // Whatever the campaign saved before is whole.
    for (const name of readdirSync(join(dir, 'queue'))) {
      expect(name).toMatch(/\.json$/);
      expect(() => JSON.parse(readFileSync(join(dir, 'queue', name), 'utf8'))).not.toThrow();
    }
  });
});

describe('fuzz: a corpus directory that cannot be read', () => {
  it('a missing --corpus: exit 3, one line, no output directory created', async () => {
    const dir = join(tmp, 'never-created');
    const missing = join(tmp, 'no-such-corpus');
    const r = await cli(fuzz(['--corpus', missing, '--out', dir]));
    expect(r.code).toBe(3);
    expect(r.err).toEqual([`migfuzz: ${missing}: no such corpus directory`]);
    expect(existsSync(dir)).toBe(false);
  });

  it('a --corpus that is a plain file: exit 3, one line, no output directory created', async () => {
    const dir = join(tmp, 'never-created-2');
    const r = await cli(fuzz(['--corpus', aFile, '--out', dir]));
    expect(r.code).toBe(3);
    expect(r.err).toEqual([
      `migfuzz: ${aFile}: cannot read the corpus directory (a path component is not a directory)`,
    ]);
    expect(existsSync(dir)).toBe(false);
  });
});

describe('a trace of a newer format', () => {
  const corpus = join(tmp, 'newer-corpus');
  mkdirSync(corpus);
  const trace = join(corpus, 'from-the-future.mpk');
  writeFileSync(trace, newerTrace());

  it('in the fuzz corpus: exit 3, one line saying so, no output directory created', async () => {
    const dir = join(tmp, 'never-created-3');
    const r = await cli(fuzz(['--corpus', corpus, '--out', dir]));
    expect(r.code).toBe(3);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).toContain(trace);
    expect(r.err[0]).toMatch(/trace version 2 is newer than this migfuzz reads \(1\): upgrade migfuzz/);
    expect(existsSync(dir)).toBe(false);
  });

  for (const cmd of [['run'], ['replay'], ['show'], ['shrink']]) {
    it(`${cmd[0]} TRACE: exit 3, one line saying so`, async () => {
      const r = await cli([...cmd, trace]);
      expect(r.code).toBe(3);
      expect(r.err).toHaveLength(1);
      expect(r.err[0]).toMatch(/^migfuzz: .*from-the-future\.mpk: .*trace version 2 is newer/);
    });
  }

  it('shrink -o OUT of it writes nothing', async () => {
    const o = join(tmp, 'shrunk-of-newer.mpk');
    const r = await cli(['shrink', trace, '-o', o]);
    expect(r.code).toBe(3);
    expect(existsSync(o)).toBe(false);
  });
});

describe('fuzz: a build file that is not usable', () => {
  it.each([
    ['not JSON', 'not json\n', 'build file: not valid JSON'],
    [
      'an unknown base build',
      '{"builds": [{"name": "x", "base": "nope"}]}',
      'builds[0].base: unknown build "nope"',
    ],
  ])('%s: exit 3, one line naming the file and the problem', async (_what, text, problem) => {
    const file = join(tmp, `builds-${problem.length}.json`);
    writeFileSync(file, text);
    const dir = join(tmp, `out-builds-${problem.length}`);
    const r = await cli(fuzz(['--corpus', emptyCorpus, '--out', dir, '--builds', file]));
    expect(r.code).toBe(3);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).toContain(`migfuzz: ${file}: `);
    expect(r.err[0]).toContain(problem);
    expect(existsSync(dir)).toBe(false);
  });
});

describe('fuzz: an output directory the kernel will not create', () => {
  it.runIf(existsSync('/proc/self'))('--out under /proc: exit 3 and one line, without hanging', async () => {
    const r = await cli(fuzz(['--corpus', emptyCorpus, '--out', '/proc/migfuzz-out']));
    expect(r.code).toBe(3);
    expect(r.err).toEqual(['migfuzz: /proc/migfuzz-out: cannot create the output directory (no such file)']);
  });
});
