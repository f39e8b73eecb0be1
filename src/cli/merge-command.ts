import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { mergeInputs } from '../fuzz/merge.js';
import type { BuildRegistry } from '../model/migration/builds.js';
import { scheduleToJson } from '../model/schedule/to-json.js';
import type { Schedule } from '../model/schedule/types.js';
import { parseSchedule } from '../model/schedule/validate.js';
import { UsageError } from './args.js';
import { InputError } from './exit-codes.js';
import { bool, type CommandSpec, parseFlags, text } from './flags.js';
import { makeDirs, writeFileAtomic } from './fs.js';

/**
 * `migfuzz corpus merge OUT_DIR... --into DIR`: libFuzzer's merge for campaigns run apart
 * (CI shards, the instances of a sync dir). DIR gets the fewest queue entries that keep the
 * union's coverage (src/fuzz/merge.ts), and each finding once: of the directories saved
 * under one signature, the one whose shrunk schedule has the fewest steps.
 */

const MERGE_FLAGS = {
  into: text('DIR', 'the new campaign directory to write (queue/, crashes/, hangs/)'),
  builds: text('FILE', 'a build file adding builds of your own'),
  json: bool('print one JSON object: campaigns, inputs, kept, coverage, findings'),
};

export const CORPUS_MERGE: CommandSpec<typeof MERGE_FLAGS> = {
  name: 'corpus merge',
  args: 'OUT_DIR...',
  summary:
    "merge campaigns run apart (CI shards, a sync dir's instances) like libFuzzer's -merge=1: the fewest queue entries that keep the union's coverage, and each finding once with its shortest shrunk reproducer",
  flags: MERGE_FLAGS,
  examples: [
    'npx migfuzz corpus merge shard-0 shard-1 --into merged',
    'npx migfuzz corpus merge sync/ --into merged',
  ],
};

/** A campaign directory, or each campaign of a sync directory. */
function campaigns(dir: string): string[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new InputError(`${dir}: not a directory`);
  if (existsSync(join(dir, 'queue'))) return [dir];
  const subs = readdirSync(dir)
    .sort()
    .map((d) => join(dir, d))
    .filter((d) => statSync(d).isDirectory() && existsSync(join(d, 'queue')));
  if (subs.length === 0)
    throw new InputError(`${dir}: no campaign here (no queue/ in it or its subdirectories)`);
  return subs;
}

interface Saved {
  sub: string;
  dir: string;
  steps: number;
}

function shrunkSteps(dir: string): number {
  try {
    const doc = JSON.parse(readFileSync(join(dir, 'shrunk.json'), 'utf8')) as { steps?: unknown[] };
    return Array.isArray(doc.steps) ? doc.steps.length : Number.POSITIVE_INFINITY;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

/** `corpus merge`'s arguments: the campaign directories and --into (usage errors thrown). */
export function mergeArgs(argv: readonly string[]): {
  dirs: string[];
  into: string;
  builds: string | undefined;
  json: boolean;
} {
  const a = parseFlags(argv, CORPUS_MERGE.flags);
  const into = a.flags.into;
  if (into === undefined) throw new UsageError('corpus merge needs --into DIR');
  if (a.positionals.length === 0) throw new UsageError('corpus merge needs at least one OUT_DIR');
  return { dirs: a.positionals, into, builds: a.flags.builds, json: a.flags.json };
}

export function cmdCorpusMerge(
  argv: string[],
  loadBuilds: (file: string | undefined) => BuildRegistry,
): number {
  const { dirs: given, into, builds: buildsFile, json } = mergeArgs(argv);
  if (existsSync(join(into, 'queue')))
    throw new InputError(`${into}: already holds a queue; merge into a new directory`);
  const builds = loadBuilds(buildsFile);
  const dirs = given.flatMap(campaigns);
  const inputs: Schedule[] = [];
  const origin: string[] = [];
  let unreadable = 0;
  for (const c of dirs) {
    for (const name of readdirSync(join(c, 'queue')).sort()) {
      if (!name.endsWith('.json')) continue;
      try {
        inputs.push(parseSchedule(readFileSync(join(c, 'queue', name), 'utf8'), builds));
        origin.push(basename(c));
      } catch {
        unreadable++;
      }
    }
  }
  const { kept, covered } = mergeInputs(inputs, builds);
  makeDirs(join(into, 'queue'));
  kept.forEach((i, n) => {
    const name = `id:${String(n).padStart(6, '0')},merge:${origin[i]!.replace(/[^A-Za-z0-9._-]/g, '_')}.json`;
    writeFileAtomic(join(into, 'queue', name), `${JSON.stringify(scheduleToJson(inputs[i]!), null, 1)}\n`, {
      durable: false,
    });
  });
  // Findings: one directory per signature, the shortest shrunk reproducer.
  const best = new Map<string, Saved>();
  for (const c of dirs) {
    for (const sub of ['crashes', 'hangs']) {
      if (!existsSync(join(c, sub))) continue;
      for (const sig of readdirSync(join(c, sub)).sort()) {
        const dir = join(c, sub, sig);
        if (!existsSync(join(dir, 'finding.json'))) continue; // not complete: a writer died
        const s: Saved = { sub, dir, steps: shrunkSteps(dir) };
        const key = join(sub, sig);
        const b = best.get(key);
        if (!b || s.steps < b.steps) best.set(key, s);
      }
    }
  }
  for (const [key, s] of best) {
    const to = join(into, key);
    makeDirs(to);
    // finding.json last: its presence says the directory is whole.
    const files = readdirSync(s.dir)
      .filter((f) => statSync(join(s.dir, f)).isFile() && !f.includes('.tmp-'))
      .sort((x, y) => Number(x === 'finding.json') - Number(y === 'finding.json'));
    for (const f of files) writeFileAtomic(join(to, f), readFileSync(join(s.dir, f)));
  }
  const summary = {
    campaigns: dirs.length,
    inputs: inputs.length,
    unreadable,
    kept: kept.length,
    coverage: covered,
    findings: [...best.keys()].sort(),
  };
  if (json) console.log(JSON.stringify(summary));
  else {
    console.log(
      `merged ${dirs.length} campaign(s) into ${into}: ${kept.length} of ${inputs.length} queue entries keep coverage ${covered}${unreadable ? ` (${unreadable} unreadable skipped)` : ''}; ${best.size} finding(s), one per signature`,
    );
  }
  return 0;
}
