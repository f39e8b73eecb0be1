/**
 * The migration byte stream in QEMU's shape (migration/qemu-file.c, migration/savevm.c):
 * big-endian integers, counted ID strings, and the record markers of savevm.c. The writer is
 * fed by the model (bad values are model bugs: `assert`); the reader is fed by a possibly
 * hostile stream, so every read is bounds-checked and fails with `LoadError`, never with a
 * RangeError or a silently wrong value.
 */
import { fail } from '../assert.js';

/** "QEVM" (savevm.c QEMU_VM_FILE_MAGIC). */
export const QEMU_VM_FILE_MAGIC = 0x5145564d;
/** Version 2 is rejected as obsolete; 3 is the only one QEMU has written since 2009. */
export const QEMU_VM_FILE_VERSION_COMPAT = 2;
export const QEMU_VM_FILE_VERSION = 3;
export const QEMU_VM_EOF = 0x00;
export const QEMU_VM_SECTION_FULL = 0x04;
export const QEMU_VM_SUBSECTION = 0x05;
export const QEMU_VM_CONFIGURATION = 0x07;
export const QEMU_VM_SECTION_FOOTER = 0x7e;

const TWO_32 = 0x1_0000_0000;

/**
 * A load failure caused by the stream's contents (DESIGN.md example 8: input errors are typed,
 * model bugs are `assert`). `key` is a short, stable kebab-case cause for deduplicating
 * findings ('truncated', 'unknown-subsection', ...); `message` is the QEMU-style text;
 * `section`/`instanceId` name the section being loaded, when there is one.
 */
export class LoadError extends Error {
  override readonly name = 'LoadError';
  readonly key: string;
  /** Set at construction, or by inSection once the failure is known to be inside a section. */
  section: string | null;
  instanceId: number;

  constructor(message: string, key: string, section: string | null = null, instanceId = 0) {
    // No stack: a LoadError is an expected outcome of a hostile or mismatched stream, caught
    // by the migration that fails, and a campaign fails thousands of loads (capturing the
    // stack was 1.8% of judging a campaign's inputs).
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
    this.key = key;
    this.section = section;
    this.instanceId = instanceId;
  }

  /**
   * QEMU's outer context for a failed section (savevm.c:2621), added to this error with its
   * key kept: a failed load builds one error, not the inner one and a copy (building an Error
   * captures a stack, and a campaign's cross-build migrations fail often).
   */
  inSection(idstr: string, instanceId: number): this {
    this.message = `${this.message}: error while loading state for instance 0x${instanceId.toString(16)} of device '${idstr}'`;
    this.section = idstr;
    this.instanceId = instanceId;
    return this;
  }
}

/**
 * A QEMU int64 from its two big-endian halves, or NaN when a JS number cannot hold it
 * exactly. Only all-ones (-1, QEMU's "timer not pending") and 0..2^53-1 are accepted: the
 * model's 64-bit quantities are expiry times and offsets, never other negative numbers.
 */
export function decodeInt64(hi: number, lo: number): number {
  if (hi === 0xffffffff && lo === 0xffffffff) return -1;
  if (hi > 0x1fffff) return Number.NaN;
  return hi * TWO_32 + lo;
}

function isPrintable(byte: number): boolean {
  return byte >= 0x20 && byte <= 0x7e;
}

/** Writes into a growable buffer; `finish()` returns the bytes written. */
export class StreamWriter {
  private buf: Uint8Array;
  private pos = 0;

  constructor(initialCapacity = 256) {
    this.buf = new Uint8Array(Math.max(16, initialCapacity));
  }

  get length(): number {
    return this.pos;
  }

  /**
   * Reserves n bytes and returns the offset where they start. It may replace `buf`: call it
   * before reading `this.buf` (`this.buf[this.room(1)] = v` would write to the old buffer).
   */
  private room(n: number): number {
    const at = this.pos;
    if (at + n > this.buf.length) {
      const grown = new Uint8Array(Math.max(this.buf.length * 2, at + n));
      grown.set(this.buf.subarray(0, at));
      this.buf = grown;
    }
    this.pos = at + n;
    return at;
  }

  u8(v: number): void {
    if (!(Number.isInteger(v) && v >= 0 && v <= 0xff)) fail(`stream: u8 out of range: ${v}`);
    const at = this.room(1);
    this.buf[at] = v;
  }

  be16(v: number): void {
    if (!(Number.isInteger(v) && v >= 0 && v <= 0xffff)) fail(`stream: be16 out of range: ${v}`);
    const at = this.room(2);
    this.buf[at] = v >>> 8;
    this.buf[at + 1] = v & 0xff;
  }

  be32(v: number): void {
    if (!(Number.isInteger(v) && v >= 0 && v <= 0xffffffff)) fail(`stream: be32 out of range: ${v}`);
    this.put32(v);
  }

  /** qemu_put_sbe32: a signed int32 in two's complement. */
  i32(v: number): void {
    if (!(Number.isInteger(v) && v >= -0x80000000 && v <= 0x7fffffff)) fail(`stream: i32 out of range: ${v}`);
    this.put32(v >>> 0);
  }

