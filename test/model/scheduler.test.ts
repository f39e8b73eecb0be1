import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ModelAssertError } from '../../src/model/assert.js';
import { makeScheduler, peekTime, pop, type Scheduler, schedule } from '../../src/model/scheduler.js';

interface Popped {
  at: number;
  kind: number;
  a: number;
  b: number;
}

/** pop() leaves the removed event just past the heap, at index `q.size`. */
function popOne(q: Scheduler): Popped {
  pop(q);
  const i = q.size;
  return { at: q.at[i]!, kind: q.kind[i]!, a: q.a[i]!, b: q.b[i]! };
}

function drain(q: Scheduler): Popped[] {
  const out: Popped[] = [];
  while (q.size > 0) out.push(popOne(q));
  return out;
}

describe('scheduler', () => {
  it('is empty at first: size 0, peekTime Infinity', () => {
    const q = makeScheduler();
    expect(q.size).toBe(0);
    expect(peekTime(q)).toBe(Number.POSITIVE_INFINITY);
  });

  it('pops events in time order whatever the scheduling order', () => {
    const q = makeScheduler();
    schedule(q, 500, 1, 10, 0);
    schedule(q, 100, 2, 20, 0);
    schedule(q, 300, 3, 30, 0);
    schedule(q, 0, 4, 40, 0);
    schedule(q, 200, 5, 50, 0);
    expect(peekTime(q)).toBe(0);
    expect(drain(q).map((e) => [e.at, e.kind, e.a])).toEqual([
      [0, 4, 40],
      [100, 2, 20],
      [200, 5, 50],
      [300, 3, 30],
      [500, 1, 10],
    ]);
    expect(peekTime(q)).toBe(Number.POSITIVE_INFINITY);
  });

  it('runs equal times in the order they were scheduled', () => {
    const q = makeScheduler();
    for (let i = 0; i < 20; i++) schedule(q, 1000, 7, i, -i);
    schedule(q, 999, 8, 99, 0);
    const out = drain(q);
    expect(out[0]).toEqual({ at: 999, kind: 8, a: 99, b: 0 });
    expect(out.slice(1).map((e) => e.a)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(out.slice(1).map((e) => e.b)).toEqual(Array.from({ length: 20 }, (_, i) => (i === 0 ? 0 : -i)));
  });

  it('returns increasing sequence numbers', () => {
    const q = makeScheduler();
    expect(schedule(q, 5, 0, 0, 0)).toBe(0);
    expect(schedule(q, 1, 0, 0, 0)).toBe(1);
    popOne(q);
    expect(schedule(q, 1, 0, 0, 0)).toBe(2);
  });

  it('an event scheduled later at an equal time runs after those already queued, even after pops', () => {
    const q = makeScheduler();
    schedule(q, 10, 1, 1, 0);
    schedule(q, 10, 1, 2, 0);
    schedule(q, 5, 1, 0, 0);
    expect(popOne(q).a).toBe(0);
    schedule(q, 10, 1, 3, 0);
    expect(drain(q).map((e) => e.a)).toEqual([1, 2, 3]);
  });

  it('grows past its capacity and keeps every event and the order', () => {
    const q = makeScheduler(2);
    const n = 100;
    for (let i = 0; i < n; i++) schedule(q, (i * 37) % 11, i, i * 2, i * 3);
    expect(q.size).toBe(n);
    expect(q.at.length).toBeGreaterThanOrEqual(n);
    const out = drain(q);
    expect(out).toHaveLength(n);
    const expected = Array.from({ length: n }, (_, i) => ({
      at: (i * 37) % 11,
      kind: i,
      a: i * 2,
      b: i * 3,
    }));
    expected.sort((x, y) => x.at - y.at || x.kind - y.kind);
    expect(out).toEqual(expected);
  });

  it('keeps 32-bit arguments and large integer times exactly', () => {
    const q = makeScheduler(1);
    schedule(q, 9_000_000_000_123, 3, -(2 ** 31), 2 ** 31 - 1);
    schedule(q, 1, 4, 0x7fff_ffff, -1);
    expect(drain(q)).toEqual([
      { at: 1, kind: 4, a: 0x7fff_ffff, b: -1 },
      { at: 9_000_000_000_123, kind: 3, a: -(2 ** 31), b: 2 ** 31 - 1 },
    ]);
  });

  it('matches a sorted reference under any interleaving of schedules and pops', () => {
    type Op = { op: 'push'; at: number; kind: number } | { op: 'pop' };
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      {
        weight: 3,
        arbitrary: fc.record({
          op: fc.constant('push' as const),
          at: fc.integer({ min: 0, max: 20 }),
          kind: fc.integer({ min: 0, max: 1000 }),
        }),
      },
      { weight: 1, arbitrary: fc.constant({ op: 'pop' as const }) },
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.array(opArb, { maxLength: 300 }), (capacity, ops) => {
        const q = makeScheduler(capacity);
        // Reference: a list kept sorted by (at, seq) with a stable insertion.
        const ref: { at: number; seq: number; kind: number; a: number }[] = [];
        let seq = 0;
        for (const o of ops) {
          if (o.op === 'push') {
            // Time never goes back: an event is scheduled at or after the last one popped.
            const at = q.now + o.at;
            const s = schedule(q, at, o.kind, seq, 0);
            expect(s).toBe(seq);
            ref.push({ at, seq, kind: o.kind, a: seq });
            ref.sort((x, y) => x.at - y.at || x.seq - y.seq);
            seq++;
          } else if (ref.length > 0) {
            const want = ref.shift()!;
            expect(peekTime(q)).toBe(want.at);
            const got = popOne(q);
            expect(got).toEqual({ at: want.at, kind: want.kind, a: want.a, b: 0 });
          }
          expect(q.size).toBe(ref.length);
        }
        expect(drain(q).map((e) => e.a)).toEqual(ref.map((e) => e.a));
      }),
      { seed: 20240611, numRuns: 300 },
    );
  });

  it('refuses an event before the last one popped, a NaN time, and a pop from an empty queue', () => {
    const q = makeScheduler();
    schedule(q, 10, 0, 0, 0);
    pop(q);
    expect(q.now).toBe(10);
    expect(() => schedule(q, 9, 0, 0, 0)).toThrow(ModelAssertError);
    expect(() => schedule(q, Number.NaN, 0, 0, 0)).toThrow(ModelAssertError);
    expect(() => pop(q)).toThrow(ModelAssertError);
    schedule(q, 10, 0, 0, 0);
    expect(popOne(q).at).toBe(10);
  });

  it('finds a heap broken behind its back at the next pop', () => {
    const q = makeScheduler();
    schedule(q, 5, 0, 0, 0);
    schedule(q, 7, 0, 0, 0);
    pop(q);
    q.at[0] = 1; // the root earlier than the event already popped
    expect(() => pop(q)).toThrow(/popped 1 after 5/);
  });
});
