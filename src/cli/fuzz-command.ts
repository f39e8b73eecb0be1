import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { buildPairs } from '../fuzz/arbitraries.js';
import { Campaign, DEFAULT_MAX_QUEUE, type FindingRecord } from '../fuzz/campaign.js';
import type { Doc } from '../fuzz/mutate.js';
import { shrink } from '../fuzz/shrink.js';
import { BuildFileError, parseBuildFile } from '../model/migration/build-file.js';
import { BUILTIN_BUILDS, type BuildRegistry, builtinRegistry } from '../model/migration/builds.js';
import { type Schedule, ScheduleError } from '../model/schedule/types.js';
import {
  oneLine,
  parseSchedule,
  quote,
  scheduleToJson,
  validateSchedule,
} from '../model/schedule/validate.js';
import { DEFAULT_EVENT_BUDGET, MAX_EVENT_BUDGET } from '../model/world.js';
import { recordRun } from '../replay/record.js';
import { encodeTrace } from '../replay/trace.js';
import { flagString, type ParsedArgs, parseArgs, UsageError } from './args.js';
import { Confirmer } from './fuzz-confirm.js';
import type { BatchReport, ToWorker, WorkerInit } from './fuzz-worker.js';
import { ioReason, makeDirs, readTraceFile, TraceInputError, writeFileAtomic } from './replay-commands.js';
import { INSTANCE_EXPECTED, SyncDir, validInstance } from './sync.js';

/**
 * `migfuzz fuzz`: a campaign in an AFL-shaped directory (INTERFACE.md §5). This file holds
 * the I/O: flags, the wall clock, the output directory, the status line; the search itself
 * is src/fuzz/campaign.ts.
 */
export class FuzzInputError extends Error {
  override readonly name = 'FuzzInputError';
}

export interface FuzzSettings {
  seed: number;
  timeMs: number | null;
  execs: number | null;
  workers: number;
  /** The in-memory queue's bound (per worker). */
  maxQueue: number;
  /** Executed events allowed per run before it is cut as a hang. */
  eventBudget: number;
  out: string;
  /** --corpus, or null: corpus/seeds if there is one. */
  corpus: string | null;
  builds: BuildRegistry;
  allowed: string[];
  /** The --builds flag as given, for reproduce commands. */
  buildsFlag: string | undefined;
  /** --confirm: the QEMU binary new modern-build signatures are confirmed on, or null. */
  confirmQemu: string | null;
  /** --sync-dir DIR --instance NAME: this campaign is DIR/NAME and shares with DIR's others. */
  sync: { dir: string; instance: string } | null;
}

const DURATION = /^(\d+)(ms|s|m|h)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
/** Starting inputs when --corpus is not given (relative to the working directory). */
const DEFAULT_CORPUS = join('corpus', 'seeds');

export function parseDuration(text: string): number {
  const m = DURATION.exec(text);
  if (!m) throw new UsageError(`--time: ${quote(text)} is not a duration (e.g. 60s, 5m, 1h)`);
  const ms = Number(m[1]) * UNIT_MS[m[2] ?? 's']!;
  if (!(ms >= 1)) throw new UsageError(`--time: ${quote(text)} is no time at all`);
  return ms;
}

function positiveInt(a: ParsedArgs, flag: string, max: number): number | null {
  const v = flagString(a, flag);
  if (v === undefined) return null;
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > max)
    throw new UsageError(`${flag}: expected a whole number from 1 to ${max}, got ${quote(v)}`);
  return Number(v);
}

/**
 * --builds LIST: build names, and build files (ending in .json) whose builds are added and
 * allowed. Without it, every built-in build.
 */
export function resolveBuilds(
  list: string | undefined,
  read: (file: string) => string,
): { builds: BuildRegistry; allowed: string[] } {
  let builds = builtinRegistry();
  if (!list) return { builds, allowed: BUILTIN_BUILDS.map((b) => b.name) };
  const allowed: string[] = [];
  for (const item of list.split(',').filter((x) => x !== '')) {
    if (item.endsWith('.json')) {
      const before = new Set(builds.keys());
      try {
        builds = parseBuildFile(read(item), builds);
      } catch (e) {
        if (e instanceof BuildFileError) throw new BuildFileError(`${item}: ${e.message}`);
        throw e;
      }
      for (const name of builds.keys()) if (!before.has(name)) allowed.push(name);
    } else if (builds.has(item)) {
      allowed.push(item);
    } else {
      throw new UsageError(
        `--builds: unknown build ${quote(item)} (known: ${[...builds.keys()].join(', ')})`,
      );
    }
  }
  if (buildPairs(builds, allowed).length === 0)
    throw new UsageError('--builds: no two of these builds share a machine type');
  return { builds, allowed };
}

