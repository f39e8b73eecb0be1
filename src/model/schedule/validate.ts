/**
 * Untrusted schedule JSON (docs/schedule.md) → the normalised `Schedule`, or a ScheduleError
 * with one line naming where and what (`steps[3].port: no port 2 on vser0`). Users write
 * schedules by hand, so every unknown field is an error: a typo must not silently become a
 * default. The inverse, `scheduleToJson`, is in to-json.ts; the bounds in limits.ts.
 */

import { type Build, type BuildRegistry, findMachine } from '../migration/builds.js';
import { HOSTILE_SERIAL_FIELDS, HOSTILE_VIRTIO_FIELDS, type HostileEdits } from '../migration/hostile.js';
import {
  FORBIDDEN_KEYS,
  fieldPath,
  got,
  indexPath,
  isPlainObject,
  type JsonObject,
  JsonReader,
  listOf,
  typeName,
} from '../util/json-reader.js';
import { oneLine, quote } from '../util/text.js';
import {
  MAX_DATA_BYTES,
  MAX_DEVICES,
  MAX_DOWNTIME_NS,
  MAX_HORIZON_NS,
  MAX_PORTS,
  MAX_STEPS,
} from './limits.js';
import { didYouMean } from './suggest.js';
import {
  DEFAULT_DOWNTIME_NS,
  type DeviceSpec,
  SCHEDULE_FORMAT,
  SCHEDULE_VERSION,
  type Schedule,
  ScheduleError,
  type SideSpec,
  type Step,
  type StepKind,
  type UartBackendState,
  type VirtioSerialDevice,
  type VirtioSerialPortSpec,
  type VportBackendState,
} from './types.js';

// ---------------------------------------------------------------------------------------
// Value sets

const U32_MAX = 0xffff_ffff;

const DEVICE_NAME = /^[a-z][a-z0-9_-]{0,31}$/;
const PORT_NAME = /^[\x20-\x7e]{1,64}$/;
/** `DEV.portN` backend keys; N is matched loosely and checked against the device. */
const PORT_KEY = /^(.*)\.port(\d+)$/;

const UART_STATES: readonly UartBackendState[] = ['open', 'hung-up', 'closed', 'slow'];
const VPORT_STATES: readonly VportBackendState[] = ['none', 'socket', 'socket-server', 'socket-client'];
const TRIGGERS = [1, 4, 8, 14] as const;
const DEVICE_KINDS = ['isa-serial', 'virtio-serial'] as const;
const VIRTIO_IRQS = ['intx', 'msix'] as const;

/**
 * `$schema` names the published JSON Schema (schema/migfuzz.schedule.v1.json) for editors; it
 * is checked to be a string and otherwise ignored (scheduleToJson leaves it out).
 */
const TOP_FIELDS = [
  '$schema',
  'format',
  'version',
  'seed',
  'machine',
  'src',
  'dst',
  'devices',
  'steps',
  'horizon',
];

// ---------------------------------------------------------------------------------------
// Entry points

export function parseSchedule(text: string, builds: BuildRegistry): Schedule {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new ScheduleError(oneLine(`schedule: not valid JSON (${errorText(e)})`));
  }
  return validateSchedule(doc, builds);
}

export function validateSchedule(doc: unknown, builds: BuildRegistry): Schedule {
  const input = new JsonReader('schedule', (line) => new ScheduleError(line));
  try {
    return readSchedule(input, doc, builds);
  } catch (e) {
    if (e instanceof ScheduleError) throw e;
    // Only exotic non-JSON input gets here (a throwing getter, a revoked Proxy): the
    // contract is that bad input never surfaces as anything but a ScheduleError.
    throw new ScheduleError(oneLine(`schedule: unreadable input (${errorText(e)})`));
  }
}

export function errorText(e: unknown): string {
  return e instanceof Error ? String(e.message).slice(0, 200) : typeof e;
}

// ---------------------------------------------------------------------------------------
// Objects and their fields: the happy path first (campaigns validate every schedule they run)

/**
 * input.object, without its copy into a prototype-less record when none is needed: a plain
 * object with no prototype key among its own is read as it is, since the readers look up only
 * field names they know (none of which Object.prototype has) or the object's own keys.
 * Anything else gets input.object's checks and errors.
 */
