/**
 * Compares two `-dump-vmstate` JSON files as QEMU's scripts/vmstate-static-checker.py does,
 * with its messages: sections missing in the destination, version and minimum-version
 * errors, fields added or removed without a version bump ("expected field ... got ..."), size
 * mismatches (unused buffers may be split or merged), descriptions and subsections the
 * destination lacks. Works on QEMU's dumps and on migfuzz's (src/vmstate/dump.ts). Unlike the
 * script it has no list of fields QEMU renamed over the years, it also reports a
 * minimum-version error at the top level (the script's indentation drops that one), and when
 * the destination has no subsections at all it names each one it would not find.
 */
import type { DumpDesc, DumpField } from './dump.js';

export class DumpFormatError extends Error {
  override readonly name = 'DumpFormatError';
}

type Json = Record<string, unknown>;
const isObject = (x: unknown): x is Json => typeof x === 'object' && x !== null && !Array.isArray(x);

/** The shape the checker relies on, validated so that a bad file is one clear error. */
export function parseDump(text: string): Record<string, Json> {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new DumpFormatError(`not JSON (${(e as Error).message})`);
  }
  if (!isObject(j)) throw new DumpFormatError('not a -dump-vmstate object');
  const checkDesc = (d: unknown, where: string, depth: number): void => {
    if (depth > 32) throw new DumpFormatError(`${where}: descriptions nested too deep`);
    if (!isObject(d) || typeof d.name !== 'string' || typeof d.version_id !== 'number')
      throw new DumpFormatError(`${where}: a description needs "name" and "version_id"`);
    for (const key of ['Fields', 'Subsections'] as const) {
      if (d[key] !== undefined && !Array.isArray(d[key]))
        throw new DumpFormatError(`${where}: "${key}" is not a list`);
    }
    for (const f of (d.Fields ?? []) as unknown[]) {
      if (
        !isObject(f) ||
        typeof f.field !== 'string' ||
        typeof f.version_id !== 'number' ||
        typeof f.size !== 'number'
      )
        throw new DumpFormatError(`${where}: a field needs "field", "version_id" and "size"`);
      if (f.Description !== undefined) checkDesc(f.Description, `${where}.${f.field}`, depth + 1);
    }
    for (const s of (d.Subsections ?? []) as unknown[]) checkDesc(s, where, depth + 1);
  };
  for (const [name, sec] of Object.entries(j)) {
    if (!isObject(sec)) throw new DumpFormatError(`section "${name}" is not an object`);
    if (name === 'vmschkmachine') {
      if (typeof sec.Name !== 'string') throw new DumpFormatError('vmschkmachine has no "Name"');
      continue;
    }
    if (typeof sec.version_id !== 'number') throw new DumpFormatError(`section "${name}" has no version_id`);
    if (sec.Description !== undefined) checkDesc(sec.Description, name, 0);
  }
  return j as Record<string, Json>;
}

export interface DiffResult {
  /** One line per difference (each bumps the script's taint count). */
  errors: string[];
  warnings: string[];
}

interface Versioned {
  version_id: number;
  minimum_version_id?: number;
}

/** The substruct's first field is the one src expects: a move into a struct (wire format kept). */
function existsInSubstruct(f: DumpField, name: string): boolean {
  const first = f.Description?.Fields?.[0];
  return first !== undefined && first.field === name;
}

class Checker {
  readonly errors: string[] = [];

  version(s: Versioned, d: Versioned, sec: string, desc?: string): void {
    const where = desc ? `Section "${sec}" Description "${desc}":` : `Section "${sec}"`;
    if (s.version_id > d.version_id)
      this.errors.push(`${where} version error: ${s.version_id} > ${d.version_id}`);
    if (d.minimum_version_id !== undefined && s.version_id < d.minimum_version_id)
      this.errors.push(`${where} minimum version error: ${s.version_id} < ${d.minimum_version_id}`);
  }

