import { Ev, streamId } from '../events.js';
import {
  C_IVQ,
  C_OVQ,
  CONTROL_QUEUE_SIZE,
  CTRL_MSG_LEN,
  Ctrl,
  inQueueOf,
  Status,
  VirtioPci,
} from '../virtio-serial/state.js';
import { type Vring, vqAddBuf, vqBuf } from '../virtio-serial/virtqueue.js';
import { type GuestIo, type RxLog, rxOwn } from './io.js';

/**
 * The guest's virtio-console driver (Linux drivers/char/virtio_console.c): DEVICE_READY,
 * PORT_READY for each added port, port open/close, in-buffers kept filled, ISR read in the
 * interrupt handler, and its own view of each port's host connection (from PORT_OPEN).
 */
export interface PortView extends RxLog {
  // The bytes received, in order, are its RxLog.
  id: number;
  /** Added by PORT_ADD and announced with PORT_READY. */
  added: boolean;
  /** The guest's belief about the host side (last PORT_OPEN received). */
  hostConnected: boolean;
  /** A guest application has the port open (guest_connected as the guest sees it). */
  open: boolean;
  console: boolean;
  name: string;
  /** Bytes a guest application wrote that wait for the host (will_write_block). */
  out: number[];
  /** Free out-queue descriptors. */
  outFree: number[];
}

export interface VirtioConsole {
  dev: number;
  msix: boolean;
  ready: boolean;
  ports: PortView[];
  /** Free control-out descriptors; last used index consumed per queue. */
  ctrlFree: number[];
  lastUsed: Map<number, number>;
}

/** In-buffers the driver keeps posted per port. */
export const PORT_IN_BUFS = 8;

export function makeVirtioConsole(dev: number, msix: boolean, portIds: number[]): VirtioConsole {
  return {
    dev,
    msix,
    ready: false,
    ports: portIds.map((id) => ({
      id,
      added: false,
      hostConnected: false,
      open: false,
      console: false,
      name: '',
      out: [],
      rx: [],
      rxLength: 0,
      outFree: [],
    })),
    ctrlFree: [],
    lastUsed: new Map(),
  };
}

export function cloneVirtioConsole(d: VirtioConsole): VirtioConsole {
  return {
    ...d,
    ports: d.ports.map((p) => ({ ...p, out: p.out.slice(), outFree: p.outFree.slice() })),
    ctrlFree: d.ctrlFree.slice(),
    lastUsed: new Map(d.lastUsed),
  };
}

const portView = (d: VirtioConsole, id: number): PortView | undefined => d.ports.find((p) => p.id === id);

/** virtcons_probe: features, DRIVER_OK, control buffers, DEVICE_READY. */
export function virtioConsoleBoot(d: VirtioConsole, io: GuestIo): void {
  io.vserWrite(d.dev, VirtioPci.STATUS, Status.ACKNOWLEDGE | Status.DRIVER);
  io.vserWrite(
    d.dev,
    VirtioPci.STATUS,
    Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK,
  );
  const mem = io.vserMem(d.dev);
  const civq = mem.rings[C_IVQ]!;
  for (let id = 0; id < CONTROL_QUEUE_SIZE; id++) vqAddBuf(civq, id);
  io.vserWrite(d.dev, VirtioPci.QUEUE_NOTIFY, C_IVQ);
  for (let id = 0; id < CONTROL_QUEUE_SIZE; id++) d.ctrlFree.push(id);
  for (const p of d.ports) {
    const out = mem.rings[inQueueOf(p.id) + 1]!;
    for (let id = 0; id < out.num; id++) p.outFree.push(id);
  }
  d.ready = true;
  sendControl(d, io, 0xffffffff, Ctrl.DEVICE_READY, 1);
}

