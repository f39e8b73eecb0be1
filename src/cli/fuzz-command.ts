import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { buildPairs } from '../fuzz/arbitraries.js';
import { Campaign, type FindingRecord } from '../fuzz/campaign.js';
import type { Doc } from '../fuzz/mutate.js';
import { shrink } from '../fuzz/shrink.js';
import type { BuildRegistry } from '../model/migration/builds.js';
import { scheduleToJson } from '../model/schedule/to-json.js';
import { knownCause } from '../oracles/known.js';
import { Exit } from './exit-codes.js';
import { Confirmer } from './fuzz-confirm.js';
import { DEFAULT_CORPUS, type FuzzSettings, loadCorpus } from './fuzz-settings.js';
import { BATCH, LocalSource, PoolSource, type Source } from './fuzz-sources.js';
import { type Earlier, findingDir, inCampaign, OutDir, type SavedFinding, signatureDir } from './out-dir.js';
import { SyncDir } from './sync.js';

/**
 * `migfuzz fuzz`: a campaign in an AFL-shaped directory (docs/cli.md). This file runs it: the
 * wall clock, the output directory, the status line, findings and their table. Its flags and
 * settings are in fuzz-settings.ts, where its executions come from in fuzz-sources.ts, and the
 * search itself in src/fuzz/campaign.ts.
 */

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

const STATUS_EVERY_MS = 250;
const PLAIN_STATUS_EVERY_MS = 5000;
const STATS_EVERY_MS = 1000;
/** How often a synced instance looks for the others' new queue entries. */
const SYNC_EVERY_MS = 2000;
/**
 * How often the files of the batches run since are handed to the writing thread: one message
 * a batch (64 executions) cost this thread 3% of a 1-worker campaign, and what is in flight
 * when the process is killed is lost only as if found a moment later.
 */
const FLUSH_EVERY_MS = 100;

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
  let lastFlush = io.now();
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
      // The queue entries go to disk before a finding is shrunk, which can take seconds; each
      // finding goes as soon as it is saved.
      if (batch.findings.length > 0) out.flush();
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
      if (io.now() - lastFlush >= FLUSH_EVERY_MS) {
        lastFlush = io.now();
        out.flush();
      }
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
