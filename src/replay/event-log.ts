import type { EventSink } from '../model/events.js';

/**
 * The executed events of a run as columns: one typed array per field, grown by doubling. As
 * a sink it records every event with six stores and no allocation (recording must cost
 * little: the bench's goal is at most 1.5× the run without it).
 *
 * The trace format stores `dev`, `a` and `b` as signed 32-bit integers, `vm` as -1..1 and
 * `kind` as a byte; a value outside those ranges is a model bug that would make the trace
 * lie, so it stops the recording loudly instead of wrapping silently.
 */
export class EventLog implements EventSink {
  length = 0;
  at: Float64Array;
  kind: Uint8Array;
  vm: Int8Array;
  dev: Int32Array;
  a: Int32Array;
  b: Int32Array;

  constructor(capacity = 4096) {
    const n = Math.max(1, capacity);
    this.at = new Float64Array(n);
    this.kind = new Uint8Array(n);
    this.vm = new Int8Array(n);
    this.dev = new Int32Array(n);
    this.a = new Int32Array(n);
    this.b = new Int32Array(n);
  }

  event(at: number, kind: number, vm: number, dev: number, a: number, b: number): void {
    const i = this.length;
    if (i === this.at.length) this.grow();
    if ((dev | 0) !== dev || (a | 0) !== a || (b | 0) !== b || (kind & 0xff) !== kind || vm < -1 || vm > 1) {
      throw new RangeError(
        `trace recorder: event #${i} (kind ${kind}, vm ${vm}, dev ${dev}, a ${a}, b ${b}) is outside the trace format's ranges`,
      );
    }
    this.at[i] = at;
    this.kind[i] = kind;
    this.vm[i] = vm;
    this.dev[i] = dev;
    this.a[i] = a;
    this.b[i] = b;
    this.length = i + 1;
  }

  private grow(): void {
    const n = this.at.length * 2;
    this.at = grown(this.at, new Float64Array(n));
    this.kind = grown(this.kind, new Uint8Array(n));
    this.vm = grown(this.vm, new Int8Array(n));
    this.dev = grown(this.dev, new Int32Array(n));
    this.a = grown(this.a, new Int32Array(n));
    this.b = grown(this.b, new Int32Array(n));
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

function grown<T extends Float64Array | Uint8Array | Int8Array | Int32Array>(old: T, next: T): T {
  next.set(old as never);
  return next;
}

/** The first index at which two logs differ, or -1 when they are identical. */
export function firstDifference(x: EventLog, y: EventLog): number {
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (!x.same(i, y, i)) return i;
  return x.length === y.length ? -1 : n;
}
