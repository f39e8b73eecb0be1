import { Ev, streamId } from './events.js';
import type { Machine } from './machine.js';
import type { UartBackendState, VportBackendState } from './schedule/types.js';
import { CONNECTED_AT_REALIZE } from './schedule/types.js';
import { packBackend, Sk, schedule } from './scheduler.js';
import { uartCanReceive, uartReceive, uartWatch } from './uart16550/uart.js';
import {
  vserCanReceive,
  vserHostClose,
  vserHostOpen,
  vserUnthrottle,
  vserWrite,
} from './virtio-serial/device.js';

/**
 * The host side of one VM's devices: its chardevs and their front ends (QEMU's
 * chardev/char-fe.c). Which handlers run while the VM does not is QEMU's choice per device:
 * - the 16550 has no vm-state handler: its can_receive/receive/event handlers stay attached
 *   from realize, and its write watch (serial_watch_cb) fires whenever the chardev is
 *   writable, paused, incoming or migrating alike;
 * - virtio-console detaches its backend while the VM is stopped (virtconsole_enable_backend,
 *   55289fb0): no input and no chardev events reach the port; an open that happened while
 *   detached is delivered when vm_start re-attaches it (qemu_chr_fe_set_handlers synthesises
 *   CHR_EVENT_OPENED), a close is lost. Its write watch (vcon->watch) and the flush bottom
 *   half (virtio_serial_throttle_port) are not detached: they run while the VM does not.
 */

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

const UART_STATE_CODES: readonly UartBackendState[] = ['open', 'hung-up', 'closed', 'slow'];

export class Chardevs {
  readonly uart: (UartBackend | null)[];
  /** Per device, per port id. */
  readonly vport: (Map<number, VportBackend> | null)[];

  constructor(
    private readonly m: Machine,
    backends: Record<string, string>,
  ) {
    this.uart = m.devices.map((d) =>
      d.kind === 'uart'
        ? {
            state: (backends[d.name] as UartBackendState) ?? 'open',
            input: [],
            stallsLeft: -1,
            watch: false,
            pumpQueued: false,
          }
        : null,
    );
    this.vport = m.devices.map((d) => {
      if (d.kind !== 'vser') return null;
      const ports = new Map<number, VportBackend>();
      for (const p of d.s.ports) {
        const backend = backends[`${d.name}.port${p.id}`] as VportBackendState | undefined;
        const connected = backend !== undefined && CONNECTED_AT_REALIZE.includes(backend);
        ports.set(p.id, {
          connected,
          input: [],
          buffered: 0,
          watch: false,
          pumpQueued: false,
          drainQueued: false,
        });
        // A client-mode chardev is connected at realize: virtconsole_realize's
        // qemu_chr_fe_set_handlers delivers CHR_EVENT_OPENED, host_connected before the guest
        // exists (on a destination, before the load: what the guest was told is not known).
        p.hostConnected = connected;
      }
      return ports;
    });
  }

  private queue(kind: number, dev: number, port: number, delayNs: number): void {
    const host = this.m.host;
    schedule(host.q, host.hostNow + delayNs, kind, packBackend(this.m.vm, dev, port), this.m.serial);
  }

  private vportOf(dev: number, port: number): VportBackend {
    return this.vport[dev]!.get(port)!;
  }

  /** vm_start re-attaches virtio-console backends: a held open is delivered, input resumes. */
  attach(): void {
    for (const [dev, d] of this.m.devices.entries()) {
      if (d.kind !== 'vser') continue;
      for (const [port, b] of this.vport[dev]!) {
        if (b.connected) vserHostOpen(d.s, this.m, this.m.rings(dev), port);
        this.queue(Sk.PUMP, dev, port, 0);
      }
    }
  }

  /** qemu_chr_fe_write of one byte: 1 written, 0 EAGAIN. */
  write(dev: number, port: number, byte: number): number {
    const stream = streamId(dev, port, false);
    const u = this.uart[dev];
    if (u) {
      switch (u.state) {
        case 'hung-up':
          return 0;
        case 'closed':
          // No reader: the write "succeeds" and the byte is gone, as documented.
          this.m.emit(Ev.BYTE_DISCARD, stream, byte, 0);
          return 1;
        case 'slow':
          if (u.stallsLeft < 0) u.stallsLeft = this.m.host.rng.below(SLOW_MAX_STALLS + 1);
          if (u.stallsLeft > 0) {
            u.stallsLeft--;
            return 0;
          }
          u.stallsLeft = -1;
          break;
        case 'open':
          break;
      }
      this.m.emit(Ev.BYTE_DELIVER, stream, byte, 0);
      return 1;
    }
    const b = this.vportOf(dev, port);
    if (!b.connected) {
      // A write to a chardev with no peer is discarded.
      this.m.emit(Ev.BYTE_DISCARD, stream, byte, 0);
      return 1;
    }
    if (b.buffered >= SOCKET_BUF) return 0;
    b.buffered++;
    if (!b.drainQueued) {
      b.drainQueued = true;
      this.queue(Sk.DRAIN, dev, port, SOCKET_DRAIN_NS);
    }
    this.m.emit(Ev.BYTE_DELIVER, stream, byte, 0);
    return 1;
  }

  /** qemu_chr_fe_add_watch(G_IO_OUT|G_IO_HUP). */
  addWatch(dev: number, port: number): void {
    const u = this.uart[dev];
    if (!u) {
      this.vportOf(dev, port).watch = true;
      return; // fires when the peer drains the socket
    }
    u.watch = true;
    if (u.state === 'slow') this.queue(Sk.WATCH, dev, 0, SLOW_WATCH_NS);
    else if (u.state !== 'hung-up') this.queue(Sk.WATCH, dev, 0, 0);
    // hung-up: the watch never fires until the state changes.
  }

