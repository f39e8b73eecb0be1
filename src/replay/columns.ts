/**
 * The compact event encoding of trace format v1, the trace's `events.data` (one msgpack
 * `bin`): n events as six byte columns of n bytes each, then one column of varints for the
 * values that do not fit a byte.
 *
 * | column | byte i is | escape (255) |
 * |---|---|---|
 * | time | host ns since event i-1 (event 0: since 0) | ≥ 255: unsigned LEB128 in `wide` |
 * | kind | the event kind (events.ts `Ev`, 1..254) | — |
 * | vm | vm + 1 (0..2) | — |
 * | dev | dev + 1 (dev = -1 is common: no device) | otherwise: zigzag LEB128 of dev in `wide` |
 * | a | a | a < 0 or a ≥ 255: zigzag LEB128 in `wide` |
 * | b | b | same as a |
 * | wide | the escaped values, event by event, in the order time, dev, a, b | |
 *
 * Fixed-width byte columns make recording a handful of byte stores per event, indexed alike
 * (recorder.ts); the escapes keep the rare large values (a u32 port id, long gaps in time)
 * exact. The encoding is canonical — a value that fits its byte is never escaped, varints
 * have no padding — so events and bytes map one to one and the digest over these bytes is a
 * digest of the events. Decoding checks everything: lengths, ranges, kinds, canonical form,
 * and that the columns use the bytes exactly.
 */

import { EV_NAMES, Ev, MigPhase, RunState } from '../model/events.js';
import { EventLog, MAX_VALUE } from './event-log.js';
import { MAX_EVENT_KIND, MAX_TRACE_EVENTS, TraceFormatError } from './format.js';

/** Each event takes one byte in each of the six byte columns. */
export const MIN_BYTES_PER_EVENT = 6;
export const ESCAPE = 255;
/** A varint takes at most 8 bytes (2^53 in 7-bit groups). */
export const MAX_VARINT_BYTES = 8;

