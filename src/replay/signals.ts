/**
 * A trace's executed events as waveform signals: the one decoding behind `show --vcd`
 * (vcd.ts) and the waveform view of `show --html` / `report` (src/report).
 *
 * Signals, per VM (`vm0`, `vm1`):
 * - `run_state[2:0]` (RUN_STATE_NAMES index) and `migration[2:0]` (last MigPhase);
 * - per device: `irq` (the device's interrupt output, DEV_IRQ); a 16550 also `ier`, `iir`,
 *   `lsr`, `lcr` (8 bits, as the guest last wrote or read them; `x` before) and `backend`
 *   (its chardev's state, BACKEND); a virtio-serial device `isr` (the value the guest last
 *   read: reading clears it) and `status`, and per port `portN.backend` (the port's host
 *   connection, BACKEND) and `portN.host_connected` (the device's view of it,
 *   HOST_CONNECTED); both start from the schedule's backends of that side;
 * - `ioapic.gsiN` (the pin's input level, PIN) and `ioapic.gsiN_rirr` (Remote-IRR) for each
 *   pin the trace touches;
 * - `lapic.irr` (the highest vector requested at the local APIC: an IOAPIC delivery or a
 *   sent MSI-X message, until the CPU takes it or the end-of-load LAPIC push replaces the
 *   LAPIC with the one the stream carried) and `lapic.isr` (the vector in service: the guest's
 *   handler runs and EOIs within one instant, so it is a pulse).
 * `guest.DEV_portN_connected`: the guest driver's view of each port's host connection
 * (GUEST_VIEW); it lives in guest memory and travels with the VM.
 * Per byte stream (`bytes.*`, 32 bits): bytes in the devices' custody, from BYTE_ACCEPT
 * (+1) and BYTE_DELIVER/BYTE_DISCARD (-1); across a migration the count follows the bytes.
 * `findings[7:0]` counts the findings fired so far.
 *
 * Loading is not in the event log: a destination's signals start as a new machine's when it
 * is created (its side's backends, lines low, registers unknown) and take what the stream
 * carries (device lines and registers, IOAPIC, LAPIC requests) from the source's values at
 * its save when the load completes, except where an event of the load itself changed them.
 *
 * The signals are played instant by instant (each distinct event or finding time): after an
 * instant's changes, `value` is the value after the last of them, and `touched` says whether
 * anything set the signal during the instant (a pulse, when the value came back).
 */

import {
  Ev,
  MIG_PHASE_NAMES,
  MigPhase,
  RUN_STATE_NAMES,
  RunState,
  streamDev,
  streamToGuest,
} from '../model/events.js';
import { CONNECTED_AT_REALIZE, type VportBackendState } from '../model/schedule/types.js';
import { Reg } from '../model/uart16550/regs.js';
import { VirtioPci } from '../model/virtio-serial/state.js';
import { Describer } from './describe.js';
import type { Trace } from './format.js';

/** How the waveform view draws a signal (absent: the VCD only, e.g. the UART registers). */
export interface Lane {
  style: 'bit' | 'count' | 'enum' | 'vector';
  /** In words, for the page's labels. */
  title: string;
  /** `enum`: the name of each value. */
  labels?: readonly string[];
}

export interface Signal {
  id: string;
  name: string;
  /** Scope names from the top, then the signal's name: `migfuzz.vm1.ioapic.gsi19_rirr`. */
  path: string;
  width: number;
  /** null: unknown (x). */
  value: number | null;
  /** Last value written to the dump (undefined: never). */
  dumped: number | null | undefined;
  /** Set during the current instant (cleared after it). */
  touched: boolean;
  lane?: Lane;
}

export interface Scope {
  name: string;
  path: string;
  signals: Signal[];
  scopes: Scope[];
}

export interface SignalSet {
  top: Scope;
  /** Every signal, in declaration order. */
  all: Signal[];
  /**
   * Plays the trace: `instant(time, first)` after each distinct time's changes (time 0
   * first, even without events), in increasing time order.
   */
  play(instant: (time: number, first: boolean) => void): void;
}

