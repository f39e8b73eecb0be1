import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { Packr, Unpackr } from 'msgpackr';
import { parseArgs, UsageError } from '../src/cli/args.js';
import { InputError } from '../src/cli/exit-codes.js';
import { fuzzSettings } from '../src/cli/fuzz-settings.js';
import { RunState } from '../src/model/events.js';
import { cloneRam, Machine } from '../src/model/machine.js';
import { BuildFileError, parseBuildFile } from '../src/model/migration/build-file.js';
import { type BuildRegistry, builtinRegistry, findMachine } from '../src/model/migration/builds.js';
import { LoadError } from '../src/model/migration/stream.js';
import { loadVm, saveVm } from '../src/model/migration/vm.js';
import { type Schedule, ScheduleError } from '../src/model/schedule/types.js';
import { parseSchedule } from '../src/model/schedule/validate.js';
import { World } from '../src/model/world.js';
import { TraceFormatError } from '../src/replay/format.js';
import { decodeTrace } from '../src/replay/trace.js';

/**
 * Issue 7: every decoder attacked by fast-check generated input (random bytes, truncations and
 * bit flips of valid files, wrong types, out-of-range numbers, huge declared lengths, deep
 * nesting, `__proto__`/`constructor`/`prototype` keys, unknown versions). Each case must be
 * accepted or end in the decoder's typed error with a one-line message; anything else — another
 * exception, a multi-line message, a polluted prototype, a case slower than 1 s — is a failure.
 * Shared by `npm run bench -- --robustness` (100,000 cases per decoder) and
 * test/robustness.test.ts (a fixed-seed sample).
 */

export const DECODERS = ['schedule', 'trace', 'stream', 'build-file', 'flags'] as const;
export type DecoderName = (typeof DECODERS)[number];

export interface RobustnessReport {
  decoder: DecoderName;
  cases: number;
  /** Accepted inputs. */
  accepted: number;
  /** Typed errors with a one-line message. */
  rejected: number;
  failures: number;
  /** The first failing input, summarised, and what happened. */
  firstFailure: string | null;
  slowestMs: number;
  slowestInput: string;
}

/** A case slower than this is a failure (a hang, or work not bounded by the input). */
export const SLOW_CASE_MS = 1000;
/** Memory a case may add to the process (the inputs themselves are at most a few MiB). */
const RSS_GROWTH_LIMIT = 1024 * 2 ** 20;
let rssLimit = Number.POSITIVE_INFINITY;
/** A message longer than this is not "one line" a person reads. */
const MAX_MESSAGE_CHARS = 2000;

// ---------------------------------------------------------------------------------------
// Valid files to start from

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'corpus', 'seeds')) && existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  return process.cwd();
}

const ROOT = findRoot();
const BUILDS: BuildRegistry = builtinRegistry();

function filesOf(sub: string, ext: string): Buffer[] {
  const dir = join(ROOT, 'corpus', sub);
  return readdirSync(dir)
    .filter((n) => n.endsWith(ext))
    .sort()
    .map((n) => readFileSync(join(dir, n)));
}

const BUILD_FILE = {
  builds: [
    {
      name: 'my-build',
      base: 'qemu-9.2',
      revisions: { lapicLoad: 'end-of-load', serialSubsections: ['serial/tsr'] },
    },
    {
      name: 'my-rhel',
      base: 'my-build',
      revisions: { serialGatedPre22: ['serial/tsr'] },
      machines: [{ name: 'pc-i440fx-rhel7.0.0', migratePre22: true }, { name: 'pc-i440fx-2.12' }],
    },
  ],
};

// ---------------------------------------------------------------------------------------
// Hostile building blocks

const HOSTILE_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty'];

