import fc from 'fast-check';
import type { EventSink, StateSink } from '../model/events.js';
import type { BuildRegistry } from '../model/migration/builds.js';
import { makeRng, type Rng } from '../model/rng.js';
import { scheduleToJson } from '../model/schedule/to-json.js';
import { buildsPath, type Schedule, ScheduleError } from '../model/schedule/types.js';
import { validateSchedule } from '../model/schedule/validate.js';
import type { Finding, NearMissSink } from '../oracles/types.js';
import { judge } from '../oracles/verdict.js';
import { scheduleArb } from './arbitraries.js';
import { CoverageSink, MAP_SIZE, VirginMap } from './coverage.js';
import { cloneDoc, type Doc, fixHorizon, MUTATORS, type MutatorName, mutate } from './mutate.js';

/**
 * The coverage-guided loop, deterministic for a seed: each execution generates a fresh
 * schedule or mutates one from the queue, runs and judges it, keeps it if it reached new
 * coverage, and buckets its findings by signature. No I/O and no clock: the caller saves
 * files, shrinks, and decides when to stop.
 */
export interface CampaignConfig {
  seed: number;
  builds: BuildRegistry;
  /** Builds the generator and mutators may pick. */
  allowed: readonly string[];
  /** Starting inputs (they run first, and all join the queue). */
  initial?: readonly Schedule[];
  /** Their file names, for the origin of what they find and of their mutants. */
  initialNames?: readonly string[];
  eventBudget?: number;
  /** Share of executions that generate a fresh schedule instead of mutating, in percent. */
  freshPercent?: number;
  /** The queue's bound; past it, an entry that brought little new coverage is dropped. */
  maxQueue?: number;
}

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
  fresh: number;
  /** Events its run executed: what mutating it costs per execution. */
  cost: number;
  /** Map indices for which it is the cheapest entry that reaches them (favoured when > 0). */
  topRated: number;
  /** The map indices its run reached (MAP_SIZE is 2^16). */
  reached: Uint16Array;
}

export interface FindingRecord {
  signature: string;
  oracle: Finding['oracle'];
  device: string | null;
  message: string;
  builds: string;
  count: number;
  /** Execution (1-based) that first found it. */
  firstExec: number;
  /**
   * Where the input that found it came from: `seed NAME`, `generated`, `mutated (MUTATOR) from
   * seed NAME | queue entry of exec N`, or `imported` (another worker's, or a resumed queue's).
   */
  origin: string;
  schedule: Schedule;
}

export interface ExecResult {
  newEntry: QueueEntry | null;
  newFindings: FindingRecord[];
  events: number;
}

/** Executions per stratum of the mutator mix (fresh generation counts as one). */
export interface MutatorStats {
  tried: Record<string, number>;
  found: Record<string, number>;
}

/**
 * judge(), except that a model that throws (a bug of the model itself, not one of its
 * asserts) gives a model-assert finding instead of ending the campaign.
 */
export function judgeSafely(
  schedule: Schedule,
  builds: BuildRegistry,
  coverage?: EventSink & NearMissSink & StateSink,
  eventBudget?: number,
): { findings: Finding[]; events: number } {
  try {
    const v = judge(schedule, { builds, sink: coverage, nearMiss: coverage, state: coverage, eventBudget });
    return { findings: v.findings, events: v.events };
  } catch (e) {
    const name = e instanceof Error ? e.name : 'throw';
    const message = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    return {
      findings: [
        { oracle: 'model-assert', device: null, at: 0, message, signature: `model-assert:-:crash-${name}` },
      ],
      events: 0,
    };
  }
}

/**
 * How often each mutator is drawn, from measurement: the share of its executions that
 * reached new coverage over 18,000 executions (3 seeds × 6,000, every build) was data 35%,
 * splice 29%, duplicate 28%, move 24%, backend 24%, builds 20%, delete 19%, seed 17%,
 * retime 16%, irq-mode 15%, machine 14% (fresh generation: 21%).
 */
