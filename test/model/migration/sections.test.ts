/**
 * The device sections with real Machines (MODEL.md §3-§6, qemu-notes 1.8, 2.3, 2.4, 3.4):
 * a World runs a schedule up to a chosen host time, then the test stops the VM that runs the
 * guest, saves it with saveVm, and loads the stream into a fresh destination Machine built the
 * way World.startMigration builds one. Whole migrations run through World as well.
 */
import { describe, expect, it } from 'vitest';
import { Ev, type EventSink, MigPhase, RunState } from '../../../src/model/events.js';
import { vectorOfGsi } from '../../../src/model/irqchip.js';
import { cloneRam, Machine } from '../../../src/model/machine.js';
import {
  type Build,
  type BuildRegistry,
  builtinRegistry,
  findMachine,
} from '../../../src/model/migration/builds.js';
import { LoadError } from '../../../src/model/migration/stream.js';
import { loadVm, saveVm } from '../../../src/model/migration/vm.js';
import type { Schedule, SideSpec } from '../../../src/model/schedule/types.js';
import { validateSchedule } from '../../../src/model/schedule/validate.js';
import { Fcr, Ier, Iir, Lsr, MAX_XMIT_RETRY } from '../../../src/model/uart16550/regs.js';
import { type Fifo8, fifoPeek, fifoPush, type UartState } from '../../../src/model/uart16550/state.js';
import { UartTimer, updateParameters } from '../../../src/model/uart16550/uart.js';
import { VserTimer } from '../../../src/model/virtio-serial/device.js';
import { Ctrl, type VserState } from '../../../src/model/virtio-serial/state.js';
import { World } from '../../../src/model/world.js';
import { judge } from '../../../src/oracles/verdict.js';
import { seedWithStreamWaits } from '../stream-waits.js';

const BUILDS = builtinRegistry();
const ALL_SUBSECTIONS = [
  'serial/thr_ipending',
  'serial/tsr',
  'serial/recv_fifo',
  'serial/xmit_fifo',
  'serial/fifo_timeout_timer',
  'serial/timeout_ipending',
  'serial/poll',
];
const MS = 1_000_000;

// ---------------------------------------------------------------------------------------------
// Helpers

interface Rec {
  at: number;
  kind: number;
  vm: number;
  dev: number;
  a: number;
  b: number;
}

function recorder(): { sink: EventSink; events: Rec[] } {
  const events: Rec[] = [];
  return {
    events,
    sink: {
      event(at, kind, vm, dev, a, b) {
        events.push({ at, kind, vm, dev, a, b });
      },
    },
  };
}

interface Spec {
  machine: string;
  src: string;
  dst?: string;
  srcBackends?: Record<string, string>;
  dstBackends?: Record<string, string>;
  devices: Record<string, unknown>;
  steps: unknown[];
  horizon: number;
}

function schedule(spec: Spec, builds: BuildRegistry = BUILDS): Schedule {
  return validateSchedule(
    {
      format: 'migfuzz.schedule',
      version: 1,
      seed: 1,
      machine: spec.machine,
      src: { build: spec.src, backends: spec.srcBackends ?? {} },
      dst: { build: spec.dst ?? spec.src, backends: spec.dstBackends ?? spec.srcBackends ?? {} },
      devices: spec.devices,
      steps: spec.steps,
      horizon: spec.horizon,
    },
    builds,
  );
}

function run(s: Schedule, builds: BuildRegistry = BUILDS): { world: World; events: Rec[] } {
  const rec = recorder();
  const world = new World(s, { builds, sink: rec.sink });
  const end = world.run();
  expect(end.kind).toBe('horizon');
  return { world, events: rec.events };
}

/** A machine for VM `vm`, the way World.makeMachine builds it. */
function makeMachine(world: World, vm: number, side: SideSpec, builds: BuildRegistry = BUILDS): Machine {
  const build = builds.get(side.build)!;
  return new Machine(world, {
    vm,
    build,
    machineType: findMachine(build, world.schedule.machine)!,
    devices: Object.entries(world.schedule.devices),
    backends: side.backends as Record<string, string>,
  });
}

/** Stops the VM running the guest (finish-migrate) and saves it. */
function stopAndSave(world: World): { src: Machine; stream: Uint8Array } {
  const src = world.guestVm;
  if (src.running) src.vmStop(RunState.FINISH_MIGRATE);
  return { src, stream: saveVm(src) };
}

/** A fresh incoming destination (the other VM index) with the source's RAM, then loadVm. */
function freshDestination(world: World, src: Machine, side?: SideSpec, builds = BUILDS): Machine {
  const to = 1 - src.vm;
  const dst = makeMachine(world, to, side ?? (to === 1 ? world.schedule.dst : world.schedule.src), builds);
  dst.startIncoming();
  dst.ram = cloneRam(src.ram);
  return dst;
}

function migrateByHand(world: World): { src: Machine; dst: Machine; stream: Uint8Array } {
  const { src, stream } = stopAndSave(world);
  const dst = freshDestination(world, src);
  loadVm(dst, stream);
  return { src, dst, stream };
}

function loadError(fn: () => void): LoadError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(LoadError);
    return e as LoadError;
  }
  throw new Error('expected a LoadError');
}

