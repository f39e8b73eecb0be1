import { describe, expect, it } from 'vitest';
import type { Bus } from '../../../src/model/bus.js';
import { Ev, streamId } from '../../../src/model/events.js';
import {
  flushQueuedData,
  sendControlEvent,
  vserCanReceive,
  vserHostClose,
  vserHostOpen,
  vserKick,
  vserNotify,
  vserReadIsr,
  vserReset,
  vserSetStatus,
  vserUnthrottle,
  vserWrite,
} from '../../../src/model/virtio-serial/device.js';
import {
  C_IVQ,
  C_OVQ,
  CONTROL_QUEUE_SIZE,
  CTRL_MSG_LEN,
  Ctrl,
  findPort,
  inQueueOf,
  makeVser,
  makeVserMem,
  type PortConfig,
  Status,
  type VserMem,
  type VserState,
} from '../../../src/model/virtio-serial/state.js';
import { vqAddBuf, vqBuf } from '../../../src/model/virtio-serial/virtqueue.js';

const DEV = 2;
const PIRQ = 1;
const BUF = 4; // bytes per port buffer: small, to exercise element boundaries

interface Emitted {
  kind: number;
  dev: number;
  a: number;
  b: number;
}

/** A Bus that records every effect; chrWrite results are scripted per call (default 1). */
class FakeBus implements Bus {
  irq = 0;
  irqCalls: number[] = [];
  msix: number[] = [];
  script: number[] = [];
  written: { port: number; byte: number }[] = [];
  watches: number[] = [];
  acceptInput: number[] = [];
  events: Emitted[] = [];
  vmNow(): number {
    return 0;
  }
  setIrq(dev: number, level: number): void {
    expect(dev).toBe(DEV);
    this.irq = level;
    this.irqCalls.push(level);
  }
  msixNotify(dev: number, entry: number): void {
    expect(dev).toBe(DEV);
    this.msix.push(entry);
  }
  timerMod(): void {
    throw new Error('no timer expected');
  }
  timerExpiry(): number {
    throw new Error('no timer expected');
  }
  chrWrite(dev: number, port: number, byte: number): number {
    expect(dev).toBe(DEV);
    const rc = this.script.length > 0 ? this.script.shift()! : 1;
    if (rc === 1) this.written.push({ port, byte });
    return rc;
  }
  chrAddWatch(dev: number, port: number): void {
    expect(dev).toBe(DEV);
    this.watches.push(port);
  }
  chrAcceptInput(dev: number, port: number): void {
    expect(dev).toBe(DEV);
    this.acceptInput.push(port);
  }
  chrWatchPending(): boolean {
    throw new Error('the device never asks');
  }
  chrRemoveWatch(): void {
    throw new Error('the device never removes a watch');
  }
  emit(kind: number, dev: number, a: number, b: number): void {
    this.events.push({ kind, dev, a, b });
  }
  of(kind: number): Emitted[] {
    return this.events.filter((e) => e.kind === kind);
  }
  clear(): void {
    this.irqCalls = [];
    this.msix = [];
    this.written = [];
    this.watches = [];
    this.acceptInput = [];
    this.events = [];
  }
}

const PORTS: PortConfig[] = [{ id: 1, name: 'org.qemu.guest_agent.0' }, { id: 2, console: true }, { id: 5 }];

interface Rig {
  s: VserState;
  bus: FakeBus;
  mem: VserMem;
  /** Guest side: last consumed used index of the control in-queue. */
  ctrlSeen: number;
  /** Next free c_ovq descriptor. */
  ovqNext: number;
}

function setup(opts: { msix?: boolean; ctrlBufs?: number; ports?: PortConfig[] } = {}): Rig {
  const ports = opts.ports ?? PORTS;
  const s = makeVser(DEV, PIRQ, opts.msix ?? false, ports);
  const mem = makeVserMem(ports, BUF);
  vserSetStatus(s, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK);
  const civq = mem.rings[C_IVQ]!;
  for (let id = 0; id < (opts.ctrlBufs ?? CONTROL_QUEUE_SIZE); id++) vqAddBuf(civq, id);
  return { s, bus: new FakeBus(), mem, ctrlSeen: 0, ovqNext: 0 };
}