  /** qemu_put_be64 of an int64: 0..2^53-1, or -1 written as all ones (see decodeInt64). */
  be64(v: number): void {
    if (v === -1) {
      this.put32(0xffffffff);
      this.put32(0xffffffff);
      return;
    }
    if (!(Number.isSafeInteger(v) && v >= 0)) fail(`stream: be64 not representable: ${v}`);
    this.put32(Math.floor(v / TWO_32));
    this.put32(v % TWO_32);
  }

  bytes(b: Uint8Array): void {
    const at = this.room(b.length);
    this.buf.set(b, at);
  }

  /** qemu_put_counted_string: a u8 length, then the ASCII characters (section idstrs). */
  str8(s: string): void {
    if (!(s.length <= 0xff)) fail(`stream: string too long: ${s.length}`);
    const at = this.room(1 + s.length);
    this.buf[at] = s.length;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (!isPrintable(c)) fail(`stream: string is not printable ASCII: ${JSON.stringify(s)}`);
      this.buf[at + 1 + i] = c;
    }
  }

  /** Forgets what was written: the writer starts again at offset 0 in the buffer it has. */
  reset(): void {
    this.pos = 0;
  }

  /** A copy of the bytes written; the writer may go on writing afterwards. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }

  private put32(v: number): void {
    const at = this.room(4);
    this.buf[at] = v >>> 24;
    this.buf[at + 1] = (v >>> 16) & 0xff;
    this.buf[at + 2] = (v >>> 8) & 0xff;
    this.buf[at + 3] = v & 0xff;
  }
}

/** Reads a stream that may be truncated or hostile: every failure is a LoadError. */
export class StreamReader {
  private readonly buf: Uint8Array;
  private pos = 0;

  constructor(bytes: Uint8Array) {
    this.buf = bytes;
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  /** The next byte without consuming it (qemu_peek_byte), or -1 at the end of the stream. */
  peek(): number {
    return this.pos < this.buf.length ? this.buf[this.pos]! : -1;
  }

  /** Goes back to an earlier offset (after peeking further than one byte). */
  rewind(to: number): void {
    if (!(Number.isInteger(to) && to >= 0 && to <= this.pos)) fail(`stream: cannot rewind to ${to}`);
    this.pos = to;
  }

  /** A view of the bytes read since `start` (no copy). */
  since(start: number): Uint8Array {
    if (!(Number.isInteger(start) && start >= 0 && start <= this.pos)) fail(`stream: bad start ${start}`);
    return this.buf.subarray(start, this.pos);
  }

  /** Consumes n bytes and returns the offset where they start. */
  private take(n: number): number {
    const at = this.pos;
    const left = this.buf.length - at;
    if (n > left) {
      throw new LoadError(
        `stream truncated: needed ${n} bytes at offset ${at}, only ${left} left`,
        'truncated',
      );
    }
    this.pos = at + n;
    return at;
  }

  u8(): number {
    return this.buf[this.take(1)]!;
  }

  be16(): number {
    const at = this.take(2);
    return (this.buf[at]! << 8) | this.buf[at + 1]!;
  }

  be32(): number {
    return this.get32(this.take(4)) >>> 0;
  }

  /** qemu_get_sbe32. */
  i32(): number {
    return this.get32(this.take(4));
  }

  /** An int64 as decodeInt64 accepts it; anything else is a LoadError ('bad-int64'). */
  be64(): number {
    const at = this.take(8);
    const hi = this.get32(at) >>> 0;
    const lo = this.get32(at + 4) >>> 0;
    const v = decodeInt64(hi, lo);
    if (Number.isNaN(v)) {
      throw new LoadError(`int64 value ${hex64(hi, lo)} at offset ${at} is out of range`, 'bad-int64');
    }
    return v;
  }

  /**
   * A view of the next n bytes (no copy: copy it before keeping it). The length is checked
   * against what is left before anything else, so a hostile length never allocates.
   */
  bytes(n: number): Uint8Array {
    if (!Number.isInteger(n) || n < 0) {
      throw new LoadError(`invalid length ${n} at offset ${this.pos}`, 'bad-length');
    }
    const at = this.take(n);
    return this.buf.subarray(at, at + n);
  }

  /** qemu_get_counted_string; only printable ASCII, as every idstr QEMU writes. */
  str8(): string {
    const at = this.pos;
    const len = this.u8();
    const start = this.take(len);
    let s = '';
    for (let i = 0; i < len; i++) {
      const c = this.buf[start + i]!;
      if (!isPrintable(c)) {
        throw new LoadError(`invalid ID string at offset ${at}: byte 0x${c.toString(16)}`, 'bad-string');
      }
      s += String.fromCharCode(c);
    }
    return s;
  }

  private get32(at: number): number {
    const b = this.buf;
    return (b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!;
  }
}

/** "0x" and 16 hex digits, for messages about raw 64-bit values. */
export function hex64(hi: number, lo: number): string {
  return `0x${hi.toString(16).padStart(8, '0')}${lo.toString(16).padStart(8, '0')}`;
}
