/**
 * A small reader of untrusted JSON: each accessor checks one value and fails with one line,
 * `PATH: problem`, through the caller's error class (schedules, build files, traces).
 */

import { oneLine, quote } from './text.js';

export type JsonObject = Record<string, unknown>;

/** Keys that could reach or replace a prototype if anything ever assigned them. */
export const FORBIDDEN_KEYS: readonly string[] = ['__proto__', 'constructor', 'prototype'];

export function isPlainObject(v: unknown): v is JsonObject {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'object' && !isPlainObject(v)) return 'non-plain object';
  return typeof v;
}

/** What was got: the value when it has the expected type (`got -5`), else its type (`got number`). */
export function got(v: unknown, expectedType: 'string' | 'number' | 'boolean'): string {
  if (typeof v !== expectedType) return typeName(v);
  return typeof v === 'string' ? quote(v) : String(v);
}

/** `"a", "b" or "c"` / `1, 4 or 8`. */
export function listOf(values: readonly (string | number)[]): string {
  const shown = values.map((v) => (typeof v === 'string' ? quote(v) : String(v)));
  return shown.length < 2 ? shown.join('') : `${shown.slice(0, -1).join(', ')} or ${shown.at(-1)}`;
}

/** The path of a field: `src.build`, or `src.backends["vser0.port1"]` for keys that are not names. */
export function fieldPath(parent: string, key: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(key)) return `${parent}[${quote(key)}]`;
  return parent === '' ? key : `${parent}.${key}`;
}

export function indexPath(parent: string, i: number): string {
  return `${parent}[${i}]`;
}

/** Reads JSON values, failing with `PATH: problem` through the given error class. */
export class JsonReader {
  constructor(
    private readonly rootName: string,
    private readonly makeError: (line: string) => Error,
  ) {}

  fail(path: string, problem: string): never {
    throw this.makeError(oneLine(`${path === '' ? this.rootName : path}: ${problem}`));
  }

  /**
   * A plain object's own fields, copied into a prototype-less record so that lookups never
   * reach Object.prototype. Prototype keys are rejected before anything is copied.
   */
  object(v: unknown, path: string): JsonObject {
    if (!isPlainObject(v)) this.fail(path, `expected an object, got ${typeName(v)}`);
    const keys = Object.keys(v);
    const bad = keys.find((k) => FORBIDDEN_KEYS.includes(k));
    if (bad !== undefined) this.fail(path, `forbidden key ${quote(bad)}`);
    const out: JsonObject = Object.create(null);
    for (const key of keys) out[key] = v[key];
    return out;
  }

  onlyFields(obj: JsonObject, path: string, allowed: readonly string[]): void {
    // for-in over own keys (Object.keys' order), not Object.keys: no array on the path every
    // schedule a campaign runs takes.
    for (const k in obj)
      if (Object.hasOwn(obj, k) && !allowed.includes(k)) this.fail(path, `unexpected field ${quote(k)}`);
  }

  /** A required field of `obj` (at `path`); `expected` describes it for the missing case. */
  need(obj: JsonObject, key: string, path: string, expected: string): unknown {
    const v = obj[key];
    if (v === undefined) this.fail(fieldPath(path, key), `missing (expected ${expected})`);
    return v;
  }

  int(
    v: unknown,
    path: string,
    min: number,
    max: number,
    expected = `an integer in [${min}, ${max}]`,
  ): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.fail(path, `expected ${expected}, got ${got(v, 'number')}`);
    }
    return v === 0 ? 0 : v; // -0 is a valid JSON number; normalise it so results compare equal
  }

  bool(v: unknown, path: string): boolean {
    if (typeof v !== 'boolean') this.fail(path, `expected true or false, got ${typeName(v)}`);
    return v;
  }

  oneOf<T extends string | number>(v: unknown, path: string, values: readonly T[]): T {
    if (!values.includes(v as T)) {
      const type = typeof values[0] === 'number' ? 'number' : 'string';
      this.fail(path, `expected ${listOf(values)}, got ${got(v, type)}`);
    }
    return v as T;
  }

  array(v: unknown, path: string, maxLength: number, what: string): unknown[] {
    if (!Array.isArray(v)) this.fail(path, `expected an array of ${what}, got ${typeName(v)}`);
    if (v.length > maxLength) this.fail(path, `${v.length} ${what}, at most ${maxLength} allowed`);
    return v;
  }

  string(v: unknown, path: string, pattern: RegExp, expected: string): string {
    if (typeof v !== 'string' || !pattern.test(v)) {
      this.fail(path, `expected ${expected}, got ${got(v, 'string')}`);
    }
    return v;
  }
}
