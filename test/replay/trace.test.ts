import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { validateBuildFile } from '../../src/model/migration/build-file.js';
import { scheduleToJson } from '../../src/model/schedule/to-json.js';
import {
  MAX_TRACE_BYTES,
  TOOL_NAME,
  TOOL_VERSION,
  TRACE_FORMAT,
  TRACE_VERSION,
  TraceFormatError,
} from '../../src/replay/format.js';
import { checkMsgpack } from '../../src/replay/msgpack-check.js';
import { recordRun } from '../../src/replay/record.js';
import { replayTrace } from '../../src/replay/replay.js';
import {
  decodeTrace,
  encodeTrace,
  encodeTraceParts,
  makeTraceFromLog,
  traceDigest,
  traceRegistry,
  traceToDocument,
} from '../../src/replay/trace.js';
import { builds, ROOT, SEEDS, seedSchedule, seedTrace } from './helpers.js';

const packr = new Packr({ useRecords: false, variableMapSize: true });
const pack = (doc: unknown): Uint8Array => new Uint8Array(packr.pack(doc));
/** The trace document of bug-b, as plain data to alter. */
const baseDoc = (): Record<string, unknown> => traceToDocument(seedTrace('bug-b-serial'));

function rejects(bytes: Uint8Array, message: RegExp): string {
  let caught: unknown;
  try {
    decodeTrace(bytes);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(TraceFormatError);
  const text = (caught as Error).message;
  expect(text).toMatch(message);
  expect(text).not.toMatch(/\n/);
  return text;
}

describe('trace documents', () => {
  it.each(SEEDS)('%s: encode → decode gives back the same trace', (name) => {
    const t = seedTrace(name);
    const back = decodeTrace(encodeTrace(t));
    expect(back.digest).toBe(t.digest);
    expect(back.eventCount).toBe(t.eventCount);
    expect(back.eventData).toEqual(t.eventData);
    expect(back.verdict).toEqual(t.verdict);
    expect(back.stats).toEqual(t.stats);
    expect(back.builds).toEqual(t.builds);
    expect(back.tool).toEqual({ name: TOOL_NAME, version: TOOL_VERSION });
    expect(scheduleToJson(back.schedule)).toEqual(scheduleToJson(t.schedule));
    // The pieces written to disk are the same bytes.
    const parts = encodeTraceParts(t);
    expect(Buffer.concat(parts)).toEqual(Buffer.from(encodeTrace(t)));
  });

  it('holds every field of docs/trace.md', () => {
    const doc = baseDoc();
    expect(Object.keys(doc)).toEqual([
      'format',
      'version',
      'tool',
      'schedule',
      'builds',
      'events',
      'verdict',
      'digest',
      'stats',
    ]);
    expect(doc.format).toBe(TRACE_FORMAT);
    expect(doc.version).toBe(TRACE_VERSION);
    expect(doc.stats).toEqual({ events: 77, hostEndNs: 30_000_000, vmEndNs: expect.any(Number) });
    expect(doc.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('the digest is stable and covers the events and the verdict', () => {
    const t = seedTrace('bug-a-virtio-serial');
    expect(recordRun(seedSchedule('bug-a-virtio-serial'), builds).digest).toBe(t.digest);
    const flipped = t.eventData.slice();
    flipped[flipped.length - 1] = flipped[flipped.length - 1]! ^ 1;
    expect(traceDigest([flipped], t.eventCount, t.verdict)).not.toBe(t.digest);
    const v = { ...t.verdict, findings: t.verdict.findings.slice(1) };
    expect(traceDigest([t.eventData], t.eventCount, v)).not.toBe(t.digest);
    // Split into pieces or not, the same bytes hash the same.
    const d = t.eventData;
    expect(traceDigest([d.subarray(0, 5), d.subarray(5)], t.eventCount, t.verdict)).toBe(t.digest);
  });

  it('the guest virtual time excludes the downtime of a migration', () => {
    const t = seedTrace('bug-a-virtio-serial');
    // 50 ms run, migration at 5 ms with the default 300 µs downtime.
    expect(t.stats.vmEndNs).toBe(50_000_000 - 300_000);
    expect(decodeTrace(encodeTrace(t)).stats.vmEndNs).toBe(t.stats.vmEndNs);
  });

  it('records a user build in full, so the trace replays without --builds', () => {
    const registry = validateBuildFile(
      {
        builds: [
          {
            name: 'qemu-1.2-fixed',
            base: 'qemu-1.2',
            revisions: { virtioSerialPortOpen: 'timer', vmClockAtCreation: 'disabled' },
          },
        ],
      },
      builds,
    );
    const s = seedSchedule('bug-a-virtio-serial');
    const fixed = {
      ...s,
      src: { ...s.src, build: 'qemu-1.2-fixed' },
      dst: { ...s.dst, build: 'qemu-1.2-fixed' },
    };
    const t = recordRun(fixed, registry);
    expect(t.builds).toEqual([
      {
        name: 'qemu-1.2-fixed',
        builtin: false,
        revisions: registry.get('qemu-1.2-fixed')!.revisions,
        machines: registry.get('qemu-1.2-fixed')!.machines,
      },
    ]);
    const back = decodeTrace(encodeTrace(t));
    expect(traceRegistry(back).get('qemu-1.2-fixed')).toEqual(registry.get('qemu-1.2-fixed'));
    expect(replayTrace(back).identical).toBe(true);
    // The fix changes the run: fewer findings than the buggy build's.
    expect(t.verdict.findings.length).toBeLessThan(seedTrace('bug-a-virtio-serial').verdict.findings.length);
  });

  it('a recorded builtin build is a reference by name', () => {
    expect(seedTrace('bug-b-serial').builds).toEqual([{ name: 'rhel-7.4', builtin: true }]);
  });
});

describe('decoding rejects with one clear line', () => {
  it('an empty file, JSON, and bytes that are not a msgpack map', () => {
    rejects(new Uint8Array(0), /empty file/);
    rejects(new TextEncoder().encode('{"format": "migfuzz.schedule"}'), /looks like JSON/);
    rejects(Uint8Array.from([0x92, 1, 2]), /not a migfuzz trace: a trace is a msgpack map/);
    rejects(Uint8Array.from([0x81, 0xc1, 0x00]), /not a valid msgpack document/);
  });

  it('every truncation of a trace', () => {
    const bytes = encodeTrace(seedTrace('bug-b-serial'));
    for (let n = 1; n < bytes.length; n++) rejects(bytes.subarray(0, n), /truncated|cannot fit|not a valid/);
  });

  it('trailing bytes after the document', () => {
    const bytes = encodeTrace(seedTrace('bug-b-serial'));
    rejects(Uint8Array.from([...bytes, 0]), /trailing bytes/);
  });

  it('another format, and a newer or an unknown version', () => {
    rejects(
      pack({ ...baseDoc(), format: 'migfuzz.schedule' }),
      /format: expected "migfuzz.trace".*a schedule/,
    );
    rejects(pack({ ...baseDoc(), format: 'pcap' }), /format: expected "migfuzz.trace", got "pcap"/);
    rejects(pack({ ...baseDoc(), version: 2 }), /version 2 is newer than this migfuzz reads \(1\): upgrade/);
    rejects(pack({ ...baseDoc(), version: 0 }), /version: expected 1, got 0/);
    rejects(pack({ ...baseDoc(), version: '1' }), /version: expected 1, got string/);
  });

  it('missing, unexpected and wrongly typed fields', () => {
    const { stats: _drop, ...noStats } = baseDoc();
    rejects(pack(noStats), /stats: missing/);
    rejects(pack({ ...baseDoc(), extra: 1 }), /unexpected field "extra"/);
    rejects(pack({ ...baseDoc(), tool: 'migfuzz' }), /tool: expected an object, got string/);
    rejects(pack({ ...baseDoc(), events: { count: 77, data: [1, 2, 3] } }), /events.data: expected bin/);
    rejects(
      pack({ ...baseDoc(), events: { count: 'x', data: new Uint8Array(0) } }),
      /events.count: expected/,
    );
    rejects(pack({ ...baseDoc(), digest: 'md5:00' }), /digest: expected "sha256:"/);
    const verdict = { ...(baseDoc().verdict as object), end: 'crash' };
    rejects(
      pack({ ...baseDoc(), verdict }),
      /verdict.end: expected "horizon", "hang", "assert" or "unsafe-load"/,
    );
  });

  it('out-of-range values and inconsistent fields', () => {
    const doc = baseDoc();
    const v = doc.verdict as { findings: { at: number; oracle: string }[]; endNs: number; events: number };
    rejects(pack({ ...doc, verdict: { ...v, endNs: -1 } }), /verdict.endNs: expected a non-negative integer/);
    rejects(
      pack({ ...doc, verdict: { ...v, events: 76 } }),
      /verdict.events: 76 events, but the trace holds 77/,
    );
    const late = v.findings.map((f) => ({ ...f, at: v.endNs + 1 }));
    rejects(pack({ ...doc, verdict: { ...v, findings: late } }), /after the end of the run/);
    const unknown = v.findings.map((f) => ({ ...f, oracle: 'segfault' }));
    rejects(pack({ ...doc, verdict: { ...v, findings: unknown } }), /oracle: expected "lost-interrupt"/);
    const stats = doc.stats as { vmEndNs: number };
    rejects(pack({ ...doc, stats: { ...stats, vmEndNs: stats.vmEndNs + 1 } }), /stats.vmEndNs: .* disagrees/);
    rejects(
      pack({ ...doc, stats: { ...stats, events: 1.5 } }),
      /stats.events: expected a non-negative integer/,
    );
    rejects(
      pack({ ...doc, stats: { ...stats, eventBudget: 0 } }),
      /stats.eventBudget: expected an integer in/,
    );
    // Text that is printed as it is: one line, and a signature in printable ASCII.
    const twoLines = v.findings.map((f) => ({ ...f, message: 'fine\n\u001b[2Jnot fine' }));
    rejects(pack({ ...doc, verdict: { ...v, findings: twoLines } }), /message: expected one line of text/);
    const badSig = v.findings.map((f) => ({ ...f, signature: 'data-loss:serial0:\u001b[31m' }));
    rejects(pack({ ...doc, verdict: { ...v, findings: badSig } }), /signature: expected oracle:device:key/);
  });

  it('a digest that does not match the events or the verdict', () => {
    const doc = baseDoc();
    const v = doc.verdict as { findings: { message: string }[] };
    const altered = v.findings.map((f) => ({ ...f, message: `${f.message}!` }));
    rejects(pack({ ...doc, verdict: { ...v, findings: altered } }), /digest: does not match/);
    const data = (doc.events as { data: Uint8Array }).data.slice();
    data[data.length - 1] = data[data.length - 1]! ^ 2;
    rejects(pack({ ...doc, events: { count: 77, data } }), /digest: does not match|events.data/);
  });

  it('unknown event kinds (even with a matching digest)', () => {
    const t = seedTrace('bug-b-serial');
    const data = t.eventData.slice();
    // The kind column follows the time column: one byte per event each.
    data[t.eventCount] = 99;
    const doc = { ...baseDoc(), events: { count: t.eventCount, data } };
    (doc as Record<string, unknown>).digest = traceDigest([data], t.eventCount, t.verdict);
    rejects(pack(doc), /events.data: event 0 \(kind column.*unknown event kind 99/);
  });

  it('a schedule that is invalid or names a build the trace does not record', () => {
    const doc = baseDoc();
    const s = doc.schedule as Record<string, unknown>;
    rejects(pack({ ...doc, schedule: { ...s, horizon: -5 } }), /^schedule|horizon/);
    rejects(
      pack({ ...doc, schedule: { ...s, steps: [{ at: 1, do: 'guest.teleport' }] } }),
      /schedule.steps\[0\]: unknown step/,
    );
    rejects(pack({ ...doc, builds: [{ name: 'qemu-9.2', builtin: true }] }), /rhel-7.4|build/);
    rejects(pack({ ...doc, builds: [{ name: 'qemu-99', builtin: true }] }), /not a builtin build/);
    rejects(pack({ ...doc, builds: [] }), /builds: expected at least one build/);
    const userBuild = { name: 'mine', revisions: { lapicLoad: 'post-load' }, machines: [{ name: 'pc-1.2' }] };
    rejects(pack({ ...doc, builds: [userBuild] }), /builds\[0\]\.revisions\.virtioSerialPortOpen: missing/);
  });

  it('prototype keys anywhere, before anything is built from them', () => {
    for (const key of ['__proto__', 'constructor', 'prototype']) {
      // Raw bytes: {"tool": {KEY: 1}} at the top level and nested.
      const top = msgpackMap([[key, 1]]);
      rejects(top, /forbidden map key/);
      const nested = msgpackMap([
        ['format', 'migfuzz.trace'],
        ['tool', msgpackMap([[key, 1]])],
      ]);
      rejects(nested, /forbidden map key/);
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('absurd lengths, without allocating them', () => {
    // A map whose `tool` claims 2^32 - 1 array elements, a 2^31-byte string, a 2^32-entry map.
    const big = (type: number): Uint8Array =>
      Uint8Array.from([0x81, 0xa4, ...new TextEncoder().encode('tool'), type, 0xff, 0xff, 0xff, 0xff]);
    rejects(big(0xdd), /truncated: an array of 4294967295 elements/);
    rejects(big(0xdb), /truncated/);
    rejects(big(0xdf), /truncated: a map of 4294967295 entries/);
    rejects(big(0xc6), /truncated/);
    rejects(Uint8Array.from([0xdf, 0x7f, 0xff, 0xff, 0xff]), /truncated/);
  });

  it('extension types and deep nesting', () => {
    rejects(Uint8Array.from([0x81, 0xa1, 0x78, 0xd6, 0xff, 0, 0, 0, 0]), /unexpected type byte 0xd6/);
    rejects(Uint8Array.from([0x81, 0xa1, 0x78, 0xc7, 1, 0x65, 0]), /unexpected type byte 0xc7/);
    let deep: Uint8Array = Uint8Array.from([0x90]);
    for (let i = 0; i < 40; i++) deep = Uint8Array.from([0x91, ...deep]);
    rejects(Uint8Array.from([0x81, 0xa1, 0x78, ...deep]), /nesting deeper/);
  });

  it('duplicate keys and non-string keys', () => {
    rejects(
      msgpackMap([
        ['format', 1],
        ['format', 2],
      ]),
      /duplicate map key "format"/,
    );
    rejects(Uint8Array.from([0x81, 0x01, 0x02]), /map key at byte 1 is not a string/);
    rejects(Uint8Array.from([0x81, 0xa2, 0xc3, 0x28, 0x01]), /not valid UTF-8/);
  });

  it('files larger than any trace', () => {
    const huge = { length: MAX_TRACE_BYTES + 1, 0: 0x80 } as unknown as Uint8Array;
    rejects(huge, /larger than any trace/);
  });

  it('the structural check accepts every trace the encoder writes', () => {
    for (const name of SEEDS) expect(() => checkMsgpack(encodeTrace(seedTrace(name)))).not.toThrow();
  });

  it('a decoded trace with changed events is a valid trace again once re-digested', () => {
    const t = seedTrace('bug-b-serial');
    const log = decodeTrace(encodeTrace(t)).events;
    log.b[10] = 12345;
    const altered = makeTraceFromLog(t.schedule, traceRegistry(t), log, t.verdict);
    expect(decodeTrace(encodeTrace(altered)).events.b[10]).toBe(12345);
    expect(ROOT).toBeTruthy();
  });
});

/** A msgpack map from raw entries; values already encoded (Uint8Array) are spliced in as they are. */
function msgpackMap(entries: [string, unknown][]): Uint8Array {
  const parts: number[] = [0x80 | entries.length];
  for (const [k, v] of entries) {
    const key = new TextEncoder().encode(k);
    parts.push(0xa0 | key.length, ...key);
    parts.push(...(v instanceof Uint8Array ? v : pack(v)));
  }
  return Uint8Array.from(parts);
}
