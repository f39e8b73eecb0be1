import { describe, expect, it } from 'vitest';
import { Ev, streamId } from '../../../src/model/events.js';
import type { Driver } from '../../../src/model/guest/guest.js';
import {
  type VirtioConsole,
  virtioConsoleClose,
  virtioConsoleOpen,
  virtioConsolePending,
  virtioConsoleWrite,
} from '../../../src/model/guest/virtio-console.js';
import { type Host, Machine } from '../../../src/model/machine.js';
import { builtinRegistry } from '../../../src/model/migration/builds.js';
import { makeRng } from '../../../src/model/rng.js';
import type { DeviceSpec } from '../../../src/model/schedule/types.js';
import { makeScheduler, peekTime, pop, type Scheduler, Sk } from '../../../src/model/scheduler.js';
import { Ctrl } from '../../../src/model/virtio-serial/state.js';

interface Event {
  at: number;
  kind: number;
  dev: number;
  a: number;
  b: number;
}

/** The run around one Machine: host clock, event queue, PRNG and an event log. */
class TestHost implements Host {
  readonly q: Scheduler = makeScheduler();
  readonly rng = makeRng(1);
  hostNow = 0;
  nextSerial = 1;
  events: Event[] = [];
  m!: Machine;
  emit(kind: number, _vm: number, dev: number, a: number, b: number): void {
    this.events.push({ at: this.hostNow, kind, dev, a, b });
  }
  /** Runs the queued events (timers, backend watches, pumps, drains) up to host time `t`. */
  runUntil(t: number): void {
    while (peekTime(this.q) <= t) {
      pop(this.q);
      const i = this.q.size;
      this.hostNow = this.q.at[i]!;
      const a = this.q.a[i]!;
      const b = this.q.b[i]!;
      switch (this.q.kind[i]) {
        case Sk.TIMER:
          this.m.timerFire(a & 1023, b);
          break;
        case Sk.WATCH:
          this.m.chardevs.watch((a >> 5) & 31, a & 31);
          break;
        case Sk.PUMP:
          this.m.chardevs.pump((a >> 5) & 31, a & 31);
          break;
        case Sk.DRAIN:
          this.m.chardevs.drain((a >> 5) & 31, a & 31);
          break;
        default:
          throw new Error(`unexpected event kind ${this.q.kind[i]}`);
      }
    }
    this.hostNow = t;
  }
  of(kind: number): Event[] {
    return this.events.filter((e) => e.kind === kind);
  }
}

const MS = 1_000_000;

function boot(
  devices: [string, DeviceSpec][],
  backends: Record<string, string>,
): { h: TestHost; m: Machine } {
  const build = builtinRegistry().get('qemu-9.2')!;
  const h = new TestHost();
  const m = new Machine(h, { vm: 0, build, machineType: build.machines[0]!, devices, backends });
  h.m = m;
  m.powerOn();
  h.runUntil(1 * MS);
  return { h, m };
}

const vser = (irq: 'intx' | 'msix'): DeviceSpec => ({
  kind: 'virtio-serial',
  irq,
  ports: [{ id: 1, name: 'org.test.0' }, { id: 2, console: true }, { id: 3 }],
});

const driver = (m: Machine, dev = 0): VirtioConsole => {
  const x: Driver = m.ram.guest.drivers[dev]!;
  if (x.kind !== 'vser') throw new Error('not a virtio-console driver');
  return x.d;
};

const devicePorts = (m: Machine, dev = 0) => {
  const d = m.devices[dev]!;
  if (d.kind !== 'vser') throw new Error('not a virtio-serial device');
  return d.s.ports;
};

/** Control messages of one direction as [port, event, value]. */
const ctrl = (h: TestHost, kind: number): [number, number, number][] =>
  h.of(kind).map((e) => [e.a, e.b >> 16, e.b & 0xffff]);

const bytes = (h: TestHost, kind: number, stream: number): number[] =>
  h
    .of(kind)
    .filter((e) => e.dev === stream)
    .map((e) => e.a);

