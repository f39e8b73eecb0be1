/**
 * The trace commands of the command line (docs/cli.md): `replay TRACE [--json]`,
 * `show TRACE [--all] [--vcd OUT.vcd]`, and the helpers behind `run FILE.mpk` and
 * `run FILE --trace OUT.mpk`. Like main.ts, this is where files are read and written;
 * src/replay itself does no I/O.
 *
 * Exit codes: 0 identical / shown, 2 usage (UsageError, printed by main), 3 invalid input
 * file (one line), 4 replay diverged.
 */

import { readFileSync, statSync } from 'node:fs';
import type { BuildRegistry } from '../model/migration/builds.js';
import { builtinRegistry } from '../model/migration/builds.js';
import { buildsPath, type Schedule, ScheduleError } from '../model/schedule/types.js';
import { parseSchedule } from '../model/schedule/validate.js';
import { oneLine } from '../model/util/text.js';
import type { Finding } from '../oracles/types.js';
import type { Verdict } from '../oracles/verdict.js';
import { Describer, type EventView, eventLine, formatMs } from '../replay/describe.js';
import type { EventRow } from '../replay/event-log.js';
import { MAX_TRACE_BYTES, type Trace, TraceFormatError } from '../replay/format.js';
import { recordRun } from '../replay/record.js';
import { type ReplayResult, replayTrace } from '../replay/replay.js';
import { timeline } from '../replay/timeline.js';
import { decodeTrace, encodeTraceParts, traceRegistry, verdictToJson } from '../replay/trace.js';
import { traceToVcd } from '../replay/vcd.js';
import { UsageError } from './args.js';
import { Exit, InputError } from './exit-codes.js';
import { bool, type CommandSpec, parseFlags, text } from './flags.js';
import { ioReason, writeFileAtomic } from './fs.js';

/** The one input-error type, under the name older command files import it by. */
export { InputError as TraceInputError };

// ---------------------------------------------------------------------------------------
// Files

/** Reads and validates a trace file; any problem is a InputError naming the file. */
export function readTraceFile(file: string): Trace {
  let bytes: Uint8Array;
  try {
    const size = statSync(file).size;
    if (size > MAX_TRACE_BYTES) {
      throw new InputError(`${file}: ${size} bytes, larger than any trace (at most ${MAX_TRACE_BYTES})`);
    }
    bytes = readFileSync(file);
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`${file}: cannot read (${ioReason(e)})`);
  }
  try {
    return decodeTrace(bytes);
  } catch (e) {
    if (e instanceof TraceFormatError) throw new InputError(oneLine(`${file}: ${e.message}`));
    throw e;
  }
}

// ---------------------------------------------------------------------------------------
// run FILE.mpk / run FILE --trace OUT.mpk

export function isTraceFile(file: string): boolean {
  return file.toLowerCase().endsWith('.mpk');
}

/**
 * `run FILE.mpk`: the trace's schedule and the builds to run it with (those given with
 * `--builds`, then the trace's own, which win: the trace replays as it was recorded).
 * Returns null when FILE is not a trace (no `.mpk` extension): run it as a schedule.
 */
export function traceRunInput(
  file: string,
  builds: BuildRegistry,
): { schedule: Schedule; builds: BuildRegistry; eventBudget?: number } | null {
  if (!isTraceFile(file)) return null;
  const trace = readTraceFile(file);
  return {
    schedule: trace.schedule,
    builds: new Map([...builds, ...traceRegistry(trace)]),
    eventBudget: trace.stats.eventBudget,
  };
}

/**
 * `run FILE --trace OUT`: runs and judges `schedule` while recording every event, writes the
 * trace to OUT atomically, and returns the verdict to print (the same as without --trace).
 */
export function runRecorded(
  schedule: Schedule,
  builds: BuildRegistry,
  out: string,
  eventBudget?: number,
): Verdict {
  const trace = recordRun(schedule, builds, eventBudget);
  writeFileAtomic(out, encodeTraceParts(trace));
  return trace.verdict;
}

// ---------------------------------------------------------------------------------------
// replay TRACE [--json]

const REPLAY_FLAGS = { json: bool('print one JSON object instead of text') };

export const REPLAY: CommandSpec<typeof REPLAY_FLAGS> = {
  name: 'replay',
  args: 'TRACE',
  summary:
    're-execute a trace and compare it with its recording event by event; on a difference, print the first divergent event (index, time, recorded vs replayed)',
  flags: REPLAY_FLAGS,
  examples: ['npx migfuzz replay corpus/regressions/bug-a.mpk'],
  notes: ['exit: 0 identical, 4 diverged, 3 the trace cannot be read'],
};

