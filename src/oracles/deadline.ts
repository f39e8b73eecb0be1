import type { World } from '../model/world.js';

/**
 * Per-VM stopwatches in vm_clock time, for "X held for longer than the deadline while the VM
 * ran". vm_clock stands still while a VM is stopped, so only running time counts; a paused
 * stopwatch (the guest masked the interrupt) keeps what it had counted. On a completed
 * migration the source's watches move to the destination: guest time is continuous.
 */
export class Stopwatches {
  /** [vm][key]: vm ns when counting (re)started, -1 when idle. */
  private readonly since: Float64Array[];
  /** [vm][key]: ns counted before the last pause. */
  private readonly used: Float64Array[];
  private readonly paused: Uint8Array[];

  constructor(
    private readonly world: World,
    readonly size: number,
    private readonly deadlineNs: number,
  ) {
    // Views of two buffers: every run makes these, and a buffer costs more than its bytes.
    const times = new Float64Array(4 * size);
    const paused = new Uint8Array(2 * size);
    times.fill(-1, 0, 2 * size);
    this.since = [times.subarray(0, size), times.subarray(size, 2 * size)];
    this.used = [times.subarray(2 * size, 3 * size), times.subarray(3 * size)];
    this.paused = [paused.subarray(0, size), paused.subarray(size)];
  }

  private now(vm: number): number {
    return this.world.vms[vm]?.vmNow() ?? 0;
  }

  running(vm: number, key: number): boolean {
    return this.since[vm]![key]! >= 0;
  }

  /** Starts counting at vm time `atVm` (default: now); a running count goes on. */
  start(vm: number, key: number, atVm = this.now(vm)): void {
    if (this.since[vm]![key]! >= 0) return;
    this.since[vm]![key] = atVm;
    this.used[vm]![key] = 0;
  }

  /** The running time counted for `key` up to vm time `atVm` (0 when idle). */
  elapsed(vm: number, key: number, atVm = this.now(vm)): number {
    const since = this.since[vm]![key]!;
    if (since < 0) return 0;
    return this.used[vm]![key]! + (this.paused[vm]![key] ? 0 : atVm - since);
  }

  stop(vm: number, key: number): void {
    this.since[vm]![key] = -1;
  }

  /** Pausing stops the count (keeping it); resuming restarts it from now. */
  setPaused(vm: number, key: number, paused: boolean): void {
    const p = this.paused[vm]!;
    if ((p[key] === 1) === paused) return;
    p[key] = paused ? 1 : 0;
    if (this.since[vm]![key]! < 0) return;
    const now = this.now(vm);
    if (paused) this.used[vm]![key]! += now - this.since[vm]![key]!;
    else this.since[vm]![key] = now;
  }

  /**
   * Keys of `vm` whose count reached the deadline, with the host time it happened. Call it
   * before the VM's clock stops (the crossing then lies in the current running interval).
   */
  expired(vm: number, out: (key: number, hostAt: number) => void): void {
    const m = this.world.vms[vm];
    if (!m?.clock.enabled) return;
    const now = m.vmNow();
    const since = this.since[vm]!;
    for (let key = 0; key < this.size; key++) {
      if (since[key]! < 0 || this.paused[vm]![key]) continue;
      const deadlineV = since[key]! + this.deadlineNs - this.used[vm]![key]!;
      if (deadlineV <= now) {
        since[key] = -1;
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
    const since = this.since[vm]![key]!;
    if (!m?.clock.enabled || since < 0 || this.paused[vm]![key]) return -1;
    const deadlineV = since + this.deadlineNs - this.used[vm]![key]!;
    return deadlineV <= untilVm ? deadlineV - m.clock.offsetNs : -1;
  }

  /** A completed migration: the guest's watches continue on the destination. */
  migrate(from: number, to: number, keepDestination: (key: number) => boolean): void {
    for (let key = 0; key < this.size; key++) {
      this.paused[to]![key] = this.paused[from]![key]!;
      if (this.since[from]![key]! >= 0) {
        this.since[to]![key] = this.since[from]![key]!;
        this.used[to]![key] = this.used[from]![key]!;
      } else if (!keepDestination(key)) {
        this.since[to]![key] = -1;
      }
      this.since[from]![key] = -1;
    }
  }

  /** A failed migration: whatever the discarded destination started is forgotten. */
  reset(vm: number): void {
    this.since[vm]!.fill(-1);
    this.used[vm]!.fill(0);
    this.paused[vm]!.fill(0);
  }
}
