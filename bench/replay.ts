import { builtinRegistry } from '../src/model/migration/builds.js';
import type { Schedule } from '../src/model/schedule/types.js';
import { judge } from '../src/oracles/verdict.js';
import type { Trace } from '../src/replay/format.js';
import { recordRun } from '../src/replay/record.js';
import { replayTrace } from '../src/replay/replay.js';
import { encodeTraceParts } from '../src/replay/trace.js';
import type { Row } from './row.js';
import { migrationHeavy, uartHeavy, virtioHeavy } from './schedules.js';

/**
 * Trace figures for `npm run bench`: what recording costs (a recorded run — every event
 * into the column recorder, then hashed and packed into the msgpack document's pieces,
 * without the disk write — against the same run unrecorded; goal ≤ 1.3×) and how big traces
 * are (file bytes per executed event; goal ≤ 32).
 */

const builds = builtinRegistry();

function plain(s: Schedule): void {
  judge(s, { builds });
}

/** What `run --trace` does before writing: record, hash, and encode (as the pieces it writes). */
function recorded(s: Schedule): number {
  return fileBytes(encodeTraceParts(recordRun(s, builds)));
}

const fileBytes = (parts: readonly Uint8Array[]): number => parts.reduce((sum, p) => sum + p.length, 0);

/** CPU time of this process in ms: on a loaded machine, the time spent waiting for a core does not count. */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const MIN_PAIRS = 5;

/**
 * Recorded time over plain time, as the median over pairs of runs timed back to back in CPU
 * time (for at least `minMs`, and at least MIN_PAIRS pairs): drift and load hit both runs of
 * a pair alike, and the median drops the pairs a collection or a burst of load hit.
 */
function overhead(s: Schedule, minMs: number): number {
  for (let i = 0; i < 2; i++) {
    plain(s);
    recorded(s);
  }
  const ratios: number[] = [];
  const start = performance.now();
  do {
    const t0 = cpuMs();
    plain(s);
    const t1 = cpuMs();
    recorded(s);
    const t2 = cpuMs();
    ratios.push((t2 - t1) / (t1 - t0));
  } while (performance.now() - start < minMs || ratios.length < MIN_PAIRS);
  return median(ratios);
}

/** Events per second of `replay`: re-execution while recording, then the event-by-event compare. */
function replaySpeed(trace: Trace, minMs: number): number {
  let events = 0;
  const start = performance.now();
  do {
    if (!replayTrace(trace).identical) throw new Error('bench: a replay diverged');
    events += trace.eventCount;
  } while (performance.now() - start < minMs);
  return events / ((performance.now() - start) / 1000);
}

export function replayBench(quick = false): Row[] {
  const workloads: [string, Schedule][] = [
    ['UART-heavy', uartHeavy(quick ? 200 : 2000)],
    ['virtio-heavy', virtioHeavy(quick ? 200 : 2000)],
    ['migration-heavy', migrationHeavy(quick ? 100 : 1000)],
  ];
  const rows: Row[] = [];
  for (const [name, s] of workloads) {
    rows.push({
      figure: `recording overhead, ${name} (time with recording / without)`,
      value: overhead(s, quick ? 300 : 3000),
      unit: '×',
      goal: '<= 1.3',
      group: 'Record and replay',
    });
  }
  for (const [name, s] of workloads) {
    const trace = recordRun(s, builds);
    const bytes = fileBytes(encodeTraceParts(trace));
    rows.push({
      figure: `trace size, ${name} (${trace.events.length} events, ${bytes} bytes)`,
      value: bytes / trace.events.length,
      unit: 'bytes/event',
      goal: '<= 32',
      group: 'Record and replay',
    });
    rows.push({
      figure: `replay speed, ${name}`,
      value: replaySpeed(trace, quick ? 300 : 2000),
      unit: 'events/s',
      goal: '',
      group: 'Record and replay',
    });
  }
  return rows;
}
