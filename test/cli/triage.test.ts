import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { signatureDir } from '../../src/cli/out-dir.js';
import { parseBuildFile } from '../../src/model/migration/build-file.js';
import { builtinRegistry } from '../../src/model/migration/builds.js';
import { parseSchedule } from '../../src/model/schedule/validate.js';
import { knownCause } from '../../src/oracles/known.js';
import { ROOT } from '../replay/helpers.js';

/**
 * Triage (issue 16, point 2): findings carry their origin and whether a known cause explains
 * them; `start` exits 0 when every signature is known, `--strict` 1 for any; `fuzz --json`
 * prints the summary as one object.
 */

const tmp = mkdtempSync(join(tmpdir(), 'migfuzz-triage-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const SEEDS = join(ROOT, 'corpus', 'seeds');
const empty = join(tmp, 'empty');
mkdirSync(empty);

let written: string[];
beforeEach(() => {
  vi.spyOn(console, 'log').mockImplementation(() => {});
  vi.spyOn(console, 'error').mockImplementation(() => {});
  written = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
    written.push(String(s));
    return true;
  });
});
afterEach(() => {
  vi.restoreAllMocks();
});

interface Summary {
  execs: number;
  new: number;
  known: number;
  findings: {
    signature: string;
    known: string | null;
    origin: string;
    firstExec: number;
    reproduce: string;
  }[];
}

async function summary(argv: string[]): Promise<{ code: number; s: Summary }> {
  const code = await main([...argv, '--json']);
  // One JSON object and nothing else on stdout.
  expect(written).toHaveLength(1);
  return { code, s: JSON.parse(written[0]!) as Summary };
}

describe('known causes', () => {
  const bugA = parseSchedule(
    readFileSync(join(SEEDS, 'bug-a-virtio-serial.json'), 'utf8'),
    builtinRegistry(),
  );

  it('bug A on qemu-1.2 is known; on a build file with the same revision too', () => {
    const f = { signature: 'stuck-irq-line:vser0:remote-irr', device: 'vser0' };
    expect(knownCause(f, bugA, builtinRegistry())?.name).toBe('bug A');
    const builds = parseBuildFile(
      JSON.stringify({
        builds: [{ name: 'mine', base: 'qemu-9.2', revisions: { virtioSerialPortOpen: 'in-load' } }],
      }),
      builtinRegistry(),
    );
    const mine = { ...bugA, src: { ...bugA.src, build: 'mine' }, dst: { ...bugA.dst, build: 'mine' } };
    expect(knownCause(f, mine, builds)?.name).toBe('bug A');
  });

  it('the same signature on builds without the cause is new', () => {
    const on92 = {
      ...bugA,
      src: { ...bugA.src, build: 'qemu-9.2' },
      dst: { ...bugA.dst, build: 'qemu-9.2' },
    };
    expect(
      knownCause({ signature: 'stuck-irq-line:vser0:remote-irr', device: 'vser0' }, on92, builtinRegistry()),
    ).toBeNull();
    expect(
      knownCause({ signature: 'data-loss:serial0:rx-lost', device: 'serial0' }, on92, builtinRegistry()),
    ).toBeNull();
  });
});

describe('start and fuzz summaries', () => {
  it('start on the seeds finds only known signatures, marks them and exits 0; --strict exits 1', async () => {
    const argv = ['start', '--execs', '8', '--seed', '1', '--corpus', SEEDS, '--out', join(tmp, 'start')];
    const { code, s } = await summary(argv);
    expect(code).toBe(0);
    expect(s.new).toBe(0);
    expect(s.known).toBe(s.findings.length);
    expect(s.findings.length).toBeGreaterThanOrEqual(4);
    const byName = new Map(s.findings.map((f) => [f.signature, f]));
    expect(byName.get('stuck-irq-line:vser0:remote-irr')).toMatchObject({
      known: 'bug A',
      origin: 'seed bug-a-virtio-serial.json',
      firstExec: 1,
    });
    expect(byName.get('migration-failed:serial0:tsr-not-empty')).toMatchObject({
      known: 'bug B',
      origin: 'seed bug-b-serial.json',
    });
    // finding.json says the same.
    const saved = JSON.parse(
      readFileSync(
        join(tmp, 'start', 'crashes', signatureDir('stuck-irq-line:vser0:remote-irr'), 'finding.json'),
        'utf8',
      ),
    );
    expect(saved).toMatchObject({ origin: 'seed bug-a-virtio-serial.json', known: 'bug A' });
    written = [];
    expect((await summary([...argv, '--strict', '--fresh'])).code).toBe(1);
  });

  it('a new signature sorts first and makes start exit 1; its origin says generated or mutated', async () => {
    const argv = ['start', '--execs', '30', '--seed', '1', '--corpus', empty, '--event-budget', '200'];
    const { code, s } = await summary([...argv, '--out', join(tmp, 'hang')]);
    expect(code).toBe(1);
    expect(s.new).toBeGreaterThan(0);
    expect(s.findings[0]).toMatchObject({ signature: 'hang:-:event-budget', known: null });
    expect(s.findings[0]!.origin).toMatch(/^(generated|mutated \([a-z-]+\) from queue entry of exec \d+)$/);
    // New first, then known.
    const knownFlags = s.findings.map((f) => f.known !== null);
    expect(knownFlags).toEqual([...knownFlags].sort((a, b) => Number(a) - Number(b)));
  });

  it('the text summary ends with "N new, M known"', async () => {
    const code = await main([
      'fuzz',
      '--execs',
      '8',
      '--seed',
      '1',
      '--corpus',
      SEEDS,
      '--out',
      join(tmp, 'text'),
    ]);
    expect(code).toBe(1); // fuzz: any finding
    const text = written.join('');
    expect(text).toMatch(/\n0 new, \d+ known, in 8 executions\n$/);
    expect(text).toContain('known (');
    expect(text).toMatch(/^ {2}stuck-irq-line:vser0:remote-irr +bug A +\d+ {2}#1$/m);
    expect(text).toContain('    from seed bug-a-virtio-serial.json; shrunk to');
  });
});
