import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { recordRun } from '../../src/replay/record.js';
import { traceWaves, type WaveLane } from '../../src/replay/signals.js';
import {
  eventsUpTo,
  SHOW_ALL_UP_TO,
  timeline,
  WINDOW_AFTER,
  WINDOW_BEFORE,
  windows,
} from '../../src/replay/timeline.js';
import { decodeTrace } from '../../src/replay/trace.js';
import { traceToVcd } from '../../src/replay/vcd.js';
import { builds, longUartSchedule, ROOT, SEEDS, seedTrace } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'migfuzz-show-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('show: the timeline', () => {
  it('names registers, control messages, run states, migration phases and IRQ lines', () => {
    const text = timeline(seedTrace('bug-a-virtio-serial')).join('\n');
    expect(text).toContain('write STATUS ← 0x0f (ACKNOWLEDGE|DRIVER|DRIVER_OK|FEATURES_OK)');
    expect(text).toContain('write QUEUE_NOTIFY');
    expect(text).toMatch(/read ISR → 0x01/);
    expect(text).toContain('control → host: no port DEVICE_READY 1');
    expect(text).toContain('control → guest: port 1 PORT_OPEN 1');
    expect(text).toContain('run state → finish-migrate');
    expect(text).toContain('migration: lapic-push (1 vector lost)');
    expect(text).toContain('IOAPIC pin 11 Remote-IRR set');
    expect(text).toContain('interrupt line raised');
    expect(text).toContain('vser0.port1 →guest');
  });

  it('names UART registers, with DLL/DLM while DLAB is set', () => {
    const text = timeline(seedTrace('uart-echo'), { all: true }).join('\n');
    for (const reg of ['THR', 'IER', 'IIR', 'LSR', 'LCR', 'FCR'])
      expect(text).toMatch(new RegExp(`(write|read) ${reg} `));
    expect(text).toMatch(/write LCR ← 0x[89a-f][0-9a-f] \(DLAB\)/);
    expect(text).toMatch(/write DLL ← /);
    expect(text).toMatch(/read LSR → 0x[0-9a-f]{2} \(.*THRE/);
  });

  it('marks each finding where it fired, with the command that reproduces it', () => {
    const t = seedTrace('bug-a-virtio-serial');
    const lines = timeline(t, { reproduce: 'npx migfuzz replay a.mpk' });
    for (const f of t.verdict.findings) {
      const i = lines.findIndex((l) => l.includes(`FINDING ${f.oracle} on ${f.device}`));
      expect(i).toBeGreaterThan(0);
      expect(lines[i + 1]).toContain(f.signature);
      expect(lines[i + 2]).toContain('reproduce: npx migfuzz replay a.mpk');
    }
    // The stale-guest-view finding fires at the end: after every event.
    const last = lines.findIndex((l) => l.includes('FINDING stale-guest-view'));
    expect(lines.slice(last).some((l) => /^ *#\d/.test(l))).toBe(false);
  });

  it('bug-b marks the migration failure', () => {
    const text = timeline(seedTrace('bug-b-serial')).join('\n');
    // The reason, not an index.
    expect(text).toContain('migration: failed: inconsistent state in serial device (tsr not empty');
    expect(text).toContain('FINDING migration-failed on serial0');
  });

  it('windows long traces around the findings, and --all shows everything', () => {
    const t = recordRun(longUartSchedule(), builds);
    expect(t.eventCount).toBeGreaterThan(SHOW_ALL_UP_TO);
    const short = timeline(t);
    const events = short.filter((l) => /^ *#\d/.test(l));
    // No finding: the first WINDOW_BEFORE and last WINDOW_AFTER events.
    expect(events).toHaveLength(WINDOW_BEFORE + WINDOW_AFTER);
    expect(short.some((l) => /^ {2}… \d+ events …$/.test(l))).toBe(true);
    expect(short.at(-1)).toContain('--all');
    const all = timeline(t, { all: true });
    expect(all.filter((l) => /^ *#\d/.test(l))).toHaveLength(t.eventCount);
    expect(all.some((l) => l.includes('… '))).toBe(false);
  });

  it('window arithmetic: around each finding, merged when they overlap', () => {
    expect(windows(1000, [500], false)).toEqual([[500 - WINDOW_BEFORE, 500 + WINDOW_AFTER]]);
    expect(windows(1000, [500, 510, 900], false)).toEqual([
      [460, 520],
      [860, 910],
    ]);
    expect(windows(1000, [0, 1000], false)).toEqual([
      [0, 10],
      [960, 1000],
    ]);
    expect(windows(50, [10], false)).toEqual([[0, 50]]);
    expect(windows(0, [], false)).toEqual([]);
  });

  it('places a finding after the events at or before its time', () => {
    const log = seedTrace('bug-a-virtio-serial').events;
    expect(eventsUpTo(log, -1)).toBe(0);
    expect(eventsUpTo(log, 15_000_000)).toBe(log.length);
    expect(eventsUpTo(log, 4_999_999)).toBe(48);
  });
});

/** A parsed VCD: declared variables by identifier and the value changes by time. */
interface Vcd {
  timescale: string;
  comment: string;
  vars: Map<string, { width: number; path: string; type: string }>;
  /** time → (path → value), the first entry being the $dumpvars block at time 0. */
  changes: [number, Map<string, string>][];
}

/** Checks a VCD's structure (IEEE 1364 §18) and parses it; fails the test on any violation. */
function parseVcd(text: string): Vcd {
  const tokens = text.split(/\s+/).filter((t) => t !== '');
  let i = 0;
  const vars = new Map<string, { width: number; path: string; type: string }>();
  const scopes: string[] = [];
  let timescale = '';
  let comment = '';
  const until = (): string[] => {
    const out: string[] = [];
    while (tokens[i] !== '$end') {
      expect(i, 'unterminated section').toBeLessThan(tokens.length);
      out.push(tokens[i++]!);
    }
    i++;
    return out;
  };
  for (;;) {
    const t = tokens[i++];
    expect(t, 'missing $enddefinitions').toBeDefined();
    if (t === '$enddefinitions') {
      expect(tokens[i++]).toBe('$end');
      break;
    }
    if (t === '$timescale') timescale = until().join(' ');
    else if (t === '$comment') comment = until().join(' ');
    else if (t === '$version' || t === '$date') until();
    else if (t === '$scope') {
      const [kind, name, ...rest] = until();
      expect(kind).toBe('module');
      expect(name).toMatch(/^[A-Za-z_][A-Za-z0-9_]*$/);
      expect(rest).toEqual([]);
      scopes.push(name!);
    } else if (t === '$upscope') {
      expect(until()).toEqual([]);
      expect(scopes.pop()).toBeDefined();
    } else if (t === '$var') {
      const [type, width, id, name, range, ...rest] = until();
      // string: GTKWave's and Surfer's extension, values `sTEXT`.
      expect(['wire', 'string']).toContain(type);
      const w = Number(width);
      expect(Number.isInteger(w) && w >= 1).toBe(true);
      expect(id).toMatch(/^[\x21-\x7e]+$/);
      expect(vars.has(id!), `duplicate identifier ${id}`).toBe(false);
      expect(name).toMatch(/^[A-Za-z_][A-Za-z0-9_]*$/);
      if (w > 1) expect(range).toBe(`[${w - 1}:0]`);
      else expect(range).toBeUndefined();
      expect(rest).toEqual([]);
      vars.set(id!, { width: w, path: [...scopes, name].join('.'), type: type! });
    } else {
      throw new Error(`unexpected token ${t} in the header`);
    }
  }
  expect(scopes).toEqual([]);
  expect(timescale.replace(/\s+/g, '')).toBe('1ns');
  const changes: [number, Map<string, string>][] = [];
  let current: Map<string, string> | null = null;
  let lastTime = -1;
  const value = (v: string, id: string): void => {
    const decl = vars.get(id);
    expect(decl, `undeclared identifier ${id}`).toBeDefined();
    expect(current, 'a value change before the first timestamp').not.toBeNull();
    if (decl!.type === 'string') {
      expect(v).toMatch(/^s\S+$/);
      current!.set(decl!.path, v.slice(1));
      return;
    }
    if (decl!.width === 1) expect(v).toMatch(/^[01xz]$/);
    else {
      expect(v).toMatch(/^b[01xz]+$/);
      expect(v.length - 1).toBeLessThanOrEqual(decl!.width);
    }
    const x = v.startsWith('b') ? v.slice(1) : v;
    current!.set(decl!.path, /[xz]/.test(x) ? 'x' : BigInt(`0b${x}`).toString());
  };
  let dumpvars = false;
  while (i < tokens.length) {
    const t = tokens[i++]!;
    if (t.startsWith('#')) {
      const time = Number(t.slice(1));
      expect(Number.isInteger(time)).toBe(true);
      expect(time, 'timestamps must increase strictly').toBeGreaterThan(lastTime);
      lastTime = time;
      current = new Map();
      changes.push([time, current]);
    } else if (t === '$dumpvars') {
      expect(changes).toHaveLength(1);
      expect(changes[0]![0]).toBe(0);
      dumpvars = true;
    } else if (t === '$end') {
      expect(dumpvars).toBe(true);
      expect(current!.size, '$dumpvars gives every variable its initial value').toBe(vars.size);
    } else if (t.startsWith('b') || t.startsWith('s')) {
      value(t, tokens[i++]!);
    } else {
      value(t[0]!, t.slice(1));
    }
  }
  expect(dumpvars).toBe(true);
  return { timescale, comment, vars, changes };
}

/** Value changes as (time, path=value) sorted strings, for comparing two dumps of the same data. */
function changeSet(v: Vcd): string[] {
  const out: string[] = [];
  const last = new Map<string, string>();
  for (const [time, m] of v.changes) {
    for (const [path, val] of [...m].sort()) {
      if (last.get(path) === val) continue;
      last.set(path, val);
      out.push(`${time} ${path}=${val}`);
    }
  }
  return out;
}

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      execFileSync(join(dir, cmd), ['--help'], { stdio: 'ignore' });
      return true;
    } catch (e) {
      // Ran, but --help exited non-zero (a missing file has status null).
      return typeof (e as { status?: number | null }).status === 'number';
    }
  });
}
const HAVE_VCD2FST = onPath('vcd2fst') && onPath('fst2vcd');

