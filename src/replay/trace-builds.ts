/**
 * The builds a trace records so that it replays on its own: a builtin build by name (its
 * definition comes with migfuzz), a user build (`--builds FILE`) in full.
 */

import { BuildFileError, validateBuildFile } from '../model/migration/build-file.js';
import {
  BUILTIN_BUILDS,
  type Build,
  type BuildRegistry,
  builtinRegistry,
  REVISION_CHOICES,
} from '../model/migration/builds.js';
import type { Schedule } from '../model/schedule/types.js';
import { indexPath, type JsonReader } from '../model/util/json-reader.js';
import { quote } from '../model/util/text.js';
import { MAX_TRACE_BUILDS, type TraceBuild, TraceFormatError } from './format.js';

/**
 * Revision switches a recorded user build must give. Later ones (REVISION_CHOICES) may be
 * absent in traces that predate them; those take the base build's value.
 */
const REVISION_KEYS = [
  'virtioSerialPortOpen',
  'serialSubsections',
  'serialPostLoadChecks',
  'serialGatedPre22',
  'lapicLoad',
] as const;
/** Switches added later, and what a trace without them ran with. */
const LATER_REVISIONS = {
  vmClockAtCreation: 'disabled',
  serialVmsd: 'isa',
  virtioQueueSelCheck: 'fail-load',
} as const;

/** The builds `schedule` names (src, then dst if different), as the trace records them. */
export function traceBuilds(schedule: Schedule, registry: BuildRegistry): TraceBuild[] {
  const names = [schedule.src.build];
  if (schedule.dst.build !== schedule.src.build) names.push(schedule.dst.build);
  return names.map((name) => {
    const build = registry.get(name);
    if (build === undefined) throw new Error(`trace recorder: build ${name} is not in the registry`);
    const builtin = BUILTIN_BUILDS.find((b) => b.name === name);
    if (builtin !== undefined && sameBuild(builtin, build)) return { name, builtin: true };
    return { name, builtin: false, revisions: build.revisions, machines: build.machines };
  });
}

function sameBuild(x: Build, y: Build): boolean {
  return x === y || JSON.stringify(buildJson(x)) === JSON.stringify(buildJson(y));
}

function buildJson(b: Build): object {
  return { name: b.name, revisions: revisionsJson(b), machines: b.machines.map((m) => ({ ...m })) };
}

function revisionsJson(b: Build): object {
  const r = b.revisions;
  return {
    virtioSerialPortOpen: r.virtioSerialPortOpen,
    serialSubsections: [...r.serialSubsections],
    serialPostLoadChecks: r.serialPostLoadChecks,
    serialGatedPre22: [...r.serialGatedPre22],
    lapicLoad: r.lapicLoad,
    ...Object.fromEntries(
      Object.keys(REVISION_CHOICES).map((k) => [k, r[k as keyof typeof REVISION_CHOICES]]),
    ),
  };
}

export function traceBuildToJson(b: TraceBuild): object {
  if (b.builtin) return { name: b.name, builtin: true };
  return {
    name: b.name,
    revisions: revisionsJson({ name: b.name, revisions: b.revisions, machines: b.machines }),
    machines: b.machines.map((m) => ({ name: m.name, migratePre22: m.migratePre22 })),
  };
}

/** The registry a trace's schedule runs with: the builtin builds plus the trace's own. */
export function registryOf(builds: readonly TraceBuild[]): BuildRegistry {
  const registry = new Map(builtinRegistry());
  for (const b of builds) {
    if (!b.builtin) registry.set(b.name, { name: b.name, revisions: b.revisions, machines: b.machines });
  }
  return registry;
}

/** Validates the trace's `builds` (untrusted); user definitions go through the build-file checks. */
export function readTraceBuilds(input: JsonReader, v: unknown): TraceBuild[] {
  const items = input.array(v, 'builds', MAX_TRACE_BUILDS, 'builds');
  if (items.length === 0) input.fail('builds', 'expected at least one build');
  const out: TraceBuild[] = [];
  items.forEach((item, i) => {
    const path = indexPath('builds', i);
    const obj = input.object(item, path);
    const name = input.need(obj, 'name', path, 'a build name');
    if (typeof name !== 'string') input.fail(`${path}.name`, 'expected a build name');
    if (out.some((b) => b.name === name)) input.fail(`${path}.name`, `duplicate build ${quote(name)}`);
    if (obj.builtin !== undefined) {
      input.onlyFields(obj, path, ['name', 'builtin']);
      if (obj.builtin !== true) input.fail(`${path}.builtin`, 'expected true');
      if (!BUILTIN_BUILDS.some((b) => b.name === name)) {
        input.fail(`${path}.name`, `${quote(name)} is not a builtin build of this migfuzz`);
      }
      out.push({ name, builtin: true });
      return;
    }
    input.onlyFields(obj, path, ['name', 'revisions', 'machines']);
    const revisions = input.object(
      input.need(obj, 'revisions', path, 'every revision switch'),
      `${path}.revisions`,
    );
    for (const key of REVISION_KEYS) input.need(revisions, key, `${path}.revisions`, 'a value');
    input.need(obj, 'machines', path, 'the machine types');
    out.push(readUserBuild(name, { ...LATER_REVISIONS, ...revisions }, obj.machines, path));
  });
  return out;
}

/** A full user build definition, checked by the build-file reader (any base: every field is given). */
function readUserBuild(name: string, revisions: unknown, machines: unknown, path: string): TraceBuild {
  const base = BUILTIN_BUILDS.find((b) => b.name !== name)!;
  let registry: BuildRegistry;
  try {
    registry = validateBuildFile(
      { builds: [{ name, base: base.name, revisions, machines }] },
      new Map([[base.name, base]]),
    );
  } catch (e) {
    if (e instanceof BuildFileError) {
      const m = e.message;
      throw new TraceFormatError(
        m.startsWith('builds[0]') ? path + m.slice('builds[0]'.length) : `${path}: ${m}`,
      );
    }
    throw e;
  }
  const build = registry.get(name)!;
  return { name, builtin: false, revisions: build.revisions, machines: build.machines };
}
