import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BuildFileError, parseBuildFile } from '../model/migration/build-file.js';
import { type BuildRegistry, builtinRegistry } from '../model/migration/builds.js';
import { type Schedule, ScheduleError } from '../model/schedule/types.js';
import { parseSchedule } from '../model/schedule/validate.js';
import type { Finding } from '../oracles/types.js';
import { judge, type Verdict } from '../oracles/verdict.js';
import { flagString, type ParsedArgs, parseArgs, UsageError } from './args.js';

/**
 * The command line: the only place that reads argv and files, prints, or exits. Exit codes
 * (INTERFACE.md §4): 0 nothing found, 1 findings, 2 usage error, 3 invalid input file.
 */

class InputError extends Error {
  override readonly name = 'InputError';
}

const USAGE = `usage: migfuzz <command> [options]
  run FILE [--trace OUT.mpk] [--json] [--builds FILE]   run a schedule and print its verdict
  start                                                 run every schedule in corpus/seeds/`;

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(`${file}: cannot read (${code === 'ENOENT' ? 'no such file' : (code ?? 'error')})`);
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

function cmdRun(argv: string[]): number {
  const a = parseArgs(argv, ['--builds', '--trace'], ['--json']);
  if (a.positionals.length !== 1) throw new UsageError('run needs exactly one FILE');
  if (a.flags.has('--trace')) throw new UsageError('--trace is not available yet in this version');
  const file = a.positionals[0]!;
  const builds = loadBuilds(a);
  const schedule = loadSchedule(file, builds);
  const v = judge(schedule, { builds });
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

/** The main job until campaigns exist: every seed schedule, with its verdict. */
function cmdStart(argv: string[]): number {
  const a = parseArgs(argv, ['--builds', '--corpus'], []);
  const dir = flagString(a, '--corpus') ?? join('corpus', 'seeds');
  const builds = loadBuilds(a);
  let files: string[];
  try {
    files = readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .sort();
  } catch {
    throw new InputError(`${dir}: cannot read the seed directory`);
  }
  let found = 0;
  for (const name of files) {
    const file = join(dir, name);
    const schedule = loadSchedule(file, builds);
    const v = judge(schedule, { builds });
    printVerdict(file, schedule, v, reproduce(file, a));
    found += v.findings.length;
  }
  console.log(`${files.length} seed schedules, ${found} findings`);
  return 0;
}

export function main(argv: string[]): number {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'run':
        return cmdRun(rest);
      case 'start':
        return cmdStart(rest);
      case undefined:
      case '--help':
      case '-h':
      case 'help':
        console.log(USAGE);
        return cmd === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${cmd}"`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`migfuzz: ${e.message}\n${USAGE}`);
      return 2;
    }
    if (e instanceof InputError) {
      console.error(`migfuzz: ${e.message}`);
      return 3;
    }
    throw e;
  }
}