/** `replay TRACE [--json]`: 0 identical, 4 diverged, 3 bad trace. Throws UsageError (2). */
export function cmdReplay(argv: string[]): number {
  const a = parseFlags(argv, REPLAY.flags);
  if (a.positionals.length !== 1) throw new UsageError('replay needs exactly one TRACE');
  const file = a.positionals[0]!;
  return withInputErrors(() => {
    const r = replayTrace(readTraceFile(file));
    const repro = `npx migfuzz replay ${file}`;
    if (a.flags.json) console.log(JSON.stringify(replayJson(file, r, repro)));
    else for (const line of replayText(file, r, repro)) console.log(line);
    return r.identical ? 0 : Exit.DIVERGED;
  });
}

/** Runs a command; a bad input file becomes one line on stderr and exit 3. */
export function withInputErrors(f: () => number): number {
  try {
    return f();
  } catch (e) {
    if (e instanceof InputError) {
      console.error(`migfuzz: ${oneLine(e.message)}`);
      return Exit.INPUT;
    }
    throw e;
  }
}

function views(trace: Trace, rows: readonly (EventRow | null)[]): (EventView | null)[] {
  const d = new Describer(trace.schedule, trace.events, traceRegistry(trace), trace.verdict.findings);
  return rows.map((row) => (row === null ? null : d.describe(row)));
}

function findingsJson(v: Verdict, repro: string): object {
  return { ...verdictToJson(v), findings: v.findings.map((f) => ({ ...f, reproduce: repro })) };
}

export function replayJson(file: string, r: ReplayResult, repro: string): object {
  const dv = r.divergence;
  let divergence: object | null = null;
  if (dv) {
    const [recorded, replayed, ...context] = views(r.recorded, [dv.recorded, dv.replayed, ...dv.context]);
    divergence = { index: dv.index, atNs: dv.atNs, recorded, replayed, context };
  }
  return {
    trace: file,
    identical: r.identical,
    events: { recorded: r.recorded.eventCount, replayed: r.replayed.eventCount },
    digest: { recorded: r.recorded.digest, replayed: r.replayed.digest },
    divergence,
    verdictDiffers: r.verdictDiffers,
    verdict: findingsJson(r.replayed.verdict, repro),
    recordedVerdict: findingsJson(r.recorded.verdict, repro),
  };
}

function verdictHead(v: Verdict): string {
  const n = v.findings.length;
  return n === 0 ? 'no finding' : `${n} finding${n > 1 ? 's' : ''}`;
}

function findingText(f: Finding, repro: string): string[] {
  return [
    `  ${f.oracle} on ${f.device ?? '-'} at ${formatMs(f.at)}: ${f.message}`,
    `    signature ${f.signature}`,
    `    reproduce: ${repro}`,
  ];
}

export function replayText(file: string, r: ReplayResult, repro: string): string[] {
  const rec = r.recorded;
  const rep = r.replayed;
  const s = rec.schedule;
  const pair = `${buildsPath(s)} on ${s.machine}`;
  const lines: string[] = [];
  const dv = r.divergence;
  if (r.identical) {
    lines.push(
      `${file}: identical: ${rep.eventCount} events replayed event by event, ${verdictHead(rep.verdict)} (${pair}; ${formatMs(rep.verdict.endNs)}; digest ${rep.digest})`,
    );
  } else if (dv) {
    lines.push(
      `${file}: DIVERGED at event #${dv.index} (host time ${formatMs(dv.atNs)}; ${rec.eventCount} events recorded, ${rep.eventCount} replayed)`,
    );
    const [recorded, replayed, ...context] = views(rec, [dv.recorded, dv.replayed, ...dv.context]);
    if (context.length > 0) lines.push('  before it (identical):');
    for (const c of context) lines.push(`    ${eventLine(c!)}`);
    lines.push(`  recorded: ${recorded ? eventLine(recorded) : '(none: the recorded run ended here)'}`);
    lines.push(`  replayed: ${replayed ? eventLine(replayed) : '(none: the replayed run ended here)'}`);
    lines.push(`  digest recorded ${rec.digest}`, `  digest replayed ${rep.digest}`);
  } else {
    lines.push(
      `${file}: DIVERGED in the verdict: all ${rep.eventCount} events identical, but the replayed verdict differs from the recorded one (digest recorded ${rec.digest}, replayed ${rep.digest})`,
    );
  }
  if (!r.identical && r.verdictDiffers) {
    lines.push(
      `recorded verdict: ${verdictHead(rec.verdict)} (${rec.verdict.end}, ${formatMs(rec.verdict.endNs)})`,
    );
    for (const f of rec.verdict.findings) lines.push(...findingText(f, repro));
    lines.push(
      `replayed verdict: ${verdictHead(rep.verdict)} (${rep.verdict.end}, ${formatMs(rep.verdict.endNs)})`,
    );
  } else if (!r.identical) {
    lines.push(`verdict (same as recorded): ${verdictHead(rep.verdict)}`);
  }
  for (const f of rep.verdict.findings) lines.push(...findingText(f, repro));
  return lines;
}

