import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { scheduleArb } from '../../../src/fuzz/arbitraries.js';
import { SOCKET_BUF } from '../../../src/model/backends.js';
import { Ev, streamId } from '../../../src/model/events.js';
import { builtinRegistry } from '../../../src/model/migration/builds.js';
import type { Schedule } from '../../../src/model/schedule/types.js';
import { validateSchedule } from '../../../src/model/schedule/validate.js';
import { World } from '../../../src/model/world.js';
import { judge } from '../../../src/oracles/verdict.js';

/**
 * virtio console ports (hw/char/virtio-console.c): flush_buf throttles only a non-console
 * port on a short write (`if (!k->is_console)`), a console drops the rest; a console gets no
 * chardev events (virtconsole_realize passes `k->is_console ? NULL : chr_event`) and is
 * opened at realize, so its host_connected never changes.
 */

const builds = builtinRegistry();
const MS = 1_000_000;
const TX = streamId(0, 1, false);

function vport(console: boolean, steps: unknown[]): Schedule {
  return validateSchedule(
    {
      format: 'migfuzz.schedule',
      version: 1,
      seed: 1,
      machine: 'pc-i440fx-9.2',
      src: { build: 'qemu-9.2', backends: { 'vser0.port1': 'socket' } },
      dst: { build: 'qemu-9.2', backends: { 'vser0.port1': 'socket' } },
      devices: {
        vser0: { kind: 'virtio-serial', irq: 'intx', ports: [{ id: 1, ...(console ? { console } : {}) }] },
      },
      steps: [{ at: 1 * MS, do: 'guest.vport.open', dev: 'vser0', port: 1 }, ...steps],
      horizon: 20 * MS,
    },
    builds,
  );
}

function run(s: Schedule) {
  const events: { kind: number; dev: number; a: number; b: number }[] = [];
  const v = judge(s, {
    builds,
    sink: { event: (_at, kind, _vm, dev, a, b) => events.push({ kind, dev, a, b }) },
  });
  const count = (kind: number, dev = TX) => events.filter((e) => e.kind === kind && e.dev === dev).length;
  return { signatures: v.findings.map((f) => f.signature), events, count };
}

describe('flush_buf: a short write', () => {
  const data = 'x'.repeat(SOCKET_BUF + 64);
  const steps = [{ at: 2 * MS, do: 'guest.vport.write', dev: 'vser0', port: 1, data }];

  it('throttles a non-console port until the socket drains: every byte goes', () => {
    const { signatures, count } = run(vport(false, steps));
    expect(count(Ev.BYTE_DELIVER)).toBe(data.length);
    expect(count(Ev.BYTE_DISCARD)).toBe(0);
    expect(signatures).toEqual([]);
  });

  it('drops what did not fit on a console port (documented: no data-loss), never throttles', () => {
    const { signatures, count } = run(vport(true, steps));
    expect(count(Ev.BYTE_DELIVER)).toBe(SOCKET_BUF);
    expect(count(Ev.BYTE_DISCARD)).toBe(data.length - SOCKET_BUF);
    expect(signatures).toEqual([]);
    const world = new World(vport(true, steps), { builds });
    world.run();
    const d = world.guestVm.devices[0]!;
    expect(d.kind === 'vser' && d.s.ports[0]!.throttled).toBe(false);
  });
});

describe('chardev events', () => {
  const disconnect = [{ at: 3 * MS, do: 'host.vport.disconnect', dev: 'vser0', port: 1 }];
  const hostConnected = (s: Schedule): { device: boolean; guest: boolean } => {
    const world = new World(s, { builds });
    world.run();
    const d = world.guestVm.devices[0]!;
    const drv = world.guestVm.ram.guest.drivers[0]!;
    if (d.kind !== 'vser' || drv.kind !== 'vser') throw new Error('not a virtio-serial device');
    return { device: d.s.ports[0]!.hostConnected, guest: drv.d.ports.find((p) => p.id === 1)!.hostConnected };
  };

  it('a non-console port is closed by a disconnect, and the guest told', () => {
    expect(hostConnected(vport(false, disconnect))).toEqual({ device: false, guest: false });
    expect(run(vport(false, disconnect)).count(Ev.HOST_CONNECTED, 0)).toBe(1);
  });

  it('a console port stays host_connected (opened at realize, no chr_event)', () => {
    expect(hostConnected(vport(true, disconnect))).toEqual({ device: true, guest: true });
    const { count, signatures } = run(vport(true, disconnect));
    expect(count(Ev.HOST_CONNECTED, 0)).toBe(0);
    expect(signatures).toEqual([]);
  });
});

describe('the generator', () => {
  it('produces console ports', () => {
    const docs = fc.sample(scheduleArb(builds, [...builds.keys()]), { numRuns: 200, seed: 7 }) as {
      devices: Record<string, { ports?: { console?: boolean }[] }>;
    }[];
    const consoles = docs.filter((d) =>
      Object.values(d.devices).some((x) => x.ports?.some((p) => p.console)),
    );
    expect(consoles.length).toBeGreaterThan(10);
    for (const d of consoles) expect(() => validateSchedule(d, builds)).not.toThrow();
  });
});
