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
   * The guest buffers, one per descriptor, back to back (descriptor `id` at id * bufSize):
   * allocated when first touched, and copied with RAM in one piece; read through vqBuf.
   */
  data: Uint8Array | null;
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

/**
 * The rings of one device (queue size and buffer size of each): their tables share one
 * buffer, so making them, and copying them with RAM, is one allocation (an ArrayBuffer
 * costs far more than its bytes).
 */
export function makeVrings(sizes: readonly (readonly [num: number, bufSize: number])[]): Vring[] {
  let bytes = 0;
  for (const [num] of sizes) bytes += RING_BYTES_PER_ENTRY * num;
  const tables = new ArrayBuffer(bytes);
  let at = 0;
  return sizes.map(([num, bufSize]) => {
    const r = ringOver(num, bufSize, null, tables, at, 0, 0);
    at += RING_BYTES_PER_ENTRY * num;
    return r;
  });
}

/** The four tables of a ring, in this order, from `at` in the shared buffer. */
const RING_BYTES_PER_ENTRY = 4 + 4 + 2 + 2;

function ringOver(
  num: number,
  bufSize: number,
  data: Uint8Array | null,
  tables: ArrayBuffer,
  at: number,
  availIdx: number,
  usedIdx: number,
): Vring {
  return {
    num,
    bufSize,
    data,
    bufLen: new Int32Array(tables, at, num),
    usedLen: new Int32Array(tables, at + 4 * num, num),
    availRing: new Uint16Array(tables, at + 8 * num, num),
    usedId: new Uint16Array(tables, at + 10 * num, num),
    availIdx,
    usedIdx,
  };
}

/**
 * A copy of rings made together by makeVrings (null entries stay null): one table copy, and
 * one copy of the guest buffers of every ring that has them, which the copies view.
 */
export function cloneVrings(rings: readonly (Vring | null)[]): (Vring | null)[] {
  let from: ArrayBufferLike | null = null;
  let tables: ArrayBuffer | null = null;
  let dataBytes = 0;
  for (const r of rings) if (r?.data) dataBytes += r.data.length;
  const data = new Uint8Array(dataBytes);
  let dataAt = 0;
  return rings.map((r) => {
    if (r === null) return null;
    if (from === null) {
      from = r.bufLen.buffer;
      tables = from.slice(0) as ArrayBuffer;
    }
    assert(r.bufLen.buffer === from, 'virtqueue: rings cloned together were not made together');
    let copy: Uint8Array | null = null;
    if (r.data) {
      copy = data.subarray(dataAt, dataAt + r.data.length);
      copy.set(r.data);
      dataAt += r.data.length;
    }
    return ringOver(r.num, r.bufSize, copy, tables!, r.bufLen.byteOffset, r.availIdx, r.usedIdx);
  });
}

/** The guest buffer behind descriptor `id` (a view into the ring's buffers). */
export function vqBuf(r: Vring, id: number): Uint8Array {
  r.data ??= new Uint8Array(r.num * r.bufSize);
  return r.data.subarray(id * r.bufSize, (id + 1) * r.bufSize);
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
