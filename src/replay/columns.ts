/**
 * The compact event encoding of trace format v1: the events' six fields as six columns, one
 * after the other, in one byte string (the trace's `events.data`, a msgpack `bin`):
 *
 * 1. time: the difference from the previous event's host ns (the first from 0), unsigned
 *    LEB128 (times never go back, so deltas are ≥ 0 and mostly one or two bytes);
 * 2. kind: one byte each (events.ts `Ev`);
 * 3. vm: zigzag LEB128 (-1..1, one byte);
 * 4-6. dev, a, b: zigzag LEB128 of a signed 32-bit integer (1 to 5 bytes).
 *
 * Varints are canonical (no padding bytes), so events and bytes map one to one and the
 * digest over these bytes is a digest of the events. Decoding checks everything: lengths,
 * ranges, kinds, and that the columns use the bytes exactly.
 */

import { EV_NAMES, Ev, MigPhase, RunState } from '../model/events.js';
import { EventLog } from './event-log.js';
import { MAX_EVENT_KIND, MAX_TRACE_EVENTS, TraceFormatError } from './format.js';

/** Each event takes at least one byte in each of the six columns. */
export const MIN_BYTES_PER_EVENT = 6;
const MAX_BYTES_PER_EVENT = 8 + 1 + 1 + 5 * 3;
const TWO_31 = 0x8000_0000;

export function encodeEvents(log: EventLog): Uint8Array {
  const n = log.length;
  const out = new Uint8Array(n * MAX_BYTES_PER_EVENT);
  let p = 0;
  const at = log.at;
  let prev = 0;
  for (let i = 0; i < n; i++) {
    const t = at[i]!;
    const d = t - prev;
    if (!(d >= 0) || !Number.isSafeInteger(t)) {
      throw new RangeError(`trace encoder: event #${i} time ${t} after ${prev} is not a later integer time`);
    }
    prev = t;
    if (d < 0x80) out[p++] = d;
    else p = writeUnsigned(out, p, d);
  }
  out.set(log.kind.subarray(0, n), p);
  p += n;
  const vm = log.vm;
  for (let i = 0; i < n; i++) {
    const v = vm[i]!;
    out[p++] = (v << 1) ^ (v >> 31);
  }
  p = writeZigzagColumn(out, p, log.dev, n);
  p = writeZigzagColumn(out, p, log.a, n);
  p = writeZigzagColumn(out, p, log.b, n);
  return out.slice(0, p);
}

