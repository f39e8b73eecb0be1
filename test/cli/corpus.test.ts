import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/cli/args.js';
import { checkSeed, cmdCorpus, cmdShrink, seedName, shrunkPath } from '../../src/cli/corpus-commands.js';
import { scheduleToJson } from '../../src/model/schedule/to-json.js';
import { validateSchedule } from '../../src/model/schedule/validate.js';
import { judge } from '../../src/oracles/verdict.js';
import type { Trace } from '../../src/replay/format.js';
import { replayTrace } from '../../src/replay/replay.js';
import { decodeTrace, encodeTrace, makeTrace, traceRegistry } from '../../src/replay/trace.js';
import { builds, ROOT, seedTrace } from '../replay/helpers.js';
import { captureCli } from './capture.js';

/**
 * `shrink TRACE [-o OUT]` and `corpus add|check` (docs/cli.md): exit 0 done / all seeds
 * hold, 1 a seed that no longer reproduces its findings (recorded vs now), 2 usage
 * (UsageError), 3 an unusable input file (one line), never a stack trace.
 */

const BUG_A = 'stuck-irq-line:vser0:remote-irr';
const BUG_B = 'migration-failed:serial0:tsr-not-empty';
const GOLDEN_A = `${ROOT}corpus/regressions/bug-a.mpk`;
const GOLDEN_B = `${ROOT}corpus/regressions/bug-b.mpk`;

