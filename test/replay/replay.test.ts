import { describe, expect, it } from 'vitest';
import { Ev } from '../../src/model/events.js';
import { EventLog } from '../../src/replay/event-log.js';
import type { Trace } from '../../src/replay/format.js';
import { DIVERGENCE_CONTEXT, replayTrace } from '../../src/replay/replay.js';
import { decodeTrace, encodeTrace, makeTraceFromLog, traceRegistry } from '../../src/replay/trace.js';
import { SEEDS, seedTrace } from './helpers.js';

/** A copy of the trace's events, changed by `edit`, as a valid (re-digested) trace read back from bytes. */
function altered(t: Trace, edit: (log: EventLog) => EventLog, verdict = t.verdict): Trace {
  const log = edit(decodeTrace(encodeTrace(t)).events);
  const v = { ...verdict, events: log.length };
  return decodeTrace(encodeTrace(makeTraceFromLog(t.schedule, traceRegistry(t), log, v)));
}

function truncated(log: EventLog, n: number): EventLog {
  const out = new EventLog(n);
  for (let i = 0; i < n; i++)
    out.event(log.at[i]!, log.kind[i]!, log.vm[i]!, log.dev[i]!, log.a[i]!, log.b[i]!);
  return out;
}

describe('replay', () => {
  it.each(SEEDS)('%s: a fresh recording replays identically', (name) => {
    const r = replayTrace(decodeTrace(encodeTrace(seedTrace(name))));
    expect(r.identical).toBe(true);
    expect(r.divergence).toBeNull();
    expect(r.verdictDiffers).toBe(false);
    expect(r.replayed.digest).toBe(r.recorded.digest);
  });

  it('finds the first divergent event, with the events before it', () => {
    const t = seedTrace('bug-a-virtio-serial');
    const i = 40;
    const bad = altered(t, (log) => {
      log.b[i] = log.b[i]! + 1;
      log.b[i + 3] = 99; // later differences do not matter
      return log;
    });
    const r = replayTrace(bad);
    expect(r.identical).toBe(false);
    expect(r.divergence).not.toBeNull();
    const d = r.divergence!;
    expect(d.index).toBe(i);
    expect(d.atNs).toBe(t.events.at[i]);
    expect(d.recorded).toEqual({ ...t.events.row(i), b: t.events.b[i]! + 1 });
    expect(d.replayed).toEqual(t.events.row(i));
    expect(d.context.map((e) => e.index)).toEqual([35, 36, 37, 38, 39]);
    expect(d.context).toHaveLength(DIVERGENCE_CONTEXT);
    expect(r.verdictDiffers).toBe(false);
  });

  it('a divergence at the first event has no context', () => {
    const bad = altered(seedTrace('bug-b-serial'), (log) => {
      log.kind[0] = Ev.FAULT;
      return log;
    });
    const d = replayTrace(bad).divergence!;
    expect(d.index).toBe(0);
    expect(d.context).toEqual([]);
  });

  it('a recording that ends early diverges where it ends', () => {
    const t = seedTrace('bug-b-serial');
    const n = t.eventCount - 3;
    const r = replayTrace(altered(t, (log) => truncated(log, n)));
    expect(r.divergence?.index).toBe(n);
    expect(r.divergence?.recorded).toBeNull();
    expect(r.divergence?.replayed).toEqual(t.events.row(n));
    expect(r.verdictDiffers).toBe(true); // the recorded verdict counts fewer events
  });

  it('identical events with a different recorded verdict are reported', () => {
    const t = seedTrace('bug-a-virtio-serial');
    const verdict = { ...t.verdict, findings: t.verdict.findings.slice(1) };
    const r = replayTrace(altered(t, (log) => log, verdict));
    expect(r.divergence).toBeNull();
    expect(r.verdictDiffers).toBe(true);
    expect(r.identical).toBe(false);
    expect(r.replayed.verdict.findings).toHaveLength(t.verdict.findings.length);
  });
});
