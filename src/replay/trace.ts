/**
 * Trace documents (format.ts): building one from a run, encoding it with msgpackr, and
 * decoding untrusted bytes back, validating the whole document. Decoding never executes or
 * pollutes anything: the bytes are checked structurally first (msgpack-check.ts), every
 * object goes through the schedule reader's prototype-safe copies, and every length is
 * bounded by the bytes present.
 */

import { createHash } from 'node:crypto';
import { Packr, Unpackr } from 'msgpackr';
import { Ev, RunState } from '../model/events.js';
import type { BuildRegistry } from '../model/migration/builds.js';
import { scheduleToJson } from '../model/schedule/to-json.js';
import { type Schedule, ScheduleError } from '../model/schedule/types.js';
import { validateSchedule } from '../model/schedule/validate.js';
import { got, type JsonObject, JsonReader } from '../model/util/json-reader.js';
import { DEFAULT_EVENT_BUDGET, MAX_EVENT_BUDGET } from '../model/world.js';
import { type Finding, ORACLE_NAMES } from '../oracles/types.js';
import type { Verdict } from '../oracles/verdict.js';
import { decodeEvents, encodeEvents } from './columns.js';
import type { EventLog } from './event-log.js';
import {
  MAX_FINDINGS,
  MAX_TEXT_CHARS,
  MAX_TRACE_BYTES,
  TOOL_NAME,
  TOOL_VERSION,
  TRACE_FORMAT,
  TRACE_VERSION,
  type Trace,
  type TraceBuild,
  TraceFormatError,
  type TraceStats,
} from './format.js';
import { checkMsgpack } from './msgpack-check.js';
import { readTraceBuilds, registryOf, traceBuilds, traceBuildToJson } from './trace-builds.js';

const TOP_FIELDS = [
  'format',
  'version',
  'tool',
  'schedule',
  'builds',
  'events',
  'verdict',
  'digest',
  'stats',
];
const RUN_ENDS = ['horizon', 'hang', 'assert', 'unsafe-load'] as const;
const TOOL_TEXT = /^[\x20-\x7e]{1,64}$/;
/** A finding's message: one line of text (it is printed as it is). */
const LINE_TEXT = new RegExp(`^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]{0,${MAX_TEXT_CHARS}}$`);
/** A signature: oracle:device:key in printable ASCII. */
const SIGNATURE = /^[a-z-]+:[\x21-\x7e]{1,64}:[\x21-\x7e]{1,200}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;

// ---------------------------------------------------------------------------------------
// From a run

/**
 * The trace of a judged run from its encoded events — the recorder's columns, which are
 * hashed and written as they are (never concatenated on the recording path), or
 * `encodeEvents` of a log — and the guest's virtual time at the end.
 */
export function makeTrace(
  schedule: Schedule,
  registry: BuildRegistry,
  eventParts: readonly Uint8Array[],
  eventCount: number,
  verdict: Verdict,
  vmEndNs: number,
  eventBudget = DEFAULT_EVENT_BUDGET,
): Trace {
  const stats: TraceStats = { events: eventCount, hostEndNs: verdict.endNs, vmEndNs };
  if (eventBudget !== DEFAULT_EVENT_BUDGET) stats.eventBudget = eventBudget;
  return lazyTrace(
    {
      tool: { name: TOOL_NAME, version: TOOL_VERSION },
      schedule,
      builds: traceBuilds(schedule, registry),
      eventCount,
      eventParts,
      verdict,
      digest: traceDigest(eventParts, eventCount, verdict),
      stats,
    },
    undefined,
  );
}

/** The trace of a run whose events are in `log` (tests, tools: recordRun is the fast path). */
export function makeTraceFromLog(
  schedule: Schedule,
  registry: BuildRegistry,
  log: EventLog,
  verdict: Verdict,
): Trace {
  const t = makeTrace(
    schedule,
    registry,
    [encodeEvents(log)],
    log.length,
    verdict,
    guestRunNs(log, verdict.endNs),
  );
  return lazyTrace(t, log);
}

type TraceFields = Omit<Trace, 'events' | 'eventData'>;

