import { Worker } from 'node:worker_threads';
import type { Campaign, FindingRecord } from '../fuzz/campaign.js';
import type { Doc } from '../fuzz/mutate.js';
import type { BuildRegistry } from '../model/migration/builds.js';
import { validateSchedule } from '../model/schedule/validate.js';
import { InputError } from './exit-codes.js';
import type { FuzzSettings } from './fuzz-settings.js';
import type { BatchReport, ToWorker, WorkerInit } from './fuzz-worker.js';

/**
 * Where a campaign's executions come from: this thread's campaign, or a pool of worker
 * threads (src/cli/fuzz-worker.ts), each with its own.
 */

/** What executions produced since the last batch. */
export interface Batch {
  entries: { doc: Doc; op: string; exec: number }[];
  findings: FindingRecord[];
}

/** Where executions come from: this thread's campaign, or a pool of worker threads. */
export interface Source {
  /** The next executions: up to `max` here; a pool's workers run their own shares. */
  next(max: number): Promise<Batch>;
  stop(): Promise<void>;
  readonly execs: number;
  readonly queueSize: number;
  readonly covered: number;
  readonly invalid: number;
  /** Worker threads that died and were replaced. */
  readonly restarts: number;
  /** Signature → times seen. */
  readonly counts: Map<string, number>;
  /** Inputs found elsewhere (another instance of a sync dir): they run before new work. */
  import(docs: Doc[]): void;
}

export const BATCH = 64;
/** A pool gives up after this many worker deaths. */
const MAX_RESTARTS = 16;

export class LocalSource implements Source {
  readonly counts = new Map<string, number>();
  readonly restarts = 0;
  constructor(private readonly campaign: Campaign) {}
  import(docs: Doc[]): void {
    for (const d of docs) this.campaign.importEntry(d);
  }
  get execs(): number {
    return this.campaign.execs;
  }
  get queueSize(): number {
    return this.campaign.queue.length;
  }
  get covered(): number {
    return this.campaign.virgin.covered;
  }
  get invalid(): number {
    return this.campaign.invalid;
  }
  async next(max: number): Promise<Batch> {
    const batch: Batch = { entries: [], findings: [] };
    for (let i = 0; i < Math.min(BATCH, max); i++) {
      const r = this.campaign.step();
      if (r.newEntry)
        batch.entries.push({ doc: r.newEntry.doc, op: r.newEntry.op, exec: this.campaign.execs });
      batch.findings.push(...r.newFindings);
    }
    for (const [sig, f] of this.campaign.findings) this.counts.set(sig, f.count);
    // Let signals and output through between batches.
    await new Promise((resolve) => setImmediate(resolve));
    return batch;
  }
  async stop(): Promise<void> {}
}

/** Worker threads, each with its own campaign; what one finds, the others mutate too. */
export class PoolSource implements Source {
  readonly counts = new Map<string, number>();
  private readonly workers: Worker[] = [];
  private readonly latest: (BatchReport | undefined)[] = [];
  private pending: Batch = { entries: [], findings: [] };
  private wake: (() => void) | null = null;
  private failure: Error | null = null;
  /** Queue entries seen so far (bounded), for a restarted worker to start from. */
  private readonly shared: Doc[];
  /** Executions and finding counts of workers that died (their reports are gone with them). */
  private retiredExecs = 0;
  private readonly retiredCounts = new Map<string, number>();
  /** Per worker: the executions it may still run (--execs split between them), or null. */
  private readonly shares: (number | null)[];
  restarts = 0;
  private stopping = false;

  constructor(
    private readonly st: FuzzSettings,
    initial: Doc[],
    private readonly initialNames: string[],
    imported: Doc[],
  ) {
    this.shared = [...imported];
    this.shares = Array.from({ length: st.workers }, (_, i) =>
      st.execs === null ? null : Math.floor(st.execs / st.workers) + (i < st.execs % st.workers ? 1 : 0),
    );
    for (let i = 0; i < st.workers; i++) {
      this.spawn(i, (st.seed + Math.imul(i, 0x9e3779b9)) >>> 0, i === 0 ? initial : [], imported);
    }
  }

