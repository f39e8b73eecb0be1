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

/**
 * Appends a received byte to a driver's log of what it received (its first `length` bytes are
 * the driver's). A clone of the driver (guest RAM copied on migration) shares the log instead
 * of copying every byte received so far: the guest runs on one of the two VMs only, so the
 * other never appends. One that does append where the log has grown past its own length
 * copies its part first. Returns the log the driver keeps.
 */
export function rxAppend(log: number[], length: number, byte: number): number[] {
  const own = log.length === length ? log : log.slice(0, length);
  own.push(byte);
  return own;
}
