import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildPairs } from '../fuzz/arbitraries.js';
import { DEFAULT_MAX_QUEUE } from '../fuzz/corpus.js';
import { BuildFileError, parseBuildFile } from '../model/migration/build-file.js';
import { BUILTIN_BUILDS, type BuildRegistry, builtinRegistry } from '../model/migration/builds.js';
import { didYouMean } from '../model/schedule/suggest.js';
import { type Schedule, ScheduleError } from '../model/schedule/types.js';
import { parseSchedule } from '../model/schedule/validate.js';
import { oneLine, quote } from '../model/util/text.js';
import { DEFAULT_EVENT_BUDGET, MAX_EVENT_BUDGET } from '../model/world.js';
import { UsageError } from './args.js';
import { InputError } from './exit-codes.js';
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
import { inCampaign } from './out-dir.js';
import { readTraceFile } from './replay-commands.js';
import { INSTANCE_EXPECTED, validInstance } from './sync.js';

/**
 * `migfuzz fuzz` and `migfuzz start`: their flags, the settings they parse into, and the
 * starting corpus.
 */

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
export const DEFAULT_CORPUS = join('corpus', 'seeds');

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