function object(input: JsonReader, v: unknown, path: string): JsonObject {
  if (isPlainObject(v)) {
    let plain = true;
    // for-in, not Object.keys (no array): inherited keys can only send v to input.object.
    for (const k in v) if (FORBIDDEN_KEYS.includes(k)) plain = false;
    if (plain) return v;
  }
  return input.object(v, path);
}

// ---------------------------------------------------------------------------------------
// The document

/** What the step and backend checks need: devices by name, in a Map (names are user text). */
type Devices = ReadonlyMap<string, DeviceSpec>;

function readSchedule(input: JsonReader, doc: unknown, builds: BuildRegistry): Schedule {
  const obj = object(input, doc, '');
  // Format and version first: a trace or a newer schedule must say so, not list unknown fields.
  if (input.need(obj, 'format', '', `"${SCHEDULE_FORMAT}"`) !== SCHEDULE_FORMAT) {
    input.fail('format', `expected "${SCHEDULE_FORMAT}", got ${got(obj.format, 'string')}`);
  }
  readVersion(input, input.need(obj, 'version', '', String(SCHEDULE_VERSION)));
  input.onlyFields(obj, '', TOP_FIELDS);
  if (obj.$schema !== undefined)
    input.string(obj.$schema, '$schema', /^[^\n]{1,1024}$/, 'a schema location (a string)');
  const seed =
    intIn(obj.seed, 0, U32_MAX) ??
    input.int(input.need(obj, 'seed', '', 'a u32 integer'), 'seed', 0, U32_MAX);
  const horizon = readHorizon(input, obj);
  const srcObj = object(input, input.need(obj, 'src', '', 'an object with build and backends'), 'src');
  const dstObj = object(input, input.need(obj, 'dst', '', 'an object with build and backends'), 'dst');
  const srcBuild = readBuild(input, srcObj, 'src', builds);
  const dstBuild = readBuild(input, dstObj, 'dst', builds);
  const machine = readMachine(input, obj, srcBuild, dstBuild);
  const devices = readDevices(input, input.need(obj, 'devices', '', 'an object of devices'));
  const src = readSide(input, srcObj, 'src', srcBuild, devices);
  const dst = readSide(input, dstObj, 'dst', dstBuild, devices);
  const steps = readSteps(input, input.need(obj, 'steps', '', 'an array of steps'), horizon, devices);
  return {
    format: SCHEDULE_FORMAT,
    version: SCHEDULE_VERSION,
    seed,
    machine,
    src,
    dst,
    devices: record(devices),
    steps,
    horizon,
  };
}

/** The devices as the schedule's record (names are checked: no prototype key). */
function record(devices: Devices): Record<string, DeviceSpec> {
  const out: Record<string, DeviceSpec> = {};
  for (const [name, d] of devices) out[name] = d;
  return out;
}

function readVersion(input: JsonReader, v: unknown): void {
  if (v === SCHEDULE_VERSION) return;
  if (typeof v === 'number' && Number.isInteger(v) && v > SCHEDULE_VERSION) {
    input.fail('version', `${v} is newer than this migfuzz supports (${SCHEDULE_VERSION})`);
  }
  input.fail('version', `expected ${SCHEDULE_VERSION}, got ${got(v, 'number')}`);
}

function readHorizon(input: JsonReader, obj: JsonObject): number {
  const horizon = intIn(obj.horizon, 1, MAX_HORIZON_NS);
  if (horizon !== undefined) return horizon;
  const expected = `an integer number of ns in [1, ${MAX_HORIZON_NS}]`;
  return input.int(input.need(obj, 'horizon', '', expected), 'horizon', 1, MAX_HORIZON_NS, expected);
}

function readBuild(input: JsonReader, side: JsonObject, path: string, builds: BuildRegistry): Build {
  input.onlyFields(side, path, ['build', 'backends']);
  const name = input.need(side, 'build', path, 'a build name');
  const p = fieldPath(path, 'build');
  if (typeof name !== 'string') input.fail(p, `expected a build name, got ${typeName(name)}`);
  const build = builds.get(name);
  if (build === undefined) input.fail(p, `unknown build ${quote(name)}${didYouMean(name, builds.keys())}`);
  return build;
}