/** Unsigned LEB128 of a safe integer; returns the new end. */
export function putUnsigned(buf: Uint8Array, p: number, v: number): number {
  while (v >= 0x8000_0000) {
    buf[p++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  while (v >= 0x80) {
    buf[p++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[p++] = v;
  return p;
}

/** Zigzag LEB128 of an integer of magnitude at most MAX_VALUE; returns the new end. */
export function putSigned(buf: Uint8Array, p: number, v: number): number {
  if (!Number.isInteger(v) || v > MAX_VALUE || v < -MAX_VALUE) {
    throw new RangeError(`trace encoder: event value ${v} is not an integer of magnitude at most 2^52 - 1`);
  }
  return putUnsigned(buf, p, v >= 0 ? v * 2 : -v * 2 - 1);
}

/** The encoding of a whole log at once (the recorder writes the same bytes as it goes). */
export function encodeEvents(log: EventLog): Uint8Array {
  const n = log.length;
  const cols = new Uint8Array(n * MIN_BYTES_PER_EVENT);
  const wide = new Uint8Array(n * 4 * MAX_VARINT_BYTES);
  let w = 0;
  let prev = 0;
  for (let i = 0; i < n; i++) {
    const t = log.at[i]!;
    const dt = t - prev;
    if (!(dt >= 0) || !Number.isSafeInteger(t)) {
      throw new RangeError(`trace encoder: event #${i} time ${t} after ${prev} is not a later integer time`);
    }
    prev = t;
    if (dt < ESCAPE) cols[i] = dt;
    else {
      cols[i] = ESCAPE;
      w = putUnsigned(wide, w, dt);
    }
    cols[n + i] = log.kind[i]!;
    cols[2 * n + i] = log.vm[i]! + 1;
    const dev = log.dev[i]!;
    if (dev >= -1 && dev < ESCAPE - 1 && Number.isInteger(dev)) cols[3 * n + i] = dev + 1;
    else {
      cols[3 * n + i] = ESCAPE;
      w = putSigned(wide, w, dev);
    }
    for (const [col, v] of [
      [4, log.a[i]!],
      [5, log.b[i]!],
    ] as const) {
      if (v >= 0 && v < ESCAPE && Number.isInteger(v)) cols[col * n + i] = v;
      else {
        cols[col * n + i] = ESCAPE;
        w = putSigned(wide, w, v);
      }
    }
  }
  const out = new Uint8Array(cols.length + w);
  out.set(cols);
  out.set(wide.subarray(0, w), cols.length);
  return out;
}

// ---------------------------------------------------------------------------------------
// Decoding untrusted bytes

/** Per kind, the values `a` may take where the vocabulary fixes them. */
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

const COLUMNS = ['time', 'kind', 'vm', 'dev', 'a', 'b'] as const;

class WideReader {
  constructor(
    private readonly data: Uint8Array,
    public p: number,
  ) {}

  fail(i: number, column: string, problem: string): never {
    throw new TraceFormatError(
      `events.data: event ${i} (${column}, escaped value at byte ${this.p}): ${problem}`,
    );
  }

  /** Unsigned LEB128 up to 2^53 - 1. */
  unsigned(i: number, column: string): number {
    let v = 0;
    let scale = 1;
    for (let k = 0; k < MAX_VARINT_BYTES; k++) {
      if (this.p >= this.data.length) this.fail(i, column, 'truncated');
      const x = this.data[this.p++]!;
      v += (x & 0x7f) * scale;
      if ((x & 0x80) === 0) {
        if (x === 0 && k > 0) this.fail(i, column, 'non-canonical varint');
        if (v > Number.MAX_SAFE_INTEGER) this.fail(i, column, 'value beyond 2^53');
        return v;
      }
      scale *= 0x80;
    }
    return this.fail(i, column, `varint longer than ${MAX_VARINT_BYTES} bytes`);
  }

  signed(i: number, column: string): number {
    const z = this.unsigned(i, column);
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  }
}

/** The events of `data`, which must hold exactly `count` events; else a TraceFormatError. */
export function decodeEvents(data: Uint8Array, count: number): EventLog {
  if (!Number.isSafeInteger(count) || count < 0 || count > MAX_TRACE_EVENTS) {
    throw new TraceFormatError(`events.count: expected an integer in [0, ${MAX_TRACE_EVENTS}], got ${count}`);
  }
  const n = count;
  if (n * MIN_BYTES_PER_EVENT > data.length) {
    throw new TraceFormatError(
      `events: ${n} events cannot fit in ${data.length} bytes (${MIN_BYTES_PER_EVENT} each at least): truncated or corrupt`,
    );
  }
  const log = new EventLog(n);
  const wide = new WideReader(data, n * MIN_BYTES_PER_EVENT);
  const fail = (i: number, col: number, problem: string): never => {
    throw new TraceFormatError(
      `events.data: event ${i} (${COLUMNS[col]} column, byte ${col * n + i}): ${problem}`,
    );
  };
  /** dev/a/b: the byte, or the escaped value, which must not have fitted the byte. */
  const value = (i: number, col: number, bias: number): number => {
    const x = data[col * n + i]!;
    if (x !== ESCAPE) return x - bias;
    const v = wide.signed(i, COLUMNS[col]!);
    if (v + bias >= 0 && v + bias < ESCAPE) wide.fail(i, COLUMNS[col]!, `non-canonical escape of ${v}`);
    return v;
  };
  let t = 0;
  for (let i = 0; i < n; i++) {
    const x = data[i]!;
    let dt = x;
    if (x === ESCAPE) {
      dt = wide.unsigned(i, 'time');
      if (dt < ESCAPE) wide.fail(i, 'time', `non-canonical escape of ${dt}`);
    }
    t += dt;
    if (t > Number.MAX_SAFE_INTEGER) fail(i, 0, 'time beyond 2^53');
    log.at[i] = t;
    const k = data[n + i]!;
    if (k === 0 || k > MAX_EVENT_KIND || EV_NAMES[k] === undefined) fail(i, 1, `unknown event kind ${k}`);
    log.kind[i] = k;
    const vm = data[2 * n + i]!;
    if (vm > 2) fail(i, 2, `vm ${vm - 1} out of range (expected -1, 0 or 1)`);
    log.vm[i] = vm - 1;
    log.dev[i] = value(i, 3, 1);
    const a = value(i, 4, 0);
    const max = A_MAX[k];
    if (max !== undefined && (a < 0 || a > max))
      fail(i, 4, `${EV_NAMES[k]} value ${a} out of range [0, ${max}]`);
    log.a[i] = a;
    log.b[i] = value(i, 5, 0);
  }
  if (wide.p !== data.length) {
    throw new TraceFormatError(`events.data: ${data.length - wide.p} bytes left after ${n} events`);
  }
  log.length = n;
  return log;
}
