import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EV_NAMES, Ev } from '../../src/model/events.js';
import { decodeEvents, encodeEvents, MIN_BYTES_PER_EVENT } from '../../src/replay/columns.js';
import { EventLog, firstDifference, MAX_VALUE } from '../../src/replay/event-log.js';
import { MAX_EVENT_KIND, TraceFormatError } from '../../src/replay/format.js';
import { TraceRecorder } from '../../src/replay/recorder.js';

/** Feeds the same events to a log and to the recorder (the recorder's bytes must match encodeEvents). */
function both(events: readonly (readonly number[])[]): { log: EventLog; bytes: Uint8Array } {
  const log = new EventLog(4);
  const rec = new TraceRecorder();
  for (const [at, kind, vm, dev, a, b] of events as [number, number, number, number, number, number][]) {
    log.event(at, kind, vm, dev, a, b);
    rec.event(at, kind, vm, dev, a, b);
  }
  const parts = rec.parts();
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    bytes.set(p, off);
    off += p.length;
  }
  expect(bytes).toEqual(encodeEvents(log));
  return { log, bytes };
}

const value = fc.oneof(
  fc.integer({ min: -64, max: 63 }),
  fc.integer({ min: -(2 ** 31), max: 2 ** 32 - 1 }),
  fc.integer({ min: -MAX_VALUE, max: MAX_VALUE }),
);
const events = fc
  .array(
    fc.tuple(
      fc.oneof(fc.nat(3), fc.nat(200_000), fc.integer({ min: 0, max: 2 ** 40 })),
      fc.integer({ min: 1, max: MAX_EVENT_KIND }),
      fc.integer({ min: -1, max: 1 }),
      value,
      value,
      value,
    ),
    { maxLength: 300 },
  )
  .map((rows) => {
    // Cumulative times: events never go back in time.
    let t = 0;
    return rows.map(([dt, kind, vm, dev, a, b]) => {
      t += dt;
      // Kinds whose `a` the decoder bounds get in-range values.
      const bounded = [
        Ev.DEV_IRQ,
        Ev.PIN,
        Ev.REMOTE_IRR,
        Ev.IRQ_MASK,
        Ev.RUN_STATE,
        Ev.MIGRATION,
      ] as number[];
      return [t, kind, vm, dev, bounded.includes(kind) ? Math.abs(a) % 2 : a, b];
    });
  });

