import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Ev, MigPhase, RunState } from '../../src/model/events.js';
import { builtinRegistry } from '../../src/model/migration/builds.js';
import type { Schedule } from '../../src/model/schedule/types.js';
import { parseSchedule, validateSchedule } from '../../src/model/schedule/validate.js';
import { Ctrl } from '../../src/model/virtio-serial/state.js';
import { World } from '../../src/model/world.js';
import { DEFAULT_ORACLE_PARAMS } from '../../src/oracles/types.js';
import { judge } from '../../src/oracles/verdict.js';
import { decodeTrace, traceRegistry } from '../../src/replay/trace.js';
import { seedWithStreamWaits } from '../model/stream-waits.js';
import { ROOT } from '../replay/helpers.js';

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

/** One build on both sides (qemu-9.2 unless said), vser0 with port 1 and no backend on either side. */
const onePort = (
  steps: Record<string, unknown>[],
  horizon: number,
  build = 'qemu-9.2',
  machine = 'pc-i440fx-9.2',
): Schedule =>
  validateSchedule(
    {
      format: 'migfuzz.schedule',
      version: 1,
      seed: 1,
      machine,
      src: { build, backends: { 'vser0.port1': 'none' } },
      dst: { build, backends: { 'vser0.port1': 'none' } },
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

  it('does not fire on the fixed build (qemu-1.3) when the load ends at once: PORT_OPEN waits for vm_start', () => {
    const a = bugA();
    const s: Schedule = {
      ...a,
      seed: seedWithStreamWaits(false),
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
    const pingPong = (autostart: boolean, build?: string, machine?: string): Schedule =>
      onePort(
        [
          { at: 1 * MS, do: 'host.vport.connect', dev: 'vser0', port: 1 },
          { at: 5 * MS, do: 'migrate', autostart },
          { at: 10 * MS, do: 'migrate' },
          { at: 15 * MS, do: 'vm.cont' },
        ],
        40 * MS,
        build,
        machine,
      );

    it("fires, with a signature of its own (not bug A's), when the timer never ran", () => {
      const s = pingPong(false);
      expect(views(s)).toEqual({ device: false, guest: true });
      expect(signatures(s)).toEqual(['stale-guest-view:vser0:host-connected-unsent-at-save']);
    });

    // Before 3fdd0ee3 ("timer: set vm_clock disabled default", 2.7) a VM that never ran has
    // vm_clock timers enabled (qemu_clock_init): the post-load timer is due at the loaded
    // clock and fires while vm1 is paused, telling the guest before the second migration.
    it.each([
      ['qemu-1.3', 'pc-1.3'],
      ['qemu-2.3', 'pc-i440fx-2.3'],
    ])('stays quiet on %s (%s): the paused destination runs its due post-load timer', (build, machine) => {
      // Both loads end at once: no mid-load window (that is the residual bug A, seed-bugs.test.ts).
      const s = { ...pingPong(false, build, machine), seed: seedWithStreamWaits(false, false) };
      expect(views(s)).toEqual({ device: false, guest: false });
      expect(signatures(s)).toEqual([]);
      const events: { vm: number; kind: number; a: number; b: number }[] = [];
      new World(s, {
        builds,
        sink: { event: (_at, kind, vm, _dev, a, b) => events.push({ vm, kind, a, b }) },
      }).run();
      // vm1 sends PORT_OPEN(0) while paused, before it saves.
      const vm1 = events.filter((e) => e.vm === 1);
      const open = vm1.findIndex((e) => e.kind === Ev.CTRL_TO_GUEST && e.b === Ctrl.PORT_OPEN << 16);
      const paused = vm1.findIndex((e) => e.kind === Ev.RUN_STATE && e.a === RunState.PAUSED);
      const saved = vm1.findIndex((e) => e.kind === Ev.MIGRATION && e.a === MigPhase.SAVED);
      expect(0 <= paused && paused < open && open < saved).toBe(true);
      expect(vm1.some((e) => e.kind === Ev.RUN_STATE && e.a === RunState.RUNNING)).toBe(false);
    });

    it('stays quiet when the destination ran (its timer told the guest) before migrating on', () => {
      const s = pingPong(true);
      expect(views(s)).toEqual({ device: false, guest: false });
      expect(signatures(s)).toEqual([]);
    });
  });

  // realqemu/REPORT.md, scenarios `reverse` and `reverse-client` (QEMU 7.2): the source's
  // guest was told "disconnected"; the middle VM is left paused and migrated on; the last runs.
  describe('the other direction: a guest that believes a connected host is disconnected', () => {
    const seedOf = (name: string): Schedule =>
      parseSchedule(
        readFileSync(new URL(`../../corpus/seeds/${name}.json`, import.meta.url), 'utf8'),
        builds,
      );

    it('reverse-client: chardevs connected at realize (server=off) leave the guest stale', () => {
      const s = seedOf('vport-reverse-client');
      expect(views(s)).toEqual({ device: true, guest: false });
      const v = judge(s, { builds });
      expect(v.findings.map((f) => f.signature)).toEqual([
        'stale-guest-view:vser0:host-connected-unsent-at-save',
      ]);
      expect(v.findings[0]!.message).toBe(
        "the guest believes vser0 port 1's host is disconnected, the device says connected (the guest's writers wait for ever)",
      );
    });

    it('reverse: a client connecting to a listening chardev while the VM is paused is announced at vm_start', () => {
      const s = seedOf('vport-reverse-server');
      expect(views(s)).toEqual({ device: true, guest: true });
      expect(signatures(s)).toEqual([]);
      const events: { at: number; vm: number; kind: number; a: number; b: number }[] = [];
      new World(s, {
        builds,
        sink: { event: (at, kind, vm, _dev, a, b) => events.push({ at, vm, kind, a, b }) },
      }).run();
      // Held while detached: host_connected changes only at vm_start, then PORT_OPEN(1).
      const connected = events.filter((e) => e.kind === Ev.HOST_CONNECTED && e.b === 1);
      expect(connected.map((e) => [e.at, e.vm])).toEqual([[15 * MS, 0]]);
      // PORT_OPEN(1) twice, as QEMU sends it: virtconsole_enable_backend's OPENED (vm_state
      // notifiers run first), then the post-load timer, which compares the loaded 0 with 1.
      const open = events.filter((e) => e.kind === Ev.CTRL_TO_GUEST && e.b === ((Ctrl.PORT_OPEN << 16) | 1));
      expect(open.map((e) => [e.at, e.vm])).toEqual([
        [15 * MS, 0],
        [15 * MS, 0],
      ]);
    });

    it('the difference is only when the backend connects: the server seed with clients at realize is stale', () => {
      const s = seedOf('vport-reverse-server');
      const atRealize: Schedule = {
        ...s,
        src: { ...s.src, backends: { 'vser0.port1': 'socket-client' } },
        dst: { ...s.dst, backends: { 'vser0.port1': 'socket-client' } },
        // The source's client leaves first, so the guest is told "disconnected" as in the seed.
        steps: [{ at: 2 * MS, do: 'host.vport.disconnect' as const, dev: 'vser0', port: 1 }, ...s.steps].sort(
          (x, y) => x.at - y.at,
        ),
      };
      expect(signatures(atRealize)).toEqual(['stale-guest-view:vser0:host-connected-unsent-at-save']);
    });

    it('`socket` is `socket-client` and `none` is `socket-server`: the same runs, event for event', () => {
      for (const [name, alias, explicit] of [
        ['vport-reverse-client', 'socket', 'socket-client'],
        ['vport-reverse-server', 'none', 'socket-server'],
      ] as const) {
        const s = seedOf(name);
        const side = (b: string) => ({ 'vser0.port1': b }) as Schedule['src']['backends'];
        const withBackend = (b: string): Schedule => ({
          ...s,
          src: { ...s.src, backends: side(b) },
          dst: { ...s.dst, backends: side(b) },
        });
        const record = (x: Schedule): number[][] => {
          const out: number[][] = [];
          new World(x, {
            builds,
            sink: { event: (at, kind, vm, dev, a, b) => out.push([at, kind, vm, dev, a, b]) },
          }).run();
          return out;
        };
        expect(s.src.backends['vser0.port1']).toBe(explicit);
        expect(record(withBackend(alias))).toEqual(record(s));
      }
    });
  });
});

describe('stale-guest-view: a guest that unmasks only just before its VM stops', () => {
  it('is not judged: the port-open it missed while masked is still on its way (qemu-9.2 campaign, 100,000 executions)', () => {
    const t = decodeTrace(
      readFileSync(join(ROOT, 'corpus', 'regressions', 'qemu-9.2-unmask-just-before-stop.mpk')),
    );
    // The destination's port is connected at realize; the guest masks the device, unmasks it
    // 10 ns before vm.stop, and the VM never runs again: its driver has not caught up yet.
    expect(t.schedule.steps.map((s) => s.do)).toEqual([
      'guest.irq.mask',
      'migrate',
      'guest.irq.unmask',
      'vm.stop',
    ]);
    expect(judge(t.schedule, { builds: traceRegistry(t) }).findings).toEqual([]);
  });
});
