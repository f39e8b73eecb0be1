import { readFileSync } from 'node:fs';
import { BuildFileError, parseBuildFile } from '../model/migration/build-file.js';
import { type BuildRegistry, builtinRegistry } from '../model/migration/builds.js';
import { type Schedule, ScheduleError } from '../model/schedule/types.js';
import { oneLine, parseSchedule, quote } from '../model/schedule/validate.js';
import type { Finding } from '../oracles/types.js';
import { judge, type Verdict } from '../oracles/verdict.js';
import { flagString, type ParsedArgs, parseArgs, UsageError } from './args.js';
import { cmdConfirm } from './confirm-command.js';
import { cmdCorpus, cmdShrink } from './corpus-commands.js';
import { FuzzInputError, type FuzzIo, fuzzSettings, runFuzz } from './fuzz-command.js';
import { cmdCorpusMerge, MergeInputError } from './merge-command.js';
import {
  cmdReplay,
  cmdShow,
  ioReason,
  isTraceFile,
  runRecorded,
  TraceInputError,
  traceRunInput,
} from './replay-commands.js';
import { cmdReport, cmdShowHtml, wantsHtml } from './report-command.js';
import { cmdStatus, StatusInputError } from './status-command.js';
import { cmdStream, fromStream, StreamInputError } from './stream-command.js';
import { cmdVmstate } from './vmstate-command.js';

/**
 * The command line: the only place that reads argv and files, prints, or exits. Exit codes
 * (INTERFACE.md §4): 0 nothing found, 1 findings, 2 usage error, 3 invalid input file.
 */

class InputError extends Error {
  override readonly name = 'InputError';
}

const USAGE = `usage: migfuzz <command> [options]
  run FILE [--trace OUT.mpk] [--json] [--builds FILE]   run a schedule (or a trace's) and print its verdict
      [--from-stream STREAM]                            start the source from a real QEMU stream's serial/virtio-serial state
  replay TRACE [--json]                                 re-execute a trace and compare event by event
  show TRACE [--all] [--vcd OUT.vcd | --html OUT.html]  a readable timeline, a Value Change Dump, or an HTML page
  report OUT_DIR [-o FILE.html] [--known DIR]           an HTML report of a campaign directory (default OUT_DIR/report.html)
  shrink TRACE [-o OUT.mpk] [--signature SIG] [--json]  minimise a failing trace (same signature)
  corpus add TRACE [--name NAME] [--force] [--dir DIR]  add a trace to corpus/regressions/ as a regression seed
  corpus check [DIR] [--json]                           re-run every regression seed (1 if one no longer holds)
  corpus merge OUT_DIR... --into DIR [--builds FILE] [--json]
                                                        the fewest queue entries keeping the union's coverage, each finding once
  status DIR [--json]                                   every campaign of a sync dir: execs, exec/s, coverage, findings
  fuzz [--seed N] [--time 60s | --execs N] [--workers N] [--out DIR | --sync-dir DIR --instance NAME] [--corpus DIR] [--builds LIST]
       [--max-queue N] [--event-budget N] [--confirm [--qemu PATH]]
                                                        a coverage-guided campaign
  confirm FILE [--qemu PATH] [--json] [--keep DIR] [--guest-dir DIR] [--builds FILE]
                                                        run the schedule on a real QEMU too and compare verdicts (exit 6: no QEMU)
  start                                                 the default campaign (fuzz --time 60s)
  stream show FILE [--json]                             decode a real QEMU migration stream
  vmstate dump --build B --machine M [--out FILE]       the modelled devices in QEMU's -dump-vmstate format
  vmstate diff SRC.json DEST.json [--reverse] [--json]  what vmstate-static-checker.py reports (1 if differences)`;

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new InputError(`${file}: cannot read (${ioReason(e)})`);
  }
}

function loadBuilds(a: ParsedArgs): BuildRegistry {
  const file = flagString(a, '--builds');
  if (!file) return builtinRegistry();
  try {
    return parseBuildFile(readText(file), builtinRegistry());
  } catch (e) {
    if (e instanceof BuildFileError) throw new InputError(`${file}: ${e.message}`);
    throw e;
  }
}

function loadSchedule(file: string, builds: BuildRegistry): Schedule {
  try {
    return parseSchedule(readText(file), builds);
  } catch (e) {
    if (e instanceof ScheduleError) throw new InputError(`${file}: ${e.message}`);
    throw e;
  }
}

function reproduce(file: string, a: ParsedArgs): string {
  const builds = flagString(a, '--builds');
  return `npx migfuzz run ${file}${builds ? ` --builds ${builds}` : ''}`;
}

const ms = (ns: number): string => `${(ns / 1e6).toFixed(3)} ms`;

function printVerdict(file: string, s: Schedule, v: Verdict, repro: string): void {
  const pair = `${s.src.build} → ${s.dst.build} on ${s.machine}`;
  const head =
    v.findings.length === 0
      ? 'no finding'
      : `${v.findings.length} finding${v.findings.length > 1 ? 's' : ''}`;
  console.log(`${file}: ${head} (${pair}; ${v.events} events, ${ms(v.endNs)})`);
  for (const f of v.findings) printFinding(f, repro);
}

function printFinding(f: Finding, repro: string): void {
  console.log(`  ${f.oracle} on ${f.device ?? '-'} at ${ms(f.at)}: ${f.message}`);
  console.log(`    signature ${f.signature}`);
  console.log(`    reproduce: ${repro}`);
}

