import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { builtinRegistry } from '../../../src/model/migration/builds.js';
import { dataToJson, scheduleToJson } from '../../../src/model/schedule/to-json.js';
import { type Schedule, ScheduleError, type Step } from '../../../src/model/schedule/types.js';
import { parseSchedule, validateSchedule } from '../../../src/model/schedule/validate.js';

const builds = builtinRegistry();
/**
 * The two examples of the interface specification, copied here so the suite does not
 * depend on files outside the repository.
 */
const EXAMPLE_A = JSON.stringify(
  {
    format: 'migfuzz.schedule',
    version: 1,
    seed: 1,
    machine: 'pc-1.2',
    src: { build: 'qemu-1.2', backends: { 'vser0.port1': 'none' } },
    dst: { build: 'qemu-1.2', backends: { 'vser0.port1': 'socket' } },
    devices: {
      vser0: { kind: 'virtio-serial', irq: 'intx', ports: [{ id: 1, name: 'com.redhat.spice.0' }] },
    },
    steps: [
      { at: 1000000, do: 'guest.vport.open', dev: 'vser0', port: 1 },
      { at: 5000000, do: 'migrate' },
      { at: 15000000, do: 'host.vport.send', dev: 'vser0', port: 1, data: 'mouse event' },
    ],
    horizon: 50000000,
  },
  null,
  2,
);
const EXAMPLE_B = JSON.stringify(
  {
    format: 'migfuzz.schedule',
    version: 1,
    seed: 2,
    machine: 'rhel6.6.0',
    src: { build: 'rhel-7.4', backends: { serial0: 'hung-up' } },
    dst: { build: 'rhel-7.4', backends: { serial0: 'hung-up' } },
    devices: { serial0: { kind: 'isa-serial', irq: 4 } },
    steps: [
      { at: 500000, do: 'guest.uart.config', dev: 'serial0', fifo: true, trigger: 4, ier: 3 },
      { at: 1000000, do: 'guest.uart.write', dev: 'serial0', data: 'boot: ok\n' },
      { at: 4000000, do: 'migrate' },
    ],
    horizon: 30000000,
  },
  null,
  2,
);
const utf8 = new TextEncoder();

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Doc = { [key: string]: Json };

/** A valid schedule using every step kind; tests break one thing in it at a time. */
function baseDoc(): Doc {
  return {
    format: 'migfuzz.schedule',
    version: 1,
    seed: 7,
    machine: 'pc-1.1',
    src: { build: 'qemu-1.2', backends: { serial0: 'open', 'vser0.port1': 'none' } },
    dst: { build: 'qemu-1.3', backends: { serial0: 'slow', 'vser0.port3': 'socket' } },
    devices: {
      serial0: { kind: 'isa-serial', irq: 4 },
      vser0: {
        kind: 'virtio-serial',
        irq: 'intx',
        ports: [
          { id: 1, name: 'com.redhat.spice.0' },
          { id: 3, console: true },
        ],
      },
    },
    steps: [
      {
        at: 0,
        do: 'guest.uart.config',
        dev: 'serial0',
        fifo: true,
        trigger: 14,
        ier: 15,
        lcr: 3,
        divider: 0,
      },
      { at: 500, do: 'guest.uart.write', dev: 'serial0', data: 'hi' },
      { at: 1000, do: 'guest.vport.open', dev: 'vser0', port: 1 },
      { at: 1000, do: 'guest.vport.write', dev: 'vser0', port: 3, data: [0, 255] },
      { at: 2000, do: 'host.uart.send', dev: 'serial0', data: 'x' },
      { at: 2000, do: 'host.uart.backend', dev: 'serial0', state: 'hung-up' },
      { at: 3000, do: 'host.vport.connect', dev: 'vser0', port: 1 },
      { at: 3000, do: 'host.vport.send', dev: 'vser0', port: 1, data: 'é' },
      { at: 4000, do: 'migrate' },
      { at: 5000, do: 'vm.stop' },
      { at: 6000, do: 'vm.cont' },
      { at: 7000, do: 'guest.irq.mask', dev: 'vser0' },
      { at: 8000, do: 'guest.irq.unmask', dev: 'serial0' },
      { at: 9000, do: 'host.vport.disconnect', dev: 'vser0', port: 1 },
      { at: 9000, do: 'guest.vport.close', dev: 'vser0', port: 1 },
      { at: 10000, do: 'migrate', downtime: 0, autostart: false },
    ],
    horizon: 10000,
  };
}

// biome-ignore lint/suspicious/noExplicitAny: tests poke at arbitrary places of the document
type Loose = any;

