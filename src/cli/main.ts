import { readFileSync } from 'node:fs';
import { BuildFileError, parseBuildFile } from '../model/migration/build-file.js';
import { type BuildRegistry, builtinRegistry } from '../model/migration/builds.js';
import { didYouMean } from '../model/schedule/suggest.js';
import { buildsPath, type Schedule, ScheduleError } from '../model/schedule/types.js';
import { parseSchedule } from '../model/schedule/validate.js';
import { oneLine, quote } from '../model/util/text.js';
import type { Finding } from '../oracles/types.js';
import { judge, type Verdict } from '../oracles/verdict.js';
import { UsageError } from './args.js';
import { completionScript, SHELLS } from './completion.js';
import { CONFIRM, cmdConfirm, cmdStreamBase, STREAM_BASE } from './confirm-command.js';
import {
  CORPUS_ADD,
  CORPUS_CHECK,
  cmdCorpusAdd,
  cmdCorpusCheck,
  cmdShrink,
  SHRINK,
} from './corpus-commands.js';
import { Exit, InputError } from './exit-codes.js';
import { bool, type Command, type CommandSpec, helpText, parseFlags, text, usageLine } from './flags.js';
import { ioReason } from './fs.js';
import { type FuzzIo, runFuzz } from './fuzz-command.js';
import { FUZZ, fuzzSettings, START } from './fuzz-settings.js';
import { CORPUS_MERGE, cmdCorpusMerge } from './merge-command.js';
import {
  cmdReplay,
  cmdShow,
  isTraceFile,
  REPLAY,
  runRecorded,
  SHOW,
  traceRunInput,
} from './replay-commands.js';
import { cmdReport, cmdShowHtml, REPORT, wantsHtml } from './report-command.js';
import { cmdStatus, STATUS } from './status-command.js';
import {
  cmdStreamCraft,
  cmdStreamShow,
  fromStream,
  STREAM_CRAFT,
  STREAM_SHOW,
  StreamInputError,
} from './stream-command.js';
import { packageVersion } from './version.js';
import { cmdDiff, cmdDump, VMSTATE_DIFF, VMSTATE_DUMP } from './vmstate-command.js';

/**
 * The command line: the only place that reads argv and files, prints, or exits. Every
 * command is one entry of COMMANDS (its flag table and the function that runs it): help,
 * usage lines and shell completion come from there. Exit codes: src/cli/exit-codes.ts.
 */

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new InputError(`${file}: cannot read (${ioReason(e)})`);
  }
}

function loadBuilds(file: string | undefined): BuildRegistry {
  if (!file) return builtinRegistry();
  try {
    return parseBuildFile(readText(file), builtinRegistry());
  } catch (e) {
    if (e instanceof BuildFileError) throw new InputError(`${file}: ${e.message}`);
    throw e;
  }
}

function loadSchedule(file: string, builds: BuildRegistry, buildsFile: string | undefined): Schedule {
  try {
    return parseSchedule(readText(file), builds);
  } catch (e) {
    if (!(e instanceof ScheduleError)) throw e;
    // A schedule a campaign with a build file wrote needs that file again.
    const hint =
      buildsFile === undefined && /\.build: unknown build/.test(e.message)
        ? ': is it from a build file? give it with --builds FILE'
        : '';
    throw new InputError(`${file}: ${e.message}${hint}`);
  }
}

function reproduce(file: string, builds: string | undefined): string {
  return `npx migfuzz run ${file}${builds ? ` --builds ${builds}` : ''}`;
}

const ms = (ns: number): string => `${(ns / 1e6).toFixed(3)} ms`;

