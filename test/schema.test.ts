import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { scheduleArb } from '../src/fuzz/arbitraries.js';
import { BUILTIN_BUILDS, builtinRegistry } from '../src/model/migration/builds.js';
import { scheduleToJson } from '../src/model/schedule/to-json.js';
import { ScheduleError } from '../src/model/schedule/types.js';
import { parseSchedule, validateSchedule } from '../src/model/schedule/validate.js';
import { ROOT } from './replay/helpers.js';

/**
 * The published schema (schema/migfuzz.schedule.v1.json) and the validator agree: whatever
 * migfuzz accepts, the schema accepts; whatever is a shape error (a type, a range, a missing
 * or unknown field) both reject. The cross-field rules the schema cannot say are the
 * validator's alone, as docs/schedule.md says.
 */

const schema = JSON.parse(readFileSync(join(ROOT, 'schema', 'migfuzz.schedule.v1.json'), 'utf8'));
const ajv = new Ajv2020({ allErrors: true, strict: true });
const valid = ajv.compile(schema);
const builds = builtinRegistry();
const SEEDS = join(ROOT, 'corpus', 'seeds');

// biome-ignore lint/suspicious/noExplicitAny: the cases edit documents freely, shape errors included
type Doc = Record<string, any>;
const seed = (): Doc => JSON.parse(readFileSync(join(SEEDS, 'bug-a-virtio-serial.json'), 'utf8'));

describe('schema/migfuzz.schedule.v1.json', () => {
  it('every corpus schedule names the schema and validates against it', () => {
    const files = readdirSync(SEEDS).filter((n) => n.endsWith('.json'));
    expect(files.length).toBeGreaterThanOrEqual(5);
    for (const name of files) {
      const text = readFileSync(join(SEEDS, name), 'utf8');
      const doc = JSON.parse(text);
      expect(doc.$schema, name).toBe('../../schema/migfuzz.schedule.v1.json');
      expect(() => parseSchedule(text, builds), name).not.toThrow();
      expect(valid(doc), `${name}: ${ajv.errorsText(valid.errors)}`).toBe(true);
    }
  });

  it('every generated schedule the validator accepts validates against it', () => {
    const arb = scheduleArb(
      builds,
      BUILTIN_BUILDS.map((b) => b.name),
    );
    for (const doc of fc.sample(arb, { seed: 16, numRuns: 300 })) {
      const json = scheduleToJson(validateSchedule(doc, builds));
      expect(valid(json), ajv.errorsText(valid.errors)).toBe(true);
    }
  });

  const shapeErrors: [string, (d: Doc) => void][] = [
    ['another format', (d) => (d.format = 'migfuzz.trace')],
    ['a newer version', (d) => (d.version = 2)],
    ['a negative seed', (d) => (d.seed = -1)],
    ['a fractional seed', (d) => (d.seed = 1.5)],
    ['a seed past u32', (d) => (d.seed = 2 ** 32)],
    ['no horizon', (d) => delete d.horizon],
    ['a zero horizon', (d) => (d.horizon = 0)],
    ['an unknown field', (d) => (d.colour = 'blue')],
    ['$schema not a string', (d) => (d.$schema = 7)],
    ['a side without a build', (d) => delete d.src.build],
    ['an unknown backend state', (d) => (d.dst.backends['vser0.port1'] = 'tcp')],
    ['an unknown device kind', (d) => (d.devices.vser0.kind = 'pl011')],
    ['a virtio irq that is neither intx nor msix', (d) => (d.devices.vser0.irq = 'pci')],
    ['a port id 0', (d) => (d.devices.vser0.ports[0].id = 0)],
    ['ports not an array', (d) => (d.devices.vser0.ports = {})],
    ['an unknown step kind', (d) => (d.steps[0].do = 'guest.vport.opn')],
    ['a step without at', (d) => delete d.steps[0].at],
    ['a step without its dev', (d) => delete d.steps[0].dev],
    ['a step with a field of another kind', (d) => (d.steps[0].data = 'x')],
    [
      'a byte past 255',
      (d) => d.steps.push({ at: 1, do: 'host.vport.send', dev: 'vser0', port: 1, data: [256] }),
    ],
    [
      'a bad trigger level',
      (d) => d.steps.push({ at: 1, do: 'guest.uart.config', dev: 'vser0', trigger: 3 }),
    ],
    ['a negative downtime', (d) => d.steps.push({ at: 1, do: 'migrate', downtime: -1 })],
    ['autostart not a boolean', (d) => d.steps.push({ at: 1, do: 'migrate', autostart: 'no' })],
  ];

  it.each(shapeErrors)('a shape error both reject: %s', (_name, edit) => {
    const doc = seed();
    edit(doc);
    expect(() => validateSchedule(doc, builds)).toThrow(ScheduleError);
    expect(valid(doc)).toBe(false);
  });

  const crossField: [string, (d: Doc) => void][] = [
    ['a machine type one build lacks', (d) => (d.machine = 'pc-1.3')],
    ['steps out of order', (d) => d.steps.push({ at: 0, do: 'vm.stop' })],
    ['a step after the horizon', (d) => d.steps.push({ at: d.horizon + 1, do: 'vm.stop' })],
    ['a port the device does not have', (d) => (d.steps[0].port = 9)],
    ['a device that is not declared', (d) => (d.steps[0].dev = 'vser1')],
  ];

  it.each(crossField)('a cross-field error only the validator sees: %s', (_name, edit) => {
    const doc = seed();
    edit(doc);
    expect(() => validateSchedule(doc, builds)).toThrow(ScheduleError);
    expect(valid(doc)).toBe(true);
  });
});