const tmp = mkdtempSync(join(tmpdir(), 'migfuzz-corpus-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let fileNo = 0;
const tempPath = (ext = '.mpk'): string => join(tmp, `t${fileNo++}${ext}`);
const tempDir = (): string => {
  const d = join(tmp, `d${fileNo++}`);
  mkdirSync(d);
  return d;
};
function traceFile(t: Trace, file = tempPath()): string {
  writeFileSync(file, encodeTrace(t));
  return file;
}
const read = (file: string): Trace => decodeTrace(readFileSync(file));

/** The trace `t` with another recorded verdict (a consistent trace: the digest covers it). */
function withFindings(t: Trace, findings: Trace['verdict']['findings']): Trace {
  const verdict = { ...t.verdict, findings };
  return makeTrace(t.schedule, traceRegistry(t), t.eventParts, t.eventCount, verdict, t.stats.vmEndNs);
}

const cli = captureCli();

/** Does removing any single step of the trace's schedule lose `signature`? */
function oneMinimal(t: Trace, signature: string): boolean {
  const doc = scheduleToJson(t.schedule) as { steps: unknown[] };
  return doc.steps.every((_, i) => {
    const smaller = { ...doc, steps: doc.steps.filter((_s, j) => j !== i) };
    const v = judge(validateSchedule(smaller, builds), { builds });
    return !v.findings.some((f) => f.signature === signature);
  });
}

describe('migfuzz shrink', () => {
  it('shrinks bug B to TRACE.shrunk.mpk: fewer steps, same signature, 1-minimal, replays identically', () => {
    const file = join(tempDir(), 'bug-b.mpk');
    copyFileSync(GOLDEN_B, file);
    const r = cli(cmdShrink, [file]);
    expect(r.code).toBe(0);
    expect(r.err).toEqual([]);
    const out = join(file, '..', 'bug-b.shrunk.mpk');
    expect(shrunkPath(file)).toBe(out);
    expect(r.out[0]).toMatch(
      new RegExp(`^${file}: shrunk ${BUG_B} from 3 to [12] steps? \\(\\d+ candidate runs\\)$`),
    );
    expect(r.out).toContain(`    reproduce: npx migfuzz replay ${out}`);
    const shrunk = read(out);
    expect(shrunk.schedule.steps.length).toBeLessThan(3);
    expect(shrunk.verdict.findings.map((f) => f.signature)).toContain(BUG_B);
    expect(oneMinimal(shrunk, BUG_B)).toBe(true);
    expect(replayTrace(shrunk).identical).toBe(true);
    // The input is left as it was.
    expect(readFileSync(file)).toEqual(readFileSync(GOLDEN_B));
  });

  it('--signature picks another finding of the trace; -o names the output', () => {
    const golden = read(GOLDEN_A);
    expect(golden.verdict.findings[0]!.signature).not.toBe(BUG_A);
    const out = tempPath();
    const r = cli(cmdShrink, [GOLDEN_A, '--signature', BUG_A, '-o', out]);
    expect(r.code).toBe(0);
    expect(r.out[0]).toMatch(new RegExp(`shrunk ${BUG_A} from 3 to 1 step `));
    expect(r.out).toContain(`    signature ${BUG_A}`);
    const shrunk = read(out);
    expect(shrunk.schedule.steps).toHaveLength(1);
    expect(shrunk.verdict.findings.map((f) => f.signature)).toContain(BUG_A);
    expect(oneMinimal(shrunk, BUG_A)).toBe(true);
    expect(existsSync(shrunkPath(GOLDEN_A))).toBe(false);
  });

  it('--json prints one object with the steps before and after and the replay command', () => {
    const out = tempPath();
    const r = cli(cmdShrink, [GOLDEN_B, '-o', out, '--json']);
    expect(r.code).toBe(0);
    expect(r.out).toHaveLength(1);
    const j = JSON.parse(r.out[0]!);
    expect(j).toMatchObject({ trace: GOLDEN_B, out, signature: BUG_B, stepsBefore: 3 });
    expect(j.stepsAfter).toBe(read(out).schedule.steps.length);
    expect(j.reproduce).toBe(`npx migfuzz replay ${out}`);
    expect(j.findings.map((f: { signature: string }) => f.signature)).toContain(BUG_B);
  });

  it('a trace with no finding, or one whose schedule no longer shows it, exits 3 with one line', () => {
    const clean = traceFile(seedTrace('uart-echo'));
    const r = cli(cmdShrink, [clean]);
    expect(r.code).toBe(3);
    expect(r.out).toEqual([]);
    expect(r.err).toEqual([`migfuzz: ${clean}: the trace has no finding to shrink`]);
    expect(existsSync(shrunkPath(clean))).toBe(false);

    const fake = {
      ...seedTrace('bug-b-serial').verdict.findings[0]!,
      signature: 'data-loss:serial0:made-up',
    };
    const stale = traceFile(withFindings(seedTrace('uart-echo'), [fake]));
    const s = cli(cmdShrink, [stale]);
    expect(s.code).toBe(3);
    expect(s.err).toHaveLength(1);
    expect(s.err[0]).toMatch(/no longer produces data-loss:serial0:made-up/);
  });

  it('bad files exit 3 with one line; usage problems are UsageErrors', () => {
    const missing = join(tmp, 'nope.mpk');
    expect(cli(cmdShrink, [missing]).err).toEqual([`migfuzz: ${missing}: cannot read (no such file)`]);
    const garbage = tempPath();
    writeFileSync(garbage, 'not a trace at all');
    const g = cli(cmdShrink, [garbage]);
    expect(g.code).toBe(3);
    expect(g.err).toHaveLength(1);
    expect(g.err[0]).toMatch(new RegExp(`^migfuzz: ${garbage}: `));
    expect(() => cmdShrink([])).toThrow(UsageError);
    expect(() => cmdShrink(['a.mpk', 'b.mpk'])).toThrow(UsageError);
    expect(() => cmdShrink([GOLDEN_B, '--bogus'])).toThrow(UsageError);
    expect(() => cmdShrink([GOLDEN_B, '-o'])).toThrow(UsageError);
    expect(() => cmdShrink([GOLDEN_B, '--signature', BUG_A, '-o', tempPath()])).toThrow(
      /is not a finding of .*bug-b\.mpk \(its findings: migration-failed:serial0:tsr-not-empty\)/,
    );
  });
});

describe('migfuzz corpus add / check', () => {
  it('add writes the re-recorded trace under its first signature; check then holds', () => {
    const dir = tempDir();
    const r = cli(cmdCorpus, ['add', GOLDEN_B, '--dir', dir]);
    expect(r.code).toBe(0);
    const seed = join(dir, 'migration-failed_serial0_tsr-not-empty.mpk');
    expect(seedName(BUG_B)).toBe('migration-failed_serial0_tsr-not-empty');
    expect(r.out[0]).toMatch(new RegExp(`^added ${seed}: \\d+ events, 1 finding, digest sha256:`));
    expect(r.out).toContain(`    reproduce: npx migfuzz replay ${seed}`);
    // The seed is the current recording of the trace's schedule.
    expect(read(seed).digest).toBe(seedTrace('bug-b-serial').digest);
    expect(readFileSync(seed)).toEqual(Buffer.from(encodeTrace(seedTrace('bug-b-serial'))));

    const c = cli(cmdCorpus, ['check', dir]);
    expect(c.code).toBe(0);
    expect(c.out).toEqual([`ok    ${seed}: 1 recorded finding reproduced`, `${dir}: 1 seed, 1 hold, 0 fail`]);
    expect(c.err).toEqual([]);
  });

  it('adding the same content again leaves the file; other content needs --force', () => {
    const dir = tempDir();
    expect(cli(cmdCorpus, ['add', GOLDEN_A, '--dir', dir, '--name', 'x']).code).toBe(0);
    const seed = join(dir, 'x.mpk');
    const before = readFileSync(seed);
    const again = cli(cmdCorpus, ['add', GOLDEN_A, '--dir', dir, '--name', 'x.mpk']);
    expect(again.code).toBe(0);
    expect(again.out).toEqual([`${seed}: already in the corpus with this content, unchanged`]);

    const refused = cli(cmdCorpus, ['add', GOLDEN_B, '--dir', dir, '--name', 'x']);
    expect(refused.code).toBe(3);
    expect(refused.err).toEqual([
      `migfuzz: ${seed}: exists with other content (give --force to replace it, or another --name)`,
    ]);
    expect(readFileSync(seed)).toEqual(before);

    expect(cli(cmdCorpus, ['add', GOLDEN_B, '--dir', dir, '--name', 'x', '--force']).code).toBe(0);
    expect(read(seed).verdict.findings.map((f) => f.signature)).toEqual([BUG_B]);
    expect(cli(cmdCorpus, ['check', dir]).code).toBe(0);
  });

  it('a trace without findings needs --name, and its seed must stay without findings', () => {
    const dir = tempDir();
    const clean = traceFile(seedTrace('vport-chat'));
    expect(() => cmdCorpus(['add', clean, '--dir', dir])).toThrow(/no finding to name the seed after/);
    expect(cli(cmdCorpus, ['add', clean, '--dir', dir, '--name', 'chat']).code).toBe(0);
    const c = cli(cmdCorpus, ['check', dir]);
    expect(c.code).toBe(0);
    expect(c.out[0]).toBe(`ok    ${join(dir, 'chat.mpk')}: still no finding`);
  });

  it('add re-records a stale trace and says its findings changed', () => {
    const dir = tempDir();
    const stale = traceFile(withFindings(seedTrace('bug-b-serial'), []));
    const r = cli(cmdCorpus, ['add', stale, '--dir', dir, '--name', 'restored']);
    expect(r.code).toBe(0);
    expect(r.err).toEqual([
      `migfuzz: note: ${stale} recorded no finding; its schedule now gives ${BUG_B}: the seed records the current run`,
    ]);
    expect(read(join(dir, 'restored.mpk')).verdict.findings.map((f) => f.signature)).toEqual([BUG_B]);
  });

  it('check fails (exit 1) on a seed whose recorded finding is not reproduced, reporting recorded vs now', () => {
    const dir = tempDir();
    const good = join(dir, 'a-good.mpk');
    copyFileSync(GOLDEN_B, good);
    const t = seedTrace('bug-b-serial');
    const claimed = { ...t.verdict.findings[0]!, signature: 'data-loss:serial0:never-happens' };
    const tampered = traceFile(
      withFindings(t, [...t.verdict.findings, claimed]),
      join(dir, 'b-tampered.mpk'),
    );
    // A consistent trace (it decodes): only re-running shows that its verdict is wrong.
    expect(read(tampered).verdict.findings).toHaveLength(2);
    const r = cli(cmdCorpus, ['check', dir]);
    expect(r.code).toBe(1);
    expect(r.out).toEqual([
      `ok    ${good}: 1 recorded finding reproduced`,
      `FAIL  ${tampered}`,
      `  recorded: ${BUG_B}, data-loss:serial0:never-happens`,
      `  now:      ${BUG_B}`,
      '  missing:  data-loss:serial0:never-happens',
      `  reproduce: npx migfuzz replay ${tampered}`,
      `${dir}: 2 seeds, 1 hold, 1 fail`,
    ]);
    const c = checkSeed(tampered);
    expect(c).toMatchObject({ holds: false, missing: ['data-loss:serial0:never-happens'], now: [BUG_B] });
  });

  it('check fails on a seed recorded without findings whose schedule now has one', () => {
    const dir = tempDir();
    const seed = traceFile(withFindings(seedTrace('bug-b-serial'), []), join(dir, 'quiet.mpk'));
    const r = cli(cmdCorpus, ['check', dir]);
    expect(r.code).toBe(1);
    expect(r.out).toEqual([
      `FAIL  ${seed}`,
      '  recorded: no finding',
      `  now:      ${BUG_B}`,
      `  new:      ${BUG_B} (recorded with no finding)`,
      `  reproduce: npx migfuzz replay ${seed}`,
      `${dir}: 1 seed, 0 hold, 1 fail`,
    ]);
  });

  it('check --json prints one object', () => {
    const dir = tempDir();
    copyFileSync(GOLDEN_A, join(dir, 'bug-a.mpk'));
    const r = cli(cmdCorpus, ['check', dir, '--json']);
    expect(r.code).toBe(0);
    expect(r.out).toHaveLength(1);
    const j = JSON.parse(r.out[0]!);
    expect(j.ok).toBe(true);
    expect(j.seeds).toHaveLength(1);
    expect(j.seeds[0]).toMatchObject({ file: join(dir, 'bug-a.mpk'), holds: true, missing: [] });
    expect(j.seeds[0].recorded).toContain(BUG_A);
  });

  it('an unreadable seed exits 3 with one line naming it (the others are still checked); a missing DIR exits 3', () => {
    const dir = tempDir();
    copyFileSync(GOLDEN_B, join(dir, 'b.mpk'));
    const bad = join(dir, 'a-bad.mpk');
    writeFileSync(bad, readFileSync(GOLDEN_B).subarray(0, 100));
    writeFileSync(join(dir, 'notes.txt'), 'not a seed');
    const r = cli(cmdCorpus, ['check', dir]);
    expect(r.code).toBe(3);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).toMatch(new RegExp(`^migfuzz: ${bad}: \\S`));
    expect(r.out).toEqual([
      `ok    ${join(dir, 'b.mpk')}: 1 recorded finding reproduced`,
      `${dir}: 2 seeds, 1 hold, 0 fail, 1 unreadable`,
    ]);
    const missing = join(tmp, 'no-such-dir');
    const m = cli(cmdCorpus, ['check', missing]);
    expect(m.code).toBe(3);
    expect(m.err).toEqual([`migfuzz: ${missing}: cannot read the seed directory (no such directory)`]);
    const add = cli(cmdCorpus, ['add', bad, '--dir', dir]);
    expect(add.code).toBe(3);
    expect(add.err).toHaveLength(1);
  });

  it('usage problems are UsageErrors', () => {
    expect(() => cmdCorpus([])).toThrow(UsageError);
    expect(() => cmdCorpus(['list'])).toThrow(/unknown corpus subcommand "list"/);
    expect(() => cmdCorpus(['add'])).toThrow(UsageError);
    expect(() => cmdCorpus(['add', GOLDEN_B, GOLDEN_A])).toThrow(UsageError);
    expect(() => cmdCorpus(['check', 'a', 'b'])).toThrow(UsageError);
    expect(() => cmdCorpus(['check', '--force'])).toThrow(UsageError);
    for (const name of ['../escape', 'a/b', '.hidden', '-dash', '', 'sp ace'])
      expect(() => cmdCorpus(['add', GOLDEN_B, '--dir', tmp, '--name', name]), name).toThrow(UsageError);
  });

  it('seed names from signatures keep letters, digits, "._-" only', () => {
    expect(seedName(BUG_A)).toBe('stuck-irq-line_vser0_remote-irr');
    expect(seedName('model-assert:-:crash-TypeError')).toBe('model-assert_-_crash-TypeError');
    expect(seedName('x:../../etc/passwd')).toBe('x_..-..-etc-passwd');
    expect(seedName(':::')).toBe('___');
    expect(seedName('...')).toBe('seed');
  });
});