function readMachine(input: JsonReader, obj: JsonObject, src: Build, dst: Build): string {
  const name = input.need(obj, 'machine', '', 'a machine type');
  if (typeof name !== 'string') input.fail('machine', `expected a machine type, got ${typeName(name)}`);
  if (findMachine(src, name) !== undefined && findMachine(dst, name) !== undefined) return name;
  const lacking = (src === dst ? [src] : [src, dst]).filter((b) => findMachine(b, name) === undefined);
  const common = src.machines.filter((m) => findMachine(dst, m.name) !== undefined);
  if (lacking.length > 0 && common.length === 0) {
    input.fail(
      'machine',
      `${src.name} and ${dst.name} have no machine type in common: no migration between them`,
    );
  }
  if (lacking.length > 0) {
    const offers = lacking.map((b) => `${b.name} offers ${b.machines.map((m) => m.name).join(', ')}`);
    input.fail('machine', `${quote(name)} is not offered by both builds (${offers.join('; ')})`);
  }
  return name;
}

// ---------------------------------------------------------------------------------------
// Devices

function readDevices(input: JsonReader, v: unknown): Devices {
  const obj = object(input, v, 'devices');
  const names = Object.keys(obj);
  if (names.length > MAX_DEVICES) {
    input.fail('devices', `${names.length} devices, at most ${MAX_DEVICES} allowed`);
  }
  const devices = new Map<string, DeviceSpec>();
  for (const name of names) {
    if (!DEVICE_NAME.test(name)) {
      input.fail('devices', `invalid device name ${quote(name)} (expected ${DEVICE_NAME.source})`);
    }
    const device = readDevice(input, obj[name], fieldPath('devices', name));
    if (device.kind === 'isa-serial') checkIrqFree(input, devices, device.irq, name);
    devices.set(name, device);
  }
  return devices;
}

function readDevice(input: JsonReader, v: unknown, path: string): DeviceSpec {
  const obj = object(input, v, path);
  const kind =
    choice(obj.kind, DEVICE_KINDS) ??
    input.oneOf(input.need(obj, 'kind', path, 'a device kind'), fieldPath(path, 'kind'), DEVICE_KINDS);
  if (kind === 'isa-serial') {
    input.onlyFields(obj, path, ['kind', 'irq', 'guestOpen']);
    // Not 2: on the PC that is the i8259 cascade input.
    const irq =
      intIn(obj.irq, 3, 15) ??
      input.int(input.need(obj, 'irq', path, 'an ISA IRQ in [3, 15]'), fieldPath(path, 'irq'), 3, 15);
    const guestOpen =
      obj.guestOpen === undefined ? true : input.bool(obj.guestOpen, fieldPath(path, 'guestOpen'));
    return { kind, irq, guestOpen };
  }
  input.onlyFields(obj, path, ['kind', 'irq', 'ports']);
  const irq =
    choice(obj.irq, VIRTIO_IRQS) ??
    input.oneOf(input.need(obj, 'irq', path, '"intx" or "msix"'), fieldPath(path, 'irq'), VIRTIO_IRQS);
  const ports = readPorts(
    input,
    input.need(obj, 'ports', path, 'an array of ports'),
    fieldPath(path, 'ports'),
  );
  return { kind, irq, ports };
}

function checkIrqFree(input: JsonReader, devices: Devices, irq: number, name: string): void {
  for (const [other, d] of devices) {
    if (d.kind === 'isa-serial' && d.irq === irq) {
      input.fail(fieldPath(fieldPath('devices', name), 'irq'), `irq ${irq} is already used by ${other}`);
    }
  }
}

function readPorts(input: JsonReader, v: unknown, path: string): VirtioSerialPortSpec[] {
  const ports: VirtioSerialPortSpec[] = [];
  input.array(v, path, MAX_PORTS, 'ports').forEach((entry, i) => {
    const port = readPort(input, entry, indexPath(path, i));
    const twin = ports.findIndex((p) => p.id === port.id);
    if (twin >= 0) input.fail(fieldPath(indexPath(path, i), 'id'), `duplicate port id ${port.id}`);
    // QEMU refuses a second port with the same name ("A port already exists by name").
    const named = ports.findIndex((p) => port.name !== undefined && p.name === port.name);
    if (named >= 0) {
      input.fail(fieldPath(indexPath(path, i), 'name'), `duplicate port name ${quote(port.name ?? '')}`);
    }
    ports.push(port);
  });
  return ports;
}

