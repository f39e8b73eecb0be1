import { fail } from './assert.js';
import { Chardevs } from './backends.js';
import type { Bus } from './bus.js';
import { disableClock, enableClock, hostTimeOf, makeVmClock, type VmClock, vmNow } from './clock.js';
import { Ev, RunState } from './events.js';
import { cloneGuest, type GuestState, guestBoot, guestInterrupt, makeGuest } from './guest/guest.js';
import type { GuestIo } from './guest/io.js';
import {
  type Irqchip,
  type IrqOut,
  ioapicProgram,
  ioapicSetMask,
  type LapicState,
  lapicAccept,
  lapicAck,
  lapicDeliverable,
  lapicEoi,
  MSIX_ENTRIES,
  makeIrqchip,
  msixNotify,
  msixSetMask,
  PIRQ_ISA_IRQ,
  pciSetIrq,
  pciSlotGetPirq,
  setGsiLevel,
  vectorOfGsi,
  vectorOfMsix,
} from './irqchip.js';
import type { Build, MachineType } from './migration/builds.js';
import type { Rng } from './rng.js';
import type { DeviceSpec } from './schedule/types.js';
import { type Scheduler, Sk, schedule } from './scheduler.js';
import { Iir } from './uart16550/regs.js';
import { makeUart, type UartState } from './uart16550/state.js';
import { UartTimer, uartRead, uartTimer, uartWrite } from './uart16550/uart.js';
import {
  VserTimer,
  vserKick,
  vserPostLoadTimer,
  vserReadIsr,
  vserSetStatus,
} from './virtio-serial/device.js';
import { makeVser, makeVserMem, VirtioPci, type VserMem, type VserState } from './virtio-serial/state.js';
import { cloneVrings } from './virtio-serial/virtqueue.js';

/**
 * One VM: run state, vm_clock and its timers, the interrupt path, the devices, the host-side
 * backends, and guest RAM (the guest's drivers and the virtqueue rings). It is the only
 * place that knows every device: devices ask it for effects through `Bus`, the guest
 * touches hardware through `GuestIo`, the interrupt path reports through `IrqOut`.
 */

const NO_DEVICES: readonly number[] = [];

/** Model parameters. */
export const CPU_LATENCY_NS = 2_000;
/** Bytes of each guest buffer of a virtio-serial port. */
export const PORT_BUF_SIZE = 64;

/** What a machine needs from the run around it. */
export interface Host {
  readonly q: Scheduler;
  readonly rng: Rng;
  /**
   * A run-wide counter: timer generations and machine serials come from it, so a queue entry
   * left by a discarded machine never matches the machine that replaces it.
   */
  nextSerial: number;
  hostNow: number;
  emit(kind: number, vm: number, dev: number, a: number, b: number): void;
}

/** Whether a UART's pin shows its IIR (Machine.assertUartLine). */
const UartLine = { UNCHECKED: 0, CHECKED: 1, LOADED: 2 } as const;
type UartLine = (typeof UartLine)[keyof typeof UartLine];

/**
 * One device of the machine: its schedule name, its state record, its interrupt pin, and the
 * machine's slot for each of its vm_clock timers, indexed by the device's name for the timer
 * (UartTimer, VserTimer). Guest RAM (rings, drivers) is not here: it travels with a migration
 * (Ram) while the device stays with its machine. `line`: whether a UART's pin shows its IIR
 * (Machine.assertUartLine; never checked for a virtio device). Both kinds have the same
 * fields in the same order, so the hot paths' loads from a slot see one object shape.
 */
export type DeviceSlot =
  | { kind: 'uart'; name: string; s: UartState; gsi: number; timers: number[]; line: UartLine }
  | { kind: 'vser'; name: string; s: VserState; gsi: number; timers: number[]; line: UartLine };

export interface Ram {
  guest: GuestState;
  /** Per device: virtqueue rings (null for a UART). */
  rings: (VserMem | null)[];
}

export function cloneRam(r: Ram): Ram {
  return {
    guest: cloneGuest(r.guest),
    rings: r.rings.map((m) => (m ? { rings: cloneVrings(m.rings) } : null)),
  };
}

/**
 * Faults injected on purpose, to prove that the oracles see what they must:
 * the `count`-th message for `vector` is lost before the LAPIC; the `count`-th byte the
 * backend hands a device is accepted and then forgotten.
 */
