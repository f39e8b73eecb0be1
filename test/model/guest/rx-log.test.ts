import { describe, expect, it } from 'vitest';
import { type RxLog, rxOwn } from '../../../src/model/guest/io.js';
import { cloneUart8250, makeUart8250 } from '../../../src/model/guest/serial8250.js';
import { cloneVirtioConsole, makeVirtioConsole } from '../../../src/model/guest/virtio-console.js';

const append = (d: RxLog, ...bytes: number[]): void => {
  const rx = rxOwn(d);
  for (const b of bytes) {
    rx.push(b);
    d.rxLength++;
  }
};
const mine = (d: RxLog): number[] => d.rx.slice(0, d.rxLength);

describe('the received-bytes log a driver shares with its clones', () => {
  it('a UART driver clone shares the log; the VM that runs on appends without a copy', () => {
    const src = makeUart8250(0);
    append(src, 1, 2);
    const dst = cloneUart8250(src);
    expect(dst.rx).toBe(src.rx);
    append(dst, 3);
    expect(dst.rx).toBe(src.rx);
    expect(mine(dst)).toEqual([1, 2, 3]);
    expect(mine(src)).toEqual([1, 2]);
  });

  it('a clone left behind copies its own part before it appends (a failed migration resumes it)', () => {
    const src = makeUart8250(0);
    append(src, 1, 2);
    const dst = cloneUart8250(src);
    append(dst, 3, 4);
    append(src, 9);
    expect(src.rx).not.toBe(dst.rx);
    expect(mine(src)).toEqual([1, 2, 9]);
    expect(mine(dst)).toEqual([1, 2, 3, 4]);
    append(dst, 5);
    expect(mine(dst)).toEqual([1, 2, 3, 4, 5]);
    expect(mine(src)).toEqual([1, 2, 9]);
  });

  it('a virtio-console port view works the same way', () => {
    const src = makeVirtioConsole(0, false, [1]);
    append(src.ports[0]!, 7);
    const dst = cloneVirtioConsole(src);
    append(src.ports[0]!, 8);
    append(dst.ports[0]!, 9);
    expect(mine(src.ports[0]!)).toEqual([7, 8]);
    expect(mine(dst.ports[0]!)).toEqual([7, 9]);
  });
});