/** The message of the ScheduleError that validating `doc` after `edit` throws. */
function errorOf(edit: (doc: Loose) => void): string {
  const doc = baseDoc();
  edit(doc);
  return messageOf(() => validateSchedule(doc, builds));
}

function messageOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof ScheduleError) return e.message;
    throw e;
  }
  throw new Error('expected a ScheduleError');
}

/** An own property even for `__proto__` (plain assignment would set the prototype instead). */
function setOwn(obj: object, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

describe('valid schedules', () => {
  it('parses bug A and normalises it', () => {
    const s = parseSchedule(EXAMPLE_A, builds);
    expect(s.machine).toBe('pc-1.2');
    expect(s.src).toEqual({ build: 'qemu-1.2', backends: { 'vser0.port1': 'none' } });
    expect(s.dst.backends).toEqual({ 'vser0.port1': 'socket' });
    expect(s.devices).toEqual({
      vser0: { kind: 'virtio-serial', irq: 'intx', ports: [{ id: 1, name: 'com.redhat.spice.0' }] },
    });
    expect(s.steps[1]).toEqual({ at: 5_000_000, do: 'migrate', downtime: 300_000, autostart: true });
    expect(s.steps[2]).toEqual({
      at: 15_000_000,
      do: 'host.vport.send',
      dev: 'vser0',
      port: 1,
      data: utf8.encode('mouse event'),
    });
    expect(s.horizon).toBe(50_000_000);
  });

  it('parses bug B and leaves absent optional fields absent', () => {
    const s = parseSchedule(EXAMPLE_B, builds);
    expect(s.seed).toBe(2);
    expect(s.devices).toEqual({ serial0: { kind: 'isa-serial', irq: 4, guestOpen: true } });
    expect(s.steps[0]).toStrictEqual({
      at: 500_000,
      do: 'guest.uart.config',
      dev: 'serial0',
      fifo: true,
      trigger: 4,
      ier: 3,
    });
    expect(Object.keys(s.steps[0] ?? {})).not.toContain('lcr');
    expect(s.steps[1]).toEqual({
      at: 1_000_000,
      do: 'guest.uart.write',
      dev: 'serial0',
      data: utf8.encode('boot: ok\n'),
    });
  });

  it('accepts every step kind, keeps file order for equal times, and normalises data', () => {
    const s = validateSchedule(baseDoc(), builds);
    expect(s.steps.map((st) => st.do)).toEqual((baseDoc().steps as Loose[]).map((st) => st.do));
    expect(s.steps[0]).toMatchObject({ divider: 0, trigger: 14 });
    expect(s.steps[3]).toEqual({
      at: 1000,
      do: 'guest.vport.write',
      dev: 'vser0',
      port: 3,
      data: new Uint8Array([0, 255]),
    });
    expect((s.steps[7] as { data: Uint8Array }).data).toEqual(new Uint8Array([0xc3, 0xa9]));
    expect(s.steps[15]).toEqual({ at: 10000, do: 'migrate', downtime: 0, autostart: false });
    expect((s.devices.vser0 as Loose).ports).toStrictEqual([
      { id: 1, name: 'com.redhat.spice.0' },
      { id: 3, console: true },
    ]);
    expect(Object.keys(s.devices)).toEqual(['serial0', 'vser0']);
  });

  it('accepts no devices, no steps and no backends object', () => {
    const s = validateSchedule(
      { ...baseDoc(), devices: {}, steps: [], src: { build: 'qemu-1.2' }, dst: { build: 'qemu-1.2' } },
      builds,
    );
    expect(s.src).toEqual({ build: 'qemu-1.2', backends: {} });
    expect(s.steps).toEqual([]);
  });

  it('accepts bytes given as a Uint8Array (a decoded msgpack bin) and copies them', () => {
    const doc: Loose = baseDoc();
    const bytes = new Uint8Array([1, 2, 3]);
    doc.steps[1].data = bytes;
    const data = (validateSchedule(doc, builds).steps[1] as { data: Uint8Array }).data;
    expect(data).toEqual(bytes);
    expect(data).not.toBe(bytes);
  });
});

describe('schedule errors: one line naming where and what', () => {
  const cases: [string, (d: Loose) => void, string][] = [
    [
      'format missing',
      (d) => Object.assign(d, { format: undefined }),
      'format: missing (expected "migfuzz.schedule")',
    ],
    [
      'wrong format',
      (d) => Object.assign(d, { format: 'migfuzz.trace' }),
      'format: expected "migfuzz.schedule", got "migfuzz.trace"',
    ],
    [
      'newer version',
      (d) => Object.assign(d, { version: 2 }),
      'version: 2 is newer than this migfuzz supports (1)',
    ],
    ['bad version', (d) => Object.assign(d, { version: '1' }), 'version: expected 1, got string'],
    ['unknown top field', (d) => Object.assign(d, { seeed: 1 }), 'schedule: unexpected field "seeed"'],
    [
      'seed negative',
      (d) => Object.assign(d, { seed: -1 }),
      'seed: expected an integer in [0, 4294967295], got -1',
    ],
    [
      'seed too big',
      (d) => Object.assign(d, { seed: 2 ** 32 }),
      'seed: expected an integer in [0, 4294967295], got 4294967296',
    ],
    [
      'seed fraction',
      (d) => Object.assign(d, { seed: 1.5 }),
      'seed: expected an integer in [0, 4294967295], got 1.5',
    ],
    [
      'horizon negative',
      (d) => Object.assign(d, { horizon: -5 }),
      'horizon: expected an integer number of ns in [1, 10000000000], got -5',
    ],
    [
      'horizon zero',
      (d) => Object.assign(d, { horizon: 0 }),
      'horizon: expected an integer number of ns in [1, 10000000000], got 0',
    ],
    [
      'horizon > 10 s',
      (d) => Object.assign(d, { horizon: 1e10 + 1 }),
      'horizon: expected an integer number of ns in [1, 10000000000], got 10000000001',
    ],
    [
      'horizon string',
      (d) => Object.assign(d, { horizon: '5' }),
      'horizon: expected an integer number of ns in [1, 10000000000], got string',
    ],
    [
      'horizon missing',
      (d) => delete d.horizon,
      'horizon: missing (expected an integer number of ns in [1, 10000000000])',
    ],
    ['unknown build', (d) => (d.src.build = 'qemu-0.9'), 'src.build: unknown build "qemu-0.9"'],
    ['build not a string', (d) => (d.dst.build = 12), 'dst.build: expected a build name, got number'],
    ['src typo', (d) => (d.src.bakends = {}), 'src: unexpected field "bakends"'],
    [
      'machine not on both',
      (d) => Object.assign(d, { machine: 'pc-1.3' }),
      'machine: "pc-1.3" is not offered by both builds (qemu-1.2 offers pc-0.10, pc-0.11, pc-0.12, pc-0.13, pc-0.14, pc-0.15, pc-1.0, pc-1.1, pc-1.2)',
    ],
    [
      'machine on neither',
      (d) => Object.assign(d, { machine: 'pc-1.3', src: { build: 'qemu-1.2' }, dst: { build: 'qemu-1.2' } }),
      'machine: "pc-1.3" is not offered by both builds (qemu-1.2 offers pc-0.10, pc-0.11, pc-0.12, pc-0.13, pc-0.14, pc-0.15, pc-1.0, pc-1.1, pc-1.2)',
    ],
    [
      'bad device name',
      (d) => (d.devices.Serial1 = { kind: 'isa-serial', irq: 3 }),
      'devices: invalid device name "Serial1" (expected ^[a-z][a-z0-9_-]{0,31}$)',
    ],
    [
      'too many devices',
      (d) => {
        for (let i = 1; i <= 7; i++) d.devices[`v${i}`] = { kind: 'virtio-serial', irq: 'msix', ports: [] };
      },
      'devices: 9 devices, at most 8 allowed',
    ],
    [
      'unknown kind',
      (d) => (d.devices.serial0.kind = 'pl011'),
      'devices.serial0.kind: expected "isa-serial" or "virtio-serial", got "pl011"',
    ],
    [
      'isa irq 2',
      (d) => (d.devices.serial0.irq = 2),
      'devices.serial0.irq: expected an integer in [3, 15], got 2',
    ],
    [
      'isa irq shared',
      (d) => (d.devices.serial1 = { kind: 'isa-serial', irq: 4 }),
      'devices.serial1.irq: irq 4 is already used by serial0',
    ],
    ['isa with ports', (d) => (d.devices.serial0.ports = []), 'devices.serial0: unexpected field "ports"'],
    [
      'virtio irq',
      (d) => (d.devices.vser0.irq = 5),
      'devices.vser0.irq: expected "intx" or "msix", got number',
    ],
    [
      'ports missing',
      (d) => delete d.devices.vser0.ports,
      'devices.vser0.ports: missing (expected an array of ports)',
    ],
    [
      'too many ports',
      (d) => (d.devices.vser0.ports = Array.from({ length: 31 }, (_, i) => ({ id: i + 1 }))),
      'devices.vser0.ports: 31 ports, at most 30 allowed',
    ],
    [
      'duplicate port id',
      (d) => (d.devices.vser0.ports[1].id = 1),
      'devices.vser0.ports[1].id: duplicate port id 1',
    ],
    [
      'port id 0',
      (d) => (d.devices.vser0.ports[0].id = 0),
      'devices.vser0.ports[0].id: expected an integer in [1, 30], got 0',
    ],
    [
      'port id 31',
      (d) => (d.devices.vser0.ports[0].id = 31),
      'devices.vser0.ports[0].id: expected an integer in [1, 30], got 31',
    ],
    [
      'port name too long',
      (d) => (d.devices.vser0.ports[0].name = 'a'.repeat(65)),
      `devices.vser0.ports[0].name: expected a string of 1 to 64 printable ASCII characters, got "${'a'.repeat(40)}"…`,
    ],
    [
      'port name not ASCII',
      (d) => (d.devices.vser0.ports[0].name = 'tab\there'),
      'devices.vser0.ports[0].name: expected a string of 1 to 64 printable ASCII characters, got "tab\\there"',
    ],
    [
      'duplicate port name',
      (d) => (d.devices.vser0.ports[1].name = 'com.redhat.spice.0'),
      'devices.vser0.ports[1].name: duplicate port name "com.redhat.spice.0"',
    ],
    [
      'port console',
      (d) => (d.devices.vser0.ports[1].console = 1),
      'devices.vser0.ports[1].console: expected true or false, got number',
    ],
    [
      'backend for no device',
      (d) => (d.src.backends.serial1 = 'open'),
      'src.backends.serial1: no device "serial1"',
    ],
    [
      'backend on a virtio device',
      (d) => (d.src.backends.vser0 = 'socket'),
      'src.backends.vser0: vser0 is a virtio-serial device: name a port as "vser0.portN"',
    ],
    [
      'backend on a missing port',
      (d) => (d.dst.backends['vser0.port2'] = 'socket'),
      'dst.backends["vser0.port2"]: no port 2 on vser0',
    ],
    [
      'backend port on a uart',
      (d) => (d.dst.backends['serial0.port1'] = 'socket'),
      'dst.backends["serial0.port1"]: serial0 is an isa-serial device and has no ports',
    ],
    [
      'uart backend state',
      (d) => (d.src.backends.serial0 = 'socket'),
      'src.backends.serial0: expected "open", "hung-up", "closed" or "slow", got "socket"',
    ],
    [
      'vport backend state',
      (d) => (d.src.backends['vser0.port1'] = 'open'),
      'src.backends["vser0.port1"]: expected "none", "socket", "socket-server" or "socket-client", got "open"',
    ],
    ['steps not an array', (d) => (d.steps = {}), 'steps: expected an array of steps, got object'],
    [
      'too many steps',
      (d) => (d.steps = Array.from({ length: 10_001 }, () => ({ at: 0, do: 'vm.stop' }))),
      'steps: 10001 steps, at most 10000 allowed',
    ],
    ['unknown step', (d) => (d.steps[0].do = 'guest.foo'), 'steps[0]: unknown step "guest.foo"'],
    ['step without do', (d) => delete d.steps[0].do, 'steps[0].do: missing (expected a step kind)'],
    ['step not an object', (d) => (d.steps[2] = 'migrate'), 'steps[2]: expected an object, got string'],
    ['unexpected step field', (d) => (d.steps[4].port = 1), 'steps[4]: unexpected field "port"'],
    ['vm.stop takes no dev', (d) => (d.steps[9].dev = 'serial0'), 'steps[9]: unexpected field "dev"'],
    [
      'unsorted',
      (d) => (d.steps[2].at = 100),
      'steps[2].at: 100 is before steps[1].at (500): steps must be sorted',
    ],
    [
      'at after horizon',
      (d) => (d.steps[15].at = 10001),
      'steps[15].at: expected an integer number of ns in [0, 10000], got 10001',
    ],
    [
      'at missing',
      (d) => delete d.steps[0].at,
      'steps[0].at: missing (expected an integer number of ns in [0, 10000])',
    ],
    [
      'at fraction',
      (d) => (d.steps[0].at = 0.5),
      'steps[0].at: expected an integer number of ns in [0, 10000], got 0.5',
    ],
    [
      'dev missing',
      (d) => delete d.steps[1].dev,
      'steps[1].dev: missing (expected the name of an isa-serial device)',
    ],
    [
      'no such dev',
      (d) => (d.steps[1].dev = 'serial9'),
      'steps[1].dev: no device "serial9" (devices: serial0, vser0)',
    ],
    [
      'uart step on a virtio device',
      (d) => (d.steps[1].dev = 'vser0'),
      'steps[1].dev: vser0 is a virtio-serial device, guest.uart.write needs an isa-serial device',
    ],
    [
      'vport step on a uart',
      (d) => (d.steps[2].dev = 'serial0'),
      'steps[2].dev: serial0 is an isa-serial device, guest.vport.open needs a virtio-serial device',
    ],
    ['no such port', (d) => (d.steps[3].port = 2), 'steps[3].port: no port 2 on vser0'],
    [
      'port 0',
      (d) => (d.steps[2].port = 0),
      'steps[2].port: no port 0 on vser0 (port 0 is the console port, not user-addressable)',
    ],
    [
      'port as string',
      (d) => (d.steps[2].port = '1'),
      'steps[2].port: expected a port id (an integer in [1, 30]), got string',
    ],
    [
      'port missing',
      (d) => delete d.steps[13].port,
      'steps[13].port: missing (expected a port id (an integer in [1, 30]))',
    ],
    [
      'data type',
      (d) => (d.steps[1].data = 5),
      'steps[1].data: expected a string or an array of byte values, got number',
    ],
    ['data empty', (d) => (d.steps[1].data = ''), 'steps[1].data: expected 1 to 4096 bytes, got 0'],
    ['data empty array', (d) => (d.steps[1].data = []), 'steps[1].data: expected 1 to 4096 bytes, got 0'],
    [
      'data too long',
      (d) => (d.steps[1].data = 'é'.repeat(2049)),
      'steps[1].data: expected 1 to 4096 bytes, got 4098',
    ],
    [
      'data array too long',
      (d) => (d.steps[1].data = Array(4097).fill(1)),
      'steps[1].data: expected 1 to 4096 bytes, got 4097',
    ],
    [
      'data byte',
      (d) => (d.steps[3].data = [1, 256]),
      'steps[3].data[1]: expected a byte value (an integer in [0, 255]), got 256',
    ],
    [
      'data byte type',
      (d) => (d.steps[3].data = [1, '2']),
      'steps[3].data[1]: expected a byte value (an integer in [0, 255]), got string',
    ],
    [
      'data lone surrogate',
      (d) => (d.steps[1].data = 'a\ud800'),
      'steps[1].data: string is not valid Unicode (it holds a lone surrogate)',
    ],
    ['fifo type', (d) => (d.steps[0].fifo = 'yes'), 'steps[0].fifo: expected true or false, got string'],
    ['trigger', (d) => (d.steps[0].trigger = 2), 'steps[0].trigger: expected 1, 4, 8 or 14, got 2'],
    ['ier', (d) => (d.steps[0].ier = 16), 'steps[0].ier: expected an integer in [0, 15], got 16'],
    ['lcr', (d) => (d.steps[0].lcr = 256), 'steps[0].lcr: expected an integer in [0, 255], got 256'],
    [
      'divider',
      (d) => (d.steps[0].divider = 65536),
      'steps[0].divider: expected an integer in [0, 65535], got 65536',
    ],
    [
      'divider negative',
      (d) => (d.steps[0].divider = -1),
      'steps[0].divider: expected an integer in [0, 65535], got -1',
    ],
    [
      'backend state',
      (d) => (d.steps[5].state = 'gone'),
      'steps[5].state: expected "open", "hung-up", "closed" or "slow", got "gone"',
    ],
    [
      'downtime',
      (d) => (d.steps[15].downtime = 1e9 + 1),
      'steps[15].downtime: expected an integer number of ns in [0, 1000000000], got 1000000001',
    ],
    [
      'autostart',
      (d) => (d.steps[15].autostart = null),
      'steps[15].autostart: expected true or false, got null',
    ],
    [
      'irq mask on no device',
      (d) => (d.steps[11].dev = 'x'),
      'steps[11].dev: no device "x" (devices: serial0, vser0)',
    ],
  ];

  it.each(cases)('%s', (_name, edit, message) => {
    expect(errorOf(edit)).toBe(message);
  });

  it('names the lack of devices when a step needs one', () => {
    const doc: Loose = { ...baseDoc(), devices: {}, src: { build: 'qemu-1.2' }, dst: { build: 'qemu-1.2' } };
    doc.steps = [{ at: 0, do: 'guest.irq.mask', dev: 'serial0' }];
    expect(messageOf(() => validateSchedule(doc, builds))).toBe(
      'steps[0].dev: no device "serial0" (no devices are declared)',
    );
  });

  it('rejects a document that is not an object', () => {
    expect(messageOf(() => validateSchedule([1], builds))).toBe('schedule: expected an object, got array');
    expect(messageOf(() => validateSchedule(null, builds))).toBe('schedule: expected an object, got null');
    expect(messageOf(() => validateSchedule(new Map(), builds))).toBe(
      'schedule: expected an object, got non-plain object',
    );
  });

  it('reports JSON syntax errors on one line', () => {
    expect(messageOf(() => parseSchedule('{"a": }', builds))).toMatch(/^schedule: not valid JSON \(.+\)$/);
    const multiLine = messageOf(() => parseSchedule('{"a":\n}', builds));
    expect(multiLine).toMatch(/^schedule: not valid JSON \(/);
    expect(multiLine).not.toMatch(/\n/);
    expect(messageOf(() => parseSchedule('', builds))).toBe(
      'schedule: not valid JSON (Unexpected end of JSON input)',
    );
  });

  it('cuts and escapes long or odd keys in messages', () => {
    const key = `x\n${'y'.repeat(100)}`;
    expect(errorOf((d) => (d[key] = 1))).toBe(`schedule: unexpected field "x\\n${'y'.repeat(38)}"…`);
    expect(errorOf((d) => (d['a\u2028b'] = 1))).toBe('schedule: unexpected field "a\\u2028b"');
  });
});

describe('prototype keys', () => {
  const places: [string, (d: Loose) => object, string][] = [
    ['the root', (d) => d, 'schedule'],
    ['a side', (d) => d.src, 'src'],
    ['backends', (d) => d.src.backends, 'src.backends'],
    ['devices', (d) => d.devices, 'devices'],
    ['a device', (d) => d.devices.vser0, 'devices.vser0'],
    ['a port', (d) => d.devices.vser0.ports[0], 'devices.vser0.ports[0]'],
    ['a step', (d) => d.steps[3], 'steps[3]'],
  ];
  const keys = ['__proto__', 'constructor', 'prototype'];

  for (const [where, target, path] of places) {
    for (const key of keys) {
      it(`rejects ${key} in ${where}`, () => {
        expect(errorOf((d) => setOwn(target(d), key, { polluted: true }))).toBe(
          `${path}: forbidden key "${key}"`,
        );
      });
    }
  }

  it('rejects JSON.parse-made __proto__ keys without polluting anything', () => {
    const text = JSON.stringify(baseDoc()).replace(
      '"serial0":{"kind"',
      '"__proto__":{"polluted":1},"serial0":{"kind"',
    );
    expect(text).toContain('__proto__');
    expect(messageOf(() => parseSchedule(text, builds))).toBe('devices: forbidden key "__proto__"');
    expect(({} as Loose).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
  });

  it('does not mistake Object.prototype members for devices', () => {
    expect(errorOf((d) => (d.steps[1].dev = 'toString'))).toBe(
      'steps[1].dev: no device "toString" (devices: serial0, vser0)',
    );
    expect(errorOf((d) => (d.src.backends.hasOwnProperty = 'open'))).toBe(
      'src.backends.hasOwnProperty: no device "hasOwnProperty"',
    );
    const s = validateSchedule(
      { ...baseDoc(), devices: { ...(baseDoc().devices as Doc), tostring: { kind: 'isa-serial', irq: 5 } } },
      builds,
    );
    expect(Object.keys(s.devices)).toEqual(['serial0', 'vser0', 'tostring']);
  });
});

// ---------------------------------------------------------------------------------------
// Properties

function expectOnlyScheduleErrors(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ScheduleError);
    const message = (e as Error).message;
    expect(message).not.toMatch(/[\n\r\u2028\u2029]/);
    expect(message).toMatch(/: ./);
    // That fallback is for exotic objects only; JSON input reaching it is a validator bug.
    expect(message).not.toContain('unreadable input');
  }
}

/** Every place in the document: [container, key] pairs, the containers being objects or arrays. */
function places(doc: Json): [Json[] | Doc, string | number][] {
  const out: [Json[] | Doc, string | number][] = [];
  const walk = (v: Json): void => {
    if (Array.isArray(v)) {
      v.forEach((x, i) => {
        out.push([v, i]);
        walk(x);
      });
    } else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        out.push([v, k]);
        walk(x);
      }
    }
  };
  walk(doc);
  return out;
}