describe('show --vcd: a Value Change Dump', () => {
  it.each(SEEDS)(
    '%s: well-formed, with IRQ lines, Remote-IRR, registers, run states and FIFO counts',
    (name) => {
      const t = seedTrace(name);
      const vcd = parseVcd(traceToVcd(t));
      const paths = [...vcd.vars.values()].map((v) => v.path);
      expect(paths).toContain('migfuzz.vm0.run_state');
      expect(paths).toContain('migfuzz.findings');
      const dev = Object.keys(t.schedule.devices)[0]!;
      expect(paths).toContain(`migfuzz.vm0.${dev}.irq`);
      expect(paths.some((p) => /^migfuzz\.vm0\.ioapic\.gsi\d+$/.test(p))).toBe(true);
      expect(paths.some((p) => /^migfuzz\.vm0\.ioapic\.gsi\d+_rirr$/.test(p))).toBe(true);
      if (t.schedule.devices[dev]!.kind === 'isa-serial') {
        for (const r of ['ier', 'iir', 'lsr']) expect(paths).toContain(`migfuzz.vm0.${dev}.${r}`);
      } else {
        expect(paths).toContain(`migfuzz.vm0.${dev}.isr`);
      }
      expect(paths.some((p) => p.startsWith('migfuzz.bytes.'))).toBe(true);
      // The last timestamp is the end of the run.
      expect(vcd.changes.at(-1)![0]).toBe(t.verdict.endNs);
    },
  );

  it('follows the run: the destination runs after the migration, the findings count up', () => {
    const t = seedTrace('bug-a-virtio-serial');
    const vcd = parseVcd(traceToVcd(t));
    const at = (time: number): Map<string, string> => vcd.changes.find(([t0]) => t0 === time)![1];
    expect(vcd.changes[0]![1].get('migfuzz.vm0.run_state')).toBe('running');
    expect(vcd.changes[0]![1].get('migfuzz.vm1.run_state')).toBe('absent');
    expect(at(5_300_000).get('migfuzz.vm1.run_state')).toBe('running');
    expect(at(5_300_000).get('migfuzz.vm0.run_state')).toBe('postmigrate');
    expect(at(5_300_000).get('migfuzz.vm1.ioapic.gsi11_rirr')).toBe('1');
    expect(at(15_000_000).get('migfuzz.bytes.vser0_port1_to_guest')).toBe('11');
    expect(at(15_300_000).get('migfuzz.findings')).toBe('2');
  });

  it('run state and migration phase are named, with a legend; each port has host and guest signals', () => {
    const t = seedTrace('bug-a-virtio-serial');
    const vcd = parseVcd(traceToVcd(t));
    expect(vcd.comment).toContain(
      'vmN.run_state (string): running, paused, inmigrate, finish-migrate, postmigrate, shutdown, absent',
    );
    expect(vcd.comment).toContain('vmN.migration (string, the last phase; x before the first): saved,');
    const types = new Map([...vcd.vars.values()].map((v) => [v.path, v.type]));
    expect(types.get('migfuzz.vm1.migration')).toBe('string');
    // Bug A: the destination's device says connected, the guest never heard of it.
    const last = new Map<string, string>();
    for (const [, m] of vcd.changes) for (const [path, v] of m) last.set(path, v);
    expect(last.get('migfuzz.vm1.migration')).toBe('completed');
    expect(last.get('migfuzz.vm1.vser0.port1.host_connected')).toBe('1');
    expect(last.get('migfuzz.guest.vser0_port1_connected')).not.toBe('1');
    expect(t.verdict.findings.map((f) => f.signature)).toContain('stale-guest-view:vser0:host-connected');
  });

  it.runIf(HAVE_VCD2FST)(
    'GTKWave reads it: vcd2fst then fst2vcd give back the same signals and changes',
    () => {
      for (const name of SEEDS) {
        const vcdFile = join(tmp, `${name}.vcd`);
        const fstFile = join(tmp, `${name}.fst`);
        const mine = traceToVcd(seedTrace(name));
        writeFileSync(vcdFile, mine);
        execFileSync('vcd2fst', [vcdFile, fstFile], { stdio: 'pipe' });
        const back = execFileSync('fst2vcd', [fstFile], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        const a = parseVcd(mine);
        const b = parseVcd(back);
        expect([...b.vars.values()].map((v) => `${v.path}:${v.width}`).sort()).toEqual(
          [...a.vars.values()].map((v) => `${v.path}:${v.width}`).sort(),
        );
        expect(changeSet(b)).toEqual(changeSet(a));
      }
    },
  );
});

describe('waveform signals (signals.ts): shared by the VCD and the HTML pages', () => {
  const lane = (name: string, lanes: WaveLane[]): WaveLane => lanes.find((l) => l.name === name)!;
  const valueAt = (l: WaveLane, t: number): number | null => {
    let v: number | null = null;
    l.times.forEach((at, i) => {
      if (at <= t) v = l.values[i]!;
    });
    return v;
  };

  it('bug A: the destination delivers during load, the LAPIC push wipes it, the line stays high', () => {
    const lanes = traceWaves(seedTrace('bug-a-virtio-serial'));
    // The delivery to the LAPIC and its loss happen within the instant of the load: a pulse.
    expect(lane('vm1.lapic.irr', lanes).pulses).toEqual([5_300_000]);
    expect(lane('vm1.lapic.isr', lanes).pulses).toEqual([]);
    for (const name of ['vm1.vser0.irq', 'vm1.ioapic.gsi11', 'vm1.ioapic.gsi11_rirr'])
      expect(valueAt(lane(name, lanes), 50_000_000)).toBe(1);
    // The source's handler ran: in-service pulses there.
    expect(lane('vm0.lapic.isr', lanes).pulses.length).toBeGreaterThan(0);
    // The destination's port has a backend from the start; the guest never heard of it.
    expect(valueAt(lane('vm1.vser0.port1.backend', lanes), 0)).toBe(1);
    expect(valueAt(lane('vm1.vser0.port1.host_connected', lanes), 50_000_000)).toBe(1);
    expect(lane('guest.vser0_port1_connected', lanes).values).toEqual([0]);
    expect(valueAt(lane('bytes.vser0_port1_to_guest', lanes), 15_000_000)).toBe(11);
  });

  it('a destination is a new machine with its own backends, and takes what the stream carries', () => {
    // qemu-9.2's paused re-migration: vm0 connects port 3, migrates paused to vm1 (no backend)
    // and back; the new vm0 has no backend, while the guest still believes the host is there.
    const t = decodeTrace(readFileSync(`${ROOT}corpus/regressions/qemu-9.2-paused-remigration.mpk`));
    const lanes = traceWaves(t);
    expect(valueAt(lane('vm0.vser0.port3.host_connected', lanes), 5_000_000)).toBe(1);
    expect(valueAt(lane('vm0.vser0.port3.host_connected', lanes), 45_000_000)).toBe(0);
    expect(valueAt(lane('vm0.vser0.port3.backend', lanes), 45_000_000)).toBe(0);
    expect(valueAt(lane('guest.vser0_port3_connected', lanes), 45_000_000)).toBe(1);
    // The line vm0 raised before its first save is high again on the new vm0 after the load.
    const irq = lane('vm0.vser0.irq', lanes);
    expect(valueAt(irq, 10_000_000)).toBe(0);
    expect(valueAt(irq, 20_000_000)).toBe(1);
  });

  it('bug B: the failed load, and the 9 bytes the UART still holds', () => {
    const lanes = traceWaves(seedTrace('bug-b-serial'));
    const mig = lane('vm1.migration', lanes);
    expect(mig.labels![valueAt(mig, 4_300_000)!]).toBe('failed');
    expect(valueAt(lane('vm1.run_state', lanes), 4_300_000)).toBe(5); // shutdown
    expect(valueAt(lane('bytes.serial0_to_host', lanes), 4_300_000)).toBe(9);
    expect(lane('vm0.serial0.backend', lanes).labels![valueAt(lane('vm0.serial0.backend', lanes), 0)!]).toBe(
      'hung-up',
    );
  });
});