const MUTATOR_WEIGHTS: Record<MutatorName, number> = {
  data: 4,
  splice: 3,
  duplicate: 3,
  move: 3,
  backend: 3,
  builds: 2,
  delete: 2,
  seed: 2,
  retime: 2,
  'irq-mode': 1,
  machine: 1,
};
const WEIGHTED: readonly MutatorName[] = MUTATORS.flatMap((m) =>
  new Array<MutatorName>(MUTATOR_WEIGHTS[m]).fill(m),
);
const pickMutator = (rng: Rng): MutatorName => WEIGHTED[rng.below(WEIGHTED.length)]!;

export const DEFAULT_MAX_QUEUE = 4096;
/**
 * A young queue is mutated less: the share of fresh schedules is 200 (or the queue's bound,
 * if smaller) - queue length percent when that is more (all fresh up to 100 entries). Measured over 20 seeds from no corpus:
 * bug A's median 31 → 15.5 executions (worst 217 → 44), bug B's 117 → 57 (worst 600 → 240),
 * the same coverage after 30,000.
 */
const YOUNG_QUEUE = 200;
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
  a.topRated !== b.topRated ? a.topRated < b.topRated : a.fresh < b.fresh;

export class Campaign {
  execs = 0;
  invalid = 0;
  readonly queue: QueueEntry[] = [];
  readonly findings = new Map<string, FindingRecord>();
  readonly virgin = new VirginMap();
  readonly mutatorStats: MutatorStats = { tried: {}, found: {} };
  private readonly rng: Rng;
  private readonly arb: fc.Arbitrary<object>;
  private readonly coverage = new CoverageSink();
  private pendingInitial: { schedule: Schedule; name: string }[];
  private pendingImports: Doc[] = [];
  /** Per map index, the cheapest queue entry whose run reached it (AFL's top_rated). */
  private readonly topRated: (QueueEntry | undefined)[] = new Array(MAP_SIZE);
  /** Entries with topRated > 0: they cover everything the queue covers, cheaply. */
  private readonly favoured: QueueEntry[] = [];

  constructor(private readonly cfg: CampaignConfig) {
    this.rng = makeRng(cfg.seed);
    this.arb = scheduleArb(cfg.builds, cfg.allowed);
    this.pendingInitial = (cfg.initial ?? []).map((schedule, i) => ({
      schedule,
      name: cfg.initialNames?.[i] ?? `#${i + 1}`,
    }));
  }

  /**
   * Takes an input found elsewhere (another worker, a resumed queue). It runs before any new
   * work, as AFL syncs: that gives it a cost and its coverage, and it joins the queue only if
   * it reaches something this campaign has not.
   */
  importEntry(doc: Doc): void {
    this.pendingImports.push(doc);
  }

  /**
   * Adds to the queue and rates it against the entries reaching the same map indices. A full
   * queue first drops, from a few entries drawn at random, the one rated cheapest for the
   * fewest map indices (then: that brought the least new coverage; starting inputs stay).
   * Memory stays bounded on long campaigns; what was dropped remains on disk in the campaign
   * directory.
   */
  private enqueue(e: QueueEntry): void {
    const q = this.queue;
    if (q.length >= (this.cfg.maxQueue ?? DEFAULT_MAX_QUEUE)) {
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
      if (best && --best.topRated === 0) this.unfavour(best);
      this.topRated[i] = e;
      if (e.topRated++ === 0) this.favoured.push(e);
    }
  }

  private drop(index: number): void {
    const [e] = this.queue.splice(index, 1);
    if (!e || e.topRated === 0) return;
    // Forget its ratings so it can be collected; the next entries that reach those indices
    // are rated for them (every new entry is rated on all it reaches, not only the new).
    for (const i of e.reached) if (this.topRated[i] === e) this.topRated[i] = undefined;
    e.topRated = 0;
    this.unfavour(e);
  }

  private unfavour(e: QueueEntry): void {
    const i = this.favoured.indexOf(e);
    if (i >= 0) {
      this.favoured[i] = this.favoured[this.favoured.length - 1]!;
      this.favoured.pop();
    }
  }