// ---------------------------------------------------------------------------------------
// show TRACE [--all] [--vcd OUT.vcd]

const SHOW_FLAGS = {
  all: bool('the whole timeline, not only the events around the findings'),
  vcd: text('OUT.vcd', 'write a Value Change Dump (GTKWave, Surfer) instead of the timeline'),
  html: text('OUT.html', 'write a self-contained HTML page: verdict, waveforms, filterable timeline'),
};

export const SHOW: CommandSpec<typeof SHOW_FLAGS> = {
  name: 'show',
  args: 'TRACE',
  summary:
    'a readable timeline of a trace (IRQ lines, register writes, migration phases, findings), or its waveforms as a Value Change Dump',
  flags: SHOW_FLAGS,
  examples: ['npx migfuzz show corpus/regressions/bug-a.mpk', 'npx migfuzz show a.mpk --vcd a.vcd'],
};

/** `show TRACE [--all] [--vcd OUT.vcd]`: 0, or 3 for a bad trace. Throws UsageError (2). */
export function cmdShow(argv: string[]): number {
  const a = parseFlags(argv, SHOW.flags);
  if (a.positionals.length !== 1) throw new UsageError('show needs exactly one TRACE');
  const file = a.positionals[0]!;
  const vcd = a.flags.vcd;
  if (vcd !== undefined && a.flags.all) throw new UsageError('--all applies to the timeline, not --vcd');
  return withInputErrors(() => {
    const trace = readTraceFile(file);
    if (vcd !== undefined) {
      writeFileAtomic(vcd, traceToVcd(trace));
      console.log(
        `${file}: wrote ${vcd} (Value Change Dump of ${trace.eventCount} events over ${formatMs(trace.verdict.endNs)})`,
      );
      return 0;
    }
    const lines = timeline(trace, { all: a.flags.all, reproduce: `npx migfuzz replay ${file}` });
    console.log(lines.join('\n'));
    return 0;
  });
}

// ---------------------------------------------------------------------------------------
// npm run regen-golden

/**
 * The golden traces: each seed bug's schedule, its trace in corpus/regressions/, and beside it
 * the trace's whole timeline as text, so that a change to the model shows up in review as a
 * readable diff of events rather than a changed binary.
 */
export const GOLDEN: readonly { schedule: string; trace: string; timeline: string }[] = [
  {
    schedule: 'corpus/seeds/bug-a-virtio-serial.json',
    trace: 'corpus/regressions/bug-a.mpk',
    timeline: 'corpus/regressions/bug-a.timeline.txt',
  },
  {
    schedule: 'corpus/seeds/bug-b-serial.json',
    trace: 'corpus/regressions/bug-b.mpk',
    timeline: 'corpus/regressions/bug-b.timeline.txt',
  },
];

/** A golden trace's text form: every event, and the findings. */
export function goldenTimeline(trace: Trace): string {
  return `${timeline(trace, { all: true }).join('\n')}\n`;
}

/**
 * Regenerates the golden traces deliberately (`npm run regen-golden`, from the repository
 * root): after a change that is meant to alter the executed events.
 */
export function regenGolden(): number {
  return withInputErrors(() => {
    const builds = builtinRegistry();
    for (const g of GOLDEN) {
      let schedule: Schedule;
      try {
        schedule = parseSchedule(readFileSync(g.schedule, 'utf8'), builds);
      } catch (e) {
        if (e instanceof ScheduleError) throw new InputError(`${g.schedule}: ${e.message}`);
        throw new InputError(`${g.schedule}: cannot read (${ioReason(e)})`);
      }
      const trace = recordRun(schedule, builds);
      writeFileAtomic(g.trace, encodeTraceParts(trace));
      writeFileAtomic(g.timeline, goldenTimeline(trace));
      console.log(
        `${g.trace}: ${trace.eventCount} events, ${verdictHead(trace.verdict)}, digest ${trace.digest}`,
      );
    }
    return 0;
  });
}
