import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeEach, describe, expect, it, type MockInstance, vi } from 'vitest';
import { main } from '../../src/cli/main.js';

/**
 * The command line contract (docs/cli.md): exit 0 no finding, 1 findings, 2 usage error,
 * 3 invalid input file with one line saying what and where; `--json` prints one JSON object;
 * every finding ends with the command that reproduces it; never a stack trace.
 */

const seed = (name: string): string =>
  fileURLToPath(new URL(`../../corpus/seeds/${name}.json`, import.meta.url));
const BUG_A = seed('bug-a-virtio-serial');
const CLEAN = seed('uart-echo');

const tmp = mkdtempSync(join(tmpdir(), 'migfuzz-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let fileNo = 0;
function tempFile(content: string, ext = '.json'): string {
  const file = join(tmp, `f${fileNo++}${ext}`);
  writeFileSync(file, content);
  return file;
}

let log: MockInstance<typeof console.log>;
let err: MockInstance<typeof console.error>;
beforeEach(() => {
  log = vi.spyOn(console, 'log').mockImplementation(() => {});
  err = vi.spyOn(console, 'error').mockImplementation(() => {});
});
afterEach(() => {
  vi.restoreAllMocks();
});

const printed = (spy: MockInstance<(...args: unknown[]) => void>): string =>
  spy.mock.calls.map((args) => args.map(String).join(' ')).join('\n');
const stdout = (): string => printed(log as unknown as MockInstance<(...args: unknown[]) => void>);
const stderr = (): string => printed(err as unknown as MockInstance<(...args: unknown[]) => void>);
/** A V8 stack frame line: "    at fn (file:line:col)". */
const STACK = /^\s+at .+:\d+:\d+\)?$/m;

function run(argv: string[]): { code: number; out: string; errText: string } {
  const code = main(argv);
  if (typeof code !== 'number') throw new Error(`${argv[0]} ran asynchronously`);
  const result = { code, out: stdout(), errText: stderr() };
  expect(result.out).not.toMatch(STACK);
  expect(result.errText).not.toMatch(STACK);
  return result;
}

const scheduleDoc = (steps: unknown[]) => ({
  format: 'migfuzz.schedule',
  version: 1,
  seed: 1,
  machine: 'pc-i440fx-9.2',
  src: { build: 'qemu-9.2', backends: { 'vser0.port1': 'socket' } },
  dst: { build: 'qemu-9.2', backends: { 'vser0.port1': 'socket' } },
  devices: { vser0: { kind: 'virtio-serial', irq: 'intx', ports: [{ id: 1 }] } },
  steps,
  horizon: 10_000_000,
});

describe('migfuzz run', () => {
  it('exits 1 and prints every finding ending with the command that reproduces it', () => {
    const { code, out, errText } = run(['run', BUG_A]);
    expect(code).toBe(1);
    expect(errText).toBe('');
    expect(out).toContain('3 findings');
    for (const sig of [
      'lost-interrupt:vser0:handler-not-run',
      'stuck-irq-line:vser0:remote-irr',
      'stale-guest-view:vser0:host-connected',
    ]) {
      expect(out).toContain(sig);
    }
    // Each finding's block ends with its reproduce line (the next line starts a new finding
    // or the output ends).
    const lines = out.split('\n');
    const starts = lines.flatMap((l, i) => (/^ {2}\S/.test(l) ? [i] : []));
    expect(starts).toHaveLength(3);
    for (const k of starts.keys()) {
      const end = (starts[k + 1] ?? lines.length) - 1;
      expect(lines[end]).toMatch(/reproduce: npx migfuzz run /);
      expect(lines[end]).toContain(BUG_A);
    }
  });

  it('exits 0 without findings', () => {
    const { code, out, errText } = run(['run', CLEAN]);
    expect(code).toBe(0);
    expect(errText).toBe('');
    expect(out).toContain('no finding');
  });

  it('--json prints one JSON object with the findings and their reproduce command', () => {
    const { code } = run(['run', BUG_A, '--json']);
    expect(code).toBe(1);
    expect(log).toHaveBeenCalledTimes(1);
    expect(err).not.toHaveBeenCalled();
    const doc = JSON.parse(String(log.mock.calls[0]![0])) as { findings: Record<string, unknown>[] };
    expect(Array.isArray(doc.findings)).toBe(true);
    expect(doc.findings).toHaveLength(3);
    for (const f of doc.findings) {
      expect(typeof f.oracle).toBe('string');
      expect(typeof f.device).toBe('string');
      expect(typeof f.at).toBe('number');
      expect(typeof f.message).toBe('string');
      expect(f.signature).toBe(`${f.oracle}:${f.device}:${String(f.signature).split(':')[2]}`);
      expect(f.reproduce).toMatch(/^npx migfuzz run /);
    }
    // The reproduce command does reproduce: same findings.
    const repro = String(doc.findings[0]!.reproduce).split(' ').slice(2);
    log.mockClear();
    expect(main([...repro, '--json'])).toBe(1);
    const again = JSON.parse(String(log.mock.calls[0]![0])) as { findings: Record<string, unknown>[] };
    expect(again.findings.map((f) => f.signature)).toEqual(doc.findings.map((f) => f.signature));
  });

  it('--json without findings prints an empty findings array and exits 0', () => {
    const { code } = run(['run', CLEAN, '--json']);
    expect(code).toBe(0);
    expect(log).toHaveBeenCalledTimes(1);
    expect(JSON.parse(String(log.mock.calls[0]![0])).findings).toEqual([]);
  });

  it('--builds adds user builds, and the reproduce command keeps them', () => {
    const buildsFile = tempFile(
      JSON.stringify({
        builds: [
          {
            name: 'qemu-1.2-fixed',
            base: 'qemu-1.2',
            revisions: { virtioSerialPortOpen: 'timer', vmClockAtCreation: 'disabled' },
          },
          { name: 'qemu-1.3-regressed', base: 'qemu-1.3', revisions: { virtioSerialPortOpen: 'in-load' } },
        ],
      }),
    );
    const onBuild = (build: string): string => {
      const a = JSON.parse(readFileSync(BUG_A, 'utf8'));
      a.src.build = build;
      a.dst.build = build;
      return tempFile(JSON.stringify(a));
    };
    const fixed = run(['run', onBuild('qemu-1.2-fixed'), '--builds', buildsFile]);
    expect(fixed.code).toBe(0);
    expect(fixed.out).toContain('no finding');
    log.mockClear();
    const file = onBuild('qemu-1.3-regressed');
    const { code, out } = run(['run', file, '--builds', buildsFile, '--json']);
    expect(code).toBe(1);
    const doc = JSON.parse(out) as { findings: { signature: string; reproduce: string }[] };
    expect(doc.findings.map((f) => f.signature)).toContain('stale-guest-view:vser0:host-connected');
    for (const f of doc.findings) expect(f.reproduce).toBe(`npx migfuzz run ${file} --builds ${buildsFile}`);
  });
});

describe('invalid input files exit 3 with one line', () => {
  const oneLine = (r: { code: number; out: string; errText: string }): string => {
    expect(r.code).toBe(3);
    expect(r.errText).not.toBe('');
    expect(r.errText.split('\n')).toHaveLength(1);
    expect(err).toHaveBeenCalledTimes(1);
    return r.errText;
  };

  it('a step naming a missing port names the field', () => {
    const file = tempFile(
      JSON.stringify(scheduleDoc([{ at: 1000, do: 'guest.vport.open', dev: 'vser0', port: 7 }])),
    );
    const line = oneLine(run(['run', file]));
    expect(line).toContain(file);
    expect(line).toContain('steps[0].port: ');
  });

  it('a field of the wrong type names the field', () => {
    const file = tempFile(
      JSON.stringify(scheduleDoc([{ at: 1000, do: 'guest.vport.open', dev: 'vser0', port: 'one' }])),
    );
    expect(oneLine(run(['run', file]))).toContain('steps[0].port');
  });

  it('a missing field names it', () => {
    const { horizon: _, ...doc } = scheduleDoc([]);
    expect(oneLine(run(['run', tempFile(JSON.stringify(doc))]))).toContain('horizon');
  });

  it('a file that is not JSON', () => {
    expect(oneLine(run(['run', tempFile('{"format": "migfuzz.schedule",')]))).toMatch(/JSON/);
  });

  it('a missing file', () => {
    const missing = join(tmp, 'does-not-exist.json');
    expect(oneLine(run(['run', missing]))).toContain(missing);
  });

  it('a directory instead of a file', () => {
    expect(oneLine(run(['run', tmp]))).toContain(tmp);
  });

  it('--builds with a bad build file', () => {
    const bad = tempFile(JSON.stringify({ builds: [{ name: 'x', base: 'no-such-build' }] }));
    const line = oneLine(run(['run', CLEAN, '--builds', bad]));
    expect(line).toContain(bad);
    expect(line).toContain('builds[0].base');
  });

  it('--builds with a file that is not JSON, or missing', () => {
    oneLine(run(['run', CLEAN, '--builds', tempFile('not json')]));
    err.mockClear();
    oneLine(run(['run', CLEAN, '--builds', join(tmp, 'nope.json')]));
  });
});

describe('usage errors exit 2', () => {
  it.each([
    [['frobnicate']],
    [['run']],
    [['run', CLEAN, CLEAN]],
    [['run', CLEAN, '--frob']],
    [['run', CLEAN, '--json=yes']],
    [['run', CLEAN, '--builds']],
    [['run', CLEAN, '--json', '--json']],
    [[]],
  ])('%j', (argv) => {
    const { code, errText, out } = run(argv);
    expect(code).toBe(2);
    expect(`${errText}\n${out}`).toContain('usage: migfuzz');
  });

  it('names the unknown command or option', () => {
    expect(run(['frobnicate']).errText).toContain('frobnicate');
    err.mockClear();
    expect(run(['run', CLEAN, '--frob']).errText).toContain('--frob');
    err.mockClear();
    // On one line, whatever the argument holds.
    expect(run(['a\nb']).errText.split('\n')[0]).toBe('migfuzz: unknown command "a\\nb"');
  });

  it('start takes a limit of its own instead of the default 60 s', async () => {
    const out = join(tmp, 'start-out');
    const corpus = join(tmp, 'start-corpus');
    mkdirSync(corpus);
    const code = await main(['start', '--execs=20', '--seed', '1', '--corpus', corpus, '--out', out]);
    expect([0, 1]).toContain(code);
    const stats = JSON.parse(readFileSync(join(out, 'fuzzer_stats.json'), 'utf8')) as { execs: number };
    expect(stats.execs).toBe(20);
  });
});
