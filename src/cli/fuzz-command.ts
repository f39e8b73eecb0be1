import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { buildPairs } from '../fuzz/arbitraries.js';
import { Campaign, type FindingRecord } from '../fuzz/campaign.js';
import { DEFAULT_MAX_QUEUE } from '../fuzz/corpus.js';
import type { Doc } from '../fuzz/mutate.js';
import { shrink } from '../fuzz/shrink.js';
import { BuildFileError, parseBuildFile } from '../model/migration/build-file.js';
import { BUILTIN_BUILDS, type BuildRegistry, builtinRegistry } from '../model/migration/builds.js';
import { didYouMean } from '../model/schedule/suggest.js';
import { scheduleToJson } from '../model/schedule/to-json.js';
import { type Schedule, ScheduleError } from '../model/schedule/types.js';
import { parseSchedule, validateSchedule } from '../model/schedule/validate.js';
import { oneLine, quote } from '../model/util/text.js';
import { DEFAULT_EVENT_BUDGET, MAX_EVENT_BUDGET } from '../model/world.js';
import { knownCause } from '../oracles/known.js';
import { UsageError } from './args.js';
import { Exit, InputError } from './exit-codes.js';
import {
  bool,
  type CommandSpec,
  count,
  duration,
  list,
  parseDuration,
  parseFlags,
  type Settings,
  text,
} from './flags.js';
import { ioReason } from './fs.js';
import { Confirmer } from './fuzz-confirm.js';
import type { BatchReport, ToWorker, WorkerInit } from './fuzz-worker.js';
import { type Earlier, findingDir, inCampaign, OutDir, type SavedFinding, signatureDir } from './out-dir.js';
import { readTraceFile } from './replay-commands.js';
import { INSTANCE_EXPECTED, SyncDir, validInstance } from './sync.js';

/**
 * `migfuzz fuzz`: a campaign in an AFL-shaped directory (docs/cli.md). This file holds
 * the I/O: flags, the wall clock, the output directory, the status line; the search itself
 * is src/fuzz/campaign.ts.
 */

/** The one input-error type, under the name older code imports it by. */
export { InputError as FuzzInputError };

export interface FuzzSettings {
  seed: number;
  timeMs: number | null;
  execs: number | null;
  workers: number;
  /** The in-memory queue's bound (per worker). */
  maxQueue: number;
  /** Executed events allowed per run before it is cut as a hang. */
  eventBudget: number;
  /** false (--no-coverage): generation and mutation without coverage feedback. */
  coverage: boolean;
  out: string;
  /** --corpus, or null: corpus/seeds if there is one. */
  corpus: string | null;
  builds: BuildRegistry;
  allowed: string[];
  /** The --builds flag as given, for reproduce commands. */
  buildsFlag: string | undefined;
  /** Print the final summary as one JSON object instead of the table. */
  json: boolean;
  /** Start over: clear the campaign files of --out instead of resuming. */
  fresh: boolean;
  /** Exit 1 only for new signatures (`start`); false: any finding (`fuzz`, `start --strict`). */
  onlyNewFail: boolean;
  /** --confirm: the QEMU binary new modern-build signatures are confirmed on, or null. */
  confirmQemu: string | null;
  /** --sync-dir DIR --instance NAME: this campaign is DIR/NAME and shares with DIR's others. */
  sync: { dir: string; instance: string } | null;
}

/** Starting inputs when --corpus is not given (relative to the working directory). */
const DEFAULT_CORPUS = join('corpus', 'seeds');

export { parseDuration };

/** The status line, explained (in `fuzz --help` and docs/findings.md). */
export const STATUS_LEGEND =
  'status line: "#N cov: C corp: Q exec/s: R finds: F (K known)": N executions so far (a resumed campaign counts on from its earlier runs), C coverage points reached (edges between model events, AFL-style, and the device state at each migrate instant and load), Q inputs in the queue, R executions per second of this run, F distinct finding signatures, K of them known (docs/signatures.md)';

