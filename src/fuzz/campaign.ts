import type fc from 'fast-check';
import type { BuildRegistry } from '../model/migration/builds.js';
import { makeRng, type Rng } from '../model/rng.js';
import { scheduleToJson } from '../model/schedule/to-json.js';
import { buildsPath, type Schedule } from '../model/schedule/types.js';
import type { Finding } from '../oracles/types.js';
import type { JudgeOptions } from '../oracles/verdict.js';
import { sampleOne, scheduleArb } from './arbitraries.js';
import { Corpus, DEFAULT_MAX_QUEUE, type QueueEntry } from './corpus.js';
import { VirginMap } from './coverage.js';
import { Executor } from './execute.js';
import { cloneDoc, type Doc, fixHorizon, MUTATORS, type MutatorName, mutate } from './mutate.js';

/**
 * The coverage-guided loop, deterministic for a seed: each execution generates a new
 * schedule or mutates one from the queue (corpus.ts), runs and judges it (execute.ts), keeps
 * it if it reached new coverage, and buckets its findings by signature. No I/O and no clock:
 * the caller saves files, shrinks, and decides when to stop.
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
  /** Share of executions that generate a new schedule instead of mutating, in percent. */
  generatedPercent?: number;
  /** The queue's bound; past it, an entry that brought little new coverage is dropped. */
  maxQueue?: number;
  /**
   * false (`fuzz --no-coverage`): coverage feedback off, the baseline guidance is measured
   * against. Generation and mutation go on, but every input joins the queue whatever it
   * reached (bounded: a full queue drops one at random), parents are drawn from it alike,
   * and no input is reported as new.
   */
  coverage?: boolean;
  /** A planted migration bug (the power suite, bench/power/); never set by the CLI. */
  patchLoad?: JudgeOptions['patchLoad'];
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

/** A queue entry of another worker, with what its run reached (Campaign.importCovered). */
export interface CoveredEntry {
  doc: Doc;
  /** Events its run executed. */
  cost: number;
  reached: Uint16Array;
  buckets: Uint8Array;
}

export interface ExecResult {
  /** The schedule document this execution ran (a valid schedule or not). */
  input: Doc;
  newEntry: QueueEntry | null;
  /** The hit-count bucket of each index the new entry reached (see `importCovered`). */
  newEntryBuckets: Uint8Array | null;
  newFindings: FindingRecord[];
  events: number;
}

/** Executions per stratum of the mutator mix (generation, as op 'fresh', counts as one). */
export interface MutatorStats {
  tried: Record<string, number>;
  found: Record<string, number>;
}

/**
 * How often each mutator is drawn, from measurement: the share of its executions that
 * reached new coverage over 18,000 executions (3 seeds × 6,000, every build) was data 35%,
 * splice 29%, duplicate 28%, move 24%, backend 24%, builds 20%, delete 19%, seed 17%,
 * retime 16%, irq-mode 15%, machine 14% (generation: 21%). uart-config came later (lcr and
 * divisor values): drawn as rarely as the least productive.
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
  'uart-config': 1,
};
const WEIGHTED: readonly MutatorName[] = MUTATORS.flatMap((m) =>
  new Array<MutatorName>(MUTATOR_WEIGHTS[m]).fill(m),
);
const pickMutator = (rng: Rng): MutatorName => WEIGHTED[rng.below(WEIGHTED.length)]!;

/**
 * A young queue is mutated less: the share of generated schedules is 200 (or the queue's bound,
 * if smaller) - queue length percent when that is more (all generated up to 100 entries).
 * Measured over 20 seeds from no corpus:
 * bug A's median 31 → 15.5 executions (worst 217 → 44), bug B's 117 → 57 (worst 600 → 240),
 * the same coverage after 30,000.
 */
const YOUNG_QUEUE = 200;
/** What an entry of a campaign without coverage reached: nothing it knows of. */
const NOTHING = new Uint16Array(0);

export class Campaign {
  execs = 0;
  invalid = 0;
  readonly findings = new Map<string, FindingRecord>();
  readonly virgin = new VirginMap();
  readonly mutatorStats: MutatorStats = { tried: {}, found: {} };
  private readonly rng: Rng;
  private readonly arb: fc.Arbitrary<object>;
  private readonly corpus: Corpus;
  private readonly executor: Executor;
  private pendingInitial: { schedule: Schedule; name: string }[];
  private pendingImports: Doc[] = [];

  constructor(private readonly cfg: CampaignConfig) {
    this.rng = makeRng(cfg.seed);
    this.arb = scheduleArb(cfg.builds, cfg.allowed);
    this.corpus = new Corpus(this.rng, cfg.maxQueue ?? DEFAULT_MAX_QUEUE);
    this.executor = new Executor(cfg.builds, cfg.eventBudget, {
      coverage: cfg.coverage !== false,
      patchLoad: cfg.patchLoad,
    });
    this.pendingInitial = (cfg.initial ?? []).map((schedule, i) => ({
      schedule,
      name: cfg.initialNames?.[i] ?? `#${i + 1}`,
    }));
  }

