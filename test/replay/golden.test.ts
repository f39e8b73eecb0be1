import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GOLDEN, goldenTimeline, regenGolden } from '../../src/cli/replay-commands.js';
import { builtinRegistry } from '../../src/model/migration/builds.js';
import { scheduleToJson } from '../../src/model/schedule/to-json.js';
import { TOOL_VERSION } from '../../src/replay/format.js';
import { recordRun } from '../../src/replay/record.js';
import { replayTrace } from '../../src/replay/replay.js';
import { decodeTrace } from '../../src/replay/trace.js';
import { ROOT, seedSchedule } from './helpers.js';
import { unifiedDiff } from './text-diff.js';

/**
 * Golden traces (corpus/regressions/bug-a.mpk, bug-b.mpk): the recorded runs of the two seed
 * bugs. Any change to the model that alters their executed events or verdicts fails here, with
 * a unified diff of the timeline text committed beside each trace; when the change is meant,
 * `UPDATE_GOLDEN=1 npx vitest run test/replay/golden.test.ts` (or `npm run regen-golden`)
 * records them again, and the text diff is what gets reviewed.
 */
if (process.env.UPDATE_GOLDEN === '1') {
  const cwd = process.cwd();
  process.chdir(ROOT);
  try {
    regenGolden();
  } finally {
    process.chdir(cwd);
  }
}

describe('golden traces', () => {
  it('one per seed bug, in corpus/regressions/', () => {
    expect(GOLDEN.map((g) => g.trace)).toEqual([
      'corpus/regressions/bug-a.mpk',
      'corpus/regressions/bug-b.mpk',
    ]);
    for (const g of GOLDEN) expect(existsSync(`${ROOT}${g.trace}`)).toBe(true);
  });

  it.each(GOLDEN)('$trace replays identically (else: npm run regen-golden, if the change is meant)', (g) => {
    const t = decodeTrace(readFileSync(`${ROOT}${g.trace}`));
    const r = replayTrace(t);
    const where = r.divergence ? `first divergent event #${r.divergence.index}` : 'verdict differs';
    expect(r.identical, `${g.trace}: ${where}`).toBe(true);
    expect(t.verdict.findings.length).toBeGreaterThan(0);
  });

  it.each(GOLDEN)('$timeline is the timeline of a run of its schedule today', (g) => {
    const name = g.schedule.replace(/^corpus\/seeds\/|\.json$/g, '');
    const now = goldenTimeline(recordRun(seedSchedule(name), builtinRegistry()));
    const committed = readFileSync(`${ROOT}${g.timeline}`, 'utf8');
    const diff = unifiedDiff(committed, now, g.timeline);
    expect(diff, `the model's events changed (UPDATE_GOLDEN=1 if meant):\n${diff}`).toBe('');
  });

  it('the diff names the first divergent event', () => {
    const diff = unifiedDiff('a\nb\nc\nd\n', 'a\nb\nX\nd\n', 'f.txt', 1);
    expect(diff.split('\n')).toEqual([
      '--- f.txt (committed)',
      '+++ f.txt (this run)',
      '@@ -2,3 +2,3 @@',
      ' b',
      '-c',
      '+X',
      ' d',
    ]);
  });

  it.each(GOLDEN)('$trace holds the seed schedule it was recorded from', (g) => {
    const t = decodeTrace(readFileSync(`${ROOT}${g.trace}`));
    const name = g.schedule.replace(/^corpus\/seeds\/|\.json$/g, '');
    expect(scheduleToJson(t.schedule)).toEqual(scheduleToJson(seedSchedule(name)));
  });

  it('package.json has the regen-golden script and the tool version of the traces', () => {
    const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as {
      version: string;
      scripts: Record<string, string>;
    };
    expect(pkg.scripts['regen-golden']).toContain('regenGolden');
    expect(pkg.version).toBe(TOOL_VERSION);
  });
});
