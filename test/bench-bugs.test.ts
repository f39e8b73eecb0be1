import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BENCH_BUGS, type BenchBug, type BenchBugBuilds } from '../bench/bugs/registry.js';
import { validateBuildFile } from '../src/model/migration/build-file.js';
import { type BuildRegistry, builtinRegistry } from '../src/model/migration/builds.js';
import { validateSchedule } from '../src/model/schedule/validate.js';
import { knownCause } from '../src/oracles/known.js';
import { judge } from '../src/oracles/verdict.js';

/**
 * The benchmark of real bugs (bench/bugs/registry.ts): each witness schedule, run on the buggy
 * builds, has a finding matching the bug's signature, and a known cause explains it; the same
 * schedule on the fixed builds (each buggy build replaced by its fixed counterpart, in list
 * order) has none.
 */

const ROOT = fileURLToPath(new URL('../', import.meta.url));

function registryOf(builds: BenchBugBuilds): BuildRegistry {
  const base = builtinRegistry();
  return builds.buildFile ? validateBuildFile(builds.buildFile, base) : base;
}

type Doc = { src: { build: string }; dst: { build: string } } & Record<string, unknown>;

function witness(bug: BenchBug): Doc {
  return JSON.parse(readFileSync(`${ROOT}${bug.witness}`, 'utf8')) as Doc;
}

/** The witness with each buggy build replaced by the fixed build at its position (or the last). */
function onFixed(bug: BenchBug, doc: Doc): Doc {
  const map = (name: string): string => {
    const i = bug.buggy.allowed.indexOf(name);
    const { allowed } = bug.fixed;
    return allowed[Math.min(i, allowed.length - 1)]!;
  };
  return {
    ...doc,
    src: { ...doc.src, build: map(doc.src.build) },
    dst: { ...doc.dst, build: map(doc.dst.build) },
  };
}

function run(doc: Doc, builds: BenchBugBuilds) {
  const registry = registryOf(builds);
  const schedule = validateSchedule(doc, registry);
  return { schedule, registry, verdict: judge(schedule, { builds: registry }) };
}

describe('bench/bugs: the real-bug benchmark', () => {
  it('has at least ten historical bugs beyond the two seeds, with unique ids and provenance', () => {
    const ids = BENCH_BUGS.map((b) => b.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(BENCH_BUGS.length).toBeGreaterThanOrEqual(12);
    for (const b of BENCH_BUGS) {
      expect(b.provenance).toMatch(/[0-9a-f]{7,40}|Launchpad|BZ|QEMU \d/);
      expect(b.account.length).toBeGreaterThan(120);
    }
  });

  it('only bugs whose witness needs a hostile source are left out of the power table', () => {
    for (const b of BENCH_BUGS) {
      const doc = JSON.parse(readFileSync(`${ROOT}${b.witness}`, 'utf8')) as {
        steps: { hostile?: object }[];
      };
      const hostile = doc.steps.some((st) => st.hostile !== undefined);
      expect(b.needsHostileSource === true, b.id).toBe(hostile);
    }
  });

  it.each(BENCH_BUGS.map((b) => [b.id, b] as const))(
    '%s: the witness only uses the buggy builds',
    (_id, bug) => {
      const doc = witness(bug);
      expect(bug.buggy.allowed).toContain(doc.src.build);
      expect(bug.buggy.allowed).toContain(doc.dst.build);
    },
  );

  it.each(BENCH_BUGS.map((b) => [b.id, b] as const))(
    '%s: found on the buggy builds (a known cause), not on the fixed ones',
    (_id, bug) => {
      const buggy = run(witness(bug), bug.buggy);
      const found = buggy.verdict.findings.filter((f) => bug.signature.test(f.signature));
      expect(
        found.map((f) => f.signature),
        buggy.verdict.findings.map((f) => f.signature).join(', '),
      ).not.toEqual([]);
      for (const f of found) expect(knownCause(f, buggy.schedule, buggy.registry)?.name).toBeDefined();

      const fixed = run(onFixed(bug, witness(bug)), bug.fixed);
      expect([fixed.schedule.src.build, fixed.schedule.dst.build]).not.toEqual([
        buggy.schedule.src.build,
        buggy.schedule.dst.build,
      ]);
      expect(fixed.verdict.findings.map((f) => f.signature).filter((s) => bug.signature.test(s))).toEqual([]);
    },
  );
});