  private spawn(i: number, seed: number, initial: Doc[], imported: Doc[]): void {
    const { st } = this;
    const init: WorkerInit = {
      seed,
      builds: [...st.builds.values()],
      allowed: st.allowed,
      maxQueue: st.maxQueue,
      eventBudget: st.eventBudget,
      coverage: st.coverage,
      maxExecs: this.shares[i]!,
      initial,
      initialNames: this.initialNames.slice(this.initialNames.length - initial.length),
      imported,
    };
    const w = new Worker(new URL('./fuzz-worker.js', import.meta.url), { workerData: init });
    w.on('message', (r: BatchReport) => this.take(i, r, st.builds));
    // A worker that dies (a crash of the model outside an execution, out of memory...) is
    // replaced by a fresh one starting from the shared queue; the campaign goes on.
    w.on('error', () => {});
    w.on('exit', () => {
      if (this.stopping) return;
      if (++this.restarts > MAX_RESTARTS) {
        this.failure = new InputError(`campaign workers died ${this.restarts} times; giving up`);
        this.wake?.();
        return;
      }
      const last = this.latest[i];
      this.retiredExecs += last?.execs ?? 0;
      for (const [sig, n] of Object.entries(last?.counts ?? {}))
        this.retiredCounts.set(sig, (this.retiredCounts.get(sig) ?? 0) + n);
      const share = this.shares[i]!;
      if (share !== null) this.shares[i] = share - (last?.execs ?? 0);
      this.latest[i] = undefined;
      // Starting inputs run first: the ones it had not reached yet go to its replacement.
      const rest = initial.slice(last?.execs ?? 0);
      this.spawn(i, (seed + Math.imul(this.restarts, 0x9e3779b9)) >>> 0, rest, this.shared.slice());
    });
    this.workers[i] = w;
  }

  private take(i: number, r: BatchReport, builds: BuildRegistry): void {
    this.latest[i] = r;
    for (const { doc, op, exec } of r.entries) {
      this.pending.entries.push({ doc, op, exec });
      this.shared.push(doc);
      if (this.shared.length > this.st.maxQueue) this.shared.shift();
    }
    // One message per batch to each other worker (a message costs more than its documents).
    // They merge the entries' coverage without running them: the run would reach the same.
    if (r.entries.length > 0) {
      this.workers.forEach((w, j) => {
        if (j !== i) w.postMessage({ type: 'covered', entries: r.entries } satisfies ToWorker);
      });
    }
    for (const f of r.findings) {
      if (this.counts.has(f.signature)) continue;
      this.pending.findings.push({ ...f, schedule: validateSchedule(f.schedule, builds) });
      this.counts.set(f.signature, 0);
    }
    const total = new Map(this.retiredCounts);
    for (const rep of this.latest)
      for (const [sig, n] of Object.entries(rep?.counts ?? {})) total.set(sig, (total.get(sig) ?? 0) + n);
    for (const [sig, n] of total) this.counts.set(sig, n);
    this.wake?.();
  }

  import(docs: Doc[]): void {
    if (docs.length === 0) return;
    this.shared.push(...docs);
    this.shared.splice(0, Math.max(0, this.shared.length - this.st.maxQueue));
    for (const w of this.workers) w.postMessage({ type: 'import', docs } satisfies ToWorker);
  }

  private sum(pick: (r: BatchReport) => number): number {
    return this.latest.reduce((acc, r) => acc + (r ? pick(r) : 0), 0);
  }
  get execs(): number {
    return this.retiredExecs + this.sum((r) => r.execs);
  }
  get queueSize(): number {
    return Math.max(0, ...this.latest.map((r) => r?.queueSize ?? 0));
  }
  get covered(): number {
    return Math.max(0, ...this.latest.map((r) => r?.covered ?? 0));
  }
  get invalid(): number {
    return this.sum((r) => r.invalid);
  }

  async next(_max: number): Promise<Batch> {
    if (this.pending.entries.length === 0 && this.pending.findings.length === 0 && !this.failure) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 100);
      });
      this.wake = null;
    }
    if (this.failure) throw this.failure;
    const batch = this.pending;
    this.pending = { entries: [], findings: [] };
    return batch;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
