import type { Bus } from '../bus.js';
import { Ev, streamId } from '../events.js';
import {
  C_IVQ,
  C_OVQ,
  CTRL_MSG_LEN,
  Ctrl,
  findPort,
  inQueueOf,
  type PortState,
  portOfQueue,
  Status,
  type VserMem,
  type VserState,
} from './state.js';
import { vqAvail, vqBuf, vqEmpty, vqPop, vqPush } from './virtqueue.js';

/**
 * virtio-serial behaviour (hw/char/virtio-serial-bus.c, hw/char/virtio-console.c) as
 * functions over the device record and the guest's rings.
 */

/** virtio_notify: ISR |= 1, then INTx follows ISR bit 0, or the queue vector's MSI-X message. */
export function vserNotify(s: VserState, bus: Bus): void {
  s.isr |= 1;
  if (s.msix) bus.msixNotify(s.dev, 1);
  else bus.setIrq(s.dev, s.isr & 1);
}

/** The guest reads ISR: it is returned and cleared, and the INTx line drops (read-to-clear). */
export function vserReadIsr(s: VserState, bus: Bus): number {
  const isr = s.isr;
  s.isr = 0;
  if (!s.msix) bus.setIrq(s.dev, 0);
  return isr;
}

/** virtio_reset: ISR 0 lowers the line; ports lose their guest connection (guest_reset). */
export function vserReset(s: VserState, bus: Bus): void {
  s.status = 0;
  s.isr = 0;
  if (!s.msix) bus.setIrq(s.dev, 0);
  for (const q of s.queues) {
    q.lastAvailIdx = 0;
    q.inuse = 0;
  }
  for (const p of s.ports) {
    p.guestConnected = false;
    p.throttled = false;
    p.elem = null;
  }
}

export function vserSetStatus(s: VserState, status: number): void {
  s.status = status & 0xff;
}

/**
 * send_control_msg: the event is DROPPED (not queued) when the control in-queue is not set up
 * or has no free guest buffer: "host to guest notifications can get dropped if the queue
 * fills up".
 */
export function sendControlEvent(
  s: VserState,
  bus: Bus,
  mem: VserMem,
  portId: number,
  event: number,
  value: number,
  name = '',
): void {
  const r = mem.rings[C_IVQ];
  const code = (event << 16) | value;
  const id = r ? vqPop(r, s.queues[C_IVQ]!) : -1;
  if (id < 0 || !r) {
    bus.emit(Ev.CTRL_DROPPED, s.dev, portId, code);
    return;
  }
  const buf = vqBuf(r, id);
  writeCtrl(buf, portId, event, value);
  let len = CTRL_MSG_LEN;
  if (name) {
    // PORT_NAME: the header, the name, a NUL (truncated to the guest's buffer).
    for (let i = 0; i < name.length && len < buf.length - 1; i++) buf[len++] = name.charCodeAt(i) & 0x7f;
    buf[len++] = 0;
  }
  vqPush(r, s.queues[C_IVQ]!, id, len);
  bus.emit(Ev.CTRL_TO_GUEST, s.dev, portId, code);
  vserNotify(s, bus);
}

function writeCtrl(buf: Uint8Array, id: number, event: number, value: number): void {
  buf[0] = id & 0xff;
  buf[1] = (id >>> 8) & 0xff;
  buf[2] = (id >>> 16) & 0xff;
  buf[3] = (id >>> 24) & 0xff;
  buf[4] = event & 0xff;
  buf[5] = event >> 8;
  buf[6] = value & 0xff;
  buf[7] = value >> 8;
}

/** The guest kicked queue `q` (a write to QUEUE_NOTIFY). */
export function vserKick(s: VserState, bus: Bus, mem: VserMem, q: number): void {
  if (q === C_OVQ) return controlOut(s, bus, mem);
  if (q === C_IVQ) return; // control_in: new buffers, nothing to do until an event is sent
  const port = findPort(s, portOfQueue(q));
  if (!port) return;
  if (q === inQueueOf(port.id)) {
    // handle_input → guest_writable: the backend may push again.
    bus.chrAcceptInput(s.dev, port.id);
    return;
  }
  handleOutput(s, bus, mem, port);
}

/** control_out → handle_control_message for every element; each goes back with len 0. */
function controlOut(s: VserState, bus: Bus, mem: VserMem): void {
  const r = mem.rings[C_OVQ];
  if (!r) return;
  const q = s.queues[C_OVQ]!;
  let handled = false;
  for (let id = vqPop(r, q); id >= 0; id = vqPop(r, q)) {
    const len = r.bufLen[id]!;
    // Packets shorter than the header are ignored.
    if (len >= CTRL_MSG_LEN) handleControlMessage(s, bus, mem, vqBuf(r, id));
    vqPush(r, q, id, 0);
    handled = true;
  }
  if (handled) vserNotify(s, bus);
}

