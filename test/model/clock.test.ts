import { describe, expect, it } from 'vitest';
import { disableClock, enableClock, hostTimeOf, makeVmClock, vmNow } from '../../src/model/clock.js';

describe('vm_clock', () => {
  it('starts disabled at 0 and stays frozen while disabled, whatever the host time', () => {
    const c = makeVmClock();
    expect(c.enabled).toBe(false);
    expect(vmNow(c, 0)).toBe(0);
    expect(vmNow(c, 123_456)).toBe(0);
    expect(vmNow(c, 9_000_000_000)).toBe(0);
  });

  it('advances with the host clock while enabled, from where it was frozen', () => {
    const c = makeVmClock();
    enableClock(c, 1_000);
    expect(vmNow(c, 1_000)).toBe(0);
    expect(vmNow(c, 1_500)).toBe(500);
    expect(vmNow(c, 11_000)).toBe(10_000);
  });

  it('is continuous across disable/enable: the stopped interval does not count', () => {
    const c = makeVmClock();
    enableClock(c, 100);
    expect(vmNow(c, 600)).toBe(500);
    disableClock(c, 600);
    expect(c.enabled).toBe(false);
    expect(vmNow(c, 600)).toBe(500);
    expect(vmNow(c, 50_000)).toBe(500);
    enableClock(c, 50_000);
    expect(vmNow(c, 50_000)).toBe(500);
    expect(vmNow(c, 50_250)).toBe(750);
    disableClock(c, 60_000);
    expect(vmNow(c, 70_000)).toBe(10_500);
    enableClock(c, 80_000);
    expect(vmNow(c, 80_001)).toBe(10_501);
  });

  it('enabling an enabled clock and disabling a disabled one change nothing', () => {
    const c = makeVmClock();
    enableClock(c, 100);
    enableClock(c, 5_000); // must not restart from the frozen value
    expect(vmNow(c, 5_000)).toBe(4_900);
    disableClock(c, 6_000);
    disableClock(c, 9_000); // must not re-freeze at a later time
    expect(vmNow(c, 9_000)).toBe(5_900);
    enableClock(c, 10_000);
    expect(vmNow(c, 10_000)).toBe(5_900);
  });

  it('a destination clock can start from a source value (frozen, then enabled)', () => {
    const c = makeVmClock();
    c.frozenNs = 7_000_000;
    expect(vmNow(c, 1)).toBe(7_000_000);
    enableClock(c, 20_000_000);
    expect(vmNow(c, 20_000_100)).toBe(7_000_100);
  });

  it('hostTimeOf inverts vmNow for an enabled clock', () => {
    const c = makeVmClock();
    enableClock(c, 1_000);
    disableClock(c, 3_000);
    enableClock(c, 10_000);
    // vm 2000 at host 10000
    expect(hostTimeOf(c, 2_000)).toBe(10_000);
    expect(hostTimeOf(c, 2_500)).toBe(10_500);
    for (const h of [10_000, 10_001, 77_777]) expect(hostTimeOf(c, vmNow(c, h))).toBe(h);
  });
});
