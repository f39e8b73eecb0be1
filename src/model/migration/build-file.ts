/**
 * User builds from a JSON file: each a base build plus revision switches and, optionally,
 * its own machine types. `{"builds": [{"name", "base", "revisions"?, "machines"?}]}`; a
 * later entry may use an earlier one as its base. Bad input is a BuildFileError with one
 * line naming where and what, like schedules (the reader is shared with them).
 */

import { errorText } from '../schedule/validate.js';
import { fieldPath, indexPath, type JsonObject, JsonReader, typeName } from '../util/json-reader.js';
import { oneLine, quote } from '../util/text.js';
import {
  type Build,
  type BuildRegistry,
  type MachineType,
  REVISION_CHOICES,
  type Revisions,
  SERIAL_SUBSECTIONS,
  type SerialSubsection,
} from './builds.js';

export class BuildFileError extends Error {
  override readonly name = 'BuildFileError';
}

export const MAX_USER_BUILDS = 64;
export const MAX_MACHINES = 256;

/** Build and machine names appear in CLI lists (`--builds a,b`) and messages: keep them tame. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;
const NAME_EXPECTED =
  'a name of 1 to 64 letters, digits, ".", "_", "+" or "-", starting with a letter or digit';

const REVISION_FIELDS: readonly (keyof Revisions)[] = [
  'virtioSerialPortOpen',
  'serialSubsections',
  'serialPostLoadChecks',
  'serialGatedPre22',
  'lapicLoad',
  ...(Object.keys(REVISION_CHOICES) as (keyof typeof REVISION_CHOICES)[]),
];

export function parseBuildFile(text: string, base: BuildRegistry): BuildRegistry {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new BuildFileError(oneLine(`build file: not valid JSON (${errorText(e)})`));
  }
  return validateBuildFile(doc, base);
}

/** The registry `base` plus the file's builds (a new Map; `base` is left alone). */
export function validateBuildFile(doc: unknown, base: BuildRegistry): BuildRegistry {
  const input = new JsonReader('build file', (line) => new BuildFileError(line));
  try {
    return readBuildFile(input, doc, base);
  } catch (e) {
    if (e instanceof BuildFileError) throw e;
    // Only exotic non-JSON input gets here (a throwing getter, a revoked Proxy).
    throw new BuildFileError(oneLine(`build file: unreadable input (${errorText(e)})`));
  }
}

function readBuildFile(input: JsonReader, doc: unknown, base: BuildRegistry): BuildRegistry {
  const obj = input.object(doc, '');
  input.onlyFields(obj, '', ['builds']);
  const entries = input.array(
    input.need(obj, 'builds', '', 'an array of builds'),
    'builds',
    MAX_USER_BUILDS,
    'builds',
  );
  const registry = new Map(base);
  entries.forEach((entry, i) => {
    const build = readBuild(input, entry, indexPath('builds', i), registry);
    registry.set(build.name, build);
  });
  return registry;
}

function readBuild(input: JsonReader, v: unknown, path: string, registry: BuildRegistry): Build {
  const obj = input.object(v, path);
  input.onlyFields(obj, path, ['name', 'base', 'revisions', 'machines']);
  const name = input.string(
    input.need(obj, 'name', path, 'a build name'),
    fieldPath(path, 'name'),
    NAME,
    NAME_EXPECTED,
  );
  if (registry.has(name)) input.fail(fieldPath(path, 'name'), `build ${quote(name)} already exists`);
  const baseName = input.need(obj, 'base', path, 'the name of an existing build');
  if (typeof baseName !== 'string') {
    input.fail(fieldPath(path, 'base'), `expected a build name, got ${typeName(baseName)}`);
  }
  const base = registry.get(baseName);
  if (base === undefined) input.fail(fieldPath(path, 'base'), `unknown build ${quote(baseName)}`);
  const revisions =
    obj.revisions === undefined
      ? base.revisions
      : readRevisions(input, obj.revisions, fieldPath(path, 'revisions'), base.revisions);
  const machines =
    obj.machines === undefined
      ? base.machines
      : readMachines(input, obj.machines, fieldPath(path, 'machines'));
  return { name, revisions, machines };
}

function readRevisions(input: JsonReader, v: unknown, path: string, base: Revisions): Revisions {
  const obj = input.object(v, path);
  input.onlyFields(obj, path, REVISION_FIELDS);
  const at = (key: keyof Revisions): string => fieldPath(path, key);
  const out: Revisions = { ...base };
  if (obj.virtioSerialPortOpen !== undefined) {
    out.virtioSerialPortOpen = input.oneOf(obj.virtioSerialPortOpen, at('virtioSerialPortOpen'), [
      'never',
      'in-load',
      'timer',
    ] as const);
  }
  if (obj.serialSubsections !== undefined) {
    out.serialSubsections = readSubsections(input, obj.serialSubsections, at('serialSubsections'));
  }
  if (obj.serialPostLoadChecks !== undefined) {
    out.serialPostLoadChecks = input.bool(obj.serialPostLoadChecks, at('serialPostLoadChecks'));
  }
  if (obj.serialGatedPre22 !== undefined) {
    out.serialGatedPre22 = readSubsections(input, obj.serialGatedPre22, at('serialGatedPre22'));
  }
  if (obj.lapicLoad !== undefined) {
    out.lapicLoad = input.oneOf(obj.lapicLoad, at('lapicLoad'), ['end-of-load', 'post-load'] as const);
  }
  for (const key of Object.keys(REVISION_CHOICES) as (keyof typeof REVISION_CHOICES)[]) {
    if (obj[key] !== undefined)
      Object.assign(out, { [key]: input.oneOf(obj[key], at(key), REVISION_CHOICES[key]) });
  }
  return out;
}

function readSubsections(input: JsonReader, v: unknown, path: string): SerialSubsection[] {
  const out: SerialSubsection[] = [];
  const items = input.array(v, path, SERIAL_SUBSECTIONS.length, 'subsection names');
  items.forEach((item, i) => {
    const name = input.oneOf(item, indexPath(path, i), SERIAL_SUBSECTIONS);
    if (out.includes(name)) input.fail(indexPath(path, i), `duplicate subsection ${quote(name)}`);
    out.push(name);
  });
  return out;
}

function readMachines(input: JsonReader, v: unknown, path: string): MachineType[] {
  const items = input.array(v, path, MAX_MACHINES, 'machine types');
  // A build without machine types could never run anything: surely a mistake.
  if (items.length === 0) input.fail(path, 'expected at least one machine type');
  const out: MachineType[] = [];
  items.forEach((item, i) => {
    const machine = readMachine(input, item, indexPath(path, i));
    if (out.some((m) => m.name === machine.name)) {
      input.fail(fieldPath(indexPath(path, i), 'name'), `duplicate machine type ${quote(machine.name)}`);
    }
    out.push(machine);
  });
  return out;
}

function readMachine(input: JsonReader, v: unknown, path: string): MachineType {
  const obj: JsonObject = input.object(v, path);
  input.onlyFields(obj, path, ['name', 'migratePre22']);
  const name = input.string(
    input.need(obj, 'name', path, 'a machine type name'),
    fieldPath(path, 'name'),
    NAME,
    NAME_EXPECTED,
  );
  // Absent: an upstream machine type (the RHEL pre-2.2 global is the exception).
  const pre22 =
    obj.migratePre22 === undefined ? false : input.bool(obj.migratePre22, fieldPath(path, 'migratePre22'));
  return { name, migratePre22: pre22 };
}
