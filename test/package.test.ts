import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from './replay/helpers.js';

/**
 * The package as users install it (issue 16, point 7): `npm pack`, the tarball installed in
 * an empty directory, and there `npx migfuzz --version`, `run` on a seed and a 5 s `fuzz`.
 * It needs the npm registry for the dependencies (as `npm ci` does).
 */

const tmp = mkdtempSync(join(tmpdir(), 'migfuzz-package-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const app = join(tmp, 'app');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

function npx(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('npx', ['--no-install', 'migfuzz', ...args], {
    cwd: app,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('the installed package', () => {
  beforeAll(() => {
    // `npm pack` runs `prepare` (the build) first.
    execFileSync('npm', ['pack', '--pack-destination', tmp], { cwd: ROOT, stdio: 'pipe' });
    const tarball = readdirSync(tmp).find((n) => n.endsWith('.tgz'))!;
    mkdirSync(app);
    execFileSync('npm', ['init', '-y'], { cwd: app, stdio: 'pipe' });
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', join(tmp, tarball)], {
      cwd: app,
      stdio: 'pipe',
    });
  }, 300_000);

  it('ships the build, the schema and the README, not the sources or tests', () => {
    const dir = join(app, 'node_modules', 'migfuzz');
    const top = readdirSync(dir).sort();
    expect(top).toEqual(expect.arrayContaining(['README.md', 'dist', 'package.json', 'schema']));
    expect(top).not.toContain('src');
    expect(top).not.toContain('test');
    expect(readdirSync(join(dir, 'schema'))).toContain('migfuzz.schedule.v1.json');
  });

  it('npx migfuzz --version prints the package version', () => {
    const r = npx(['--version']);
    expect(r).toMatchObject({ status: 0, stdout: `migfuzz ${pkg.version}\n` });
  });

  it('runs a seed schedule: bug A is found (exit 1), with the command that reproduces it', () => {
    const seed = join(app, 'bug-a.json');
    copyFileSync(join(ROOT, 'corpus', 'seeds', 'bug-a-virtio-serial.json'), seed);
    const r = npx(['run', 'bug-a.json']);
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('stuck-irq-line:vser0:remote-irr');
    expect(r.stdout).toContain('reproduce: npx migfuzz run bug-a.json');
    expect(r.stderr).toBe('');
  });

  it('fuzzes for 5 s outside a checkout (no corpus/seeds): a summary and a campaign directory', () => {
    const r = npx(['fuzz', '--time', '5s', '--seed', '1', '--json']);
    expect([0, 1]).toContain(r.status);
    const summary = JSON.parse(r.stdout) as { execs: number; out: string };
    expect(summary.execs).toBeGreaterThan(0);
    const stats = JSON.parse(readFileSync(join(app, 'out', 'fuzzer_stats.json'), 'utf8')) as {
      execs: number;
    };
    expect(stats.execs).toBe(summary.execs);
  });
});