const interestingByte = fc.constantFrom(
  0x00,
  0x01,
  0x02,
  0x04,
  0x05,
  0x07,
  0x7e,
  0x7f,
  0x80,
  0x90,
  0xa0,
  0xc0,
  0xc1,
  0xc4,
  0xc6,
  0xc7,
  0xcf,
  0xd3,
  0xd4,
  0xd9,
  0xdb,
  0xdc,
  0xdd,
  0xde,
  0xdf,
  0xfe,
  0xff,
);

/** A byte-level edit of a valid input (shared with the migration properties). */
export type Mutation =
  | { kind: 'flip'; pos: number; bit: number }
  | { kind: 'set'; pos: number; value: number }
  | { kind: 'insert'; pos: number; bytes: number[] }
  | { kind: 'delete'; pos: number; len: number }
  | { kind: 'truncate'; pos: number };

/** Huge declared lengths: msgpack str32/bin32/array32/map32 headers, big-endian all-ones. */
const hugeLength = fc
  .constantFrom(0xdb, 0xc6, 0xdd, 0xdf, 0xc5, 0xda, 0xdc, 0xde, 0xc9, 0xff)
  .chain((h) => fc.constantFrom([h, 0xff, 0xff, 0xff, 0xff], [h, 0x7f, 0xff, 0xff, 0xff], [h, 0xff, 0xff]))
  .map((b): number[] => [...b]);

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('flip' as const), pos: fc.nat(), bit: fc.nat(7) }) },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('set' as const), pos: fc.nat(), value: interestingByte }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('insert' as const),
      pos: fc.nat(),
      bytes: fc.oneof(fc.array(interestingByte, { minLength: 1, maxLength: 8 }), hugeLength),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('delete' as const),
      pos: fc.nat(),
      len: fc.integer({ min: 1, max: 16 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), pos: fc.nat() }) },
);

/** Applies byte-level edits; positions wrap around the current length. */
export function mutate(data: Uint8Array, muts: readonly Mutation[]): Uint8Array {
  let b = Array.from(data);
  for (const m of muts) {
    const pos = b.length === 0 ? 0 : m.pos % (b.length + (m.kind === 'insert' ? 1 : 0));
    switch (m.kind) {
      case 'flip':
        if (b.length > 0) b[pos] = b[pos]! ^ (1 << m.bit);
        break;
      case 'set':
        if (b.length > 0) b[pos] = m.value;
        break;
      case 'insert':
        b.splice(pos, 0, ...m.bytes);
        break;
      case 'delete':
        b.splice(pos, m.len);
        break;
      case 'truncate':
        b = b.slice(0, pos);
        break;
    }
  }
  return Uint8Array.from(b);
}

/** A placeholder value replaced, after serialising, by deeply nested input. */
const DEEP = '@@migfuzz-deep@@';

/** Values of the wrong type or out of range, hostile keys, deep nesting. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(
    null,
    true,
    false,
    0,
    -0,
    -1,
    1.5,
    2 ** 31,
    2 ** 32,
    2 ** 53,
    2 ** 53 + 2,
    -(2 ** 63),
    1e308,
    -1e308,
    Number.MAX_SAFE_INTEGER,
    '',
    '1',
    'NaN',
    '__proto__',
    'x'.repeat(70_000),
    '\n\r\u2028\u0000\u001b[31m',
    [],
    {},
    DEEP,
  ),
  fc.integer({ min: -(2 ** 33), max: 2 ** 33 }),
  fc.double(),
  fc.string({ maxLength: 20, unit: 'binary' }),
  fc.jsonValue({ maxDepth: 3 }),
  fc.array(fc.nat(300), { maxLength: 10 }),
  fc
    .tuple(fc.constantFrom(...HOSTILE_KEYS), fc.jsonValue({ maxDepth: 2 }))
    .map(([k, v]) => withKey({}, k, v)),
  fc.constant(Number.NaN),
);

/** Sets an own enumerable key, also `__proto__` (which assignment would not create). */
function withKey(obj: object, key: string, value: unknown): object {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  return obj;
}