function readPort(input: JsonReader, v: unknown, path: string): VirtioSerialPortSpec {
  const obj = object(input, v, path);
  input.onlyFields(obj, path, ['id', 'name', 'console']);
  // Port 0 is the device's own console port: not declared, not user-addressable.
  const id =
    intIn(obj.id, 1, MAX_PORTS) ??
    input.int(
      input.need(obj, 'id', path, `a port id in [1, ${MAX_PORTS}]`),
      fieldPath(path, 'id'),
      1,
      MAX_PORTS,
    );
  const port: VirtioSerialPortSpec = { id };
  if (obj.name !== undefined) {
    port.name = input.string(
      obj.name,
      fieldPath(path, 'name'),
      PORT_NAME,
      'a string of 1 to 64 printable ASCII characters',
    );
  }
  if (obj.console !== undefined) port.console = input.bool(obj.console, fieldPath(path, 'console'));
  return port;
}

// ---------------------------------------------------------------------------------------
// Sides: build and initial backends

function readSide(
  input: JsonReader,
  side: JsonObject,
  path: string,
  build: Build,
  devices: Devices,
): SideSpec {
  const backends: SideSpec['backends'] = {};
  // Absent means "every backend at its default", the same as `{}`.
  if (side.backends === undefined) return { build: build.name, backends };
  const bpath = fieldPath(path, 'backends');
  const obj = object(input, side.backends, bpath);
  for (const key of Object.keys(obj)) {
    const states = backendKind(input, key, bpath, devices) === 'uart' ? UART_STATES : VPORT_STATES;
    // Safe: prototype keys were rejected by object().
    backends[key] =
      choice(obj[key], states) ??
      input.oneOf<UartBackendState | VportBackendState>(obj[key], fieldPath(bpath, key), states);
  }
  return { build: build.name, backends };
}

/** A backend key names a UART device (`serial0`) or a virtio-serial port (`vser0.port1`). */
function backendKind(input: JsonReader, key: string, bpath: string, devices: Devices): 'uart' | 'vport' {
  const device = devices.get(key);
  if (device?.kind === 'isa-serial') return 'uart';
  const path = fieldPath(bpath, key);
  if (device !== undefined) {
    input.fail(path, `${key} is a virtio-serial device: name a port as "${key}.portN"`);
  }
  const m = PORT_KEY.exec(key);
  if (m === null) input.fail(path, `no device ${quote(key)}`);
  const [, devName = '', id = ''] = m;
  const owner = devices.get(devName);
  if (owner === undefined)
    input.fail(path, `no device ${quote(devName)}${didYouMean(devName, devices.keys())}`);
  if (owner.kind === 'isa-serial') input.fail(path, `${devName} is an isa-serial device and has no ports`);
  if (!owner.ports.some((p) => String(p.id) === id)) input.fail(path, `no port ${id} on ${devName}`);
  return 'vport';
}

// ---------------------------------------------------------------------------------------
// Steps

type StepField =
  | 'port'
  | 'data'
  | 'fifo'
  | 'trigger'
  | 'ier'
  | 'lcr'
  | 'divider'
  | 'state'
  | 'downtime'
  | 'autostart'
  | 'hostile';

interface StepShape {
  /** Which device `dev` must name; absent: the step has no `dev`. */
  dev?: DeviceSpec['kind'] | 'any';
  required: readonly StepField[];
  optional: readonly StepField[];
}

const UART = 'isa-serial';
const VPORT = 'virtio-serial';
const NO_FIELDS: readonly StepField[] = [];
const PORT_ONLY: readonly StepField[] = ['port'];