describe.each(['intx', 'msix'] as const)('virtio-console handshake against the device (%s)', (irq) => {
  it('after boot every port is added and the guest view of host_connected matches the device', () => {
    const { h, m } = boot([['vser0', vser(irq)]], { 'vser0.port1': 'socket' });
    const d = driver(m);
    expect(d.ready).toBe(true);
    expect(d.ports.map((p) => p.added)).toEqual([true, true, true]);
    expect(d.ports.map((p) => p.hostConnected)).toEqual(devicePorts(m).map((p) => p.hostConnected));
    expect(d.ports.map((p) => p.hostConnected)).toEqual([true, false, false]);
    expect(d.ports[0]!.name).toBe('org.test.0');
    // The console port is opened by the guest kernel itself.
    expect(d.ports.map((p) => [p.console, p.open])).toEqual([
      [false, false],
      [true, true],
      [false, false],
    ]);
    expect(devicePorts(m).map((p) => p.guestConnected)).toEqual([false, true, false]);

    const toHost = ctrl(h, Ev.CTRL_TO_HOST);
    expect(toHost[0]).toEqual([0xffffffff, Ctrl.DEVICE_READY, 1]);
    for (const id of [1, 2, 3]) expect(toHost).toContainEqual([id, Ctrl.PORT_READY, 1]);
    expect(toHost).toContainEqual([2, Ctrl.PORT_OPEN, 1]);
    const toGuest = ctrl(h, Ev.CTRL_TO_GUEST);
    expect(toGuest.slice(0, 3)).toEqual([
      [1, Ctrl.PORT_ADD, 1],
      [2, Ctrl.PORT_ADD, 1],
      [3, Ctrl.PORT_ADD, 1],
    ]);
    expect(toGuest.filter(([id]) => id === 1).slice(1)).toEqual([
      [1, Ctrl.PORT_NAME, 1],
      [1, Ctrl.PORT_OPEN, 1],
    ]);
    expect(toGuest.filter(([id]) => id === 2).slice(1)).toEqual([[2, Ctrl.CONSOLE_PORT, 1]]);
    expect(toGuest.filter(([id]) => id === 3).slice(1)).toEqual([]);
    expect(h.of(Ev.CTRL_DROPPED)).toEqual([]);
    expect(h.of(Ev.GUEST_VIEW).map((e) => [e.a, e.b])).toEqual([[1, 1]]);
    // The guest handled the device's interrupts: nothing is left pending.
    if (irq === 'intx') {
      const d0 = m.devices[0]!;
      expect(d0.kind === 'vser' && d0.s.isr).toBe(0);
      expect(m.irq.ioapic.remoteIrr[d0.gsi]).toBe(0);
    }
    expect(m.ram.guest.handlerRuns[0]).toBeGreaterThan(0);
  });

  it('open, write, host connect: the bytes reach the backend in order; close clears guest_connected', () => {
    const { h, m } = boot([['vser0', vser(irq)]], {});
    const d = driver(m);
    virtioConsoleOpen(d, m, 3);
    expect(devicePorts(m)[2]!.guestConnected).toBe(true);
    virtioConsoleWrite(d, m, 3, new TextEncoder().encode('hello'));
    h.runUntil(2 * MS);
    // The host is not connected: the guest holds the bytes (the write would block).
    expect(virtioConsolePending(d, 3)).toBe(5);
    expect(bytes(h, Ev.BYTE_DISCARD, streamId(0, 3, false))).toEqual([]);

    h.hostNow = 2 * MS;
    m.chardevs.hostVportConnect(0, 3, true);
    h.runUntil(3 * MS);
    expect(d.ports[2]!.hostConnected).toBe(true);
    expect(virtioConsolePending(d, 3)).toBe(0);
    expect(bytes(h, Ev.BYTE_DELIVER, streamId(0, 3, false))).toEqual(
      [...'hello'].map((c) => c.charCodeAt(0)),
    );

    virtioConsoleWrite(d, m, 3, Uint8Array.from([1, 2, 3]));
    h.runUntil(4 * MS);
    expect(bytes(h, Ev.BYTE_DELIVER, streamId(0, 3, false)).slice(5)).toEqual([1, 2, 3]);

    virtioConsoleClose(d, m, 3);
    expect(devicePorts(m)[2]!.guestConnected).toBe(false);
    expect(
      ctrl(h, Ev.CTRL_TO_HOST)
        .filter(([id]) => id === 3)
        .slice(-2),
    ).toEqual([
      [3, Ctrl.PORT_OPEN, 1],
      [3, Ctrl.PORT_OPEN, 0],
    ]);
  });

  it('host data reaches an open port in order, also beyond the guest buffers posted at once', () => {
    const { h, m } = boot([['vser0', vser(irq)]], { 'vser0.port1': 'socket' });
    const d = driver(m);
    virtioConsoleOpen(d, m, 1);
    h.runUntil(2 * MS);
    const data = Uint8Array.from({ length: 1500 }, (_, i) => (i * 7 + 3) & 0xff);
    h.hostNow = 2 * MS;
    m.chardevs.hostVportSend(0, 1, data);
    h.runUntil(10 * MS);
    expect(d.ports[0]!.rx).toEqual([...data]);
    expect(bytes(h, Ev.BYTE_DELIVER, streamId(0, 1, true))).toEqual([...data]);
    expect(bytes(h, Ev.BYTE_DISCARD, streamId(0, 1, true))).toEqual([]);
  });

  it('host disconnect and reconnect reach the guest view', () => {
    const { h, m } = boot([['vser0', vser(irq)]], { 'vser0.port1': 'socket' });
    const d = driver(m);
    h.hostNow = 2 * MS;
    m.chardevs.hostVportConnect(0, 1, false);
    h.runUntil(3 * MS);
    expect(d.ports[0]!.hostConnected).toBe(false);
    expect(devicePorts(m)[0]!.hostConnected).toBe(false);
    m.chardevs.hostVportConnect(0, 1, true);
    h.runUntil(4 * MS);
    expect(d.ports[0]!.hostConnected).toBe(true);
    expect(h.of(Ev.GUEST_VIEW).map((e) => [e.a, e.b])).toEqual([
      [1, 1],
      [1, 0],
      [1, 1],
    ]);
  });
});

describe('virtio-console: data for a port no application has open', () => {
  it('the device does not hand it over (guest_connected 0): it waits at the backend', () => {
    const { h, m } = boot([['vser0', vser('intx')]], { 'vser0.port1': 'socket' });
    const d = driver(m);
    h.hostNow = 2 * MS;
    m.chardevs.hostVportSend(0, 1, Uint8Array.from([9, 8, 7]));
    h.runUntil(3 * MS);
    expect(d.ports[0]!.rx).toEqual([]);
    expect(bytes(h, Ev.BYTE_ACCEPT, streamId(0, 1, true))).toEqual([]);
    virtioConsoleOpen(d, m, 1);
    h.runUntil(4 * MS);
    expect(d.ports[0]!.rx).toEqual([9, 8, 7]);
  });
});