type Edit =
  | { kind: 'replace'; path: number[]; value: unknown }
  | { kind: 'add'; path: number[]; key: string; value: unknown }
  | { kind: 'delete'; path: number[] };

const editArb: fc.Arbitrary<Edit> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('replace' as const),
      path: fc.array(fc.nat(), { maxLength: 6 }),
      value: hostileValue,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('add' as const),
      path: fc.array(fc.nat(), { maxLength: 6 }),
      key: fc.oneof(fc.constantFrom(...HOSTILE_KEYS), fc.string({ maxLength: 8 })),
      value: hostileValue,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('delete' as const),
      path: fc.array(fc.nat(), { maxLength: 6 }),
    }),
  },
);

const isContainer = (v: unknown): v is Record<string, unknown> | unknown[] =>
  typeof v === 'object' && v !== null && !ArrayBuffer.isView(v);

/** A deep copy of plain data (typed arrays copied as they are). */
function copy(v: unknown): unknown {
  if (ArrayBuffer.isView(v)) return (v as Uint8Array).slice();
  if (Array.isArray(v)) return v.map(copy);
  if (isContainer(v)) {
    const out = {};
    for (const [k, x] of Object.entries(v)) withKey(out, k, copy(x));
    return out;
  }
  return v;
}

/** Applies an edit to a copy of `doc`: the path picks children by index (modulo their count). */
function applyEdit(doc: unknown, edit: Edit): unknown {
  const root = copy(doc);
  let parent: Record<string, unknown> | unknown[] | null = null;
  let key: string | number = '';
  let node: unknown = root;
  for (const step of edit.path) {
    if (!isContainer(node)) break;
    const keys = Array.isArray(node) ? node.map((_, i) => i) : Object.keys(node);
    if (keys.length === 0) break;
    parent = node;
    key = keys[step % keys.length]!;
    node = (node as Record<string | number, unknown>)[key];
  }
  switch (edit.kind) {
    case 'replace':
      if (parent === null) return edit.value;
      if (Array.isArray(parent)) parent[key as number] = edit.value;
      else withKey(parent, String(key), edit.value);
      return root;
    case 'add':
      if (isContainer(node) && !Array.isArray(node)) withKey(node, edit.key, edit.value);
      else if (Array.isArray(node)) node.push(edit.value);
      return root;
    case 'delete':
      if (parent === null) return root;
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete (parent as Record<string, unknown>)[String(key)];
      return root;
  }
}

const depthArb = fc.oneof(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1000, max: 200_000 }));

