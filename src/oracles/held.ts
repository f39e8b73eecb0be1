import type { Machine } from '../model/machine.js';
import { Lsr } from '../model/uart16550/regs.js';
import { inQueueOf } from '../model/virtio-serial/state.js';

/**
 * Bytes of a stream that a VM still holds after accepting them: in FIFOs, THR/TSR, a
 * partly written virtqueue element, or used buffers the guest has not consumed yet. Bytes
 * that are held are not lost (yet).
 */
export function heldBytes(m: Machine, dev: number, port: number, toGuest: boolean): number {
  const d = m.devices[dev]!;
  if (d.kind === 'uart') {
    const s = d.s;
    const fifo = (s.fcr & 1) === 1;
    if (toGuest) return fifo ? s.recvFifo.num : s.lsr & Lsr.DR ? 1 : 0;
    const inTsr = s.tsrRetry > 0 ? 1 : 0;
    return (fifo ? s.xmitFifo.num : s.lsr & Lsr.THRE ? 0 : 1) + inTsr;
  }
  const drv = m.ram.guest.drivers[dev];
  const view = drv?.kind === 'vser' ? drv.d.ports.find((p) => p.id === port) : undefined;
  if (!toGuest) {
    const p = d.s.ports.find((x) => x.id === port);
    const r = m.rings(dev).rings[inQueueOf(port) + 1];
    return p?.elem && r ? r.bufLen[p.elem.id]! - p.elem.offset : 0;
  }
  const r = m.rings(dev).rings[inQueueOf(port)];
  if (!r || !drv || drv.kind !== 'vser' || !view) return 0;
  let held = 0;
  for (let i = drv.d.lastUsed.get(inQueueOf(port)) ?? 0; i !== r.usedIdx; i = (i + 1) & 0xffff) {
    held += r.usedLen[i % r.num]!;
  }
  return held;
}