  /** check_fields: walk both lists in step, entering substructs and matching unused buffers. */
  fields(src: DumpField[], dest: DumpField[], desc: string, sec: string): void {
    const sStack: DumpField[][] = [];
    const dStack: DumpField[][] = [];
    let sList = src.slice();
    let dList = dest.slice();
    let advanceSrc = true;
    let advanceDest = true;
    let unused = 0;
    let s: DumpField | undefined;
    let d: DumpField | undefined;
    const where = `Section "${sec}", Description "${desc}":`;
    for (;;) {
      if (advanceSrc) {
        s = sList.shift();
        if (s === undefined) {
          if (sStack.length === 0) return;
          sList = sStack.pop()!;
          continue;
        }
      } else if (unused === 0) advanceSrc = true;
      if (advanceDest) {
        d = dList.shift();
        if (d === undefined) {
          if (dStack.length === 0) {
            this.errors.push(`${where} expected field "${s!.field}", while dest has no further fields`);
            return;
          }
          dList = dStack.pop()!;
          advanceSrc = false;
          continue;
        }
      } else if (unused === 0) advanceDest = true;
      const si = s!;
      const di = d!;
      if (unused > 0) {
        const [other, size] = advanceDest ? [di, di.size] : [si, si.size];
        unused -= size;
        if (unused === 0) {
          if (advanceDest) advanceSrc = true;
          else advanceDest = true;
          continue;
        }
        if (unused < 0) {
          this.errors.push(`${where} unused size mismatch near "${other.field}"`);
          return;
        }
        continue;
      }
      if (si.field !== di.field) {
        if (existsInSubstruct(di, si.field)) {
          dStack.push(dList);
          dList = di.Description!.Fields!.slice();
          advanceSrc = false;
          continue;
        }
        if (existsInSubstruct(si, di.field)) {
          sStack.push(sList);
          sList = si.Description!.Fields!.slice();
          advanceDest = false;
          continue;
        }
        if (si.field === 'unused' || di.field === 'unused') {
          if (si.size === di.size) continue;
          if (di.field === 'unused') {
            advanceDest = false;
            unused = di.size - si.size;
            continue;
          }
          advanceSrc = false;
          unused = si.size - di.size;
          continue;
        }
        this.errors.push(`${where} expected field "${si.field}", got "${di.field}"; skipping rest`);
        return;
      }
      this.version(si, di, sec, desc);
      if (!si.Description && si.size !== di.size)
        this.errors.push(
          `Section "${sec}" Description "${desc}" Field "${si.field}" size mismatch: ${si.size} , ${di.size}`,
        );
      if (si.Description) {
        if (!di.Description)
          this.errors.push(
            `Section "${sec}", Description "${desc}", Field "${si.field}": missing description`,
          );
        else this.descriptions(si.Description, di.Description, sec);
      }
    }
  }

  subsections(src: DumpDesc[], dest: DumpDesc[], desc: string, sec: string): void {
    for (const s of src) {
      const d = dest.filter((x) => x.name === s.name);
      if (d.length === 0)
        this.errors.push(`Section "${sec}", Description "${desc}": Subsection "${s.name}" not found`);
      for (const x of d) this.descriptions(s, x, sec);
    }
  }

  descriptions(s: DumpDesc, d: DumpDesc, sec: string): void {
    this.version(s, d, sec, s.name);
    if (s.name !== d.name) {
      this.errors.push(
        `Section "${sec}": Description "${s.name}" missing, got "${d.name}" instead; skipping`,
      );
      return;
    }
    for (const key of Object.keys(s)) {
      if (!(key in d)) {
        this.errors.push(`Section "${sec}" Description "${s.name}": Entry "${key}" missing`);
        // Beyond the script: name each subsection a destination without any would refuse.
        if (key === 'Subsections') this.subsections(s.Subsections!, [], s.name, sec);
        continue;
      }
      if (key === 'Fields') this.fields(s.Fields!, d.Fields!, s.name, sec);
      if (key === 'Subsections') this.subsections(s.Subsections!, d.Subsections!, s.name, sec);
    }
  }
}

/** What migrating from a QEMU described by `src` to one described by `dest` would break. */
export function diffDumps(src: Record<string, Json>, dest: Record<string, Json>): DiffResult {
  const c = new Checker();
  const warnings: string[] = [];
  for (const [sec, s] of Object.entries(src)) {
    const d = dest[sec];
    if (d === undefined) {
      c.errors.push(`Section "${sec}" does not exist in dest`);
      continue;
    }
    if (sec === 'vmschkmachine') {
      if (s.Name !== d.Name)
        warnings.push(`Warning: checking incompatible machine types: "${s.Name}", "${d.Name}"`);
      continue;
    }
    c.version(s as unknown as Versioned, d as unknown as Versioned, sec);
    for (const entry of Object.keys(s)) {
      if (!(entry in d)) {
        c.errors.push(`Section "${sec}": Entry "${entry}" missing`);
        continue;
      }
      if (entry === 'Description') c.descriptions(s.Description as DumpDesc, d.Description as DumpDesc, sec);
    }
  }
  return { errors: c.errors, warnings };
}
