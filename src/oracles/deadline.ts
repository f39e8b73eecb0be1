import type { World } from '../model/world.js';

/**
 * Per-VM stopwatches in vm_clock time, for "X held for longer than the deadline while the VM
 * ran". vm_clock stands still while a VM is stopped, so only running time counts; a paused
 * stopwatch (the guest masked the interrupt) keeps what it had counted. On a completed
 * migration the source's watches move to the destination: guest time is continuous.
 */
export class Stopwatches {
  /**
   * One buffer, indexed vm * size + key: `since` (vm ns when counting (re)started, -1 when
   * idle), `used` (ns counted before the last pause) at + 2 * size, `paused` (1 or 0) at
   * + 4 * size. Every run makes three of these: one allocation each, no views.
   */
  private readonly t: Float64Array;
  private readonly usedAt: number;
  private readonly pausedAt: number;

  constructor(
    private readonly world: World,
    readonly size: number,
    private readonly deadlineNs: number,
  ) {
    this.t = new Float64Array(6 * size);
    this.t.fill(-1, 0, 2 * size);
    this.usedAt = 2 * size;
    this.pausedAt = 4 * size;
  }

  private now(vm: number): number {
    return this.world.vms[vm]?.vmNow() ?? 0;
  }

  running(vm: number, key: number): boolean {
    return this.t[vm * this.size + key]! >= 0;
  }

  /** Starts counting at vm time `atVm` (default: now); a running count goes on. */
  start(vm: number, key: number, atVm?: number): void {
    const i = vm * this.size + key;
    if (this.t[i]! >= 0) return;
    this.t[i] = atVm ?? this.now(vm);
    this.t[this.usedAt + i] = 0;
  }

  /** The running time counted for `key` up to vm time `atVm` (0 when idle). */
  elapsed(vm: number, key: number, atVm = this.now(vm)): number {
    const i = vm * this.size + key;
    const since = this.t[i]!;
    if (since < 0) return 0;
    return this.t[this.usedAt + i]! + (this.t[this.pausedAt + i] ? 0 : atVm - since);
  }

  stop(vm: number, key: number): void {
    this.t[vm * this.size + key] = -1;
  }

  /** Pausing stops the count (keeping it); resuming restarts it from now. */
  setPaused(vm: number, key: number, paused: boolean): void {
    const i = vm * this.size + key;
    if ((this.t[this.pausedAt + i] === 1) === paused) return;
    this.t[this.pausedAt + i] = paused ? 1 : 0;
    if (this.t[i]! < 0) return;
    const now = this.now(vm);
    if (paused) this.t[this.usedAt + i]! += now - this.t[i]!;
    else this.t[i] = now;
  }

  /**
   * Keys of `vm` whose count reached the deadline, with the host time it happened. Call it
   * before the VM's clock stops (the crossing then lies in the current running interval).
   */
  expired(vm: number, out: (key: number, hostAt: number) => void): void {
    const m = this.world.vms[vm];
    if (!m?.clock.enabled) return;
    const now = m.vmNow();
    const t = this.t;
    const base = vm * this.size;
    for (let key = 0; key < this.size; key++) {
      const i = base + key;
      if (t[i]! < 0 || t[this.pausedAt + i]) continue;
      const deadlineV = t[i]! + this.deadlineNs - t[this.usedAt + i]!;
      if (deadlineV <= now) {
        t[i] = -1;
        out(key, deadlineV - m.clock.offsetNs);
      }
    }
  }

  /**
   * The host time at which `key`'s count reached the deadline by vm time `untilVm` (default:
   * now), or -1 if it had not: one key, without stopping it (for a count about to stop).
   */
  crossed(vm: number, key: number, untilVm = this.now(vm)): number {
    const m = this.world.vms[vm];
    const i = vm * this.size + key;
    const since = this.t[i]!;
    if (!m?.clock.enabled || since < 0 || this.t[this.pausedAt + i]) return -1;
    const deadlineV = since + this.deadlineNs - this.t[this.usedAt + i]!;
    return deadlineV <= untilVm ? deadlineV - m.clock.offsetNs : -1;
  }

  /**
   * A completed migration: the guest's watches continue on the destination. Where the source
   * counted nothing, what the destination had counted is kept only with `keepDestination`.
   */
  migrate(from: number, to: number, keepDestination: boolean): void {
    const t = this.t;
    const f = from * this.size;
    const d = to * this.size;
    for (let key = 0; key < this.size; key++) {
      t[this.pausedAt + d + key] = t[this.pausedAt + f + key]!;
      if (t[f + key]! >= 0) {
        t[d + key] = t[f + key]!;
        t[this.usedAt + d + key] = t[this.usedAt + f + key]!;
      } else if (!keepDestination) {
        t[d + key] = -1;
      }
      t[f + key] = -1;
    }
  }

  /** A failed migration: whatever the discarded destination started is forgotten. */
  reset(vm: number): void {
    const base = vm * this.size;
    this.t.fill(-1, base, base + this.size);
    this.t.fill(0, this.usedAt + base, this.usedAt + base + this.size);
    this.t.fill(0, this.pausedAt + base, this.pausedAt + base + this.size);
  }
}
