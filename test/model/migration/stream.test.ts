import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ModelAssertError } from '../../../src/model/assert.js';
import { decodeInt64, LoadError, StreamReader, StreamWriter } from '../../../src/model/migration/stream.js';

function bytesOf(write: (w: StreamWriter) => void): Uint8Array {
  const w = new StreamWriter(16);
  write(w);
  return w.finish();
}

/** The LoadError `fn` throws (fails the test if it throws anything else or nothing). */
function loadErrorOf(fn: () => unknown): LoadError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(LoadError);
    return e as LoadError;
  }
  throw new Error('expected a LoadError');
}

describe('StreamWriter', () => {
  it('writes big-endian integers as QEMU does', () => {
    const b = bytesOf((w) => {
      w.u8(0xab);
      w.be16(0x1234);
      w.be32(0xdeadbeef);
      w.i32(-2);
      w.be64(0x0012_3456_789a);
    });
    expect([...b]).toEqual([
      0xab, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 0x12, 0x34, 0x56, 0x78, 0x9a,
    ]);
  });

  it('writes int64 -1 as all ones (QEMU timer "not pending")', () => {
    expect([...bytesOf((w) => w.be64(-1))]).toEqual(new Array(8).fill(0xff));
  });

  it('writes counted strings and raw bytes, growing past its initial capacity', () => {
    const long = 'x'.repeat(200);
    const b = bytesOf((w) => {
      w.str8('serial');
      w.bytes(new Uint8Array([1, 2, 3]));
      w.str8(long);
    });
    expect(b.length).toBe(1 + 6 + 3 + 1 + 200);
    expect([...b.subarray(0, 10)]).toEqual([6, 0x73, 0x65, 0x72, 0x69, 0x61, 0x6c, 1, 2, 3]);
  });

  it('writes the same bytes whatever its initial capacity (every write may be the one that grows it)', () => {
    const op = fc.oneof(
      fc.integer({ min: 0, max: 0xff }).map((v) => (w: StreamWriter) => w.u8(v)),
      fc.integer({ min: 0, max: 0xffff }).map((v) => (w: StreamWriter) => w.be16(v)),
      fc.integer({ min: 0, max: 0xffffffff }).map((v) => (w: StreamWriter) => w.be32(v)),
      fc.uint8Array({ maxLength: 40 }).map((b) => (w: StreamWriter) => w.bytes(b)),
      fc
        .string({ unit: fc.constantFrom('a', 'b', 'Z'), maxLength: 30 })
        .map((t) => (w: StreamWriter) => w.str8(t)),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const small = new StreamWriter(16);
        const large = new StreamWriter(1 << 16);
        for (const write of ops) {
          write(small);
          write(large);
        }
        expect([...small.finish()]).toEqual([...large.finish()]);
      }),
      { seed: 1, numRuns: 300 },
    );
  });

  it('rejects values it cannot encode as model bugs', () => {
    const w = new StreamWriter();
    expect(() => w.u8(256)).toThrow(ModelAssertError);
    expect(() => w.be16(-1)).toThrow(ModelAssertError);
    expect(() => w.be32(2 ** 32)).toThrow(ModelAssertError);
    expect(() => w.i32(2 ** 31)).toThrow(ModelAssertError);
    expect(() => w.be64(-2)).toThrow(ModelAssertError);
    expect(() => w.be64(2 ** 53)).toThrow(ModelAssertError);
    expect(() => w.u8(1.5)).toThrow(ModelAssertError);
    expect(() => w.str8('a\nb')).toThrow(ModelAssertError);
    expect(() => w.str8('y'.repeat(256))).toThrow(ModelAssertError);
  });

  it('finish returns a copy', () => {
    const w = new StreamWriter();
    w.u8(1);
    const first = w.finish();
    w.u8(2);
    expect([...first]).toEqual([1]);
    expect([...w.finish()]).toEqual([1, 2]);
  });
});

