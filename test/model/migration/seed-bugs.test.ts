/**
 * The two seed bugs (MODEL.md §6, the ISSUE's done-when): judge() on the seed schedules of
 * corpus/seeds finds them on the old builds and nothing on the fixed ones; the World after
 * the run shows the mechanism (a stuck INTx line, bytes held or lost). Plus both directions
 * of a migration (ping-pong) and a failed migration followed by a successful one.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Ev, type EventSink, MigPhase, RunState, streamId } from '../../../src/model/events.js';
import { vectorOfGsi } from '../../../src/model/irqchip.js';
import type { Machine } from '../../../src/model/machine.js';
import { builtinRegistry } from '../../../src/model/migration/builds.js';
import type { Schedule } from '../../../src/model/schedule/types.js';
import { validateSchedule } from '../../../src/model/schedule/validate.js';
import { Lsr } from '../../../src/model/uart16550/regs.js';
import { fifoPeek, type UartState } from '../../../src/model/uart16550/state.js';
import { World } from '../../../src/model/world.js';
import { judge, type Verdict } from '../../../src/oracles/verdict.js';
import { seedWithStreamWaits } from '../stream-waits.js';

const BUILDS = builtinRegistry();
const MS = 1_000_000;
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

type Doc = Record<string, unknown> & {
  machine: string;
  src: { build: string; backends: Record<string, string> };
  dst: { build: string; backends: Record<string, string> };
  steps: Record<string, unknown>[];
};

/** A seed schedule as JSON (a fresh copy each time, to edit). */
function seed(name: string): Doc {
  return JSON.parse(readFileSync(`${ROOT}corpus/seeds/${name}.json`, 'utf8')) as Doc;
}

function withBuilds(doc: Doc, build: string, machine: string): Doc {
  return {
    ...doc,
    machine,
    src: { ...doc.src, build },
    dst: { ...doc.dst, build },
  };
}

const validate = (doc: unknown): Schedule => validateSchedule(doc, BUILDS);

interface Rec {
  at: number;
  kind: number;
  vm: number;
  dev: number;
  a: number;
  b: number;
}

/** Runs the schedule in a World of its own (judge's World is not reachable) and records events. */
function runWorld(s: Schedule): { world: World; events: Rec[] } {
  const events: Rec[] = [];
  const sink: EventSink = {
    event(at, kind, vm, dev, a, b) {
      events.push({ at, kind, vm, dev, a, b });
    },
  };
  const world = new World(s, { builds: BUILDS, sink });
  expect(world.run().kind).toBe('horizon');
  return { world, events };
}

/** judge() with the bytes each stream delivered (BYTE_DELIVER via the sink). */
function judged(s: Schedule): { verdict: Verdict; delivered: Map<number, number[]> } {
  const delivered = new Map<number, number[]>();
  const sink: EventSink = {
    event(_at, kind, _vm, dev, a) {
      if (kind !== Ev.BYTE_DELIVER) return;
      const list = delivered.get(dev) ?? [];
      list.push(a);
      delivered.set(dev, list);
    },
  };
  const verdict = judge(s, { builds: BUILDS, sink });
  expect(verdict.end).toBe('horizon');
  return { verdict, delivered };
}

const signatures = (v: Verdict): string[] => v.findings.map((f) => f.signature);
const oracles = (v: Verdict): string[] => [...new Set(v.findings.map((f) => f.oracle))].sort();
const text = (b: readonly number[] | undefined): string => String.fromCharCode(...(b ?? []));

function uartOf(m: Machine, dev = 0): UartState {
  const d = m.devices[dev]!;
  if (d.kind !== 'uart') throw new Error('not a UART');
  return d.s;
}

function guestPortRx(m: Machine, dev: number, port: number): number[] {
  const drv = m.ram.guest.drivers[dev]!;
  if (drv.kind !== 'vser') throw new Error('not a virtio-serial driver');
  return drv.d.ports.find((p) => p.id === port)!.rx;
}

function guestUartRx(m: Machine, dev = 0): number[] {
  const drv = m.ram.guest.drivers[dev]!;
  if (drv.kind !== 'uart') throw new Error('not an 8250 driver');
  return drv.d.rx;
}

