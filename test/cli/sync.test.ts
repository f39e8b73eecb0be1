import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SyncDir } from '../../src/cli/sync.js';
import { BIN, buildCli, ROOT } from '../replay/helpers.js';

/**
 * Campaigns across machines (issue 15): instances sharing a sync dir save each finding once
 * and nothing half-written, even with one killed (SIGKILL) and restarted midway; `status`
 * aggregates them and `corpus merge` keeps each finding once.
 */

const tmp = mkdtempSync(join(tmpdir(), 'migfuzz-sync-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

beforeAll(() => {
  buildCli();
}, 120_000);

function cli(args: string[], killAfterMs?: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd: ROOT });
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
    });
    p.stderr.on('data', (d) => {
      out += d;
    });
    if (killAfterMs !== undefined) setTimeout(() => p.kill('SIGKILL'), killAfterMs);
    p.on('exit', (code) => resolve({ code, out }));
  });
}

/** Every file of a tree, relative. */
function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) =>
    statSync(join(dir, n)).isDirectory() ? files(join(dir, n)).map((f) => join(n, f)) : [n],
  );
}

describe('fuzz --sync-dir', () => {
  it('three instances, one killed and restarted, save every finding once and nothing half-written', async () => {
    const sync = join(tmp, 'sync');
    const run = (name: string, seed: number, kill?: number) =>
      cli(['fuzz', '--sync-dir', sync, '--instance', name, '--execs', '1500', '--seed', String(seed)], kill);
    const [a, b, killed] = await Promise.all([run('a', 1), run('b', 2), run('c', 3, 2500)]);
    expect(killed.code).toBe(null);
    const c = await run('c', 3);
    for (const r of [a, b, c]) expect(r.code).toBe(1);
    expect(c.out).toMatch(/resuming from \d+ queue entr/);
    // Each signature saved once across the sync dir, each directory whole.
    const saved = ['a', 'b', 'c'].flatMap((i) =>
      existsSync(join(sync, i, 'crashes'))
        ? readdirSync(join(sync, i, 'crashes')).map((s) => ({ i, s }))
        : [],
    );
    const sigs = saved.map((x) => x.s);
    expect(sigs.length).toBeGreaterThan(3);
    expect(new Set(sigs).size).toBe(sigs.length);
    for (const { i, s } of saved) {
      const dir = join(sync, i, 'crashes', s);
      expect(JSON.parse(readFileSync(join(dir, 'finding.json'), 'utf8')).signature).toBe(
        s.replaceAll('%3A', ':'),
      );
      expect(readdirSync(dir)).toEqual(
        expect.arrayContaining(['original.json', 'shrunk.json', 'finding.json']),
      );
    }
    // Only temporary names may be left by the kill; every queue entry under its real name parses.
    for (const i of ['a', 'b', 'c']) {
      for (const f of files(join(sync, i, 'queue'))) {
        if (/\.tmp-\d+$/.test(f)) continue;
        expect(() => JSON.parse(readFileSync(join(sync, i, 'queue', f), 'utf8'))).not.toThrow();
      }
    }
    // Each took the others' entries (.synced/OTHER: the highest queue id taken).
    expect(readdirSync(join(sync, 'c', '.synced')).sort()).toEqual(['a', 'b']);

    const status = await cli(['status', sync, '--json']);
    expect(status.code).toBe(0);
    const st = JSON.parse(status.out) as {
      instances: { instance: string; execs: number }[];
      total: { execs: number };
    };
    expect(st.instances.map((x) => x.instance)).toEqual(['a', 'b', 'c']);
    expect(st.instances[0]!.execs).toBe(1500);
    expect(st.total.execs).toBe(st.instances.reduce((n, x) => n + x.execs, 0));

    const into = join(tmp, 'merged');
    const merged = await cli(['corpus', 'merge', sync, '--into', into, '--json']);
    expect(merged.code).toBe(0);
    const m = JSON.parse(merged.out) as {
      campaigns: number;
      inputs: number;
      kept: number;
      findings: string[];
    };
    expect(m.campaigns).toBe(3);
    expect(m.kept).toBeGreaterThan(0);
    expect(m.kept).toBeLessThan(m.inputs);
    expect(readdirSync(join(into, 'queue'))).toHaveLength(m.kept);
    expect(m.findings.map((f) => f.replace(/^crashes\//, '')).sort()).toEqual([...sigs].sort());
    expect((await cli(['corpus', 'merge', sync, '--into', into])).code).toBe(3);
  }, 300_000);

  it('usage: --sync-dir and --instance go together, without --out', async () => {
    expect((await cli(['fuzz', '--sync-dir', tmp, '--execs', '1'])).out).toMatch(
      /--sync-dir and --instance go together/,
    );
    expect((await cli(['fuzz', '--sync-dir', tmp, '--instance', 'x', '--out', 'o'])).code).toBe(2);
    expect((await cli(['fuzz', '--sync-dir', tmp, '--instance', '../x'])).out).toMatch(
      /--instance: "..\/x" is not/,
    );
  }, 60_000);
});

describe('SyncDir.claim', () => {
  it('the earliest claim saves a finding; a saved one belongs to its saver', () => {
    const root = join(tmp, 'claims');
    const a = new SyncDir(root, 'a');
    const b = new SyncDir(root, 'b');
    // Instances are seen by their queue.
    for (const i of ['a', 'b']) mkdirSync(join(root, i, 'queue'));
    const age = (i: string, sig: string, s: number) =>
      utimesSync(join(root, i, 'claims', 'crashes', sig), s, s);
    // a claims x first: b defers to it, and a keeps it when it asks again.
    expect(a.claim('crashes/x')).toBeUndefined();
    age('a', 'x', 1000);
    expect(b.claim('crashes/x')).toBe('a');
    expect(a.claim('crashes/x')).toBeUndefined();
    // Both claim y at once: the earlier claim wins for both, whoever asks last.
    expect(b.claim('crashes/y')).toBeUndefined();
    age('b', 'y', 1000);
    expect(a.claim('crashes/y')).toBe('b');
    expect(b.claim('crashes/y')).toBeUndefined();
    // A finding another instance saved whole belongs to it, claims or not.
    mkdirSync(join(root, 'b', 'crashes', 'z'), { recursive: true });
    writeFileSync(join(root, 'b', 'crashes', 'z', 'finding.json'), '{}');
    expect(a.claim('crashes/z')).toBe('b');
  });
});
