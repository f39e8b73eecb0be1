/**
 * `migfuzz shrink TRACE [-o OUT.mpk] [--signature SIG] [--json]`,
 * `migfuzz corpus add TRACE [--name NAME] [--force] [--dir DIR]` and
 * `migfuzz corpus check [DIR] [--json]` (docs/cli.md). Like the other command files,
 * this is where trace files are read and written; the shrinker itself (src/fuzz/shrink.ts)
 * and the recorder (src/replay) do no I/O.
 *
 * Exit codes: 0 done / all seeds hold, 1 a seed no longer reproduces its recorded findings,
 * 2 usage (UsageError, printed by main), 3 invalid input file (one line).
 */

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { shrink } from '../fuzz/shrink.js';
import { oneLine } from '../model/util/text.js';
import type { Finding } from '../oracles/types.js';
import { judge } from '../oracles/verdict.js';
import { formatMs } from '../replay/describe.js';
import type { Trace } from '../replay/format.js';
import { recordRun, rerun } from '../replay/record.js';
import { encodeTrace, traceRegistry } from '../replay/trace.js';
import { UsageError } from './args.js';
import { Exit, InputError } from './exit-codes.js';
import { bool, type CommandSpec, parseFlags, text } from './flags.js';
import { makeDirs, writeFileAtomic } from './fs.js';
import { signatureDir } from './out-dir.js';
import { isTraceFile, readTraceFile, withInputErrors } from './replay-commands.js';

/** Where regression seeds live (docs/cli.md), relative to the repository root. */
export const REGRESSIONS_DIR = join('corpus', 'regressions');

const signatures = (findings: readonly Finding[]): string[] => findings.map((f) => f.signature);

function findingLines(f: Finding, repro: string): string[] {
  return [
    `  ${f.oracle} on ${f.device ?? '-'} at ${formatMs(f.at)}: ${f.message}`,
    `    signature ${f.signature}`,
    `    reproduce: ${repro}`,
  ];
}

// ---------------------------------------------------------------------------------------
// shrink TRACE [-o OUT.mpk] [--signature SIG] [--json]

/** The default output of `shrink`: TRACE with `.shrunk.mpk` instead of `.mpk`. */
export function shrunkPath(file: string): string {
  return isTraceFile(file) ? `${file.slice(0, -'.mpk'.length)}.shrunk.mpk` : `${file}.shrunk.mpk`;
}

/**
 * The signature a trace is named for: a campaign saves a finding as
 * `crashes/SIGNATURE/original.mpk`, `corpus add` as `corpus/regressions/SIGNATURE.mpk` (with
 * `:` as `_`). That finding, not merely the first recorded, is the one to shrink.
 */
export function namedSignature(file: string, recorded: readonly string[]): string | undefined {
  const parts = file.split(/[\\/]/).map((p) => p.replace(/(\.shrunk)?\.mpk$/i, ''));
  return recorded.find((sig) => parts.some((p) => p === signatureDir(sig) || p === seedName(sig)));
}

const SHRINK_FLAGS = {
  out: text('OUT.mpk', 'where to write the shrunk trace', undefined, { alias: '-o' }),
  signature: text(
    'SIG',
    'the finding to keep (default: the one the trace is named for, as in crashes/SIG/original.mpk, else its first)',
  ),
  json: bool('print one JSON object instead of text'),
};

export const SHRINK: CommandSpec<typeof SHRINK_FLAGS> = {
  name: 'shrink',
  args: 'TRACE',
  summary:
    "minimise a failing trace to a smaller schedule with the same signature, and record it (default output: TRACE's name with .shrunk.mpk)",
  flags: SHRINK_FLAGS,
  examples: [
    'npx migfuzz shrink out/crashes/SIG/original.mpk',
    'npx migfuzz shrink corpus/regressions/bug-a.mpk --signature stuck-irq-line:vser0:remote-irr --out a.mpk',
  ],
};

/**
 * `shrink`: minimises the trace's schedule to one that still shows the signature (the one the
 * trace is named for, else its first finding's, or `--signature`), records it and writes the
 * shrunk trace. 0, or 3 for a bad trace or one without that finding. Throws UsageError (2).
 */