/** docs/schedule.md's step table, as data; `readStep` builds every step from it. */
const STEP_SHAPES: ReadonlyMap<string, StepShape> = new Map<StepKind, StepShape>([
  [
    'guest.uart.config',
    { dev: UART, required: NO_FIELDS, optional: ['fifo', 'trigger', 'ier', 'lcr', 'divider'] },
  ],
  ['guest.uart.write', { dev: UART, required: ['data'], optional: NO_FIELDS }],
  ['guest.vport.open', { dev: VPORT, required: PORT_ONLY, optional: NO_FIELDS }],
  ['guest.vport.close', { dev: VPORT, required: PORT_ONLY, optional: NO_FIELDS }],
  ['guest.vport.write', { dev: VPORT, required: ['port', 'data'], optional: NO_FIELDS }],
  ['host.uart.send', { dev: UART, required: ['data'], optional: NO_FIELDS }],
  ['host.uart.backend', { dev: UART, required: ['state'], optional: NO_FIELDS }],
  ['host.vport.connect', { dev: VPORT, required: PORT_ONLY, optional: NO_FIELDS }],
  ['host.vport.disconnect', { dev: VPORT, required: PORT_ONLY, optional: NO_FIELDS }],
  ['host.vport.send', { dev: VPORT, required: ['port', 'data'], optional: NO_FIELDS }],
  ['migrate', { required: NO_FIELDS, optional: ['downtime', 'autostart', 'hostile'] }],
  ['vm.stop', { required: NO_FIELDS, optional: NO_FIELDS }],
  ['vm.cont', { required: NO_FIELDS, optional: NO_FIELDS }],
  ['guest.irq.mask', { dev: 'any', required: NO_FIELDS, optional: NO_FIELDS }],
  ['guest.irq.unmask', { dev: 'any', required: NO_FIELDS, optional: NO_FIELDS }],
]);

/** Per step kind, every field it may carry (built once: readStep runs for every step). */
const STEP_FIELDS: ReadonlyMap<string, readonly string[]> = new Map(
  [...STEP_SHAPES].map(([kind, shape]) => [
    kind,
    ['at', 'do', ...(shape.dev ? ['dev'] : []), ...shape.required, ...shape.optional],
  ]),
);

/**
 * An integer in [min, max] (with -0 as 0), or undefined. The readers check with it first and
 * build their paths and messages only for a value that fails: campaigns validate every
 * schedule they run.
 */
function intIn(v: unknown, min: number, max: number): number | undefined {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) return undefined;
  return v === 0 ? 0 : v;
}

/** `v` when it is one of `values`, else undefined: input.oneOf's happy path, as intIn is input.int's. */
function choice<T extends string | number>(v: unknown, values: readonly T[]): T | undefined {
  return values.includes(v as T) ? (v as T) : undefined;
}

const FIELD_EXPECTED: Record<StepField, string> = {
  port: `a port id (an integer in [1, ${MAX_PORTS}])`,
  data: 'a string or an array of byte values',
  fifo: 'true or false',
  trigger: listOf(TRIGGERS),
  ier: 'an integer in [0, 15]',
  lcr: 'an integer in [0, 255]',
  divider: 'an integer in [0, 65535]',
  state: listOf(UART_STATES),
  downtime: `an integer number of ns in [0, ${MAX_DOWNTIME_NS}]`,
  autostart: 'true or false',
  hostile: 'an object: device name → { QEMU field name: integer }',
};

function readSteps(input: JsonReader, v: unknown, horizon: number, devices: Devices): Step[] {
  const items = input.array(v, 'steps', MAX_STEPS, 'steps');
  const steps: Step[] = [];
  items.forEach((item, i) => {
    const step = readStep(input, item, indexPath('steps', i), horizon, devices);
    const prev = steps[i - 1];
    if (prev !== undefined && step.at < prev.at) {
      input.fail(
        `steps[${i}].at`,
        `${step.at} is before steps[${i - 1}].at (${prev.at}): steps must be sorted`,
      );
    }
    steps.push(step);
  });
  return steps;
}

function readStep(input: JsonReader, v: unknown, path: string, horizon: number, devices: Devices): Step {
  const obj = object(input, v, path);
  const kind = input.need(obj, 'do', path, 'a step kind');
  if (typeof kind !== 'string') {
    input.fail(fieldPath(path, 'do'), `expected a step kind, got ${typeName(kind)}`);
  }
  const shape = STEP_SHAPES.get(kind);
  if (shape === undefined)
    input.fail(path, `unknown step ${quote(kind)}${didYouMean(kind, STEP_SHAPES.keys())}`);
  input.onlyFields(obj, path, STEP_FIELDS.get(kind)!);
  const at = intIn(obj.at, 0, horizon) ?? readAt(input, obj, path, horizon);
  // Built from the shape table, which mirrors the Step union in types.ts.
  const step: Record<string, unknown> = { at, do: kind };
  let device: DeviceSpec | undefined;
  if (shape.dev !== undefined) {
    step.dev = readDev(input, obj, path, kind, shape.dev, devices);
    device = devices.get(step.dev as string);
  }
  const ctx: FieldContext = { input, path, device, devName: step.dev as string | undefined, devices };
  for (const f of shape.required)
    step[f] = readStepField(ctx, f, input.need(obj, f, path, FIELD_EXPECTED[f]));
  for (const f of shape.optional) if (obj[f] !== undefined) step[f] = readStepField(ctx, f, obj[f]);
  if (kind === 'migrate') {
    step.downtime ??= DEFAULT_DOWNTIME_NS;
    step.autostart ??= true;
  }
  return step as Step;
}