function printVerdict(file: string, s: Schedule, v: Verdict, repro: string): void {
  const pair = `${buildsPath(s)} on ${s.machine}`;
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

const RUN_FLAGS = {
  trace: text('OUT.mpk', 'also record every executed event into a trace'),
  json: bool('print one JSON object (the findings, each with its reproduce command) instead of text'),
  builds: text('FILE', 'a build file adding builds of your own (a base build plus revision switches)'),
  fromStream: text('STREAM', "start the source from a real QEMU stream's serial and virtio-serial state"),
};

const RUN: CommandSpec<typeof RUN_FLAGS> = {
  name: 'run',
  args: 'FILE',
  summary:
    "run a schedule (.json), or a trace's schedule (.mpk) with its recorded builds, and print its verdict",
  flags: RUN_FLAGS,
  examples: [
    'npx migfuzz run corpus/seeds/bug-a-virtio-serial.json',
    'npx migfuzz run corpus/seeds/bug-b-serial.json --json',
    'npx migfuzz run my-schedule.json --builds my-builds.json --trace a.mpk',
  ],
  notes: ['exit: 0 no finding, 1 findings, 3 the file cannot be used'],
};

function cmdRun(argv: string[]): number {
  const a = parseFlags(argv, RUN.flags);
  if (a.positionals.length !== 1) throw new UsageError('run needs exactly one FILE');
  const file = a.positionals[0]!;
  if (a.flags.fromStream !== undefined) return runFromStream(file, a.flags.fromStream, a.flags);
  const { schedule, builds, eventBudget } = runInput(file, a.flags.builds);
  const out = a.flags.trace;
  const v =
    out === undefined
      ? judge(schedule, { builds, eventBudget })
      : runRecorded(schedule, builds, out, eventBudget);
  const repro = reproduce(file, a.flags.builds);
  if (a.flags.json) {
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
  return v.findings.length > 0 ? Exit.FOUND : Exit.OK;
}

/** A schedule file, or a trace (.mpk), which runs its own schedule with its recorded builds. */
function runInput(
  file: string,
  buildsFile: string | undefined,
): { schedule: Schedule; builds: BuildRegistry; eventBudget?: number } {
  const registry = loadBuilds(buildsFile);
  return (
    traceRunInput(file, registry) ?? { schedule: loadSchedule(file, registry, buildsFile), builds: registry }
  );
}

/** `run SCHEDULE --from-stream FILE`: the source starts from a real stream's device state. */
function runFromStream(
  file: string,
  streamFile: string,
  f: { trace: string | undefined; json: boolean; builds: string | undefined },
): number {
  if (f.trace !== undefined || isTraceFile(file))
    throw new UsageError('--from-stream runs a schedule (.json) and records no trace');
  const builds = loadBuilds(f.builds);
  const schedule = loadSchedule(file, builds, f.builds);
  const v = judge(schedule, { builds, fromStream: fromStream(streamFile, schedule, builds) });
  const repro = `${reproduce(file, f.builds)} --from-stream ${streamFile}`;
  if (f.json) {
    const findings = v.findings.map((x) => ({ ...x, reproduce: repro }));
    console.log(
      JSON.stringify({ file, stream: streamFile, findings, events: v.events, endNs: v.endNs, end: v.end }),
    );
  } else printVerdict(file, schedule, v, repro);
  return v.findings.length > 0 ? Exit.FOUND : Exit.OK;
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

function cmdFuzz(argv: string[], start = false): Promise<number> | number {
  const settings = fuzzSettings(argv, (file) => readText(file), Date.now(), { start });
  return runFuzz(settings, fuzzIo());
}

const HELP: CommandSpec = {
  name: 'help',
  args: '[COMMAND]',
  summary: 'the list of commands, or the help of one (the same as COMMAND --help)',
  flags: {},
  examples: ['npx migfuzz help fuzz'],
};

const COMPLETION: CommandSpec = {
  name: 'completion',
  args: SHELLS.join('|'),
  summary: 'print a shell completion script for commands and flags',
  flags: {},
  examples: ['source <(npx migfuzz completion bash)', 'npx migfuzz completion zsh > ~/.zfunc/_migfuzz'],
};

/**
 * Every command: its spec (flags, help, usage) and what runs it. A new command is one more
 * entry here, its flag table next to its code.
 */
export const COMMANDS: readonly Command[] = [
  { spec: RUN, run: cmdRun },
  { spec: REPLAY, run: cmdReplay },
  { spec: SHOW, run: (argv) => (wantsHtml(argv) ? cmdShowHtml(argv) : cmdShow(argv)) },
  { spec: REPORT, run: cmdReport },
  { spec: SHRINK, run: cmdShrink },
  { spec: CORPUS_ADD, run: cmdCorpusAdd },
  { spec: CORPUS_CHECK, run: cmdCorpusCheck },
  { spec: CORPUS_MERGE, run: (argv) => cmdCorpusMerge(argv, loadBuilds) },
  { spec: FUZZ, run: (argv) => cmdFuzz(argv) },
  // The default campaign: 60 s (fuzz's default limit), known findings exit 0.
  { spec: START, run: (argv) => cmdFuzz(argv, true) },
  { spec: CONFIRM, run: (argv) => cmdConfirm(argv, { load: runInput }) },
  { spec: STATUS, run: (argv) => cmdStatus(argv, Date.now()) },
  { spec: STREAM_SHOW, run: cmdStreamShow },
  { spec: STREAM_BASE, run: (argv) => cmdStreamBase(argv, { load: runInput }) },
  { spec: STREAM_CRAFT, run: (argv) => cmdStreamCraft(argv, runInput) },
  { spec: VMSTATE_DUMP, run: cmdDump },
  { spec: VMSTATE_DIFF, run: cmdDiff },
  { spec: HELP, run: cmdHelp },
  { spec: COMPLETION, run: cmdCompletion },
];

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => `${c.spec.name} ${c.spec.args}`.length)) + 2;
  return [
    'usage: migfuzz <command> [options]   (migfuzz <command> --help for its options)',
    '',
    ...COMMANDS.map(
      (c) => `  ${`${c.spec.name} ${c.spec.args}`.padEnd(width)}${firstClause(c.spec.summary)}`,
    ),
    `${'  --version'.padEnd(width + 2)}print the version`,
    '',
    'docs: docs/README.md in the repository (schedules, oracles, signatures, builds, findings)',
  ].join('\n');
}

