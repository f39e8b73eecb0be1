/**
 * Trace format `migfuzz.trace` (docs/trace.md): one msgpack map. Like QEMU's
 * replay-internal.h (DESIGN.md example 11) the format has a name, a version and an
 * append-only list of event kinds (`src/model/events.ts`): any change to the document or to
 * that list bumps TRACE_VERSION, and a reader refuses versions newer than its own.
 *
 * Version 1:
 *
 * | field | content |
 * |---|---|
 * | `format` | `"migfuzz.trace"` |
 * | `version` | 1 |
 * | `tool` | `{name, version}` of the writer |
 * | `schedule` | the whole schedule, as `scheduleToJson` gives it but with step `data` as bin (bytes) |
 * | `builds` | the builds the schedule names: `{name, builtin: true}` or a full definition `{name, revisions, machines}` |
 * | `events` | `{count, data}`: every executed event, as delta-time byte columns with varint escapes in one `bin` (columns.ts) |
 * | `verdict` | `{findings, events, endNs, end}` |
 * | `digest` | `"sha256:" + hex` over the event data and the verdict (see `digest.ts`) |
 * | `stats` | `{events, hostEndNs, vmEndNs}` |
 */

import type { MachineType, Revisions } from '../model/migration/builds.js';
import type { Schedule } from '../model/schedule/types.js';
import type { Verdict } from '../oracles/verdict.js';
import type { EventLog } from './event-log.js';

export const TRACE_FORMAT = 'migfuzz.trace';
export const TRACE_VERSION = 1;
/**
 * The highest event kind this version knows (events.ts `Ev`, append-only; a test fails when
 * a kind is added without raising this and TRACE_VERSION).
 */
export const MAX_EVENT_KIND = 27;

export const TOOL_NAME = 'migfuzz';
/** Kept equal to package.json's version (a test checks it); src/replay reads no files. */
export const TOOL_VERSION = '0.1.0';

/** Limits: a decoder never allocates more than the input justifies. */
export const MAX_TRACE_BYTES = 256 * 1024 * 1024;
export const MAX_TRACE_EVENTS = 32_000_000;
export const MAX_FINDINGS = 1024;
export const MAX_TEXT_CHARS = 4096;
export const MAX_TRACE_BUILDS = 2;

/** Bad trace input: one line saying what is wrong and where (`verdict.findings[2].at: ...`). */
export class TraceFormatError extends Error {
  override readonly name = 'TraceFormatError';
}

/** A builtin build is recorded by name; a user build (`--builds`) in full, so the trace replays alone. */
export type TraceBuild =
  | { name: string; builtin: true }
  | { name: string; builtin: false; revisions: Revisions; machines: readonly MachineType[] };

export interface TraceStats {
  /** Executed events (= events.count = verdict.events). */
  events: number;
  /** Host ns at the end of the run (= verdict.endNs). */
  hostEndNs: number;
  /** Guest virtual time (vm_clock) at the end: host time during which the guest's VM ran. */
  vmEndNs: number;
  /** The run's event budget when it was not the default (a replay runs with the same one). */
  eventBudget?: number;
}

export interface Trace {
  tool: { name: string; version: string };
  schedule: Schedule;
  builds: TraceBuild[];
  eventCount: number;
  /**
   * The events in the compact encoding (columns.ts), what the file holds and the digest
   * covers: the concatenation of these pieces (the recorder's six columns, or one array).
   */
  eventParts: readonly Uint8Array[];
  /** `eventParts` joined (on first use). */
  readonly eventData: Uint8Array;
  /** The events as columns of numbers, decoded from `eventData` on first use. */
  readonly events: EventLog;
  verdict: Verdict;
  digest: string;
  stats: TraceStats;
}