export function fuzzSettings(argv: string[], read: (file: string) => string, wallSeed: number): FuzzSettings {
  const a = parseArgs(
    argv,
    [
      '--seed',
      '--time',
      '--execs',
      '--workers',
      '--out',
      '--corpus',
      '--builds',
      '--max-queue',
      '--event-budget',
      '--qemu',
      '--sync-dir',
      '--instance',
    ],
    ['--confirm'],
  );
  if (a.positionals.length > 0) throw new UsageError(`fuzz takes no FILE (got ${quote(a.positionals[0]!)})`);
  if (a.flags.has('--qemu') && !a.flags.has('--confirm')) throw new UsageError('--qemu goes with --confirm');
  const sync = syncSettings(a);
  if (a.flags.has('--time') && a.flags.has('--execs'))
    throw new UsageError('give --time or --execs, not both');
  const seedText = flagString(a, '--seed');
  if (seedText !== undefined && (!/^\d+$/.test(seedText) || Number(seedText) > 0xffffffff)) {
    throw new UsageError(`--seed: expected a u32, got ${quote(seedText)}`);
  }
  const execs = positiveInt(a, '--execs', 1e12);
  const time = flagString(a, '--time');
  const { builds, allowed } = resolveBuilds(flagString(a, '--builds'), read);
  return {
    seed: seedText !== undefined ? Number(seedText) : wallSeed >>> 0,
    timeMs: time !== undefined ? parseDuration(time) : execs === null ? 60_000 : null,
    execs,
    workers: positiveInt(a, '--workers', 64) ?? 1,
    maxQueue: positiveInt(a, '--max-queue', 1_000_000) ?? DEFAULT_MAX_QUEUE,
    eventBudget: positiveInt(a, '--event-budget', MAX_EVENT_BUDGET) ?? DEFAULT_EVENT_BUDGET,
    out: sync ? join(sync.dir, sync.instance) : (flagString(a, '--out') ?? 'out'),
    corpus: flagString(a, '--corpus') ?? null,
    builds,
    allowed,
    buildsFlag: flagString(a, '--builds'),
    confirmQemu: a.flags.has('--confirm') ? (flagString(a, '--qemu') ?? 'qemu-system-x86_64') : null,
    sync,
  };
}

function syncSettings(a: ParsedArgs): FuzzSettings['sync'] {
  const dir = flagString(a, '--sync-dir');
  const instance = flagString(a, '--instance');
  if (dir === undefined && instance === undefined) return null;
  if (dir === undefined || instance === undefined)
    throw new UsageError('--sync-dir and --instance go together');
  if (a.flags.has('--out'))
    throw new UsageError('--out is not given with --sync-dir: the campaign is DIR/INSTANCE');
  if (!validInstance(instance))
    throw new UsageError(`--instance: ${quote(instance)} is not ${INSTANCE_EXPECTED}`);
  return { dir, instance };
}

/**
 * Starting inputs: schedules (.json) and traces (.mpk) of a directory; a bad file is an input
 * error. Inputs of builds outside the campaign's (`allowed`) are left out.
 */
export function loadCorpus(dir: string, builds: BuildRegistry, allowed: readonly string[]): Schedule[] {
  if (!existsSync(dir)) throw new FuzzInputError(`${dir}: no such corpus directory`);
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (e) {
    throw new FuzzInputError(oneLine(`${dir}: cannot read the corpus directory (${ioReason(e)})`));
  }
  const out: Schedule[] = [];
  for (const name of names) {
    const file = join(dir, name);
    try {
      if (name.endsWith('.json')) out.push(parseSchedule(readFileSync(file, 'utf8'), builds));
      else if (name.endsWith('.mpk')) out.push(readTraceFile(file).schedule);
    } catch (e) {
      if (e instanceof ScheduleError || e instanceof TraceInputError)
        throw new FuzzInputError(`${file}: ${e.message}`);
      const code = (e as NodeJS.ErrnoException).code;
      if (code) throw new FuzzInputError(`${file}: cannot read (${code})`);
      throw e;
    }
  }
  return out.filter((s) => inCampaign(s, allowed));
}