function handleControlMessage(s: VserState, bus: Bus, mem: VserMem, buf: Uint8Array): void {
  const id = (buf[0]! | (buf[1]! << 8) | (buf[2]! << 16) | (buf[3]! << 24)) >>> 0;
  const event = buf[4]! | (buf[5]! << 8);
  const value = buf[6]! | (buf[7]! << 8);
  bus.emit(Ev.CTRL_TO_HOST, s.dev, id, (event << 16) | value);
  if (event === Ctrl.DEVICE_READY) {
    // value 0: "Guest failure in adding device": logged, nothing sent.
    if (value) for (const p of s.ports) sendControlEvent(s, bus, mem, p.id, Ctrl.PORT_ADD, 1);
    return;
  }
  const port = findPort(s, id);
  if (!port) return; // "Unexpected port id %u for device %s": logged and ignored
  if (event === Ctrl.PORT_READY) {
    if (!value) return; // "Guest failure in adding port"
    if (port.console) sendControlEvent(s, bus, mem, port.id, Ctrl.CONSOLE_PORT, 1);
    if (port.name) sendControlEvent(s, bus, mem, port.id, Ctrl.PORT_NAME, 1, port.name);
    if (port.hostConnected) sendControlEvent(s, bus, mem, port.id, Ctrl.PORT_OPEN, 1);
  } else if (event === Ctrl.PORT_OPEN) {
    port.guestConnected = value !== 0;
    // set_guest_connected → qemu_chr_fe_set_open: the backend may now send.
    if (port.guestConnected) bus.chrAcceptInput(s.dev, port.id);
  }
}

/** handle_output: a disconnected host discards the data; else flush unless throttled. */
function handleOutput(s: VserState, bus: Bus, mem: VserMem, port: PortState): void {
  if (!port.hostConnected) {
    discardOutput(s, bus, mem, port);
    return;
  }
  if (!port.throttled) flushQueuedData(s, bus, mem, port);
}

/** do_flush_queued_data: write each element to the backend; a short write throttles. */
export function flushQueuedData(s: VserState, bus: Bus, mem: VserMem, port: PortState): void {
  const q = inQueueOf(port.id) + 1;
  const r = mem.rings[q];
  if (!r) return;
  const vq = s.queues[q]!;
  const stream = streamId(s.dev, port.id, false);
  let pushed = false;
  for (;;) {
    let elem = port.elem;
    if (!elem) {
      const id = vqPop(r, vq);
      if (id < 0) break;
      elem = { id, offset: 0 };
      const buf = vqBuf(r, id);
      const len = r.bufLen[id]!;
      for (let i = 0; i < len; i++) bus.emit(Ev.BYTE_ACCEPT, stream, buf[i]!, 0);
    }
    const buf = vqBuf(r, elem.id);
    const len = r.bufLen[elem.id]!;
    while (elem.offset < len && bus.chrWrite(s.dev, port.id, buf[elem.offset]!) === 1) elem.offset++;
    if (elem.offset < len && port.console) {
      // flush_buf: only a non-console port throttles; a console drops what did not fit.
      for (let i = elem.offset; i < len; i++) bus.emit(Ev.BYTE_DISCARD, stream, buf[i]!, 0);
      elem.offset = len;
    }
    if (elem.offset < len) {
      port.elem = elem;
      port.throttled = true;
      bus.chrAddWatch(s.dev, port.id);
      break;
    }
    port.elem = null;
    vqPush(r, vq, elem.id, 0);
    pushed = true;
  }
  if (pushed) vserNotify(s, bus);
}

/** The backend became writable again: virtio_serial_throttle_port(port, false). */
export function vserUnthrottle(s: VserState, bus: Bus, mem: VserMem, portId: number): void {
  const port = findPort(s, portId);
  if (!port?.throttled) return;
  port.throttled = false;
  flushQueuedData(s, bus, mem, port);
}

