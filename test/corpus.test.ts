import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { checkSeed, cmdCorpus, seedFiles } from '../src/cli/corpus-commands.js';
import { decodeTrace } from '../src/replay/trace.js';

/**
 * Every regression seed in corpus/regressions/ is a test: re-run, it must reproduce the
 * findings it recorded (or still have none) — what `migfuzz corpus check` does. A failure
 * names the seed and what changed; `npx migfuzz replay SEED` shows where.
 */

const DIR = fileURLToPath(new URL('../corpus/regressions', import.meta.url));
const SEEDS = seedFiles(DIR).map((file) => ({ name: file.slice(DIR.length + 1), file }));

afterEach(() => {
  vi.restoreAllMocks();
});

describe('corpus/regressions', () => {
  it('holds the golden traces and the shrunk traces of both seed bugs', () => {
    const names = SEEDS.map((s) => s.name);
    expect(names).toEqual(
      expect.arrayContaining(['bug-a.mpk', 'bug-b.mpk', 'bug-a-shrunk.mpk', 'bug-b-shrunk.mpk']),
    );
  });

  it.each(SEEDS)('$name reproduces its recorded findings', ({ file }) => {
    const c = checkSeed(file);
    expect(c.error, 'the run threw').toBeNull();
    expect(c.missing, `recorded: ${c.recorded.join(', ')}; now: ${c.now.join(', ')}`).toEqual([]);
    expect(c.unexpected, 'recorded with no finding').toEqual([]);
    expect(c.holds).toBe(true);
  });

  it.each([
    ['bug-a', 'stuck-irq-line:vser0:remote-irr'],
    ['bug-b', 'migration-failed:serial0:tsr-not-empty'],
  ])('%s-shrunk.mpk is the shrunk %s: fewer steps, same signature', (bug, signature) => {
    const golden = decodeTrace(readFileSync(join(DIR, `${bug}.mpk`)));
    const shrunk = decodeTrace(readFileSync(join(DIR, `${bug}-shrunk.mpk`)));
    expect(golden.verdict.findings.map((f) => f.signature)).toContain(signature);
    expect(shrunk.verdict.findings.map((f) => f.signature)).toContain(signature);
    expect(shrunk.schedule.steps.length).toBeLessThan(golden.schedule.steps.length);
    expect(shrunk.schedule.machine).toBe(golden.schedule.machine);
  });

  it('`migfuzz corpus check` over it exits 0', () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    const err = vi.spyOn(console, 'error').mockImplementation(() => {});
    expect(cmdCorpus(['check', DIR])).toBe(0);
    expect(err).not.toHaveBeenCalled();
    expect(log.mock.calls.at(-1)?.[0]).toBe(`${DIR}: ${SEEDS.length} seeds, ${SEEDS.length} hold, 0 fail`);
  });
});
