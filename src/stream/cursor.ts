/**
 * A bounded reader over a real QEMU migration stream. Every read checks the bytes left
 * before it touches them, so a hostile length never allocates; every failure is a
 * StreamFormatError naming the offset where decoding stopped.
 */

export class StreamFormatError extends Error {
  override readonly name = 'StreamFormatError';
  constructor(
    readonly offset: number,
    readonly reason: string,
  ) {
    super(`offset ${offset} (0x${offset.toString(16)}): ${reason}`);
  }
}

export class Cursor {
  pos: number;

  constructor(
    readonly buf: Uint8Array,
    pos = 0,
  ) {
    this.pos = pos;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  fail(reason: string, at = this.pos): never {
    throw new StreamFormatError(at, reason);
  }

  /** The next byte without consuming it, or -1 at the end. */
  peek(): number {
    return this.pos < this.buf.length ? this.buf[this.pos]! : -1;
  }

  /** Fails unless n more bytes are there (checked before a loop reads them). */
  need(n: number, what: string): void {
    if (!(Number.isSafeInteger(n) && n >= 0)) this.fail(`${what}: invalid length ${n}`);
    if (n > this.remaining) this.fail(`truncated: ${what} needs ${n} bytes, ${this.remaining} left`);
  }

  private take(n: number, what: string): number {
    this.need(n, what);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  u8(what = 'u8'): number {
    return this.buf[this.take(1, what)]!;
  }

  be16(what = 'be16'): number {
    const at = this.take(2, what);
    return (this.buf[at]! << 8) | this.buf[at + 1]!;
  }

  be32(what = 'be32'): number {
    const at = this.take(4, what);
    return (
      ((this.buf[at]! << 24) | (this.buf[at + 1]! << 16) | (this.buf[at + 2]! << 8) | this.buf[at + 3]!) >>> 0
    );
  }

  /** All 64 bits, exactly. */
  be64(what = 'be64'): bigint {
    const hi = BigInt(this.be32(what));
    return (hi << 32n) | BigInt(this.be32(what));
  }

  /** A view of the next n bytes (no copy). */
  bytes(n: number, what = 'bytes'): Uint8Array {
    const at = this.take(n, what);
    return this.buf.subarray(at, at + n);
  }

  /** qemu_get_counted_string: u8 length and printable ASCII (every idstr QEMU writes). */
  str8(what = 'string'): string {
    const at = this.pos;
    const b = this.bytes(this.u8(what), what);
    let s = '';
    for (const c of b) {
      if (c < 0x20 || c > 0x7e) this.fail(`${what}: byte 0x${c.toString(16)} is not printable ASCII`, at);
      s += String.fromCharCode(c);
    }
    return s;
  }
}

/** A big-endian unsigned integer of 1..8 bytes, as a number when exact, else a bigint. */
export function beUint(b: Uint8Array): number | bigint {
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** The same bytes as a two's-complement signed integer. */
export function beInt(b: Uint8Array): number | bigint {
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  const bits = BigInt(b.length * 8);
  if (b.length > 0 && b[0]! & 0x80) v -= 1n << bits;
  const small = v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER);
  return small ? Number(v) : v;
}

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