/** TSR (while a retry is pending) followed by the xmit FIFO: the bytes the UART still holds. */
function heldForTransmit(s: UartState): number[] {
  const fifo = Array.from({ length: s.xmitFifo.num }, (_, i) => fifoPeek(s.xmitFifo, i));
  return s.tsrRetry > 0 ? [s.tsr, ...fifo] : fifo;
}

// ---------------------------------------------------------------------------------------------

describe('seed bug A: PORT_OPEN sent inside load (virtio-serial)', () => {
  const bugA = seed('bug-a-virtio-serial');

  it('the seed is the scenario of the fix: qemu-1.2 on both sides, no backend on src, one on dst', () => {
    expect(bugA.src.build).toBe('qemu-1.2');
    expect(bugA.dst.build).toBe('qemu-1.2');
    expect(bugA.src.backends['vser0.port1']).toBe('none');
    expect(bugA.dst.backends['vser0.port1']).toBe('socket');
  });

  it('qemu-1.2 → qemu-1.2: stuck-irq-line, lost-interrupt and stale-guest-view on vser0', () => {
    const { verdict } = judged(validate(bugA));
    expect(oracles(verdict)).toEqual(['lost-interrupt', 'stale-guest-view', 'stuck-irq-line']);
    expect(signatures(verdict).sort()).toEqual([
      'lost-interrupt:vser0:handler-not-run',
      'stale-guest-view:vser0:host-connected',
      'stuck-irq-line:vser0:remote-irr',
    ]);
    for (const f of verdict.findings) expect(f.device).toBe('vser0');
  });

  it('qemu-1.2: the INTx line stays high with Remote-IRR set, and later host data is never handled', () => {
    const { world, events } = runWorld(validate(bugA));
    expect(world.active).toBe(1);
    const dst = world.guestVm;
    expect(dst.runState).toBe(RunState.RUNNING);
    const d = dst.devices[0]!;
    expect(d.kind).toBe('vser');
    const gsi = d.gsi;
    const vector = vectorOfGsi(gsi);
    // Line high, Remote-IRR latched, nothing pending or in service at the CPU.
    expect(dst.irq.pci.irqState[0]).toBe(1);
    expect(dst.irq.ioapic.level[gsi]).toBe(1);
    expect(dst.irq.ioapic.remoteIrr[gsi]).toBe(1);
    expect(dst.irq.lapic.irr[vector]).toBe(0);
    expect(dst.irq.lapic.isr[vector]).toBe(0);
    // The in-load delivery was overwritten by the end-of-load LAPIC push.
    const push = events.filter((e) => e.kind === Ev.MIGRATION && e.a === MigPhase.LAPIC_PUSH);
    expect(push.map((e) => e.b)).toEqual([1]);
    // No handler ever ran on the destination; no EOI either.
    expect(events.filter((e) => e.vm === 1 && (e.kind === Ev.HANDLER || e.kind === Ev.EOI))).toEqual([]);
    // "mouse event" (sent at 15 ms) was written into guest buffers, but the guest never read it.
    expect(guestPortRx(dst, 0, 1)).toEqual([]);
    const accepted = events.filter((e) => e.kind === Ev.BYTE_ACCEPT && e.dev === streamId(0, 1, true));
    expect(text(accepted.map((e) => e.a))).toBe('mouse event');
    expect(events.filter((e) => e.kind === Ev.BYTE_DELIVER && e.dev === streamId(0, 1, true))).toEqual([]);
    // The guest still believes the host side is disconnected.
    const drv = dst.ram.guest.drivers[0]!;
    expect(drv.kind === 'vser' && drv.d.ports[0]!.hostConnected).toBe(false);
    expect(d.kind === 'vser' && d.s.ports[0]!.hostConnected).toBe(true);
  });

  // 80dcfb8532 (1.3) defers PORT_OPEN to a vm_clock timer; until 3fdd0ee3 (2.7) that clock
  // runs its due timers before vm_start, so the fix holds only when the load ends at once.
  // From 3fdd0ee3 on (rhel-7.4 still pushes the LAPIC at the end of the load) it always holds.
  const fixed: [string, string, boolean][] = [
    ['qemu-1.3', 'pc-1.2', false],
    ['qemu-2.3', 'pc-i440fx-2.3', false],
    ['rhel-7.4', 'pc-i440fx-rhel7.4.0', false],
    ['rhel-7.4', 'pc-i440fx-rhel7.4.0', true],
    ['qemu-9.2', 'pc-i440fx-9.2', true],
  ];
  for (const [build, machine, wait] of fixed) {
    it(`${build} on ${machine}, ${wait ? 'the load waiting' : 'no wait'} for the stream's end: no finding and the guest receives "mouse event"`, () => {
      const s = validate({ ...withBuilds(bugA, build, machine), seed: seedWithStreamWaits(wait) });
      const { verdict, delivered } = judged(s);
      expect(verdict.findings).toEqual([]);
      expect(text(delivered.get(streamId(0, 1, true)))).toBe('mouse event');
      const { world } = runWorld(s);
      const dst = world.guestVm;
      expect(world.active).toBe(1);
      expect(text(guestPortRx(dst, 0, 1))).toBe('mouse event');
      expect(dst.irq.pci.irqState[0]).toBe(0);
      expect(dst.irq.ioapic.remoteIrr[dst.devices[0]!.gsi]).toBe(0);
      const drv = dst.ram.guest.drivers[0]!;
      expect(drv.kind === 'vser' && drv.d.ports[0]!.hostConnected).toBe(true);
    });
  }

  it.each([
    ['qemu-1.3', 'pc-1.2'],
    ['qemu-2.3', 'pc-i440fx-2.3'],
  ])(
    "%s on %s, the load waiting for the stream's end: the post-load timer fires mid-load and the LAPIC push loses it (3fdd0ee3)",
    (build, machine) => {
      const s = validate({ ...withBuilds(bugA, build, machine), seed: seedWithStreamWaits(true) });
      const { verdict } = judged(s);
      expect(signatures(verdict).sort()).toEqual([
        'lost-interrupt:vser0:handler-not-run',
        'stale-guest-view:vser0:host-connected',
        'stuck-irq-line:vser0:remote-irr',
      ]);
      const { events } = runWorld(s);
      const dst = events.filter((e) => e.vm === 1);
      const at = (pred: (e: Rec) => boolean): number => dst.findIndex(pred);
      const wait = at((e) => e.kind === Ev.MIGRATION && e.a === MigPhase.STREAM_WAIT);
      const open = at((e) => e.kind === Ev.CTRL_TO_GUEST);
      const push = at((e) => e.kind === Ev.MIGRATION && e.a === MigPhase.LAPIC_PUSH);
      const running = at((e) => e.kind === Ev.RUN_STATE && e.a === RunState.RUNNING);
      // The timer runs while the destination is still inmigrate, between the sections and the
      // end of the load: PORT_OPEN(1) is delivered to a LAPIC the push then overwrites.
      expect(0 <= wait && wait < open && open < push && push < running).toBe(true);
      expect(dst[push]!.b).toBe(1);
    },
  );
});