/** __send_control_msg: one buffer on c_ovq, kick, and wait for the host to consume it. */
function sendControl(d: VirtioConsole, io: GuestIo, id: number, event: number, value: number): void {
  const r = io.vserMem(d.dev).rings[C_OVQ]!;
  reclaim(d, r, C_OVQ, d.ctrlFree);
  const desc = d.ctrlFree.pop();
  if (desc === undefined) return; // no buffer: Linux drops the message too
  const buf = vqBuf(r, desc);
  buf[0] = id & 0xff;
  buf[1] = (id >>> 8) & 0xff;
  buf[2] = (id >>> 16) & 0xff;
  buf[3] = (id >>> 24) & 0xff;
  buf[4] = event;
  buf[5] = 0;
  buf[6] = value;
  buf[7] = 0;
  r.bufLen[desc] = CTRL_MSG_LEN;
  vqAddBuf(r, desc);
  io.vserWrite(d.dev, VirtioPci.QUEUE_NOTIFY, C_OVQ);
  reclaim(d, r, C_OVQ, d.ctrlFree);
}

/** Take back the descriptors the device has used on a queue the driver only sends on. */
function reclaim(d: VirtioConsole, r: Vring, q: number, free: number[]): void {
  let last = d.lastUsed.get(q) ?? 0;
  while (last !== r.usedIdx) {
    free.push(r.usedId[last % r.num]!);
    last = (last + 1) & 0xffff;
  }
  d.lastUsed.set(q, last);
}

/** A guest application opens the port (port_fops_open). */
export function virtioConsoleOpen(d: VirtioConsole, io: GuestIo, id: number): void {
  const p = portView(d, id)!;
  if (p.open) return;
  p.open = true;
  // Before PORT_ADD the port's device node does not exist yet: the open completes in addPort.
  if (!p.added) return;
  sendControl(d, io, id, Ctrl.PORT_OPEN, 1);
  flushOut(d, io, p);
}

/** The application closes it (port_fops_release). */
export function virtioConsoleClose(d: VirtioConsole, io: GuestIo, id: number): void {
  const p = portView(d, id)!;
  if (!p.open) return;
  p.open = false;
  if (p.added) sendControl(d, io, id, Ctrl.PORT_OPEN, 0);
}

/** The application writes: the bytes wait until the port is open and the host connected. */
export function virtioConsoleWrite(d: VirtioConsole, io: GuestIo, id: number, data: Uint8Array): void {
  const p = portView(d, id)!;
  for (const b of data) p.out.push(b);
  flushOut(d, io, p);
}

/** port_fops_write → __send_to_port: fill out-buffers while the write would not block. */
function flushOut(d: VirtioConsole, io: GuestIo, p: PortView): void {
  if (!p.open || !p.hostConnected || p.out.length === 0) return;
  const q = inQueueOf(p.id) + 1;
  const r = io.vserMem(d.dev).rings[q]!;
  reclaim(d, r, q, p.outFree);
  let added = false;
  let off = 0;
  while (off < p.out.length && p.outFree.length > 0) {
    const desc = p.outFree.pop()!;
    const buf = vqBuf(r, desc);
    const n = Math.min(buf.length, p.out.length - off);
    for (let i = 0; i < n; i++) buf[i] = p.out[off + i]!;
    r.bufLen[desc] = n;
    vqAddBuf(r, desc);
    off += n;
    added = true;
  }
  p.out.splice(0, off);
  if (added) io.vserWrite(d.dev, VirtioPci.QUEUE_NOTIFY, q);
}

/**
 * vp_interrupt: with INTx the ISR is read first (it lowers the line); then every queue's
 * used buffers are consumed: control events, received data, completed output.
 */
export function virtioConsoleInterrupt(d: VirtioConsole, io: GuestIo): void {
  if (!d.msix && !(io.vserRead(d.dev, VirtioPci.ISR) & 1)) return;
  controlIn(d, io);
  for (const p of d.ports) {
    if (!p.added) continue;
    receive(d, io, p);
    flushOut(d, io, p);
  }
}