/** Where an ASCII byte pattern occurs in the stream. */
function indexOfBytes(hay: Uint8Array, needle: readonly number[], from = 0): number {
  outer: for (let i = from; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** The serial subsections in the stream: QEMU_VM_SUBSECTION, the counted name. */
function subsectionsIn(stream: Uint8Array): string[] {
  return ALL_SUBSECTIONS.filter(
    (name) => indexOfBytes(stream, [0x05, name.length, ...[...name].map((c) => c.charCodeAt(0))]) >= 0,
  );
}

const uartOf = (m: Machine, dev = 0): UartState => {
  const d = m.devices[dev]!;
  if (d.kind !== 'uart') throw new Error(`device ${dev} is not a UART`);
  return d.s;
};
const vserOf = (m: Machine, dev = 0): VserState => {
  const d = m.devices[dev]!;
  if (d.kind !== 'vser') throw new Error(`device ${dev} is not a virtio-serial`);
  return d.s;
};

const fifoBytes = (f: Fifo8): number[] => Array.from({ length: f.num }, (_, i) => fifoPeek(f, i));
const bytes = (s: string): number[] => [...s].map((c) => c.charCodeAt(0));

/**
 * What a migration must carry: every register, the hidden state, the FIFO contents (and their
 * raw layout when the subsection travels), TSR/THR while a retry is pending, the timers.
 * A FIFO that is empty travels as nothing: the destination keeps its own (empty) one.
 */
function migratedView(m: Machine): Record<string, unknown> {
  const s = uartOf(m);
  const raw = (f: Fifo8) => (f.num > 0 ? { head: f.head, num: f.num, data: [...f.data] } : null);
  return {
    divider: s.divider,
    rbr: s.rbr,
    ier: s.ier,
    iir: s.iir,
    lcr: s.lcr,
    mcr: s.mcr,
    lsr: s.lsr,
    msr: s.msr,
    scr: s.scr,
    fcr: s.fcr,
    // With IER.THRI off thr_ipending is unobservable (a THRI rising edge resamples it from
    // THRE) and not migrated: the destination rebuilds it from IIR.
    thrIpending: s.ier & Ier.THRI ? s.thrIpending : null,
    tsrRetry: s.tsrRetry,
    tsr: s.tsrRetry > 0 ? s.tsr : null,
    thr: s.tsrRetry > 0 ? s.thr : null,
    timeoutIpending: s.timeoutIpending,
    pollMsl: s.pollMsl,
    pollNs: m.timerExpiry(0, UartTimer.MODEM_POLL),
    recv: fifoBytes(s.recvFifo),
    xmit: fifoBytes(s.xmitFifo),
    recvRaw: raw(s.recvFifo),
    xmitRaw: raw(s.xmitFifo),
    recvFifoItl: s.recvFifoItl,
    fifoTimeoutNs: m.timerExpiry(0, UartTimer.FIFO_TIMEOUT),
    charTransmitTimeNs: s.charTransmitTimeNs,
    baudbase: s.baudbase,
    lastBreakEnable: s.lastBreakEnable,
    watchPending: m.chrWatchPending(0, 0),
  };
}

const SERIAL = { serial0: { kind: 'isa-serial', irq: 4 } };

/** A UART with a given build on both sides, run to `horizon`. */
function uartWorld(
  build: string,
  machine: string,
  steps: unknown[],
  horizon: number,
  backend = 'open',
): World {
  return run(
    schedule({ machine, src: build, srcBackends: { serial0: backend }, devices: SERIAL, steps, horizon }),
  ).world;
}

// Reachable UART states, each needing a known set of subsections (qemu-9.2, no gating).
const SCENARIOS: { name: string; backend: string; steps: unknown[]; horizon: number; expect: string[] }[] = [
  {
    // Bytes below the trigger level wait for the character timeout (4 char times, ~4 ms).
    name: 'received bytes waiting for the character timeout',
    backend: 'open',
    steps: [
      { at: 500_000, do: 'guest.uart.config', dev: 'serial0', fifo: true, trigger: 14, ier: 1 },
      { at: 1 * MS, do: 'host.uart.send', dev: 'serial0', data: 'hello' },
    ],
    horizon: 2 * MS,
    expect: ['serial/recv_fifo', 'serial/fifo_timeout_timer'],
  },
  {
    // IER 0: the guest never reads; the timeout fires and leaves timeout_ipending set.
    name: 'a character timeout pending that nobody serviced',
    backend: 'open',
    steps: [
      { at: 500_000, do: 'guest.uart.config', dev: 'serial0', fifo: true, trigger: 14, ier: 0 },
      { at: 1 * MS, do: 'host.uart.send', dev: 'serial0', data: 'pending' },
    ],
    horizon: 20 * MS,
    expect: ['serial/recv_fifo', 'serial/timeout_ipending'],
  },
  {
    // Seed bug B's state: the reader is hung up, TSR waits for writability, the rest in the FIFO.
    name: 'a byte in TSR waiting for a hung-up reader',
    backend: 'hung-up',
    steps: [
      { at: 500_000, do: 'guest.uart.config', dev: 'serial0', fifo: true, trigger: 4, ier: 3 },
      { at: 1 * MS, do: 'guest.uart.write', dev: 'serial0', data: 'boot: ok\n' },
    ],
    horizon: 4 * MS,
    expect: ['serial/tsr', 'serial/xmit_fifo'],
  },
  {
    // A received byte waits below trigger 8; lowering the trigger to 1 raises RDI, then the
    // THRI rising edge sets thr_ipending while IIR shows RDI: the CPU has not taken it yet.
    name: 'thr_ipending hidden behind a higher-priority RDI',
    backend: 'open',
    steps: [
      { at: 1 * MS, do: 'host.uart.send', dev: 'serial0', data: 'x' },
      { at: 1_500_000, do: 'guest.uart.config', dev: 'serial0', fifo: true, trigger: 1, ier: 3 },
    ],
    horizon: 1_501_000,
    expect: ['serial/thr_ipending', 'serial/recv_fifo', 'serial/fifo_timeout_timer'],
  },
  {
    name: 'an idle UART after boot',
    backend: 'open',
    steps: [],
    horizon: 1 * MS,
    expect: [],
  },
];

/** Makes every subsection needed at once (only poll is not reachable: no TIOCM backend). */
function makeEverythingNeeded(m: Machine): void {
  const s = uartOf(m);
  const now = m.vmNow();
  s.fcr = Fcr.FE | Fcr.ITL_4;
  s.recvFifoItl = 4;
  s.ier = Ier.RDI | Ier.THRI | Ier.RLSI;
  s.recvFifo.head = 13;
  s.recvFifo.num = 0;
  for (const b of bytes('abcdef')) fifoPush(s.recvFifo, b);
  s.xmitFifo.head = 3;
  s.xmitFifo.num = 0;
  for (const b of bytes('xyz')) fifoPush(s.xmitFifo, b);
  s.tsr = 0x77;
  s.thr = 0x7a;
  s.tsrRetry = 2;
  s.lsr = Lsr.DR; // THRE and TEMT clear: bytes in TSR and the xmit FIFO
  s.timeoutIpending = 1;
  s.iir = Iir.CTI | Iir.FIFO_ENABLED; // CTI outranks THRI: thr_ipending is not what IIR shows
  s.thrIpending = 1;
  m.timerMod(0, UartTimer.FIFO_TIMEOUT, now + 12_345);
  s.pollMsl = 1;
  m.timerMod(0, UartTimer.MODEM_POLL, now + 999);
  m.chrAddWatch(0, 0);
  s.scr = 0x5a;
  s.msr = 0xb0;
  s.divider = 3;
  s.lcr = 0x1b;
  s.mcr = 0x0b;
  updateParameters(s); // char_transmit_time follows divider and LCR, as on the destination
}

// ---------------------------------------------------------------------------------------------

describe('serial section on qemu-9.2', () => {
  for (const sc of SCENARIOS) {
    it(`round-trips ${sc.name}, sending exactly ${sc.expect.length ? sc.expect.join(', ') : 'no subsection'}`, () => {
      const world = uartWorld('qemu-9.2', 'pc-i440fx-9.2', sc.steps, sc.horizon, sc.backend);
      const { src, dst, stream } = migrateByHand(world);
      expect(subsectionsIn(stream)).toEqual(sc.expect);
      expect(migratedView(dst)).toEqual(migratedView(src));
      // The FIFO timeout timer is re-armed on the destination at the same vm_clock expiry.
      const fifoTimeout = (m: Machine) => m.timerExpiry(0, UartTimer.FIFO_TIMEOUT);
      expect(fifoTimeout(dst)).toBe(fifoTimeout(src));
    });
  }

  it('the scenarios really reach the states they are named after', () => {
    const machines = SCENARIOS.map((sc) => {
      const world = uartWorld('qemu-9.2', 'pc-i440fx-9.2', sc.steps, sc.horizon, sc.backend);
      return world.guestVm;
    });
    const [waiting, timedOut, tsr, thr] = machines.map((m) => uartOf(m));
    expect(fifoBytes(waiting!.recvFifo)).toEqual(bytes('hello'));
    expect(machines[0]!.timerExpiry(0, UartTimer.FIFO_TIMEOUT)).toBeGreaterThan(0);
    expect(timedOut!.timeoutIpending).toBe(1);
    expect(machines[1]!.timerExpiry(0, UartTimer.FIFO_TIMEOUT)).toBe(-1);
    expect(tsr!.tsrRetry).toBe(1);
    expect(tsr!.tsr).toBe('b'.charCodeAt(0));
    expect(fifoBytes(tsr!.xmitFifo)).toEqual(bytes('oot: ok\n'));
    expect(tsr!.lsr & Lsr.TEMT).toBe(0);
    expect(thr!.thrIpending).toBe(1);
    expect(thr!.iir & Iir.ID_MASK).toBe(Iir.RDI);
  });

  it('round-trips every field and all seven subsections at once, the whole UartState', () => {
    const world = uartWorld('qemu-9.2', 'pc-i440fx-9.2', [], 2 * MS);
    const src = world.guestVm;
    src.vmStop(RunState.FINISH_MIGRATE);
    makeEverythingNeeded(src);
    const stream = saveVm(src);
    expect(subsectionsIn(stream)).toEqual(ALL_SUBSECTIONS);
    const dst = freshDestination(world, src);
    loadVm(dst, stream);
    const s = uartOf(src);
    const d = uartOf(dst);
    expect(d).toEqual(s);
    for (const timer of [UartTimer.FIFO_TIMEOUT, UartTimer.MODEM_POLL])
      expect(dst.timerExpiry(0, timer)).toBe(src.timerExpiry(0, timer));
    // The chardev watch is not migrated: post_load re-adds it.
    expect(dst.chardevs.uart[0]!.watch).toBe(true);
  });

  it('post_load clamps tsr_retry to MAX_XMIT_RETRY', () => {
    const world = uartWorld('qemu-9.2', 'pc-i440fx-9.2', [], 1 * MS);
    const src = world.guestVm;
    src.vmStop(RunState.FINISH_MIGRATE);
    const s = uartOf(src);
    s.tsrRetry = 1000;
    s.lsr &= ~Lsr.TEMT;
    const dst = freshDestination(world, src);
    loadVm(dst, saveVm(src));
    expect(uartOf(dst).tsrRetry).toBe(MAX_XMIT_RETRY);
  });
});

describe('a destination UART receives before its section loads (serial.c has no vm-state handler)', () => {
  it("the incoming UART takes bytes from its chardev; vmstate_serial then overwrites them with the source's state", () => {
    const world = uartWorld(
      'qemu-9.2',
      'pc-i440fx-9.2',
      [
        { at: 500_000, do: 'guest.uart.config', dev: 'serial0', fifo: true, trigger: 14, ier: 1 },
        { at: 1 * MS, do: 'host.uart.send', dev: 'serial0', data: 'ab' },
      ],
      2 * MS,
    );
    const { src, stream } = stopAndSave(world);
    const dst = freshDestination(world, src);
    // The destination's chardev handlers are attached at realize: input is taken while incoming.
    dst.chardevs.hostUartSend(0, Uint8Array.from([0x58, 0x59]));
    dst.chardevs.pump(0, 0);
    // A fresh UART has no FIFO: can_receive allows one byte, 'X' sits in RBR, 'Y' waits.
    expect(uartOf(dst).lsr & Lsr.DR).toBe(Lsr.DR);
    expect(uartOf(dst).rbr).toBe(0x58);
    expect(dst.chardevs.uart[0]!.input).toEqual([0x59]);
    loadVm(dst, stream);
    // The load replaced what the destination had received: only the source's bytes are left.
    expect(fifoBytes(uartOf(dst).recvFifo)).toEqual([0x61, 0x62]);
    expect(uartOf(dst).rbr).toBe(uartOf(src).rbr);
  });
});

describe('serial subsections per build and machine type', () => {
  const cases: { build: string; machine: string; expect: string[] }[] = [
    { build: 'qemu-1.2', machine: 'pc-1.2', expect: [] },
    { build: 'qemu-1.3', machine: 'pc-1.2', expect: [] },
    { build: 'qemu-2.3', machine: 'pc-1.2', expect: ALL_SUBSECTIONS },
    { build: 'qemu-2.3', machine: 'pc-i440fx-2.3', expect: ALL_SUBSECTIONS },
    { build: 'rhel-7.4', machine: 'rhel6.6.0', expect: [] },
    { build: 'rhel-7.4', machine: 'pc-i440fx-rhel7.0.0', expect: [] },
    { build: 'rhel-7.4', machine: 'pc-i440fx-rhel7.4.0', expect: ALL_SUBSECTIONS },
    {
      build: 'rhel-7.5',
      machine: 'rhel6.6.0',
      expect: ['serial/tsr', 'serial/recv_fifo', 'serial/xmit_fifo'],
    },
    { build: 'rhel-7.5', machine: 'pc-i440fx-rhel7.5.0', expect: ALL_SUBSECTIONS },
    { build: 'qemu-9.2', machine: 'pc-i440fx-9.2', expect: ALL_SUBSECTIONS },
    { build: 'qemu-9.2', machine: 'pc-i440fx-2.4', expect: ALL_SUBSECTIONS },
  ];
  for (const c of cases) {
    it(`${c.build} on ${c.machine} sends ${c.expect.length === 7 ? 'all 7' : c.expect.length ? c.expect.join(', ') : 'none'}`, () => {
      const world = uartWorld(c.build, c.machine, [], 1 * MS);
      const src = world.guestVm;
      src.vmStop(RunState.FINISH_MIGRATE);
      makeEverythingNeeded(src);
      expect(subsectionsIn(saveVm(src))).toEqual(c.expect);
    });
  }

  it('rhel-7.4 on rhel6.6.0 sends no subsection even for the natural bug-B state', () => {
    const tsr = SCENARIOS[2]!;
    const world = uartWorld('rhel-7.4', 'rhel6.6.0', tsr.steps, tsr.horizon, tsr.backend);
    expect(uartOf(world.guestVm).tsrRetry).toBe(1);
    const { stream } = stopAndSave(world);
    expect(subsectionsIn(stream)).toEqual([]);
  });

  it('rhel-7.5 on rhel6.6.0 sends tsr and xmit_fifo for the bug-B state, and the load holds the bytes', () => {
    const tsr = SCENARIOS[2]!;
    const world = uartWorld('rhel-7.5', 'rhel6.6.0', tsr.steps, tsr.horizon, tsr.backend);
    const { src, dst, stream } = migrateByHand(world);
    expect(subsectionsIn(stream)).toEqual(['serial/tsr', 'serial/xmit_fifo']);
    expect(migratedView(dst)).toEqual(migratedView(src));
  });

  it('rhel-7.5 on rhel6.6.0 gates thr_ipending: the destination rebuilds it from IIR', () => {
    const thr = SCENARIOS[3]!;
    const world = uartWorld('rhel-7.5', 'rhel6.6.0', thr.steps, thr.horizon, thr.backend);
    const { src, dst, stream } = migrateByHand(world);
    expect(subsectionsIn(stream)).toEqual(['serial/recv_fifo']);
    expect(uartOf(src).thrIpending).toBe(1);
    // IIR shows RDI, so the rebuilt value is 0 (what the gating knowingly gives up).
    expect(uartOf(dst).thrIpending).toBe(0);
    // The timeout timer was gated too: the destination has none.
    expect(dst.timerExpiry(0, UartTimer.FIFO_TIMEOUT)).toBe(-1);
    expect(fifoBytes(uartOf(dst).recvFifo)).toEqual(bytes('x'));
  });

  it('qemu-1.2 and qemu-1.3 do not migrate FIFO or TSR contents at all', () => {
    for (const build of ['qemu-1.2', 'qemu-1.3']) {
      const sc = SCENARIOS[0]!;
      const world = uartWorld(build, 'pc-1.2', sc.steps, sc.horizon, sc.backend);
      const { src, dst, stream } = migrateByHand(world);
      expect(subsectionsIn(stream)).toEqual([]);
      expect(fifoBytes(uartOf(src).recvFifo)).toEqual(bytes('hello'));
      expect(uartOf(dst).recvFifo.num).toBe(0);
      // The main fields travel: DR says data is ready that the destination does not have.
      expect(uartOf(dst).lsr & Lsr.DR).toBe(Lsr.DR);
    }
  });

  for (const old of ['qemu-1.2', 'qemu-1.3']) {
    it(`a qemu-2.3 source with a needed subsection fails on a ${old} destination (pc-1.2)`, () => {
      const tsr = SCENARIOS[2]!;
      const s = schedule({
        machine: 'pc-1.2',
        src: 'qemu-2.3',
        dst: old,
        srcBackends: { serial0: 'hung-up' },
        devices: SERIAL,
        steps: [...tsr.steps, { at: 4 * MS, do: 'migrate' }],
        horizon: 30 * MS,
      });
      const { world } = run(s);
      expect(world.failures).toHaveLength(1);
      const f = world.failures[0]!;
      expect(f.key).toBe('unknown-subsection');
      expect(f.device).toBe('serial0');
      expect(f.message).toBe(
        "serial: unknown subsection 'serial/tsr': error while loading state for instance 0x0 of device 'serial'",
      );
      // The source resumes.
      expect(world.active).toBe(0);
      expect(world.vms[0]!.runState).toBe(RunState.RUNNING);
      expect(world.vms[1]).toBeNull();
      const verdict = judge(s, { builds: BUILDS });
      expect(verdict.findings.map((x) => x.signature)).toContain(
        'migration-failed:serial0:unknown-subsection',
      );
    });
  }

  it('a qemu-1.2 destination accepts a stream without subsections (qemu-2.3 source, idle UART)', () => {
    const s = schedule({
      machine: 'pc-1.2',
      src: 'qemu-2.3',
      dst: 'qemu-1.2',
      devices: SERIAL,
      steps: [{ at: 1 * MS, do: 'migrate' }],
      horizon: 20 * MS,
    });
    const { world } = run(s);
    expect(world.failures).toEqual([]);
    expect(world.active).toBe(1);
  });
});

describe('serial_post_load', () => {
  function withState(edit: (s: UartState) => void): { world: World; src: Machine; stream: Uint8Array } {
    const world = uartWorld('qemu-9.2', 'pc-i440fx-9.2', [], 1 * MS);
    const src = world.guestVm;
    src.vmStop(RunState.FINISH_MIGRATE);
    edit(uartOf(src));
    return { world, src, stream: saveVm(src) };
  }

  it('fails "tsr empty" when tsr_retry > 0 but LSR.TEMT is set (exact text, no closing parenthesis)', () => {
    const { world, src, stream } = withState((s) => {
      s.tsrRetry = 3;
      s.lsr |= Lsr.TEMT;
    });
    const e = loadError(() => loadVm(freshDestination(world, src), stream));
    expect(e.key).toBe('tsr-empty');
    expect(e.section).toBe('serial');
    expect(e.message).toBe(
      "inconsistent state in serial device (tsr empty, tsr_retry=3: error while loading state for instance 0x0 of device 'serial'",
    );
  });

  it('fails "tsr not empty" when LSR.TEMT is clear and tsr_retry is 0 (exact text)', () => {
    const { world, src, stream } = withState((s) => {
      s.lsr &= ~Lsr.TEMT;
    });
    const e = loadError(() => loadVm(freshDestination(world, src), stream));
    expect(e.key).toBe('tsr-not-empty');
    expect(e.message).toBe(
      "inconsistent state in serial device (tsr not empty, tsr_retry=0: error while loading state for instance 0x0 of device 'serial'",
    );
  });

  it('builds without post_load checks (qemu-1.3) load the inconsistent state', () => {
    const world = uartWorld('qemu-1.3', 'pc-1.3', [], 1 * MS);
    const src = world.guestVm;
    src.vmStop(RunState.FINISH_MIGRATE);
    uartOf(src).lsr &= ~Lsr.TEMT;
    const dst = freshDestination(world, src);
    loadVm(dst, saveVm(src));
    expect(uartOf(dst).lsr & Lsr.TEMT).toBe(0);
  });

  it('rebuilds thr_ipending from IIR when the subsection is absent', () => {
    // IER.THRI with thr_ipending 1 and IIR showing THRI: not needed, rebuilt as 1.
    const a = withState((s) => {
      s.ier = Ier.THRI;
      s.thrIpending = 1;
      s.iir = Iir.THRI | Iir.FIFO_ENABLED;
    });
    expect(subsectionsIn(a.stream)).toEqual([]);
    const da = freshDestination(a.world, a.src);
    uartOf(da).thrIpending = 0; // the destination's own value must not survive
    loadVm(da, a.stream);
    expect(uartOf(da).thrIpending).toBe(1);
    // No THRI in IIR: rebuilt as 0 even if the destination had 1.
    const b = withState((s) => {
      s.ier = 0;
      s.thrIpending = 0;
      s.iir = Iir.NO_INT | Iir.FIFO_ENABLED;
    });
    const db = freshDestination(b.world, b.src);
    uartOf(db).thrIpending = 1;
    loadVm(db, b.stream);
    expect(uartOf(db).thrIpending).toBe(0);
  });

  it('applies fcr through the shadow: trigger level and IIR FIFO bits, without resetting the FIFOs', () => {
    const sc = SCENARIOS[0]!; // FIFO on, trigger 14, "hello" received
    const world = uartWorld('qemu-9.2', 'pc-i440fx-9.2', sc.steps, sc.horizon);
    const { src, stream } = stopAndSave(world);
    const dst = freshDestination(world, src);
    const own = uartOf(dst);
    expect(own.fcr).toBe(0); // a fresh destination has never had its FIFO enabled
    expect(own.recvFifoItl).toBe(1);
    loadVm(dst, stream);
    const d = uartOf(dst);
    expect(d.fcr).toBe(Fcr.FE | Fcr.ITL_14);
    expect(d.recvFifoItl).toBe(14);
    expect(d.iir & Iir.FIFO_ENABLED).toBe(Iir.FIFO_ENABLED);
    // A real FCR write that turns FE on would have flushed both FIFOs.
    expect(fifoBytes(d.recvFifo)).toEqual(bytes('hello'));
  });

  // vmstate_isa_serial loads its VMSTATE_STRUCT at vmstate_serial's own version (3): the
  // section's version 2 changes nothing, fcr_vmstate is read all the same.
  it('a version 2 section is read with the version 3 fields: fcr still arrives', () => {
    const sc = SCENARIOS[0]!;
    const world = uartWorld('qemu-9.2', 'pc-i440fx-9.2', sc.steps, sc.horizon);
    const { src, stream } = stopAndSave(world);
    // QEMU_VM_SECTION_FULL, section id, "serial", instance 0, version 3 -> rewrite as version 2.
    const name = [6, ...bytes('serial')];
    const at = indexOfBytes(stream, name);
    expect(at).toBeGreaterThan(0);
    const versionAt = at + name.length + 4;
    expect([...stream.subarray(versionAt, versionAt + 4)]).toEqual([0, 0, 0, 3]);
    const fcrAt = versionAt + 4 + 2 + 8;
    expect(stream[fcrAt]).toBe(Fcr.FE | Fcr.ITL_14);
    const v2 = stream.slice();
    v2[versionAt + 3] = 2;
    const dst = freshDestination(world, src);
    loadVm(dst, v2);
    expect(uartOf(dst).fcr).toBe(Fcr.FE | Fcr.ITL_14);
    expect(uartOf(dst).iir & Iir.FIFO_ENABLED).toBe(Iir.FIFO_ENABLED);
    // A version 2 body in the old layout (no fcr byte) is misread: the load fails.
    const short = new Uint8Array(v2.length - 1);
    short.set(v2.subarray(0, fcrAt));
    short.set(v2.subarray(fcrAt + 1), fcrAt);
    expect(() => loadVm(freshDestination(world, src), short)).toThrow(LoadError);
    // Version 1 stays below the minimum.
    const v1 = stream.slice();
    v1[versionAt + 3] = 1;
    expect(() => loadVm(freshDestination(world, src), v1)).toThrow(/too old for local minimum version_id 2/);
  });
});

// ---------------------------------------------------------------------------------------------

const VSER = (irq = 'intx', ports: unknown[] = [{ id: 1, name: 'com.redhat.spice.0' }]) => ({
  vser0: { kind: 'virtio-serial', irq, ports },
});

function portOpenEvents(events: Rec[], vm: number, value: number): Rec[] {
  return events.filter(
    (e) =>
      e.kind === Ev.CTRL_TO_GUEST && e.vm === vm && e.a === 1 && e.b === ((Ctrl.PORT_OPEN << 16) | value),
  );
}

function migrationPhase(events: Rec[], phase: number): Rec[] {
  return events.filter((e) => e.kind === Ev.MIGRATION && e.a === phase);
}

describe('virtio-console section', () => {
  function vserWorld(build: string, machine: string, horizon = 3 * MS): World {
    return run(
      schedule({
        machine,
        src: build,
        srcBackends: { 'vser0.port1': 'none' },
        dstBackends: { 'vser0.port1': 'socket' },
        devices: VSER(),
        steps: [{ at: 1 * MS, do: 'guest.vport.open', dev: 'vser0', port: 1 }],
        horizon,
      }),
    ).world;
  }

  it('fails when a ports_map word differs from the destination', () => {
    const world = vserWorld('qemu-9.2', 'pc-i440fx-9.2');
    const { src, stream } = stopAndSave(world);
    // The destination has one more port than the source.
    const side: SideSpec = { build: 'qemu-9.2', backends: {} };
    const dst = new Machine(world, {
      vm: 1,
      build: BUILDS.get('qemu-9.2') as Build,
      machineType: findMachine(BUILDS.get('qemu-9.2')!, 'pc-i440fx-9.2')!,
      devices: Object.entries({
        vser0: { kind: 'virtio-serial', irq: 'intx', ports: [{ id: 1 }, { id: 2 }] },
      }) as never,
      backends: side.backends as Record<string, string>,
    });
    dst.startIncoming();
    dst.ram = cloneRam(src.ram);
    const e = loadError(() => loadVm(dst, stream));
    expect(e.key).toBe('ports-map');
    expect(e.section).toBe('0000:00:04.0/virtio-console');
    expect(e.message).toBe(
      "virtio-serial: ports_map 0x3 differs from the local 0x7: error while loading state for instance 0x0 of device '0000:00:04.0/virtio-console'",
    );
  });

  it('fails on a port id the destination does not have', () => {
    const world = vserWorld('qemu-9.2', 'pc-i440fx-9.2');
    const src = world.guestVm;
    src.vmStop(RunState.FINISH_MIGRATE);
    vserOf(src).ports[0]!.id = 5; // the stream names port 5; ports_map still says port 1
    const stream = saveVm(src);
    const e = loadError(() => loadVm(freshDestination(world, src), stream));
    expect(e.key).toBe('unknown-port');
    expect(e.message).toMatch(/^virtio-serial: unknown port id 5: error while loading state/);
  });

  it('applies guest_connected at once and only records the source host_connected (timer builds)', () => {
    const world = vserWorld('qemu-9.2', 'pc-i440fx-9.2');
    const { src, dst } = migrateByHand(world);
    const sp = vserOf(src).ports[0]!;
    const dp = vserOf(dst).ports[0]!;
    expect(sp.guestConnected).toBe(true);
    expect(sp.hostConnected).toBe(false);
    expect(dp.guestConnected).toBe(true);
    // The destination keeps its own host connection; the source's is kept for the timer.
    expect(dp.hostConnected).toBe(true);
    expect(vserOf(dst).postLoad).toEqual({ ids: [1], hostConnected: [false] });
    expect(dst.timerExpiry(vserOf(dst).dev, VserTimer.POST_LOAD)).toBe(1);
  });

  for (const irq of ['intx', 'msix']) {
    it(`round-trips queue positions, a partly written element, ISR and the interrupt state (${irq})`, () => {
      // The socket takes 256 bytes before its peer drains it: 100 + 156 bytes go out, the
      // third buffer of the second write stops at offset 28 and the port is throttled.
      const s = schedule({
        machine: 'pc-i440fx-9.2',
        src: 'qemu-9.2',
        srcBackends: { 'vser0.port1': 'socket' },
        devices: VSER(irq),
        steps: [
          { at: 1 * MS, do: 'guest.vport.open', dev: 'vser0', port: 1 },
          { at: 2 * MS, do: 'guest.vport.write', dev: 'vser0', port: 1, data: 'a'.repeat(100) },
          { at: 2 * MS, do: 'guest.vport.write', dev: 'vser0', port: 1, data: 'b'.repeat(500) },
        ],
        horizon: 2 * MS + 1000, // before the CPU takes the interrupt
      });
      const { world } = run(s);
      const { src, dst } = migrateByHand(world);
      const sv = vserOf(src);
      const dv = vserOf(dst);
      expect(sv.ports[0]!.elem).toEqual({ id: expect.any(Number), offset: 28 });
      expect(sv.isr).toBe(1);
      // The destination keeps the transport record the stream brought (the model-made source
      // writes QEMU 7.2's values at realize), with the popped element as it was written.
      expect({ ...dv, postLoad: null, transport: null }).toEqual(sv);
      expect(saveVm(dst)).toEqual(saveVm(src));
      expect(dv.ports[0]!.throttled).toBe(true);
      expect(dst.chardevs.vport[0]!.get(1)!.watch).toBe(true);
      expect(dst.irq.pci).toEqual(src.irq.pci);
      expect(dst.irq.msix).toEqual(src.irq.msix);
      expect(dst.irq.ioapic).toEqual(src.irq.ioapic);
      // qemu-9.2 installs the LAPIC in its post_load: the pending vector is there.
      expect(dst.irq.lapic).toEqual(src.irq.lapic);
      expect(dst.irq.lapic.irr.some((v) => v === 1)).toBe(true);
      if (irq === 'intx') expect(dst.irq.pci.irqState[0]).toBe(1);
    });
  }

  function bugASchedule(build: string, machine: string, extra: unknown[] = [], autostart = true): Schedule {
    return schedule({
      machine,
      src: build,
      srcBackends: { 'vser0.port1': 'none' },
      dstBackends: { 'vser0.port1': 'socket' },
      devices: VSER(),
      steps: [
        { at: 1 * MS, do: 'guest.vport.open', dev: 'vser0', port: 1 },
        { at: 5 * MS, do: 'migrate', autostart },
        ...extra,
      ],
      horizon: 50 * MS,
    });
  }

  it('on timer builds PORT_OPEN waits for vm_start: a paused destination stays silent until vm.cont', () => {
    const s = bugASchedule('qemu-9.2', 'pc-i440fx-9.2', [{ at: 20 * MS, do: 'vm.cont' }], false);
    const { world, events } = run(s);
    const loaded = migrationPhase(events, MigPhase.LOADED);
    expect(loaded).toHaveLength(1);
    expect(loaded[0]!.vm).toBe(1);
    // Nothing from the destination's virtio-serial before vm.cont: no control event, no line.
    const beforeCont = events.filter((e) => e.vm === 1 && e.at < 20 * MS);
    expect(beforeCont.filter((e) => e.kind === Ev.CTRL_TO_GUEST || e.kind === Ev.DEV_IRQ)).toEqual([]);
    const opens = portOpenEvents(events, 1, 1);
    expect(opens).toHaveLength(1);
    expect(opens[0]!.at).toBe(20 * MS);
    const running = events.findIndex(
      (e) => e.kind === Ev.RUN_STATE && e.vm === 1 && e.a === RunState.RUNNING && e.at === 20 * MS,
    );
    expect(running).toBeGreaterThanOrEqual(0);
    expect(events.indexOf(opens[0]!)).toBeGreaterThan(running);
    // The guest learnt it, and the run is clean.
    const drv = world.guestVm.ram.guest.drivers[0]!;
    expect(drv.kind === 'vser' && drv.d.ports[0]!.hostConnected).toBe(true);
    expect(judge(s, { builds: BUILDS }).findings).toEqual([]);
  });

  it('on timer builds with autostart PORT_OPEN comes right after vm_start, not during load (a load that ends at once)', () => {
    const { events } = run({ ...bugASchedule('qemu-1.3', 'pc-1.2'), seed: seedWithStreamWaits(false) });
    const loaded = migrationPhase(events, MigPhase.LOADED)[0]!;
    const opens = portOpenEvents(events, 1, 1);
    expect(opens).toHaveLength(1);
    expect(events.indexOf(opens[0]!)).toBeGreaterThan(events.indexOf(loaded));
    const started = events.findIndex(
      (e) => e.kind === Ev.RUN_STATE && e.vm === 1 && e.a === RunState.RUNNING,
    );
    expect(events.indexOf(opens[0]!)).toBeGreaterThan(started);
  });

  it('on qemu-1.2 PORT_OPEN is sent inside load, before the LOADED phase', () => {
    const { events } = run(bugASchedule('qemu-1.2', 'pc-1.2'));
    const loaded = migrationPhase(events, MigPhase.LOADED)[0]!;
    const created = migrationPhase(events, MigPhase.DST_CREATED)[0]!;
    const opens = portOpenEvents(events, 1, 1);
    expect(opens.length).toBeGreaterThanOrEqual(1);
    const i = events.indexOf(opens[0]!);
    expect(i).toBeGreaterThan(events.indexOf(created));
    expect(i).toBeLessThan(events.indexOf(loaded));
    // The destination was still loading when it raised its line.
    const raised = events.findIndex((e) => e.kind === Ev.DEV_IRQ && e.vm === 1 && e.a === 1);
    expect(raised).toBeGreaterThan(events.indexOf(created));
    expect(raised).toBeLessThan(events.indexOf(loaded));
  });
});

// ---------------------------------------------------------------------------------------------

describe('LAPIC load time', () => {
  it('end-of-load builds wipe a vector delivered during load (LAPIC_PUSH with b = 1)', () => {
    const s = schedule({
      machine: 'pc-1.2',
      src: 'qemu-1.2',
      srcBackends: { 'vser0.port1': 'none' },
      dstBackends: { 'vser0.port1': 'socket' },
      devices: VSER(),
      steps: [
        { at: 1 * MS, do: 'guest.vport.open', dev: 'vser0', port: 1 },
        { at: 5 * MS, do: 'migrate' },
      ],
      horizon: 30 * MS,
    });
    const { world, events } = run(s);
    const delivered = events.filter((e) => e.kind === Ev.IOAPIC_DELIVER && e.vm === 1);
    expect(delivered.length).toBeGreaterThanOrEqual(1);
    const push = migrationPhase(events, MigPhase.LAPIC_PUSH);
    expect(push).toHaveLength(1);
    expect(push[0]!.b).toBe(1);
    expect(events.indexOf(push[0]!)).toBeGreaterThan(events.indexOf(delivered[0]!));
    const dst = world.guestVm;
    const gsi = dst.devices[0]!.gsi;
    expect(dst.irq.lapic.irr[vectorOfGsi(gsi)]).toBe(0);
    expect(dst.irq.lapic.isr[vectorOfGsi(gsi)]).toBe(0);
    // The guest never ran a handler on the destination.
    expect(events.filter((e) => e.kind === Ev.HANDLER && e.vm === 1)).toEqual([]);
  });

  it('end-of-load builds push the LAPIC even when nothing was delivered during load (b = 0)', () => {
    const s = schedule({
      machine: 'pc-1.2',
      src: 'qemu-1.3',
      srcBackends: { 'vser0.port1': 'none' },
      dstBackends: { 'vser0.port1': 'socket' },
      devices: VSER(),
      steps: [
        { at: 1 * MS, do: 'guest.vport.open', dev: 'vser0', port: 1 },
        { at: 5 * MS, do: 'migrate' },
      ],
      horizon: 30 * MS,
    });
    // A load that ends at once: qemu-1.3's post-load timer waits for the next main-loop pass.
    const { events } = run({ ...s, seed: seedWithStreamWaits(false) });
    const push = migrationPhase(events, MigPhase.LAPIC_PUSH);
    expect(push).toHaveLength(1);
    expect(push[0]!.b).toBe(0);
  });

  it('post-load builds keep a vector delivered during load: the guest takes it after vm_start', () => {
    // A "what if" build: PORT_OPEN inside load (qemu-1.2) but the LAPIC installed in its own
    // post_load (78d6a05d): the in-load interrupt is no longer wiped.
    const base = BUILDS.get('qemu-1.2')!;
    const custom: Build = {
      ...base,
      name: 'x-inload-postlapic',
      revisions: { ...base.revisions, lapicLoad: 'post-load' },
    };
    const builds: BuildRegistry = new Map([...BUILDS, [custom.name, custom]]);
    const s = schedule(
      {
        machine: 'pc-1.2',
        src: custom.name,
        srcBackends: { 'vser0.port1': 'none' },
        dstBackends: { 'vser0.port1': 'socket' },
        devices: VSER(),
        steps: [
          { at: 1 * MS, do: 'guest.vport.open', dev: 'vser0', port: 1 },
          { at: 5 * MS, do: 'migrate' },
          { at: 15 * MS, do: 'host.vport.send', dev: 'vser0', port: 1, data: 'mouse event' },
        ],
        horizon: 50 * MS,
      },
      builds,
    );
    const { world, events } = run(s, builds);
    const loaded = migrationPhase(events, MigPhase.LOADED)[0]!;
    const inLoad = events.filter(
      (e) => e.kind === Ev.IOAPIC_DELIVER && e.vm === 1 && events.indexOf(e) < events.indexOf(loaded),
    );
    expect(inLoad).toHaveLength(1);
    expect(migrationPhase(events, MigPhase.LAPIC_PUSH)).toEqual([]);
    const handlers = events.filter((e) => e.kind === Ev.HANDLER && e.vm === 1);
    expect(handlers.length).toBeGreaterThanOrEqual(1);
    expect(handlers[0]!.a).toBe(inLoad[0]!.a);
    const drv = world.guestVm.ram.guest.drivers[0]!;
    expect(drv.kind).toBe('vser');
    if (drv.kind === 'vser') {
      expect(drv.d.ports[0]!.hostConnected).toBe(true);
      expect(String.fromCharCode(...drv.d.ports[0]!.rx)).toBe('mouse event');
    }
    expect(judge(s, { builds }).findings).toEqual([]);
  });
});

describe('vm_clock across migration', () => {
  it('the destination vm_clock starts at the source value and continues from there', () => {
    const s = schedule({
      machine: 'pc-i440fx-9.2',
      src: 'qemu-9.2',
      devices: SERIAL,
      steps: [
        { at: 2 * MS, do: 'vm.stop' },
        { at: 3 * MS, do: 'vm.cont' },
        { at: 5 * MS, do: 'migrate', downtime: 700_000 },
      ],
      horizon: 20 * MS,
    });
    let atLoad: { src: number; dst: number } | null = null;
    const world = new World(s, { builds: BUILDS });
    world.sink = {
      event(_at, kind, vm, _dev, a) {
        if (kind === Ev.MIGRATION && a === MigPhase.LOADED) {
          atLoad = { src: world.vms[1 - vm]!.vmNow(), dst: world.vms[vm]!.vmNow() };
        }
      },
    };
    expect(world.run().kind).toBe('horizon');
    expect(atLoad).not.toBeNull();
    const { src, dst } = atLoad!;
    // The source ran 5 ms of host time minus the 1 ms pause.
    expect(src).toBe(4 * MS);
    expect(dst).toBe(src);
    // The destination started at 5.7 ms host time and ran until 20 ms.
    expect(world.guestVm.vmNow()).toBe(src + (20 * MS - 5_700_000));
    expect(world.vms[0]!.vmNow()).toBe(src);
  });

  it('a UART timer armed on the source fires on the destination at the same vm_clock expiry', () => {
    const sc = SCENARIOS[0]!;
    const s = schedule({
      machine: 'pc-i440fx-9.2',
      src: 'qemu-9.2',
      devices: SERIAL,
      steps: [...sc.steps, { at: 1_500_000, do: 'migrate', downtime: 2 * MS }],
      horizon: 30 * MS,
    });
    const { world, events } = run(s);
    const src = world.vms[0]!;
    const expiry = src.timerExpiry(0, UartTimer.FIFO_TIMEOUT); // still pending when the source stopped
    expect(expiry).toBeGreaterThan(0);
    const slot = src.slotOf(0, UartTimer.FIFO_TIMEOUT);
    const fired = events.filter((e) => e.kind === Ev.TIMER && e.vm === 1 && e.dev === slot);
    expect(fired.length).toBeGreaterThanOrEqual(1);
    // vm = host + offset on the destination's clock.
    const dst = world.guestVm;
    expect(fired[0]!.at + dst.clock.offsetNs).toBe(expiry);
    const drv = dst.ram.guest.drivers[0]!;
    expect(drv.kind === 'uart' && String.fromCharCode(...drv.d.rx)).toBe('hello');
  });
});
