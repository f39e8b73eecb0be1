import type { Rng } from '../model/rng.js';
import { MAP_SIZE } from './coverage.js';
import type { Doc } from './mutate.js';

/**
 * The queue of inputs that reached new coverage, and its minimizer: AFL's top_rated culling,
 * which keeps for every map index the cheapest entry reaching it and favours those entries as
 * parents, so the queue does not drift to ever longer schedules.
 */
export interface QueueEntry {
  id: number;
  doc: Doc;
  /** How it was made: 'initial', 'fresh', 'imported' or the first mutator applied. */
  op: string;
  /** Executions when it was found. */
  exec: number;
  /** What it is, as a finding's origin names its parent: `seed NAME` or `queue entry of exec N`. */
  label: string;
  /** (map index, hit bucket) pairs it was the first to reach. */
  newBuckets: number;
  /** Events its run executed: what mutating it costs per execution. */
  cost: number;
  /** Map indices for which it is the cheapest entry that reaches them (favoured when > 0). */
  ratedFor: number;
  /** The map indices its run reached (MAP_SIZE is 2^16). */
  reached: Uint16Array;
}

export const DEFAULT_MAX_QUEUE = 4096;
/**
 * Parent draws, out of 10: favoured entries, recent ones, and the rest any entry. Measured
 * over 40,000 executions (2 seeds, every build): 6/2/2 keeps runs at ~500 events and
 * 3,600-3,700 execs/s for the same coverage that recent-or-any picks reach at 3,600-5,000
 * events and 1,100-1,800 execs/s (their schedules grow); 8/1/1 or more loses coverage.
 */
const FAVOURED_IN_10 = 6;
const RECENT_IN_10 = 2;

/** The entry rated for the fewest map indices goes first, then the one that brought least. */
const betterVictim = (a: QueueEntry, b: QueueEntry): boolean =>
  a.ratedFor !== b.ratedFor ? a.ratedFor < b.ratedFor : a.newBuckets < b.newBuckets;

export class Corpus {
  readonly entries: QueueEntry[] = [];
  /** Per map index, the cheapest queue entry whose run reached it (AFL's top_rated). */
  private readonly topRated: (QueueEntry | undefined)[] = new Array(MAP_SIZE);
  /** Entries with ratedFor > 0: they cover everything the queue covers, cheaply. */
  private readonly favoured: QueueEntry[] = [];

  /** `rng` is the campaign's: its draws interleave with the campaign's own. */
  constructor(
    private readonly rng: Rng,
    private readonly maxQueue: number,
  ) {}

  /**
   * Adds to the queue and rates it against the entries reaching the same map indices. A full
   * queue first drops, from a few entries drawn at random, the one rated cheapest for the
   * fewest map indices (then: that brought the least new coverage; starting inputs stay).
   * Memory stays bounded on long campaigns; what was dropped remains on disk in the campaign
   * directory.
   */
  enqueue(e: QueueEntry): void {
    const q = this.entries;
    if (q.length >= this.maxQueue) {
      let victim = -1;
      for (let i = 0; i < 8; i++) {
        const j = this.rng.below(q.length);
        if (q[j]!.op !== 'initial' && (victim < 0 || betterVictim(q[j]!, q[victim]!))) victim = j;
      }
      if (victim >= 0) this.drop(victim);
    }
    q.push(e);
    for (const i of e.reached) {
      const best = this.topRated[i];
      if (best && best.cost <= e.cost) continue;
      if (best && --best.ratedFor === 0) this.unfavour(best);
      this.topRated[i] = e;
      if (e.ratedFor++ === 0) this.favoured.push(e);
    }
  }

  private drop(index: number): void {
    const [e] = this.entries.splice(index, 1);
    if (!e || e.ratedFor === 0) return;
    // Forget its ratings so it can be collected; the next entries that reach those indices
    // are rated for them (every new entry is rated on all it reaches, not only the new).
    for (const i of e.reached) if (this.topRated[i] === e) this.topRated[i] = undefined;
    e.ratedFor = 0;
    this.unfavour(e);
  }

  private unfavour(e: QueueEntry): void {
    const i = this.favoured.indexOf(e);
    if (i >= 0) {
      this.favoured[i] = this.favoured[this.favoured.length - 1]!;
      this.favoured.pop();
    }
  }

  /**
   * Mostly a favoured entry (the cheapest ones that together reach all the coverage), sometimes
   * a recent one (the newest coverage), sometimes any. The queue must not be empty.
   */
  pickParent(): QueueEntry {
    const q = this.entries;
    const r = this.rng.below(10);
    if (r < FAVOURED_IN_10 && this.favoured.length > 0)
      return this.favoured[this.rng.below(this.favoured.length)]!;
    if (r < FAVOURED_IN_10 + RECENT_IN_10) return q[q.length - 1 - this.rng.below(Math.min(q.length, 8))]!;
    return q[this.rng.below(q.length)]!;
  }
}
