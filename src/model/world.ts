import { fail, ModelAssertError } from './assert.js';
import { Ev, type EventSink, MigPhase, RunState } from './events.js';
import { guestIrqDisable, guestIrqEnable } from './guest/guest.js';
import { uart8250Boot, uart8250Config, uart8250Write } from './guest/serial8250.js';
import { virtioConsoleClose, virtioConsoleOpen, virtioConsoleWrite } from './guest/virtio-console.js';
import { vectorOfGsi, vectorOfMsix } from './irqchip.js';
import { cloneRam, type Host, Machine, type MachineFault, type Ram } from './machine.js';
import { type BuildRegistry, findMachine } from './migration/builds.js';
import type { DeviceHazard } from './migration/context.js';
import { applySourceState, type SourceState } from './migration/from-stream.js';
import type { HostileEdits } from './migration/hostile.js';
import { LoadError } from './migration/stream.js';
import { finishLoad, loadSections, saveVm } from './migration/vm.js';
import { makeRng, type Rng } from './rng.js';
import type { Schedule, Step } from './schedule/types.js';
import { makeScheduler, pop, type Scheduler, Sk, schedule } from './scheduler.js';

/**
 * One run of a schedule: the host clock, the event queue, the two VMs (index 0 starts as the
 * source, 1 is created as a migration destination), and which of them runs the guest.
 */

export const DEFAULT_EVENT_BUDGET = 2_000_000;
export const MAX_EVENT_BUDGET = 1_000_000_000;
const STREAM_RNG_SALT = 0x5eed_e0f;

/**
 * For the first `n` loads of a run with this seed, whether the stream's end arrives after the
 * sections (MigPhase.STREAM_WAIT): a load that fails in its sections draws nothing.
 */
export function streamWaits(seed: number, n: number): boolean[] {
  const rng = makeRng((seed ^ STREAM_RNG_SALT) >>> 0);
  return Array.from({ length: n }, () => rng.below(2) === 1);
}

export interface RunOptions {
  builds: BuildRegistry;
  sink?: EventSink;
  /** Executed events allowed before the run is cut as a hang. */
  eventBudget?: number;
  /** A fault to inject into the VM that runs the guest at the start. */
  fault?: MachineFault;
  /** Device state from a real stream, applied to the source once it has booted. */
  fromStream?: SourceState;
  /**
   * A hostile migration source: rewrites each saved stream (`n` counts the migrations) before
   * the destination loads it (the hostile-stream properties and the robustness bench).
   */
  tamper?: (stream: Uint8Array, n: number) => Uint8Array;
}

export interface MigrationFailure {
  at: number;
  /** The schedule's device whose section failed, or null (stream-level error). */
  device: string | null;
  key: string;
  message: string;
}

/**
 * How a run ended. 'unsafe-load': a destination accepted a device state that its QEMU then
 * mishandles (an out-of-bounds access, one of QEMU's own asserts, a broken device): the model
 * does not run such a device on, the run stops once the migration completes.
 */
export type RunEnd =
  | { kind: 'horizon' }
  | { kind: 'hang' }
  | { kind: 'assert'; message: string }
  | { kind: 'unsafe-load'; device: string; key: string; message: string };

/** Thrown out of the run loop by a completed migration whose destination is unsafe. */
class UnsafeLoadStop extends Error {
  constructor(readonly end: RunEnd & { kind: 'unsafe-load' }) {
    super(end.message);
  }
}

interface Migration {
  from: number;
  stream: Uint8Array;
  autostart: boolean;
  srcWasRunning: boolean;
}

const NO_SINK: EventSink = { event() {} };

export class World implements Host {
  readonly q: Scheduler = makeScheduler();
  readonly rng: Rng;
  /**
   * Whether an incoming stream's end arrives after the destination has read its sections
   * (the incoming coroutine yields on EAGAIN): drawn per migration from its own generator,
   * so the draws of backends are the same with and without it. Made at the first load: a run
   * without a migration pays nothing for it.
   */
  private streamRng: Rng | null = null;
  /** What the current migration's load accepted that its devices will mishandle (unsafe-load). */
  private loadHazards: DeviceHazard[] = [];
  hostNow = 0;
  nextSerial = 1;
  eventCount = 0;
  readonly vms: (Machine | null)[] = [null, null];
  /** Index of the VM that runs the guest. */
  active = 0;
  readonly failures: MigrationFailure[] = [];
  /** Receives every executed event; set before run(). */
  sink: EventSink;
  readonly budget: number;
  /** Guest steps waiting for the guest's VM to run (its vCPUs are stopped). */
  private readonly deferred: Step[] = [];
  private migration: Migration | null = null;
  /** A migrate step whose source has not stopped yet. */
  private migrationStarting = false;
  /**
   * The current migration's hostile source (by device index), if its step has one: what the
   * source saves instead of its own serial fields (saveVm).
   */
  sourceHostile: ReadonlyMap<number, Record<string, number>> | undefined;
  /** Streams saved so far (the tamper hook's count). */
  private migrations = 0;
  readonly deviceNames: string[];

