import { streamWaits } from '../../src/model/world.js';

/**
 * The first schedule seed whose loads wait (or not) for the stream's end as `waits` says, in
 * order: tests pin the incoming coroutine's yield (MigPhase.STREAM_WAIT) through the seed.
 */
export function seedWithStreamWaits(...waits: boolean[]): number {
  for (let seed = 0; seed < 1 << 16; seed++) {
    const drawn = streamWaits(seed, waits.length);
    if (drawn.every((w, i) => w === waits[i])) return seed;
  }
  throw new Error(`no seed below 65536 draws ${waits.join(',')}`);
}
