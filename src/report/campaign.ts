/**
 * The data of a campaign's report page: each instance's progress from its plot_data.csv
 * (downsampled), its totals from fuzzer_stats.json, and the findings table. Plain data, no
 * I/O: src/cli/report-command.ts reads the directory.
 */

import type { TracePage } from './trace-page.js';

/** plot_data.csv's columns (fuzz-command.ts writePlot), after the relative time. */
export const PLOT_COLUMNS = ['execs', 'execs_per_sec', 'corpus_size', 'coverage', 'findings'] as const;

/** Bad campaign input: one line saying what and where (`out/plot_data.csv line 7: ...`). */
export class CampaignInputError extends Error {
  override readonly name = 'CampaignInputError';
}

/** One instance's plot, as columns: relative time in seconds, then PLOT_COLUMNS. */
export interface Plot {
  time: number[];
  execs: number[];
  execs_per_sec: number[];
  corpus_size: number[];
  coverage: number[];
  findings: number[];
}

const emptyPlot = (): Plot => ({
  time: [],
  execs: [],
  execs_per_sec: [],
  corpus_size: [],
  coverage: [],
  findings: [],
});

const ROW = /^\d+(\.\d+)?(,\d+){5}$/;

/** Parses plot_data.csv (`#` lines are comments); `file` names it in errors. */
export function parsePlot(text: string, file: string): Plot {
  const plot = emptyPlot();
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    if (!ROW.test(line)) {
      throw new CampaignInputError(
        `${file} line ${i + 1}: expected relative_time_s and five whole numbers (${['', ...PLOT_COLUMNS].join(',').slice(1)}), separated by commas`,
      );
    }
    const [time, ...rest] = line.split(',').map(Number);
    plot.time.push(time!);
    PLOT_COLUMNS.forEach((c, j) => {
      plot[c].push(rest[j]!);
    });
  });
  return plot;
}

/** Points drawn per instance at most: past it, the plot is downsampled. */
export const MAX_PLOT_POINTS = 1500;

/**
 * At most about `maxPoints` rows of a plot, keeping its shape: the time range is cut into
 * maxPoints/3 equal buckets, and each keeps its rows with the lowest and the highest
 * executions per second (the only column that goes down and up; spikes and stalls stay
 * visible) and its last row (the counters — executions, queue, coverage, findings — only
 * grow, so the last row of a bucket is exact for them at that time). The first and last rows
 * are always kept.
 */
export function downsample(p: Plot, maxPoints = MAX_PLOT_POINTS): Plot {
  const n = p.time.length;
  if (n <= maxPoints) return p;
  const buckets = Math.max(1, Math.floor(maxPoints / 3));
  const t0 = p.time[0]!;
  const span = p.time[n - 1]! - t0 || 1;
  const keep: number[] = [0];
  let start = 0;
  while (start < n) {
    const bucket = Math.min(buckets - 1, Math.floor(((p.time[start]! - t0) / span) * buckets));
    let end = start;
    let lo = start;
    let hi = start;
    while (end < n && Math.min(buckets - 1, Math.floor(((p.time[end]! - t0) / span) * buckets)) === bucket) {
      if (p.execs_per_sec[end]! < p.execs_per_sec[lo]!) lo = end;
      if (p.execs_per_sec[end]! > p.execs_per_sec[hi]!) hi = end;
      end++;
    }
    for (const i of [lo, hi, end - 1].sort((x, y) => x - y)) if (i > keep.at(-1)!) keep.push(i);
    start = end;
  }
  const out = emptyPlot();
  for (const i of keep) {
    out.time.push(p.time[i]!);
    for (const c of PLOT_COLUMNS) out[c].push(p[c][i]!);
  }
  return out;
}

export interface Instance {
  /** `.` for OUT_DIR itself, else the name of its subdirectory (a synced instance). */
  name: string;
  /** Rows in plot_data.csv, and the plot as drawn (downsampled past MAX_PLOT_POINTS rows). */
  rows: number;
  plot: Plot;
  /** fuzzer_stats.json, or null when it is missing or unreadable. */
  stats: Record<string, unknown> | null;
}

export interface FindingRow {
  signature: string;
  /** The regression seed that already holds this signature, or null: new. */
  known: string | null;
  oracle: string;
  device: string | null;
  message: string;
  builds: string;
  /** Instances it was saved in. */
  instances: string[];
  /** Seconds into the campaign and execution number when first seen (null: not recorded). */
  firstSeenS: number | null;
  firstExec: number | null;
  /** Times seen (fuzzer_stats.json findings), summed over instances. */
  count: number | null;
  /** Steps of the shrunk schedule, or null without one. */
  shrunkSteps: number | null;
  /** A real-QEMU verdict where `confirm` ran (crashes/SIGNATURE/confirm.json), else null. */
  confirm: string | null;
  reproduce: string;
  /** Index of its page in `pages`, or null without a trace. */
  page: number | null;
}

export interface CampaignReport {
  title: string;
  dir: string;
  instances: Instance[];
  findings: FindingRow[];
  pages: TracePage[];
}