export function cmdShrink(argv: string[]): number {
  const a = parseFlags(argv, SHRINK.flags);
  if (a.positionals.length !== 1) throw new UsageError('shrink needs exactly one TRACE');
  const file = a.positionals[0]!;
  const out = a.flags.out ?? shrunkPath(file);
  const wanted = a.flags.signature;
  return withInputErrors(() => {
    const trace = readTraceFile(file);
    const recorded = signatures(trace.verdict.findings);
    if (recorded.length === 0) throw new InputError(`${file}: the trace has no finding to shrink`);
    if (wanted !== undefined && !recorded.includes(wanted)) {
      throw new UsageError(
        `--signature: ${oneLine(wanted)} is not a finding of ${file} (its findings: ${recorded.join(', ')})`,
      );
    }
    const signature = wanted ?? namedSignature(file, recorded) ?? recorded[0]!;
    const builds = traceRegistry(trace);
    const { eventBudget } = trace.stats;
    // The shrinker keeps candidates that still show the signature: the start must show it now.
    const now = judge(trace.schedule, { builds, eventBudget });
    if (!now.findings.some((f) => f.signature === signature)) {
      throw new InputError(
        `${file}: its schedule no longer produces ${signature} (recorded: ${recorded.join(', ')}; now: ${signatures(now.findings).join(', ') || 'no finding'}), nothing to shrink`,
      );
    }
    const r = shrink(trace.schedule, signature, builds, { eventBudget });
    const shrunk = recordRun(r.schedule, builds, eventBudget);
    writeFileAtomic(out, encodeTrace(shrunk));
    const repro = `npx migfuzz replay ${out}`;
    if (a.flags.json) {
      console.log(
        JSON.stringify({
          trace: file,
          out,
          signature,
          stepsBefore: r.stepsBefore,
          stepsAfter: r.stepsAfter,
          tries: r.tries,
          minimal: r.minimal,
          events: shrunk.eventCount,
          findings: shrunk.verdict.findings.map((f) => ({ ...f, reproduce: repro })),
          reproduce: repro,
        }),
      );
    } else {
      console.log(
        `${file}: shrunk ${signature} from ${r.stepsBefore} to ${r.stepsAfter} step${r.stepsAfter === 1 ? '' : 's'} (${r.tries} candidate runs${r.minimal ? '' : '; stopped at its limit, a step may still be removable'})`,
      );
      const n = shrunk.verdict.findings.length;
      console.log(
        `wrote ${out} (${shrunk.eventCount} events, digest ${shrunk.digest}): ${n} finding${n === 1 ? '' : 's'}`,
      );
      for (const f of shrunk.verdict.findings) for (const line of findingLines(f, repro)) console.log(line);
    }
    return 0;
  });
}

// ---------------------------------------------------------------------------------------
// corpus add TRACE [--name NAME] [--force] [--dir DIR] | corpus check [DIR] [--json]

const CORPUS_ADD_FLAGS = {
  name: text('NAME', "the seed's file name (default: from its first finding's signature)"),
  force: bool('replace an existing seed of that name with other content'),
  dir: text('DIR', 'the seed directory', REGRESSIONS_DIR),
};

export const CORPUS_ADD: CommandSpec<typeof CORPUS_ADD_FLAGS> = {
  name: 'corpus add',
  args: 'TRACE',
  summary:
    'add a trace to corpus/regressions/ as a regression seed (its schedule is re-recorded, so the seed holds the current events and verdict)',
  flags: CORPUS_ADD_FLAGS,
  examples: ['npx migfuzz corpus add out/crashes/SIG/shrunk.mpk --name my-bug'],
};

const CORPUS_CHECK_FLAGS = { json: bool('print one JSON object instead of text') };

export const CORPUS_CHECK: CommandSpec<typeof CORPUS_CHECK_FLAGS> = {
  name: 'corpus check',
  args: '[DIR]',
  summary: `re-run every regression seed of DIR (default ${REGRESSIONS_DIR}); each must reproduce its recorded findings (a seed recorded with none must still have none)`,
  flags: CORPUS_CHECK_FLAGS,
  examples: ['npx migfuzz corpus check', 'npx migfuzz corpus check my-seeds --json'],
  notes: ['exit: 0 every seed holds, 1 one does not (recorded vs now), 3 a seed cannot be read'],
};