/** VCD identifier codes: printable ASCII 33..126, shortest first. */
function idCode(n: number): string {
  let s = '';
  do {
    s += String.fromCharCode(33 + (n % 94));
    n = Math.floor(n / 94);
  } while (n > 0);
  return s;
}

/** A reference name for the dump: letters, digits and `_` only. */
function ident(name: string): string {
  const s = name.replace(/[^A-Za-z0-9_]/g, '_');
  return /^[A-Za-z_]/.test(s) ? s : `_${s}`;
}

class Builder {
  private count = 0;
  readonly all: Signal[] = [];

  scope(parent: Scope | null, name: string): Scope {
    const id = ident(name);
    const s: Scope = { name: id, path: parent ? `${parent.path}.${id}` : id, signals: [], scopes: [] };
    parent?.scopes.push(s);
    return s;
  }

  add(scope: Scope, name: string, width: number, value: number | null, lane?: Lane): Signal {
    let ref = ident(name);
    while (scope.signals.some((s) => s.name === ref)) ref = `${ref}_`;
    const s: Signal = {
      id: idCode(this.count++),
      name: ref,
      path: `${scope.path}.${ref}`,
      width,
      value,
      dumped: undefined,
      touched: false,
      lane,
    };
    scope.signals.push(s);
    this.all.push(s);
    return s;
  }
}

/** A change: `touched` marks a signal that moved during the instant, even if it came back. */
function set(s: Signal | undefined, value: number | null): void {
  if (!s || s.value === value) return;
  s.value = value;
  s.touched = true;
}

interface DeviceSignals {
  irq: Signal;
  regs: Map<string, Signal>;
  /** A 16550's chardev state. */
  backend?: Signal;
  /** Per virtio-serial port id. */
  ports: Map<number, { backend: Signal; hostConnected: Signal }>;
}

interface VmSignals {
  runState: Signal;
  migration: Signal;
  devices: DeviceSignals[];
  pins: Map<number, Signal>;
  rirr: Map<number, Signal>;
  lapicIrr: Signal;
  lapicIsr: Signal;
  /** Vectors requested at the LAPIC (its IRR), as far as the events tell. */
  requested: Set<number>;
  /** What the migration stream carries (device lines and registers, IOAPIC), in one order for every VM. */
  migrated: Signal[];
  /** Every signal of a VM but its run state and phase, with its value on a newly created VM. */
  fresh: [Signal, number | null][];
}

const UART_BACKENDS = ['open', 'hung-up', 'closed', 'slow'];
const highest = (vectors: Set<number>): number => (vectors.size === 0 ? 0 : Math.max(...vectors));