const inCampaign = (s: Schedule, allowed: readonly string[]): boolean =>
  allowed.includes(s.src.build) && allowed.includes(s.dst.build);

/** The schedule's trace, or why there is none (the model threw outside its run loop). */
function traceOrCrash(s: Schedule, builds: BuildRegistry, eventBudget: number): Uint8Array | string {
  try {
    return encodeTrace(recordRun(s, builds, eventBudget));
  } catch (e) {
    return `no trace: the model threw while running this schedule (${e instanceof Error ? e.message : String(e)})\n`;
  }
}

/** A signature as a directory name. */
export const signatureDir = (sig: string): string => sig.replace(/[^A-Za-z0-9._:-]/g, '_');

/** The campaign's output directory: queue/, crashes/SIG/, hangs/, stats and plot data. */
export class OutDir {
  private queued = 0;
  constructor(readonly dir: string) {
    for (const sub of ['queue', 'crashes', 'hangs']) {
      try {
        makeDirs(join(dir, sub));
      } catch (e) {
        throw new FuzzInputError(oneLine(`${dir}: cannot create the output directory (${ioReason(e)})`));
      }
    }
  }

  /** Queue entries of an earlier campaign in this directory (resume), of the allowed builds. */
  resumeQueue(builds: BuildRegistry, allowed: readonly string[]): Doc[] {
    const docs: Doc[] = [];
    const names = readdirSync(join(this.dir, 'queue')).sort();
    for (const name of names) {
      if (!name.endsWith('.json')) continue;
      try {
        const s = parseSchedule(readFileSync(join(this.dir, 'queue', name), 'utf8'), builds);
        if (inCampaign(s, allowed)) docs.push(scheduleToJson(s) as Doc);
      } catch {
        // An entry of another build set, or damaged: the queue is an optimisation, skip it.
      }
    }
    // Numbering goes on after every entry there (also the skipped ones), never reusing an id.
    for (const name of names) {
      const id = /^id:(\d+),/.exec(name);
      if (id) this.queued = Math.max(this.queued, Number(id[1]) + 1);
    }
    return docs;
  }

  /**
   * What an earlier campaign in this directory counted (resume): its executions, run time and
   * finding counts, and its plot rows, so the totals and the plot go on. Unreadable: nothing.
   */
  earlier(): { execs: number; runTimeS: number; findings: Map<string, number>; plot: string[] } {
    const none = { execs: 0, runTimeS: 0, findings: new Map<string, number>(), plot: [] };
    const read = (name: string): string | null => {
      try {
        return readFileSync(join(this.dir, name), 'utf8');
      } catch {
        return null;
      }
    };
    let stats: Record<string, unknown>;
    try {
      stats = JSON.parse(read('fuzzer_stats.json') ?? 'null') as Record<string, unknown>;
    } catch {
      return none;
    }
    const { execs, run_time_s: runTimeS, findings } = stats ?? {};
    if (!(Number.isSafeInteger(execs) && typeof runTimeS === 'number' && runTimeS >= 0)) return none;
    const counts = new Map<string, number>();
    for (const [sig, n] of Object.entries(typeof findings === 'object' && findings !== null ? findings : {}))
      if (Number.isSafeInteger(n)) counts.set(sig, n as number);
    const plot = (read('plot_data.csv') ?? '').split('\n').filter((line) => /^[\d.]+(,\d+){5}$/.test(line));
    return { execs: execs as number, runTimeS, findings: counts, plot };
  }

  /** Signatures already saved under crashes/ (resume: not saved twice). */
  knownSignatures(): Set<string> {
    const known = new Set<string>();
    for (const sub of ['crashes', 'hangs']) {
      for (const n of readdirSync(join(this.dir, sub)))
        if (existsSync(join(this.dir, sub, n, 'finding.json'))) known.add(n);
    }
    return known;
  }