/** `corpus add|check ...`: see cmdCorpusAdd and cmdCorpusCheck. Throws UsageError (2). */
export function cmdCorpus(argv: string[]): number {
  const [sub, ...rest] = argv;
  if (sub === 'add') return cmdCorpusAdd(rest);
  if (sub === 'check') return cmdCorpusCheck(rest);
  throw new UsageError(
    sub === undefined
      ? 'corpus needs a subcommand: add TRACE [--name NAME] | check [DIR]'
      : `unknown corpus subcommand "${oneLine(sub)}" (add, check)`,
  );
}

/** A regression seed's file name from a finding's signature: letters, digits, `._-` only. */
export function seedName(signature: string): string {
  const name = signature
    .replace(/:/g, '_')
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[.-]+/, '')
    .slice(0, 120);
  return name === '' ? 'seed' : name;
}

const NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

function seedFileName(name: string): string {
  const bare = name.toLowerCase().endsWith('.mpk') ? name.slice(0, -'.mpk'.length) : name;
  if (!NAME.test(bare)) {
    throw new UsageError(
      `--name: "${oneLine(name)}" is not a seed name (letters, digits, ".", "_" and "-", not starting with "." or "-")`,
    );
  }
  return `${bare}.mpk`;
}

function sameBytes(x: Uint8Array, y: Uint8Array): boolean {
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/**
 * `corpus add`: re-records the trace's schedule (so the seed holds the current events and
 * verdict) and writes it to DIR/NAME.mpk atomically. An existing file with other content is
 * only replaced with `--force`; the same content is left as it is.
 */
export function cmdCorpusAdd(argv: string[]): number {
  const a = parseFlags(argv, CORPUS_ADD.flags);
  if (a.positionals.length !== 1) throw new UsageError('corpus add needs exactly one TRACE');
  const file = a.positionals[0]!;
  const { dir, name } = a.flags;
  const fileName = name !== undefined ? seedFileName(name) : undefined;
  return withInputErrors(() => {
    const trace = readTraceFile(file);
    const fresh = rerun(trace);
    const first = fresh.verdict.findings[0];
    if (fileName === undefined && !first) {
      throw new UsageError(`${file} has no finding to name the seed after: give --name NAME`);
    }
    const target = join(dir, fileName ?? `${seedName(first!.signature)}.mpk`);
    const before = signatures(trace.verdict.findings);
    const after = signatures(fresh.verdict.findings);
    if (before.join('\n') !== after.join('\n')) {
      console.error(
        `migfuzz: note: ${file} recorded ${before.join(', ') || 'no finding'}; its schedule now gives ${after.join(', ') || 'no finding'}: the seed records the current run`,
      );
    }
    const bytes = encodeTrace(fresh);
    if (existsSync(target)) {
      if (sameBytes(readBytes(target), bytes)) {
        console.log(`${target}: already in the corpus with this content, unchanged`);
        return 0;
      }
      if (!a.flags.force) {
        throw new InputError(
          `${target}: exists with other content (give --force to replace it, or another --name)`,
        );
      }
    }
    try {
      makeDirs(dir);
    } catch {
      throw new InputError(`${dir}: cannot create the directory`);
    }
    writeFileAtomic(target, bytes);
    const head = after.length === 0 ? 'no finding' : `${after.length} finding${after.length > 1 ? 's' : ''}`;
    console.log(`added ${target}: ${fresh.eventCount} events, ${head}, digest ${fresh.digest}`);
    for (const f of fresh.verdict.findings)
      for (const line of findingLines(f, `npx migfuzz replay ${target}`)) console.log(line);
    console.log(`check it with: npx migfuzz corpus check${dir === REGRESSIONS_DIR ? '' : ` ${dir}`}`);
    return 0;
  });
}

function readBytes(file: string): Uint8Array {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new InputError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** One regression seed re-run: does it still give the findings it recorded? */
export interface SeedCheck {
  file: string;
  /** Signatures in the recorded verdict. */
  recorded: string[];
  /** Signatures of the run now (empty when the run threw). */
  now: string[];
  /** Recorded signatures the run no longer gives. */
  missing: string[];
  /** Findings now that a seed recorded without any finding must not have. */
  unexpected: string[];
  /** The run threw (a model bug outside its assertions): the error's one line. */
  error: string | null;
  holds: boolean;
}

/**
 * Re-runs a seed's schedule with the builds it recorded. It holds when every recorded
 * signature is found again; a seed recorded with no finding must still have none. Throws
 * InputError for an unreadable trace.
 */
export function checkSeed(file: string): SeedCheck {
  return checkTrace(file, readTraceFile(file));
}

export function checkTrace(file: string, trace: Trace): SeedCheck {
  const recorded = signatures(trace.verdict.findings);
  let now: string[] = [];
  let error: string | null = null;
  try {
    const { eventBudget } = trace.stats;
    now = signatures(judge(trace.schedule, { builds: traceRegistry(trace), eventBudget }).findings);
  } catch (e) {
    error = oneLine(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
  }
  const missing = recorded.filter((s) => !now.includes(s));
  const unexpected = recorded.length === 0 ? now : [];
  return {
    file,
    recorded,
    now,
    missing,
    unexpected,
    error,
    holds: error === null && missing.length === 0 && unexpected.length === 0,
  };
}

/** The `.mpk` files of DIR, sorted; a missing or unreadable DIR is a InputError. */
export function seedFiles(dir: string): string[] {
  let names: string[];
  try {
    if (!statSync(dir).isDirectory()) throw new InputError(`${dir}: not a directory`);
    names = readdirSync(dir);
  } catch (e) {
    if (e instanceof InputError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(
      `${dir}: cannot read the seed directory (${code === 'ENOENT' ? 'no such directory' : (code ?? 'error')})`,
    );
  }
  return names
    .filter(isTraceFile)
    .sort()
    .map((n) => join(dir, n));
}

const list = (sigs: readonly string[]): string => (sigs.length === 0 ? 'no finding' : sigs.join(', '));

function checkLines(c: SeedCheck): string[] {
  if (c.holds) {
    const what =
      c.recorded.length === 0
        ? 'still no finding'
        : `${c.recorded.length} recorded finding${c.recorded.length > 1 ? 's' : ''} reproduced`;
    return [`ok    ${c.file}: ${what}`];
  }
  const lines = [`FAIL  ${c.file}`, `  recorded: ${list(c.recorded)}`];
  lines.push(c.error !== null ? `  now:      the run threw ${c.error}` : `  now:      ${list(c.now)}`);
  if (c.missing.length > 0 && c.error === null) lines.push(`  missing:  ${c.missing.join(', ')}`);
  if (c.unexpected.length > 0)
    lines.push(`  new:      ${c.unexpected.join(', ')} (recorded with no finding)`);
  lines.push(`  reproduce: npx migfuzz replay ${c.file}`);
  return lines;
}

/**
 * `corpus check [DIR]`: re-runs every seed. 0 when all hold, 1 when one does not (each
 * reported, recorded vs now), 3 when a seed cannot be read (one line each; the others are
 * still checked) or DIR is missing.
 */
export function cmdCorpusCheck(argv: string[]): number {
  const a = parseFlags(argv, CORPUS_CHECK.flags);
  if (a.positionals.length > 1) throw new UsageError('corpus check takes at most one DIR');
  const dir = a.positionals[0] ?? REGRESSIONS_DIR;
  return withInputErrors(() => {
    const files = seedFiles(dir);
    const checks: SeedCheck[] = [];
    const unreadable: string[] = [];
    for (const file of files) {
      try {
        checks.push(checkSeed(file));
      } catch (e) {
        if (!(e instanceof InputError)) throw e;
        unreadable.push(oneLine(e.message));
      }
    }
    const failed = checks.filter((c) => !c.holds);
    if (a.flags.json) {
      console.log(
        JSON.stringify({
          dir,
          ok: failed.length === 0 && unreadable.length === 0,
          seeds: checks,
          unreadable,
        }),
      );
    } else {
      for (const c of checks) for (const line of checkLines(c)) console.log(line);
      console.log(
        `${dir}: ${files.length} seed${files.length === 1 ? '' : 's'}, ${checks.length - failed.length} hold, ${failed.length} fail${unreadable.length > 0 ? `, ${unreadable.length} unreadable` : ''}`,
      );
    }
    for (const line of unreadable) console.error(`migfuzz: ${line}`);
    if (unreadable.length > 0) return Exit.INPUT;
    return failed.length > 0 ? Exit.FOUND : 0;
  });
}

// ---------------------------------------------------------------------------------------
