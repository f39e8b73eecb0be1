/**
 * `migfuzz report OUT_DIR [-o FILE.html] [--known DIR]` and `migfuzz show TRACE --html
 * FILE.html [--all]`: self-contained HTML pages (src/report) of a campaign directory and of
 * a trace. This file does their I/O: it reads the campaign's files, the traces and the
 * embedded library (uPlot, from its npm package), and writes the page atomically.
 *
 * Exit codes: 0 written, 2 usage, 3 an unreadable or malformed input (one line).
 */

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, join } from 'node:path';
import { formatMs } from '../replay/describe.js';
import {
  CampaignInputError,
  type CampaignReport,
  downsample,
  type FindingRow,
  type Instance,
  parsePlot,
} from '../report/campaign.js';
import { type Assets, renderHtml } from '../report/html.js';
import { type TracePage, tracePage } from '../report/trace-page.js';
import { UsageError } from './args.js';
import { type CommandSpec, parseFlags, text } from './flags.js';
import { ioReason, writeFileAtomic } from './fs.js';
import { readTraceFile, SHOW, TraceInputError, withInputErrors } from './replay-commands.js';

/** Regression seeds whose signatures count as known (when the directory exists). */
const DEFAULT_KNOWN = join('corpus', 'regressions');
const CAMPAIGN_FILES = ['plot_data.csv', 'fuzzer_stats.json'];
const SUBDIRS = new Set(['queue', 'crashes', 'hangs']);

/** uPlot's browser build and stylesheet, from the installed package. */
export function readAssets(): Assets {
  const require = createRequire(import.meta.url);
  const read = (file: string): string => {
    try {
      return readFileSync(require.resolve(`uplot/dist/${file}`), 'utf8');
    } catch (e) {
      throw new TraceInputError(`uplot/dist/${file}: cannot read the charting library (${ioReason(e)})`);
    }
  };
  return { uplotJs: read('uPlot.iife.min.js'), uplotCss: read('uPlot.min.css') };
}

/** Runs a page command: bad campaign input is one line and exit 3, like a bad trace. */
function withPageErrors(f: () => number): number {
  return withInputErrors(() => {
    try {
      return f();
    } catch (e) {
      if (e instanceof CampaignInputError) throw new TraceInputError(e.message);
      throw e;
    }
  });
}

// ---------------------------------------------------------------------------------------
// show TRACE --html FILE.html [--all]

/** Whether `show`'s arguments ask for the HTML page (main.ts sends those here). */
export const wantsHtml = (argv: readonly string[]): boolean =>
  argv.some((x) => x === '--html' || x.startsWith('--html='));

export function cmdShowHtml(argv: string[]): number {
  const a = parseFlags(argv, SHOW.flags);
  if (a.positionals.length !== 1) throw new UsageError('show needs exactly one TRACE');
  if (a.flags.vcd !== undefined) throw new UsageError('give --vcd or --html, not both');
  const file = a.positionals[0]!;
  const out = a.flags.html!;
  return withPageErrors(() => {
    const trace = readTraceFile(file);
    const page = tracePage(trace, {
      file,
      reproduce: `npx migfuzz replay ${file}`,
      all: a.flags.all,
    });
    writeFileAtomic(out, renderHtml(page.title, { kind: 'trace', page }, readAssets()));
    console.log(
      `${file}: wrote ${out} (${trace.eventCount} events to ${formatMs(trace.verdict.endNs)}, ${page.findings.length} finding(s), ${page.lanes.length} signals)`,
    );
    return 0;
  });
}

// ---------------------------------------------------------------------------------------
// report OUT_DIR [-o FILE.html] [--known DIR]

const REPORT_FLAGS = {
  out: text('FILE.html', 'the page to write (default: OUT_DIR/report.html)', undefined, { alias: '-o' }),
  known: text('DIR', 'regression traces whose signatures count as known (default: corpus/regressions)'),
};