  constructor(
    readonly schedule: Schedule,
    private readonly opts: RunOptions,
  ) {
    this.rng = makeRng(schedule.seed);
    this.sink = opts.sink ?? NO_SINK;
    this.budget = opts.eventBudget ?? DEFAULT_EVENT_BUDGET;
    this.deviceNames = Object.keys(schedule.devices);
    const src = this.makeMachine(0);
    if (opts.fault) src.fault = { ...opts.fault };
    this.vms[0] = src;
  }

  emit(kind: number, vm: number, dev: number, a: number, b: number): void {
    this.eventCount++;
    this.sink.event(this.hostNow, kind, vm, dev, a, b);
  }

  get guestVm(): Machine {
    return this.vms[this.active]!;
  }

  private makeMachine(vm: number, ram?: Ram): Machine {
    const side = vm === 0 ? this.schedule.src : this.schedule.dst;
    const build = this.opts.builds.get(side.build)!;
    const machineType = findMachine(build, this.schedule.machine)!;
    return new Machine(this, {
      vm,
      build,
      machineType,
      devices: Object.entries(this.schedule.devices),
      backends: side.backends as Record<string, string>,
      ram,
    });
  }

  /** Runs to the horizon; a broken model invariant or the event budget ends it early. */
  run(): RunEnd {
    const q = this.q;
    schedule(q, 0, Sk.BOOT, 0, 0);
    // Steps enter the queue one at a time (each schedules the next): a small heap.
    this.queueStep(0);
    schedule(q, this.schedule.horizon, Sk.END, 0, 0);
    try {
      while (q.size > 0) {
        pop(q);
        const i = q.size;
        this.hostNow = q.at[i]!;
        const kind = q.kind[i]!;
        if (kind === Sk.END) return { kind: 'horizon' };
        this.dispatch(kind, q.a[i]!, q.b[i]!);
        if (this.eventCount > this.budget) return { kind: 'hang' };
      }
      return { kind: 'horizon' };
    } catch (e) {
      if (e instanceof UnsafeLoadStop) return e.end;
      if (e instanceof ModelAssertError) return { kind: 'assert', message: e.message };
      // Any other throw is a bug of the model: an abort all the same, judged and recorded
      // (a replay throws at the same event).
      if (e instanceof Error) return { kind: 'assert', message: `${e.name}: ${e.message}` };
      throw e;
    }
  }

  /** Power-on of the source; a stream's device state (if any) replaces what the guest set up. */
  boot(): void {
    const src = this.vms[0]!;
    src.powerOn();
    if (this.opts.fromStream) applySourceState(src, this.opts.fromStream);
  }

  /** The machine a backend event was queued by, if it still exists. */
  private backendMachine(packed: number, serial: number): Machine | undefined {
    const m = this.vms[packed >> 10];
    return m?.serial === serial ? m : undefined;
  }

  private queueStep(i: number): void {
    const s = this.schedule.steps[i];
    if (s) schedule(this.q, s.at, Sk.STEP, i, 0);
  }

  private dispatch(kind: number, a: number, b: number): void {
    switch (kind) {
      case Sk.TIMER:
        this.vms[a >> 10]?.timerFire(a & 1023, b);
        return;
      case Sk.STEP:
        this.queueStep(a + 1);
        this.emit(Ev.STEP, -1, -1, a, 0);
        this.step(this.schedule.steps[a]!);
        return;
      case Sk.WATCH:
        this.backendMachine(a, b)?.chardevs.watch((a >> 5) & 31, a & 31);
        return;
      case Sk.PUMP:
        this.backendMachine(a, b)?.chardevs.pump((a >> 5) & 31, a & 31);
        return;
      case Sk.DRAIN:
        this.backendMachine(a, b)?.chardevs.drain((a >> 5) & 31, a & 31);
        return;
      case Sk.BOOT:
        this.boot();
        return;
      case Sk.MIGRATE_STOP:
        this.stopForMigration(a, b === 1);
        return;
      case Sk.MIGRATE_LOAD:
        this.loadMigration();
        return;
      case Sk.MIGRATE_EOF:
        this.completeMigration();
        return;
    }
  }

  private devIndex(name: string): number {
    const i = this.deviceNames.indexOf(name);
    if (!(i >= 0)) fail(`schedule names unknown device ${name}`);
    return i;
  }

