import { assert, fail } from '../assert.js';

/**
 * A split virtqueue. The ring and the buffers live in guest memory (`Vring`, copied with RAM
 * on migration); the device keeps only its position (`VqDevice`, migrated in the device's
 * section as last_avail_idx). Indices are free-running u16 counters, as in the virtio spec.
 */
export interface Vring {
  /** Queue size (entries). */
  num: number;
  /** Bytes of each guest buffer. */
  bufSize: number;
  /**
   * Descriptor table: each descriptor is one guest buffer, allocated when first touched (a
   * guest posts few of the 128 a queue offers); read it through vqBuf.
   */
  buf: (Uint8Array | undefined)[];
  /** Bytes the driver put in an out buffer. */
  bufLen: Int32Array;
  availRing: Uint16Array;
  availIdx: number;
  usedId: Uint16Array;
  usedLen: Int32Array;
  usedIdx: number;
}

export interface VqDevice {
  lastAvailIdx: number;
  /** Elements popped and not yet pushed back. */
  inuse: number;
}

export const u16 = (n: number): number => n & 0xffff;

export function makeVring(num: number, bufSize: number): Vring {
  return {
    num,
    bufSize,
    buf: new Array(num),
    bufLen: new Int32Array(num),
    availRing: new Uint16Array(num),
    availIdx: 0,
    usedId: new Uint16Array(num),
    usedLen: new Int32Array(num),
    usedIdx: 0,
  };
}

export function cloneVring(r: Vring): Vring {
  return {
    num: r.num,
    bufSize: r.bufSize,
    buf: r.buf.map((b) => b?.slice()),
    bufLen: r.bufLen.slice(),
    availRing: r.availRing.slice(),
    availIdx: r.availIdx,
    usedId: r.usedId.slice(),
    usedLen: r.usedLen.slice(),
    usedIdx: r.usedIdx,
  };
}

/** The guest buffer behind descriptor `id`. */
export function vqBuf(r: Vring, id: number): Uint8Array {
  let b = r.buf[id];
  if (!b) {
    b = new Uint8Array(r.bufSize);
    r.buf[id] = b;
  }
  return b;
}

export const makeVqDevice = (): VqDevice => ({ lastAvailIdx: 0, inuse: 0 });

/** Device side: is a buffer available? (virtio_queue_empty) */
export function vqEmpty(r: Vring, q: VqDevice): boolean {
  return q.lastAvailIdx === r.availIdx;
}

/** Device side: number of buffers available. */
export function vqAvail(r: Vring, q: VqDevice): number {
  return u16(r.availIdx - q.lastAvailIdx);
}

/** Device side: virtqueue_pop; returns the descriptor id, or -1 when none is available. */
export function vqPop(r: Vring, q: VqDevice): number {
  if (q.lastAvailIdx === r.availIdx) return -1;
  const id = r.availRing[q.lastAvailIdx % r.num]!;
  if (!(id < r.num)) fail(`virtqueue: descriptor ${id} out of range`);
  q.lastAvailIdx = u16(q.lastAvailIdx + 1);
  q.inuse++;
  return id;
}

/** Device side: virtqueue_push + flush: hand a buffer back with `len` bytes written. */
export function vqPush(r: Vring, q: VqDevice, id: number, len: number): void {
  assert(q.inuse > 0, 'virtqueue: push without a popped element');
  const slot = r.usedIdx % r.num;
  r.usedId[slot] = id;
  r.usedLen[slot] = len;
  r.usedIdx = u16(r.usedIdx + 1);
  q.inuse--;
}

/** Driver side: make a descriptor available. */
export function vqAddBuf(r: Vring, id: number): void {
  r.availRing[r.availIdx % r.num] = id;
  r.availIdx = u16(r.availIdx + 1);
}
