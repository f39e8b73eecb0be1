import { Ev, type EventSink, RunState } from '../model/events.js';
import { ESCAPE, MAX_VARINT_BYTES, putSigned, putUnsigned } from './columns.js';

/**
 * The trace recorder: an EventSink that writes each event straight into the compact
 * encoding (columns.ts). Events go into blocks of six byte columns, one byte per field at
 * the same index, so the common event costs six byte stores and a few compares; the rare
 * value that does not fit its byte goes, escaped, into a separate chunked varint column.
 * Full blocks are kept, never copied or grown, and nothing is allocated per event. The
 * columns are hashed and written as they are (`parts`): bench/replay.ts measures the cost
 * against the unrecorded run (goal: at most 1.3×).
 *
 * It also follows the run states, for the guest's virtual time at the end (trace stats).
 */

const FIRST_BLOCK = 1024;
const MAX_BLOCK = 1 << 18;
const FIRST_WIDE = 1024;
const MAX_WIDE = 1 << 20;

interface Block {
  time: Uint8Array;
  kind: Uint8Array;
  vm: Uint8Array;
  dev: Uint8Array;
  a: Uint8Array;
  b: Uint8Array;
  /** Events in the block. */
  used: number;
}

const EMPTY = new Uint8Array(0);

export class TraceRecorder implements EventSink {
  private prevAt = 0;
  /** Events in closed blocks. */
  private closed = 0;
  // The open block's columns and fill (fields of their own: the hot path reads nothing else).
  private k = 0;
  private cap = 0;
  private time = EMPTY;
  private kind = EMPTY;
  private vm = EMPTY;
  private dev = EMPTY;
  private a = EMPTY;
  private b = EMPTY;
  private readonly blocks: Block[] = [];
  // Escaped values: closed chunks and the open one.
  private readonly wideDone: Uint8Array[] = [];
  private wide = EMPTY;
  private wp = 0;
  // Guest virtual time: host time while some VM is RUNNING.
  private running0 = false;
  private running1 = false;
  private runSince = 0;
  private runNs = 0;

  event(at: number, kind: number, vm: number, dev: number, a: number, b: number): void {
    let k = this.k;
    if (k === this.cap) k = this.nextBlock();
    const dt = at - this.prevAt;
    this.prevAt = at;
    if (dt >>> 0 === dt && dt < ESCAPE) this.time[k] = dt;
    else this.escapeTime(k, at, dt);
    // kind in 1..254 and vm in -1..1, integers (one unsigned compare each for the ranges).
    const v = vm + 1;
    if ((kind - 1) >>> 0 >= ESCAPE - 1 || v >>> 0 > 2 || (kind | 0) !== kind || (v | 0) !== v) {
      this.bad(kind, vm, dev, a, b);
    }
    this.kind[k] = kind;
    this.vm[k] = v;
    const d = dev + 1;
    if (d >>> 0 === d && d < ESCAPE) this.dev[k] = d;
    else this.escape(this.dev, k, dev);
    if (a >>> 0 === a && a < ESCAPE) this.a[k] = a;
    else this.escape(this.a, k, a);
    if (b >>> 0 === b && b < ESCAPE) this.b[k] = b;
    else this.escape(this.b, k, b);
    this.k = k + 1;
    if (kind === Ev.RUN_STATE) this.runState(at, vm, a);
  }

  /** Closes the open block and opens a larger one; returns the new fill (0). */
  private nextBlock(): number {
    if (this.cap > 0) {
      this.blocks.push(this.openBlock());
      this.closed += this.k;
    }
    const size = Math.min(MAX_BLOCK, Math.max(FIRST_BLOCK, this.cap * 2));
    // One allocation for the six columns: a buffer allocation costs more than its bytes.
    const mem = new Uint8Array(6 * size);
    this.time = mem.subarray(0, size);
    this.kind = mem.subarray(size, 2 * size);
    this.vm = mem.subarray(2 * size, 3 * size);
    this.dev = mem.subarray(3 * size, 4 * size);
    this.a = mem.subarray(4 * size, 5 * size);
    this.b = mem.subarray(5 * size, 6 * size);
    this.cap = size;
    this.k = 0;
    return 0;
  }

  /** Events recorded so far. */
  get count(): number {
    return this.closed + this.k;
  }

  private openBlock(): Block {
    const { time, kind, vm, dev, a, b, k } = this;
    return { time, kind, vm, dev, a, b, used: k };
  }

  private wideRoom(): void {
    if (this.wide.length - this.wp >= MAX_VARINT_BYTES) return;
    if (this.wp > 0) this.wideDone.push(this.wide.subarray(0, this.wp));
    this.wide = new Uint8Array(Math.min(MAX_WIDE, Math.max(FIRST_WIDE, this.wide.length * 2)));
    this.wp = 0;
  }

  private escapeTime(k: number, at: number, dt: number): void {
    if (!(dt >= 0) || !Number.isSafeInteger(at)) {
      throw new RangeError(
        `trace recorder: event #${this.count} at ${at} ns after ${at - dt} ns is not a later integer time`,
      );
    }
    this.time[k] = ESCAPE;
    this.wideRoom();
    this.wp = putUnsigned(this.wide, this.wp, dt);
  }

  private escape(col: Uint8Array, k: number, v: number): void {
    col[k] = ESCAPE;
    this.wideRoom();
    this.wp = putSigned(this.wide, this.wp, v);
  }

  private runState(at: number, vm: number, state: number): void {
    if (this.running0 || this.running1) this.runNs += at - this.runSince;
    this.runSince = at;
    if (vm === 0) this.running0 = state === RunState.RUNNING;
    else if (vm === 1) this.running1 = state === RunState.RUNNING;
  }

  /** The guest's virtual time at host time `endNs` (the end of the run). */
  vmNs(endNs: number): number {
    return this.runNs + (this.running0 || this.running1 ? Math.max(0, endNs - this.runSince) : 0);
  }

  private bad(kind: number, vm: number, dev: number, a: number, b: number): never {
    throw new RangeError(
      `trace recorder: event #${this.count} (kind ${kind}, vm ${vm}, dev ${dev}, a ${a}, b ${b}) is outside the trace format's ranges`,
    );
  }

  /**
   * The encoded events as pieces whose concatenation is the events' byte string
   * (columns.ts): each byte column across the blocks, then the escaped values.
   */
  parts(): Uint8Array[] {
    const blocks = [...this.blocks, this.openBlock()];
    const out: Uint8Array[] = [];
    for (const col of ['time', 'kind', 'vm', 'dev', 'a', 'b'] as const) {
      for (const blk of blocks) if (blk.used > 0) out.push(blk[col].subarray(0, blk.used));
    }
    out.push(...this.wideDone);
    if (this.wp > 0) out.push(this.wide.subarray(0, this.wp));
    return out;
  }
}