/** discard_throttle_data + discard_vq_data: guest output dropped as documented. */
function discardOutput(s: VserState, bus: Bus, mem: VserMem, port: PortState): void {
  const q = inQueueOf(port.id) + 1;
  const r = mem.rings[q];
  if (!r) return;
  const vq = s.queues[q]!;
  const stream = streamId(s.dev, port.id, false);
  let pushed = false;
  const elem = port.elem;
  if (elem) {
    const buf = vqBuf(r, elem.id);
    for (let i = elem.offset; i < r.bufLen[elem.id]!; i++) bus.emit(Ev.BYTE_DISCARD, stream, buf[i]!, 0);
    port.elem = null;
    vqPush(r, vq, elem.id, 0);
    pushed = true;
  }
  for (let id = vqPop(r, vq); id >= 0; id = vqPop(r, vq)) {
    const buf = vqBuf(r, id);
    for (let i = 0; i < r.bufLen[id]!; i++) {
      bus.emit(Ev.BYTE_ACCEPT, stream, buf[i]!, 0);
      bus.emit(Ev.BYTE_DISCARD, stream, buf[i]!, 0);
    }
    vqPush(r, vq, id, 0);
    pushed = true;
  }
  if (pushed) vserNotify(s, bus);
}

/**
 * virtio_serial_open: a backend connects; the guest is told unless it already was. A console
 * port has no chardev event handler (virtconsole_realize passes NULL for is_console) and was
 * opened at realize: its host_connected never changes.
 */
export function vserHostOpen(s: VserState, bus: Bus, mem: VserMem, portId: number): void {
  const port = findPort(s, portId);
  if (!port || port.hostConnected || port.console) return;
  port.hostConnected = true;
  bus.emit(Ev.HOST_CONNECTED, s.dev, portId, 1);
  sendControlEvent(s, bus, mem, portId, Ctrl.PORT_OPEN, 1);
}

/** virtio_serial_close: pending output is dropped and the guest told PORT_OPEN(0). Not for a console. */
export function vserHostClose(s: VserState, bus: Bus, mem: VserMem, portId: number): void {
  const port = findPort(s, portId);
  if (!port?.hostConnected || port.console) return;
  port.hostConnected = false;
  port.throttled = false;
  bus.emit(Ev.HOST_CONNECTED, s.dev, portId, 0);
  discardOutput(s, bus, mem, port);
  sendControlEvent(s, bus, mem, portId, Ctrl.PORT_OPEN, 0);
}

/**
 * virtio_serial_guest_ready / chr_can_read: how many bytes the port's guest buffers can take
 * now (0 until the driver is ready and, with MULTIPORT, the guest opened the port).
 */
export function vserCanReceive(s: VserState, mem: VserMem, portId: number): number {
  const port = findPort(s, portId);
  if (!port?.guestConnected || !(s.status & Status.DRIVER_OK)) return 0;
  const q = inQueueOf(portId);
  const r = mem.rings[q];
  if (!r || vqEmpty(r, s.queues[q]!)) return 0;
  return vqAvail(r, s.queues[q]!) * r.bufSize;
}

/**
 * chr_read → virtio_serial_write → write_to_port: copy into guest buffers, one notify at
 * the end. Returns how many bytes were taken (the caller keeps the rest: throttled backend).
 */
export function vserWrite(
  s: VserState,
  bus: Bus,
  mem: VserMem,
  portId: number,
  data: Uint8Array,
  from: number,
  to: number,
): number {
  const q = inQueueOf(portId);
  const r = mem.rings[q];
  if (!r) return 0;
  const vq = s.queues[q]!;
  const stream = streamId(s.dev, portId, true);
  let off = from;
  while (off < to) {
    const id = vqPop(r, vq);
    if (id < 0) break;
    const buf = vqBuf(r, id);
    const n = Math.min(buf.length, to - off);
    for (let i = 0; i < n; i++) {
      buf[i] = data[off + i]!;
      bus.emit(Ev.BYTE_ACCEPT, stream, data[off + i]!, 0);
    }
    off += n;
    vqPush(r, vq, id, n);
  }
  if (off > from) vserNotify(s, bus);
  return off - from;
}

/** The device's vm_clock timers: post_load's timer (80dcfb8532). The machine owns it (Bus.timerMod). */
export const VserTimer = { POST_LOAD: 0 } as const;

/**
 * The post-load timer (80dcfb8532): once the VM runs, tell the guest about every port whose
 * host connection differs from what the source had.
 */
export function vserPostLoadTimer(s: VserState, bus: Bus, mem: VserMem): void {
  const pl = s.postLoad;
  s.postLoad = null;
  if (!pl) return;
  for (let i = 0; i < pl.ids.length; i++) {
    const port = findPort(s, pl.ids[i]!);
    if (port && port.hostConnected !== pl.hostConnected[i]) {
      sendControlEvent(s, bus, mem, port.id, Ctrl.PORT_OPEN, port.hostConnected ? 1 : 0);
    }
  }
}