export type MachineFault =
  | { kind: 'drop-delivery'; vector: number; count: number }
  | { kind: 'forget-byte'; dev: number; count: number };

export interface MachineConfig {
  vm: number;
  build: Build;
  machineType: MachineType;
  devices: [string, DeviceSpec][];
  backends: Record<string, string>;
  /** Guest RAM received from a migration source (a fresh machine boots with its own). */
  ram?: Ram;
}

export class Machine implements Bus, GuestIo, IrqOut {
  readonly vm: number;
  /** Unique in the run: backend events carry it, so a replaced machine ignores stale ones. */
  readonly serial: number;
  readonly build: Build;
  readonly machineType: MachineType;
  runState: RunState = RunState.ABSENT;
  /** vm_clock time: advances only while the vCPUs run (cpu_enable_ticks). */
  readonly clock: VmClock = makeVmClock();
  /**
   * QEMU's `clock->enabled` for vm_clock: whether its timers run at all. A VM that has never
   * run starts with the build's value (Revisions.vmClockAtCreation); vm_stop clears it and
   * vm_start sets it. Running timers on a stopped clock fire only once due at the frozen time.
   */
  timersRun: boolean;
  readonly irq: Irqchip;
  readonly devices: DeviceSlot[];
  ram: Ram;
  /** The host side of the devices: chardevs and their front ends. */
  readonly chardevs: Chardevs;
  /**
   * vm_clock timers, the only record of them: per slot an absolute expiry (-1 idle) and a
   * generation that retires stale queue entries. Slot 0 is the CPU's interrupt dispatch;
   * devices name their timers (UartTimer, VserTimer) and DeviceSlot.timers maps names to slots.
   */
  readonly slotExpiry: Float64Array;
  readonly slotGen: Int32Array;
  /** The device and its timer's name behind each slot (-1 for slot 0). */
  readonly slotDev: Int32Array;
  readonly slotTimer: Int32Array;
  /** Devices served by each vector (devices sharing a pin share its vector). */
  readonly vectorDevs = new Map<number, number[]>();
  /** The vCPU is inside an interrupt handler. */
  private dispatching = false;
  /** The LAPIC read from the stream, until the end of load pushes it (pre-2017 builds). */
  stagedLapic: LapicState | null = null;
  /** An injected fault (tests and oracle self-checks), or null. */
  fault: MachineFault | null = null;

