import { describe, expect, it } from 'vitest';
import { Ev, RunState, streamId } from '../../src/model/events.js';
import { builtinRegistry } from '../../src/model/migration/builds.js';
import { validateSchedule } from '../../src/model/schedule/validate.js';
import { World } from '../../src/model/world.js';
import { judge } from '../../src/oracles/verdict.js';
import { seedWithStreamWaits } from './stream-waits.js';

/**
 * Backends keep running while the VM does not (src/model/backends.ts): the 16550 has no
 * vm-state handler (hw/char/serial.c), so a paused, incoming or migrating VM's UART keeps
 * receiving up to can_receive and retries its transmit from the write watch; only
 * virtio-console detaches its backend (virtconsole_enable_backend, 55289fb0), and even there
 * the flush bottom half and the write watch run while the VM does not.
 */

const builds = builtinRegistry();
const MS = 1_000_000;
const RX0 = streamId(0, 0, true);
const TX0 = streamId(0, 0, false);

interface Rec {
  at: number;
  kind: number;
  vm: number;
  dev: number;
  a: number;
  b: number;
}

function schedule(o: {
  build: string;
  machine: string;
  devices: Record<string, unknown>;
  backends?: Record<string, string>;
  steps: Record<string, unknown>[];
  horizon: number;
  seed?: number;
}) {
  return validateSchedule(
    {
      format: 'migfuzz.schedule',
      version: 1,
      seed: o.seed ?? 1,
      machine: o.machine,
      src: { build: o.build, backends: o.backends ?? {} },
      dst: { build: o.build, backends: o.backends ?? {} },
      devices: o.devices,
      steps: o.steps,
      horizon: o.horizon,
    },
    builds,
  );
}

function run(s: ReturnType<typeof schedule>): { world: World; events: Rec[] } {
  const events: Rec[] = [];
  const world = new World(s, {
    builds,
    sink: { event: (at, kind, vm, dev, a, b) => events.push({ at, kind, vm, dev, a, b }) },
  });
  expect(world.run()).toEqual({ kind: 'horizon' });
  return { world, events };
}

const signatures = (s: ReturnType<typeof schedule>): string[] =>
  judge(s, { builds }).findings.map((f) => f.signature);
const SERIAL = { serial0: { kind: 'isa-serial', irq: 4 } };

describe('the 16550 keeps its backend while the VM does not run (no vm-state handler in serial.c)', () => {
  // The guest sets the FIFO up (trigger 14), is paused, the host sends 3 bytes, the paused VM
  // migrates and resumes on the destination.
  const pausedSource = (build: string, machine: string) =>
    schedule({
      build,
      machine,
      devices: SERIAL,
      steps: [
        { at: 0.5 * MS, do: 'guest.uart.config', dev: 'serial0', fifo: true, trigger: 14, ier: 1 },
        { at: 1 * MS, do: 'vm.stop' },
        { at: 2 * MS, do: 'host.uart.send', dev: 'serial0', data: 'abc' },
        { at: 3 * MS, do: 'migrate' },
        { at: 5 * MS, do: 'vm.cont' },
      ],
      horizon: 30 * MS,
    });

  it('a paused source takes the bytes into its receive FIFO at once (serial_receive1 up to can_receive)', () => {
    const { events } = run(pausedSource('qemu-9.2', 'pc-i440fx-9.2'));
    const accepted = events.filter((e) => e.kind === Ev.BYTE_ACCEPT && e.dev === RX0);
    expect(accepted.map((e) => [e.at, e.vm])).toEqual([
      [2 * MS, 0],
      [2 * MS, 0],
      [2 * MS, 0],
    ]);
  });

  it('qemu-9.2 migrates them (serial/recv_fifo): the guest reads "abc", no finding', () => {
    const s = pausedSource('qemu-9.2', 'pc-i440fx-9.2');
    const { world } = run(s);
    const drv = world.guestVm.ram.guest.drivers[0]!;
    expect(drv.kind === 'uart' && drv.d.rx).toEqual([0x61, 0x62, 0x63]);
    expect(signatures(s)).toEqual([]);
  });

  it('qemu-1.3 migrates no FIFO: the bytes the paused source took are lost, and found', () => {
    const s = pausedSource('qemu-1.3', 'pc-1.3');
    expect(signatures(s)).toContain('data-loss:serial0:rx-lost');
  });

  it('bytes a source takes after saving its state, and the interrupt it raises for them, stay with the old host', () => {
    const s = schedule({
      build: 'qemu-9.2',
      machine: 'pc-i440fx-9.2',
      devices: SERIAL,
      steps: [
        { at: 0.5 * MS, do: 'guest.uart.config', dev: 'serial0', fifo: true, trigger: 1, ier: 1 },
        { at: 3 * MS, do: 'migrate', downtime: 1 * MS },
        // During the downtime the host still talks to the source, whose state is saved.
        { at: 3.5 * MS, do: 'host.uart.send', dev: 'serial0', data: 'xy' },
      ],
      horizon: 30 * MS,
    });
    const { world, events } = run(s);
    const accepted = events.filter((e) => e.kind === Ev.BYTE_ACCEPT && e.dev === RX0);
    // can_receive stops at the trigger level (1): one byte enters, the other stays in the backend.
    expect(accepted.map((e) => [e.at, e.vm])).toEqual([[3.5 * MS, 0]]);
    expect(world.vms[0]!.runState).toBe(RunState.POSTMIGRATE);
    // The source raises its line for them (trigger level 1) after its save: that interrupt is
    // not in the stream either, and is not owed by the guest on the destination.
    const raised = events.filter(
      (e) => e.kind === Ev.DEV_IRQ && e.vm === 0 && e.a === 1 && e.at === 3.5 * MS,
    );
    expect(raised).toHaveLength(1);
    expect(signatures(s)).toEqual([]);
  });

  it('a stopped VM retries its transmit from the write watch (serial_watch_cb): a reader that comes back while the VM is paused gets the bytes at once', () => {
    const s = schedule({
      build: 'qemu-9.2',
      machine: 'pc-i440fx-9.2',
      devices: SERIAL,
      backends: { serial0: 'hung-up' },
      steps: [
        { at: 0.5 * MS, do: 'guest.uart.config', dev: 'serial0', fifo: true, trigger: 1, ier: 2 },
        { at: 1 * MS, do: 'guest.uart.write', dev: 'serial0', data: 'hello' },
        { at: 2 * MS, do: 'vm.stop' },
        { at: 3 * MS, do: 'host.uart.backend', dev: 'serial0', state: 'open' },
        { at: 10 * MS, do: 'vm.cont' },
      ],
      horizon: 20 * MS,
    });
    const { events } = run(s);
    const delivered = events.filter((e) => e.kind === Ev.BYTE_DELIVER && e.dev === TX0);
    expect(delivered).toHaveLength(5);
    for (const e of delivered) expect(e.at).toBe(3 * MS);
    // vm.cont comes at 10 ms: nothing of this waited for it.
    expect(events.some((e) => e.kind === Ev.RUN_STATE && e.at === 10 * MS)).toBe(true);
  });
});