  /** One execution. */
  step(): ExecResult {
    const initial = this.pendingInitial.shift();
    const imported = initial ? undefined : this.pendingImports.shift();
    let doc: Doc;
    let how: string;
    let origin: string;
    if (initial) {
      doc = scheduleToJson(initial.schedule) as Doc;
      how = 'initial';
      origin = `seed ${initial.name}`;
    } else if (imported) {
      doc = imported;
      how = 'imported';
      origin = 'imported';
    } else {
      const young = Math.min(YOUNG_QUEUE, this.cfg.maxQueue ?? DEFAULT_MAX_QUEUE) - this.queue.length;
      const freshPercent = Math.max(this.cfg.freshPercent ?? 20, young);
      const parent = this.queue.length === 0 || this.rng.below(100) < freshPercent ? null : this.pickParent();
      const mutant = parent === null ? null : cloneDoc(parent.doc);
      const mutated = mutant === null ? null : this.mutateDoc(mutant);
      // A parent that no mutator could change is not run again: a fresh schedule instead.
      if (mutant !== null && mutated !== null) {
        doc = mutant;
        how = mutated;
        origin = `mutated (${mutated}) from ${parent!.label}`;
      } else {
        doc = fc.sample(this.arb, { seed: this.rng.below(0x7fffffff), numRuns: 1 })[0] as Doc;
        how = 'fresh';
        origin = 'generated';
      }
    }
    this.execs++;
    this.mutatorStats.tried[how] = (this.mutatorStats.tried[how] ?? 0) + 1;
    let schedule: Schedule;
    try {
      schedule = validateSchedule(doc, this.cfg.builds);
    } catch (e) {
      if (!(e instanceof ScheduleError)) throw e;
      this.invalid++;
      return { newEntry: null, newFindings: [], events: 0 };
    }
    return this.execute(schedule, doc, how, origin);
  }

  /**
   * Mostly a favoured entry (the cheapest ones that together reach all the coverage, so the
   * queue does not drift to ever longer schedules), sometimes a recent one (the newest
   * coverage), sometimes any.
   */
  private pickParent(): QueueEntry {
    const q = this.queue;
    const r = this.rng.below(10);
    if (r < FAVOURED_IN_10 && this.favoured.length > 0)
      return this.favoured[this.rng.below(this.favoured.length)]!;
    if (r < FAVOURED_IN_10 + RECENT_IN_10) return q[q.length - 1 - this.rng.below(Math.min(q.length, 8))]!;
    return q[this.rng.below(q.length)]!;
  }

  /** Stacked mutations of `doc` in place: the first mutator's name, or null if none changed it. */
  private mutateDoc(doc: Doc): string | null {
    const n = 1 + this.rng.below(4);
    const names: MutatorName[] = [];
    const cx = {
      rng: this.rng,
      builds: this.cfg.builds,
      allowed: this.cfg.allowed,
      other: () => this.pickParent().doc,
    };
    // Mutations that change nothing do not count.
    for (let tries = 0; names.length < n && tries < 4 * n; tries++) {
      const name = pickMutator(this.rng);
      if (mutate(doc, name, cx)) names.push(name);
    }
    fixHorizon(doc);
    return names[0] ?? null;
  }

  private execute(schedule: Schedule, doc: Doc, how: string, origin: string): ExecResult {
    const cov = this.coverage;
    cov.reset();
    const { findings, events } = judgeSafely(schedule, this.cfg.builds, cov, this.cfg.eventBudget);
    const fresh = this.virgin.merge(cov);
    let newEntry: QueueEntry | null = null;
    if (fresh > 0 || how === 'initial') {
      newEntry = {
        id: this.queue.length,
        doc,
        op: how,
        exec: this.execs,
        label: how === 'initial' ? origin : `queue entry of exec ${this.execs}`,
        fresh,
        cost: events,
        topRated: 0,
        reached: Uint16Array.from(cov.touched),
      };
      this.enqueue(newEntry);
      this.mutatorStats.found[how] = (this.mutatorStats.found[how] ?? 0) + 1;
    }
    const newFindings: FindingRecord[] = [];
    for (const f of findings) {
      // An input another worker (or an earlier campaign) ran was counted there: not here.
      const counted = how === 'imported' ? 0 : 1;
      const known = this.findings.get(f.signature);
      if (known) {
        known.count += counted;
        continue;
      }
      const rec: FindingRecord = {
        signature: f.signature,
        oracle: f.oracle,
        device: f.device,
        message: f.message,
        builds: buildsPath(schedule, '→'),
        count: counted,
        firstExec: this.execs,
        origin,
        schedule,
      };
      this.findings.set(f.signature, rec);
      newFindings.push(rec);
    }
    return { newEntry, newFindings, events };
  }
}
