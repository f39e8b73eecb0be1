/**
 * The data of a finding's page (`show --html`, and each finding of `report`): the verdict
 * with each oracle's explanation in plain words, the timeline around the findings (windowed
 * as `show` windows it, or whole), and the waveform signals. Plain data: the page's script
 * (client.ts) draws it; nothing here reads files.
 */

import type { OracleName } from '../oracles/types.js';
import { Describer, formatMs } from '../replay/describe.js';
import type { Trace } from '../replay/format.js';
import { traceWaves, type WaveLane } from '../replay/signals.js';
import { eventsUpTo, WINDOW_AFTER, WINDOW_BEFORE, windows } from '../replay/timeline.js';
import { traceRegistry } from '../replay/trace.js';

/** What each oracle's finding means, for someone who has not read the oracles' code. */
export const ORACLE_EXPLANATIONS: Record<OracleName, string> = {
  'lost-interrupt':
    'The device asked for an interrupt, but the guest never ran its handler for it within the deadline (10 ms of guest time while running, with the interrupt unmasked): the guest missed it and waits for something that already happened.',
  'stuck-irq-line':
    'The device held its interrupt line high past the deadline while the interrupt controller could no longer deliver it (the IOAPIC still has Remote-IRR set from an interrupt the CPU never serviced, or an edge-triggered input stayed high): no later interrupt of that line reaches the guest.',
  'stale-guest-view':
    "At the end of the run, the guest's idea of the device (a port's host connection, or device state) disagrees with the device itself, and nothing is on its way to correct it.",
  'data-loss':
    'A byte the device accepted never arrived on the other side and is held nowhere any more (FIFOs, TSR, virtqueues, driver buffers), beyond what the device documents that it drops.',
  'data-corruption':
    'Bytes arrived reordered, duplicated or altered, or the guest read a byte nobody sent (an empty FIFO with Data Ready set).',
  'migration-failed':
    'The destination refused the migration stream although both builds support this machine type: the VM cannot move, and the source resumes.',
  'model-assert': "An invariant of migfuzz's own model broke: a bug of the model, not necessarily of QEMU.",
  hang: 'The run exceeded its event budget: something loops without the virtual time reaching the end of the schedule.',
  'starved-data':
    'Bytes stayed held by a device past the deadline while the VM ran and they could have moved (the backend accepted writes, or the guest had nothing pending that would make it read them): the device stopped moving data.',
  'unsafe-load':
    "The destination accepted migrated state that the device's own code then mishandles (an index outside its buffers, one of QEMU's asserts, a broken invariant): on a real QEMU this is a crash or corruption, not a refusal.",
};

export interface PageFinding {
  oracle: string;
  device: string | null;
  atNs: number;
  at: string;
  message: string;
  signature: string;
  explanation: string;
}

/** One timeline row: index, host ns, vm (-1 none), target, kind, words. */
export type PageRow = [number, number, number, string, string, string];

export interface TracePage {
  title: string;
  /** The trace file as given on the command line, and the command that reproduces it. */
  file: string;
  reproduce: string;
  summary: { label: string; value: string }[];
  findings: PageFinding[];
  /** Rows in order; a number between rows is how many events the window skips there. */
  rows: (PageRow | number)[];
  /** How the timeline is windowed, or null when it holds every event. */
  windowed: string | null;
  endNs: number;
  lanes: WaveLane[];
}

export interface TracePageOptions {
  file: string;
  reproduce: string;
  /** Every event in the timeline, not only the windows around the findings. */
  all?: boolean;
  title?: string;
}

export function tracePage(t: Trace, opts: TracePageOptions): TracePage {
  const s = t.schedule;
  const v = t.verdict;
  const log = t.events;
  const n = log.length;
  const positions = v.findings.map((f) => eventsUpTo(log, f.at));
  const shown = windows(n, positions, opts.all === true);
  const describer = new Describer(s, log, traceRegistry(t));
  const rows: (PageRow | number)[] = [];
  let printedTo = 0;
  for (const [from, to] of shown) {
    if (from > printedTo) rows.push(from - printedTo);
    for (let i = from; i < to; i++) {
      const e = describer.view(i);
      rows.push([e.index, e.atNs, e.vm, e.device, e.kind, e.text]);
    }
    printedTo = to;
  }
  if (printedTo < n) rows.push(n - printedTo);
  const whole = shown.length === 0 || (shown.length === 1 && shown[0]![0] === 0 && shown[0]![1] === n);
  const devices = Object.entries(s.devices)
    .map(([name, d]) =>
      d.kind === 'isa-serial' ? `${name} (isa-serial, irq ${d.irq})` : `${name} (virtio-serial, ${d.irq})`,
    )
    .join('; ');
  return {
    title:
      opts.title ??
      `${opts.file}: ${v.findings.length === 0 ? 'no finding' : v.findings.map((f) => f.oracle).join(', ')}`,
    file: opts.file,
    reproduce: opts.reproduce,
    summary: [
      { label: 'builds', value: `${s.src.build} → ${s.dst.build} on ${s.machine}` },
      { label: 'schedule', value: `seed ${s.seed}, ${s.steps.length} steps, horizon ${formatMs(s.horizon)}` },
      { label: 'devices', value: devices || 'none' },
      { label: 'run', value: `${n} events, ended at ${formatMs(v.endNs)} (${v.end})` },
      { label: 'digest', value: t.digest },
    ],
    findings: v.findings.map((f) => ({
      oracle: f.oracle,
      device: f.device,
      atNs: f.at,
      at: formatMs(f.at),
      message: f.message,
      signature: f.signature,
      explanation: ORACLE_EXPLANATIONS[f.oracle],
    })),
    rows,
    windowed: whole
      ? null
      : v.findings.length > 0
        ? `${WINDOW_BEFORE} events before and ${WINDOW_AFTER} after each finding (of ${n}; --all shows every event)`
        : `the first ${WINDOW_BEFORE} and the last ${WINDOW_AFTER} events (of ${n}; --all shows every event)`,
    endNs: v.endNs,
    lanes: traceWaves(t),
  };
}
