/**
 * `show --vcd`: a trace as a Value Change Dump (IEEE 1364-2005 §18) for GTKWave or Surfer.
 *
 * Signals, per VM (`vm0`, `vm1`):
 * - `run_state` and `migration` (the last MigPhase) as string signals (`$var string`, value
 *   changes `sNAME`, as GTKWave and Surfer read them): names, not numbers, and the header
 *   comment lists every value;
 * - per device: `irq` (the device's interrupt output, DEV_IRQ); a 16550 also `ier`, `iir`,
 *   `lsr`, `lcr` (8 bits, as the guest last wrote or read them; `x` before); a
 *   virtio-serial device `isr` (the value the guest last read: reading clears it) and
 *   `status`;
 * - per virtio-serial port (`DEV.portN`): `host_connected` (the device's view, HOST_CONNECTED)
 *   and `guest_view` (the guest driver's, GUEST_VIEW), the two that stale-guest-view compares;
 * - `ioapic.gsiN` (the pin's input level, PIN) and `ioapic.gsiN_rirr` (Remote-IRR) for each
 *   pin the trace touches.
 * Per byte stream (`bytes.*`, 32 bits): bytes in the devices' custody, from BYTE_ACCEPT
 * (+1) and BYTE_DELIVER/BYTE_DISCARD (-1); across a migration the count follows the bytes.
 * `findings[7:0]` counts the findings fired so far.
 *
 * Timescale 1 ns; one `#t` per distinct time, strictly increasing; several changes at one
 * time are dumped as the value after the last of them (a pulse within one ns is not
 * visible: see `show` for every event). Time 0's changes are the `$dumpvars` values.
 */

import { Ev, MIG_PHASE_NAMES, MigPhase, RUN_STATE_NAMES, RunState } from '../model/events.js';
import { Reg } from '../model/uart16550/regs.js';
import { VirtioPci } from '../model/virtio-serial/state.js';
import { Describer } from './describe.js';
import { TRACE_FORMAT, TRACE_VERSION, type Trace } from './format.js';

interface Signal {
  id: string;
  name: string;
  width: number;
  /** A string signal: the value is an index into these names. */
  names?: readonly string[];
  /** null: unknown (x). */
  value: number | null;
  /** Last value written to the dump (undefined: never). */
  dumped: number | null | undefined;
}

interface Scope {
  name: string;
  signals: Signal[];
  scopes: Scope[];
}

interface DeviceSignals {
  irq: Signal;
  regs: Map<string, Signal>;
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

  scope(name: string): Scope {
    return { name: ident(name), signals: [], scopes: [] };
  }

  add(scope: Scope, name: string, width: number, value: number | null, names?: readonly string[]): Signal {
    let ref = ident(name);
    while (scope.signals.some((s) => s.name === ref)) ref = `${ref}_`;
    const s: Signal = { id: idCode(this.count++), name: ref, width, value, dumped: undefined };
    if (names) s.names = names;
    scope.signals.push(s);
    this.all.push(s);
    return s;
  }
}

function valueText(s: Signal): string {
  // A name holds no blank (VCD tokens are blank-separated); `x` before the first value.
  if (s.names) return `s${s.value === null ? 'x' : (s.names[s.value] ?? String(s.value))} ${s.id}`;
  if (s.width === 1) return `${s.value === null ? 'x' : s.value & 1}${s.id}`;
  if (s.value === null) return `bx ${s.id}`;
  const bitsText = (s.value >>> 0).toString(2);
  return `b${bitsText.length > s.width ? bitsText.slice(-s.width) : bitsText} ${s.id}`;
}

function declare(scope: Scope, out: string[]): void {
  out.push(`$scope module ${scope.name} $end`);
  for (const s of scope.signals) {
    if (s.names) out.push(`$var string 1 ${s.id} ${s.name} $end`);
    else out.push(`$var wire ${s.width} ${s.id} ${s.name}${s.width > 1 ? ` [${s.width - 1}:0]` : ''} $end`);
  }
  for (const c of scope.scopes) declare(c, out);
  out.push('$upscope $end');
}

