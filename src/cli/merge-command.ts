import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { mergeInputs } from '../fuzz/merge.js';
import type { BuildRegistry } from '../model/migration/builds.js';
import type { Schedule } from '../model/schedule/types.js';
import { parseSchedule, scheduleToJson } from '../model/schedule/validate.js';
import { flagString, type ParsedArgs, parseArgs, UsageError } from './args.js';
import { makeDirs, writeFileAtomic } from './replay-commands.js';

/**
 * `migfuzz corpus merge OUT_DIR... --into DIR`: libFuzzer's merge for campaigns run apart
 * (CI shards, the instances of a sync dir). DIR gets the fewest queue entries that keep the
 * union's coverage (src/fuzz/merge.ts), and each finding once: of the directories saved
 * under one signature, the one whose shrunk schedule has the fewest steps.
 */

export class MergeInputError extends Error {
  override readonly name = 'MergeInputError';
}

/** A campaign directory, or each campaign of a sync directory. */
function campaigns(dir: string): string[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new MergeInputError(`${dir}: not a directory`);
  if (existsSync(join(dir, 'queue'))) return [dir];
  const subs = readdirSync(dir)
    .sort()
    .map((d) => join(dir, d))
    .filter((d) => statSync(d).isDirectory() && existsSync(join(d, 'queue')));
  if (subs.length === 0)
    throw new MergeInputError(`${dir}: no campaign here (no queue/ in it or its subdirectories)`);
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

export function cmdCorpusMerge(argv: string[], loadBuilds: (a: ParsedArgs) => BuildRegistry): number {
  const a = parseArgs(argv, ['--into', '--builds'], ['--json']);
  const into = flagString(a, '--into');
  if (into === undefined) throw new UsageError('corpus merge needs --into DIR');
  if (a.positionals.length === 0) throw new UsageError('corpus merge needs at least one OUT_DIR');
  if (existsSync(join(into, 'queue')))
    throw new MergeInputError(`${into}: already holds a queue; merge into a new directory`);
  const builds = loadBuilds(a);
  const dirs = a.positionals.flatMap(campaigns);
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
  if (a.flags.has('--json')) console.log(JSON.stringify(summary));
  else {
    console.log(
      `merged ${dirs.length} campaign(s) into ${into}: ${kept.length} of ${inputs.length} queue entries keep coverage ${covered}${unreadable ? ` (${unreadable} unreadable skipped)` : ''}; ${best.size} finding(s), one per signature`,
    );
  }
  return 0;
}
