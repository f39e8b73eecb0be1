/**
 * A campaign's output directory (AFL++'s layout): queue/, crashes/SIG/, hangs/, the stats and
 * plot data, and what an earlier campaign there left for a resume to read.
 */

import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { FindingRecord } from '../fuzz/campaign.js';
import type { Doc } from '../fuzz/mutate.js';
import type { BuildRegistry } from '../model/migration/builds.js';
import { scheduleToJson } from '../model/schedule/to-json.js';
import type { Schedule } from '../model/schedule/types.js';
import { parseSchedule } from '../model/schedule/validate.js';
import { oneLine } from '../model/util/text.js';
import { recordRun } from '../replay/record.js';
import { encodeTrace } from '../replay/trace.js';
import { InputError } from './exit-codes.js';
import { FileWriter } from './file-writer.js';
import { ioReason, makeDirs } from './fs.js';

export const inCampaign = (s: Schedule, allowed: readonly string[]): boolean =>
  allowed.includes(s.src.build) && allowed.includes(s.dst.build);

/** The schedule's trace, or why there is none (the model threw outside its run loop). */
function traceOrCrash(s: Schedule, builds: BuildRegistry, eventBudget: number): Uint8Array | string {
  try {
    return encodeTrace(recordRun(s, builds, eventBudget));
  } catch (e) {
    return `no trace: the model threw while running this schedule (${e instanceof Error ? e.message : String(e)})\n`;
  }
}

const CAMPAIGN_SUBDIRS = ['queue', 'crashes', 'hangs'];

/** A signature as a directory name. */
export const signatureDir = (sig: string): string => sig.replace(/[^A-Za-z0-9._:-]/g, '_');

/** The campaign's output directory: queue/, crashes/SIG/, hangs/, stats and plot data. */
export class OutDir {
  private queued = 0;
  /** Every file of the campaign goes through it, in order (created at the first). */
  private writer: FileWriter | null = null;
  /** `fresh`: delete an earlier campaign's files first (only those: DIR may hold others). */
  constructor(
    readonly dir: string,
    { fresh = false }: { fresh?: boolean } = {},
  ) {
    if (fresh) {
      try {
        for (const name of [...CAMPAIGN_SUBDIRS, 'fuzzer_stats.json', 'plot_data.csv'])
          rmSync(join(dir, name), { recursive: true, force: true });
      } catch (e) {
        throw new InputError(oneLine(`${dir}: cannot clear the campaign directory (${ioReason(e)})`));
      }
    }
    for (const sub of CAMPAIGN_SUBDIRS) {
      try {
        makeDirs(join(dir, sub));
      } catch (e) {
        throw new InputError(oneLine(`${dir}: cannot create the output directory (${ioReason(e)})`));
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
  earlier(): Earlier {
    const none: Earlier = { execs: 0, runTimeS: 0, findings: new Map(), plot: [], corpus: 0, coverage: 0 };
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
    const last = plot.at(-1)?.split(',').map(Number) ?? [];
    return {
      execs: execs as number,
      runTimeS,
      findings: counts,
      plot,
      corpus: last[3] ?? 0,
      coverage: last[4] ?? 0,
    };
  }

  /**
   * Findings an earlier campaign saved here (complete directories: finding.json is written
   * last), by directory name: resumed, they are listed again and not saved twice.
   */
  savedFindings(): Map<string, SavedFinding> {
    const saved = new Map<string, SavedFinding>();
    for (const sub of ['crashes', 'hangs']) {
      for (const n of readdirSync(join(this.dir, sub))) {
        try {
          const doc = JSON.parse(
            readFileSync(join(this.dir, sub, n, 'finding.json'), 'utf8'),
          ) as SavedFinding;
          if (typeof doc.signature === 'string') saved.set(n, doc);
        } catch {
          // no finding.json (an interrupted save) or damaged: saved again when found again
        }
      }
    }
    return saved;
  }

  saveQueue(doc: Doc, exec: number, how: string): void {
    const name = `id:${String(this.queued++).padStart(6, '0')},exec:${exec},op:${how}.json`;
    this.write(join(this.dir, 'queue', name), `${JSON.stringify(doc, null, 1)}\n`);
  }

  /** Written atomically off this thread; not durable unless said (see writeFileAtomic). */
  private write(file: string, data: string | Uint8Array, durable = false): void {
    this.writer ??= new FileWriter();
    this.writer.write(file, data, { durable });
  }

  /** Hands the files given so far to the writing thread (after each batch of executions). */
  flush(): void {
    this.writer?.flush();
  }

  /** Waits until the files given so far are on disk. */
  close(): void {
    const writer = this.writer;
    this.writer = null;
    writer?.close();
  }

  /**
   * A finding's directory: its original and shrunk schedules and traces, and finding.json
   * (written last: its presence means the directory is complete), each file durable. Also
   * whether its shrunk schedule has a trace (a model that threw has none).
   */
  saveFinding(
    f: FindingRecord,
    shrunk: Schedule,
    builds: BuildRegistry,
    eventBudget: number,
    extra: object,
  ): { dir: string; traced: boolean } {
    const dir = findingDir(this.dir, f.oracle, signatureDir(f.signature));
    makeDirs(dir);
    let traced = false;
    for (const [name, s] of [
      ['original', f.schedule],
      ['shrunk', shrunk],
    ] as const) {
      this.write(join(dir, `${name}.json`), `${JSON.stringify(scheduleToJson(s), null, 1)}\n`, true);
      const trace = traceOrCrash(s, builds, eventBudget);
      this.write(join(dir, typeof trace === 'string' ? `${name}.crash.txt` : `${name}.mpk`), trace, true);
      if (name === 'shrunk') traced = typeof trace !== 'string';
    }
    const record = {
      ...extra,
      signature: f.signature,
      oracle: f.oracle,
      device: f.device,
      message: f.message,
      builds: f.builds,
    };
    this.write(join(dir, 'finding.json'), `${JSON.stringify(record, null, 1)}\n`, true);
    return { dir, traced };
  }

  writeStats(stats: object): void {
    this.write(join(this.dir, 'fuzzer_stats.json'), `${JSON.stringify(stats, null, 1)}\n`);
  }

  writePlot(rows: readonly string[]): void {
    this.write(
      join(this.dir, 'plot_data.csv'),
      `# relative_time_s,execs,execs_per_sec,corpus_size,coverage,findings\n${rows.join('\n')}\n`,
    );
  }
}

/** What an earlier campaign in the same directory counted (resume). */
export interface Earlier {
  execs: number;
  runTimeS: number;
  findings: Map<string, number>;
  plot: string[];
  /** Its last plot row's corpus size and coverage. */
  corpus: number;
  coverage: number;
}

/** A finding.json as an earlier campaign wrote it (fields of older versions may be missing). */
export interface SavedFinding {
  signature: string;
  oracle: string;
  device: string | null;
  message: string;
  builds: string;
  first_exec?: number;
  seen_ms?: number;
  origin?: string;
  known?: string | null;
}

export const findingDir = (out: string, oracle: string, dirName: string): string =>
  join(out, oracle === 'hang' ? 'hangs' : 'crashes', dirName);

/** A table row: the finding's own fields, what the run adds, and where it was saved. */