  constructor(
    readonly host: Host,
    cfg: MachineConfig,
  ) {
    this.vm = cfg.vm;
    this.serial = host.nextSerial++;
    this.build = cfg.build;
    this.machineType = cfg.machineType;
    this.timersRun = cfg.build.revisions.vmClockAtCreation === 'enabled';
    this.irq = makeIrqchip(cfg.devices.length);
    let pciSlot = 3; // PCI slots 0-2 hold the host bridge, ISA bridge and VGA
    // Slot numbers are in the traces (TIMER events): slot 0 is the CPU's dispatch, then each
    // device's timers in device order, then each UART's 1.x transmit_timer.
    const slotDev: number[] = [-1];
    const slotTimer: number[] = [-1];
    const addTimer = (dev: number, timer: number): number => {
      slotDev.push(dev);
      slotTimer.push(timer);
      return slotDev.length - 1;
    };
    this.devices = cfg.devices.map(([name, spec], dev): DeviceSlot => {
      if (spec.kind === 'isa-serial') {
        const rev = cfg.build.revisions;
        const pollMsl = rev.serialPollMsl === 'reset-zero' ? 0 : -1;
        const s = makeUart(dev, rev.uartGeneration, pollMsl, rev.serialSpeed);
        // TRANSMIT is numbered below, after every other device's timers.
        const timers = [addTimer(dev, UartTimer.FIFO_TIMEOUT), addTimer(dev, UartTimer.MODEM_POLL), -1];
        // PCI INTx devices may drive the PIRQ pins too: the pair assertion holds only alone.
        const line = PIRQ_ISA_IRQ.includes(spec.irq) ? UartLine.UNCHECKED : UartLine.CHECKED;
        return { kind: 'uart', name, s, gsi: spec.irq, timers, line };
      }
      const pirq = pciSlotGetPirq(pciSlot++, 0); // INTA
      const s = makeVser(dev, pirq, spec.irq === 'msix', spec.ports);
      return {
        kind: 'vser',
        name,
        s,
        gsi: PIRQ_ISA_IRQ[pirq]!,
        timers: [addTimer(dev, VserTimer.POST_LOAD)],
        line: UartLine.UNCHECKED,
      };
    });
    for (const [dev, d] of this.devices.entries())
      if (d.kind === 'uart') d.timers[UartTimer.TRANSMIT] = addTimer(dev, UartTimer.TRANSMIT);
    this.slotExpiry = new Float64Array(slotDev.length).fill(-1);
    this.slotGen = new Int32Array(slotDev.length);
    this.slotDev = new Int32Array(slotDev);
    this.slotTimer = new Int32Array(slotTimer);
    this.ram = cfg.ram ?? {
      guest: makeGuest(
        cfg.devices.map(([, spec]) =>
          spec.kind === 'isa-serial'
            ? { kind: 'uart', open: spec.guestOpen }
            : { kind: 'vser', msix: spec.irq === 'msix', portIds: spec.ports.map((p) => p.id) },
        ),
      ),
      rings: cfg.devices.map(([, spec]) =>
        spec.kind === 'virtio-serial' ? makeVserMem(spec.ports, PORT_BUF_SIZE) : null,
      ),
    };
    this.chardevs = new Chardevs(this, cfg.backends);
    for (const [dev, d] of this.devices.entries()) {
      const vectors =
        d.kind === 'vser' && d.s.msix ? [vectorOfMsix(dev, 0), vectorOfMsix(dev, 1)] : [vectorOfGsi(d.gsi)];
      for (const v of vectors) {
        const list = this.vectorDevs.get(v) ?? [];
        list.push(dev);
        this.vectorDevs.set(v, list);
      }
    }
  }

  // ------------------------------------------------------------------------------------------
  // Run state (QEMU vm_stop / vm_start ordering)

  get running(): boolean {
    return this.runState === RunState.RUNNING;
  }

  private setRunState(state: RunState): void {
    this.runState = state;
    this.emit(Ev.RUN_STATE, -1, state, 0);
  }

  /** Power on (the source at t=0): running, the guest boots. */
  powerOn(): void {
    this.setRunState(RunState.RUNNING);
    enableClock(this.clock, this.host.hostNow);
    this.timersRun = true;
    this.programInterrupts();
    guestBoot(this.ram.guest, this);
  }

  /**
   * Created as a migration destination (-incoming): inmigrate, vm_clock frozen; its timers
   * run or not as the build's vm_clock starts (timersRun).
   */
  startIncoming(): void {
    this.setRunState(RunState.INMIGRATE);
  }

  /**
   * do_vm_stop: run state, vm_clock stopped and disabled (pause_all_vcpus), then state-change
   * handlers. A VM that does not run only changes run state (runstate_set).
   */
  vmStop(state: RunState): void {
    if (!this.running) {
      this.setRunState(state);
      return;
    }
    this.setRunState(state);
    disableClock(this.clock, this.host.hostNow);
    this.timersRun = false;
    for (let slot = 0; slot < this.slotGen.length; slot++) this.slotGen[slot] = this.host.nextSerial++;
  }

  /**
   * vm_start: RUNNING, state-change handlers (backends re-attached: a backend that opened
   * while detached delivers its OPENED event now), then vCPUs resume and vm_clock is enabled,
   * so expired vm_clock timers run now, in expiry order.
   */
  vmStart(): void {
    this.setRunState(RunState.RUNNING);
    this.chardevs.attach();
    enableClock(this.clock, this.host.hostNow);
    this.timersRun = true;
    const armed: number[] = [];
    for (let slot = 0; slot < this.slotExpiry.length; slot++)
      if (this.slotExpiry[slot]! >= 0) armed.push(slot);
    armed.sort((x, y) => this.slotExpiry[x]! - this.slotExpiry[y]! || x - y);
    for (const slot of armed) this.queueTimer(slot);
    this.cpuKick();
  }

  // ------------------------------------------------------------------------------------------
  // vm_clock timers

  vmNow(): number {
    return vmNow(this.clock, this.host.hostNow);
  }