/** The signals of a trace, ready to play. */
export function traceSignals(t: Trace): SignalSet {
  const log = t.events;
  const n = log.length;
  const s = t.schedule;
  const b = new Builder();
  const top = b.scope(null, 'migfuzz');
  const findings = b.add(top, 'findings', 8, 0, { style: 'count', title: 'findings fired so far' });
  const describer = new Describer(s, log);
  const deviceNames = Object.keys(s.devices);

  // Which VMs, pins and streams the trace touches.
  const vmSet = new Set<number>([0]);
  const gsis = new Set<number>();
  const streams = new Set<number>();
  for (let i = 0; i < n; i++) {
    const k = log.kind[i]!;
    if (log.vm[i]! >= 0) vmSet.add(log.vm[i]!);
    if (k === Ev.PIN || k === Ev.REMOTE_IRR) gsis.add(log.dev[i]!);
    else if (k === Ev.BYTE_ACCEPT || k === Ev.BYTE_DELIVER || k === Ev.BYTE_DISCARD) streams.add(log.dev[i]!);
  }

  const vms: VmSignals[] = [];
  for (const vm of [...vmSet].sort((x, y) => x - y)) {
    // VM 0 runs the schedule's src side, VM 1 its dst side (world.ts makeMachine).
    const side = vm === 1 ? s.dst : s.src;
    const scope = b.scope(top, `vm${vm}`);
    const runState = b.add(scope, 'run_state', 3, RunState.ABSENT, {
      style: 'enum',
      title: `vm${vm} run state`,
      labels: RUN_STATE_NAMES,
    });
    const migration = b.add(scope, 'migration', 3, null, {
      style: 'enum',
      title: `vm${vm} migration phase`,
      labels: MIG_PHASE_NAMES,
    });
    const devices = deviceNames.map((name, dev): DeviceSignals => {
      const ds = b.scope(scope, name);
      const regs = new Map<string, Signal>();
      const kind = describer.deviceKind(dev);
      const irq = b.add(ds, 'irq', 1, 0, { style: 'bit', title: `vm${vm} ${name} interrupt output` });
      for (const r of kind === 'isa-serial' ? ['ier', 'iir', 'lsr', 'lcr'] : ['isr', 'status'])
        regs.set(r, b.add(ds, r, 8, null));
      const d: DeviceSignals = { irq, regs, ports: new Map() };
      const spec = s.devices[name]!;
      if (spec.kind === 'isa-serial') {
        const state = UART_BACKENDS.indexOf(side.backends[name] ?? 'open');
        d.backend = b.add(ds, 'backend', 2, state, {
          style: 'enum',
          title: `vm${vm} ${name} chardev backend`,
          labels: UART_BACKENDS,
        });
      } else {
        for (const p of spec.ports) {
          const ps = b.scope(ds, `port${p.id}`);
          const backend = side.backends[`${name}.port${p.id}`] as VportBackendState | undefined;
          const connected = backend !== undefined && CONNECTED_AT_REALIZE.includes(backend) ? 1 : 0;
          d.ports.set(p.id, {
            backend: b.add(ps, 'backend', 1, connected, {
              style: 'bit',
              title: `vm${vm} ${name} port ${p.id}: host connection (backend connected)`,
            }),
            hostConnected: b.add(ps, 'host_connected', 1, connected, {
              style: 'bit',
              title: `vm${vm} ${name} port ${p.id}: the device's host_connected`,
            }),
          });
        }
      }
      return d;
    });
    const io = b.scope(scope, 'ioapic');
    const pins = new Map<number, Signal>();
    const rirr = new Map<number, Signal>();
    for (const gsi of [...gsis].sort((x, y) => x - y)) {
      pins.set(gsi, b.add(io, `gsi${gsi}`, 1, 0, { style: 'bit', title: `vm${vm} IOAPIC pin ${gsi} level` }));
      rirr.set(
        gsi,
        b.add(io, `gsi${gsi}_rirr`, 1, 0, { style: 'bit', title: `vm${vm} IOAPIC pin ${gsi} Remote-IRR` }),
      );
    }
    const lapic = b.scope(scope, 'lapic');
    const lapicIrr = b.add(lapic, 'irr', 8, 0, {
      style: 'vector',
      title: `vm${vm} LAPIC requested vector (IRR)`,
    });
    const lapicIsr = b.add(lapic, 'isr', 8, 0, {
      style: 'vector',
      title: `vm${vm} LAPIC in-service vector (ISR)`,
    });
    const migrated = [
      ...devices.flatMap((d) => [d.irq, ...d.regs.values()]),
      ...pins.values(),
      ...rirr.values(),
    ];
    const fresh: [Signal, number | null][] = [
      ...migrated.map((sig): [Signal, number | null] => [sig, sig.value]),
      [lapicIrr, 0],
      [lapicIsr, 0],
      ...devices.flatMap((d) => [
        ...(d.backend ? [[d.backend, d.backend.value] as [Signal, number | null]] : []),
        ...[...d.ports.values()].flatMap((p): [Signal, number | null][] => [
          [p.backend, p.backend.value],
          [p.hostConnected, p.hostConnected.value],
        ]),
      ]),
    ];
    vms[vm] = {
      runState,
      migration,
      devices,
      pins,
      rirr,
      lapicIrr,
      lapicIsr,
      requested: new Set(),
      migrated,
      fresh,
    };
  }

  const guestScope = b.scope(top, 'guest');
  const guestView = new Map<string, Signal>();
  for (const [name, spec] of Object.entries(s.devices)) {
    if (spec.kind !== 'virtio-serial') continue;
    for (const p of spec.ports) {
      guestView.set(
        `${deviceNames.indexOf(name)}:${p.id}`,
        b.add(guestScope, `${name}_port${p.id}_connected`, 1, 0, {
          style: 'bit',
          title: `the guest's view: ${name} port ${p.id} host connected`,
        }),
      );
    }
  }

  const held = new Map<number, Signal>();
  if (streams.size > 0) {
    const bytes = b.scope(top, 'bytes');
    for (const st of [...streams].sort((x, y) => x - y)) {
      const name = describer.streamName(st);
      const where =
        describer.deviceKind(streamDev(st)) === 'virtio-serial'
          ? 'virtqueues and port buffers'
          : streamToGuest(st)
            ? 'receive FIFO / RBR'
            : 'transmit FIFO / THR and TSR';
      held.set(
        st,
        b.add(bytes, name.replace('→', 'to_'), 32, 0, {
          style: 'count',
          title: `bytes held by ${name} (${where})`,
        }),
      );
    }
  }

  /** The LAPIC requests and the migrated values the source held when it saved. */
  let savedRequests = new Set<number>();
  let savedValues: (number | null)[] = [];
  const lapicRequests = (v: VmSignals, vectors: Set<number>): void => {
    v.requested = vectors;
    set(v.lapicIrr, highest(vectors));
  };

  const apply = (i: number): void => {
    const k = log.kind[i]!;
    const vm = log.vm[i]!;
    const dev = log.dev[i]!;
    const a = log.a[i]!;
    const bv = log.b[i]!;
    const v = vms[vm];
    switch (k) {
      case Ev.RUN_STATE:
        return set(v?.runState, a);
      case Ev.MIGRATION:
        if (!v) return;
        set(v.migration, a);
        if (a === MigPhase.SAVED) {
          savedRequests = new Set(v.requested);
          savedValues = v.migrated.map((sig) => sig.value);
        } else if (a === MigPhase.DST_CREATED) {
          // A new machine with its side's backends (world.ts makeMachine), nothing loaded yet.
          for (const [sig, value] of v.fresh) sig.value = value;
          v.requested = new Set();
        } else if (a === MigPhase.LAPIC_PUSH) {
          // The end-of-load push replaces whatever was delivered during the load.
          lapicRequests(v, new Set(savedRequests));
        } else if (a === MigPhase.LOADED) {
          // Loading sets what the stream carries; a change an event made during the load (a
          // line raised in a post-load, say) came after its section and stands.
          v.migrated.forEach((sig, j) => {
            if (!sig.touched) set(sig, savedValues[j] ?? null);
          });
          lapicRequests(v, new Set([...v.requested, ...savedRequests]));
        }
        return;
      case Ev.DEV_IRQ:
        return set(v?.devices[dev]?.irq, a);
      case Ev.PIN:
        return set(v?.pins.get(dev), a);
      case Ev.REMOTE_IRR:
        return set(v?.rirr.get(dev), a);
      case Ev.IOAPIC_DELIVER:
        if (v) lapicRequests(v, v.requested.add(a));
        return;
      case Ev.MSI:
        if (v && bv === 1) lapicRequests(v, v.requested.add(a));
        return;
      case Ev.HANDLER:
        if (!v) return;
        v.requested.delete(a);
        lapicRequests(v, v.requested);
        return set(v.lapicIsr, a);
      case Ev.EOI:
        if (!v) return;
        // The CPU took the vector (IRR → ISR) even when no handler ran (a disabled guest IRQ).
        v.requested.delete(a);
        lapicRequests(v, v.requested);
        return set(v.lapicIsr, 0);
      case Ev.REG_READ:
      case Ev.REG_WRITE:
        return registerAccess(v?.devices[dev], describer.deviceKind(dev), k === Ev.REG_WRITE, a, bv);
      case Ev.BACKEND: {
        const d = v?.devices[dev];
        if (d?.backend) return set(d.backend, bv);
        return set(d?.ports.get(a)?.backend, bv);
      }
      case Ev.HOST_CONNECTED:
        return set(v?.devices[dev]?.ports.get(a)?.hostConnected, bv);
      case Ev.GUEST_VIEW:
        return set(guestView.get(`${dev}:${a}`), bv);
      case Ev.BYTE_ACCEPT:
      case Ev.BYTE_DELIVER:
      case Ev.BYTE_DISCARD: {
        const h = held.get(dev)!;
        return set(h, (h.value ?? 0) + (k === Ev.BYTE_ACCEPT ? 1 : -1));
      }
    }
  };

  const play = (instant: (time: number, first: boolean) => void): void => {
    const fired = t.verdict.findings.map((f) => f.at).sort((x, y) => x - y);
    let i = 0;
    let f = 0;
    let time = 0;
    let first = true;
    for (;;) {
      while (i < n && log.at[i] === time) apply(i++);
      while (f < fired.length && fired[f] === time) {
        set(findings, Math.min(255, (findings.value ?? 0) + 1));
        f++;
      }
      instant(time, first);
      for (const sig of b.all) sig.touched = false;
      first = false;
      const nextEvent = i < n ? log.at[i]! : Number.POSITIVE_INFINITY;
      const nextFinding = f < fired.length ? fired[f]! : Number.POSITIVE_INFINITY;
      const next = Math.min(nextEvent, nextFinding);
      if (next === Number.POSITIVE_INFINITY) break;
      time = next;
    }
  };

  return { top, all: b.all, play };
}