const FUZZ_FLAGS = {
  seed: count('N', 'the campaign seed, a u32 (the same seed and limit: the same campaign)', {
    min: 0,
    max: 0xffffffff,
    shown: 'from the clock, printed first',
  }),
  time: duration('stop after this long (60s, 5m, 1h)', '60s, unless --execs'),
  execs: count('N', 'stop after this many executions (split between the workers)', { max: 1e12 }),
  workers: count('N', 'worker threads, each running its own campaign and sharing new inputs', {
    max: 64,
    value: 1,
  }),
  out: text('DIR', 'the campaign directory (resumed when it holds an earlier campaign)', 'out'),
  corpus: text('DIR', 'starting inputs: schedules (.json) and traces (.mpk)', undefined),
  builds: list(
    'LIST',
    'builds to fuzz: names and build files (.json), comma-separated (default: every built-in)',
  ),
  maxQueue: count('N', 'bound of the in-memory queue per worker (dropped entries stay on disk)', {
    max: 1_000_000,
    value: DEFAULT_MAX_QUEUE,
  }),
  eventBudget: count('N', 'executed events a run may take before it is cut as a hang', {
    max: MAX_EVENT_BUDGET,
    value: DEFAULT_EVENT_BUDGET,
  }),
  noCoverage: bool(
    'coverage feedback off: generation and mutation of earlier inputs without a coverage queue (a baseline for what guidance is worth)',
  ),
  fresh: bool('start over: delete the campaign files of --out (queue, crashes, hangs, stats) first'),
  json: bool('print the final summary as one JSON object (every finding, full rows) instead of the table'),
  confirm: bool(
    'confirm each new signature of a modern build once on a real QEMU, beside the campaign (docs/confirm.md)',
  ),
  qemu: text('PATH', 'the QEMU binary --confirm runs', 'qemu-system-x86_64'),
  syncDir: text(
    'DIR',
    'share with the other instances of this directory (AFL-style); the campaign is DIR/INSTANCE',
  ),
  instance: text('NAME', "this instance's name in --sync-dir"),
};

const FUZZ_NOTES = [
  STATUS_LEGEND,
  `without --corpus, a campaign starts from ${DEFAULT_CORPUS}/ when there is one in the working directory`,
  'exit: 0 nothing found, 1 findings saved (see `start` for the known-findings rule)',
];

export const FUZZ: CommandSpec<typeof FUZZ_FLAGS> = {
  name: 'fuzz',
  args: '',
  summary: 'a coverage-guided campaign over migration schedules; findings are shrunk and saved under --out',
  flags: FUZZ_FLAGS,
  examples: [
    'npx migfuzz fuzz --time 60s --seed 7 --out out',
    'npx migfuzz fuzz --execs 100000 --workers 2 --builds qemu-9.2',
    'npx migfuzz fuzz --builds qemu-9.2 --confirm',
    'npx migfuzz fuzz --sync-dir /shared/sync --instance $(hostname) --time 1h',
  ],
  notes: FUZZ_NOTES,
};

const START_FLAGS = {
  ...FUZZ_FLAGS,
  strict: bool('exit 1 for any finding, known ones too'),
};

export const START: CommandSpec<typeof START_FLAGS> = {
  name: 'start',
  args: '',
  summary:
    'the default campaign (what `npm start` runs): fuzz for 60 s over every build, from corpus/seeds/. It exits 0 when every signature found is a known one (docs/signatures.md lists them), 1 when something new is found; --strict exits 1 for any finding',
  flags: START_FLAGS,
  examples: ['npm start', 'npx migfuzz start --fresh', 'npx migfuzz start --strict --time 5m'],
  notes: [STATUS_LEGEND],
};

/**
 * --builds LIST: build names, and build files (ending in .json) whose builds are added and
 * allowed. Without it, every built-in build.
 */