describe('event columns', () => {
  it('round-trip any events; the recorder writes the very bytes encodeEvents does', () => {
    fc.assert(
      fc.property(events, (evs) => {
        const { log, bytes } = both(evs);
        const back = decodeEvents(bytes, evs.length);
        expect(back.length).toBe(evs.length);
        expect(firstDifference(back, log)).toBe(-1);
        expect(encodeEvents(back)).toEqual(bytes);
      }),
      { seed: 4, numRuns: 300 },
    );
  });

  it('take one byte per field for values that fit a byte', () => {
    const { bytes } = both([
      [0, Ev.RUN_STATE, 0, -1, 0, 0],
      [254, Ev.REG_WRITE, 0, 0, 1, 254],
      [300, Ev.DEV_IRQ, 1, 253, 1, 0],
    ]);
    // All but the third event's time (46 ns after 254: fits; 300 would not).
    expect(bytes.length).toBe(3 * MIN_BYTES_PER_EVENT);
    expect(both([[255, Ev.STEP, 0, 254, 255, -1]]).bytes.length).toBe(MIN_BYTES_PER_EVENT + 2 + 2 + 2 + 1);
  });

  it('keep a u32 control-message port id and negative values exactly', () => {
    const { bytes } = both([[7, Ev.CTRL_TO_HOST, 0, 0, 0xffff_ffff, (6 << 16) | 1]]);
    const back = decodeEvents(bytes, 1);
    expect(back.row(0)).toEqual({
      index: 0,
      at: 7,
      kind: Ev.CTRL_TO_HOST,
      vm: 0,
      dev: 0,
      a: 0xffff_ffff,
      b: 393217,
    });
  });

  it('the recorder refuses values the format cannot hold instead of storing them wrong', () => {
    const rec = new TraceRecorder();
    expect(() => rec.event(0, Ev.STEP, 0, 0, 1.5, 0)).toThrow(RangeError);
    expect(() => new TraceRecorder().event(0, Ev.STEP, 2, 0, 0, 0)).toThrow(RangeError);
    expect(() => new TraceRecorder().event(0, 256, 0, 0, 0, 0)).toThrow(RangeError);
    expect(() => new TraceRecorder().event(0, Ev.STEP, 0, 0, 2 ** 60, 0)).toThrow(RangeError);
    const back = new TraceRecorder();
    back.event(10, Ev.STEP, 0, 0, 0, 0);
    expect(() => back.event(9, Ev.STEP, 0, 0, 0, 0)).toThrow(/not a later integer time/);
  });

  it('the recorder grows past its initial capacity', () => {
    const n = 100_000;
    const rows = Array.from({ length: n }, (_, i) => [
      i * 1000,
      (i % MAX_EVENT_KIND) + 1,
      0,
      i % 300,
      -i,
      i * 7,
    ]);
    const fixed = rows.map((r) => {
      const kind = r[1]!;
      const bounded = [
        Ev.DEV_IRQ,
        Ev.PIN,
        Ev.REMOTE_IRR,
        Ev.IRQ_MASK,
        Ev.RUN_STATE,
        Ev.MIGRATION,
      ] as number[];
      return bounded.includes(kind) ? [r[0]!, kind, 0, r[3]!, 0, r[5]!] : r;
    });
    const { log, bytes } = both(fixed);
    expect(firstDifference(decodeEvents(bytes, n), log)).toBe(-1);
  });

  describe('decoding rejects, with a TraceFormatError', () => {
    const good = both([
      [0, Ev.RUN_STATE, 0, -1, 0, 0],
      [300, Ev.REG_READ, 0, 0, 5, 0x60],
    ]).bytes;
    const bad = (bytes: Uint8Array, count: number, message: RegExp): void => {
      expect(() => decodeEvents(bytes, count)).toThrow(TraceFormatError);
      expect(() => decodeEvents(bytes, count)).toThrow(message);
    };

    it('a count the bytes cannot hold (before allocating anything)', () => {
      bad(good, 2 ** 31, /expected an integer|cannot fit/);
      bad(good, 3, /cannot fit/);
      bad(good, -1, /expected an integer/);
    });

    it('truncated or extra bytes', () => {
      bad(good.subarray(0, good.length - 1), 2, /truncated|cannot fit/);
      bad(Uint8Array.from([...good, 0]), 2, /bytes left/);
    });

    it('unknown kinds, out-of-range vm and bounded values', () => {
      // Two events: six columns of two bytes (time, kind, vm, dev, a, b), then the escaped 300 ns.
      expect(good.length).toBe(12 + 2);
      const k = good.slice();
      k[2] = MAX_EVENT_KIND + 1;
      bad(k, 2, /event 0 \(kind column, byte 2\): unknown event kind/);
      k[2] = 0;
      bad(k, 2, /unknown event kind 0/);
      const v = good.slice();
      v[5] = 3;
      bad(v, 2, /event 1 \(vm column, byte 5\): vm 2 out of range/);
      const a = good.slice();
      a[8] = 2; // RUN_STATE a = 2 is a run state...
      expect(decodeEvents(a, 2).a[0]).toBe(2);
      a[8] = 20; // ...a = 20 is none
      bad(a, 2, /RUN_STATE value 20 out of range/);
    });

    it('non-canonical escapes and varints', () => {
      const one = (time: number, dev: number, wide: number[]): Uint8Array =>
        Uint8Array.from([time, Ev.STEP, 1, dev, 0, 0, ...wide]);
      expect(decodeEvents(one(255, 0, [0xac, 0x02]), 1).at[0]).toBe(300);
      bad(one(255, 0, [5]), 1, /time, escaped value.*non-canonical escape of 5/);
      bad(one(255, 0, [0xac, 0x82, 0x00]), 1, /non-canonical varint/);
      bad(one(255, 0, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), 1, /longer than 8 bytes/);
      bad(one(0, 255, [10]), 1, /dev, escaped value.*non-canonical escape of 5/);
      expect(decodeEvents(one(0, 255, [3]), 1).dev[0]).toBe(-2);
      bad(one(0, 255, []), 1, /truncated/);
    });
  });

  it('every known kind has a name, and the format version covers them (append-only)', () => {
    expect(EV_NAMES.length - 1).toBe(MAX_EVENT_KIND);
    for (let k = 1; k <= MAX_EVENT_KIND; k++) expect(EV_NAMES[k]).toBeTruthy();
  });
});