  private step(s: Step): void {
    const m = this.guestVm;
    switch (s.do) {
      case 'host.uart.send':
        return m.chardevs.hostUartSend(this.devIndex(s.dev), s.data);
      case 'host.uart.backend':
        return m.chardevs.hostUartBackend(this.devIndex(s.dev), s.state);
      case 'host.vport.connect':
      case 'host.vport.disconnect':
        return m.chardevs.hostVportConnect(this.devIndex(s.dev), s.port, s.do === 'host.vport.connect');
      case 'host.vport.send':
        return m.chardevs.hostVportSend(this.devIndex(s.dev), s.port, s.data);
      case 'vm.stop':
        if (m.running) m.vmStop(RunState.PAUSED);
        return;
      case 'vm.cont':
        if (m.runState === RunState.PAUSED) this.startGuestVm(m);
        return;
      case 'migrate':
        return this.startMigration(m, s.downtime, s.autostart, s.hostile);
      default:
        // Guest steps need the guest's vCPUs: they wait while its VM is stopped.
        if (m.running) this.guestStep(m, s);
        else this.deferred.push(s);
    }
  }

  private startGuestVm(m: Machine): void {
    m.vmStart();
    while (this.deferred.length > 0 && m.running) this.guestStep(m, this.deferred.shift()!);
  }

  private guestStep(m: Machine, s: Step): void {
    const g = m.ram.guest;
    if (!('dev' in s)) return;
    const dev = this.devIndex(s.dev);
    const drv = g.drivers[dev]!;
    // A port nobody had open is opened by its first user (serial8250_startup).
    if (drv.kind === 'uart' && !drv.d.open && s.do.startsWith('guest.uart.')) uart8250Boot(drv.d, m);
    switch (s.do) {
      case 'guest.uart.config':
        if (drv.kind === 'uart') uart8250Config(drv.d, m, s);
        return;
      case 'guest.uart.write':
        if (drv.kind === 'uart') uart8250Write(drv.d, m, s.data);
        return;
      case 'guest.vport.open':
        if (drv.kind === 'vser') virtioConsoleOpen(drv.d, m, s.port);
        return;
      case 'guest.vport.close':
        if (drv.kind === 'vser') virtioConsoleClose(drv.d, m, s.port);
        return;
      case 'guest.vport.write':
        if (drv.kind === 'vser') virtioConsoleWrite(drv.d, m, s.port, s.data);
        return;
      case 'guest.irq.mask':
        return guestIrqDisable(g, m, dev);
      case 'guest.irq.unmask': {
        const d = m.devices[dev]!;
        const msix = d.kind === 'vser' && d.s.msix;
        // Linux resends edge-type interrupts (ISA edge, MSI-X) on enable; level ones re-assert.
        return guestIrqEnable(
          g,
          m,
          dev,
          msix ? vectorOfMsix(dev, 1) : vectorOfGsi(d.gsi),
          d.kind === 'uart' || msix,
        );
      }
    }
  }

  // ------------------------------------------------------------------------------------------
  // Live migration (MODEL.md §5)

  /**
   * A running source keeps running through the migration's setup and first precopy pass,
   * which take at least one main-loop iteration: what is already due at this instant (an
   * expired vm_clock timer such as virtio-serial's post_load one) runs before the source
   * stops. A paused source stops at once; its vm_clock is disabled, nothing of it runs.
   */
  private startMigration(
    src: Machine,
    downtimeNs: number,
    autostart: boolean,
    hostile: HostileEdits | undefined,
  ): void {
    // "There's a migration process in progress"
    if (this.migration || this.migrationStarting) return;
    this.sourceHostile = hostile
      ? new Map(Object.entries(hostile).map(([name, fields]) => [this.devIndex(name), fields]))
      : undefined;
    if (src.runState === RunState.RUNNING) {
      this.migrationStarting = true;
      schedule(this.q, this.hostNow, Sk.MIGRATE_STOP, downtimeNs, autostart ? 1 : 0);
    } else if (src.runState === RunState.PAUSED) {
      this.stopForMigration(downtimeNs, autostart);
    }
  }

  /**
   * The source stops (finish-migrate) and saves every section; the destination is created
   * incoming with its own backends, receives guest RAM, and loads after the downtime.
   */
  private stopForMigration(downtimeNs: number, autostart: boolean): void {
    this.migrationStarting = false;
    const from = this.active;
    const src = this.vms[from]!;
    // A vm.stop at the same instant came first: the migration saves a paused VM.
    if (src.runState !== RunState.RUNNING && src.runState !== RunState.PAUSED) return;
    const srcWasRunning = src.running;
    src.vmStop(RunState.FINISH_MIGRATE);
    const saved = saveVm(src, this.sourceHostile);
    const stream = this.opts.tamper ? this.opts.tamper(saved, this.migrations++) : saved;
    this.emit(Ev.MIGRATION, from, -1, MigPhase.SAVED, stream.length);
    const to = 1 - from;
    // Guest RAM travels with the migration (copied: the source keeps its own if it fails).
    const dst = this.makeMachine(to, cloneRam(src.ram));
    dst.startIncoming();
    this.vms[to] = dst;
    this.emit(Ev.MIGRATION, to, -1, MigPhase.DST_CREATED, 0);
    this.migration = { from, stream, autostart, srcWasRunning };
    schedule(this.q, this.hostNow + downtimeNs, Sk.MIGRATE_LOAD, 0, 0);
  }

