import type { Bus } from './bus.js';
import { disableClock, enableClock, hostTimeOf, makeVmClock, type VmClock, vmNow } from './clock.js';
import { Ev, RunState, streamId } from './events.js';
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
  PCI_GSI_BASE,
  pciSetIrq,
  setGsiLevel,
  vectorOfGsi,
  vectorOfMsix,
} from './irqchip.js';
import type { Build, MachineType } from './migration/builds.js';
import type { Rng } from './rng.js';
import type { DeviceSpec, UartBackendState } from './schedule/types.js';
import { type Scheduler, schedule } from './scheduler.js';
import { makeUart, type UartState } from './uart16550/state.js';
import {
  uartCanReceive,
  uartRead,
  uartReceive,
  uartTimer,
  uartTimerOf,
  uartWatch,
  uartWrite,
} from './uart16550/uart.js';
import {
  vserCanReceive,
  vserHostClose,
  vserHostOpen,
  vserKick,
  vserPostLoadTimer,
  vserReadIsr,
  vserSetStatus,
  vserUnthrottle,
  vserWrite,
} from './virtio-serial/device.js';
import { makeVser, makeVserMem, VirtioPci, type VserMem, type VserState } from './virtio-serial/state.js';
import { cloneVring } from './virtio-serial/virtqueue.js';

/**
 * One VM: run state, vm_clock and its timers, the interrupt path, the devices, the host-side
 * backends, and guest RAM (the guest's drivers and the virtqueue rings). It is the only
 * place that knows every device: devices ask it for effects through `Bus`, the guest
 * touches hardware through `GuestIo`, the interrupt path reports through `IrqOut`.
 */

const NO_DEVICES: readonly number[] = [];

/** Model parameters. */
export const CPU_LATENCY_NS = 2_000;
/** A `slow` backend's writability watch fires this long (host time) after an EAGAIN. */
export const SLOW_WATCH_NS = 50_000;
/**
 * A `slow` backend answers EAGAIN for a stall of 0..6 write attempts, drawn whenever no stall
 * is under way; a stall outlasts a byte the UART gives up on (the reader is still slow).
 */
export const SLOW_MAX_STALLS = 6;
/** A socket backend buffers this many bytes; its peer drains them every SOCKET_DRAIN_NS. */
export const SOCKET_BUF = 256;
export const SOCKET_DRAIN_NS = 100_000;
/** Bytes of each guest buffer of a virtio-serial port. */
export const PORT_BUF_SIZE = 64;

/** Scheduler event kinds (host-time queue). */
export const Sk = {
  STEP: 0,
  /** a = vm << 10 | slot, b = generation. */
  TIMER: 1,
  /** A backend watch fires: a = vm << 10 | dev << 5 | port. */
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
} as const;

export const packBackend = (vm: number, dev: number, port: number): number => (vm << 10) | (dev << 5) | port;

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

export type DeviceModel =
  | { kind: 'uart'; name: string; s: UartState; gsi: number }
  | { kind: 'vser'; name: string; s: VserState; gsi: number };

export interface UartBackend {
  state: UartBackendState;
  /** Bytes the host sent that the UART has not taken yet. */
  input: number[];
  /** slow: EAGAINs left for the byte being written; -1 = not drawn yet. */
  stallsLeft: number;
  watch: boolean;
  pumpQueued: boolean;
}

export interface VportBackend {
  connected: boolean;
  input: number[];
  /** Bytes in the socket buffer not yet read by the peer. */
  buffered: number;
  watch: boolean;
  pumpQueued: boolean;
  drainQueued: boolean;
}

export interface Ram {
  guest: GuestState;
  /** Per device: virtqueue rings (null for a UART). */
  rings: (VserMem | null)[];
}

