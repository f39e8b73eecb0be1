import type { Verdict } from '../oracles/verdict.js';
import { type EventRow, firstDifference } from './event-log.js';
import type { Trace } from './format.js';
import { rerun } from './record.js';
import { verdictToJson } from './trace.js';

/** Events shown before the first divergent one. */
export const DIVERGENCE_CONTEXT = 5;

export interface Divergence {
  /** Index of the first event that differs (or that only one side has). */
  index: number;
  /** Host ns of that event (the recorded one when both exist). */
  atNs: number;
  /** null: the recording ended before this index. */
  recorded: EventRow | null;
  /** null: the replay ended before this index. */
  replayed: EventRow | null;
  /** Up to DIVERGENCE_CONTEXT identical events just before it. */
  context: EventRow[];
}

export interface ReplayResult {
  /** Same events and same verdict (and so the same digest). */
  identical: boolean;
  /** null when every event matched. */
  divergence: Divergence | null;
  /** Events identical but the verdict not (an oracle changed, not the model). */
  verdictDiffers: boolean;
  recorded: Trace;
  replayed: Trace;
}

/** Re-executes the trace's schedule and compares event by event, then the verdicts. */
export function replayTrace(recorded: Trace): ReplayResult {
  const replayed = rerun(recorded);
  return compareTraces(recorded, replayed);
}

export function compareTraces(recorded: Trace, replayed: Trace): ReplayResult {
  let divergence: Divergence | null = null;
  // The encoding is canonical: equal bytes are equal events, and most replays stop here.
  const i = sameBytes(recorded.eventData, replayed.eventData)
    ? -1
    : firstDifference(recorded.events, replayed.events);
  if (i >= 0) {
    const x = recorded.events;
    const y = replayed.events;
    const rec = i < x.length ? x.row(i) : null;
    const rep = i < y.length ? y.row(i) : null;
    const context: EventRow[] = [];
    for (let j = Math.max(0, i - DIVERGENCE_CONTEXT); j < i; j++) context.push(x.row(j));
    divergence = { index: i, atNs: (rec ?? rep)!.at, recorded: rec, replayed: rep, context };
  }
  const verdictDiffers = !sameVerdict(recorded.verdict, replayed.verdict);
  return {
    identical: divergence === null && !verdictDiffers && recorded.digest === replayed.digest,
    divergence,
    verdictDiffers,
    recorded,
    replayed,
  };
}

export function sameVerdict(x: Verdict, y: Verdict): boolean {
  return JSON.stringify(verdictToJson(x)) === JSON.stringify(verdictToJson(y));
}

function sameBytes(x: Uint8Array, y: Uint8Array): boolean {
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