describe('virtio-console: detached while stopped, but its flush bottom half and write watch run', () => {
  it('a loaded partly written element is flushed on the next main-loop pass, before vm.cont (virtio_serial_throttle_port)', () => {
    const s = schedule({
      build: 'qemu-9.2',
      machine: 'pc-i440fx-9.2',
      devices: { vser0: { kind: 'virtio-serial', irq: 'intx', ports: [{ id: 1 }] } },
      backends: { 'vser0.port1': 'socket-client' },
      seed: seedWithStreamWaits(false),
      steps: [
        { at: 1 * MS, do: 'guest.vport.open', dev: 'vser0', port: 1 },
        // 600 bytes: the socket takes 256, the port is throttled with an element half written.
        { at: 2 * MS, do: 'guest.vport.write', dev: 'vser0', port: 1, data: 'a'.repeat(600) },
        { at: 2 * MS + 1000, do: 'migrate', autostart: false },
        { at: 10 * MS, do: 'vm.cont' },
      ],
      horizon: 20 * MS,
    });
    const { events } = run(s);
    const dst = events.filter((e) => e.vm === 1 && e.kind === Ev.BYTE_DELIVER);
    expect(dst.length).toBeGreaterThan(0);
    // The destination writes the loaded element's bytes while paused, before vm.cont.
    expect(dst[0]!.at).toBeLessThan(10 * MS);
    const paused = events.find((e) => e.vm === 1 && e.kind === Ev.RUN_STATE && e.a === RunState.PAUSED)!;
    expect(dst[0]!.at).toBeGreaterThanOrEqual(paused.at);
    expect(signatures(s)).toEqual([]);
  });

  it('input stays with a detached backend until vm.cont', () => {
    const s = schedule({
      build: 'qemu-9.2',
      machine: 'pc-i440fx-9.2',
      devices: { vser0: { kind: 'virtio-serial', irq: 'intx', ports: [{ id: 1 }] } },
      backends: { 'vser0.port1': 'socket-client' },
      steps: [
        { at: 1 * MS, do: 'guest.vport.open', dev: 'vser0', port: 1 },
        { at: 2 * MS, do: 'vm.stop' },
        { at: 3 * MS, do: 'host.vport.send', dev: 'vser0', port: 1, data: 'ping' },
        { at: 6 * MS, do: 'vm.cont' },
      ],
      horizon: 20 * MS,
    });
    const { events } = run(s);
    const accepted = events.filter((e) => e.kind === Ev.BYTE_ACCEPT && e.dev === streamId(0, 1, true));
    expect(accepted).toHaveLength(4);
    for (const e of accepted) expect(e.at).toBe(6 * MS);
  });
});