export function cloneRam(r: Ram): Ram {
  return {
    guest: cloneGuest(r.guest),
    rings: r.rings.map((m) => (m ? { rings: m.rings.map((x) => (x ? cloneVring(x) : null)) } : null)),
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
  readonly clock: VmClock = makeVmClock();
  readonly irq: Irqchip;
  readonly devices: DeviceModel[];
  ram: Ram;
  readonly uartBackends: (UartBackend | null)[];
  /** Per device, per port id. */
  readonly vportBackends: (Map<number, VportBackend> | null)[];
  /** vm_clock timers: absolute expiry (-1 idle) and a generation that retires stale queue entries. */
  readonly timerExpiry: Float64Array;
  readonly timerGen: Int32Array;
  readonly slotDev: Int32Array;
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
    this.irq = makeIrqchip(cfg.devices.length);
    let slot = 1; // slot 0: the CPU's interrupt dispatch
    let pciSlot = 3; // PCI slots 0-2 hold the host bridge, ISA bridge and VGA
    const slotDev: number[] = [-1];
    // Each UART's 1.x transmit_timer comes after every other slot (numbering kept).
    const uarts = cfg.devices.filter(([, spec]) => spec.kind === 'isa-serial').length;
    let xmitSlot = 1 + cfg.devices.length + uarts;
    this.devices = cfg.devices.map(([name, spec], dev): DeviceModel => {
      if (spec.kind === 'isa-serial') {
        slotDev.push(dev, dev); // FIFO timeout, modem-status poll
        slot += 2;
        const rev = cfg.build.revisions;
        const pollMsl = rev.serialPollMsl === 'reset-zero' ? 0 : -1;
        const s = makeUart(dev, slot - 2, xmitSlot++, rev.uartGeneration, pollMsl, rev.serialSpeed);
        return { kind: 'uart', name, s, gsi: spec.irq };
      }
      const pirq = pciSlot++ & 3; // pci_slot_get_pirq: (slot + INTA) & 3
      slotDev.push(dev);
      const s = makeVser(dev, pirq, slot++, spec.irq === 'msix', spec.ports);
      return { kind: 'vser', name, s, gsi: PCI_GSI_BASE + pirq };
    });
    for (const d of this.devices) if (d.kind === 'uart') slotDev.push(d.s.dev);
    slot = slotDev.length;
    this.timerExpiry = new Float64Array(slot).fill(-1);
    this.timerGen = new Int32Array(slot);
    this.slotDev = Int32Array.from(slotDev);
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
    this.uartBackends = this.devices.map((d) =>
      d.kind === 'uart'
        ? {
            state: (cfg.backends[d.name] as UartBackendState) ?? 'open',
            input: [],
            stallsLeft: -1,
            watch: false,
            pumpQueued: false,
          }
        : null,
    );
    this.vportBackends = this.devices.map((d) => {
      if (d.kind !== 'vser') return null;
      const m = new Map<number, VportBackend>();
      for (const p of d.s.ports) {
        const connected = cfg.backends[`${d.name}.port${p.id}`] === 'socket';
        m.set(p.id, {
          connected,
          input: [],
          buffered: 0,
          watch: false,
          pumpQueued: false,
          drainQueued: false,
        });
        // A connected backend at realize: host_connected before the guest exists.
        p.hostConnected = connected;
      }
      return m;
    });
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
    this.programInterrupts();
    guestBoot(this.ram.guest, this);
  }

  /** Created as a migration destination (-incoming): inmigrate, vm_clock disabled. */
  startIncoming(): void {
    this.setRunState(RunState.INMIGRATE);
  }

  /** do_vm_stop: run state, vm_clock disabled, then state-change handlers (backends detached). */
  vmStop(state: RunState): void {
    if (!this.running) {
      this.setRunState(state);
      return;
    }
    this.setRunState(state);
    disableClock(this.clock, this.host.hostNow);
    for (let slot = 0; slot < this.timerGen.length; slot++) this.timerGen[slot] = this.host.nextSerial++;
  }

  /**
   * vm_start: RUNNING, state-change handlers (backends re-attached: a backend that opened
   * while detached delivers its OPENED event now), then vCPUs resume and vm_clock is enabled,
   * so expired vm_clock timers run now, in expiry order.
   */
  vmStart(): void {
    this.setRunState(RunState.RUNNING);
    this.attachBackends();
    enableClock(this.clock, this.host.hostNow);
    const armed: number[] = [];
    for (let slot = 0; slot < this.timerExpiry.length; slot++)
      if (this.timerExpiry[slot]! >= 0) armed.push(slot);
    armed.sort((x, y) => this.timerExpiry[x]! - this.timerExpiry[y]! || x - y);
    for (const slot of armed) this.queueTimer(slot);
    this.cpuKick();
  }

  private attachBackends(): void {
    for (const [dev, d] of this.devices.entries()) {
      if (d.kind === 'uart') {
        const b = this.uartBackends[dev]!;
        if (b.watch && b.state !== 'hung-up') this.queueBackend(Sk.WATCH, dev, 0, 0);
        this.queueBackend(Sk.PUMP, dev, 0, 0);
        continue;
      }
      for (const [port, b] of this.vportBackends[dev]!) {
        // qemu_chr_fe_set_handlers delivers CHR_EVENT_OPENED for an open backend; a close
        // that happened while detached is not replayed (QEMU loses it too).
        if (b.connected) vserHostOpen(d.s, this, this.rings(dev), port);
        if (b.watch) this.queueBackend(Sk.WATCH, dev, port, 0);
        this.queueBackend(Sk.PUMP, dev, port, 0);
      }
    }
  }

  // ------------------------------------------------------------------------------------------
  // vm_clock timers

  vmNow(): number {
    return vmNow(this.clock, this.host.hostNow);
  }

  timerMod(slot: number, expiryNs: number): void {
    this.timerExpiry[slot] = expiryNs;
    this.timerGen[slot] = this.host.nextSerial++;
    if (expiryNs >= 0 && this.clock.enabled) this.queueTimer(slot);
  }

  private queueTimer(slot: number): void {
    const gen = this.host.nextSerial++;
    this.timerGen[slot] = gen;
    const at = Math.max(this.host.hostNow, hostTimeOf(this.clock, this.timerExpiry[slot]!));
    schedule(this.host.q, at, Sk.TIMER, (this.vm << 10) | slot, gen);
  }

  /** A queued timer entry came due; stale entries (re-armed, cancelled, clock stopped) are ignored. */
  timerFire(slot: number, gen: number): void {
    if (gen !== this.timerGen[slot] || this.timerExpiry[slot]! < 0 || !this.clock.enabled) return;
    this.timerExpiry[slot] = -1;
    this.emit(Ev.TIMER, slot, 0, 0);
    if (slot === 0) return this.cpuDispatch();
    const dev = this.slotDev[slot]!;
    const d = this.devices[dev]!;
    if (d.kind === 'uart') uartTimer(d.s, this, uartTimerOf(d.s, slot));
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
    if (!this.running || this.timerExpiry[0]! >= 0 || this.dispatching) return;
    if (lapicDeliverable(this.irq.lapic) < 0) return;
    this.timerMod(0, this.vmNow() + CPU_LATENCY_NS);
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
    return v;
  }

  uartWrite(dev: number, offset: number, value: number): void {
    this.emit(Ev.REG_WRITE, dev, offset, value);
    const d = this.devices[dev]!;
    if (d.kind === 'uart') uartWrite(d.s, this, offset, value);
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
  // Host-side backends (chardevs)

  private queueBackend(kind: number, dev: number, port: number, delayNs: number): void {
    schedule(this.host.q, this.host.hostNow + delayNs, kind, packBackend(this.vm, dev, port), this.serial);
  }

  chrWrite(dev: number, port: number, byte: number): number {
    const d = this.devices[dev]!;
    const stream = streamId(dev, port, false);
    if (d.kind === 'uart') {
      const b = this.uartBackends[dev]!;
      switch (b.state) {
        case 'hung-up':
          return 0;
        case 'closed':
          // No reader: the write "succeeds" and the byte is gone, as documented.
          this.emit(Ev.BYTE_DISCARD, stream, byte, 0);
          return 1;
        case 'slow':
          if (b.stallsLeft < 0) b.stallsLeft = this.host.rng.below(SLOW_MAX_STALLS + 1);
          if (b.stallsLeft > 0) {
            b.stallsLeft--;
            return 0;
          }
          b.stallsLeft = -1;
          break;
        case 'open':
          break;
      }
      this.emit(Ev.BYTE_DELIVER, stream, byte, 0);
      return 1;
    }
    const b = this.vportBackends[dev]!.get(port)!;
    if (!b.connected) {
      // A write to a chardev with no peer is discarded.
      this.emit(Ev.BYTE_DISCARD, stream, byte, 0);
      return 1;
    }
    if (b.buffered >= SOCKET_BUF) return 0;
    b.buffered++;
    if (!b.drainQueued) {
      b.drainQueued = true;
      this.queueBackend(Sk.DRAIN, dev, port, SOCKET_DRAIN_NS);
    }
    this.emit(Ev.BYTE_DELIVER, stream, byte, 0);
    return 1;
  }

  chrAddWatch(dev: number, port: number): void {
    const d = this.devices[dev]!;
    if (d.kind === 'vser') {
      this.vportBackends[dev]!.get(port)!.watch = true;
      return; // fires when the peer drains the socket
    }
    const b = this.uartBackends[dev]!;
    b.watch = true;
    if (b.state === 'slow') this.queueBackend(Sk.WATCH, dev, 0, SLOW_WATCH_NS);
    else if (b.state !== 'hung-up') this.queueBackend(Sk.WATCH, dev, 0, 0);
    // hung-up: the watch never fires until the state changes.
  }

  chrAcceptInput(dev: number, port: number): void {
    const b =
      this.devices[dev]!.kind === 'uart' ? this.uartBackends[dev]! : this.vportBackends[dev]!.get(port)!;
    if (b.pumpQueued || b.input.length === 0) return;
    b.pumpQueued = true;
    // qemu_chr_fe_accept_input: the main loop polls the chardev again; not inside this access.
    this.queueBackend(Sk.PUMP, dev, port, 0);
  }

  /** A backend watch came due (G_IO_OUT): the device retries, if the VM runs. */
  backendWatch(dev: number, port: number): void {
    const d = this.devices[dev]!;
    if (!this.running) return; // detached: re-examined by attachBackends at vm_start
    if (d.kind === 'uart') {
      const b = this.uartBackends[dev]!;
      if (!b.watch || b.state === 'hung-up') return;
      b.watch = false;
      uartWatch(d.s, this);
      return;
    }
    const b = this.vportBackends[dev]!.get(port)!;
    if (!b.watch) return;
    b.watch = false;
    vserUnthrottle(d.s, this, this.rings(dev), port);
  }

  /** The backend offers its pending input, as much as the device can take. */
  backendPump(dev: number, port: number): void {
    const d = this.devices[dev]!;
    if (d.kind === 'uart') {
      const b = this.uartBackends[dev]!;
      b.pumpQueued = false;
      if (!this.running) return;
      // qemu_chr_be_write: up to can_receive bytes per call, until it says 0.
      let head = 0;
      for (let n = uartCanReceive(d.s); n > 0 && head < b.input.length; n = uartCanReceive(d.s)) {
        const end = Math.min(b.input.length, head + n);
        for (; head < end; head++) {
          const byte = b.input[head]!;
          if (this.fault?.kind === 'forget-byte' && this.fault.dev === dev && this.fault.count-- === 1) {
            this.emit(Ev.BYTE_ACCEPT, streamId(dev, 0, true), byte, 0);
            this.emit(Ev.FAULT, dev, byte, 0);
            continue;
          }
          uartReceive(d.s, this, byte);
        }
      }
      if (head > 0) b.input.splice(0, head);
      return;
    }
    const b = this.vportBackends[dev]!.get(port)!;
    b.pumpQueued = false;
    if (!this.running || !b.connected || b.input.length === 0) return;
    const mem = this.rings(dev);
    const n = Math.min(vserCanReceive(d.s, mem, port), b.input.length);
    if (n === 0) return;
    const data = Uint8Array.from(b.input.splice(0, n));
    const taken = vserWrite(d.s, this, mem, port, data, 0, n);
    // What the guest's buffers did not take stays with the backend.
    if (taken < n) b.input.unshift(...data.subarray(taken));
  }

  /** The socket's peer read everything buffered: writable again. */
  backendDrain(dev: number, port: number): void {
    const b = this.vportBackends[dev]!.get(port)!;
    b.drainQueued = false;
    b.buffered = 0;
    if (b.watch) this.queueBackend(Sk.WATCH, dev, port, 0);
  }

  hostUartSend(dev: number, data: Uint8Array): void {
    const b = this.uartBackends[dev]!;
    for (const byte of data) b.input.push(byte);
    this.chrAcceptInput(dev, 0);
  }

  hostUartBackend(dev: number, state: UartBackendState): void {
    const b = this.uartBackends[dev]!;
    b.state = state;
    b.stallsLeft = -1;
    this.emit(Ev.BACKEND, dev, 0, ['open', 'hung-up', 'closed', 'slow'].indexOf(state));
    // G_IO_OUT|G_IO_HUP: anything but a hung-up reader wakes a waiting transmitter.
    if (b.watch && state !== 'hung-up')
      this.queueBackend(Sk.WATCH, dev, 0, state === 'slow' ? SLOW_WATCH_NS : 0);
  }

  hostVportConnect(dev: number, port: number, connected: boolean): void {
    const b = this.vportBackends[dev]!.get(port)!;
    if (b.connected === connected) return;
    b.connected = connected;
    this.emit(Ev.BACKEND, dev, port, connected ? 1 : 0);
    if (!connected) {
      b.buffered = 0;
      b.input.length = 0; // the peer that would have sent it is gone
    }
    if (!this.running) return; // detached: an open is delivered at vm_start
    const d = this.devices[dev]!;
    if (d.kind !== 'vser') return;
    if (connected) {
      vserHostOpen(d.s, this, this.rings(dev), port);
      this.chrAcceptInput(dev, port);
    } else {
      vserHostClose(d.s, this, this.rings(dev), port);
    }
  }

  hostVportSend(dev: number, port: number, data: Uint8Array): void {
    const b = this.vportBackends[dev]!.get(port)!;
    for (const byte of data) b.input.push(byte);
    this.chrAcceptInput(dev, port);
  }
}
