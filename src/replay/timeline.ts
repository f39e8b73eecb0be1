/**
 * `show`: a trace as a readable timeline. Long traces are windowed around the findings
 * (WINDOW_BEFORE events before and WINDOW_AFTER after the point each fired, "… N events …"
 * between windows); `all` prints every event.
 */

import { buildsPath, type DeviceSpec } from '../model/schedule/types.js';
import type { Finding } from '../oracles/types.js';
import { Describer, eventLine, formatMs } from './describe.js';
import type { EventLog } from './event-log.js';
import { TRACE_FORMAT, TRACE_VERSION, type Trace } from './format.js';
import { traceRegistry } from './trace.js';

export const WINDOW_BEFORE = 40;
export const WINDOW_AFTER = 10;
/** Traces up to this many events are always shown whole. */
export const SHOW_ALL_UP_TO = 100;

export interface TimelineOptions {
  /** Every event, no windows. */
  all?: boolean;
  /** The command that reproduces the findings (printed under each). */
  reproduce?: string;
}

/** Number of events at or before host time `t` (events are sorted by time). */
export function eventsUpTo(log: EventLog, t: number): number {
  let lo = 0;
  let hi = log.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (log.at[mid]! <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Half-open index ranges to print, sorted and merged. */
export function windows(n: number, findingPositions: readonly number[], all: boolean): [number, number][] {
  if (all || n <= SHOW_ALL_UP_TO) return n > 0 ? [[0, n]] : [];
  const raw: [number, number][] =
    findingPositions.length > 0
      ? findingPositions.map((p) => [Math.max(0, p - WINDOW_BEFORE), Math.min(n, p + WINDOW_AFTER)])
      : [
          [0, WINDOW_BEFORE],
          [n - WINDOW_AFTER, n],
        ];
  raw.sort((x, y) => x[0] - y[0]);
  const out: [number, number][] = [];
  for (const w of raw) {
    const last = out.at(-1);
    if (last && w[0] <= last[1]) last[1] = Math.max(last[1], w[1]);
    else out.push([w[0], w[1]]);
  }
  return out;
}

function deviceText(name: string, d: DeviceSpec): string {
  if (d.kind === 'isa-serial') return `${name} (isa-serial, irq ${d.irq})`;
  return `${name} (virtio-serial, ${d.irq}, ports ${d.ports.map((p) => p.id).join(',') || 'none'})`;
}

export function findingLines(f: Finding, reproduce: string | undefined): string[] {
  const lines = [
    `  ▶ FINDING ${f.oracle} on ${f.device ?? '-'} at ${formatMs(f.at)}: ${f.message}`,
    `      signature ${f.signature}`,
  ];
  if (reproduce) lines.push(`      reproduce: ${reproduce}`);
  return lines;
}

export function timeline(t: Trace, opts: TimelineOptions = {}): string[] {
  const s = t.schedule;
  const log = t.events;
  const n = log.length;
  const v = t.verdict;
  const lines: string[] = [
    `${TRACE_FORMAT} v${TRACE_VERSION} written by ${t.tool.name} ${t.tool.version}`,
    `schedule: seed ${s.seed}, ${buildsPath(s)} on ${s.machine}, ${s.steps.length} steps, horizon ${formatMs(s.horizon)}`,
    `devices: ${
      Object.entries(s.devices)
        .map(([name, d]) => deviceText(name, d))
        .join('; ') || 'none'
    }`,
    `run: ${n} events, ended at ${formatMs(v.endNs)} (${v.end}), guest vm_clock ${formatMs(t.stats.vmEndNs)}`,
    `verdict: ${v.findings.length === 0 ? 'no finding' : `${v.findings.length} finding${v.findings.length > 1 ? 's' : ''}`}; digest ${t.digest}`,
    '',
  ];
  const positions = v.findings.map((f) => eventsUpTo(log, f.at));
  const shown = windows(n, positions, opts.all === true);
  const describer = new Describer(s, log, traceRegistry(t), t.verdict.findings);
  // Findings in the order they fired, each placed after the last event at or before its time.
  const order = v.findings.map((f, i) => ({ f, p: positions[i]! }));
  let next = 0;
  let printedTo = 0;
  const flushFindings = (upTo: number): void => {
    while (next < order.length && order[next]!.p <= upTo)
      lines.push(...findingLines(order[next++]!.f, opts.reproduce));
  };
  for (const [from, to] of shown) {
    if (from > printedTo) {
      flushFindings(printedTo);
      lines.push(`  … ${from - printedTo} events …`);
    }
    for (let i = from; i < to; i++) {
      flushFindings(i);
      lines.push(eventLine(describer.view(i)));
    }
    printedTo = to;
  }
  flushFindings(printedTo);
  if (printedTo < n) lines.push(`  … ${n - printedTo} events …`);
  flushFindings(n);
  lines.push(`end of run at ${formatMs(v.endNs)} (${v.end})`);
  if (shown.length > 0 && (shown.length > 1 || shown[0]![0] > 0 || shown[0]![1] < n)) {
    const how =
      v.findings.length > 0
        ? `${WINDOW_BEFORE} events before and ${WINDOW_AFTER} after each finding`
        : `the first ${WINDOW_BEFORE} and the last ${WINDOW_AFTER} events`;
    lines.push(`(windowed: ${how}; --all shows all ${n})`);
  }
  return lines;
}
