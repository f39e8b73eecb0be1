import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cloneVrings, makeVrings, vqBuf } from '../../../src/model/virtio-serial/virtqueue.js';

describe('virtqueue buffers', () => {
  it('keep what was written to any descriptor, in any order, and through a copy with RAM', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat({ max: 127 }), fc.nat({ max: 63 }), fc.integer({ min: 1, max: 255 }))),
        (writes) => {
          const [ring] = makeVrings([[128, 64]]);
          const want = new Map<number, number>();
          for (const [id, at, byte] of writes) {
            vqBuf(ring!, id)[at] = byte;
            want.set(id * 64 + at, byte);
          }
          const [copy] = cloneVrings([ring!]);
          for (const r of [ring!, copy!]) {
            for (let id = 0; id < 128; id++) {
              const buf = vqBuf(r, id);
              expect(buf.length).toBe(64);
              for (let at = 0; at < 64; at++) expect(buf[at]).toBe(want.get(id * 64 + at) ?? 0);
            }
          }
        },
      ),
      { numRuns: 50 },
    );
  });

  it('a copy does not share buffers with the original', () => {
    const [ring] = makeVrings([[128, 64]]);
    vqBuf(ring!, 127)[0] = 7;
    const [copy] = cloneVrings([ring!]);
    vqBuf(copy!, 127)[0] = 9;
    vqBuf(copy!, 0)[0] = 5;
    expect(vqBuf(ring!, 127)[0]).toBe(7);
    expect(vqBuf(ring!, 0)[0]).toBe(0);
  });
});