/** A guest register access: the register signals follow what the guest last wrote or read. */
function registerAccess(
  d: DeviceSignals | undefined,
  kind: string | undefined,
  write: boolean,
  offset: number,
  value: number,
): void {
  if (!d) return;
  let reg: string | undefined;
  if (kind === 'isa-serial') {
    const dlab = ((d.regs.get('lcr')!.value ?? 0) & 0x80) !== 0;
    if (offset === Reg.IER && !dlab) reg = 'ier';
    else if (offset === Reg.IIR && !write) reg = 'iir';
    else if (offset === Reg.LSR && !write) reg = 'lsr';
    else if (offset === Reg.LCR) reg = 'lcr';
  } else if (offset === VirtioPci.ISR && !write) reg = 'isr';
  else if (offset === VirtioPci.STATUS) reg = 'status';
  if (reg !== undefined) set(d.regs.get(reg), reg === 'ier' ? value & 0x0f : value & 0xff);
}

/** One signal of the waveform view: its changes, and its pulses (set and back in one instant). */
export interface WaveLane {
  /** The signal's path without the top scope: `vm1.ioapic.gsi19_rirr`. */
  name: string;
  style: Lane['style'];
  title: string;
  labels?: readonly string[];
  /** Host ns of each change (the first is 0: the initial value). */
  times: number[];
  values: (number | null)[];
  pulses: number[];
}

/** The waveform view's signals of a trace, as change lists. */
export function traceWaves(t: Trace): WaveLane[] {
  const set = traceSignals(t);
  const shown = set.all.filter((sig) => sig.lane !== undefined);
  const lanes: WaveLane[] = shown.map((sig) => ({
    name: sig.path.slice(set.top.path.length + 1),
    style: sig.lane!.style,
    title: sig.lane!.title,
    ...(sig.lane!.labels ? { labels: sig.lane!.labels } : {}),
    times: [],
    values: [],
    pulses: [],
  }));
  set.play((time, first) => {
    shown.forEach((sig, j) => {
      const lane = lanes[j]!;
      if (first || sig.value !== lane.values.at(-1)) {
        lane.times.push(time);
        lane.values.push(sig.value);
      } else if (sig.touched) {
        lane.pulses.push(time);
      }
    });
  });
  return lanes;
}