  timerMod(dev: number, timer: number, expiryNs: number): void {
    this.slotMod(this.slotOf(dev, timer), expiryNs);
  }

  timerExpiry(dev: number, timer: number): number {
    return this.slotExpiry[this.slotOf(dev, timer)]!;
  }

  /** The slot of a device's timer (its number in TIMER events). */
  slotOf(dev: number, timer: number): number {
    const slot = this.devices[dev]!.timers[timer];
    if (!(slot !== undefined && slot > 0)) fail(`machine: device ${dev} has no timer ${timer}`);
    return slot;
  }

  private slotMod(slot: number, expiryNs: number): void {
    this.slotExpiry[slot] = expiryNs;
    this.slotGen[slot] = this.host.nextSerial++;
    if (expiryNs >= 0 && this.timersRun) this.queueTimer(slot);
  }

  /**
   * Queues a timer's expiry. On a frozen clock whose timers run (a never-started VM before
   * 3fdd0ee3) only a timer already due fires, on the next main-loop pass; a later one waits
   * for vm_start, which queues every armed timer again.
   */
  private queueTimer(slot: number): void {
    const expiry = this.slotExpiry[slot]!;
    if (!this.clock.enabled && expiry > this.vmNow()) return;
    const gen = this.host.nextSerial++;
    this.slotGen[slot] = gen;
    const at = this.clock.enabled
      ? Math.max(this.host.hostNow, hostTimeOf(this.clock, expiry))
      : this.host.hostNow;
    schedule(this.host.q, at, Sk.TIMER, (this.vm << 10) | slot, gen);
  }

  /** A queued timer entry came due; stale entries (re-armed, cancelled, clock stopped) are ignored. */
  timerFire(slot: number, gen: number): void {
    if (gen !== this.slotGen[slot] || this.slotExpiry[slot]! < 0 || !this.timersRun) return;
    // The oracles judge the TIMER event on the state it came due in, the timer still pending;
    // the callback then runs with it consumed (timer_pending is false in QEMU's callback).
    this.emit(Ev.TIMER, slot, 0, 0);
    this.slotExpiry[slot] = -1;
    if (slot === 0) return this.cpuDispatch();
    const dev = this.slotDev[slot]!;
    const d = this.devices[dev]!;
    if (d.kind === 'uart') uartTimer(d.s, this, this.slotTimer[slot] as UartTimer);
    else vserPostLoadTimer(d.s, this, this.rings(dev));
  }

  // ------------------------------------------------------------------------------------------
  // CPU and interrupt delivery

  deliver(vector: number, level: boolean): void {
    if (this.fault?.kind === 'drop-delivery' && this.fault.vector === vector && this.fault.count-- === 1) {
      this.emit(Ev.FAULT, -1, vector, 0);
      return; // injected: the message never reaches the LAPIC
    }
    lapicAccept(this.irq.lapic, vector, level);
    this.cpuKick();
  }

  cpuKick(): void {
    // During a handler the CPU looks again when it returns (the end of cpuDispatch).
    if (!this.running || this.slotExpiry[0]! >= 0 || this.dispatching) return;
    if (lapicDeliverable(this.irq.lapic) < 0) return;
    this.slotMod(0, this.vmNow() + CPU_LATENCY_NS);
  }

  /** The vCPU takes the highest deliverable vector, runs the guest's handlers, then EOIs. */
  private cpuDispatch(): void {
    const vector = lapicDeliverable(this.irq.lapic);
    if (vector >= 0) {
      this.dispatching = true;
      lapicAck(this.irq.lapic, vector);
      guestInterrupt(this.ram.guest, this, vector, this.vectorDevs.get(vector) ?? NO_DEVICES);
      lapicEoi(this.irq, this, vector);
      this.dispatching = false;
    }
    this.cpuKick();
  }

  setIrq(dev: number, level: number): void {
    const d = this.devices[dev]!;
    if (d.kind === 'vser') {
      pciSetIrq(this.irq, this, dev, d.s.pirq, level);
      return;
    }
    if (d.line === UartLine.LOADED) d.line = UartLine.CHECKED;
    if (this.irq.ioapic.level[d.gsi] === level) return;
    this.emit(Ev.DEV_IRQ, dev, level, 0);
    setGsiLevel(this.irq, this, d.gsi, level);
  }

