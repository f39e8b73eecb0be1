/**
 * What a device may do to the rest of its VM. Devices never call each other: they change
 * their own plain-record state and ask the machine, through this interface, for effects
 * (an interrupt level, a vm_clock timer, a chardev write). Only machine.ts implements it.
 */
export interface Bus {
  /** This VM's vm_clock (QEMU_CLOCK_VIRTUAL) in ns. */
  vmNow(): number;
  /** Set the device's interrupt output to a level (INTx or ISA); same level is a no-op. */
  setIrq(dev: number, level: number): void;
  /** Send an MSI-X message for a vector of the device's table. */
  msixNotify(dev: number, entry: number): void;
  /**
   * Arm (absolute vm ns) or cancel (-1) one of the device's vm_clock timers, named by the
   * device (UartTimer, VserTimer): timer_mod / timer_del. The machine owns every timer.
   */
  timerMod(dev: number, timer: number, expiryNs: number): void;
  /** The timer's expiry (absolute vm ns), -1 when not pending (timer_pending / timer_expire_time). */
  timerExpiry(dev: number, timer: number): number;
  /**
   * Write one byte to the device's chardev backend (port 0 for a UART). Returns 1 if written
   * (or discarded by a `closed` backend), 0 for EAGAIN.
   */
  chrWrite(dev: number, port: number, byte: number): number;
  /**
   * Wait for the backend to become writable; the machine then calls the device's watch.
   * The backend owns the watch (QEMU's watch_tag): it is pending until it fires or is removed.
   */
  chrAddWatch(dev: number, port: number): void;
  /** The device's watch is registered and has not fired (watch_tag != 0). */
  chrWatchPending(dev: number, port: number): boolean;
  /** g_source_remove(watch_tag): a removed watch never fires. */
  chrRemoveWatch(dev: number, port: number): void;
  /** The device can take more input: the backend may push now (qemu_chr_fe_accept_input). */
  chrAcceptInput(dev: number, port: number): void;
  /** Emit an executed event (see events.ts) at the current host time. */
  emit(kind: number, dev: number, a: number, b: number): void;
}