type Mutation =
  | { op: 'delete'; where: number }
  | { op: 'replace'; where: number; value: Json }
  | { op: 'add'; where: number; key: string; value: Json };

const oddValues: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>(null, true, false, 0, -1, 1.5, 1e300, -0, '', 'x', [], {}, [0], { a: 1 }),
  fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>,
  fc.constantFrom<Json>(
    'serial0',
    'vser0',
    'vser0.port1',
    'migrate',
    'guest.uart.write',
    'isa-serial',
    'intx',
  ),
);
const keys = fc.oneof(
  fc.constantFrom(
    '__proto__',
    'constructor',
    'prototype',
    'toString',
    'dev',
    'port',
    'data',
    'at',
    'ports',
    'irq',
  ),
  fc.string({ maxLength: 8 }),
);
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('delete' as const), where: fc.nat() }),
  fc.record({ op: fc.constant('replace' as const), where: fc.nat(), value: oddValues }),
  fc.record({ op: fc.constant('add' as const), where: fc.nat(), key: keys, value: oddValues }),
);

function mutate(doc: Doc, m: Mutation): void {
  const all = places(doc);
  const [container, key] = all[m.where % all.length] ?? [doc, 'seed'];
  if (m.op === 'delete') {
    if (Array.isArray(container)) container.splice(key as number, 1);
    else delete container[key];
  } else if (m.op === 'replace') {
    setOwn(container, String(key), m.value);
  } else {
    const target = container[key as never] as Json;
    if (target !== null && typeof target === 'object' && !Array.isArray(target))
      setOwn(target, m.key, m.value);
    else setOwn(container, String(key), m.value);
  }
}