export const REPORT: CommandSpec<typeof REPORT_FLAGS> = {
  name: 'report',
  args: 'OUT_DIR',
  summary:
    "one self-contained HTML page of a campaign directory (or a sync dir's instances): progress charts, the findings table with real-QEMU verdicts, a page per finding",
  flags: REPORT_FLAGS,
  examples: ['npx migfuzz report out', 'npx migfuzz report sync/ -o report.html'],
};

export function cmdReport(argv: string[]): number {
  const a = parseFlags(argv, REPORT.flags);
  if (a.positionals.length !== 1) throw new UsageError('report needs exactly one OUT_DIR');
  const dir = a.positionals[0]!;
  const out = a.flags.out ?? join(dir, 'report.html');
  const knownDir = a.flags.known;
  return withPageErrors(() => {
    const report = readCampaign(dir, knownSignatures(knownDir ?? DEFAULT_KNOWN, knownDir !== undefined));
    writeFileAtomic(out, renderHtml(report.title, { kind: 'campaign', campaign: report }, readAssets()));
    const rows = report.instances.reduce((n, i) => n + i.rows, 0);
    console.log(
      `${dir}: wrote ${out} (${report.instances.length} instance(s), ${rows} plot rows, ${report.findings.length} finding(s))`,
    );
    return 0;
  });
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new CampaignInputError(`${file}: cannot read (${ioReason(e)})`);
  }
}