/** A schedule file, or a trace (.mpk), which runs its own schedule with its recorded builds. */
function runInput(
  file: string,
  a: ParsedArgs,
): { schedule: Schedule; builds: BuildRegistry; eventBudget?: number } {
  const registry = loadBuilds(a);
  return traceRunInput(file, registry) ?? { schedule: loadSchedule(file, registry), builds: registry };
}

function cmdRun(argv: string[]): number {
  const a = parseArgs(argv, ['--builds', '--trace', '--from-stream'], ['--json']);
  if (a.positionals.length !== 1) throw new UsageError('run needs exactly one FILE');
  const file = a.positionals[0]!;
  const registry = loadBuilds(a);
  const stream = flagString(a, '--from-stream');
  if (stream !== undefined) return runFromStream(file, stream, registry, a);
  const { schedule, builds, eventBudget } = runInput(file, a);
  const out = flagString(a, '--trace');
  const v =
    out === undefined
      ? judge(schedule, { builds, eventBudget })
      : runRecorded(schedule, builds, out, eventBudget);
  const repro = reproduce(file, a);
  if (a.flags.has('--json')) {
    console.log(
      JSON.stringify({
        file,
        findings: v.findings.map((f) => ({ ...f, reproduce: repro })),
        events: v.events,
        endNs: v.endNs,
        end: v.end,
      }),
    );
  } else {
    printVerdict(file, schedule, v, repro);
  }
  return v.findings.length > 0 ? 1 : 0;
}

/**
 * `run SCHEDULE --from-stream FILE`: the source starts from a real stream's serial and
 * virtio-serial state. A trace records a schedule only, so neither a trace input nor
 * `--trace` goes with it.
 */
function runFromStream(file: string, streamFile: string, builds: BuildRegistry, a: ParsedArgs): number {
  if (a.flags.has('--trace') || isTraceFile(file))
    throw new UsageError('--from-stream runs a schedule (.json) and records no trace');
  const schedule = loadSchedule(file, builds);
  const v = judge(schedule, { builds, fromStream: fromStream(streamFile, schedule, builds) });
  const repro = `${reproduce(file, a)} --from-stream ${streamFile}`;
  if (a.flags.has('--json')) {
    const findings = v.findings.map((f) => ({ ...f, reproduce: repro }));
    console.log(
      JSON.stringify({ file, stream: streamFile, findings, events: v.events, endNs: v.endNs, end: v.end }),
    );
  } else printVerdict(file, schedule, v, repro);
  return v.findings.length > 0 ? 1 : 0;
}

function fuzzIo(): FuzzIo {
  return {
    now: () => Date.now(),
    isTty: process.stdout.isTTY === true,
    write: (text) => process.stdout.write(text),
    onStop: (handler) => {
      process.once('SIGINT', handler);
      process.once('SIGTERM', handler);
    },
    readText,
  };
}

function cmdFuzz(argv: string[]): Promise<number> | number {
  const settings = fuzzSettings(argv, (file) => readText(file), Date.now());
  return runFuzz(settings, fuzzIo()).catch((e: unknown) => handleError(e));
}

export function main(argv: string[]): number | Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'run':
        return cmdRun(rest);
      case 'fuzz':
        return cmdFuzz(rest);
      case 'replay':
        return cmdReplay(rest);
      case 'show':
        return wantsHtml(rest) ? cmdShowHtml(rest) : cmdShow(rest);
      case 'report':
        return cmdReport(rest);
      case 'shrink':
        return cmdShrink(rest);
      case 'corpus':
        if (rest[0] === 'merge') return cmdCorpusMerge(rest.slice(1), loadBuilds);
        return cmdCorpus(rest);
      case 'status':
        return cmdStatus(rest, Date.now());
      case 'confirm':
        return cmdConfirm(rest, { load: runInput }).catch((e: unknown) => handleError(e));
      case 'stream':
        return cmdStream(rest);
      case 'vmstate':
        return cmdVmstate(rest);
      case 'start':
        // The default campaign: 60 s, unless a limit of its own is given.
        return cmdFuzz(rest.some((x) => /^--(time|execs)(=|$)/.test(x)) ? rest : ['--time', '60s', ...rest]);
      case undefined:
      case '--help':
      case '-h':
      case 'help':
        console.log(USAGE);
        return cmd === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command ${quote(cmd)}`);
    }
  } catch (e) {
    return handleError(e);
  }
}

/** Exit code of an internal error (sysexits EX_SOFTWARE): never a finding's 1 or an input's 3. */
export const EXIT_INTERNAL = 70;

/** Usage errors exit 2, bad input files 3, each with one line; anything else is a bug (70). */
function handleError(e: unknown): number {
  if (e instanceof UsageError) {
    console.error(`migfuzz: ${e.message}\n${USAGE}`);
    return 2;
  }
  if (
    e instanceof InputError ||
    e instanceof FuzzInputError ||
    e instanceof BuildFileError ||
    e instanceof MergeInputError ||
    e instanceof StatusInputError
  ) {
    console.error(`migfuzz: ${e.message}`);
    return 3;
  }
  if (e instanceof TraceInputError || e instanceof StreamInputError) {
    console.error(`migfuzz: ${e.message}`);
    return 3;
  }
  // A bug of migfuzz itself: still one line, and an exit code of its own.
  console.error(
    oneLine(`migfuzz: internal error: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`),
  );
  return EXIT_INTERNAL;
}
