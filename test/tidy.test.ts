import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * DESIGN.md example 6 (TigerBeetle's tidy.zig): ambient nondeterminism is banned mechanically
 * from the deterministic parts. The model, the fuzzer and the replayer get time and randomness
 * only from the run; the CLI is the one place allowed to read the wall clock.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DETERMINISTIC_DIRS = ['src/model', 'src/fuzz', 'src/replay'];

const BANNED: readonly [string, RegExp][] = [
  ['Math.random', /\bMath\s*\.\s*random\b/],
  ['Date.now', /\bDate\s*\.\s*now\b/],
  ['new Date', /\bnew\s+Date\b/],
  ['performance.now', /\bperformance\s*\.\s*now\b/],
  ['setTimeout', /\bsetTimeout\b/],
  ['setInterval', /\bsetInterval\b/],
  ['setImmediate', /\bsetImmediate\b/],
  ['process.hrtime', /\bprocess\s*\.\s*hrtime\b/],
];

/** A line that is only a comment: `//`, or inside or opening a block comment (`/*`, ` *`). */
const isCommentLine = (line: string): boolean => /^\s*(\/\/|\/\*|\*)/.test(line);

/** Every banned use in a source text, as "line N: NAME". */
function violations(source: string): string[] {
  const out: string[] = [];
  source.split('\n').forEach((line, i) => {
    if (isCommentLine(line)) return;
    for (const [name, re] of BANNED) if (re.test(line)) out.push(`line ${i + 1}: ${name}`);
  });
  return out;
}

function tsFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) return tsFiles(path);
      return name.endsWith('.ts') ? [path] : [];
    });
}

describe('tidy', () => {
  it('the checker finds each banned call and ignores comment lines', () => {
    const sample = [
      'const r = Math.random();',
      'const t = Date.now();',
      'const d = new Date();',
      'const p = performance.now();',
      'setTimeout(f, 1);',
      'setInterval(f, 1);',
      'setImmediate(f);',
      'const h = process.hrtime.bigint();',
      '// Math.random() is banned: this line is a comment',
      '/* Date.now() in a block comment */',
      ' * setTimeout in a doc comment',
      'const ok = rng.below(6); // no ambient randomness here',
      'const myDate = 1; const dateNow = 2; const Datenow = 3;',
    ].join('\n');
    expect(violations(sample)).toEqual([
      'line 1: Math.random',
      'line 2: Date.now',
      'line 3: new Date',
      'line 4: performance.now',
      'line 5: setTimeout',
      'line 6: setInterval',
      'line 7: setImmediate',
      'line 8: process.hrtime',
    ]);
  });

  it('src/model, src/fuzz and src/replay use no wall clock, timers or ambient randomness', () => {
    const files = DETERMINISTIC_DIRS.flatMap((d) => tsFiles(join(ROOT, d)));
    // The model alone has well over a dozen files: a wrong path must not pass vacuously.
    expect(files.length).toBeGreaterThan(10);
    const found = files.flatMap((f) =>
      violations(readFileSync(f, 'utf8')).map((v) => `${relative(ROOT, f)} ${v}`),
    );
    expect(found).toEqual([]);
  });

  it('npm test type-checks, lints and runs the suite', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      scripts?: Record<string, string>;
    };
    const test = pkg.scripts?.test ?? '';
    const commands = test.split(/&&|;/).map((c) => c.trim());
    expect(commands.some((c) => /^tsc\b/.test(c) && /--noEmit\b/.test(c))).toBe(true);
    expect(commands.some((c) => /^biome (check|ci)\b/.test(c))).toBe(true);
    // `vitest run`, not watch mode (which would never end in CI).
    expect(commands.some((c) => /^vitest run\b/.test(c))).toBe(true);
    // A failure of any step fails the script: steps are chained with &&, not `;` or `||`.
    expect(test).not.toMatch(/;|\|\|/);
  });
});