  msixNotify(dev: number, entry: number): void {
    msixNotify(this.irq, this, dev, entry);
  }

  maskSource(dev: number, masked: boolean): void {
    const d = this.devices[dev]!;
    if (d.kind === 'vser' && d.s.msix) {
      for (let e = 0; e < MSIX_ENTRIES; e++) msixSetMask(this.irq, this, dev, e, masked);
    } else {
      ioapicSetMask(this.irq, this, d.gsi, masked);
    }
  }

  /** The guest's boot-time programming of each device's interrupt source. */
  programInterrupts(): void {
    for (const [dev, d] of this.devices.entries()) {
      if (d.kind === 'vser' && d.s.msix) this.maskSource(dev, false);
      else ioapicProgram(this.irq, this, d.gsi, d.kind === 'vser');
    }
  }

  // ------------------------------------------------------------------------------------------
  // Guest register access (each access is an executed event)

  uartRead(dev: number, offset: number): number {
    const d = this.devices[dev]!;
    const v = d.kind === 'uart' ? uartRead(d.s, this, offset) : 0xff;
    this.emit(Ev.REG_READ, dev, offset, v);
    if (d.kind === 'uart') this.assertUartLine(d);
    return v;
  }

  uartWrite(dev: number, offset: number, value: number): void {
    this.emit(Ev.REG_WRITE, dev, offset, value);
    const d = this.devices[dev]!;
    if (d.kind === 'uart') {
      uartWrite(d.s, this, offset, value);
      this.assertUartLine(d);
    }
  }

  /**
   * serial_update_irq's pair invariant, after every register access: the UART's pin is high
   * exactly while IIR shows an interrupt. It holds for the state the device made itself, so
   * it waits after a load (the i8259's section sets the pin, the serial one IIR) until the
   * device drives its line again, and never applies to a pin PCI INTx devices may drive too.
   */
  private assertUartLine(d: DeviceSlot & { kind: 'uart' }): void {
    if (d.line !== UartLine.CHECKED) return;
    const pending = (d.s.iir & Iir.NO_INT) === 0 ? 1 : 0;
    const level = this.irq.ioapic.level[d.gsi];
    if (level !== pending) fail(`uart ${d.s.dev}: IRQ line ${level} but IIR 0x${d.s.iir.toString(16)}`);
  }

  /** A migration load set the UART's state: its line is the interrupt controller's until it drives it. */
  uartLoaded(dev: number): void {
    const d = this.devices[dev]!;
    if (d.line === UartLine.CHECKED) d.line = UartLine.LOADED;
  }

  vserRead(dev: number, offset: number): number {
    const d = this.devices[dev]!;
    const v = d.kind === 'vser' && offset === VirtioPci.ISR ? vserReadIsr(d.s, this) : 0;
    this.emit(Ev.REG_READ, dev, offset, v);
    return v;
  }

  vserWrite(dev: number, offset: number, value: number): void {
    this.emit(Ev.REG_WRITE, dev, offset, value);
    const d = this.devices[dev]!;
    if (d.kind !== 'vser') return;
    if (offset === VirtioPci.STATUS) vserSetStatus(d.s, value);
    else if (offset === VirtioPci.QUEUE_NOTIFY) vserKick(d.s, this, this.rings(dev), value);
  }

  vserMem(dev: number): VserMem {
    return this.rings(dev);
  }

  rings(dev: number): VserMem {
    return this.ram.rings[dev]!;
  }

  emit(kind: number, dev: number, a: number, b: number): void {
    this.host.emit(kind, this.vm, dev, a, b);
  }

  // ------------------------------------------------------------------------------------------
  // Chardev front ends (Bus), in backends.ts

  chrWrite(dev: number, port: number, byte: number): number {
    return this.chardevs.write(dev, port, byte);
  }

  chrAddWatch(dev: number, port: number): void {
    this.chardevs.addWatch(dev, port);
  }

  chrWatchPending(dev: number, port: number): boolean {
    return this.chardevs.watchPending(dev, port);
  }

  chrRemoveWatch(dev: number, port: number): void {
    this.chardevs.removeWatch(dev, port);
  }

  chrAcceptInput(dev: number, port: number): void {
    this.chardevs.acceptInput(dev, port);
  }
}