describe('never anything but a one-line ScheduleError', () => {
  it('for arbitrary JSON values', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expectOnlyScheduleErrors(() => validateSchedule(v, builds));
      }),
      { seed: 42, numRuns: 2000 },
    );
  });

  it('for arbitrary text', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
        expectOnlyScheduleErrors(() => parseSchedule(text, builds));
      }),
      { seed: 42, numRuns: 1000 },
    );
  });

  it('for mutations of a valid schedule, as objects and as JSON text', () => {
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 3 }), (ms) => {
        const doc = baseDoc();
        for (const m of ms) mutate(doc, m);
        expectOnlyScheduleErrors(() => validateSchedule(doc, builds));
        expectOnlyScheduleErrors(() => parseSchedule(JSON.stringify(doc), builds));
        expect(Object.prototype).not.toHaveProperty('polluted');
      }),
      { seed: 42, numRuns: 2000 },
    );
  });

  it('for exotic objects (throwing getters)', () => {
    const doc: Loose = baseDoc();
    Object.defineProperty(doc, 'seed', {
      enumerable: true,
      get() {
        throw new TypeError('boom');
      },
    });
    expect(messageOf(() => validateSchedule(doc, builds))).toBe('schedule: unreadable input (boom)');
  });
});

// ---------------------------------------------------------------------------------------
// Round trip