/** The guest sends a control message of `len` bytes on c_ovq and kicks it. */
function guestCtrl(r: Rig, id: number, event: number, value: number, len = CTRL_MSG_LEN): void {
  const ring = r.mem.rings[C_OVQ]!;
  const desc = r.ovqNext++ % ring.num;
  const b = vqBuf(ring, desc);
  b.fill(0);
  b[0] = id & 0xff;
  b[1] = (id >>> 8) & 0xff;
  b[2] = (id >>> 16) & 0xff;
  b[3] = (id >>> 24) & 0xff;
  b[4] = event;
  b[6] = value;
  ring.bufLen[desc] = len;
  vqAddBuf(ring, desc);
  vserKick(r.s, r.bus, r.mem, C_OVQ);
}

interface Msg {
  id: number;
  event: number;
  value: number;
  /** PORT_NAME only: the name after the header. */
  name?: string;
}

/** The guest reads the control messages the device placed since the last call, in order. */
function ctrlMessages(r: Rig): Msg[] {
  const ring = r.mem.rings[C_IVQ]!;
  const out: Msg[] = [];
  while (r.ctrlSeen !== ring.usedIdx) {
    const slot = r.ctrlSeen % ring.num;
    const b = vqBuf(ring, ring.usedId[slot]!);
    const len = ring.usedLen[slot]!;
    const m: Msg = {
      id: (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0,
      event: b[4]! | (b[5]! << 8),
      value: b[6]! | (b[7]! << 8),
    };
    if (m.event === Ctrl.PORT_NAME) {
      expect(b[len - 1]).toBe(0); // NUL-terminated, the NUL counted in the length
      m.name = String.fromCharCode(...b.subarray(CTRL_MSG_LEN, len - 1));
    } else {
      expect(len).toBe(CTRL_MSG_LEN);
    }
    out.push(m);
    r.ctrlSeen = (r.ctrlSeen + 1) & 0xffff;
  }
  return out;
}

const msg = (id: number, event: number, value: number): Msg => ({ id, event, value });
const code = (event: number, value: number): number => (event << 16) | value;

/** The guest queues `data` on a port's out-queue, one buffer per `BUF` bytes, and kicks. */
function guestOutput(r: Rig, port: number, data: number[]): void {
  const q = inQueueOf(port) + 1;
  const ring = r.mem.rings[q]!;
  for (let off = 0; off < data.length; off += BUF) {
    const desc = ring.availIdx % ring.num;
    const chunk = data.slice(off, off + BUF);
    vqBuf(ring, desc).set(chunk);
    ring.bufLen[desc] = chunk.length;
    vqAddBuf(ring, desc);
  }
  vserKick(r.s, r.bus, r.mem, q);
}

/** The guest posts `n` receive buffers on a port's in-queue. */
function guestRxBufs(r: Rig, port: number, n: number): void {
  const ring = r.mem.rings[inQueueOf(port)]!;
  for (let i = 0; i < n; i++) vqAddBuf(ring, ring.availIdx % ring.num);
}

/** Bytes the device placed in a port's in-queue used ring, in used order. */
function guestRxBytes(r: Rig, port: number): number[] {
  const ring = r.mem.rings[inQueueOf(port)]!;
  const out: number[] = [];
  for (let i = 0; i < ring.usedIdx; i++) {
    const b = vqBuf(ring, ring.usedId[i % ring.num]!);
    out.push(...b.subarray(0, ring.usedLen[i % ring.num]!));
  }
  return out;
}

const port = (r: Rig, id: number) => findPort(r.s, id)!;
const outStream = (p: number): number => streamId(DEV, p, false);
const bytesOf = (r: Rig, kind: number, stream: number): number[] =>
  r.bus
    .of(kind)
    .filter((e) => e.dev === stream)
    .map((e) => e.a);

describe('state', () => {
  it('ports_map has bit 0 and every port', () => {
    const r = setup();
    expect(r.s.portsMap).toBe(0b100111);
    expect(r.mem.rings[C_IVQ]!.num).toBe(32);
    expect(r.mem.rings[C_OVQ]!.num).toBe(32);
  });
});

describe('guest → host control messages', () => {
  it('DEVICE_READY(1) sends PORT_ADD(1) for every port, in port order', () => {
    const r = setup();
    guestCtrl(r, 0xffffffff, Ctrl.DEVICE_READY, 1);
    expect(ctrlMessages(r)).toEqual([
      msg(1, Ctrl.PORT_ADD, 1),
      msg(2, Ctrl.PORT_ADD, 1),
      msg(5, Ctrl.PORT_ADD, 1),
    ]);
    expect(r.bus.of(Ev.CTRL_TO_HOST)).toEqual([
      { kind: Ev.CTRL_TO_HOST, dev: DEV, a: 0xffffffff, b: code(Ctrl.DEVICE_READY, 1) },
    ]);
    expect(r.bus.of(Ev.CTRL_TO_GUEST).map((e) => [e.a, e.b])).toEqual([
      [1, code(Ctrl.PORT_ADD, 1)],
      [2, code(Ctrl.PORT_ADD, 1)],
      [5, code(Ctrl.PORT_ADD, 1)],
    ]);
    // The c_ovq element went back with length 0.
    const ovq = r.mem.rings[C_OVQ]!;
    expect(ovq.usedIdx).toBe(1);
    expect(ovq.usedLen[0]).toBe(0);
    expect(r.s.isr).toBe(1);
    expect(r.bus.irq).toBe(1);
  });

  it('DEVICE_READY(0) sends nothing', () => {
    const r = setup();
    guestCtrl(r, 0xffffffff, Ctrl.DEVICE_READY, 0);
    expect(ctrlMessages(r)).toEqual([]);
    expect(r.bus.of(Ev.CTRL_TO_GUEST)).toEqual([]);
    expect(r.bus.of(Ev.CTRL_DROPPED)).toEqual([]);
    expect(r.mem.rings[C_OVQ]!.usedIdx).toBe(1); // consumed all the same
  });

  it('PORT_READY(1) sends CONSOLE_PORT, PORT_NAME, then PORT_OPEN(1) only if the host is connected', () => {
    const ports = [{ id: 3, name: 'both', console: true }];
    const r = setup({ ports });
    guestCtrl(r, 3, Ctrl.PORT_READY, 1);
    expect(ctrlMessages(r)).toEqual([
      msg(3, Ctrl.CONSOLE_PORT, 1),
      { ...msg(3, Ctrl.PORT_NAME, 1), name: 'both' },
    ]);

    const r2 = setup({ ports });
    port(r2, 3).hostConnected = true;
    guestCtrl(r2, 3, Ctrl.PORT_READY, 1);
    expect(ctrlMessages(r2)).toEqual([
      msg(3, Ctrl.CONSOLE_PORT, 1),
      { ...msg(3, Ctrl.PORT_NAME, 1), name: 'both' },
      msg(3, Ctrl.PORT_OPEN, 1),
    ]);
    // PORT_NAME carries header + name + NUL.
    const civq = r2.mem.rings[C_IVQ]!;
    expect(civq.usedLen[1]).toBe(CTRL_MSG_LEN + 'both'.length + 1);
  });

  it('PORT_READY for a plain port sends only what applies', () => {
    const r = setup();
    guestCtrl(r, 5, Ctrl.PORT_READY, 1);
    expect(ctrlMessages(r)).toEqual([]);
    guestCtrl(r, 1, Ctrl.PORT_READY, 1);
    expect(ctrlMessages(r)).toEqual([{ ...msg(1, Ctrl.PORT_NAME, 1), name: 'org.qemu.guest_agent.0' }]);
    guestCtrl(r, 2, Ctrl.PORT_READY, 1);
    expect(ctrlMessages(r)).toEqual([msg(2, Ctrl.CONSOLE_PORT, 1)]);
    port(r, 5).hostConnected = true;
    guestCtrl(r, 5, Ctrl.PORT_READY, 1);
    expect(ctrlMessages(r)).toEqual([msg(5, Ctrl.PORT_OPEN, 1)]);
  });

  it('PORT_READY(0) (the guest failed to add the port) sends nothing', () => {
    const r = setup();
    port(r, 2).hostConnected = true;
    guestCtrl(r, 2, Ctrl.PORT_READY, 0);
    expect(ctrlMessages(r)).toEqual([]);
  });

  it('PORT_OPEN(v) sets guest_connected; an open lets the backend send', () => {
    const r = setup();
    guestCtrl(r, 5, Ctrl.PORT_OPEN, 1);
    expect(port(r, 5).guestConnected).toBe(true);
    expect(port(r, 1).guestConnected).toBe(false);
    expect(r.bus.acceptInput).toEqual([5]);
    guestCtrl(r, 5, Ctrl.PORT_OPEN, 0);
    expect(port(r, 5).guestConnected).toBe(false);
    expect(r.bus.acceptInput).toEqual([5]);
    expect(ctrlMessages(r)).toEqual([]); // nothing goes back to the guest
  });

  it('ignores a message for an unknown port id', () => {
    const r = setup();
    port(r, 1).hostConnected = true;
    for (const ev of [Ctrl.PORT_READY, Ctrl.PORT_OPEN]) guestCtrl(r, 9, ev, 1);
    guestCtrl(r, 0, Ctrl.PORT_OPEN, 1); // port 0 is not a port of this device here
    expect(ctrlMessages(r)).toEqual([]);
    expect(r.s.ports.map((p) => p.guestConnected)).toEqual([false, false, false]);
    expect(r.bus.of(Ev.CTRL_TO_HOST).map((e) => e.a)).toEqual([9, 9, 0]);
    expect(r.mem.rings[C_OVQ]!.usedIdx).toBe(3);
  });

  it('ignores messages shorter than 8 bytes, but still returns the buffer', () => {
    const r = setup();
    guestCtrl(r, 0xffffffff, Ctrl.DEVICE_READY, 1, 7);
    guestCtrl(r, 5, Ctrl.PORT_OPEN, 1, 0);
    expect(ctrlMessages(r)).toEqual([]);
    expect(r.bus.of(Ev.CTRL_TO_HOST)).toEqual([]);
    expect(port(r, 5).guestConnected).toBe(false);
    const ovq = r.mem.rings[C_OVQ]!;
    expect(ovq.usedIdx).toBe(2);
    expect([ovq.usedLen[0], ovq.usedLen[1]]).toEqual([0, 0]);
  });

  it('handles every queued message in order in one kick', () => {
    const r = setup();
    const ring = r.mem.rings[C_OVQ]!;
    const put = (desc: number, id: number, ev: number, v: number): void => {
      const b = vqBuf(ring, desc);
      b.set([id, 0, 0, 0, ev, 0, v, 0]);
      ring.bufLen[desc] = CTRL_MSG_LEN;
      vqAddBuf(ring, desc);
    };
    port(r, 5).hostConnected = true;
    put(0, 5, Ctrl.PORT_OPEN, 1);
    put(1, 5, Ctrl.PORT_READY, 1);
    put(2, 1, Ctrl.PORT_OPEN, 1);
    vserKick(r.s, r.bus, r.mem, C_OVQ);
    expect(r.bus.of(Ev.CTRL_TO_HOST).map((e) => e.a)).toEqual([5, 5, 1]);
    expect(ctrlMessages(r)).toEqual([msg(5, Ctrl.PORT_OPEN, 1)]);
    expect([port(r, 5).guestConnected, port(r, 1).guestConnected]).toEqual([true, true]);
    expect(ring.usedIdx).toBe(3);
  });
});

describe('host → guest control messages', () => {
  it('are DROPPED, not queued, when the control in-queue has no free buffer', () => {
    const r = setup({ ctrlBufs: 0 });
    vserHostOpen(r.s, r.bus, r.mem, 5);
    expect(port(r, 5).hostConnected).toBe(true);
    expect(r.bus.of(Ev.CTRL_DROPPED)).toEqual([
      { kind: Ev.CTRL_DROPPED, dev: DEV, a: 5, b: code(Ctrl.PORT_OPEN, 1) },
    ]);
    expect(r.s.isr).toBe(0);
    expect(r.bus.irqCalls).toEqual([]);
    // Buffers arrive later: the dropped event is not sent then, nor on the next event.
    const civq = r.mem.rings[C_IVQ]!;
    for (let id = 0; id < 4; id++) vqAddBuf(civq, id);
    vserKick(r.s, r.bus, r.mem, C_IVQ);
    expect(ctrlMessages(r)).toEqual([]);
    vserHostClose(r.s, r.bus, r.mem, 5);
    expect(ctrlMessages(r)).toEqual([msg(5, Ctrl.PORT_OPEN, 0)]);
  });

  it('are dropped once the buffers run out: the first ones go, the rest are lost', () => {
    const r = setup({ ctrlBufs: 2 });
    guestCtrl(r, 0xffffffff, Ctrl.DEVICE_READY, 1);
    expect(ctrlMessages(r)).toEqual([msg(1, Ctrl.PORT_ADD, 1), msg(2, Ctrl.PORT_ADD, 1)]);
    expect(r.bus.of(Ev.CTRL_DROPPED).map((e) => [e.a, e.b])).toEqual([[5, code(Ctrl.PORT_ADD, 1)]]);
  });

  it('are dropped when the control in-queue is not set up', () => {
    const r = setup();
    r.mem.rings[C_IVQ] = null;
    sendControlEvent(r.s, r.bus, r.mem, 1, Ctrl.PORT_OPEN, 1);
    expect(r.bus.of(Ev.CTRL_DROPPED).map((e) => [e.a, e.b])).toEqual([[1, code(Ctrl.PORT_OPEN, 1)]]);
    expect(r.s.isr).toBe(0);
  });

  it('host open sends PORT_OPEN(1) once; close sends PORT_OPEN(0) once', () => {
    const r = setup();
    vserHostOpen(r.s, r.bus, r.mem, 1);
    vserHostOpen(r.s, r.bus, r.mem, 1);
    expect(ctrlMessages(r)).toEqual([msg(1, Ctrl.PORT_OPEN, 1)]);
    vserHostClose(r.s, r.bus, r.mem, 1);
    vserHostClose(r.s, r.bus, r.mem, 1);
    expect(ctrlMessages(r)).toEqual([msg(1, Ctrl.PORT_OPEN, 0)]);
    expect(r.bus.of(Ev.HOST_CONNECTED).map((e) => [e.a, e.b])).toEqual([
      [1, 1],
      [1, 0],
    ]);
    // A port that does not exist: nothing.
    vserHostOpen(r.s, r.bus, r.mem, 7);
    expect(ctrlMessages(r)).toEqual([]);
  });
});

describe('notify, ISR and the interrupt line', () => {
  it('notify sets ISR bit 0 and raises INTx; reading ISR returns and clears it and lowers INTx', () => {
    const r = setup();
    vserNotify(r.s, r.bus);
    expect(r.s.isr).toBe(1);
    expect(r.bus.irq).toBe(1);
    expect(vserReadIsr(r.s, r.bus)).toBe(1);
    expect(r.s.isr).toBe(0);
    expect(r.bus.irq).toBe(0);
    expect(vserReadIsr(r.s, r.bus)).toBe(0);
    expect(r.bus.irq).toBe(0);
    expect(r.bus.msix).toEqual([]);
  });

  it('INTx level follows ISR & 1 after every step', () => {
    const r = setup();
    const steps: (() => void)[] = [
      () => vserHostOpen(r.s, r.bus, r.mem, 1),
      () => vserReadIsr(r.s, r.bus),
      () => guestCtrl(r, 0xffffffff, Ctrl.DEVICE_READY, 1),
      () => vserHostOpen(r.s, r.bus, r.mem, 1), // no-op
      () => vserReadIsr(r.s, r.bus),
      () => vserReadIsr(r.s, r.bus),
      () => vserHostClose(r.s, r.bus, r.mem, 1),
    ];
    for (const step of steps) {
      step();
      expect(r.bus.irq).toBe(r.s.isr & 1);
    }
  });

  it('the line stays high until ISR is read: more notifies keep it at 1', () => {
    const r = setup();
    vserHostOpen(r.s, r.bus, r.mem, 1);
    vserHostOpen(r.s, r.bus, r.mem, 5);
    expect(r.bus.irqCalls).toEqual([1, 1]); // the same level again: the bus makes it a no-op
    expect(r.s.isr).toBe(1);
  });

  it('MSI-X mode sends a message on the queue vector and leaves INTx alone', () => {
    const r = setup({ msix: true });
    vserHostOpen(r.s, r.bus, r.mem, 1);
    expect(r.bus.msix).toEqual([1]);
    expect(r.s.isr).toBe(1);
    expect(vserReadIsr(r.s, r.bus)).toBe(1);
    expect(r.s.isr).toBe(0);
    vserNotify(r.s, r.bus);
    expect(r.bus.msix).toEqual([1, 1]);
    expect(r.bus.irqCalls).toEqual([]);
  });

  it('reset clears ISR, lowers the line and forgets the guest connection', () => {
    const r = setup();
    guestCtrl(r, 1, Ctrl.PORT_OPEN, 1);
    expect(r.bus.irq).toBe(1);
    vserReset(r.s, r.bus);
    expect(r.s.isr).toBe(0);
    expect(r.bus.irq).toBe(0);
    expect(r.s.status).toBe(0);
    expect(port(r, 1).guestConnected).toBe(false);
  });
});

describe('guest → host data', () => {
  it('is discarded (BYTE_DISCARD) when the host is not connected, and the buffers go back', () => {
    const r = setup();
    guestOutput(r, 5, [1, 2, 3, 4, 5, 6]);
    expect(r.bus.written).toEqual([]);
    expect(bytesOf(r, Ev.BYTE_ACCEPT, outStream(5))).toEqual([1, 2, 3, 4, 5, 6]);
    expect(bytesOf(r, Ev.BYTE_DISCARD, outStream(5))).toEqual([1, 2, 3, 4, 5, 6]);
    const ring = r.mem.rings[inQueueOf(5) + 1]!;
    expect(ring.usedIdx).toBe(2);
    expect(r.s.isr).toBe(1);
  });

  it('goes to the backend in order when the host is connected', () => {
    const r = setup();
    vserHostOpen(r.s, r.bus, r.mem, 5);
    r.bus.clear();
    guestOutput(r, 5, [10, 11, 12, 13, 14, 15, 16]);
    expect(r.bus.written).toEqual([10, 11, 12, 13, 14, 15, 16].map((byte) => ({ port: 5, byte })));
    expect(r.mem.rings[inQueueOf(5) + 1]!.usedIdx).toBe(2);
    expect(bytesOf(r, Ev.BYTE_DISCARD, outStream(5))).toEqual([]);
    expect(r.bus.irq).toBe(1);
  });

  it('throttles on a short write and resumes at the same offset of the element on unthrottle', () => {
    const r = setup();
    vserHostOpen(r.s, r.bus, r.mem, 5);
    r.bus.clear();
    r.bus.script = [1, 1, 0]; // two bytes go, then EAGAIN
    guestOutput(r, 5, [1, 2, 3, 4, 5, 6]);
    const p = port(r, 5);
    expect(r.bus.written.map((w) => w.byte)).toEqual([1, 2]);
    expect(p.throttled).toBe(true);
    expect(p.elem).toEqual({ id: 0, offset: 2 });
    expect(r.bus.watches).toEqual([5]);
    const ring = r.mem.rings[inQueueOf(5) + 1]!;
    expect(ring.usedIdx).toBe(0); // the element is still held
    expect(r.bus.irqCalls).toEqual([]);

    // A kick while throttled writes nothing.
    vserKick(r.s, r.bus, r.mem, inQueueOf(5) + 1);
    expect(r.bus.written.map((w) => w.byte)).toEqual([1, 2]);

    r.bus.script = [1, 0]; // one more byte, then EAGAIN again
    vserUnthrottle(r.s, r.bus, r.mem, 5);
    expect(r.bus.written.map((w) => w.byte)).toEqual([1, 2, 3]);
    expect(p.elem).toEqual({ id: 0, offset: 3 });
    expect(p.throttled).toBe(true);

    vserUnthrottle(r.s, r.bus, r.mem, 5);
    expect(r.bus.written.map((w) => w.byte)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(p.throttled).toBe(false);
    expect(p.elem).toBeNull();
    expect(ring.usedIdx).toBe(2);
    expect(r.bus.irq).toBe(1);
    // Every byte was accepted exactly once, none discarded.
    expect(bytesOf(r, Ev.BYTE_ACCEPT, outStream(5))).toEqual([1, 2, 3, 4, 5, 6]);
    expect(bytesOf(r, Ev.BYTE_DISCARD, outStream(5))).toEqual([]);
  });

  it('unthrottling a port that is not throttled does nothing', () => {
    const r = setup();
    vserHostOpen(r.s, r.bus, r.mem, 5);
    r.bus.clear();
    vserUnthrottle(r.s, r.bus, r.mem, 5);
    expect(r.bus.written).toEqual([]);
    expect(r.bus.events).toEqual([]);
  });

  it('a host close drops the throttled rest of the element and what is queued, then PORT_OPEN(0)', () => {
    const r = setup();
    vserHostOpen(r.s, r.bus, r.mem, 5);
    ctrlMessages(r);
    r.bus.clear();
    r.bus.script = [1, 0];
    guestOutput(r, 5, [1, 2, 3, 4, 5, 6]);
    vserHostClose(r.s, r.bus, r.mem, 5);
    const p = port(r, 5);
    expect(p.throttled).toBe(false);
    expect(p.elem).toBeNull();
    expect(r.bus.written.map((w) => w.byte)).toEqual([1]);
    expect(bytesOf(r, Ev.BYTE_DISCARD, outStream(5))).toEqual([2, 3, 4, 5, 6]);
    expect(r.mem.rings[inQueueOf(5) + 1]!.usedIdx).toBe(2);
    expect(ctrlMessages(r)).toEqual([msg(5, Ctrl.PORT_OPEN, 0)]);
    // The flush after close finds nothing.
    flushQueuedData(r.s, r.bus, r.mem, p);
    expect(r.bus.written.map((w) => w.byte)).toEqual([1]);
  });
});

describe('host → guest data', () => {
  it('can be received only once the guest opened the port and posted buffers', () => {
    const r = setup();
    expect(vserCanReceive(r.s, r.mem, 5)).toBe(0);
    guestRxBufs(r, 5, 3);
    expect(vserCanReceive(r.s, r.mem, 5)).toBe(0); // guest_connected is false
    guestCtrl(r, 5, Ctrl.PORT_OPEN, 1);
    expect(vserCanReceive(r.s, r.mem, 5)).toBe(3 * BUF);
    vserSetStatus(r.s, Status.ACKNOWLEDGE | Status.DRIVER);
    expect(vserCanReceive(r.s, r.mem, 5)).toBe(0); // no DRIVER_OK
    expect(vserCanReceive(r.s, r.mem, 9)).toBe(0); // no such port
  });

  it('waits (nothing taken, nothing dropped) with no guest buffer, and flows when buffers come back', () => {
    const r = setup();
    guestCtrl(r, 5, Ctrl.PORT_OPEN, 1);
    r.bus.clear();
    const data = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(vserWrite(r.s, r.bus, r.mem, 5, data, 0, data.length)).toBe(0);
    expect(r.bus.events).toEqual([]);
    expect(r.bus.irqCalls).toEqual([]);

    guestRxBufs(r, 5, 2);
    expect(vserWrite(r.s, r.bus, r.mem, 5, data, 0, data.length)).toBe(8);
    expect(guestRxBytes(r, 5)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(r.bus.irq).toBe(1);

    // The guest's driver hands buffers back (a kick of the in-queue): the backend may push.
    guestRxBufs(r, 5, 2);
    vserKick(r.s, r.bus, r.mem, inQueueOf(5));
    expect(r.bus.acceptInput).toEqual([5]);
    expect(vserWrite(r.s, r.bus, r.mem, 5, data, 8, data.length)).toBe(2);
    expect(guestRxBytes(r, 5)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(bytesOf(r, Ev.BYTE_ACCEPT, streamId(DEV, 5, true))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const ring = r.mem.rings[inQueueOf(5)]!;
    expect([ring.usedLen[0], ring.usedLen[1], ring.usedLen[2]]).toEqual([4, 4, 2]);
  });
});
