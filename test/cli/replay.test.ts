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
import { afterAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/cli/args.js';
import { InputError } from '../../src/cli/exit-codes.js';
import { writeFileAtomic } from '../../src/cli/fs.js';
import {
  cmdReplay,
  cmdShow,
  isTraceFile,
  readTraceFile,
  runRecorded,
  traceRunInput,
} from '../../src/cli/replay-commands.js';
import { validateBuildFile } from '../../src/model/migration/build-file.js';
import { decodeTrace, encodeTrace, makeTraceFromLog, traceRegistry } from '../../src/replay/trace.js';
import { builds, seedSchedule, seedTrace } from '../replay/helpers.js';
import { captureCli } from './capture.js';

/**
 * The trace commands (docs/cli.md): `replay` exits 0 identical / 4 diverged, `show`
 * 0, both 3 with one line for a bad trace, never a stack trace; `run --trace` and `run X.mpk`.
 */

const tmp = mkdtempSync(join(tmpdir(), 'migfuzz-replay-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let fileNo = 0;
const tempPath = (ext = '.mpk'): string => join(tmp, `t${fileNo++}${ext}`);
function traceFile(bytes: Uint8Array): string {
  const f = tempPath();
  writeFileSync(f, bytes);
  return f;
}

const cli = captureCli();

describe('migfuzz replay', () => {
  it('an identical replay exits 0 and says so, with the verdict and how to reproduce it', () => {
    const file = traceFile(encodeTrace(seedTrace('bug-a-virtio-serial')));
    const r = cli(cmdReplay, [file]);
    expect(r.code).toBe(0);
    expect(r.out[0]).toMatch(/: identical: 76 events replayed event by event, 3 findings/);
    expect(r.out.filter((l) => l.includes(`reproduce: npx migfuzz replay ${file}`))).toHaveLength(3);
    expect(r.err).toEqual([]);
  });

  it('--json prints one object', () => {
    const file = traceFile(encodeTrace(seedTrace('bug-b-serial')));
    const r = cli(cmdReplay, [file, '--json']);
    expect(r.code).toBe(0);
    expect(r.out).toHaveLength(1);
    const j = JSON.parse(r.out[0]!);
    expect(j).toMatchObject({ trace: file, identical: true, divergence: null, verdictDiffers: false });
    expect(j.events).toEqual({ recorded: 77, replayed: 77 });
    expect(j.verdict.findings[0]).toMatchObject({
      oracle: 'migration-failed',
      reproduce: `npx migfuzz replay ${file}`,
    });
  });

  const diverged = (): string => {
    const t = seedTrace('bug-a-virtio-serial');
    const events = decodeTrace(encodeTrace(t)).events;
    events.a[52] = 3; // #52 is MIGRATION dst-created (a = phase 1)
    return traceFile(encodeTrace(makeTraceFromLog(t.schedule, traceRegistry(t), events, t.verdict)));
  };

  it('a divergence exits 4: index, time, recorded and replayed event in words, 5 events before it', () => {
    const file = diverged();
    const r = cli(cmdReplay, [file]);
    expect(r.code).toBe(4);
    expect(r.out[0]).toMatch(
      /: DIVERGED at event #52 \(host time 5\.000000 ms; 76 events recorded, 76 replayed\)/,
    );
    expect(r.out[1]).toBe('  before it (identical):');
    expect(r.out.slice(2, 7).map((l) => l.trim().split(/\s+/)[0])).toEqual([
      '#47',
      '#48',
      '#49',
      '#50',
      '#51',
    ]);
    expect(r.out[7]).toMatch(
      /^ {2}recorded: +#52\s+5\.000000 ms\s+vm1\s+-\s+MIGRATION\s+migration: lapic-push/,
    );
    expect(r.out[8]).toMatch(
      /^ {2}replayed: +#52\s+5\.000000 ms\s+vm1\s+-\s+MIGRATION\s+migration: dst-created/,
    );
    expect(r.err).toEqual([]);
  });

  it('--json gives the divergence as one object', () => {
    const r = cli(cmdReplay, [diverged(), '--json']);
    expect(r.code).toBe(4);
    const j = JSON.parse(r.out[0]!);
    expect(j.identical).toBe(false);
    expect(j.divergence).toMatchObject({
      index: 52,
      atNs: 5_000_000,
      recorded: { index: 52, kind: 'MIGRATION', vm: 1, device: '-', a: 3, b: 0 },
      replayed: {
        index: 52,
        kind: 'MIGRATION',
        vm: 1,
        device: '-',
        a: 1,
        b: 0,
        text: 'migration: dst-created',
      },
    });
    expect(j.divergence.context).toHaveLength(5);
  });

  it('a verdict that differs with identical events exits 4 and says so', () => {
    const t = seedTrace('bug-a-virtio-serial');
    const verdict = { ...t.verdict, findings: t.verdict.findings.slice(0, 1) };
    const file = traceFile(encodeTrace(makeTraceFromLog(t.schedule, traceRegistry(t), t.events, verdict)));
    const r = cli(cmdReplay, [file]);
    expect(r.code).toBe(4);
    expect(r.out[0]).toMatch(/DIVERGED in the verdict: all 76 events identical/);
    expect(r.out).toContain('recorded verdict: 1 finding (horizon, 50.000000 ms)');
    expect(r.out).toContain('replayed verdict: 3 findings (horizon, 50.000000 ms)');
  });

  it('usage errors are UsageErrors (exit 2 in main); bad files exit 3 with one line', () => {
    expect(() => cmdReplay([])).toThrow(UsageError);
    expect(() => cmdReplay(['a', 'b'])).toThrow(UsageError);
    expect(() => cmdReplay(['a.mpk', '--all'])).toThrow(UsageError);
    const missing = cli(cmdReplay, [join(tmp, 'nope.mpk')]);
    expect(missing.code).toBe(3);
    expect(missing.err).toEqual([`migfuzz: ${join(tmp, 'nope.mpk')}: cannot read (no such file)`]);
    expect(cli(cmdReplay, [tmp]).err).toEqual([`migfuzz: ${tmp}: cannot read (is a directory)`]);
    const json = tempPath('.json');
    writeFileSync(json, readFileSync(new URL('../../corpus/seeds/bug-b-serial.json', import.meta.url)));
    const r = cli(cmdReplay, [json]);
    expect(r.code).toBe(3);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).toMatch(/looks like JSON/);
  });

  it('flipping any one byte of a trace: exit 3 or 4 with a one-line reason, or 0 when the meaning is intact', () => {
    const t = seedTrace('bug-b-serial');
    const original = encodeTrace(t);
    const file = tempPath();
    const seen = { 0: 0, 3: 0, 4: 0 } as Record<number, number>;
    for (const mask of [0xff, 0x01]) {
      for (let i = 0; i < original.length; i++) {
        const bytes = original.slice();
        bytes[i] = bytes[i]! ^ mask;
        writeFileSync(file, bytes);
        const r = cli(cmdReplay, [file]);
        const where = `byte ${i} ^ 0x${mask.toString(16)}`;
        expect([0, 3, 4], where).toContain(r.code);
        seen[r.code] = (seen[r.code] ?? 0) + 1;
        if (r.code === 3) {
          expect(r.out, where).toEqual([]);
          expect(r.err, where).toHaveLength(1);
          expect(r.err[0], where).toMatch(new RegExp(`^migfuzz: ${file}: \\S`));
        } else {
          expect(r.err, where).toEqual([]);
          expect(r.out[0], where).toMatch(r.code === 0 ? /: identical: / : /: DIVERGED /);
        }
        if (r.code === 0) {
          // Identical meaning: the same events and verdict (the digest says so), the same run.
          const back = decodeTrace(bytes);
          expect(back.digest, where).toBe(t.digest);
        }
      }
    }
    // Most flips are caught as damage; some change only the schedule's meaning (4) or nothing that matters (0).
    expect(seen[3]).toBeGreaterThan(original.length);
  });

  it('a trace from a user build replays on its own', () => {
    const registry = validateBuildFile(
      { builds: [{ name: 'mine', base: 'rhel-7.4', revisions: { serialGatedPre22: [] } }] },
      builds,
    );
    const s = seedSchedule('bug-b-serial');
    const file = tempPath();
    const v = runRecorded(
      { ...s, src: { ...s.src, build: 'mine' }, dst: { ...s.dst, build: 'mine' } },
      registry,
      file,
    );
    expect(cli(cmdReplay, [file]).code).toBe(0);
    expect(readTraceFile(file).verdict).toEqual(v);
  });
});

describe('migfuzz run --trace / run TRACE.mpk', () => {
  it('runRecorded writes the trace and returns the same verdict as a plain run', () => {
    const file = tempPath();
    const v = runRecorded(seedSchedule('bug-a-virtio-serial'), builds, file);
    expect(v).toEqual(seedTrace('bug-a-virtio-serial').verdict);
    expect(readTraceFile(file).digest).toBe(seedTrace('bug-a-virtio-serial').digest);
    expect(readdirSync(tmp).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('traceRunInput: a .mpk file gives its schedule and builds; anything else is left to the schedule reader', () => {
    const file = tempPath();
    runRecorded(seedSchedule('bug-b-serial'), builds, file);
    const input = traceRunInput(file, builds)!;
    expect(input.schedule).toEqual(seedSchedule('bug-b-serial'));
    expect(input.builds.get('rhel-7.4')).toEqual(builds.get('rhel-7.4'));
    expect(traceRunInput('x.json', builds)).toBeNull();
    expect(isTraceFile('A.MPK')).toBe(true);
    expect(() => traceRunInput(join(tmp, 'missing.mpk'), builds)).toThrow(InputError);
  });

  it('writes atomically: nothing is left behind when the write fails', () => {
    const dir = join(tmp, 'atomic');
    mkdirSync(dir);
    const target = join(dir, 'out.mpk');
    writeFileAtomic(target, Uint8Array.from([1, 2, 3]));
    expect(readFileSync(target)).toEqual(Buffer.from([1, 2, 3]));
    writeFileAtomic(target, [Uint8Array.from([4]), Uint8Array.from([5, 6])]);
    expect(readFileSync(target)).toEqual(Buffer.from([4, 5, 6]));
    // The target is a directory: the rename fails, the temporary file is removed.
    const sub = join(dir, 'sub.mpk');
    mkdirSync(sub);
    writeFileSync(join(sub, 'keep'), 'x');
    expect(() => writeFileAtomic(sub, Uint8Array.from([1]))).toThrow(InputError);
    expect(readdirSync(dir).sort()).toEqual(['out.mpk', 'sub.mpk']);
    // No such directory: nothing created.
    expect(() => writeFileAtomic(join(dir, 'no', 'x.mpk'), 'x')).toThrow(/cannot write \(no such file\)/);
    expect(existsSync(join(dir, 'no'))).toBe(false);
  });
});

describe('migfuzz show', () => {
  it('prints the timeline', () => {
    const file = traceFile(encodeTrace(seedTrace('bug-a-virtio-serial')));
    const r = cli(cmdShow, [file]);
    expect(r.code).toBe(0);
    expect(r.out[0]).toBe('migfuzz.trace v1 written by migfuzz 0.1.0');
    expect(r.out.some((l) => l.includes('FINDING lost-interrupt on vser0'))).toBe(true);
    expect(r.out.some((l) => l.includes(`reproduce: npx migfuzz replay ${file}`))).toBe(true);
  });

  it('--vcd writes a dump and says where', () => {
    const file = traceFile(encodeTrace(seedTrace('bug-a-virtio-serial')));
    const vcd = tempPath('.vcd');
    const r = cli(cmdShow, [file, '--vcd', vcd]);
    expect(r.code).toBe(0);
    expect(r.out).toHaveLength(1);
    expect(r.out[0]).toContain(`wrote ${vcd}`);
    expect(readFileSync(vcd, 'utf8')).toMatch(/\$timescale 1ns \$end/);
  });

  it('bad input and usage', () => {
    const r = cli(cmdShow, [traceFile(Uint8Array.from([0x80]))]);
    expect(r.code).toBe(3);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).toMatch(/trace: |format: missing/);
    expect(() => cmdShow([])).toThrow(UsageError);
    expect(() => cmdShow(['a.mpk', '--vcd'])).toThrow(UsageError);
    expect(() => cmdShow(['a.mpk', '--vcd', 'x.vcd', '--all'])).toThrow(UsageError);
    const file = traceFile(encodeTrace(seedTrace('bug-a-virtio-serial')));
    const bad = cli(cmdShow, [file, '--vcd', join(tmp, 'no', 'x.vcd')]);
    expect(bad.code).toBe(3);
    expect(bad.err[0]).toMatch(/cannot write/);
  });
});