// ---------------------------------------------------------------------------------------------

describe('seed bug B: serial subsections gated on migrate_pre_2_2 (rhel-7.4)', () => {
  const bugB = seed('bug-b-serial');
  const TSR_NOT_EMPTY = 'inconsistent state in serial device (tsr not empty, tsr_retry=0';

  it.each([
    ['pc-i440fx-rhel7.1.0', ['migration-failed:serial0:tsr-not-empty']],
    ['rhel6.0.0', ['migration-failed:serial0:tsr-not-empty']],
    ['pc-i440fx-rhel7.2.0', []],
  ])('rhel-7.4 / %s: migrate_pre_2_2 as pc_compat_rhel710 sets it decides bug B', (machine, expected) => {
    const { verdict } = judged(validate(withBuilds(bugB, 'rhel-7.4', machine)));
    expect(signatures(verdict)).toEqual(expected);
  });

  it('rhel-7.4 / rhel6.6.0: migration-failed with the exact message, and the source resumes', () => {
    expect(bugB.src.build).toBe('rhel-7.4');
    expect(bugB.machine).toBe('rhel6.6.0');
    const { verdict } = judged(validate(bugB));
    expect(signatures(verdict)).toEqual(['migration-failed:serial0:tsr-not-empty']);
    const f = verdict.findings[0]!;
    expect(f.oracle).toBe('migration-failed');
    expect(f.device).toBe('serial0');
    expect(f.message.startsWith(TSR_NOT_EMPTY)).toBe(true);
    expect(f.message).toBe(`${TSR_NOT_EMPTY}: error while loading state for instance 0x0 of device 'serial'`);

    const { world, events } = runWorld(validate(bugB));
    expect(events.filter((e) => e.kind === Ev.MIGRATION && e.a === MigPhase.FAILED)).toHaveLength(1);
    expect(events.filter((e) => e.kind === Ev.MIGRATION && e.a === MigPhase.COMPLETED)).toEqual([]);
    expect(world.active).toBe(0);
    expect(world.vms[1]).toBeNull();
    const src = world.vms[0]!;
    expect(src.runState).toBe(RunState.RUNNING);
    // The guest goes on on the source, whose UART still holds the whole line for the reader.
    expect(text(heldForTransmit(uartOf(src)))).toBe('boot: ok\n');
    const resumed = events.filter(
      (e) => e.kind === Ev.RUN_STATE && e.vm === 0 && e.a === RunState.RUNNING && e.at > 4 * MS,
    );
    expect(resumed).toHaveLength(1);
  });

  it('rhel-7.5 / rhel6.6.0: no finding, and "boot: ok\\n" is held in the destination TSR and xmit FIFO', () => {
    const s = validate(withBuilds(bugB, 'rhel-7.5', 'rhel6.6.0'));
    const { verdict } = judged(s);
    expect(verdict.findings).toEqual([]);
    const { world } = runWorld(s);
    expect(world.active).toBe(1);
    const u = uartOf(world.guestVm);
    expect(u.tsrRetry).toBeGreaterThan(0);
    expect(u.lsr & Lsr.TEMT).toBe(0);
    expect(text(heldForTransmit(u))).toBe('boot: ok\n');
  });

  it('rhel-7.5: the held bytes reach the reader once it reads again', () => {
    const doc = withBuilds(bugB, 'rhel-7.5', 'rhel6.6.0');
    doc.steps = [...doc.steps, { at: 10 * MS, do: 'host.uart.backend', dev: 'serial0', state: 'open' }];
    const { verdict, delivered } = judged(validate(doc));
    expect(verdict.findings).toEqual([]);
    expect(text(delivered.get(streamId(0, 0, false)))).toBe('boot: ok\n');
  });

  it('rhel-7.4 on pc-i440fx-rhel7.4.0 (no migrate_pre_2_2): clean', () => {
    const s = validate(withBuilds(bugB, 'rhel-7.4', 'pc-i440fx-rhel7.4.0'));
    const { verdict } = judged(s);
    expect(verdict.findings).toEqual([]);
    const { world } = runWorld(s);
    expect(world.active).toBe(1);
    expect(text(heldForTransmit(uartOf(world.guestVm)))).toBe('boot: ok\n');
  });

  // Receive side: bytes below the trigger level wait for the character timeout; the
  // migration happens before it fires, then more bytes come.
  function rxDoc(build: string, machine: string): Doc {
    return {
      format: 'migfuzz.schedule',
      version: 1,
      seed: 4,
      machine,
      src: { build, backends: { serial0: 'open' } },
      dst: { build, backends: { serial0: 'open' } },
      devices: { serial0: { kind: 'isa-serial', irq: 4 } },
      steps: [
        { at: 500_000, do: 'guest.uart.config', dev: 'serial0', fifo: true, trigger: 14, ier: 1 },
        { at: 1 * MS, do: 'host.uart.send', dev: 'serial0', data: 'hello' },
        { at: 2 * MS, do: 'migrate' },
        { at: 10 * MS, do: 'host.uart.send', dev: 'serial0', data: ' world' },
      ],
      horizon: 40 * MS,
    };
  }

  it('rhel-7.4 / rhel6.6.0: bytes received but unread at migration time are lost', () => {
    const s = validate(rxDoc('rhel-7.4', 'rhel6.6.0'));
    const { verdict, delivered } = judged(s);
    const found = oracles(verdict);
    expect(found.some((o) => o === 'data-loss' || o === 'data-corruption')).toBe(true);
    expect(found).not.toContain('migration-failed');
    expect(signatures(verdict)).toContain('data-loss:serial0:rx-lost');
    const got = text(delivered.get(streamId(0, 0, true)));
    expect(got).not.toContain('hello');
    expect(got).toBe(' world');
  });

  it('rhel-7.4 / rhel6.6.0: DR migrates without the FIFO, the guest reads 0x00 (data-corruption)', () => {
    // Trigger 1: RDI is raised at once and the CPU takes it 2 µs later; the migration starts
    // 1 µs after the byte arrived, with the vector pending in the LAPIC.
    const doc = rxDoc('rhel-7.4', 'rhel6.6.0');
    doc.steps = [
      { at: 500_000, do: 'guest.uart.config', dev: 'serial0', fifo: true, trigger: 1, ier: 1 },
      { at: 1 * MS, do: 'host.uart.send', dev: 'serial0', data: 'Z' },
      { at: 1 * MS + 1000, do: 'migrate' },
    ];
    const s = validate(doc);
    const { verdict } = judged(s);
    expect(signatures(verdict)).toContain('data-corruption:serial0:phantom-read');
    const { world, events } = runWorld(s);
    expect(world.active).toBe(1);
    expect(events.filter((e) => e.kind === Ev.PHANTOM_READ && e.vm === 1)).toHaveLength(1);
    expect(guestUartRx(world.guestVm)).toEqual([0]);
  });

  it('rhel-7.5 / rhel6.6.0: the same receive-side schedules lose nothing', () => {
    const { verdict, delivered } = judged(validate(rxDoc('rhel-7.5', 'rhel6.6.0')));
    expect(verdict.findings).toEqual([]);
    expect(text(delivered.get(streamId(0, 0, true)))).toBe('hello world');
    const doc = rxDoc('rhel-7.5', 'rhel6.6.0');
    doc.steps = [
      { at: 500_000, do: 'guest.uart.config', dev: 'serial0', fifo: true, trigger: 1, ier: 1 },
      { at: 1 * MS, do: 'host.uart.send', dev: 'serial0', data: 'Z' },
      { at: 1 * MS + 1000, do: 'migrate' },
    ];
    const second = judged(validate(doc));
    expect(second.verdict.findings).toEqual([]);
    expect(text(second.delivered.get(streamId(0, 0, true)))).toBe('Z');
  });
});

