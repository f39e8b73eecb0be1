/**
 * A structural check of untrusted msgpack bytes before msgpackr decodes them: exactly one
 * document, no truncation, no trailing bytes, only the plain types a trace uses (nil,
 * booleans, numbers, strings, bin, arrays, maps with string keys), nesting at most
 * MAX_DEPTH, every declared length within the bytes that remain, and no map key that could
 * reach a prototype (`__proto__`, `constructor`, `prototype`) or repeat. msgpackr would
 * otherwise rename `__proto__` silently, build objects for extension types (dates, errors,
 * records) and return odd values for the reserved byte 0xc1.
 */

import { TraceFormatError } from './format.js';

const MAX_DEPTH = 16;
const FORBIDDEN_KEYS: readonly string[] = ['__proto__', 'constructor', 'prototype'];
const keyDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

class Scanner {
  p = 0;
  constructor(private readonly buf: Uint8Array) {}

  fail(problem: string): never {
    throw new TraceFormatError(`not a valid msgpack document: ${problem}`);
  }

  need(n: number, what: string): void {
    if (n > this.buf.length - this.p) {
      this.fail(
        `truncated: ${what} at byte ${this.p} needs ${n} bytes, ${this.buf.length - this.p} left (file of ${this.buf.length} bytes)`,
      );
    }
  }

  uint(bytes: number, what: string): number {
    this.need(bytes, what);
    let v = 0;
    for (let i = 0; i < bytes; i++) v = v * 256 + this.buf[this.p++]!;
    return v;
  }

  /** Skips one value; returns nothing, fails on anything a trace never holds. */
  value(depth: number): void {
    if (depth > MAX_DEPTH) this.fail(`nesting deeper than ${MAX_DEPTH} at byte ${this.p}`);
    this.need(1, 'a value');
    const at = this.p;
    const t = this.buf[this.p++]!;
    if (t <= 0x7f || t >= 0xe0) return; // fixints
    if (t <= 0x8f) return this.map(t & 0x0f, depth);
    if (t <= 0x9f) return this.array(t & 0x0f, depth);
    if (t <= 0xbf) return this.skip(t & 0x1f, 'a string');
    switch (t) {
      case 0xc0:
      case 0xc2:
      case 0xc3:
        return;
      case 0xc4:
        return this.skip(this.uint(1, 'a bin length'), 'a bin');
      case 0xc5:
        return this.skip(this.uint(2, 'a bin length'), 'a bin');
      case 0xc6:
        return this.skip(this.uint(4, 'a bin length'), 'a bin');
      case 0xca:
        return this.skip(4, 'a float');
      case 0xcb:
        return this.skip(8, 'a float');
      case 0xcc:
      case 0xd0:
        return this.skip(1, 'an integer');
      case 0xcd:
      case 0xd1:
        return this.skip(2, 'an integer');
      case 0xce:
      case 0xd2:
        return this.skip(4, 'an integer');
      case 0xcf:
      case 0xd3:
        return this.skip(8, 'an integer');
      case 0xd9:
        return this.skip(this.uint(1, 'a string length'), 'a string');
      case 0xda:
        return this.skip(this.uint(2, 'a string length'), 'a string');
      case 0xdb:
        return this.skip(this.uint(4, 'a string length'), 'a string');
      case 0xdc:
        return this.array(this.uint(2, 'an array length'), depth);
      case 0xdd:
        return this.array(this.uint(4, 'an array length'), depth);
      case 0xde:
        return this.map(this.uint(2, 'a map size'), depth);
      case 0xdf:
        return this.map(this.uint(4, 'a map size'), depth);
      default:
        // 0xc1 (never used), ext 0xc7-0xc9 and fixext 0xd4-0xd8: nothing a trace writes.
        this.fail(`unexpected type byte 0x${t.toString(16)} at byte ${at}`);
    }
  }

  skip(n: number, what: string): void {
    this.need(n, what);
    this.p += n;
  }

  array(n: number, depth: number): void {
    // Each element takes at least one byte: a huge declared length fails before any work.
    this.need(n, `an array of ${n} elements`);
    for (let i = 0; i < n; i++) this.value(depth + 1);
  }

  map(n: number, depth: number): void {
    this.need(2 * n, `a map of ${n} entries`);
    const keys = new Set<string>();
    for (let i = 0; i < n; i++) {
      const key = this.key();
      if (FORBIDDEN_KEYS.includes(key))
        this.fail(`forbidden map key ${JSON.stringify(key)} at byte ${this.p}`);
      if (keys.has(key)) this.fail(`duplicate map key ${JSON.stringify(key.slice(0, 40))} at byte ${this.p}`);
      keys.add(key);
      this.value(depth + 1);
    }
  }

  key(): string {
    this.need(1, 'a map key');
    const at = this.p;
    const t = this.buf[this.p++]!;
    let n: number;
    if (t >= 0xa0 && t <= 0xbf) n = t & 0x1f;
    else if (t === 0xd9) n = this.uint(1, 'a key length');
    else if (t === 0xda) n = this.uint(2, 'a key length');
    else if (t === 0xdb) n = this.uint(4, 'a key length');
    else return this.fail(`map key at byte ${at} is not a string (type byte 0x${t.toString(16)})`);
    this.need(n, 'a map key');
    let key: string;
    try {
      key = keyDecoder.decode(this.buf.subarray(this.p, this.p + n));
    } catch {
      return this.fail(`map key at byte ${at} is not valid UTF-8`);
    }
    this.p += n;
    return key;
  }
}

/** Throws a TraceFormatError unless `buf` is exactly one plain msgpack document. */
export function checkMsgpack(buf: Uint8Array): void {
  const s = new Scanner(buf);
  s.value(0);
  if (s.p !== buf.length) s.fail(`${buf.length - s.p} trailing bytes after the document (at byte ${s.p})`);
}