describe('StreamReader', () => {
  it('reads back what the writer wrote', () => {
    const b = bytesOf((w) => {
      w.u8(7);
      w.be16(0xfffe);
      w.be32(0xffffffff);
      w.i32(-0x80000000);
      w.be64(Number.MAX_SAFE_INTEGER);
      w.be64(-1);
      w.be64(0);
      w.str8('virtio-console');
      w.bytes(new Uint8Array([9, 8]));
    });
    const r = new StreamReader(b);
    expect(r.u8()).toBe(7);
    expect(r.be16()).toBe(0xfffe);
    expect(r.be32()).toBe(0xffffffff);
    expect(r.i32()).toBe(-0x80000000);
    expect(r.be64()).toBe(Number.MAX_SAFE_INTEGER);
    expect(r.be64()).toBe(-1);
    expect(r.be64()).toBe(0);
    expect(r.str8()).toBe('virtio-console');
    expect(r.peek()).toBe(9);
    expect([...r.bytes(2)]).toEqual([9, 8]);
    expect(r.remaining).toBe(0);
    expect(r.peek()).toBe(-1);
  });

  it('reports truncation with the offset and what is left', () => {
    const r = new StreamReader(new Uint8Array([1, 2, 3]));
    r.u8();
    const e = loadErrorOf(() => r.be32());
    expect(e.message).toBe('stream truncated: needed 4 bytes at offset 1, only 2 left');
    expect(e.key).toBe('truncated');
    expect(e.section).toBeNull();
    expect(e.instanceId).toBe(0);
  });

  it('never allocates for a hostile length', () => {
    const r = new StreamReader(new Uint8Array(4));
    expect(loadErrorOf(() => r.bytes(0xffffffff)).key).toBe('truncated');
    expect(loadErrorOf(() => r.bytes(-1)).key).toBe('bad-length');
    expect(loadErrorOf(() => r.bytes(1.5)).key).toBe('bad-length');
  });

  it('rejects int64 values a number cannot hold, except all ones', () => {
    const unsafe = new Uint8Array([0, 0x20, 0, 0, 0, 0, 0, 0]); // 2^53
    const e = loadErrorOf(() => new StreamReader(unsafe).be64());
    expect(e.key).toBe('bad-int64');
    expect(e.message).toBe('int64 value 0x0020000000000000 at offset 0 is out of range');
    const minusTwo = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);
    expect(loadErrorOf(() => new StreamReader(minusTwo).be64()).key).toBe('bad-int64');
    expect(decodeInt64(0x1fffff, 0xffffffff)).toBe(Number.MAX_SAFE_INTEGER);
    expect(decodeInt64(0xffffffff, 0xffffffff)).toBe(-1);
  });

  it('accepts only printable ASCII in counted strings', () => {
    const e = loadErrorOf(() => new StreamReader(new Uint8Array([2, 0x41, 0x00])).str8());
    expect(e.key).toBe('bad-string');
    expect(e.message).toBe('invalid ID string at offset 0: byte 0x0');
    expect(loadErrorOf(() => new StreamReader(new Uint8Array([5, 0x41])).str8()).key).toBe('truncated');
  });

  it('fails only with LoadError on any bytes, whatever is read', () => {
    const op = fc.constantFrom('u8', 'be16', 'be32', 'i32', 'be64', 'str8', 'bytes', 'peek') as fc.Arbitrary<
      'u8' | 'be16' | 'be32' | 'i32' | 'be64' | 'str8' | 'bytes' | 'peek'
    >;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.array(op, { maxLength: 20 }), (bytes, ops) => {
        const r = new StreamReader(bytes);
        try {
          for (const o of ops) {
            if (o === 'bytes') r.bytes(r.u8());
            else r[o]();
            expect(r.offset).toBeLessThanOrEqual(bytes.length);
          }
        } catch (e) {
          expect(e).toBeInstanceOf(LoadError);
        }
      }),
      { seed: 1, numRuns: 2000 },
    );
  });
});