// ---------------------------------------------------------------------------------------------

describe('both directions', () => {
  it('ping-pong on qemu-9.2: the second migrate goes back, no finding, data flows across both', () => {
    const doc: Doc = {
      format: 'migfuzz.schedule',
      version: 1,
      seed: 9,
      machine: 'pc-i440fx-9.2',
      src: { build: 'qemu-9.2', backends: { serial0: 'open', 'vser0.port1': 'socket' } },
      dst: { build: 'qemu-9.2', backends: { serial0: 'open', 'vser0.port1': 'socket' } },
      devices: {
        serial0: { kind: 'isa-serial', irq: 4 },
        vser0: { kind: 'virtio-serial', irq: 'intx', ports: [{ id: 1, name: 'org.qemu.guest_agent.0' }] },
      },
      steps: [
        { at: 500_000, do: 'guest.vport.open', dev: 'vser0', port: 1 },
        { at: 1 * MS, do: 'guest.uart.write', dev: 'serial0', data: 'one ' },
        { at: 1 * MS, do: 'host.uart.send', dev: 'serial0', data: 'A' },
        { at: 1 * MS, do: 'host.vport.send', dev: 'vser0', port: 1, data: 'ping1 ' },
        { at: 1 * MS, do: 'guest.vport.write', dev: 'vser0', port: 1, data: 'pong1 ' },
        { at: 5 * MS, do: 'migrate' },
        { at: 10 * MS, do: 'guest.uart.write', dev: 'serial0', data: 'two ' },
        { at: 10 * MS, do: 'host.uart.send', dev: 'serial0', data: 'B' },
        { at: 10 * MS, do: 'host.vport.send', dev: 'vser0', port: 1, data: 'ping2 ' },
        { at: 10 * MS, do: 'guest.vport.write', dev: 'vser0', port: 1, data: 'pong2 ' },
        { at: 15 * MS, do: 'migrate', downtime: 1_000_000 },
        { at: 20 * MS, do: 'guest.uart.write', dev: 'serial0', data: 'three' },
        { at: 20 * MS, do: 'host.uart.send', dev: 'serial0', data: 'C' },
        { at: 20 * MS, do: 'host.vport.send', dev: 'vser0', port: 1, data: 'ping3' },
        { at: 20 * MS, do: 'guest.vport.write', dev: 'vser0', port: 1, data: 'pong3' },
      ],
      horizon: 50 * MS,
    };
    const s = validate(doc);
    const { verdict, delivered } = judged(s);
    expect(verdict.findings).toEqual([]);
    expect(text(delivered.get(streamId(0, 0, false)))).toBe('one two three');
    expect(text(delivered.get(streamId(0, 0, true)))).toBe('ABC');
    expect(text(delivered.get(streamId(1, 1, true)))).toBe('ping1 ping2 ping3');
    expect(text(delivered.get(streamId(1, 1, false)))).toBe('pong1 pong2 pong3');

    const { world, events } = runWorld(s);
    const completed = events.filter((e) => e.kind === Ev.MIGRATION && e.a === MigPhase.COMPLETED);
    // COMPLETED names the destination: 0 → 1, then 1 → 0.
    expect(completed.map((e) => [e.vm, e.at])).toEqual([
      [1, 5 * MS + 300_000],
      [0, 16 * MS],
    ]);
    expect(world.active).toBe(0);
    expect(world.vms[0]!.runState).toBe(RunState.RUNNING);
    expect(world.vms[1]!.runState).toBe(RunState.POSTMIGRATE);
    // The bytes the guest received on each VM, in order: the guest's RAM went there and back.
    expect(text(guestUartRx(world.guestVm))).toBe('ABC');
    expect(text(guestPortRx(world.guestVm, 1, 1))).toBe('ping1 ping2 ping3');
    // Each side delivered its share to its own backend.
    const byVm = (vm: number) =>
      text(
        events
          .filter((e) => e.kind === Ev.BYTE_DELIVER && e.vm === vm && e.dev === streamId(0, 0, false))
          .map((e) => e.a),
      );
    expect(byVm(0)).toBe('one three');
    expect(byVm(1)).toBe('two ');
  });

  it('a failed migration (bug B on rhel-7.4) followed by a successful one', () => {
    const doc = seed('bug-b-serial');
    doc.steps = [
      ...doc.steps,
      // The reader comes back: TSR and the FIFO drain on the source, TEMT is set again.
      { at: 8 * MS, do: 'host.uart.backend', dev: 'serial0', state: 'open' },
      { at: 10 * MS, do: 'guest.uart.write', dev: 'serial0', data: 'before ' },
      { at: 12 * MS, do: 'migrate' },
      { at: 20 * MS, do: 'guest.uart.write', dev: 'serial0', data: 'after' },
    ];
    // The new destination's reader is open too.
    doc.dst = { ...doc.dst, backends: { serial0: 'open' } };
    doc.horizon = 40 * MS;
    const s = validate(doc);
    const { verdict, delivered } = judged(s);
    expect(signatures(verdict)).toEqual(['migration-failed:serial0:tsr-not-empty']);
    expect(verdict.findings[0]!.at).toBe(4 * MS + 300_000);
    expect(text(delivered.get(streamId(0, 0, false)))).toBe('boot: ok\nbefore after');

    const { world, events } = runWorld(s);
    const phases = events.filter((e) => e.kind === Ev.MIGRATION).map((e) => [e.vm, e.a]);
    expect(phases).toEqual([
      [0, MigPhase.SAVED],
      [1, MigPhase.DST_CREATED],
      [1, MigPhase.FAILED],
      [0, MigPhase.SAVED],
      [1, MigPhase.DST_CREATED],
      [1, MigPhase.LAPIC_PUSH],
      [1, MigPhase.LOADED],
      [1, MigPhase.COMPLETED],
    ]);
    expect(world.failures).toHaveLength(1);
    expect(world.active).toBe(1);
    expect(world.vms[0]!.runState).toBe(RunState.POSTMIGRATE);
    expect(world.guestVm.runState).toBe(RunState.RUNNING);
  });
});