export function resolveBuilds(
  items: readonly string[] | undefined,
  read: (file: string) => string,
): { builds: BuildRegistry; allowed: string[] } {
  let builds = builtinRegistry();
  if (!items) return { builds, allowed: BUILTIN_BUILDS.map((b) => b.name) };
  const allowed: string[] = [];
  for (const item of items) {
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
        `--builds: unknown build ${quote(item)}${didYouMean(item, builds.keys())} (known: ${[...builds.keys()].join(', ')})`,
      );
    }
  }
  if (buildPairs(builds, allowed).length === 0)
    throw new UsageError(`--builds: no two of ${allowed.join(', ')} share a machine type`);
  return { builds, allowed };
}

/** `fuzz` (or, with `start: true`, `start`) settings from argv. */
export function fuzzSettings(
  argv: string[],
  read: (file: string) => string,
  wallSeed: number,
  { start = false }: { start?: boolean } = {},
): FuzzSettings {
  // START's table is FUZZ's plus --strict (which fuzz refuses as an unknown option).
  const a = parseFlags(argv, start ? START.flags : FUZZ.flags);
  const f = a.flags as Settings<typeof START.flags>;
  const name = start ? 'start' : 'fuzz';
  if (a.positionals.length > 0)
    throw new UsageError(`${name} takes no FILE (got ${quote(a.positionals[0]!)})`);
  if (f.time !== undefined && f.execs !== undefined) throw new UsageError('give --time or --execs, not both');
  if (a.given.has('qemu') && !f.confirm) throw new UsageError('--qemu goes with --confirm');
  const sync = syncSettings(f.syncDir, f.instance, a.given.has('out'));
  const { builds, allowed } = resolveBuilds(f.builds, read);
  return {
    seed: f.seed ?? wallSeed >>> 0,
    timeMs: f.time ?? (f.execs === undefined ? 60_000 : null),
    execs: f.execs ?? null,
    workers: f.workers,
    maxQueue: f.maxQueue,
    eventBudget: f.eventBudget,
    coverage: !f.noCoverage,
    out: sync ? join(sync.dir, sync.instance) : f.out,
    corpus: f.corpus ?? null,
    builds,
    allowed,
    buildsFlag: f.builds?.join(','),
    json: f.json,
    fresh: f.fresh,
    onlyNewFail: start && !f.strict,
    confirmQemu: f.confirm ? f.qemu : null,
    sync,
  };
}

function syncSettings(
  dir: string | undefined,
  instance: string | undefined,
  out: boolean,
): FuzzSettings['sync'] {
  if (dir === undefined && instance === undefined) return null;
  if (dir === undefined || instance === undefined)
    throw new UsageError('--sync-dir and --instance go together');
  if (out) throw new UsageError('--out is not given with --sync-dir: the campaign is DIR/INSTANCE');
  if (!validInstance(instance))
    throw new UsageError(`--instance: ${quote(instance)} is not ${INSTANCE_EXPECTED}`);
  return { dir, instance };
}

/** A starting input and its file name (a finding's origin). */
export interface Seed {
  schedule: Schedule;
  name: string;
}

/**
 * Starting inputs: schedules (.json) and traces (.mpk) of a directory; a bad file is an input
 * error. Inputs of builds outside the campaign's (`allowed`) are left out.
 */
export function loadCorpus(dir: string, builds: BuildRegistry, allowed: readonly string[]): Seed[] {
  if (!existsSync(dir)) throw new InputError(`${dir}: no such corpus directory`);
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (e) {
    throw new InputError(oneLine(`${dir}: cannot read the corpus directory (${ioReason(e)})`));
  }
  const out: Seed[] = [];
  for (const name of names) {
    const file = join(dir, name);
    try {
      if (name.endsWith('.json'))
        out.push({ schedule: parseSchedule(readFileSync(file, 'utf8'), builds), name });
      else if (name.endsWith('.mpk')) out.push({ schedule: readTraceFile(file).schedule, name });
    } catch (e) {
      if (e instanceof InputError) throw e; // a trace's error names its file already
      if (e instanceof ScheduleError) throw new InputError(`${file}: ${e.message}`);
      const code = (e as NodeJS.ErrnoException).code;
      if (code) throw new InputError(`${file}: cannot read (${code})`);
      throw e;
    }
  }
  return out.filter((seed) => inCampaign(seed.schedule, allowed));
}

