import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mergeInputs } from '../../src/fuzz/merge.js';
import { builtinRegistry } from '../../src/model/migration/builds.js';
import { parseSchedule } from '../../src/model/schedule/validate.js';
import { ROOT } from '../replay/helpers.js';

/** corpus merge's cover (libFuzzer -merge=1): the kept inputs reach all the union reaches. */

const builds = builtinRegistry();
const seeds = readdirSync(join(ROOT, 'corpus', 'seeds'))
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => parseSchedule(readFileSync(join(ROOT, 'corpus', 'seeds', f), 'utf8'), builds));

describe('mergeInputs', () => {
  it('keeps a subset with the union coverage, drops duplicates, and is deterministic', () => {
    const inputs = [...seeds, ...seeds];
    const all = mergeInputs(inputs, builds);
    expect(all.kept.length).toBeGreaterThan(0);
    expect(all.kept.length).toBeLessThanOrEqual(seeds.length);
    expect(all.kept.every((i) => i < seeds.length)).toBe(true);
    const again = mergeInputs(
      all.kept.map((i) => inputs[i]!),
      builds,
    );
    expect(again.covered).toBe(all.covered);
    expect(again.kept).toHaveLength(all.kept.length);
    expect(mergeInputs(inputs, builds)).toEqual(all);
  });
});
