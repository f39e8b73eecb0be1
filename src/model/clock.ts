/**
 * QEMU_CLOCK_VIRTUAL of one VM. It advances with the host clock only while enabled (the VM
 * runs); disabled it stays frozen. A migration destination starts disabled at the source's
 * value, so guest time is continuous across a migration.
 */
export interface VmClock {
  enabled: boolean;
  /** While enabled: vm time = host time + offsetNs. */
  offsetNs: number;
  /** While disabled: the frozen vm time. */
  frozenNs: number;
}

export function makeVmClock(): VmClock {
  return { enabled: false, offsetNs: 0, frozenNs: 0 };
}

export function vmNow(c: VmClock, hostNs: number): number {
  return c.enabled ? hostNs + c.offsetNs : c.frozenNs;
}

export function enableClock(c: VmClock, hostNs: number): void {
  if (c.enabled) return;
  c.enabled = true;
  c.offsetNs = c.frozenNs - hostNs;
}

export function disableClock(c: VmClock, hostNs: number): void {
  if (!c.enabled) return;
  c.frozenNs = hostNs + c.offsetNs;
  c.enabled = false;
}

/** The host time at which vm time reaches `vmNs`, for an enabled clock. */
export function hostTimeOf(c: VmClock, vmNs: number): number {
  return vmNs - c.offsetNs;
}
