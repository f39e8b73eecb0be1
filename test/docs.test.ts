import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseBuildFile } from '../src/model/migration/build-file.js';
import { builtinRegistry } from '../src/model/migration/builds.js';
import { STEP_KINDS } from '../src/model/schedule/types.js';
import { parseSchedule } from '../src/model/schedule/validate.js';
import { KNOWN_CAUSES } from '../src/oracles/known.js';
import { ORACLE_NAMES } from '../src/oracles/types.js';
import { benchBugsTable, buildsTable, knownCausesTable } from './docs-tables.js';
import { ROOT } from './replay/helpers.js';

/**
 * The documents a user needs are in the repository, and they say what the code does: a clone
 * has no other place to look (issue 16). Tables that come from the code's own data are
 * checked against it; `UPDATE_DOCS=1 npx vitest run test/docs.test.ts` rewrites them.
 */

const root = resolve(ROOT);
const doc = (name: string): string => readFileSync(join(root, 'docs', name), 'utf8');

/** The repository's own text files (no dependencies, build output or VCS data). */
function repoFiles(dir = root): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (['node_modules', 'dist', '.git', 'out'].includes(name)) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...repoFiles(path));
    else if (/\.(md|ts|mjs|json|yml|yaml|txt)$|^run$/.test(name)) out.push(path);
  }
  return out;
}

describe('no file links outside the repository', () => {
  const files = repoFiles();

  it('finds the files it checks', () => {
    expect(files.map((f) => relative(root, f))).toEqual(
      expect.arrayContaining(['README.md', 'docs/README.md', 'package.json', join('src', 'cli', 'main.ts')]),
    );
  });

  it('no file points at the specification directory beside the repository', () => {
    // Built from parts, so that this file does not match itself.
    const outside = new RegExp(['\\.\\.', 'shared'].join('/'));
    for (const file of files) expect(readFileSync(file, 'utf8'), relative(root, file)).not.toMatch(outside);
  });

  it('every relative Markdown link resolves to a file in the repository', () => {
    for (const file of files.filter((f) => f.endsWith('.md'))) {
      for (const m of readFileSync(file, 'utf8').matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!.split('#')[0]!;
        if (target === '' || /^[a-z]+:/.test(target)) continue; // an anchor or a URL
        const path = resolve(dirname(file), target);
        expect(relative(root, path).startsWith('..'), `${relative(root, file)} → ${target}`).toBe(false);
        expect(existsSync(path), `${relative(root, file)} → ${target}`).toBe(true);
      }
    }
  });

  it('the README links the documentation', () => {
    expect(readFileSync(join(root, 'README.md'), 'utf8')).toContain('(docs/README.md)');
  });
});

/** The text between `<!-- NAME:begin -->` and `<!-- NAME:end -->` of a document. */
function checkBlock(file: string, name: string, expected: string): void {
  const path = join(root, 'docs', file);
  const text = readFileSync(path, 'utf8');
  const begin = `<!-- ${name}:begin -->\n`;
  const end = `\n<!-- ${name}:end -->`;
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  expect(a, `${file} has no ${name} block`).toBeGreaterThanOrEqual(0);
  const updated = `${text.slice(0, a + begin.length)}${expected}${text.slice(b)}`;
  if (process.env.UPDATE_DOCS === '1') writeFileSync(path, updated);
  expect(text, `docs/${file} is out of date: UPDATE_DOCS=1 npx vitest run test/docs.test.ts`).toBe(updated);
}

describe('the documents say what the code does', () => {
  it('builds.md: the built-in builds, machine types and revisions of builds.ts', () => {
    checkBlock('builds.md', 'builds', buildsTable());
  });

  it('builds.md: the real-bug benchmark of bench/bugs/registry.ts', () => {
    checkBlock('builds.md', 'bench-bugs', benchBugsTable());
  });

  it('signatures.md: the known causes of src/oracles/known.ts', () => {
    checkBlock('signatures.md', 'known-causes', knownCausesTable());
  });

  it('builds.md: every built-in build has a row saying what it stands for', () => {
    for (const name of builtinRegistry().keys())
      expect(doc('builds.md')).toMatch(new RegExp(`^\\| \`${name}\` \\| [^|]+ \\| `, 'm'));
  });

  it('schedule.md lists every step kind; oracles.md and signatures.md every oracle', () => {
    for (const kind of STEP_KINDS) expect(doc('schedule.md')).toContain(`| \`${kind}\` |`);
    for (const oracle of ORACLE_NAMES) {
      expect(doc('oracles.md')).toContain(`| \`${oracle}\` |`);
      expect(doc('signatures.md')).toContain(`| \`${oracle}\` |`);
    }
    for (const c of KNOWN_CAUSES)
      for (const s of c.signatures) expect(doc('signatures.md')).toMatch(new RegExp(`\`${s.key}\``));
  });

  it('the examples of the documents are valid input', () => {
    const blocks = (name: string): string[] =>
      [...doc(name).matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]!);
    const [schedule] = blocks('schedule.md');
    expect(() => parseSchedule(schedule!, builtinRegistry())).not.toThrow();
    const [builds] = blocks('builds.md');
    expect([...parseBuildFile(builds!, builtinRegistry()).keys()]).toEqual(
      expect.arrayContaining(['qemu-9.2-in-load', 'my-rhel']),
    );
  });
});