  get queue(): readonly QueueEntry[] {
    return this.corpus.entries;
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
   * Takes an entry another worker of this campaign's pool ran, with what its run reached.
   * Runs are deterministic, so merging that coverage is what running it here would give: it
   * joins the queue if it reaches something this campaign has not, without an execution.
   */
  importCovered(e: CoveredEntry): void {
    const newBuckets = this.virgin.mergeBuckets(e.reached, e.buckets);
    if (newBuckets === 0) return;
    this.corpus.enqueue(this.entry(e.doc, 'imported', 'imported', newBuckets, e.cost, e.reached));
    this.mutatorStats.found.imported = (this.mutatorStats.found.imported ?? 0) + 1;
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
      const queued = this.corpus.entries.length;
      const young = Math.min(YOUNG_QUEUE, this.cfg.maxQueue ?? DEFAULT_MAX_QUEUE) - queued;
      const generatedPercent = Math.max(this.cfg.generatedPercent ?? 20, young);
      const parent = queued === 0 || this.rng.below(100) < generatedPercent ? null : this.corpus.pickParent();
      const mutant = parent === null ? null : cloneDoc(parent.doc);
      const mutated = mutant === null ? null : this.mutateDoc(mutant);
      // A parent that no mutator could change is not run again: a generated schedule instead.
      if (mutant !== null && mutated !== null) {
        doc = mutant;
        how = mutated;
        origin = `mutated (${mutated}) from ${parent!.label}`;
      } else {
        doc = sampleOne(this.arb, this.rng.below(0x7fffffff)) as Doc;
        how = 'fresh';
        origin = 'generated';
      }
    }
    this.execs++;
    this.mutatorStats.tried[how] = (this.mutatorStats.tried[how] ?? 0) + 1;
    const run = this.executor.run(doc);
    if (run.kind === 'invalid') {
      this.invalid++;
      return { input: doc, newEntry: null, newEntryBuckets: null, newFindings: [], events: 0 };
    }
    const { schedule, findings, events, coverage } = run;
    let newEntry: QueueEntry | null = null;
    if (coverage === null) {
      // No feedback: every input may be a parent; none is new coverage.
      this.corpus.enqueue(this.entry(doc, how, origin, 0, events, NOTHING));
      return {
        input: doc,
        newEntry,
        newEntryBuckets: null,
        newFindings: this.bucket(findings, schedule, how, origin),
        events,
      };
    }
    const newBuckets = this.virgin.merge(coverage);
    let newEntryBuckets: Uint8Array | null = null;
    if (newBuckets > 0 || how === 'initial') {
      newEntry = this.entry(doc, how, origin, newBuckets, events, Uint16Array.from(coverage.touched));
      newEntryBuckets = coverage.buckets();
      this.corpus.enqueue(newEntry);
      this.mutatorStats.found[how] = (this.mutatorStats.found[how] ?? 0) + 1;
    }
    return {
      input: doc,
      newEntry,
      newEntryBuckets,
      newFindings: this.bucket(findings, schedule, how, origin),
      events,
    };
  }

  private entry(
    doc: Doc,
    how: string,
    origin: string,
    newBuckets: number,
    cost: number,
    reached: Uint16Array,
  ): QueueEntry {
    return {
      id: this.corpus.entries.length,
      doc,
      op: how,
      exec: this.execs,
      label: how === 'initial' ? origin : `queue entry of exec ${this.execs}`,
      newBuckets,
      cost,
      ratedFor: 0,
      reached,
    };
  }

  /** Stacked mutations of `doc` in place: the first mutator's name, or null if none changed it. */
  private mutateDoc(doc: Doc): string | null {
    const n = 1 + this.rng.below(4);
    const names: MutatorName[] = [];
    const cx = {
      rng: this.rng,
      builds: this.cfg.builds,
      allowed: this.cfg.allowed,
      other: () => this.corpus.pickParent().doc,
    };
    // Mutations that change nothing do not count.
    for (let tries = 0; names.length < n && tries < 4 * n; tries++) {
      const name = pickMutator(this.rng);
      if (mutate(doc, name, cx)) names.push(name);
    }
    fixHorizon(doc);
    return names[0] ?? null;
  }

  /** Buckets a run's findings by signature: the records of the signatures not seen before. */
  private bucket(
    findings: readonly Finding[],
    schedule: Schedule,
    how: string,
    origin: string,
  ): FindingRecord[] {
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
    return newFindings;
  }
}