const bytesArb = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 24 }),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }).map((s) => utf8.encode(s)),
  fc.constantFrom(utf8.encode('\ufeffbom'), new Uint8Array([0xef, 0xbb, 0xbf]), utf8.encode('line\r\n\t')),
);

function stepArb(at: number): fc.Arbitrary<Step> {
  const uart = fc.constantFrom('serial0', 'serial1');
  const port = fc.constantFrom(1, 5);
  const all = [
    fc.record(
      {
        at: fc.constant(at),
        do: fc.constant('guest.uart.config' as const),
        dev: uart,
        fifo: fc.boolean(),
        trigger: fc.constantFrom(1 as const, 4 as const, 8 as const, 14 as const),
        ier: fc.integer({ min: 0, max: 15 }),
        lcr: fc.integer({ min: 0, max: 255 }),
        divider: fc.integer({ min: 0, max: 65535 }),
      },
      { requiredKeys: ['at', 'do', 'dev'] },
    ),
    fc.record({
      at: fc.constant(at),
      do: fc.constantFrom('guest.uart.write' as const, 'host.uart.send' as const),
      dev: uart,
      data: bytesArb,
    }),
    fc.record({
      at: fc.constant(at),
      do: fc.constantFrom(
        'guest.vport.open' as const,
        'guest.vport.close' as const,
        'host.vport.connect' as const,
        'host.vport.disconnect' as const,
      ),
      dev: fc.constant('vser0'),
      port,
    }),
    fc.record({
      at: fc.constant(at),
      do: fc.constantFrom('guest.vport.write' as const, 'host.vport.send' as const),
      dev: fc.constant('vser0'),
      port,
      data: bytesArb,
    }),
    fc.record({
      at: fc.constant(at),
      do: fc.constant('host.uart.backend' as const),
      dev: uart,
      state: fc.constantFrom('open' as const, 'hung-up' as const, 'closed' as const, 'slow' as const),
    }),
    fc.record({
      at: fc.constant(at),
      do: fc.constant('migrate' as const),
      downtime: fc.integer({ min: 0, max: 1e9 }),
      autostart: fc.boolean(),
    }),
    fc.record({ at: fc.constant(at), do: fc.constantFrom('vm.stop' as const, 'vm.cont' as const) }),
    fc.record({
      at: fc.constant(at),
      do: fc.constantFrom('guest.irq.mask' as const, 'guest.irq.unmask' as const),
      dev: fc.constantFrom('serial0', 'serial1', 'vser0'),
    }),
  ];
  return fc.oneof(...(all as fc.Arbitrary<Step>[]));
}

