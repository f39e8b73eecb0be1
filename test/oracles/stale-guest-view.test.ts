import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { builtinRegistry } from '../../src/model/migration/builds.js';
import type { Schedule } from '../../src/model/schedule/types.js';
import { parseSchedule, validateSchedule } from '../../src/model/schedule/validate.js';
import { World } from '../../src/model/world.js';
import { DEFAULT_ORACLE_PARAMS } from '../../src/oracles/types.js';
import { judge } from '../../src/oracles/verdict.js';

/**
 * stale-guest-view (docs/oracles.md): at the end of the run, after a settle period, the guest
 * driver's view of a port's host connection disagrees with the device. Seed bug A produces it
 * on qemu-1.2 (PORT_OPEN sent during load is lost with the LAPIC push) and not on qemu-1.3.
 */

const builds = builtinRegistry();
const MS = 1_000_000;

const bugA = (): Schedule =>
  parseSchedule(
    readFileSync(new URL('../../corpus/seeds/bug-a-virtio-serial.json', import.meta.url), 'utf8'),
    builds,
  );

/** The device's host_connected and the guest's belief for vser0 port 1, at the end of a run. */
function views(s: Schedule): { device: boolean; guest: boolean } {
  const world = new World(s, { builds });
  expect(world.run()).toEqual({ kind: 'horizon' });
  const m = world.guestVm;
  const d = m.devices[0]!;
  const drv = m.ram.guest.drivers[0]!;
  if (d.kind !== 'vser' || drv.kind !== 'vser') throw new Error('device 0 is not virtio-serial');
  return {
    device: d.s.ports.find((p) => p.id === 1)!.hostConnected,
    guest: drv.d.ports.find((p) => p.id === 1)!.hostConnected,
  };
}

/** qemu-9.2 on both sides, vser0 with port 1 and no backend on either side. */
const onePort = (steps: Record<string, unknown>[], horizon: number): Schedule =>
  validateSchedule(
    {
      format: 'migfuzz.schedule',
      version: 1,
      seed: 1,
      machine: 'pc-i440fx-9.2',
      src: { build: 'qemu-9.2', backends: { 'vser0.port1': 'none' } },
      dst: { build: 'qemu-9.2', backends: { 'vser0.port1': 'none' } },
      devices: { vser0: { kind: 'virtio-serial', irq: 'intx', ports: [{ id: 1 }] } },
      steps,
      horizon,
    },
    builds,
  );

const signatures = (s: Schedule): string[] => judge(s, { builds }).findings.map((f) => f.signature);

describe('stale-guest-view', () => {
  it('fires on seed bug A (qemu-1.2): the guest never learns the port is open', () => {
    const s = bugA();
    const v = judge(s, { builds });
    const stale = v.findings.filter((f) => f.oracle === 'stale-guest-view');
    expect(stale).toEqual([
      {
        oracle: 'stale-guest-view',
        device: 'vser0',
        at: s.horizon,
        message: expect.stringContaining('port 1'),
        signature: 'stale-guest-view:vser0:host-connected',
      },
    ]);
    expect(views(s)).toEqual({ device: true, guest: false });
  });

  it('does not fire on the fixed build (qemu-1.3): PORT_OPEN waits for vm_start', () => {
    const a = bugA();
    const s: Schedule = {
      ...a,
      src: { ...a.src, build: 'qemu-1.3' },
      dst: { ...a.dst, build: 'qemu-1.3' },
    };
    expect(signatures(s)).toEqual([]);
    expect(views(s)).toEqual({ device: true, guest: true });
  });

  it('does not judge a host connect less than the settle period before the horizon', () => {
    const HORIZON = 30 * MS;
    const AT = HORIZON - 1_000; // before the guest's handler can run (CPU latency)
    expect(HORIZON - AT).toBeLessThan(DEFAULT_ORACLE_PARAMS.settleNs);
    const s = onePort(
      [
        { at: 1 * MS, do: 'guest.vport.open', dev: 'vser0', port: 1 },
        { at: AT, do: 'host.vport.connect', dev: 'vser0', port: 1 },
      ],
      HORIZON,
    );
    // The views do disagree at the end: only the settle rule keeps the oracle quiet.
    expect(views(s)).toEqual({ device: true, guest: false });
    expect(signatures(s)).toEqual([]);
    // The same connect well before the horizon is seen by the guest in time: still quiet.
    const early = { ...s, steps: s.steps.map((x, i) => (i === 1 ? { ...x, at: 10 * MS } : x)) };
    expect(views(early)).toEqual({ device: true, guest: true });
    expect(signatures(early)).toEqual([]);
  });

  describe('a paused destination migrated on before its post-load timer ran (QEMU today)', () => {
    // Port 1's backend is connected on vm0 only. vm1 (no backend) loads paused with a
    // post-load record "the guest was told connected"; it is migrated back before it runs.
    // QEMU saves vm1's own host_connected (0), so vm0 (again without the connection it had:
    // a new process) sees no change and the guest keeps believing the host is connected.
    const pingPong = (autostart: boolean): Schedule =>
      onePort(
        [
          { at: 1 * MS, do: 'host.vport.connect', dev: 'vser0', port: 1 },
          { at: 5 * MS, do: 'migrate', autostart },
          { at: 10 * MS, do: 'migrate' },
          { at: 15 * MS, do: 'vm.cont' },
        ],
        40 * MS,
      );

    it("fires, with a signature of its own (not bug A's), when the timer never ran", () => {
      const s = pingPong(false);
      expect(views(s)).toEqual({ device: false, guest: true });
      expect(signatures(s)).toEqual(['stale-guest-view:vser0:host-connected-unsent-at-save']);
    });

    it('stays quiet when the destination ran (its timer told the guest) before migrating on', () => {
      const s = pingPong(true);
      expect(views(s)).toEqual({ device: false, guest: false });
      expect(signatures(s)).toEqual([]);
    });
  });
});