function deepJson(depth: number, kind: number): string {
  return kind === 0
    ? `${'['.repeat(depth)}${']'.repeat(depth)}`
    : `${'{"__proto__":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

/** JSON text of a document, with DEEP placeholders replaced by nesting. */
function jsonText(doc: unknown, depth: number, kind: number): string {
  const text = JSON.stringify(doc) ?? 'null';
  return text.split(JSON.stringify(DEEP)).join(deepJson(depth, kind));
}

/** Hostile JSON texts around some valid documents. */
function jsonInputs(valid: readonly Buffer[]): fc.Arbitrary<string> {
  const docs = valid.map((b) => JSON.parse(b.toString('utf8')) as unknown);
  const versions = fc.constantFrom<unknown>(0, 2, 3, 99, -1, 1.0000001, '1', null, 2 ** 53);
  return fc.oneof(
    // Truncations, bit flips, inserted and deleted bytes of valid files.
    {
      weight: 4,
      arbitrary: fc
        .tuple(fc.nat(valid.length - 1), fc.array(mutationArb, { minLength: 1, maxLength: 4 }))
        .map(([i, muts]) => Buffer.from(mutate(valid[i]!, muts)).toString('utf8')),
    },
    // Wrong types, out-of-range numbers, hostile keys, deep nesting inside valid documents.
    {
      weight: 5,
      arbitrary: fc
        .tuple(
          fc.nat(docs.length - 1),
          fc.array(editArb, { minLength: 1, maxLength: 3 }),
          depthArb,
          fc.nat(1),
        )
        .map(([i, edits, depth, kind]) => jsonText(edits.reduce(applyEdit, docs[i]), depth, kind)),
    },
    // Unknown versions and formats.
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.nat(docs.length - 1), versions, fc.constantFrom<unknown>(undefined, 'migfuzz.trace', 'x'))
        .map(([i, version, format]) => {
          const doc = copy(docs[i]) as Record<string, unknown>;
          if ('version' in doc || 'format' in doc) {
            doc.version = version;
            if (format !== undefined) doc.format = format;
          } else {
            doc.version = version;
          }
          return JSON.stringify(doc);
        }),
    },
    // Unrelated text and JSON.
    { weight: 1, arbitrary: fc.string({ maxLength: 64, unit: 'binary' }) },
    { weight: 1, arbitrary: fc.json({ maxDepth: 4 }) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom(...HOSTILE_KEYS), fc.jsonValue({ maxDepth: 2 }))
        .map(([k, v]) => JSON.stringify(withKey({}, k, v))),
    },
    { weight: 1, arbitrary: fc.tuple(depthArb, fc.nat(1)).map(([d, k]) => deepJson(d, k)) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 256 }).map((b) => Buffer.from(b).toString('latin1')) },
  );
}

// ---------------------------------------------------------------------------------------
// Traces (msgpack)

const plainUnpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });
const plainPackr = new Packr({ useRecords: false, variableMapSize: true });

function packDeep(doc: unknown, depth: number): Uint8Array {
  const bytes = plainPackr.pack(doc);
  const marker = plainPackr.pack(DEEP);
  const at = bytes.indexOf(marker);
  if (at < 0) return bytes;
  const nest = new Uint8Array(Math.min(depth, 100_000) + 1).fill(0x91);
  nest[nest.length - 1] = 0xc0;
  return Buffer.concat([bytes.subarray(0, at), nest, bytes.subarray(at + marker.length)]);
}

function traceInputs(valid: readonly Buffer[]): fc.Arbitrary<Uint8Array> {
  const docs = valid.map((b) => plainUnpackr.unpack(b) as unknown);
  return fc.oneof(
    {
      weight: 4,
      arbitrary: fc
        .tuple(fc.nat(valid.length - 1), fc.array(mutationArb, { minLength: 1, maxLength: 4 }))
        .map(([i, muts]) => mutate(valid[i]!, muts)),
    },
    {
      weight: 4,
      arbitrary: fc
        .tuple(fc.nat(docs.length - 1), fc.array(editArb, { minLength: 1, maxLength: 3 }), depthArb)
        .map(([i, edits, depth]) => packDeep(edits.reduce(applyEdit, docs[i]), depth)),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.nat(docs.length - 1), fc.constantFrom<unknown>(0, 2, 99, -1, '1', null, 2 ** 40))
        .map(([i, version]) => {
          const doc = copy(docs[i]) as Record<string, unknown>;
          doc.version = version;
          return plainPackr.pack(doc);
        }),
    },
    // Random bytes, often starting like a msgpack map.
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 256 }) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom(0x80, 0x81, 0x89, 0x8f, 0xde, 0xdf), fc.uint8Array({ maxLength: 64 }))
        .map(([h, rest]) => Uint8Array.from([h, ...rest])),
    },
    // Huge declared lengths right after a map header and a known key.
    {
      weight: 1,
      arbitrary: fc
        .tuple(hugeLength, fc.constantFrom('format', 'events', 'schedule', 'builds', '__proto__'))
        .map(([hdr, key]) => Uint8Array.from([0x81, ...plainPackr.pack(key), ...hdr, ...new Uint8Array(8)])),
    },
    // JSON values packed as msgpack, with hostile keys.
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom(...HOSTILE_KEYS), fc.jsonValue({ maxDepth: 3 }))
        .map(([k, v]) => plainPackr.pack(withKey({ format: 'migfuzz.trace', version: 1 }, k, v))),
    },
  );
}

// ---------------------------------------------------------------------------------------
// Migration streams

interface Stopped {
  world: World;
  src: Machine;
  stream: Uint8Array;
}

function stopAt(s: Schedule, at: number): Stopped | null {
  const cut: Schedule = { ...s, steps: s.steps.filter((x) => x.at < at), horizon: at };
  const world = new World(cut, { builds: BUILDS });
  if (world.run().kind !== 'horizon') return null;
  const src = world.guestVm;
  if (src.running) src.vmStop(RunState.FINISH_MIGRATE);
  return { world, src, stream: saveVm(src) };
}

/** An incoming destination for `src`, built as World.startMigration builds one. */
function freshDestination({ world, src }: Stopped): Machine {
  const to = 1 - src.vm;
  const side = to === 1 ? world.schedule.dst : world.schedule.src;
  const build = BUILDS.get(side.build)!;
  const dst = new Machine(world, {
    vm: to,
    build,
    machineType: findMachine(build, world.schedule.machine)!,
    devices: Object.entries(world.schedule.devices),
    backends: side.backends as Record<string, string>,
  });
  dst.startIncoming();
  dst.ram = cloneRam(src.ram);
  return dst;
}

let streamBases: Stopped[] | null = null;

/** Machines of every seed, stopped before their first migration and half-way to it. */
function bases(): Stopped[] {
  if (streamBases) return streamBases;
  const out: Stopped[] = [];
  for (const text of filesOf('seeds', '.json')) {
    const s = parseSchedule(text.toString('utf8'), BUILDS);
    const first = s.steps.find((x) => x.do === 'migrate')?.at ?? s.horizon;
    for (const at of [Math.max(1, Math.floor(first / 2)), first]) {
      const b = stopAt(s, at);
      if (b) out.push(b);
    }
  }
  streamBases = out;
  return out;
}

interface StreamInput {
  base: number;
  bytes: Uint8Array;
}

function streamInputs(): fc.Arbitrary<StreamInput> {
  const n = bases().length;
  return fc.oneof(
    {
      weight: 8,
      arbitrary: fc
        .tuple(fc.nat(n - 1), fc.array(mutationArb, { minLength: 1, maxLength: 4 }))
        .map(([base, muts]) => ({ base, bytes: mutate(bases()[base]!.stream, muts) })),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(fc.nat(n - 1), fc.uint8Array({ maxLength: 512 })).map(([base, bytes]) => ({
        base,
        bytes,
      })),
    },
    // Valid magic and version, then random sections.
    {
      weight: 1,
      arbitrary: fc.tuple(fc.nat(n - 1), fc.uint8Array({ maxLength: 256 })).map(([base, rest]) => ({
        base,
        bytes: Uint8Array.from([0x51, 0x45, 0x56, 0x4d, 0, 0, 0, 3, ...rest]),
      })),
    },
  );
}

// ---------------------------------------------------------------------------------------
// Command-line flags

const FLAG_SETS: readonly (readonly [readonly string[], readonly string[]])[] = [
  [['--builds', '--trace'], ['--json']],
  [[], ['--json']],
  [['--vcd'], ['--all']],
  [['-o', '--signature'], ['--json']],
  [['--name', '--dir'], ['--force']],
];
const FUZZ_FLAGS = [
  '--seed',
  '--time',
  '--execs',
  '--workers',
  '--out',
  '--corpus',
  '--builds',
  '--max-queue',
];
const FLAG_NAMES = [
  ...FUZZ_FLAGS,
  '--json',
  '--trace',
  '--vcd',
  '--all',
  '-o',
  '--signature',
  '--name',
  '--dir',
  '--force',
  '--',
  '-',
  '--__proto__',
  '--constructor',
  '-h',
];
const FLAG_VALUES = [
  '0',
  '1',
  '-1',
  '4294967295',
  '4294967296',
  '99999999999999999999999',
  '9'.repeat(400),
  '1e3',
  '0x10',
  ' 1',
  '1.5',
  '',
  '60s',
  '5m',
  '1h',
  '10ms',
  `${'9'.repeat(400)}h`,
  '__proto__',
  'constructor',
  'qemu-9.2',
  'qemu-9.2,qemu-1.2',
  'qemu-1.2,rhel-7.4',
  ',',
  'nope',
  'b.json',
  'qemu-9.2,b.json',
  'missing.json',
  '\n',
  'a\u2028b',
];

interface FlagInput {
  argv: string[];
  /** Which parser: -1 fuzzSettings, else parseArgs with FLAG_SETS[set]. */
  set: number;
  /** What --builds b.json reads. */
  buildFile: string;
}

function flagInputs(): fc.Arbitrary<FlagInput> {
  const token = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...FLAG_NAMES) },
    { weight: 4, arbitrary: fc.constantFrom(...FLAG_VALUES) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom(...FLAG_NAMES), fc.constantFrom(...FLAG_VALUES))
        .map(([f, v]) => `${f}=${v}`),
    },
    { weight: 1, arbitrary: fc.string({ maxLength: 12, unit: 'binary' }) },
    { weight: 1, arbitrary: fc.string({ maxLength: 12, unit: 'binary' }).map((s) => `--${s}`) },
  );
  return fc.record({
    argv: fc.array(token, { maxLength: 10 }),
    set: fc.integer({ min: -1, max: FLAG_SETS.length - 1 }),
    buildFile: jsonInputs([Buffer.from(JSON.stringify(BUILD_FILE))]),
  });
}

function runFlags(x: FlagInput): void {
  if (x.set < 0) {
    const read = (file: string): string => {
      if (file === 'b.json') return x.buildFile;
      throw new InputError(`${file}: cannot read (no such file)`);
    };
    fuzzSettings(x.argv, read, 0);
  } else {
    const [values, bools] = FLAG_SETS[x.set]!;
    parseArgs(x.argv, values, bools);
  }
}

// ---------------------------------------------------------------------------------------
// Running and classifying

interface Decoder<T> {
  input: () => fc.Arbitrary<T>;
  run: (x: T) => void;
  /** The typed errors this decoder may end in. */
  errors: readonly (abstract new (
    ...args: never[]
  ) => Error)[];
  summary: (x: T) => string;
}

const bytesSummary = (b: Uint8Array): string =>
  `${b.length} bytes: ${Buffer.from(b.subarray(0, 48)).toString('hex')}${b.length > 48 ? '…' : ''}`;
const textSummary = (s: string): string =>
  `${s.length} chars: ${JSON.stringify(s.slice(0, 160))}${s.length > 160 ? '…' : ''}`;

/** Erases a decoder's input type (each decoder only ever sees its own generator's values). */
const erase = <T>(d: Decoder<T>): Decoder<never> => d as unknown as Decoder<never>;

const decoders: { [K in DecoderName]: Decoder<never> } = {
  schedule: erase<string>({
    input: () => jsonInputs(filesOf('seeds', '.json')),
    run: (text: string) => void parseSchedule(text, BUILDS),
    errors: [ScheduleError],
    summary: textSummary,
  }),
  trace: erase<Uint8Array>({
    input: () => traceInputs(filesOf('regressions', '.mpk')),
    run: (bytes: Uint8Array) => void decodeTrace(bytes),
    errors: [TraceFormatError],
    summary: bytesSummary,
  }),
  stream: erase<StreamInput>({
    input: streamInputs,
    run: (x: StreamInput) => loadVm(freshDestination(bases()[x.base]!), x.bytes),
    errors: [LoadError],
    summary: (x: StreamInput) => `base ${x.base}, ${bytesSummary(x.bytes)}`,
  }),
  'build-file': erase<string>({
    input: () => jsonInputs([Buffer.from(JSON.stringify(BUILD_FILE, null, 1))]),
    run: (text: string) => void parseBuildFile(text, BUILDS),
    errors: [BuildFileError],
    summary: textSummary,
  }),
  flags: erase<FlagInput>({
    input: flagInputs,
    run: runFlags,
    errors: [UsageError, InputError, BuildFileError],
    summary: (x: FlagInput) =>
      `${x.set < 0 ? 'fuzz' : `parseArgs set ${x.set}`} ${JSON.stringify(x.argv).slice(0, 300)}${
        x.argv.some((a) => a.includes('b.json')) ? ` with b.json = ${textSummary(x.buildFile)}` : ''
      }`,
  }),
};

const PROTOS: readonly object[] = [Object.prototype, Array.prototype, Function.prototype, String.prototype];

function protoSnapshot(): string {
  return PROTOS.map((p) => Reflect.ownKeys(p).map(String).join(',')).join('|');
}

/** What a case did: null when accepted or rejected properly, else what went wrong. */
function classify(
  d: Decoder<never>,
  x: never,
  baseline: string,
  slowMs: number,
): { ms: number; failure: string | null; accepted: boolean } {
  const t0 = performance.now();
  let thrown: unknown = null;
  let threw = false;
  try {
    d.run(x);
  } catch (e) {
    thrown = e;
    threw = true;
  }
  const ms = performance.now() - t0;
  let failure: string | null = null;
  if (threw) {
    const typed = d.errors.some((E) => thrown instanceof E);
    const message = thrown instanceof Error ? String(thrown.message) : String(thrown);
    if (!typed) {
      const name = thrown instanceof Error ? thrown.name : typeof thrown;
      failure = `uncaught ${name}: ${message.slice(0, 300)}`;
    } else if (message.length === 0 || /[\n\r\u2028\u2029]/.test(message)) {
      failure = `a message that is not one line: ${JSON.stringify(message.slice(0, 300))}`;
    } else if (message.length > MAX_MESSAGE_CHARS) {
      failure = `a ${message.length}-character message: ${JSON.stringify(message.slice(0, 200))}…`;
    }
  }
  if (failure === null && protoSnapshot() !== baseline) failure = 'a built-in prototype was polluted';
  if (failure === null && ms > slowMs) failure = `took ${ms.toFixed(0)} ms`;
  if (failure === null && process.memoryUsage.rss() > rssLimit) {
    failure = `the process grew to ${(process.memoryUsage.rss() / 2 ** 20).toFixed(0)} MiB`;
  }
  return { ms, failure, accepted: !threw };
}

/**
 * Runs `count` generated cases against one decoder (deterministic for a seed). A case slower
 * than `slowMs` fails: the bench holds decoders to SLOW_CASE_MS, while a test, which may share
 * a loaded machine, only catches hangs.
 */
export function robustnessCases(
  decoder: DecoderName,
  count: number,
  seed: number,
  slowMs = SLOW_CASE_MS,
): RobustnessReport {
  const d = decoders[decoder];
  const baseline = protoSnapshot();
  const report: RobustnessReport = {
    decoder,
    cases: 0,
    accepted: 0,
    rejected: 0,
    failures: 0,
    firstFailure: null,
    slowestMs: 0,
    slowestInput: '',
  };
  const arb = d.input();
  rssLimit = process.memoryUsage.rss() + RSS_GROWTH_LIMIT;
  fc.assert(
    fc.property(arb, (x) => {
      const r = classify(d, x, baseline, slowMs);
      report.cases++;
      if (r.failure !== null) {
        report.failures++;
        report.firstFailure ??= `${r.failure} — input ${d.summary(x)}`;
      } else if (r.accepted) {
        report.accepted++;
      } else {
        report.rejected++;
      }
      if (r.ms > report.slowestMs) {
        report.slowestMs = r.ms;
        report.slowestInput = d.summary(x).slice(0, 200);
      }
      return true;
    }),
    { seed, numRuns: count },
  );
  return report;
}