  saveQueue(doc: Doc, exec: number, how: string): void {
    const name = `id:${String(this.queued++).padStart(6, '0')},exec:${exec},op:${how}.json`;
    writeFileAtomic(join(this.dir, 'queue', name), `${JSON.stringify(doc, null, 1)}\n`, { durable: false });
  }

  /**
   * A finding's directory: its original and shrunk schedules and traces, and finding.json
   * (written last: its presence means the directory is complete).
   */
  saveFinding(
    f: FindingRecord,
    shrunk: Schedule,
    builds: BuildRegistry,
    eventBudget: number,
    extra: object,
  ): string {
    const sub =
      f.oracle === 'hang'
        ? join('hangs', signatureDir(f.signature))
        : join('crashes', signatureDir(f.signature));
    const dir = join(this.dir, sub);
    makeDirs(dir);
    for (const [name, s] of [
      ['original', f.schedule],
      ['shrunk', shrunk],
    ] as const) {
      writeFileAtomic(join(dir, `${name}.json`), `${JSON.stringify(scheduleToJson(s), null, 1)}\n`);
      const trace = traceOrCrash(s, builds, eventBudget);
      writeFileAtomic(join(dir, typeof trace === 'string' ? `${name}.crash.txt` : `${name}.mpk`), trace);
    }
    const record = {
      ...extra,
      signature: f.signature,
      oracle: f.oracle,
      device: f.device,
      message: f.message,
      builds: f.builds,
    };
    writeFileAtomic(join(dir, 'finding.json'), `${JSON.stringify(record, null, 1)}\n`);
    return dir;
  }

  writeStats(stats: object): void {
    writeFileAtomic(join(this.dir, 'fuzzer_stats.json'), `${JSON.stringify(stats, null, 1)}\n`, {
      durable: false,
    });
  }

  writePlot(rows: readonly string[]): void {
    writeFileAtomic(
      join(this.dir, 'plot_data.csv'),
      `# relative_time_s,execs,execs_per_sec,corpus_size,coverage,findings\n${rows.join('\n')}\n`,
      { durable: false },
    );
  }
}

export interface FuzzIo {
  now(): number;
  isTty: boolean;
  write(text: string): void;
  onStop(handler: () => void): void;
  readText(file: string): string;
}

interface Row {
  f: FindingRecord;
  seenMs: number;
  shrunkSteps: number;
  /** The shrinker finished (false: it stopped at its limit). */
  minimal: boolean;
  dir: string;
}

/** What executions produced since the last batch. */
interface Batch {
  entries: { doc: Doc; op: string; exec: number }[];
  findings: FindingRecord[];
}

