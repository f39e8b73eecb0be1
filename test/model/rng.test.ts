import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { makeRng, type Rng, restoreRng } from '../../src/model/rng.js';

const draws = (r: Rng, n: number, bound = 1_000_000): number[] =>
  Array.from({ length: n }, () => r.below(bound));

describe('rng', () => {
  it('gives the same sequence for the same seed', () => {
    for (const seed of [0, 1, 7, 0xffff_ffff]) {
      expect(draws(makeRng(seed), 50)).toEqual(draws(makeRng(seed), 50));
    }
  });

  it('gives different sequences for different seeds', () => {
    expect(draws(makeRng(1), 20)).not.toEqual(draws(makeRng(2), 20));
  });

  it('continues the same sequence after save and restore', () => {
    const r = makeRng(42);
    draws(r, 17);
    const state = r.save();
    const rest = draws(r, 40);
    expect(draws(restoreRng(state), 40)).toEqual(rest);
    // The state is plain data: it survives a JSON round trip.
    expect(draws(restoreRng(JSON.parse(JSON.stringify(state)) as object), 40)).toEqual(rest);
  });

  it('a restored generator can be saved and restored again', () => {
    const r = makeRng(21);
    const once = restoreRng(r.save());
    draws(once, 3);
    const twice = restoreRng(once.save());
    expect(draws(twice, 10)).toEqual(draws(once, 10));
    draws(r, 3);
    expect(draws(r, 10)).toEqual(draws(restoreRng(makeRng(21).save()), 13).slice(3));
  });

  it('a saved state is a snapshot: drawing afterwards does not change it', () => {
    const r = makeRng(3);
    const state = r.save();
    const first = draws(r, 10);
    draws(r, 10);
    expect(draws(restoreRng(state), 10)).toEqual(first);
  });

  it('a restored generator is independent of the original', () => {
    const r = makeRng(9);
    const copy = restoreRng(r.save());
    const a = draws(r, 5);
    const b = draws(copy, 5);
    expect(b).toEqual(a);
    expect(draws(r, 5)).toEqual(draws(copy, 5));
  });

  it('below(1) is always 0', () => {
    const r = makeRng(5);
    expect(draws(r, 100, 1)).toEqual(new Array(100).fill(0));
  });

  it('below(n) is an integer in [0, n) and reaches every value of a small range', () => {
    const r = makeRng(11);
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const v = r.below(7);
      expect(Number.isInteger(v)).toBe(true);
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThan(7);
      seen.add(v);
    }
    expect([...seen].sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it('below(n) stays in range for any seed and bound', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff_ffff }),
        fc.integer({ min: 1, max: 0xffff_ffff }),
        (seed, n) => {
          const r = makeRng(seed);
          for (let i = 0; i < 20; i++) {
            const v = r.below(n);
            expect(Number.isInteger(v) && v >= 0 && v < n).toBe(true);
          }
        },
      ),
      { seed: 1234, numRuns: 300 },
    );
  });
});
