import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BuildFileError,
  parseBuildFile,
  validateBuildFile,
} from '../../../src/model/migration/build-file.js';
import { BUILTIN_BUILDS, builtinRegistry, SERIAL_SUBSECTIONS } from '../../../src/model/migration/builds.js';
import { validateSchedule } from '../../../src/model/schedule/validate.js';

const base = builtinRegistry();

// biome-ignore lint/suspicious/noExplicitAny: tests poke at arbitrary places of the document
type Loose = any;

function messageOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof BuildFileError) return e.message;
    throw e;
  }
  throw new Error('expected a BuildFileError');
}

/** The message for a file holding the given `builds` entries. */
function errorOf(builds: unknown): string {
  return messageOf(() => parseBuildFile(JSON.stringify({ builds }), base));
}

describe('parseBuildFile', () => {
  const file = {
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

  it('adds builds on top of the built-ins, later ones based on earlier ones', () => {
    const registry = parseBuildFile(JSON.stringify(file), base);
    expect([...registry.keys()]).toEqual([...BUILTIN_BUILDS.map((b) => b.name), 'my-build', 'my-rhel']);
    const qemu92 = base.get('qemu-9.2')!;
    const mine = registry.get('my-build')!;
    expect(mine.revisions).toEqual({
      ...qemu92.revisions,
      lapicLoad: 'end-of-load',
      serialSubsections: ['serial/tsr'],
    });
    expect(mine.machines).toEqual(qemu92.machines);
    const rhel = registry.get('my-rhel')!;
    expect(rhel.revisions).toEqual({ ...mine.revisions, serialGatedPre22: ['serial/tsr'] });
    expect(rhel.machines).toEqual([
      { name: 'pc-i440fx-rhel7.0.0', migratePre22: true },
      { name: 'pc-i440fx-2.12', migratePre22: false },
    ]);
  });

  it('reads the revisions of the choices table (virtio_load guest-index check)', () => {
    const doc = {
      builds: [{ name: 'b', base: 'qemu-2.3', revisions: { virtioGuestIndexCheck: 'device-broken' } }],
    };
    const registry = parseBuildFile(JSON.stringify(doc), base);
    expect(base.get('qemu-2.3')!.revisions.virtioGuestIndexCheck).toBe('fail-load');
    expect(registry.get('b')!.revisions.virtioGuestIndexCheck).toBe('device-broken');
  });

  it('leaves the base registry alone', () => {
    const before = [...base.keys()];
    parseBuildFile(JSON.stringify(file), base);
    expect([...base.keys()]).toEqual(before);
    expect(base.get('qemu-9.2')!.revisions.lapicLoad).toBe('post-load');
  });

  it('accepts an entry without revisions or machines (a renamed base)', () => {
    const registry = parseBuildFile('{"builds": [{"name": "same", "base": "qemu-1.2"}]}', base);
    expect(registry.get('same')).toEqual({ ...base.get('qemu-1.2')!, name: 'same' });
  });

  it('gives builds that schedules can name', () => {
    const registry = parseBuildFile(JSON.stringify(file), base);
    const schedule = {
      format: 'migfuzz.schedule',
      version: 1,
      seed: 0,
      machine: 'pc-i440fx-rhel7.0.0',
      src: { build: 'my-rhel', backends: {} },
      dst: { build: 'my-rhel', backends: {} },
      devices: {},
      steps: [],
      horizon: 1,
    };
    expect(validateSchedule(schedule, registry).src.build).toBe('my-rhel');
  });
});

describe('build file errors', () => {
  const cases: [string, unknown, string][] = [
    [
      'enum value',
      [{ name: 'b', base: 'qemu-9.2', revisions: { lapicLoad: 'soon' } }],
      'builds[0].revisions.lapicLoad: expected "end-of-load" or "post-load", got "soon"',
    ],
    [
      'a revision of the choices table',
      [{ name: 'b', base: 'qemu-9.2', revisions: { virtioGuestIndexCheck: 'log' } }],
      'builds[0].revisions.virtioGuestIndexCheck: expected "fail-load" or "device-broken", got "log"',
    ],
    [
      'port-open revision',
      [{ name: 'b', base: 'qemu-9.2', revisions: { virtioSerialPortOpen: 1 } }],
      'builds[0].revisions.virtioSerialPortOpen: expected "never", "in-load" or "timer", got number',
    ],
    [
      'boolean revision',
      [{ name: 'b', base: 'qemu-9.2', revisions: { serialPostLoadChecks: 'yes' } }],
      'builds[0].revisions.serialPostLoadChecks: expected true or false, got string',
    ],
    [
      'clash with a built-in',
      [{ name: 'qemu-9.2', base: 'qemu-9.2' }],
      'builds[0].name: build "qemu-9.2" already exists',
    ],
    [
      'clash within the file',
      [
        { name: 'b', base: 'qemu-9.2' },
        { name: 'b', base: 'qemu-1.2' },
      ],
      'builds[1].name: build "b" already exists',
    ],
    ['unknown base', [{ name: 'b', base: 'qemu-0.9' }], 'builds[0].base: unknown build "qemu-0.9"'],
    [
      'base defined later',
      [
        { name: 'b', base: 'c' },
        { name: 'c', base: 'qemu-9.2' },
      ],
      'builds[0].base: unknown build "c"',
    ],
    ['base missing', [{ name: 'b' }], 'builds[0].base: missing (expected the name of an existing build)'],
    ['base not a string', [{ name: 'b', base: 7 }], 'builds[0].base: expected a build name, got number'],
    [
      'bad name',
      [{ name: 'my build', base: 'qemu-9.2' }],
      'builds[0].name: expected a name of 1 to 64 letters, digits, ".", "_", "+" or "-", starting with a letter or digit, got "my build"',
    ],
    [
      'unknown entry field',
      [{ name: 'b', base: 'qemu-9.2', revison: {} }],
      'builds[0]: unexpected field "revison"',
    ],
    [
      'unknown revision',
      [{ name: 'b', base: 'qemu-9.2', revisions: { lapicLoads: 'post-load' } }],
      'builds[0].revisions: unexpected field "lapicLoads"',
    ],
    [
      'unknown subsection',
      [{ name: 'b', base: 'qemu-9.2', revisions: { serialSubsections: ['serial/tsr', 'serial/lsr'] } }],
      `builds[0].revisions.serialSubsections[1]: expected ${SERIAL_SUBSECTIONS.map((s) => `"${s}"`)
        .join(', ')
        .replace(/, ([^,]*)$/, ' or $1')}, got "serial/lsr"`,
    ],
    [
      'duplicate subsection',
      [{ name: 'b', base: 'qemu-9.2', revisions: { serialGatedPre22: ['serial/tsr', 'serial/tsr'] } }],
      'builds[0].revisions.serialGatedPre22[1]: duplicate subsection "serial/tsr"',
    ],
    [
      'subsections not an array',
      [{ name: 'b', base: 'qemu-9.2', revisions: { serialSubsections: 'serial/tsr' } }],
      'builds[0].revisions.serialSubsections: expected an array of subsection names, got string',
    ],
    [
      'no machines',
      [{ name: 'b', base: 'qemu-9.2', machines: [] }],
      'builds[0].machines: expected at least one machine type',
    ],
    [
      'duplicate machine',
      [{ name: 'b', base: 'qemu-9.2', machines: [{ name: 'pc' }, { name: 'pc', migratePre22: true }] }],
      'builds[0].machines[1].name: duplicate machine type "pc"',
    ],
    [
      'unknown machine field',
      [{ name: 'b', base: 'qemu-9.2', machines: [{ name: 'pc', pre22: true }] }],
      'builds[0].machines[0]: unexpected field "pre22"',
    ],
    [
      'machine flag type',
      [{ name: 'b', base: 'qemu-9.2', machines: [{ name: 'pc', migratePre22: 0 }] }],
      'builds[0].machines[0].migratePre22: expected true or false, got number',
    ],
    ['entry not an object', ['qemu-9.2'], 'builds[0]: expected an object, got string'],
  ];

  it.each(cases)('%s', (_name, builds, message) => {
    expect(errorOf(builds)).toBe(message);
  });

  it('rejects a bad document', () => {
    expect(messageOf(() => parseBuildFile('{"builds": [}', base))).toMatch(
      /^build file: not valid JSON \(.+\)$/,
    );
    expect(messageOf(() => parseBuildFile('[]', base))).toBe('build file: expected an object, got array');
    expect(messageOf(() => parseBuildFile('{}', base))).toBe('builds: missing (expected an array of builds)');
    expect(messageOf(() => parseBuildFile('{"builds": [], "x": 1}', base))).toBe(
      'build file: unexpected field "x"',
    );
    const many = JSON.stringify({
      builds: Array.from({ length: 65 }, (_, i) => ({ name: `b${i}`, base: 'qemu-9.2' })),
    });
    expect(messageOf(() => parseBuildFile(many, base))).toBe('builds: 65 builds, at most 64 allowed');
  });

  it('rejects prototype keys anywhere without polluting anything', () => {
    const texts: [string, string][] = [
      ['{"__proto__": {"polluted": 1}, "builds": []}', 'build file: forbidden key "__proto__"'],
      [
        '{"builds": [{"name": "b", "base": "qemu-9.2", "constructor": 1}]}',
        'builds[0]: forbidden key "constructor"',
      ],
      [
        '{"builds": [{"name": "b", "base": "qemu-9.2", "revisions": {"__proto__": {"polluted": 1}}}]}',
        'builds[0].revisions: forbidden key "__proto__"',
      ],
      [
        '{"builds": [{"name": "b", "base": "qemu-9.2", "machines": [{"name": "pc", "prototype": {}}]}]}',
        'builds[0].machines[0]: forbidden key "prototype"',
      ],
    ];
    for (const [text, message] of texts) expect(messageOf(() => parseBuildFile(text, base))).toBe(message);
    expect(({} as Loose).polluted).toBeUndefined();
  });

  it('never throws anything but a one-line BuildFileError', () => {
    const entry = fc.record(
      {
        name: fc.oneof(fc.constantFrom('b', 'qemu-9.2', '', 'a b'), fc.jsonValue()),
        base: fc.oneof(fc.constantFrom('qemu-9.2', 'b', 'toString', '__proto__'), fc.jsonValue()),
        revisions: fc.oneof(
          fc.dictionary(fc.constantFrom('lapicLoad', 'serialSubsections', 'x', '__proto__'), fc.jsonValue()),
          fc.jsonValue(),
        ),
        machines: fc.oneof(
          fc.array(fc.record({ name: fc.jsonValue(), migratePre22: fc.jsonValue() })),
          fc.jsonValue(),
        ),
      },
      { requiredKeys: [] },
    );
    const doc = fc.oneof(
      fc.jsonValue(),
      fc.record({ builds: fc.oneof(fc.array(entry, { maxLength: 3 }), fc.jsonValue()) }),
    );
    fc.assert(
      fc.property(doc, (d) => {
        try {
          validateBuildFile(d, base);
          parseBuildFile(JSON.stringify(d) ?? '', base);
        } catch (e) {
          expect(e).toBeInstanceOf(BuildFileError);
          expect((e as Error).message).not.toMatch(/[\n\r\u2028\u2029]/);
          expect((e as Error).message).not.toContain('unreadable input');
        }
      }),
      { seed: 42, numRuns: 2000 },
    );
  });
});