/** A trace whose `eventData` is joined and whose `events` are decoded when first asked for. */
function lazyTrace(t: TraceFields, decoded: EventLog | undefined): Trace {
  let log = decoded;
  let data: Uint8Array | undefined = t.eventParts.length === 1 ? t.eventParts[0] : undefined;
  const { tool, schedule, builds, eventCount, eventParts, verdict, digest, stats } = t;
  return {
    tool,
    schedule,
    builds,
    eventCount,
    eventParts,
    verdict,
    digest,
    stats,
    get eventData(): Uint8Array {
      data ??= concat(eventParts);
      return data;
    },
    get events(): EventLog {
      log ??= decodeEvents(this.eventData, eventCount);
      return log;
    },
  };
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** The registry a decoded trace's schedule runs with. */
export function traceRegistry(t: Trace): BuildRegistry {
  return registryOf(t.builds);
}

/**
 * SHA-256 over the encoded events (canonical: one encoding per event list), given as the
 * pieces they are stored in, and the verdict in a fixed key order. Equal digests ⇔
 * identical events and verdict.
 */
export function traceDigest(eventParts: readonly Uint8Array[], count: number, verdict: Verdict): string {
  const h = createHash('sha256');
  const bytes = eventParts.reduce((sum, p) => sum + p.length, 0);
  h.update(`${TRACE_FORMAT}/${TRACE_VERSION} events ${count} ${bytes}\n`);
  for (const p of eventParts) h.update(p);
  h.update('\nverdict ');
  h.update(JSON.stringify(verdictToJson(verdict)));
  return `sha256:${h.digest('hex')}`;
}

export function verdictToJson(v: Verdict): {
  findings: Finding[];
  events: number;
  endNs: number;
  end: Verdict['end'];
} {
  return {
    findings: v.findings.map((f) => ({
      oracle: f.oracle,
      device: f.device,
      at: f.at,
      message: f.message,
      signature: f.signature,
    })),
    events: v.events,
    endNs: v.endNs,
    end: v.end,
  };
}

/** Event count, host end, and the guest's vm_clock at the end (host time while its VM ran). */
export function traceStats(log: EventLog, verdict: Verdict): TraceStats {
  return { events: log.length, hostEndNs: verdict.endNs, vmEndNs: guestRunNs(log, verdict.endNs) };
}

/**
 * vm_clock runs only while a VM is RUNNING, and it migrates with the guest (the destination
 * continues the source's value), so the guest's virtual time is the host time during which
 * some VM ran (never two at once: a migration stops the source before the destination runs).
 */
export function guestRunNs(log: EventLog, endNs: number): number {
  const running = [false, false];
  let total = 0;
  let since = 0;
  let anyRunning = false;
  for (let i = 0; i < log.length; i++) {
    if (log.kind[i] !== Ev.RUN_STATE) continue;
    const vm = log.vm[i]!;
    if (vm !== 0 && vm !== 1) continue;
    const t = log.at[i]!;
    if (anyRunning) total += t - since;
    since = t;
    running[vm] = log.a[i] === RunState.RUNNING;
    anyRunning = running[0] === true || running[1] === true;
  }
  if (anyRunning) total += Math.max(0, endNs - since);
  return total;
}

// ---------------------------------------------------------------------------------------
// Encoding

const packr = new Packr({ useRecords: false, variableMapSize: true });

/**
 * The schedule as the trace holds it: scheduleToJson's shape, with step `data` as msgpack
 * bin (bytes as they are; validateSchedule reads them back) rather than text or a list of
 * numbers, which costs a UTF-8 round trip per step on every recording.
 */
export function scheduleDocument(s: Schedule): Record<string, unknown> {
  const doc = scheduleToJson({ ...s, steps: [] }) as Record<string, unknown>;
  doc.steps = s.steps.map((step) => ({ ...step }));
  return doc;
}

/** The document without the event data (the bin is spliced in by encodeTraceParts). */
function documentFields(t: Trace): [string, unknown][] {
  return [
    ['format', TRACE_FORMAT],
    ['version', TRACE_VERSION],
    ['tool', { name: t.tool.name, version: t.tool.version }],
    ['schedule', scheduleDocument(t.schedule)],
    ['builds', t.builds.map(traceBuildToJson)],
    ['events', null],
    ['verdict', verdictToJson(t.verdict)],
    ['digest', t.digest],
    ['stats', { ...t.stats }],
  ];
}

/** The trace document as a plain object (what decoding the file gives, before validation). */
export function traceToDocument(t: Trace): Record<string, unknown> {
  const doc: Record<string, unknown> = Object.fromEntries(documentFields(t));
  doc.events = { count: t.eventCount, data: t.eventData };
  return doc;
}

/**
 * The msgpack bytes of a trace, as pieces to write one after the other: the fields are
 * packed one by one and the event columns go into the document's `bin` as they are.
 */
export function encodeTraceParts(t: Trace): Uint8Array[] {
  const fields = documentFields(t);
  const parts: Uint8Array[] = [new Uint8Array([0x80 | fields.length])];
  // Packr reuses its buffer between calls: copy each piece.
  const pack = (v: unknown): void => {
    parts.push(new Uint8Array(packr.pack(v)));
  };
  for (const [key, value] of fields) {
    pack(key);
    if (key !== 'events') {
      pack(value);
      continue;
    }
    parts.push(new Uint8Array([0x82]));
    pack('count');
    pack(t.eventCount);
    pack('data');
    parts.push(binHeader(t.eventParts.reduce((sum, p) => sum + p.length, 0)), ...t.eventParts);
  }
  return parts;
}

/** The msgpack bytes of a trace, in one array. */
export function encodeTrace(t: Trace): Uint8Array {
  return concat(encodeTraceParts(t));
}

function binHeader(n: number): Uint8Array {
  if (n < 0x100) return new Uint8Array([0xc4, n]);
  if (n < 0x10000) return new Uint8Array([0xc5, n >>> 8, n & 0xff]);
  return new Uint8Array([0xc6, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
}

// ---------------------------------------------------------------------------------------
// Decoding untrusted bytes

const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

/** The trace in `bytes`, validated whole; any problem is a TraceFormatError of one line. */
export function decodeTrace(bytes: Uint8Array): Trace {
  if (bytes.length === 0) throw new TraceFormatError('empty file: not a migfuzz trace');
  if (bytes.length > MAX_TRACE_BYTES) {
    throw new TraceFormatError(`${bytes.length} bytes: larger than any trace (at most ${MAX_TRACE_BYTES})`);
  }
  const first = bytes[0]!;
  if (!(first >= 0x80 && first <= 0x8f) && first !== 0xde && first !== 0xdf) {
    const json = first === 0x7b || first === 0x20 || first === 0x0a || first === 0x0d || first === 0x09;
    throw new TraceFormatError(
      json
        ? 'not a migfuzz trace: this looks like JSON (a schedule? `migfuzz run` takes it), not msgpack'
        : `not a migfuzz trace: a trace is a msgpack map, the file starts with byte 0x${first.toString(16)}`,
    );
  }
  checkMsgpack(bytes);
  let doc: unknown;
  try {
    doc = unpackr.unpack(bytes);
  } catch (e) {
    throw new TraceFormatError(`not a valid msgpack document: ${e instanceof Error ? e.message : typeof e}`);
  }
  const input = new JsonReader('trace', (line) => new TraceFormatError(line));
  try {
    return readTrace(input, doc);
  } catch (e) {
    if (e instanceof TraceFormatError) throw e;
    throw new TraceFormatError(`trace: unreadable input (${e instanceof Error ? e.message : typeof e})`);
  }
}

function readTrace(input: JsonReader, doc: unknown): Trace {
  const obj = input.object(doc, '');
  // Format and version first: another format or a newer trace must say so, not list fields.
  const format = input.need(obj, 'format', '', `"${TRACE_FORMAT}"`);
  if (format !== TRACE_FORMAT) {
    const hint = format === 'migfuzz.schedule' ? ' (a schedule: `migfuzz run` takes it)' : '';
    input.fail('format', `expected "${TRACE_FORMAT}", got ${got(format, 'string')}${hint}`);
  }
  const version = input.need(obj, 'version', '', String(TRACE_VERSION));
  if (typeof version === 'number' && Number.isInteger(version) && version > TRACE_VERSION) {
    input.fail(
      'version',
      `trace version ${version} is newer than this migfuzz reads (${TRACE_VERSION}): upgrade migfuzz`,
    );
  }
  input.int(version, 'version', TRACE_VERSION, TRACE_VERSION, String(TRACE_VERSION));
  input.onlyFields(obj, '', TOP_FIELDS);
  for (const f of TOP_FIELDS) input.need(obj, f, '', 'a value');

  const toolObj = input.object(obj.tool, 'tool');
  input.onlyFields(toolObj, 'tool', ['name', 'version']);
  const tool = {
    name: input.string(input.need(toolObj, 'name', 'tool', 'a name'), 'tool.name', TOOL_TEXT, 'a short name'),
    version: input.string(
      input.need(toolObj, 'version', 'tool', 'a version'),
      'tool.version',
      TOOL_TEXT,
      'a short version',
    ),
  };

  const builds: TraceBuild[] = readTraceBuilds(input, obj.builds);
  const schedule = readSchedule(obj.schedule, registryOf(builds));
  for (const side of ['src', 'dst'] as const) {
    if (!builds.some((b) => b.name === schedule[side].build)) {
      input.fail('builds', `the schedule's ${side} build "${schedule[side].build}" is not recorded`);
    }
  }

  const eventsObj = input.object(obj.events, 'events');
  input.onlyFields(eventsObj, 'events', ['count', 'data']);
  const count = input.int(
    input.need(eventsObj, 'count', 'events', 'an event count'),
    'events.count',
    0,
    2 ** 31,
  );
  const data = input.need(eventsObj, 'data', 'events', 'the encoded events (bin)');
  if (!(data instanceof Uint8Array)) input.fail('events.data', 'expected bin (the encoded events)');
  const eventData = new Uint8Array(data);
  const events = decodeEvents(eventData, count);

  const verdict = readVerdict(input, obj.verdict);
  if (verdict.events !== count) {
    input.fail('verdict.events', `${verdict.events} events, but the trace holds ${count}`);
  }
  const lastAt = count > 0 ? events.at[count - 1]! : 0;
  if (lastAt > verdict.endNs)
    input.fail('verdict.endNs', `${verdict.endNs} is before the last event (${lastAt})`);

  const digest = input.string(obj.digest, 'digest', DIGEST, '"sha256:" and 64 hex digits');
  if (digest !== traceDigest([eventData], count, verdict)) {
    input.fail('digest', 'does not match the events and verdict (the file was altered or is corrupt)');
  }

  const stats = readStats(input, obj.stats);
  const expected = traceStats(events, verdict);
  for (const key of ['events', 'hostEndNs', 'vmEndNs'] as const) {
    if (stats[key] !== expected[key]) {
      input.fail(`stats.${key}`, `${stats[key]} disagrees with the events and verdict (${expected[key]})`);
    }
  }
  return lazyTrace(
    { tool, schedule, builds, eventCount: count, eventParts: [eventData], verdict, digest, stats },
    events,
  );
}

function readSchedule(v: unknown, registry: BuildRegistry): Schedule {
  try {
    return validateSchedule(v, registry);
  } catch (e) {
    if (e instanceof ScheduleError) {
      const m = e.message;
      throw new TraceFormatError(m.startsWith('schedule') ? m : `schedule.${m}`);
    }
    throw e;
  }
}

function readVerdict(input: JsonReader, v: unknown): Verdict {
  const obj = input.object(v, 'verdict');
  input.onlyFields(obj, 'verdict', ['findings', 'events', 'endNs', 'end']);
  const items = input.array(
    input.need(obj, 'findings', 'verdict', 'a list of findings'),
    'verdict.findings',
    MAX_FINDINGS,
    'findings',
  );
  const endNs = safeInt(input, input.need(obj, 'endNs', 'verdict', 'host ns'), 'verdict.endNs');
  const findings = items.map((item, i) => readFinding(input, item, `verdict.findings[${i}]`, endNs));
  return {
    findings,
    events: safeInt(input, input.need(obj, 'events', 'verdict', 'an event count'), 'verdict.events'),
    endNs,
    end: input.oneOf(input.need(obj, 'end', 'verdict', 'how the run ended'), 'verdict.end', RUN_ENDS),
  };
}

function readFinding(input: JsonReader, v: unknown, path: string, endNs: number): Finding {
  const obj: JsonObject = input.object(v, path);
  input.onlyFields(obj, path, ['oracle', 'device', 'at', 'message', 'signature']);
  const oracle = input.oneOf(
    input.need(obj, 'oracle', path, 'an oracle name'),
    `${path}.oracle`,
    ORACLE_NAMES,
  );
  const device = input.need(obj, 'device', path, 'a device name or null');
  const at = safeInt(input, input.need(obj, 'at', path, 'host ns'), `${path}.at`);
  if (at > endNs) input.fail(`${path}.at`, `${at} is after the end of the run (${endNs})`);
  return {
    oracle,
    device:
      device === null ? null : input.string(device, `${path}.device`, TOOL_TEXT, 'a device name or null'),
    at,
    message: input.string(
      input.need(obj, 'message', path, 'a message'),
      `${path}.message`,
      LINE_TEXT,
      'one line of text',
    ),
    signature: input.string(
      input.need(obj, 'signature', path, 'a signature'),
      `${path}.signature`,
      SIGNATURE,
      'oracle:device:key in printable ASCII',
    ),
  };
}

function readStats(input: JsonReader, v: unknown): TraceStats {
  const obj = input.object(v, 'stats');
  input.onlyFields(obj, 'stats', ['events', 'hostEndNs', 'vmEndNs', 'eventBudget']);
  const field = (key: string): number =>
    safeInt(input, input.need(obj, key, 'stats', 'an integer'), `stats.${key}`);
  const stats: TraceStats = {
    events: field('events'),
    hostEndNs: field('hostEndNs'),
    vmEndNs: field('vmEndNs'),
  };
  if (obj.eventBudget !== undefined)
    stats.eventBudget = input.int(
      obj.eventBudget,
      'stats.eventBudget',
      1,
      MAX_EVENT_BUDGET,
      `an integer in [1, ${MAX_EVENT_BUDGET}]`,
    );
  return stats;
}

function safeInt(input: JsonReader, v: unknown, path: string): number {
  return input.int(v, path, 0, Number.MAX_SAFE_INTEGER, 'a non-negative integer');
}