function readAt(input: JsonReader, obj: JsonObject, path: string, horizon: number): number {
  const expected = `an integer number of ns in [0, ${horizon}]`;
  return input.int(input.need(obj, 'at', path, expected), fieldPath(path, 'at'), 0, horizon, expected);
}

function readDev(
  input: JsonReader,
  obj: JsonObject,
  path: string,
  kind: string,
  want: DeviceSpec['kind'] | 'any',
  devices: Devices,
): string {
  const given = obj.dev;
  const found = typeof given === 'string' ? devices.get(given) : undefined;
  if (found !== undefined && (want === 'any' || found.kind === want)) return given as string;
  const expected = want === 'any' ? 'a device name' : `the name of ${aKind(want)} device`;
  const p = fieldPath(path, 'dev');
  const name = input.need(obj, 'dev', path, expected);
  if (typeof name !== 'string') input.fail(p, `expected ${expected}, got ${typeName(name)}`);
  const device = devices.get(name);
  if (device === undefined) {
    const known =
      devices.size === 0 ? 'no devices are declared' : `devices: ${[...devices.keys()].join(', ')}`;
    input.fail(p, `no device ${quote(name)}${didYouMean(name, devices.keys())} (${known})`);
  }
  if (want !== 'any' && device.kind !== want) {
    input.fail(p, `${name} is ${aKind(device.kind)} device, ${kind} needs ${aKind(want)} device`);
  }
  return name;
}

/** `an isa-serial` / `a virtio-serial`. */
function aKind(kind: DeviceSpec['kind']): string {
  return kind === 'isa-serial' ? 'an isa-serial' : 'a virtio-serial';
}

interface FieldContext {
  input: JsonReader;
  /** The step's path. */
  path: string;
  device: DeviceSpec | undefined;
  devName: string | undefined;
  devices: Devices;
}

function readStepField(ctx: FieldContext, field: StepField, v: unknown): unknown {
  const { input } = ctx;
  switch (field) {
    case 'port':
      if (typeof v === 'number' && (ctx.device as VirtioSerialDevice).ports.some((p) => p.id === v))
        return v === 0 ? 0 : v;
      break;
    case 'fifo':
    case 'autostart':
      if (typeof v === 'boolean') return v;
      break;
    case 'ier':
      return intIn(v, 0, 15) ?? input.int(v, fieldPath(ctx.path, field), 0, 15);
    case 'lcr':
      return intIn(v, 0, 255) ?? input.int(v, fieldPath(ctx.path, field), 0, 255);
    case 'divider':
      // 0 included: the model must survive a zero divisor
      return intIn(v, 0, 0xffff) ?? input.int(v, fieldPath(ctx.path, field), 0, 0xffff);
    case 'downtime':
      return (
        intIn(v, 0, MAX_DOWNTIME_NS) ??
        input.int(v, fieldPath(ctx.path, field), 0, MAX_DOWNTIME_NS, FIELD_EXPECTED.downtime)
      );
    case 'trigger':
      return choice(v, TRIGGERS) ?? input.oneOf(v, fieldPath(ctx.path, field), TRIGGERS);
    case 'state':
      return choice(v, UART_STATES) ?? input.oneOf(v, fieldPath(ctx.path, field), UART_STATES);
    case 'data':
      if (typeof v === 'string' && v.length >= 1 && v.length <= MAX_DATA_BYTES) {
        const bytes = asciiBytes(v);
        if (bytes !== null) return bytes;
      }
      break;
  }
  const p = fieldPath(ctx.path, field);
  switch (field) {
    case 'port':
      return readPortRef(ctx, v, p);
    case 'data':
      return readData(input, v, p);
    case 'fifo':
    case 'autostart':
      return input.bool(v, p);
    case 'hostile':
      return readHostile(ctx, v, p);
  }
}

