import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { cmdShrink } from '../../src/cli/corpus-commands.js';
import { main } from '../../src/cli/main.js';
import { signatureDir } from '../../src/cli/out-dir.js';
import { decodeTrace } from '../../src/replay/trace.js';
import { ROOT } from '../replay/helpers.js';

/**
 * The defects a new user met (issue 16, points 4-7): shrink's default signature, a coherent
 * resume, ping-pong summaries, one unit per message.
 */

const tmp = mkdtempSync(join(tmpdir(), 'migfuzz-first-hour-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let printed: string[];
beforeEach(() => {
  printed = [];
  const keep = (...args: unknown[]): void => {
    printed.push(args.map(String).join(' '));
  };
  vi.spyOn(console, 'log').mockImplementation(keep);
  vi.spyOn(console, 'error').mockImplementation(keep);
  vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
    printed.push(String(s));
    return true;
  });
});
afterEach(() => {
  vi.restoreAllMocks();
});

describe('shrink', () => {
  it('defaults to the signature the directory is named for, and reports every finding', () => {
    const golden = join(ROOT, 'corpus', 'regressions', 'bug-a.mpk');
    const recorded = decodeTrace(readFileSync(golden)).verdict.findings.map((f) => f.signature);
    const wanted = 'stuck-irq-line:vser0:remote-irr';
    // Not the first: the old default would have shrunk another one.
    expect(recorded.indexOf(wanted)).toBeGreaterThan(0);
    const dir = join(tmp, 'crashes', signatureDir(wanted));
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'original.mpk');
    copyFileSync(golden, file);
    expect(cmdShrink([file])).toBe(0);
    expect(printed[0]).toMatch(new RegExp(`^${file}: shrunk ${wanted} from \\d+ to \\d+ steps?`));
    const out = decodeTrace(readFileSync(join(dir, 'original.shrunk.mpk')));
    const sigs = out.verdict.findings.map((f) => f.signature);
    expect(sigs).toContain(wanted);
    expect(printed[1]).toMatch(new RegExp(`: ${sigs.length} findings?$`));
    for (const sig of sigs) expect(printed.join('\n')).toContain(`    signature ${sig}`);
  });
});

describe('resume', () => {
  const out = join(tmp, 'resume');
  const argv = [
    'fuzz',
    '--execs',
    '150',
    '--seed',
    '2',
    '--corpus',
    join(ROOT, 'corpus', 'seeds'),
    '--out',
    out,
  ];
  const plot = (): number[][] =>
    readFileSync(join(out, 'plot_data.csv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((row) => row.split(',').map(Number));
  const stats = (): { execs: number; findings: Record<string, number> } =>
    JSON.parse(readFileSync(join(out, 'fuzzer_stats.json'), 'utf8'));

  it('counts on: status line, first seen, plot coverage; the earlier findings stay in the table', async () => {
    await main(argv);
    const first = stats();
    const firstTable = printed
      .join('')
      .split('\n')
      .filter((l) => /^ {2}\S+:\S+:\S+ /.test(l));
    printed = [];
    await main(argv);
    const text = printed.join('');
    expect(text).toContain(
      `(${first.execs} executions and ${firstTable.length} findings so far; --fresh starts over)`,
    );
    expect(stats().execs).toBe(first.execs + 150);
    // The status line goes on from the earlier executions.
    const counts = [...text.matchAll(/^#(\d+)\t/gm)].map((m) => Number(m[1]));
    expect(counts.at(-1)).toBe(first.execs + 150);
    expect(Math.min(...counts)).toBeGreaterThan(first.execs);
    // Every earlier finding is listed again.
    for (const row of firstTable) expect(text).toContain(row.split(/ +/)[1]);
    // Execution counts and coverage never fall from one plot row to the next.
    const rows = plot();
    for (let i = 1; i < rows.length; i++) {
      expect(rows[i]![1]).toBeGreaterThanOrEqual(rows[i - 1]![1]!);
      expect(rows[i]![4]).toBeGreaterThanOrEqual(rows[i - 1]![4]!);
    }
  });

  it('--fresh starts over', async () => {
    writeFileSync(join(out, 'keep.txt'), 'not the campaign’s');
    await main([...argv, '--fresh']);
    expect(printed.join('')).not.toContain('resuming');
    expect(stats().execs).toBe(150);
    expect(plot()[0]![1]).toBeLessThanOrEqual(150);
    // Only the campaign's own files go.
    expect(readFileSync(join(out, 'keep.txt'), 'utf8')).toBe('not the campaign’s');
  });
});

describe('summaries', () => {
  it('a ping-pong run is summarised as one, not as its first direction', async () => {
    const doc = JSON.parse(readFileSync(join(ROOT, 'corpus', 'seeds', 'uart-echo.json'), 'utf8'));
    doc.steps.push({ at: 3_000_000, do: 'migrate' }, { at: 6_000_000, do: 'migrate' });
    const file = join(tmp, 'ping-pong.json');
    writeFileSync(file, JSON.stringify(doc));
    await main(['run', file]);
    expect(printed[0]).toMatch(
      /\(qemu-9\.2 ⇄ qemu-9\.2 \(2 migrations\) on pc-i440fx-9\.2; \d+ events, [\d.]+ ms\)$/,
    );
  });

  it('a finding line keeps to one unit: its time and its deadline both in ms', async () => {
    await main(['run', join(ROOT, 'corpus', 'seeds', 'bug-a-virtio-serial.json')]);
    const lines = printed.filter((l) => /^ {2}(lost-interrupt|stuck-irq-line) on /.test(l));
    expect(lines).toHaveLength(2);
    for (const line of lines) {
      expect(line).toMatch(/ at [\d.]+ ms: .* (within|for) 10 ms\b/);
      expect(line).not.toMatch(/\bns\b/);
    }
  });

  it('show --vcd states its size in one unit', async () => {
    const trace = join(ROOT, 'corpus', 'regressions', 'bug-b.mpk');
    await main(['show', trace, '--vcd', join(tmp, 'b.vcd')]);
    expect(printed[0]).toMatch(/\(Value Change Dump of \d+ events over [\d.]+ ms\)$/);
    expect(printed[0]).not.toMatch(/\bns\b/);
  });
});