function readJson(file: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(readText(file));
  } catch (e) {
    if (e instanceof CampaignInputError) throw e;
    throw new CampaignInputError(`${file}: not valid JSON`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new CampaignInputError(`${file}: expected a JSON object`);
  return v as Record<string, unknown>;
}

const isDir = (path: string): boolean => {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
};

/** Signature → the regression seed (file name) that records it. */
function knownSignatures(dir: string, given: boolean): Map<string, string> {
  const known = new Map<string, string>();
  if (!isDir(dir)) {
    if (given) throw new CampaignInputError(`${dir}: no such directory of regression seeds`);
    return known;
  }
  for (const name of readdirSync(dir).sort()) {
    if (!name.endsWith('.mpk')) continue;
    for (const f of readTraceFile(join(dir, name)).verdict.findings)
      if (!known.has(f.signature)) known.set(f.signature, name);
  }
  return known;
}

/** OUT_DIR itself (`.`) and each subdirectory that is a campaign (AFL's synced instances). */
function instanceDirs(dir: string): [string, string][] {
  if (!isDir(dir)) throw new CampaignInputError(`${dir}: no such campaign directory`);
  const isCampaign = (d: string): boolean => CAMPAIGN_FILES.some((f) => existsSync(join(d, f)));
  const found: [string, string][] = isCampaign(dir) ? [['.', dir]] : [];
  for (const name of readdirSync(dir).sort()) {
    const sub = join(dir, name);
    if (!SUBDIRS.has(name) && isDir(sub) && isCampaign(sub)) found.push([name, sub]);
  }
  if (found.length === 0)
    throw new CampaignInputError(
      `${dir}: not a campaign directory (no plot_data.csv or fuzzer_stats.json in it or its subdirectories)`,
    );
  return found;
}

function readInstance(name: string, dir: string): Instance {
  const plotFile = join(dir, 'plot_data.csv');
  const plot = existsSync(plotFile) ? parsePlot(readText(plotFile), plotFile) : parsePlot('', plotFile);
  const statsFile = join(dir, 'fuzzer_stats.json');
  return {
    name,
    rows: plot.time.length,
    plot: downsample(plot),
    stats: existsSync(statsFile) ? readJson(statsFile) : null,
  };
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/**
 * The real-QEMU verdict of `fuzz --confirm` (confirm.json's `verdict`: confirmed, not
 * reproduced, untranslatable, ...), or null where it did not run.
 */
function confirmVerdict(dir: string): string | null {
  const file = join(dir, 'confirm.json');
  if (!existsSync(file)) return null;
  const verdict = str(readJson(file).verdict);
  if (verdict === null) throw new CampaignInputError(`${file}: verdict: expected a string`);
  return verdict;
}

function shrunkSteps(dir: string): number | null {
  const file = join(dir, 'shrunk.json');
  if (!existsSync(file)) return null;
  const steps = readJson(file).steps;
  return Array.isArray(steps) ? steps.length : null;
}

interface Saved {
  row: FindingRow;
  /** The trace of its page (shrunk, else original), if there is one. */
  trace: string | null;
}

function readFinding(instance: Instance, dir: string, known: Map<string, string>): Saved | null {
  const file = join(dir, 'finding.json');
  // finding.json is written last: a directory without it is incomplete.
  if (!existsSync(file)) return null;
  const f = readJson(file);
  const signature = str(f.signature);
  if (signature === null) throw new CampaignInputError(`${file}: signature: expected a string`);
  const shrunkTrace = join(dir, 'shrunk.mpk');
  const trace = [shrunkTrace, join(dir, 'original.mpk')].find((t) => existsSync(t)) ?? null;
  const seenMs = num(f.seen_ms);
  const count = num((instance.stats?.findings as Record<string, unknown> | undefined)?.[signature]);
  return {
    trace,
    row: {
      signature,
      known: known.get(signature) ?? null,
      oracle: str(f.oracle) ?? '?',
      device: str(f.device),
      message: str(f.message) ?? '',
      builds: str(f.builds) ?? '?',
      instances: [instance.name],
      firstSeenS: seenMs === null ? null : seenMs / 1000,
      firstExec: num(f.first_exec),
      count,
      shrunkSteps: shrunkSteps(dir),
      confirm: confirmVerdict(dir),
      reproduce: existsSync(shrunkTrace)
        ? `npx migfuzz replay ${shrunkTrace}`
        : `npx migfuzz run ${join(dir, 'shrunk.json')}`,
      page: null,
    },
  };
}

/** Everything the campaign page shows, read from OUT_DIR. */
export function readCampaign(dir: string, known: Map<string, string>): CampaignReport {
  const instances: Instance[] = [];
  const bySignature = new Map<string, Saved>();
  for (const [name, path] of instanceDirs(dir)) {
    const instance = readInstance(name, path);
    instances.push(instance);
    for (const sub of ['crashes', 'hangs']) {
      const parent = join(path, sub);
      if (!isDir(parent)) continue;
      for (const entry of readdirSync(parent).sort()) {
        const saved = readFinding(instance, join(parent, entry), known);
        if (!saved) continue;
        const earlier = bySignature.get(saved.row.signature);
        if (!earlier) {
          bySignature.set(saved.row.signature, saved);
          continue;
        }
        // Seen by several instances: one row, counts added, the earliest first sighting.
        const e = earlier.row;
        e.instances.push(instance.name);
        if (saved.row.count !== null) e.count = (e.count ?? 0) + saved.row.count;
        if (saved.row.firstSeenS !== null && (e.firstSeenS === null || saved.row.firstSeenS < e.firstSeenS)) {
          e.firstSeenS = saved.row.firstSeenS;
          e.firstExec = saved.row.firstExec;
        }
        e.confirm ??= saved.row.confirm;
      }
    }
  }
  const saved = [...bySignature.values()].sort(
    (x, y) =>
      (x.row.firstSeenS ?? Number.POSITIVE_INFINITY) - (y.row.firstSeenS ?? Number.POSITIVE_INFINITY) ||
      (x.row.signature < y.row.signature ? -1 : 1),
  );
  const pages: TracePage[] = [];
  for (const s of saved) {
    if (s.trace === null) continue;
    s.row.page = pages.length;
    pages.push(
      tracePage(readTraceFile(s.trace), {
        file: s.trace,
        reproduce: s.row.reproduce,
        title: `${s.row.signature} (${s.row.known ? `known: ${s.row.known}` : 'new'})`,
      }),
    );
  }
  const name = basename(dir.replace(/[/\\]+$/, '')) || dir;
  return {
    title: `migfuzz campaign ${name}: ${saved.length} finding(s)`,
    dir,
    instances,
    findings: saved.map((s) => s.row),
    pages,
  };
}