const scheduleArb: fc.Arbitrary<Schedule> = fc
  .record({
    seed: fc.nat({ max: 0xffffffff }),
    horizon: fc.integer({ min: 1, max: 1e10 }),
    machine: fc.constantFrom('pc-1.0', 'pc-1.1', 'pc-1.2'),
    builds: fc.tuple(
      fc.constantFrom('qemu-1.2', 'qemu-1.3', 'qemu-2.3'),
      fc.constantFrom('qemu-1.2', 'qemu-1.3'),
    ),
    msix: fc.boolean(),
    srcSerial: fc.constantFrom('open' as const, 'slow' as const),
    dstPort: fc.constantFrom(
      'none' as const,
      'socket' as const,
      'socket-server' as const,
      'socket-client' as const,
    ),
  })
  .chain((top) =>
    fc
      .array(fc.integer({ min: 0, max: top.horizon }), { maxLength: 20 })
      .chain((ats) => fc.tuple(...ats.sort((a, b) => a - b).map(stepArb)))
      .map(
        (steps): Schedule => ({
          format: 'migfuzz.schedule',
          version: 1,
          seed: top.seed,
          machine: top.machine,
          src: { build: top.builds[0], backends: { serial0: top.srcSerial } },
          dst: { build: top.builds[1], backends: { 'vser0.port5': top.dstPort } },
          devices: {
            serial0: { kind: 'isa-serial', irq: 4, guestOpen: true },
            vser0: {
              kind: 'virtio-serial',
              irq: top.msix ? 'msix' : 'intx',
              ports: [
                { id: 1, name: 'a b' },
                { id: 5, console: true },
              ],
            },
            serial1: { kind: 'isa-serial', irq: 3, guestOpen: true },
          },
          steps,
          horizon: top.horizon,
        }),
      ),
  );