/** The VCD text of a trace. */
export function traceToVcd(t: Trace): string {
  const log = t.events;
  const n = log.length;
  const b = new Builder();
  const top = b.scope('migfuzz');
  const findings = b.add(top, 'findings', 8, 0);
  const describer = new Describer(t.schedule, log);
  /** Per device index, its virtio-serial port ids (none for a UART). */
  const portsOf = Object.values(t.schedule.devices).map((d) =>
    d.kind === 'virtio-serial' ? d.ports.map((p) => p.id) : [],
  );
  const deviceNames = Object.keys(t.schedule.devices);

  // Which VMs, pins and streams the trace touches.
  const vms = new Set<number>([0]);
  const gsis = new Set<number>();
  const streams = new Set<number>();
  for (let i = 0; i < n; i++) {
    const k = log.kind[i]!;
    if (log.vm[i]! >= 0) vms.add(log.vm[i]!);
    if (k === Ev.PIN || k === Ev.REMOTE_IRR) gsis.add(log.dev[i]!);
    else if (k === Ev.BYTE_ACCEPT || k === Ev.BYTE_DELIVER || k === Ev.BYTE_DISCARD) streams.add(log.dev[i]!);
  }

  const runState: Signal[] = [];
  const migration: Signal[] = [];
  const devices: DeviceSignals[][] = [];
  /** Per VM, `dev:port` → its host_connected and guest_view signals. */
  const ports: Map<string, { host: Signal; guest: Signal }>[] = [];
  const pins: Map<number, Signal>[] = [];
  const rirr: Map<number, Signal>[] = [];
  for (const vm of [...vms].sort((x, y) => x - y)) {
    const scope = b.scope(`vm${vm}`);
    top.scopes.push(scope);
    runState[vm] = b.add(scope, 'run_state', 1, RunState.ABSENT, RUN_STATE_NAMES);
    migration[vm] = b.add(scope, 'migration', 1, null, MIG_PHASE_NAMES);
    ports[vm] = new Map();
    devices[vm] = deviceNames.map((name, dev) => {
      const ds = b.scope(name);
      scope.scopes.push(ds);
      const regs = new Map<string, Signal>();
      const kind = describer.deviceKind(dev);
      const names = kind === 'isa-serial' ? ['ier', 'iir', 'lsr', 'lcr'] : ['isr', 'status'];
      const irq = b.add(ds, 'irq', 1, 0);
      for (const r of names) regs.set(r, b.add(ds, r, 8, null));
      for (const id of portsOf[dev]!) {
        const ps = b.scope(`port${id}`);
        ds.scopes.push(ps);
        // host_connected starts as the VM's backend made it at realize (machine.ts); the
        // guest's view starts disconnected in the VM the guest boots in, and is unknown in
        // the other until a migration loads the guest there.
        const side = vm === 1 ? t.schedule.dst : t.schedule.src;
        ports[vm]!.set(`${dev}:${id}`, {
          host: b.add(
            ps,
            'host_connected',
            1,
            side.backends[`${deviceNames[dev]}.port${id}`] === 'socket' ? 1 : 0,
          ),
          guest: b.add(ps, 'guest_view', 1, vm === 0 ? 0 : null),
        });
      }
      return { irq, regs };
    });
    const io = b.scope('ioapic');
    scope.scopes.push(io);
    pins[vm] = new Map();
    rirr[vm] = new Map();
    for (const gsi of [...gsis].sort((x, y) => x - y)) {
      pins[vm]!.set(gsi, b.add(io, `gsi${gsi}`, 1, 0));
      rirr[vm]!.set(gsi, b.add(io, `gsi${gsi}_rirr`, 1, 0));
    }
  }
  const held = new Map<number, Signal>();
  if (streams.size > 0) {
    const bytes = b.scope('bytes');
    top.scopes.push(bytes);
    for (const st of [...streams].sort((x, y) => x - y)) {
      held.set(st, b.add(bytes, describer.streamName(st).replace('→', 'to_'), 32, 0));
    }
  }

  const out: string[] = [
    '$comment',
    `  ${TRACE_FORMAT} v${TRACE_VERSION}: ${t.schedule.src.build} -> ${t.schedule.dst.build} on ${t.schedule.machine}, seed ${t.schedule.seed}, ${n} events, digest ${t.digest}`,
    '  legend:',
    `    vmN.run_state (string): ${RUN_STATE_NAMES.join(', ')}`,
    `    vmN.migration (string, the last phase; x before the first): ${MIG_PHASE_NAMES.join(', ')}`,
    '    vmN.DEV.irq: the device interrupt output; DEV.ier/iir/lsr/lcr/isr/status: registers as the guest last wrote or read them',
    "    vmN.DEV.portN.host_connected: the device's host_connected (from the VM's backend at realize); guest_view: what the guest driver believes (x: the guest is not in this VM yet)",
    '    vmN.ioapic.gsiN: pin level; gsiN_rirr: Remote-IRR',
    "    bytes.STREAM: bytes in the devices' custody; findings: findings fired so far",
    '$end',
    `$version ${t.tool.name} ${t.tool.version} $end`,
    '$timescale 1ns $end',
  ];
  declare(top, out);
  out.push('$enddefinitions $end');

  const apply = (i: number): void => {
    const k = log.kind[i]!;
    const vm = log.vm[i]!;
    const dev = log.dev[i]!;
    const a = log.a[i]!;
    const bv = log.b[i]!;
    switch (k) {
      case Ev.RUN_STATE:
        if (runState[vm]) runState[vm]!.value = a;
        return;
      case Ev.MIGRATION:
        if (migration[vm]) migration[vm]!.value = a;
        // The guest's memory, its driver's view included, arrives with the load.
        if (a === MigPhase.LOADED)
          for (const [key, p] of ports[vm] ?? [])
            p.guest.value = ports[1 - vm]?.get(key)?.guest.value ?? null;
        return;
      case Ev.DEV_IRQ: {
        const d = devices[vm]?.[dev];
        if (d) d.irq.value = a;
        return;
      }
      case Ev.PIN: {
        const s = pins[vm]?.get(dev);
        if (s) s.value = a;
        return;
      }
      case Ev.REMOTE_IRR: {
        const s = rirr[vm]?.get(dev);
        if (s) s.value = a;
        return;
      }
      case Ev.REG_READ:
      case Ev.REG_WRITE: {
        const d = devices[vm]?.[dev];
        if (!d) return;
        const write = k === Ev.REG_WRITE;
        const kind = describer.deviceKind(dev);
        let reg: string | undefined;
        if (kind === 'isa-serial') {
          const dlab = ((d.regs.get('lcr')!.value ?? 0) & 0x80) !== 0;
          if (a === Reg.IER && !dlab) reg = 'ier';
          else if (a === Reg.IIR && !write) reg = 'iir';
          else if (a === Reg.LSR && !write) reg = 'lsr';
          else if (a === Reg.LCR) reg = 'lcr';
        } else if (a === VirtioPci.ISR && !write) reg = 'isr';
        else if (a === VirtioPci.STATUS) reg = 'status';
        const s = reg === undefined ? undefined : d.regs.get(reg);
        if (s) s.value = reg === 'ier' ? bv & 0x0f : bv & 0xff;
        return;
      }
      case Ev.HOST_CONNECTED:
      case Ev.GUEST_VIEW: {
        const p = ports[vm]?.get(`${dev}:${a}`);
        if (p) (k === Ev.HOST_CONNECTED ? p.host : p.guest).value = bv ? 1 : 0;
        return;
      }
      case Ev.BYTE_ACCEPT:
      case Ev.BYTE_DELIVER:
      case Ev.BYTE_DISCARD: {
        const s = held.get(dev)!;
        s.value = (s.value ?? 0) + (k === Ev.BYTE_ACCEPT ? 1 : -1);
        return;
      }
    }
  };

  const flush = (time: number, first: boolean): void => {
    const changed: string[] = [];
    for (const s of b.all) {
      if (first || s.value !== s.dumped) {
        changed.push(valueText(s));
        s.dumped = s.value;
      }
    }
    if (first) out.push('#0', '$dumpvars', ...changed, '$end');
    else if (changed.length > 0) out.push(`#${time}`, ...changed);
  };

  const fired = t.verdict.findings.map((f) => f.at).sort((x, y) => x - y);
  let i = 0;
  let f = 0;
  let time = 0;
  let first = true;
  for (;;) {
    while (i < n && log.at[i] === time) apply(i++);
    while (f < fired.length && fired[f] === time) {
      findings.value = Math.min(255, (findings.value ?? 0) + 1);
      f++;
    }
    flush(time, first);
    first = false;
    const nextEvent = i < n ? log.at[i]! : Number.POSITIVE_INFINITY;
    const nextFinding = f < fired.length ? fired[f]! : Number.POSITIVE_INFINITY;
    const next = Math.min(nextEvent, nextFinding);
    if (next === Number.POSITIVE_INFINITY) break;
    time = next;
  }
  // The run's end, so viewers show its whole length.
  if (t.verdict.endNs > time) out.push(`#${t.verdict.endNs}`);
  out.push('');
  return out.join('\n');
}
