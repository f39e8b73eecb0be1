import type { EventSink } from '../model/events.js';

/**
 * Executed events as columns of numbers, one typed array per field, for random access: what
 * a trace's encoded events decode to (replay's comparison, `show`, the VCD). Recording does
 * not go through it: the recorder (recorder.ts) writes the encoding directly. As a sink
 * (tests, tools) it grows by doubling.
 *
 * The trace format stores `dev`, `a` and `b` as integers of magnitude below 2^52 (most fit a
 * byte; a virtio control message's port id is a u32), `vm` as -1..1 and `kind` as a byte; a
 * value outside those ranges is a model bug that would make a trace lie, so it is refused
 * loudly instead of being stored wrong.
 */
export class EventLog implements EventSink {
  length = 0;
  at: Float64Array;
  kind: Uint8Array;
  vm: Int8Array;
  dev: Float64Array;
  a: Float64Array;
  b: Float64Array;

  constructor(capacity = 4096) {
    const n = Math.max(1, capacity);
    this.at = new Float64Array(n);
    this.kind = new Uint8Array(n);
    this.vm = new Int8Array(n);
    this.dev = new Float64Array(n);
    this.a = new Float64Array(n);
    this.b = new Float64Array(n);
  }

  event(at: number, kind: number, vm: number, dev: number, a: number, b: number): void {
    const i = this.length;
    if (i === this.at.length) this.grow();
    if (((dev | 0) !== dev || (a | 0) !== a || (b | 0) !== b) && !(wide(dev) && wide(a) && wide(b))) {
      this.outOfRange(i, kind, vm, dev, a, b);
    }
    if ((kind & 0xff) !== kind || vm < -1 || vm > 1) this.outOfRange(i, kind, vm, dev, a, b);
    this.at[i] = at;
    this.kind[i] = kind;
    this.vm[i] = vm;
    this.dev[i] = dev;
    this.a[i] = a;
    this.b[i] = b;
    this.length = i + 1;
  }

  private outOfRange(i: number, kind: number, vm: number, dev: number, a: number, b: number): never {
    throw new RangeError(
      `trace recorder: event #${i} (kind ${kind}, vm ${vm}, dev ${dev}, a ${a}, b ${b}) is outside the trace format's ranges`,
    );
  }

  private grow(): void {
    const n = this.at.length * 2;
    this.at = grown(this.at, new Float64Array(n));
    this.kind = grown(this.kind, new Uint8Array(n));
    this.vm = grown(this.vm, new Int8Array(n));
    this.dev = grown(this.dev, new Float64Array(n));
    this.a = grown(this.a, new Float64Array(n));
    this.b = grown(this.b, new Float64Array(n));
  }

  /** Event i as a plain record (for messages; never on the recording path). */
  row(i: number): EventRow {
    return {
      index: i,
      at: this.at[i]!,
      kind: this.kind[i]!,
      vm: this.vm[i]!,
      dev: this.dev[i]!,
      a: this.a[i]!,
      b: this.b[i]!,
    };
  }

  /** Whether event i of this log equals event j of `other`. */
  same(i: number, other: EventLog, j: number): boolean {
    return (
      this.at[i] === other.at[j] &&
      this.kind[i] === other.kind[j] &&
      this.vm[i] === other.vm[j] &&
      this.dev[i] === other.dev[j] &&
      this.a[i] === other.a[j] &&
      this.b[i] === other.b[j]
    );
  }
}

export interface EventRow {
  index: number;
  at: number;
  kind: number;
  vm: number;
  dev: number;
  a: number;
  b: number;
}

/** Largest magnitude of dev, a and b: their zigzag form stays a safe integer. */
export const MAX_VALUE = 2 ** 52 - 1;

function wide(v: number): boolean {
  return Number.isInteger(v) && v >= -MAX_VALUE && v <= MAX_VALUE;
}

function grown<T extends Float64Array | Uint8Array | Int8Array>(old: T, next: T): T {
  next.set(old as never);
  return next;
}

/** The first index at which two logs differ, or -1 when they are identical. */
export function firstDifference(x: EventLog, y: EventLog): number {
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (!x.same(i, y, i)) return i;
  return x.length === y.length ? -1 : n;
}
