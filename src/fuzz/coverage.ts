import { Ev, type EventSink, RunState, type StateSink } from '../model/events.js';
import { type NearMissSink, ORACLE_NAMES, type OracleName } from '../oracles/types.js';

/**
 * Coverage from the executed events, AFL-style: each event becomes a point (its kind and the
 * values that matter for it: the register and the value read or written, the control event,
 * the migration phase, a line level with the VM's run state...), and the pair (previous
 * point, point) is counted in a fixed-size map. Register values give IIR/LSR/ISR
 * transitions; run state × line level gives near-misses such as a line high while the VM is
 * stopped; SUBSECTION events give subsections sent and loaded. Oracles add near-misses (a
 * condition held for half its deadline, e.g. bytes held by a device: starved-data) as points
 * of their own, so a schedule that comes close to a finding is kept and mutated further.
 * The device state at each migrate instant and after each load (model/migration/save-state.ts:
 * FIFO levels, a busy TSR, armed timers, throttled ports and their popped elements, queued
 * control messages, pending interrupts per controller, run state) comes as points too, each
 * paired with the feature before it: a schedule that reaches a rare state at save time is
 * kept even when nothing after the migration differs yet.
 */
export const MAP_BITS = 16;
export const MAP_SIZE = 1 << MAP_BITS;
const MASK = MAP_SIZE - 1;

/** A cheap integer mix (32-bit, deterministic). */
function mix(a: number, b: number, c: number): number {
  let h =
    Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^
    Math.imul(b + 0x165667b1, 0xc2b2ae35) ^
    Math.imul(c + 0x27d4eb2f, 0x9e3779b1);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  return (h ^ (h >>> 13)) >>> 0;
}

/** A point kind outside the event numbering, for oracle near-misses. */
const NEAR_MISS = 0x100;
/** Point kinds for the state at a migration: + 0 saved (source), + 1 loaded (destination). */
const MIGRATION_STATE = 0x200;

export class CoverageSink implements EventSink, NearMissSink, StateSink {
  readonly map = new Uint8Array(MAP_SIZE);
  /** Indices touched in this run, so merging and resetting skip the untouched map. */
  readonly touched: number[] = [];
  private prev = 0;
  private readonly runState: number[] = [RunState.ABSENT, RunState.ABSENT];

  constructor(private readonly next?: EventSink) {}

  reset(): void {
    for (const i of this.touched) this.map[i] = 0;
    this.touched.length = 0;
    this.prev = 0;
    this.runState[0] = this.runState[1] = RunState.ABSENT;
  }

  event(at: number, kind: number, vm: number, dev: number, a: number, b: number): void {
    this.next?.event(at, kind, vm, dev, a, b);
    let point: number;
    switch (kind) {
      case Ev.REG_READ:
      case Ev.REG_WRITE:
        point = mix(kind, a, b & 0xff);
        break;
      case Ev.CTRL_TO_GUEST:
      case Ev.CTRL_DROPPED:
      case Ev.CTRL_TO_HOST:
        point = mix(kind, b >>> 16, b & 1);
        break;
      case Ev.RUN_STATE:
        if (vm >= 0) this.runState[vm] = a as RunState;
        point = mix(kind, a, vm);
        break;
      case Ev.DEV_IRQ:
      case Ev.PIN:
      case Ev.REMOTE_IRR:
        point = mix(kind, a, this.runState[vm] ?? 0);
        break;
      case Ev.MIGRATION:
        point = mix(kind, a, Math.min(b, 3));
        break;
      case Ev.SUBSECTION:
      case Ev.BACKEND:
      case Ev.HOST_CONNECTED:
      case Ev.GUEST_VIEW:
        point = mix(kind, a, b);
        break;
      case Ev.BYTE_DISCARD:
        point = mix(kind, dev & 1, b < 0 ? 3 : Math.min(b, 2));
        break;
      default:
        point = mix(kind, 0, 0);
    }
    this.hit(point);
  }

  /** The hit-count bucket of each touched index, in `touched` order (what a sibling merges). */
  buckets(): Uint8Array {
    const out = new Uint8Array(this.touched.length);
    for (let k = 0; k < out.length; k++) out[k] = BUCKET[this.map[this.touched[k]!]!]!;
    return out;
  }

  nearMiss(oracle: OracleName, key: number): void {
    this.hit(mix(NEAR_MISS, ORACLE_NAMES.indexOf(oracle), key));
  }

  state(phase: number, dev: number, feature: number, value: number): void {
    // Devices of one kind are told apart by their index (at most a few per schedule).
    this.hit(mix(MIGRATION_STATE + phase, (dev & 0xff) | (feature << 8), value));
  }

  private hit(point: number): void {
    const i = (point ^ this.prev) & MASK;
    this.prev = point >>> 1;
    const c = this.map[i]!;
    if (c === 0) this.touched.push(i);
    if (c < 255) this.map[i] = c + 1;
  }
}

/** AFL's hit-count buckets: 1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+. */
function bucket(count: number): number {
  if (count <= 3) return 1 << (count - 1);
  if (count <= 7) return 8;
  if (count <= 15) return 16;
  if (count <= 31) return 32;
  if (count <= 127) return 64;
  return 128;
}

/** bucket() of every count a map cell holds (1-255), looked up by merge for every touched cell. */
const BUCKET = Uint8Array.from({ length: 256 }, (_, count) => (count === 0 ? 0 : bucket(count)));

/** What every run so far has covered: a bit per (map index, hit-count bucket). */
export class VirginMap {
  readonly bits = new Uint8Array(MAP_SIZE);
  /** Map indices with at least one bucket seen. */
  covered = 0;

  /** Merges a run's coverage; returns how many (index, bucket) pairs were new. */
  merge(run: CoverageSink): number {
    let fresh = 0;
    for (const i of run.touched) {
      const bit = BUCKET[run.map[i]!]!;
      const seen = this.bits[i]!;
      if (seen & bit) continue;
      if (seen === 0) this.covered++;
      this.bits[i] = seen | bit;
      fresh++;
    }
    return fresh;
  }

  /**
   * Merges what another campaign's run reached (`CoverageSink.buckets` beside its touched
   * indices): the same as merging the run itself, which is deterministic, without running it.
   */
  mergeBuckets(indices: Uint16Array, buckets: Uint8Array): number {
    let fresh = 0;
    for (let k = 0; k < indices.length; k++) {
      const i = indices[k]!;
      const seen = this.bits[i]!;
      if (seen & buckets[k]!) continue;
      if (seen === 0) this.covered++;
      this.bits[i] = seen | buckets[k]!;
      fresh++;
    }
    return fresh;
  }

  /** Merges another virgin map (from a worker). */
  mergeBits(bits: Uint8Array): number {
    let fresh = 0;
    for (let i = 0; i < MAP_SIZE; i++) {
      const add = bits[i]! & ~this.bits[i]!;
      if (add === 0) continue;
      if (this.bits[i] === 0) this.covered++;
      this.bits[i]! |= add;
      fresh++;
    }
    return fresh;
  }
}
