import { renameSync, writeFileSync } from 'node:fs';
import { builtinRegistry } from '../../src/model/migration/builds.js';
import type { Schedule } from '../../src/model/schedule/types.js';
import { judge } from '../../src/oracles/verdict.js';
import { PLANTED, type PlantedBug } from './planted.js';
import {
  DEEP_EXECS,
  type Find,
  fmt,
  isDeep,
  median,
  SEARCHERS,
  type Searcher,
  search,
  worst,
} from './search.js';

/**
 * `npm run power`: every planted bug (planted.ts) searched by the guided campaign on the
 * modern build (qemu-9.2 to itself) from an empty corpus, one campaign of at most 60 s per
 * seed, until a finding that counts: one the shipped model does not give on the same
 * schedule. Prints the table (found / missed, executions and seconds to find) and writes
 * bench/power/results.json. `-- --quick`: 3 seeds of at most 10 s each; `-- --seeds N`,
 * `-- --seconds N` and `-- --only ID` narrow it; `-- --compare` also runs the two unguided
 * searchers (--no-coverage, fc.check) on each planted bug, under the same budget.
 */
const argv = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const quick = argv.includes('--quick');
const seeds = Number(option('--seeds') ?? (quick ? 3 : 10));
const seconds = Number(option('--seconds') ?? (quick ? 10 : 60));
const only = option('--only');
const searchers: readonly Searcher[] = argv.includes('--compare') ? SEARCHERS : ['guided'];

const builds = builtinRegistry();
const ALLOWED = ['qemu-9.2'];

/** Whether a finding of the planted model is the planted bug: the shipped model lacks it. */
function plantedCounts(): (f: { signature: string }, s: Schedule) => boolean {
  const shipped = new Map<Schedule, Set<string>>();
  return (f, s) => {
    let sigs = shipped.get(s);
    if (!sigs) {
      sigs = new Set(judge(s, { builds }).findings.map((x) => x.signature));
      shipped.set(s, sigs);
    }
    return !sigs.has(f.signature);
  };
}

interface Row {
  bug: PlantedBug;
  finds: Record<Searcher, Find[]>;
}

const rows: Row[] = [];
for (const bug of PLANTED) {
  if (only && bug.id !== only) continue;
  const finds = {} as Record<Searcher, Find[]>;
  for (const searcher of searchers) {
    finds[searcher] = [];
    for (let seed = 1; seed <= seeds; seed++) {
      finds[searcher].push(
        search(
          searcher,
          seed,
          { builds, allowed: ALLOWED, patchLoad: bug.patch, counts: plantedCounts() },
          { maxExecs: Number.MAX_SAFE_INTEGER, maxSeconds: seconds },
        ),
      );
    }
    const found = finds[searcher].filter((f) => Number.isFinite(f.execs)).length;
    console.error(`${bug.id}, ${searcher}: found ${found}/${seeds}`);
  }
  rows.push({ bug, finds });
}

const execsCell = (fs: Find[]): string =>
  `${fmt(median(fs.map((f) => f.execs)))} / ${fmt(worst(fs.map((f) => f.execs)))}`;
const foundCell = (fs: Find[]): string => `${fs.filter((f) => Number.isFinite(f.execs)).length}/${fs.length}`;
const unguided = searchers.filter((s) => s !== 'guided');
console.log(
  `\n**Planted bugs** (qemu-9.2 → qemu-9.2, empty corpus, ${seeds} seeds of at most ${seconds} s each)\n`,
);
console.log(
  `| planted bug | area | effect | found | executions (median / worst) | seconds (median / worst) |${unguided
    .map((s) => ` ${s}: found | ${s}: executions |`)
    .join('')}\n|---|---|---|---:|---:|---:|${unguided.map(() => '---:|---:|').join('')}`,
);
for (const { bug, finds } of rows) {
  const g = finds.guided;
  const t = g.map((f) => f.seconds);
  console.log(
    `| ${bug.id} | ${bug.area} | ${bug.effect} | ${foundCell(g)} | ${execsCell(g)} | ` +
      `${fmt(median(t))} / ${fmt(worst(t))} |${unguided.map((s) => ` ${foundCell(finds[s])} | ${execsCell(finds[s])} |`).join('')}`,
  );
}
// Unguided over guided executions (medians): what guidance is worth, on the bugs deep enough
// for the two campaigns to run different inputs (search.ts, DEEP_EXECS).
if (searchers.includes('no-coverage')) {
  const ratioOf = (r: Row): number =>
    median(r.finds['no-coverage'].map((f) => f.execs)) / median(r.finds.guided.map((f) => f.execs));
  console.log(
    `\nno-coverage / guided executions (medians): ${rows.map((r) => `${r.bug.id} ${fmt(ratioOf(r))}×`).join(', ')}`,
  );
  const deep = rows.filter((r) => isDeep(r.finds['no-coverage']));
  if (deep.length > 0)
    console.log(
      `deeper than ${DEEP_EXECS.toLocaleString('en-US')} unguided executions (${deep.map((r) => r.bug.id).join(', ')}): ${fmt(median(deep.map(ratioOf)))}× (median of the ratios)`,
    );
}
const bugsFound = rows.filter((r) => r.finds.guided.every((f) => Number.isFinite(f.execs))).length;
console.log(`\nfound on every seed: ${bugsFound} of ${rows.length} planted bugs`);

const file = new URL('../../../bench/power/results.json', import.meta.url).pathname;
const out = {
  quick,
  seeds,
  seconds,
  node: process.version,
  bugs: rows.map(({ bug, finds }) => ({
    id: bug.id,
    area: bug.area,
    effect: bug.effect,
    needs: bug.needs,
    finds: Object.fromEntries(
      Object.entries(finds).map(([searcher, fs]) => [
        searcher,
        fs.map((f) => ({
          execs: Number.isFinite(f.execs) ? f.execs : null,
          seconds: Number.isFinite(f.seconds) ? f.seconds : null,
        })),
      ]),
    ),
  })),
};
writeFileSync(`${file}.tmp`, `${JSON.stringify(out, null, 1)}\n`);
renameSync(`${file}.tmp`, file);
console.log('written to bench/power/results.json');