describe('scheduleToJson', () => {
  it('round-trips arbitrary valid schedules, as objects and as JSON text', () => {
    fc.assert(
      fc.property(scheduleArb, (s) => {
        expect(validateSchedule(s, builds)).toEqual(s); // the generator makes valid schedules
        const json = scheduleToJson(s);
        expect(validateSchedule(json, builds)).toEqual(s);
        expect(parseSchedule(JSON.stringify(json), builds)).toEqual(s);
      }),
      { seed: 42, numRuns: 500 },
    );
  });

  it('gives back the example files, with migrate defaults spelled out', () => {
    const text = EXAMPLE_B;
    const expected = JSON.parse(text);
    expected.steps[2] = { at: 4_000_000, do: 'migrate', downtime: 300_000, autostart: true };
    expect(scheduleToJson(parseSchedule(text, builds))).toEqual(expected);
  });

  it('writes data as text only when the text is printable and re-encodes to the same bytes', () => {
    expect(dataToJson(utf8.encode('boot: ok\n'))).toBe('boot: ok\n');
    expect(dataToJson(utf8.encode('é✓'))).toBe('é✓');
    expect(dataToJson(new Uint8Array([0xff, 0x41]))).toEqual([0xff, 0x41]);
    expect(dataToJson(new Uint8Array([0x1b, 0x5b]))).toEqual([0x1b, 0x5b]);
    expect(dataToJson(new Uint8Array([0xef, 0xbb, 0xbf, 0x41]))).toBe('\ufeffA');
    expect(dataToJson(new Uint8Array([0xc0, 0x80]))).toEqual([0xc0, 0x80]); // overlong NUL
  });

  it('returns a JSON-able copy that shares nothing with the schedule', () => {
    const s = validateSchedule(baseDoc(), builds);
    const json = scheduleToJson(s) as Loose;
    json.src.backends.serial0 = 'closed';
    json.devices.vser0.ports[0].id = 9;
    expect(s.src.backends.serial0).toBe('open');
    expect((s.devices.vser0 as Loose).ports[0].id).toBe(1);
    expect(JSON.parse(JSON.stringify(json))).toEqual(json);
  });
});

describe('a hostile source on a virtio-serial device', () => {
  const withHostile = (hostile: unknown) => () => {
    const doc = JSON.parse(EXAMPLE_A);
    doc.steps[1].hostile = hostile;
    return parseSchedule(JSON.stringify(doc), builds);
  };
  it('sets queue_sel, a be16, and nothing else', () => {
    expect(withHostile({ vser0: { queue_sel: 1024 } })().steps[1]).toMatchObject({
      hostile: { vser0: { queue_sel: 1024 } },
    });
    expect(withHostile({ vser0: { queue_sel: 0x10000 } })).toThrow(
      /hostile\.vser0\.queue_sel: expected an integer in \[0, 65535\], got 65536/,
    );
    expect(withHostile({ vser0: { lsr: 1 } })).toThrow(
      /hostile\.vser0\.lsr: not a virtio-serial field a hostile source can set \(queue_sel\)/,
    );
  });
});