function controlIn(d: VirtioConsole, io: GuestIo): void {
  const r = io.vserMem(d.dev).rings[C_IVQ]!;
  let last = d.lastUsed.get(C_IVQ) ?? 0;
  let consumed = false;
  while (last !== r.usedIdx) {
    const slot = last % r.num;
    const desc = r.usedId[slot]!;
    if (r.usedLen[slot]! >= CTRL_MSG_LEN) handleControl(d, io, vqBuf(r, desc), r.usedLen[slot]!);
    last = (last + 1) & 0xffff;
    d.lastUsed.set(C_IVQ, last);
    vqAddBuf(r, desc);
    consumed = true;
  }
  if (consumed) io.vserWrite(d.dev, VirtioPci.QUEUE_NOTIFY, C_IVQ);
}

function handleControl(d: VirtioConsole, io: GuestIo, buf: Uint8Array, len: number): void {
  const id = (buf[0]! | (buf[1]! << 8) | (buf[2]! << 16) | (buf[3]! << 24)) >>> 0;
  const event = buf[4]! | (buf[5]! << 8);
  const value = buf[6]! | (buf[7]! << 8);
  const p = portView(d, id);
  if (!p) return; // "Invalid index %u in control packet"
  switch (event) {
    case Ctrl.PORT_ADD:
      if (p.added) return;
      addPort(d, io, p);
      return;
    case Ctrl.CONSOLE_PORT:
      // init_port_console: a console is opened by the guest kernel itself.
      p.console = true;
      virtioConsoleOpen(d, io, p.id);
      return;
    case Ctrl.PORT_OPEN:
      setView(d, io, p, value !== 0);
      flushOut(d, io, p);
      return;
    case Ctrl.PORT_NAME: {
      let name = '';
      for (let i = CTRL_MSG_LEN; i < len && buf[i] !== 0; i++) name += String.fromCharCode(buf[i]!);
      p.name = name;
      return;
    }
  }
}

function setView(d: VirtioConsole, io: GuestIo, p: PortView, connected: boolean): void {
  if (p.hostConnected === connected) return;
  p.hostConnected = connected;
  io.emit(Ev.GUEST_VIEW, d.dev, p.id, connected ? 1 : 0);
}

/** add_port: fill the port's in-queue, then announce it with PORT_READY. */
function addPort(d: VirtioConsole, io: GuestIo, p: PortView): void {
  p.added = true;
  const q = inQueueOf(p.id);
  const r = io.vserMem(d.dev).rings[q]!;
  for (let id = 0; id < PORT_IN_BUFS; id++) vqAddBuf(r, id);
  io.vserWrite(d.dev, VirtioPci.QUEUE_NOTIFY, q);
  sendControl(d, io, p.id, Ctrl.PORT_READY, 1);
  if (p.open) {
    sendControl(d, io, p.id, Ctrl.PORT_OPEN, 1);
    flushOut(d, io, p);
  }
}

/** in_intr: deliver received buffers to the reader and hand them back to the device. */
function receive(d: VirtioConsole, io: GuestIo, p: PortView): void {
  const q = inQueueOf(p.id);
  const r = io.vserMem(d.dev).rings[q]!;
  const stream = streamId(d.dev, p.id, true);
  let last = d.lastUsed.get(q) ?? 0;
  let consumed = false;
  const rx = p.open ? rxOwn(p) : null;
  while (last !== r.usedIdx) {
    const slot = last % r.num;
    const desc = r.usedId[slot]!;
    const buf = vqBuf(r, desc);
    const len = r.usedLen[slot]!;
    for (let i = 0; i < len; i++) {
      // A port no application has open discards what arrives (discard_port_data).
      if (rx) {
        rx.push(buf[i]!);
        p.rxLength++;
        io.emit(Ev.BYTE_DELIVER, stream, buf[i]!, 0);
      } else {
        io.emit(Ev.BYTE_DISCARD, stream, buf[i]!, 0);
      }
    }
    last = (last + 1) & 0xffff;
    vqAddBuf(r, desc);
    consumed = true;
  }
  d.lastUsed.set(q, last);
  if (consumed) io.vserWrite(d.dev, VirtioPci.QUEUE_NOTIFY, q);
}

/** Bytes the driver still holds for a port (not yet handed to the device). */
export function virtioConsolePending(d: VirtioConsole, id: number): number {
  return portView(d, id)?.out.length ?? 0;
}