function writeUnsigned(out: Uint8Array, p: number, v: number): number {
  while (v >= TWO_31) {
    out[p++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  while (v >= 0x80) {
    out[p++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  out[p++] = v;
  return p;
}

function writeZigzagColumn(out: Uint8Array, p: number, col: Int32Array, n: number): number {
  for (let i = 0; i < n; i++) {
    const v = col[i]!;
    let z = ((v << 1) ^ (v >> 31)) >>> 0;
    while (z >= 0x80) {
      out[p++] = (z & 0x7f) | 0x80;
      z >>>= 7;
    }
    out[p++] = z;
  }
  return p;
}

// ---------------------------------------------------------------------------------------
// Decoding untrusted bytes

/** Per kind, the values `a` (and `b`) may take where the vocabulary fixes them. */
const A_MAX: readonly (number | undefined)[] = (() => {
  const m: (number | undefined)[] = [];
  m[Ev.DEV_IRQ] = 1;
  m[Ev.PIN] = 1;
  m[Ev.REMOTE_IRR] = 1;
  m[Ev.IRQ_MASK] = 1;
  m[Ev.RUN_STATE] = Math.max(...Object.values(RunState));
  m[Ev.MIGRATION] = Math.max(...Object.values(MigPhase));
  return m;
})();

class ColumnReader {
  p = 0;
  constructor(private readonly data: Uint8Array) {}

  fail(column: string, i: number, problem: string): never {
    throw new TraceFormatError(`events.data: event ${i} (${column} column, byte ${this.p}): ${problem}`);
  }

  byte(column: string, i: number): number {
    if (this.p >= this.data.length) this.fail(column, i, 'truncated');
    return this.data[this.p++]!;
  }

  /** Unsigned LEB128 up to 2^53 - 1. */
  unsigned(column: string, i: number): number {
    let v = 0;
    let scale = 1;
    for (let k = 0; k < 8; k++) {
      const x = this.byte(column, i);
      v += (x & 0x7f) * scale;
      if ((x & 0x80) === 0) {
        if (x === 0 && k > 0) this.fail(column, i, 'non-canonical varint');
        if (v > Number.MAX_SAFE_INTEGER) this.fail(column, i, 'value beyond 2^53');
        return v;
      }
      scale *= 0x80;
    }
    return this.fail(column, i, 'varint longer than 8 bytes');
  }

  /** Zigzag LEB128 of a signed 32-bit integer. */
  int32(column: string, i: number): number {
    let z = 0;
    for (let k = 0; k < 5; k++) {
      const x = this.byte(column, i);
      if (k === 4 && x > 0x0f) this.fail(column, i, 'value does not fit in 32 bits');
      z += (x & 0x7f) * 2 ** (7 * k);
      if ((x & 0x80) === 0) {
        if (x === 0 && k > 0) this.fail(column, i, 'non-canonical varint');
        const u = z >>> 0;
        return (u >>> 1) ^ -(u & 1);
      }
    }
    return this.fail(column, i, 'value does not fit in 32 bits');
  }
}

/** The events of `data`, which must hold exactly `count` events; else a TraceFormatError. */
export function decodeEvents(data: Uint8Array, count: number): EventLog {
  if (!Number.isSafeInteger(count) || count < 0 || count > MAX_TRACE_EVENTS) {
    throw new TraceFormatError(`events.count: expected an integer in [0, ${MAX_TRACE_EVENTS}], got ${count}`);
  }
  if (count * MIN_BYTES_PER_EVENT > data.length) {
    throw new TraceFormatError(
      `events: ${count} events cannot fit in ${data.length} bytes (at least ${MIN_BYTES_PER_EVENT} each): truncated or corrupt`,
    );
  }
  const log = new EventLog(count);
  const r = new ColumnReader(data);
  let t = 0;
  for (let i = 0; i < count; i++) {
    t += r.unsigned('time', i);
    if (t > Number.MAX_SAFE_INTEGER) r.fail('time', i, 'time beyond 2^53');
    log.at[i] = t;
  }
  for (let i = 0; i < count; i++) {
    const k = r.byte('kind', i);
    if (k === 0 || k > MAX_EVENT_KIND || EV_NAMES[k] === undefined) r.fail('kind', i, `unknown event kind ${k}`);
    log.kind[i] = k;
  }
  for (let i = 0; i < count; i++) {
    const z = r.byte('vm', i);
    if (z > 2) r.fail('vm', i, `vm out of range (zigzag byte ${z}; expected -1, 0 or 1)`);
    log.vm[i] = (z >>> 1) ^ -(z & 1);
  }
  for (let i = 0; i < count; i++) log.dev[i] = r.int32('dev', i);
  for (let i = 0; i < count; i++) {
    const a = r.int32('a', i);
    const max = A_MAX[log.kind[i]!];
    if (max !== undefined && (a < 0 || a > max)) {
      r.fail('a', i, `${EV_NAMES[log.kind[i]!]} value ${a} out of range [0, ${max}]`);
    }
    log.a[i] = a;
  }
  for (let i = 0; i < count; i++) log.b[i] = r.int32('b', i);
  if (r.p !== data.length) {
    throw new TraceFormatError(`events.data: ${data.length - r.p} bytes left after ${count} events`);
  }
  log.length = count;
  return log;
}