  /** The device's watch is registered and has not fired. */
  watchPending(dev: number, port: number): boolean {
    return (this.uart[dev] ?? this.vportOf(dev, port)).watch;
  }

  /** g_source_remove: the watch is forgotten, so an already queued WATCH finds nothing. */
  removeWatch(dev: number, port: number): void {
    (this.uart[dev] ?? this.vportOf(dev, port)).watch = false;
  }

  /**
   * virtio_serial_throttle_port(port, false): the flush bottom half runs on the next
   * main-loop pass, whatever the VM's run state.
   */
  scheduleFlush(dev: number, port: number): void {
    this.vportOf(dev, port).watch = true;
    this.queue(Sk.WATCH, dev, port, 0);
  }

  /** qemu_chr_fe_accept_input: the main loop polls the chardev again; not inside this access. */
  acceptInput(dev: number, port: number): void {
    const b = this.uart[dev] ?? this.vportOf(dev, port);
    if (b.pumpQueued || b.input.length === 0) return;
    b.pumpQueued = true;
    this.queue(Sk.PUMP, dev, port, 0);
  }

  /** A watch came due (G_IO_OUT), or a flush bottom half runs: the device retries. */
  watch(dev: number, port: number): void {
    const d = this.m.devices[dev]!;
    if (d.kind === 'uart') {
      const u = this.uart[dev]!;
      if (!u.watch || u.state === 'hung-up') return;
      u.watch = false;
      uartWatch(d.s, this.m);
      return;
    }
    const b = this.vportOf(dev, port);
    if (!b.watch) return;
    b.watch = false;
    vserUnthrottle(d.s, this.m, this.m.rings(dev), port);
  }

  /** The backend offers its pending input, as much as the device can take. */
  pump(dev: number, port: number): void {
    const d = this.m.devices[dev]!;
    if (d.kind === 'uart') {
      const u = this.uart[dev]!;
      u.pumpQueued = false;
      // qemu_chr_be_write: up to can_receive bytes per call, until it says 0.
      let head = 0;
      for (let n = uartCanReceive(d.s); n > 0 && head < u.input.length; n = uartCanReceive(d.s)) {
        const end = Math.min(u.input.length, head + n);
        for (; head < end; head++) {
          const byte = u.input[head]!;
          const fault = this.m.fault;
          if (fault?.kind === 'forget-byte' && fault.dev === dev && fault.count-- === 1) {
            this.m.emit(Ev.BYTE_ACCEPT, streamId(dev, 0, true), byte, 0);
            this.m.emit(Ev.FAULT, dev, byte, 0);
            continue;
          }
          uartReceive(d.s, this.m, byte);
        }
      }
      if (head > 0) u.input.splice(0, head);
      return;
    }
    const b = this.vportOf(dev, port);
    b.pumpQueued = false;
    // Detached while the VM does not run: attach() pumps again at vm_start.
    if (!this.m.running || !b.connected || b.input.length === 0) return;
    const mem = this.m.rings(dev);
    const n = Math.min(vserCanReceive(d.s, mem, port), b.input.length);
    if (n === 0) return;
    const data = Uint8Array.from(b.input.splice(0, n));
    const taken = vserWrite(d.s, this.m, mem, port, data, 0, n);
    // What the guest's buffers did not take stays with the backend.
    if (taken < n) b.input.unshift(...data.subarray(taken));
  }

  /** The socket's peer read everything buffered: writable again. */
  drain(dev: number, port: number): void {
    const b = this.vportOf(dev, port);
    b.drainQueued = false;
    b.buffered = 0;
    if (b.watch) this.queue(Sk.WATCH, dev, port, 0);
  }

  hostUartSend(dev: number, data: Uint8Array): void {
    const u = this.uart[dev]!;
    for (const byte of data) u.input.push(byte);
    this.acceptInput(dev, 0);
  }

  hostUartBackend(dev: number, state: UartBackendState): void {
    const u = this.uart[dev]!;
    u.state = state;
    u.stallsLeft = -1;
    this.m.emit(Ev.BACKEND, dev, 0, UART_STATE_CODES.indexOf(state));
    // G_IO_OUT|G_IO_HUP: anything but a hung-up reader wakes a waiting transmitter.
    if (u.watch && state !== 'hung-up') this.queue(Sk.WATCH, dev, 0, state === 'slow' ? SLOW_WATCH_NS : 0);
  }

  hostVportConnect(dev: number, port: number, connected: boolean): void {
    const b = this.vportOf(dev, port);
    if (b.connected === connected) return;
    b.connected = connected;
    this.m.emit(Ev.BACKEND, dev, port, connected ? 1 : 0);
    if (!connected) {
      b.buffered = 0;
      b.input.length = 0; // the peer that would have sent it is gone
    }
    // Detached: an open is delivered at vm_start (attach), a close is lost.
    if (!this.m.running) return;
    const d = this.m.devices[dev]!;
    if (d.kind !== 'vser') return;
    if (connected) {
      vserHostOpen(d.s, this.m, this.m.rings(dev), port);
      this.acceptInput(dev, port);
    } else {
      vserHostClose(d.s, this.m, this.m.rings(dev), port);
    }
  }

  hostVportSend(dev: number, port: number, data: Uint8Array): void {
    const b = this.vportOf(dev, port);
    for (const byte of data) b.input.push(byte);
    this.acceptInput(dev, port);
  }
}