export interface FuzzIo {
  now(): number;
  isTty: boolean;
  write(text: string): void;
  onStop(handler: () => void): void;
  readText(file: string): string;
}

/** A line of the findings table (and of `--json`'s findings). */
export interface Row {
  signature: string;
  oracle: string;
  device: string | null;
  message: string;
  builds: string;
  count: number;
  /** Execution that first found it, counted over every run of this directory. */
  firstExec: number;
  /** Milliseconds into the campaign (every run of this directory) when it was found. */
  seenMs: number;
  origin: string;
  /** The known cause's name, or null: a new finding. */
  known: string | null;
  /** Steps of the shrunk schedule; null when an earlier run saved it. */
  shrunkSteps: number | null;
  /** The shrinker finished (false: it stopped at its limit). */
  minimal: boolean;
  dir: string;
  reproduce: string;
  /** --confirm: the real QEMU's verdict (confirmed, not reproduced, untranslatable...). */
  real?: string;
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
    for (const e of r.entries) {
      this.pending.entries.push(e);
      this.shared.push(e.doc);
      if (this.shared.length > this.st.maxQueue) this.shared.shift();
    }
    // One message per batch to each other worker (a message costs more than its documents).
    if (r.entries.length > 0) {
      const docs = r.entries.map((e) => e.doc);
      this.workers.forEach((w, j) => {
        if (j !== i) w.postMessage({ type: 'import', docs } satisfies ToWorker);
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

/** Build pairs the campaign cannot run: no machine type in common (said, not silently skipped). */
export function skippedPairs(builds: BuildRegistry, allowed: readonly string[]): string[] {
  const runnable = new Set(buildPairs(builds, allowed).map((p) => `${p.src}\u0000${p.dst}`));
  const skipped: string[] = [];
  for (const [i, a] of allowed.entries())
    for (const b of allowed.slice(i + 1)) if (!runnable.has(`${a}\u0000${b}`)) skipped.push(`${a}↔${b}`);
  return skipped;
}

/**
 * Runs a campaign to its limit or a stop signal. Exit 1 when something was found, except
 * that `start` (onlyNewFail) exits 0 when every signature is a known one.
 */
export async function runFuzz(st: FuzzSettings, io: FuzzIo): Promise<number> {
  // Outside a checkout there is no corpus/seeds: without --corpus, start from nothing.
  const noSeeds = st.corpus === null && !existsSync(DEFAULT_CORPUS);
  const seeds = noSeeds ? [] : loadCorpus(st.corpus ?? DEFAULT_CORPUS, st.builds, st.allowed);
  const out = new OutDir(st.out, { fresh: st.fresh });
  const resumed = out.resumeQueue(st.builds, st.allowed);
  const sync = st.sync ? new SyncDir(st.sync.dir, st.sync.instance) : null;
  const synced = (): Doc[] => sync?.newEntries(st.builds, (s) => inCampaign(s, st.allowed)) ?? [];
  // Other instances' entries run first, like a resumed queue's.
  resumed.push(...synced());
  const confirmer = st.confirmQemu === null ? null : new Confirmer(st.builds, st.confirmQemu, st.eventBudget);
  let source: Source;
  if (st.workers === 1) {
    const campaign = new Campaign({
      seed: st.seed,
      builds: st.builds,
      allowed: st.allowed,
      initial: seeds.map((x) => x.schedule),
      initialNames: seeds.map((x) => x.name),
      maxQueue: st.maxQueue,
      eventBudget: st.eventBudget,
      coverage: st.coverage,
    });
    for (const doc of resumed) campaign.importEntry(doc);
    source = new LocalSource(campaign);
  } else {
    source = new PoolSource(
      st,
      seeds.map((x) => scheduleToJson(x.schedule) as Doc),
      seeds.map((x) => x.name),
      resumed,
    );
  }
  // A resumed campaign's findings, totals and plot go on from the earlier runs'.
  const saved = out.savedFindings();
  const earlier = out.earlier();
  const say = (text: string): void => {
    if (!st.json) io.write(`migfuzz: ${text}\n`);
  };
  let stopped = false;
  io.onStop(() => {
    stopped = true;
    confirmer?.abort();
  });
  const t0 = io.now();
  const rows = new Map<string, Row>();
  for (const [dirName, f] of saved) rows.set(f.signature, savedRow(st, dirName, f, earlier));
  const plot: string[] = [...earlier.plot];
  let lastStatus = Number.NEGATIVE_INFINITY;
  let lastStats = Number.NEGATIVE_INFINITY;
  let lastSync = io.now();
  say(`fuzzing ${st.allowed.join(',')} with seed ${st.seed}, ${st.workers} worker(s), into ${st.out}/`);
  const skipped = skippedPairs(st.builds, st.allowed);
  if (skipped.length > 0) {
    const by = new Map<string, string[]>();
    for (const [a, b] of skipped.map((p) => p.split('↔'))) by.set(a!, [...(by.get(a!) ?? []), b!]);
    const groups = [...by].map(([a, bs]) => `${a} with ${bs.join(', ')}`);
    say(`not migrating between builds without a machine type in common: ${groups.join('; ')}`);
  }
  if (earlier.execs > 0 || resumed.length > 0)
    say(
      `resuming from ${resumed.length} queue entr${resumed.length === 1 ? 'y' : 'ies'} of ${st.out}/ (${earlier.execs} executions and ${saved.size} findings so far; --fresh starts over)`,
    );
  // Totals over every run of this directory; coverage and corpus are at least the earlier
  // run's (its queue re-runs first and reaches them again).
  const execs = (): number => earlier.execs + source.execs;
  const coverage = (): number => Math.max(earlier.coverage, source.covered);
  const corpus = (): number => Math.max(earlier.corpus, source.queueSize);
  const knownCount = (): number => [...rows.values()].filter((r) => r.known !== null).length;
  const status = (force: boolean): void => {
    const ms = io.now() - t0;
    if (st.json || (!force && ms - lastStatus < (io.isTty ? STATUS_EVERY_MS : PLAIN_STATUS_EVERY_MS))) return;
    lastStatus = ms;
    const rate = Math.round(source.execs / Math.max(ms / 1000, 0.001));
    const finds = new Set([...rows.keys(), ...source.counts.keys()]).size;
    const line = `#${execs()}\tcov: ${coverage()} corp: ${corpus()} exec/s: ${rate} finds: ${finds} (${knownCount()} known)`;
    io.write(io.isTty ? `\r${line}\x1b[K` : `${line}\n`);
  };
  const totals = (): Map<string, number> => {
    const findings = new Map(earlier.findings);
    for (const [sig, n] of source.counts) findings.set(sig, (findings.get(sig) ?? 0) + n);
    return findings;
  };
  const saveStats = (force: boolean): void => {
    const ms = io.now() - t0;
    if (!force && ms - lastStats < STATS_EVERY_MS) return;
    lastStats = ms;
    const execsPerSec = source.execs / Math.max(ms / 1000, 0.001);
    const runTimeS = earlier.runTimeS + ms / 1000;
    const findings = totals();
    plot.push(
      `${runTimeS.toFixed(1)},${execs()},${execsPerSec.toFixed(0)},${corpus()},${coverage()},${findings.size}`,
    );
    out.writePlot(plot);
    out.writeStats({
      start_time: Math.floor(t0 / 1000),
      last_update: Math.floor(io.now() / 1000),
      run_time_s: runTimeS,
      seed: st.seed,
      workers: st.workers,
      builds: st.allowed,
      execs: execs(),
      execs_per_sec: Math.round(execsPerSec),
      invalid: source.invalid,
      worker_restarts: source.restarts,
      corpus_size: corpus(),
      coverage: coverage(),
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
      // The batch's queue entries go to disk before its findings are shrunk, which can take
      // seconds; each finding goes as soon as it is saved.
      out.flush();
      for (const f of batch.findings) {
        if (rows.get(f.signature)?.shrunkSteps === null) continue; // saved by an earlier run
        rows.set(f.signature, saveFinding(st, out, f, earlier, io.now() - t0, confirmer, sync));
        out.flush();
      }
      if (sync && io.now() - lastSync >= SYNC_EVERY_MS) {
        lastSync = io.now();
        source.import(synced());
      }
      status(false);
      saveStats(false);
      out.flush();
    }
  } catch (e) {
    try {
      out.close();
    } catch {
      // already failing: that error is the one to report
    }
    throw e;
  } finally {
    await source.stop();
  }
  if (confirmer) {
    const pending = [...confirmer.verdicts.values()].filter((v) => v === 'pending').length;
    if (pending > 0) say(`${io.isTty ? '\n' : ''}waiting for ${pending} confirmation(s) on a real QEMU`);
    await confirmer.drain();
  }
  const counts = totals();
  for (const r of rows.values()) {
    r.count = counts.get(r.signature) ?? r.count;
    const real = confirmer?.verdicts.get(r.signature);
    if (real !== undefined) r.real = real;
  }
  status(true);
  saveStats(true);
  // Every file of the campaign is on disk before the summary says what was found.
  out.close();
  if (io.isTty && !st.json) io.write('\n');
  const list = sortRows([...rows.values()]);
  const fresh = list.filter((r) => r.known === null).length;
  if (st.json) {
    io.write(
      `${JSON.stringify({
        seed: st.seed,
        out: st.out,
        builds: st.allowed,
        skippedPairs: skipped,
        execs: execs(),
        runTimeS: earlier.runTimeS + (io.now() - t0) / 1000,
        coverage: coverage(),
        corpusSize: corpus(),
        new: fresh,
        known: list.length - fresh,
        findings: list,
      })}\n`,
    );
  } else {
    io.write(findingTable(list, execs()));
  }
  if (list.length === 0) return Exit.OK;
  return st.onlyNewFail && fresh === 0 ? Exit.OK : Exit.FOUND;
}

/** New findings first, then known ones; each group in the order found. */
export function sortRows(rows: Row[]): Row[] {
  return rows.sort(
    (a, b) => Number(a.known !== null) - Number(b.known !== null) || a.firstExec - b.firstExec,
  );
}

/** `run`'s --builds for a campaign's schedules: its build file, if it named one. */
function runBuildsFlag(buildsFlag: string | undefined): string {
  const files = (buildsFlag ?? '').split(',').filter((x) => x.endsWith('.json'));
  return files.length === 1 ? ` --builds ${files[0]}` : '';
}

/** `traced`: the shrunk schedule has a trace to replay (a model that threw left none). */
function reproduceCommand(st: FuzzSettings, dir: string, traced: boolean): string {
  return traced
    ? `npx migfuzz replay ${join(dir, 'shrunk.mpk')}`
    : `npx migfuzz run ${join(dir, 'shrunk.json')}${runBuildsFlag(st.buildsFlag)}`;
}

/** A finding's directory under DIR: hangs/ for hangs, crashes/ for the rest. */
function row(
  st: FuzzSettings,
  f: Pick<Row, 'signature' | 'oracle' | 'device' | 'message' | 'builds'>,
  dir: string,
  rest: Omit<Row, 'signature' | 'oracle' | 'device' | 'message' | 'builds' | 'dir' | 'reproduce'>,
  // Saved before (by an earlier run or another instance): what is on disk says.
  traced = existsSync(join(dir, 'shrunk.mpk')),
): Row {
  const { signature, oracle, device, message, builds } = f;
  const reproduce = reproduceCommand(st, dir, traced);
  return { signature, oracle, device, message, builds, ...rest, dir, reproduce };
}

function savedRow(st: FuzzSettings, dirName: string, f: SavedFinding, earlier: Earlier): Row {
  return row(st, f, findingDir(st.out, f.oracle, dirName), {
    count: earlier.findings.get(f.signature) ?? 0,
    firstExec: f.first_exec ?? 0,
    seenMs: f.seen_ms ?? 0,
    origin: f.origin ?? 'an earlier run',
    known: f.known ?? null,
    shrunkSteps: null,
    minimal: true,
  });
}

function saveFinding(
  st: FuzzSettings,
  out: OutDir,
  f: FindingRecord,
  earlier: Earlier,
  ms: number,
  confirmer: Confirmer | null,
  sync: SyncDir | null,
): Row {
  const known = knownCause(f, f.schedule, st.builds)?.name ?? null;
  const firstExec = earlier.execs + f.firstExec;
  const seenMs = Math.round(earlier.runTimeS * 1000 + ms);
  // Saved once across a sync dir: an instance that finds it after another points at the first's.
  const dirName = signatureDir(f.signature);
  const sub = f.oracle === 'hang' ? 'hangs' : 'crashes';
  const savedBy = sync?.claim(join(sub, dirName));
  if (savedBy !== undefined) {
    return row(st, f, join(st.sync!.dir, savedBy, sub, dirName), {
      count: f.count,
      firstExec,
      seenMs,
      origin: `${f.origin} (saved by instance ${savedBy})`,
      known,
      shrunkSteps: null,
      minimal: true,
    });
  }
  const shrunk = shrink(f.schedule, f.signature, st.builds, { eventBudget: st.eventBudget });
  const { dir, traced } = out.saveFinding(f, shrunk.schedule, st.builds, st.eventBudget, {
    seed: st.seed,
    first_exec: firstExec,
    seen_ms: seenMs,
    origin: f.origin,
    known,
  });
  confirmer?.submit(f.signature, shrunk.schedule, dir);
  return row(
    st,
    f,
    dir,
    {
      count: f.count,
      firstExec,
      seenMs,
      origin: f.origin,
      known,
      shrunkSteps: shrunk.stepsAfter,
      minimal: shrunk.minimal,
    },
    traced,
  );
}

/** The table's width: it fits a 100-column terminal (the reproduce lines hold a path). */
export const TABLE_WIDTH = 100;

/** `text` cut to `width` columns, with an ellipsis when cut (`--json` has the whole). */
const cell = (text: string, width: number): string =>
  text.length <= width ? text.padEnd(width) : `${text.slice(0, width - 1)}…`;

/**
 * The findings table: new findings first, then known ones (with their cause), each row
 * followed by the command that replays its shrunk schedule; the last line counts them.
 */
export function findingTable(rows: readonly Row[], execs: number): string {
  if (rows.length === 0) return `no finding in ${execs} executions\n`;
  const lines: string[] = [];
  const group = (title: string, list: readonly Row[], third: (r: Row) => string, head: string): void => {
    if (list.length === 0) return;
    lines.push(title, `  ${cell('signature', 52)}  ${cell(head, 19)}  ${'count'.padStart(7)}  first seen`);
    for (const r of list) {
      lines.push(
        `  ${cell(r.signature, 52)}  ${cell(third(r), 19)}  ${String(r.count).padStart(7)}  #${r.firstExec}`,
      );
      const shrunk =
        r.shrunkSteps === null
          ? 'saved before'
          : `shrunk to ${r.shrunkSteps} step${r.shrunkSteps === 1 ? '' : 's'}${r.minimal ? '' : ', stopped at its limit'}`;
      const real = r.real === undefined ? '' : `; real QEMU: ${r.real}`;
      lines.push(`    from ${r.origin}; ${shrunk}${real}:`, `    ${r.reproduce}`);
    }
  };
  const fresh = rows.filter((r) => r.known === null);
  const known = rows.filter((r) => r.known !== null);
  group(`NEW (${fresh.length}): not explained by a known cause`, fresh, (r) => r.builds, 'builds');
  group(`known (${known.length}): see docs/signatures.md`, known, (r) => r.known!, 'known cause');
  lines.push(`${fresh.length} new, ${known.length} known, in ${execs} executions`);
  return `${lines.join('\n')}\n`;
}
