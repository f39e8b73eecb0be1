/**
 * The event queue: a binary min-heap ordered by (host time, sequence number), kept in typed
 * arrays so the fuzzer's inner loop allocates nothing per event. An event is plain data:
 * a kind and two integer arguments; equal times run in the order they were scheduled.
 */
import { fail } from './assert.js';

export interface Scheduler {
  size: number;
  nextSeq: number;
  /** Time of the last event popped: nothing may be scheduled before it (time never goes back). */
  now: number;
  at: Float64Array;
  seq: Float64Array;
  kind: Int32Array;
  a: Int32Array;
  b: Int32Array;
}

export function makeScheduler(capacity = 64): Scheduler {
  return { size: 0, nextSeq: 0, now: 0, ...columns(capacity) };
}

/** The five columns over one buffer: every run makes a queue, and a buffer costs more than its bytes. */
function columns(n: number): Pick<Scheduler, 'at' | 'seq' | 'kind' | 'a' | 'b'> {
  const mem = new ArrayBuffer(28 * n);
  return {
    at: new Float64Array(mem, 0, n),
    seq: new Float64Array(mem, 8 * n, n),
    kind: new Int32Array(mem, 16 * n, n),
    a: new Int32Array(mem, 20 * n, n),
    b: new Int32Array(mem, 24 * n, n),
  };
}

function grow(q: Scheduler): void {
  const { at, seq, kind, a, b } = columns(q.at.length * 2);
  at.set(q.at);
  seq.set(q.seq);
  kind.set(q.kind);
  a.set(q.a);
  b.set(q.b);
  q.at = at;
  q.seq = seq;
  q.kind = kind;
  q.a = a;
  q.b = b;
}

function less(q: Scheduler, i: number, j: number): boolean {
  const ti = q.at[i]!;
  const tj = q.at[j]!;
  return ti < tj || (ti === tj && q.seq[i]! < q.seq[j]!);
}

function moveTo(q: Scheduler, from: number, to: number): void {
  q.at[to] = q.at[from]!;
  q.seq[to] = q.seq[from]!;
  q.kind[to] = q.kind[from]!;
  q.a[to] = q.a[from]!;
  q.b[to] = q.b[from]!;
}

/** Schedules an event; returns its sequence number. */
export function schedule(q: Scheduler, at: number, kind: number, a: number, b: number): number {
  // Also refuses NaN, which would break the heap's order silently.
  if (!(at >= q.now)) fail(`scheduler: event kind ${kind} at ${at} before now ${q.now}`);
  if (q.size === q.at.length) grow(q);
  const seq = q.nextSeq++;
  // Sift up with a hole: compare against the new key held in locals.
  let i = q.size++;
  while (i > 0) {
    const p = (i - 1) >> 1;
    const tp = q.at[p]!;
    if (tp < at || (tp === at && q.seq[p]! < seq)) break;
    moveTo(q, p, i);
    i = p;
  }
  q.at[i] = at;
  q.seq[i] = seq;
  q.kind[i] = kind;
  q.a[i] = a;
  q.b[i] = b;
  return seq;
}

/** Time of the earliest event; Infinity when empty. */
export function peekTime(q: Scheduler): number {
  return q.size === 0 ? Number.POSITIVE_INFINITY : q.at[0]!;
}

/**
 * Removes the earliest event into slot `q.size` (just past the heap), where the caller reads
 * it as `q.at[q.size]`, `q.kind[q.size]`... until the next schedule() call.
 */
export function pop(q: Scheduler): void {
  if (q.size <= 0) fail('scheduler: pop from an empty queue');
  // The root is the earliest entry: one earlier than the last popped means a broken heap.
  if (q.at[0]! < q.now) fail(`scheduler: popped ${q.at[0]} after ${q.now}`);
  q.now = q.at[0]!;
  const last = --q.size;
  if (last === 0) return;
  // The root goes to slot `last`; the old last entry sifts down from the root into a hole.
  const at = q.at[last]!;
  const seq = q.seq[last]!;
  const kind = q.kind[last]!;
  const a = q.a[last]!;
  const b = q.b[last]!;
  moveTo(q, 0, last);
  let i = 0;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= last) break;
    const r = l + 1;
    const c = r < last && less(q, r, l) ? r : l;
    const tc = q.at[c]!;
    if (tc > at || (tc === at && q.seq[c]! > seq)) break;
    moveTo(q, c, i);
    i = c;
  }
  q.at[i] = at;
  q.seq[i] = seq;
  q.kind[i] = kind;
  q.a[i] = a;
  q.b[i] = b;
}

/** Scheduler event kinds (host-time queue). */
export const Sk = {
  STEP: 0,
  /** a = vm << 10 | slot, b = generation. */
  TIMER: 1,
  /** A backend watch fires, or a flush bottom half runs: a = vm << 10 | dev << 5 | port. */
  WATCH: 2,
  /** A backend pushes input: a = vm << 10 | dev << 5 | port. */
  PUMP: 3,
  /** A socket's peer drains its buffer: a = vm << 10 | dev << 5 | port. */
  DRAIN: 4,
  BOOT: 5,
  /** A migration's source stops and saves: a = downtime (ns), b = autostart. */
  MIGRATE_STOP: 6,
  MIGRATE_LOAD: 7,
  END: 8,
  /** The rest of the stream arrives: the destination's load ends (after a yield). */
  MIGRATE_EOF: 9,
} as const;

export const packBackend = (vm: number, dev: number, port: number): number => (vm << 10) | (dev << 5) | port;
