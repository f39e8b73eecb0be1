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
