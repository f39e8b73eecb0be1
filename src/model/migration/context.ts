import type { Machine } from '../machine.js';
import type { LoadHazard } from '../uart16550/uart.js';
import type { Revisions } from './builds.js';

/**
 * What every section's hooks see while a VM saves or loads (the device sections import it
 * from here, vm.ts registers them: no import cycle).
 */
export interface MigCtx {
  m: Machine;
  rev: Revisions;
  /** The machine type's migrate_pre_2_2 compat flag. */
  pre22: boolean;
  /** States the load accepted that the device will mishandle (the unsafe-load oracle). */
  hazards: DeviceHazard[];
}

/** A device's loaded state that QEMU accepts and then mishandles (uartLoadHazard and the like). */
export interface DeviceHazard extends LoadHazard {
  dev: number;
}
