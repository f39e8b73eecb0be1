import seedrandom from 'seedrandom';

/**
 * The model's seeded PRNG. Its state is plain data so a run can save and restore it; every
 * decision draws integers, never floats.
 */
export interface Rng {
  /** A uniform integer in [0, n). */
  below(n: number): number;
  /** The generator's state, restorable with `restoreRng`. */
  save(): object;
}

type Prng = ReturnType<typeof seedrandom.alea>;

function wrap(prng: Prng): Rng {
  return {
    below(n) {
      return (prng.int32() >>> 0) % n;
    },
    save() {
      return prng.state();
    },
  };
}

export function makeRng(seed: number): Rng {
  return wrap(seedrandom.alea(String(seed), { state: true }));
}

export function restoreRng(state: object): Rng {
  return wrap(seedrandom.alea('', { state: state as seedrandom.State.Alea }));
}