/**
 * A migrate step's hostile source: per device, QEMU fields and their values (isa-serial: the
 * serial section's; virtio-serial: queue_sel).
 */
function readHostile(ctx: FieldContext, v: unknown, path: string): HostileEdits {
  const input: JsonReader = ctx.input; // explicitly typed, so its `never` narrows
  const obj = object(input, v, path);
  const out: HostileEdits = {};
  for (const [dev, fields] of Object.entries(obj)) {
    const p = fieldPath(path, dev);
    const d = ctx.devices.get(dev);
    if (d === undefined) input.fail(p, `no device ${quote(dev)}${didYouMean(dev, ctx.devices.keys())}`);
    const known = d.kind === UART ? HOSTILE_SERIAL_FIELDS : HOSTILE_VIRTIO_FIELDS;
    const what = d.kind === UART ? 'serial' : 'virtio-serial';
    const f = object(input, fields, p);
    const edits: Record<string, number> = {};
    for (const [name, value] of Object.entries(f)) {
      const field = known.get(name);
      if (field === undefined)
        input.fail(
          fieldPath(p, name),
          `not a ${what} field a hostile source can set${didYouMean(name, known.keys())} (${[...known.keys()].join(', ')})`,
        );
      edits[name] = input.int(value, fieldPath(p, name), field.min, field.max);
    }
    out[dev] = edits;
  }
  return out;
}

function readPortRef(ctx: FieldContext, v: unknown, path: string): number {
  const input: JsonReader = ctx.input; // explicitly typed, so its `never` narrows `v`
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    input.fail(path, `expected ${FIELD_EXPECTED.port}, got ${got(v, 'number')}`);
  }
  const id = v === 0 ? 0 : v;
  const ports = (ctx.device as VirtioSerialDevice).ports;
  if (!ports.some((p) => p.id === id)) {
    const why = id === 0 ? ' (port 0 is the console port, not user-addressable)' : '';
    input.fail(path, `no port ${id} on ${ctx.devName}${why}`);
  }
  return id;
}

const utf8Encoder = new TextEncoder();

function readData(input: JsonReader, v: unknown, path: string): Uint8Array {
  const bytes = toBytes(input, v, path);
  if (bytes.length < 1 || bytes.length > MAX_DATA_BYTES) {
    input.fail(path, `expected 1 to ${MAX_DATA_BYTES} bytes, got ${bytes.length}`);
  }
  return bytes;
}

/**
 * An ASCII string's bytes (what generated data is), or null for any other string: a plain
 * loop, cheaper than TextEncoder's call for the short strings of a schedule.
 */
function asciiBytes(v: string): Uint8Array | null {
  const bytes = new Uint8Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c >= 0x80) return null;
    bytes[i] = c;
  }
  return bytes;
}

function toBytes(input: JsonReader, v: unknown, path: string): Uint8Array {
  if (typeof v === 'string') {
    const ascii = asciiBytes(v);
    if (ascii !== null) return ascii;
    // A lone surrogate has no UTF-8 form; TextEncoder would silently turn it into U+FFFD.
    if (/\p{Cs}/u.test(v)) input.fail(path, 'string is not valid Unicode (it holds a lone surrogate)');
    return utf8Encoder.encode(v);
  }
  // Uint8Array (e.g. msgpack `bin` from a decoded trace) is bytes already; copy it plain.
  if (v instanceof Uint8Array) return new Uint8Array(v);
  if (!Array.isArray(v)) input.fail(path, `expected ${FIELD_EXPECTED.data}, got ${typeName(v)}`);
  if (v.length > MAX_DATA_BYTES) input.fail(path, `expected 1 to ${MAX_DATA_BYTES} bytes, got ${v.length}`);
  const bytes = new Uint8Array(v.length);
  for (let i = 0; i < v.length; i++) {
    bytes[i] =
      intIn(v[i], 0, 255) ??
      input.int(v[i], indexPath(path, i), 0, 255, 'a byte value (an integer in [0, 255])');
  }
  return bytes;
}