  /**
   * The destination reads the stream's sections. When the stream's end has not arrived yet,
   * the incoming coroutine yields (qemu_fill_buffer gets EAGAIN) and the main loop runs once
   * before the load ends: whatever is due then (vm_clock timers on builds whose clock runs
   * before vm_start, chardev handlers) runs between the sections and the end-of-load LAPIC
   * push. 3fdd0ee3's message names this window.
   */
  private loadMigration(): void {
    const mig = this.migration!;
    const dst = this.vms[1 - mig.from]!;
    if (!this.tryLoad(mig, () => (this.loadHazards = loadSections(dst, mig.stream)))) return;
    this.streamRng ??= makeRng((this.schedule.seed ^ STREAM_RNG_SALT) >>> 0);
    // A device left unsafe by the load runs nothing more: the migration completes at once.
    if (this.loadHazards.length === 0 && this.streamRng.below(2) === 1) {
      this.emit(Ev.MIGRATION, 1 - mig.from, -1, MigPhase.STREAM_WAIT, 0);
      schedule(this.q, this.hostNow, Sk.MIGRATE_EOF, 0, 0);
    } else {
      this.completeMigration();
    }
  }

  private completeMigration(): void {
    const mig = this.migration!;
    const to = 1 - mig.from;
    const dst = this.vms[to]!;
    if (!this.tryLoad(mig, () => finishLoad(dst, this.loadHazards))) return;
    this.migration = null;
    const src = this.vms[mig.from]!;
    this.emit(Ev.MIGRATION, to, -1, MigPhase.LOADED, 0);
    src.vmStop(RunState.POSTMIGRATE);
    this.active = to;
    this.emit(Ev.MIGRATION, to, -1, MigPhase.COMPLETED, 0);
    // Accepted state the device will mishandle: the run ends here with an unsafe-load finding.
    const hazard = this.loadHazards[0];
    if (hazard) {
      const { dev, key, message } = hazard;
      throw new UnsafeLoadStop({ kind: 'unsafe-load', device: this.deviceNames[dev]!, key, message });
    }
    if (mig.srcWasRunning && mig.autostart) this.startGuestVm(dst);
    else dst.vmStop(RunState.PAUSED);
  }

  /** Runs a step of the load; a LoadError fails the migration: the source resumes (if it ran). */
  private tryLoad(mig: Migration, load: () => void): boolean {
    const src = this.vms[mig.from]!;
    const to = 1 - mig.from;
    const dst = this.vms[to]!;
    try {
      load();
      return true;
    } catch (e) {
      if (!(e instanceof LoadError)) throw e;
      this.migration = null;
      this.failures.push({
        at: this.hostNow,
        device: this.sectionDevice(dst, e),
        key: e.key,
        message: e.message,
      });
      this.emit(Ev.MIGRATION, to, -1, MigPhase.FAILED, this.failures.length - 1);
      // The destination is discarded; the source resumes (if it was running).
      dst.vmStop(RunState.SHUTDOWN);
      this.vms[to] = null;
      if (mig.srcWasRunning) this.startGuestVm(src);
      else src.vmStop(RunState.PAUSED);
      return false;
    }
  }

  /** The schedule device behind a failed section (by section name and instance). */
  private sectionDevice(m: Machine, e: LoadError): string | null {
    if (e.section === null) return null;
    const kind = e.section === 'serial' ? 'uart' : e.section === 'virtio-console' ? 'vser' : null;
    if (!kind) return null;
    const same = m.devices.filter((d) => d.kind === kind);
    // A source whose UARTs each register "serial" twice (serialVmsd 'isa-and-core') numbers
    // their sections 2n and 2n+1.
    const src = this.vms[1 - m.vm];
    const copies = kind === 'uart' && src?.build.revisions.serialVmsd === 'isa-and-core' ? 2 : 1;
    return same[Math.floor(e.instanceId / copies)]?.name ?? null;
  }
}

/**
 * Whether a stream's device state fits a schedule's source (`run --from-stream`): the
 * LoadError its application raises on a scratch world, or null. Checked before the run, so a
 * misfit is an input error rather than a finding.
 */
export function sourceStateMisfit(
  schedule: Schedule,
  builds: BuildRegistry,
  st: SourceState,
): LoadError | null {
  try {
    new World(schedule, { builds, fromStream: st }).boot();
    return null;
  } catch (e) {
    if (e instanceof LoadError) return e;
    throw e;
  }
}