/** A summary up to its first `;` or `,` clause break that keeps it short. */
const firstClause = (summary: string): string => {
  const cut = summary.search(/[;(]/);
  return (cut > 0 ? summary.slice(0, cut) : summary).trim();
};

function commandOf(argv: readonly string[]): { command: Command; rest: string[] } | null {
  for (const n of [2, 1]) {
    const name = argv.slice(0, n).join(' ');
    const command = COMMANDS.find((c) => c.spec.name === name);
    if (command && argv.length >= n) return { command, rest: argv.slice(n) };
  }
  return null;
}

function cmdHelp(argv: string[]): number {
  parseFlags(argv, HELP.flags);
  if (argv.length === 0) {
    console.log(overview());
    return Exit.OK;
  }
  const found = commandOf(argv);
  // `help corpus`: the subcommands' usage lines.
  const subs = COMMANDS.filter((c) => c.spec.name.startsWith(`${argv[0]} `));
  if (!found && argv.length === 1 && subs.length > 0) {
    console.log(subs.map((c) => usageLine(c.spec)).join('\n'));
    return Exit.OK;
  }
  if (!found || found.rest.length > 0)
    throw new UsageError(`no command ${quote(argv.join(' '))}${suggestCommand(argv[0]!)}`);
  console.log(helpText(found.command.spec));
  return Exit.OK;
}

function cmdCompletion(argv: string[]): number {
  const a = parseFlags(argv, COMPLETION.flags);
  const shell = a.positionals[0];
  if (a.positionals.length !== 1 || !SHELLS.includes(shell as (typeof SHELLS)[number]))
    throw new UsageError(`completion needs one shell: ${SHELLS.join(' or ')}`);
  console.log(
    completionScript(
      shell as (typeof SHELLS)[number],
      COMMANDS.map((c) => c.spec),
    ),
  );
  return Exit.OK;
}

const suggestCommand = (word: string): string =>
  didYouMean(word, new Set(COMMANDS.map((c) => c.spec.name.split(' ')[0]!)));

export function main(argv: string[]): number | Promise<number> {
  const [cmd] = argv;
  if (cmd === undefined) {
    console.error(overview());
    return Exit.USAGE;
  }
  if (cmd === '--version' || cmd === '-V') {
    console.log(`migfuzz ${packageVersion()}`);
    return Exit.OK;
  }
  if (cmd === '--help' || cmd === '-h') return cmdHelp([]);
  const found = commandOf(argv);
  const spec = found?.command.spec;
  try {
    if (!found) {
      const subs = COMMANDS.filter((c) => c.spec.name.startsWith(`${cmd} `)).map(
        (c) => c.spec.name.split(' ')[1]!,
      );
      if (subs.length > 0)
        throw new UsageError(
          argv[1] === undefined
            ? `${cmd} needs a subcommand: ${subs.join(', ')}`
            : `unknown ${cmd} subcommand ${quote(argv[1])} (${subs.join(', ')})`,
        );
      throw new UsageError(`unknown command ${quote(cmd)}${suggestCommand(cmd)}`);
    }
    // `--help` anywhere before `--` asks for help, whatever else is given.
    const beforeDashes =
      found.rest.indexOf('--') < 0 ? found.rest : found.rest.slice(0, found.rest.indexOf('--'));
    if (beforeDashes.includes('--help') || beforeDashes.includes('-h')) {
      console.log(helpText(found.command.spec));
      return Exit.OK;
    }
    const code = found.command.run(found.rest);
    return typeof code === 'number' ? code : code.catch((e: unknown) => handleError(e, spec));
  } catch (e) {
    return handleError(e, spec);
  }
}

/** Exit code of an internal error (sysexits EX_SOFTWARE): never a finding's 1 or an input's 3. */
export const EXIT_INTERNAL = Exit.INTERNAL;

/**
 * A usage error prints its line and that command's usage (exit 2); a bad input its line only
 * (3); anything else is a bug of migfuzz (70), still one line.
 */
function handleError(e: unknown, spec: CommandSpec | undefined): number {
  if (e instanceof UsageError) {
    const usage = spec ? `${usageLine(spec)}\n(migfuzz ${spec.name} --help for more)` : overview();
    console.error(`migfuzz: ${oneLine(e.message)}\n${usage}`);
    return Exit.USAGE;
  }
  if (e instanceof InputError || e instanceof BuildFileError || e instanceof StreamInputError) {
    console.error(`migfuzz: ${oneLine(e.message)}`);
    return Exit.INPUT;
  }
  console.error(
    oneLine(`migfuzz: internal error: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`),
  );
  return Exit.INTERNAL;
}
