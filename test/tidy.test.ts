import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * DESIGN.md example 6 (TigerBeetle's tidy.zig): ambient nondeterminism is banned mechanically
 * from the deterministic parts, and each ban names what to use instead. The model, the
 * fuzzer and the replayer get time and randomness only from the run; the CLI (and what it
 * drives outside the model: real QEMUs, pages) is the one place allowed to read the wall
 * clock. The one-way import rule of DESIGN.md is checked here too.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DETERMINISTIC_DIRS = ['src/model', 'src/fuzz', 'src/replay'];

const CLOCK = "the run's clock (world.hostNow, a VM's vmNow; the CLI injects io.now)";
const PRNG = "the run's PRNG (src/model/rng.ts), seeded from the schedule";
const EVENTS = 'an event on the scheduler (src/model/scheduler.ts)';

/** [what, pattern, what to use instead]. */
const BANNED: readonly [string, RegExp, string][] = [
  ['Math.random', /\bMath\s*\.\s*random\b/, PRNG],
  ['Date.now', /\bDate\s*\.\s*now\b/, CLOCK],
  ['new Date', /\bnew\s+Date\b/, CLOCK],
  ['performance.now', /\bperformance\s*\.\s*now\b/, CLOCK],
  ['setTimeout', /\bsetTimeout\b/, EVENTS],
  ['setInterval', /\bsetInterval\b/, EVENTS],
  ['setImmediate', /\bsetImmediate\b/, EVENTS],
  ['queueMicrotask', /\bqueueMicrotask\b/, EVENTS],
  ['process.hrtime', /\bprocess\s*\.\s*hrtime\b/, CLOCK],
  ['crypto randomness', /\b(randomBytes|randomUUID|getRandomValues|randomInt|randomFill\w*)\b/, PRNG],
  ['process.env', /\bprocess\s*\.\s*env\b/, 'a setting the CLI passes in'],
];

/** The model does no I/O and has no platform: its files import no `node:*` module. */
const MODEL_NODE_IMPORT: readonly [string, RegExp, string] = [
  'a node:* import in src/model',
  /from\s+['"]node:/,
  'an effect the machine applies, or a value the CLI passes in',
];

/**
 * DESIGN.md: dependencies point one way (cli → fuzz/replay → oracles → model; the model
 * imports nothing from the others). The folders beside them sit where their imports put them.
 */
const MAY_IMPORT: Record<string, readonly string[]> = {
  model: [],
  oracles: ['model'],
  fuzz: ['model', 'oracles'],
  replay: ['model', 'oracles'],
  stream: ['model'],
  vmstate: ['model', 'oracles', 'replay', 'stream'],
  confirm: ['model', 'oracles', 'stream'],
  report: ['model', 'oracles', 'replay'],
};

/** A line that is only a comment: `//`, or inside or opening a block comment (`/*`, ` *`). */
const isCommentLine = (line: string): boolean => /^\s*(\/\/|\/\*|\*)/.test(line);

/** Every banned use in a source text, as "line N: NAME is banned, use INSTEAD". */
function violations(source: string, bans: readonly (readonly [string, RegExp, string])[] = BANNED): string[] {
  const out: string[] = [];
  source.split('\n').forEach((line, i) => {
    if (isCommentLine(line)) return;
    for (const [name, re, instead] of bans)
      if (re.test(line)) out.push(`line ${i + 1}: ${name} is banned, use ${instead}`);
  });
  return out;
}

/** The top-level src/ folders a file imports (relative imports only). */
function importedFolders(file: string, source: string): string[] {
  const out = new Set<string>();
  for (const m of source.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
    const target = relative(join(ROOT, 'src'), join(file, '..', m[1]!));
    const top = target.split('/')[0]!;
    if (!top.startsWith('..')) out.add(top.replace(/\.(js|ts)$/, ''));
  }
  return [...out];
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
    expect(violations(sample).map((v) => v.split(' is banned')[0])).toEqual([
      'line 1: Math.random',
      'line 2: Date.now',
      'line 3: new Date',
      'line 4: performance.now',
      'line 5: setTimeout',
      'line 6: setInterval',
      'line 7: setImmediate',
      'line 8: process.hrtime',
    ]);
    expect(
      violations('const id = crypto.randomUUID();\nqueueMicrotask(f);\nconst v = process.env.X;'),
    ).toEqual([
      `line 1: crypto randomness is banned, use ${PRNG}`,
      `line 2: queueMicrotask is banned, use ${EVENTS}`,
      'line 3: process.env is banned, use a setting the CLI passes in',
    ]);
  });

  it('src/model imports no node:* module', () => {
    const files = tsFiles(join(ROOT, 'src', 'model'));
    expect(files.length).toBeGreaterThan(10);
    const found = files.flatMap((f) =>
      violations(readFileSync(f, 'utf8'), [MODEL_NODE_IMPORT]).map((v) => `${relative(ROOT, f)} ${v}`),
    );
    expect(found).toEqual([]);
  });

  it('imports point one way (DESIGN.md): each folder imports only the layers below it', () => {
    const folders = readdirSync(join(ROOT, 'src')).filter((d) =>
      statSync(join(ROOT, 'src', d)).isDirectory(),
    );
    // A new folder must be placed in the rule before it can land.
    expect(folders.filter((d) => d !== 'cli' && !(d in MAY_IMPORT))).toEqual([]);
    const found: string[] = [];
    for (const [folder, allowed] of Object.entries(MAY_IMPORT)) {
      for (const f of tsFiles(join(ROOT, 'src', folder))) {
        for (const top of importedFolders(f, readFileSync(f, 'utf8'))) {
          if (top !== folder && !allowed.includes(top)) found.push(`${relative(ROOT, f)} imports src/${top}`);
        }
      }
    }
    expect(found).toEqual([]);
  });

  it('the import checker sees relative imports and dynamic ones', () => {
    const file = join(ROOT, 'src', 'oracles', 'x.ts');
    expect(
      importedFolders(
        file,
        "import { a } from '../model/world.js';\nconst m = await import('../fuzz/campaign.js');\nimport { b } from './y.js';",
      ).sort(),
    ).toEqual(['fuzz', 'model', 'oracles']);
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
