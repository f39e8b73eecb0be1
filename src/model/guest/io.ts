import type { VserMem } from '../virtio-serial/state.js';

/**
 * What the guest's drivers can touch: device registers (each access is an executed event),
 * their own memory (virtqueue rings), and the interrupt controller's mask for a device.
 * The machine implements it.
 */
export interface GuestIo {
  uartRead(dev: number, offset: number): number;
  uartWrite(dev: number, offset: number, value: number): void;
  vserRead(dev: number, offset: number): number;
  vserWrite(dev: number, offset: number, value: number): void;
  vserMem(dev: number): VserMem;
  /** Mask or unmask the device's interrupt source (IOAPIC entry or MSI-X entries). */
  maskSource(dev: number, masked: boolean): void;
  emit(kind: number, dev: number, a: number, b: number): void;
}

/** A driver's log of the bytes it received (see rxOwn). */
export interface RxLog {
  /** The driver's bytes are the first `rxLength`; a clone's may follow. */
  rx: number[];
  rxLength: number;
}

/**
 * The log a driver appends received bytes to (push, then count them in `rxLength`). A clone
 * of the driver (guest RAM copied on migration) shares the log instead of copying every byte
 * received so far: the guest runs on one of the two VMs only, so the other never appends. One
 * that does append where the log has grown past its own length copies its part first.
 */
export function rxOwn(d: RxLog): number[] {
  if (d.rx.length !== d.rxLength) d.rx = d.rx.slice(0, d.rxLength);
  return d.rx;
}