/** Where executions come from: this thread's campaign, or a pool of worker threads. */
interface Source {
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

const BATCH = 64;
/** A pool gives up after this many worker deaths. */
const MAX_RESTARTS = 16;

class LocalSource implements Source {
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
class PoolSource implements Source {
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
      maxExecs: this.shares[i]!,
      initial,
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
        this.failure = new FuzzInputError(`campaign workers died ${this.restarts} times; giving up`);
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
    for (const e of r.entries) {
      this.pending.entries.push(e);
      this.shared.push(e.doc);
      if (this.shared.length > this.st.maxQueue) this.shared.shift();
      this.workers.forEach((w, j) => {
        if (j !== i) w.postMessage({ type: 'import', docs: [e.doc] } satisfies ToWorker);
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

const STATUS_EVERY_MS = 250;
const PLAIN_STATUS_EVERY_MS = 5000;
const STATS_EVERY_MS = 1000;
/** How often a synced instance looks for the others' new queue entries. */
const SYNC_EVERY_MS = 2000;

/** Runs a campaign to its limit or a stop signal; exit 1 when something was found. */
export async function runFuzz(st: FuzzSettings, io: FuzzIo): Promise<number> {
  // Outside a checkout there is no corpus/seeds: without --corpus, start from nothing.
  const noSeeds = st.corpus === null && !existsSync(DEFAULT_CORPUS);
  const initial = noSeeds ? [] : loadCorpus(st.corpus ?? DEFAULT_CORPUS, st.builds, st.allowed);
  const out = new OutDir(st.out);
  const resumed = out.resumeQueue(st.builds, st.allowed);
  const sync = st.sync ? new SyncDir(st.sync.dir, st.sync.instance) : null;
  const synced = (): Doc[] => sync?.newEntries(st.builds, (s) => inCampaign(s, st.allowed)) ?? [];
  // Other instances' entries run first, like a resumed queue's.
  resumed.push(...synced());
  let source: Source;
  if (st.workers === 1) {
    const campaign = new Campaign({
      seed: st.seed,
      builds: st.builds,
      allowed: st.allowed,
      initial,
      maxQueue: st.maxQueue,
      eventBudget: st.eventBudget,
    });
    for (const doc of resumed) campaign.importEntry(doc);
    source = new LocalSource(campaign);
  } else {
    source = new PoolSource(
      st,
      initial.map((s) => scheduleToJson(s) as Doc),
      resumed,
    );
  }
  const known = out.knownSignatures();
  const confirmer = st.confirmQemu === null ? null : new Confirmer(st.builds, st.confirmQemu, st.eventBudget);
  // A resumed campaign's totals and plot go on from the earlier one's.
  const earlier = out.earlier();
  let stopped = false;
  io.onStop(() => {
    stopped = true;
    confirmer?.abort();
  });
  const t0 = io.now();
  const rows: Row[] = [];
  const plot: string[] = [...earlier.plot];
  let lastStatus = Number.NEGATIVE_INFINITY;
  let lastStats = Number.NEGATIVE_INFINITY;
  let lastSync = io.now();
  io.write(
    `migfuzz: fuzzing ${st.allowed.join(',')} with seed ${st.seed}, ${st.workers} worker(s), into ${st.out}/\n`,
  );
  if (resumed.length > 0)
    io.write(
      `migfuzz: resuming from ${resumed.length} queue entr${resumed.length === 1 ? 'y' : 'ies'} of ${st.out}/\n`,
    );
  const status = (force: boolean): void => {
    const ms = io.now() - t0;
    if (!force && ms - lastStatus < (io.isTty ? STATUS_EVERY_MS : PLAIN_STATUS_EVERY_MS)) return;
    lastStatus = ms;
    const rate = Math.round(source.execs / Math.max(ms / 1000, 0.001));
    const line = `#${source.execs}\tcov: ${source.covered} corp: ${source.queueSize} exec/s: ${rate} finds: ${source.counts.size}`;
    io.write(io.isTty ? `\r${line}\x1b[K` : `${line}\n`);
  };
  const saveStats = (force: boolean): void => {
    const ms = io.now() - t0;
    if (!force && ms - lastStats < STATS_EVERY_MS) return;
    lastStats = ms;
    const execsPerSec = source.execs / Math.max(ms / 1000, 0.001);
    const runTimeS = earlier.runTimeS + ms / 1000;
    const execs = earlier.execs + source.execs;
    const findings = new Map(earlier.findings);
    for (const [sig, n] of source.counts) findings.set(sig, (findings.get(sig) ?? 0) + n);
    plot.push(
      `${runTimeS.toFixed(1)},${execs},${execsPerSec.toFixed(0)},${source.queueSize},${source.covered},${findings.size}`,
    );
    out.writePlot(plot);
    out.writeStats({
      start_time: Math.floor(t0 / 1000),
      last_update: Math.floor(io.now() / 1000),
      run_time_s: runTimeS,
      seed: st.seed,
      workers: st.workers,
      builds: st.allowed,
      execs,
      execs_per_sec: Math.round(execsPerSec),
      invalid: source.invalid,
      worker_restarts: source.restarts,
      corpus_size: source.queueSize,
      coverage: source.covered,
      findings: Object.fromEntries(findings),
      ...(confirmer ? { real_qemu: Object.fromEntries(confirmer.verdicts) } : {}),
    });
  };
  const finished = (): boolean =>
    stopped ||
    (st.execs !== null && source.execs >= st.execs) ||
    (st.timeMs !== null && io.now() - t0 >= st.timeMs);
  try {
    while (!finished()) {
      const batch = await source.next(st.execs === null ? BATCH : st.execs - source.execs);
      for (const e of batch.entries)
        if (e.op !== 'initial' && e.op !== 'imported') out.saveQueue(e.doc, e.exec, e.op);
      for (const f of batch.findings)
        rows.push(saveFinding(st, out, f, known, io.now() - t0, confirmer, sync));
      if (sync && io.now() - lastSync >= SYNC_EVERY_MS) {
        lastSync = io.now();
        source.import(synced());
      }
      status(false);
      saveStats(false);
    }
  } finally {
    await source.stop();
  }
  for (const r of rows) r.f.count = source.counts.get(r.f.signature) ?? r.f.count;
  if (confirmer) {
    const pending = [...confirmer.verdicts.values()].filter((v) => v === 'pending').length;
    if (pending > 0)
      io.write(`${io.isTty ? '\n' : ''}migfuzz: waiting for ${pending} confirmation(s) on a real QEMU\n`);
    await confirmer.drain();
  }
  status(true);
  saveStats(true);
  if (io.isTty) io.write('\n');
  io.write(findingTable(rows, source.execs, st.buildsFlag, confirmer?.verdicts));
  return source.counts.size > 0 ? 1 : 0;
}

function saveFinding(
  st: FuzzSettings,
  out: OutDir,
  f: FindingRecord,
  known: Set<string>,
  seenMs: number,
  confirmer: Confirmer | null,
  sync: SyncDir | null,
): Row {
  const dirName = signatureDir(f.signature);
  const sub = f.oracle === 'hang' ? 'hangs' : 'crashes';
  const dir = join(st.out, sub, dirName);
  // Saved once across a sync dir: an instance that finds it later points at the first's.
  const savedBy = known.has(dirName) ? undefined : sync?.claim(join(sub, dirName));
  if (savedBy !== undefined) {
    known.add(dirName);
    return { f, seenMs, shrunkSteps: -1, minimal: true, dir: join(st.sync!.dir, savedBy, sub, dirName) };
  }
  if (known.has(dirName)) {
    confirmer?.submit(f.signature, undefined, dir);
    return { f, seenMs, shrunkSteps: -1, minimal: true, dir };
  }
  const shrunk = shrink(f.schedule, f.signature, st.builds, { eventBudget: st.eventBudget });
  out.saveFinding(f, shrunk.schedule, st.builds, st.eventBudget, {
    seed: st.seed,
    first_exec: f.firstExec,
    seen_ms: seenMs,
  });
  confirmer?.submit(f.signature, shrunk.schedule, dir);
  return { f, seenMs, shrunkSteps: shrunk.stepsAfter, minimal: shrunk.minimal, dir };
}

/** `run`'s --builds for a campaign's schedules: its build file, if it named one. */
function runBuildsFlag(buildsFlag: string | undefined): string {
  const files = (buildsFlag ?? '').split(',').filter((x) => x.endsWith('.json'));
  return files.length === 1 ? ` --builds ${files[0]}` : '';
}

function findingTable(
  rows: readonly Row[],
  execs: number,
  buildsFlag: string | undefined,
  real: ReadonlyMap<string, string> | undefined,
): string {
  if (rows.length === 0) return `no finding in ${execs} executions\n`;
  const lines = [
    `signature | oracle | device | builds | count | first seen | shrunk steps${real ? ' | real QEMU' : ''} | replay`,
  ];
  for (const r of rows) {
    const shrunk =
      r.shrunkSteps < 0 ? '(saved before)' : `${r.shrunkSteps}${r.minimal ? '' : ' (stopped at its limit)'}`;
    lines.push(
      [
        r.f.signature,
        r.f.oracle,
        r.f.device ?? '-',
        r.f.builds,
        String(r.f.count),
        `${(r.seenMs / 1000).toFixed(2)} s (exec ${r.f.firstExec})`,
        shrunk,
        ...(real ? [real.get(r.f.signature) ?? '-'] : []),
        existsSync(join(r.dir, 'shrunk.mpk'))
          ? `npx migfuzz replay ${join(r.dir, 'shrunk.mpk')}`
          : `npx migfuzz run ${join(r.dir, 'shrunk.json')}${runBuildsFlag(buildsFlag)}`,
      ].join(' | '),
    );
  }
  return `${lines.join('\n')}\n`;
}
