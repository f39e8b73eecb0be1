import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { builtinRegistry } from '../../src/model/migration/builds.js';
import { type Schedule, ScheduleError } from '../../src/model/schedule/types.js';
import { parseSchedule, validateSchedule } from '../../src/model/schedule/validate.js';
import { World } from '../../src/model/world.js';
import { judge } from '../../src/oracles/verdict.js';

/**
 * model-assert and hang come from how a run ends (World.run's RunEnd), not from an oracle
 * watching events: judge() turns 'assert' and 'hang' into findings and skips the end-of-run
 * checks of the other oracles.
 */

const builds = builtinRegistry();
const MS = 1_000_000;

const seed = (name: string): Schedule =>
  parseSchedule(readFileSync(new URL(`../../corpus/seeds/${name}.json`, import.meta.url), 'utf8'), builds);

const uartDoc = {
  format: 'migfuzz.schedule',
  version: 1,
  seed: 1,
  machine: 'pc-i440fx-9.2',
  src: { build: 'qemu-9.2', backends: { serial0: 'open' } },
  dst: { build: 'qemu-9.2', backends: { serial0: 'open' } },
  devices: { serial0: { kind: 'isa-serial', irq: 4 } },
  steps: [{ at: 1 * MS, do: 'host.uart.backend', dev: 'serial0', state: 'open' }],
  horizon: 30 * MS,
};

describe('hang', () => {
  it('a run that exceeds its event budget is a hang, and nothing else is judged', () => {
    const s = seed('bug-b-serial');
    const v = judge(s, { builds, eventBudget: 20 });
    expect(v.end).toBe('hang');
    expect(v.findings).toEqual([
      {
        oracle: 'hang',
        device: null,
        at: v.endNs,
        message: expect.stringContaining('budget'),
        signature: 'hang:-:event-budget',
      },
    ]);
    expect(v.endNs).toBeLessThan(s.horizon);
    expect(v.events).toBeGreaterThan(20);
  });

  it('the default budget lets the seed run to its horizon', () => {
    const v = judge(seed('bug-b-serial'), { builds });
    expect(v.end).toBe('horizon');
    expect(v.findings.map((f) => f.oracle)).not.toContain('hang');
  });

  // BUG (src/oracles/verdict.ts, judge, the 'hang' branch): the message reports
  // `world.eventCount - 1` as the budget. World.run only checks the budget after a whole
  // dispatch, which emits many events, so the count overshoots: with eventBudget 20 the message
  // says "budget of 26 events". It should name the budget the run was given (20).
  it('the hang message names the budget the run was given', () => {
    const v = judge(seed('bug-b-serial'), { builds, eventBudget: 20 });
    expect(v.findings[0]!.message).toBe('the run exceeded its budget of 20 events');
  });
});

describe('model-assert', () => {
  it('World.run ends with "assert" when a device invariant breaks (hostile UART state)', () => {
    const world = new World(validateSchedule(uartDoc, builds), { builds });
    const m = world.vms[0]!;
    const d = m.devices[0]!;
    if (d.kind !== 'uart') throw new Error('device 0 is not a UART');
    // A writability watch with nothing in TSR: when it fires, serial_xmit runs with TEMT set.
    m.chardevs.uart[0]!.watch = true;
    expect(world.run()).toEqual({ kind: 'assert', message: 'serial_xmit: LSR.TEMT set on entry' });
    expect(world.hostNow).toBe(1 * MS);
  });

  it('judge turns a broken model invariant into one model-assert finding', () => {
    const doc = {
      ...uartDoc,
      steps: [{ at: 2 * MS, do: 'host.uart.send', dev: 'nope', data: 'x' }],
    };
    // Invalid input never gets this far: the validator names the field.
    expect(() => validateSchedule(doc, builds)).toThrow(ScheduleError);
    // A hostile schedule object that skipped validation reaches the model's own assertion.
    const valid = validateSchedule(uartDoc, builds);
    const hostile: Schedule = {
      ...valid,
      steps: [{ at: 2 * MS, do: 'host.uart.send', dev: 'nope', data: new Uint8Array([0x78]) }],
    };
    const v = judge(hostile, { builds });
    expect(v.end).toBe('assert');
    expect(v.findings).toEqual([
      {
        oracle: 'model-assert',
        device: null,
        at: 2 * MS,
        message: 'schedule names unknown device nope',
        signature: 'model-assert:-:schedule-names-unknown-device-nope',
      },
    ]);
  });
});

describe('a model that throws', () => {
  it('ends its run as an assert, so it is judged (model-assert) and can be recorded', () => {
    const s = seed('uart-echo');
    let seen = 0;
    const sink = {
      event() {
        if (++seen === 40) throw new TypeError('a bug of the model');
      },
    };
    const v = judge(s, { builds, sink });
    expect(v.end).toBe('assert');
    expect(v.events).toBe(40);
    expect(v.findings.map((f) => [f.oracle, f.message])).toEqual([
      ['model-assert', 'TypeError: a bug of the model'],
    ]);
  });
});

/**
 * unsafe-load: the destination accepted a state its QEMU then mishandles. The run stops once
 * the migration completes (the model does not execute such a device), with the finding naming
 * QEMU's access or assert.
 */
describe('unsafe-load', () => {
  /** A guest that fills the transmit FIFO of a hung-up backend, then migrates. */
  const hungFifo = (build: string, machine: string): Schedule =>
    validateSchedule(
      {
        ...uartDoc,
        machine,
        src: { build, backends: { serial0: 'open' } },
        dst: { build, backends: { serial0: 'open' } },
        steps: [
          { at: 1 * MS, do: 'guest.uart.config', dev: 'serial0', fifo: true },
          { at: 2 * MS, do: 'host.uart.backend', dev: 'serial0', state: 'hung-up' },
          { at: 3 * MS, do: 'guest.uart.write', dev: 'serial0', data: 'abcde' },
          { at: 5 * MS, do: 'migrate', downtime: 300_000, autostart: true },
        ],
      },
      builds,
    );
  /** A hostile source: xmit_fifo's num (the last u32 of that subsection) says 17. */
  const num17 = (stream: Uint8Array): Uint8Array => {
    const name = [...'serial/xmit_fifo'].map((c) => c.charCodeAt(0));
    const at = stream.findIndex((_, i) => name.every((b, j) => stream[i + j] === b));
    expect(at).toBeGreaterThan(0);
    const out = stream.slice();
    // name, be32 version, data[16], be32 head, be32 num
    new DataView(out.buffer).setUint32(at + name.length + 4 + 16 + 4, 17);
    return out;
  };

  it('qemu-9.2 accepts xmit_fifo.num=17 (vmstate_fifo8 checks nothing): the run stops, judged', () => {
    const s = hungFifo('qemu-9.2', 'pc-i440fx-9.2');
    expect(judge(s, { builds }).end).toBe('horizon');
    const v = judge(s, { builds, tamper: num17 });
    expect(v.end).toBe('unsafe-load');
    expect(v.findings).toEqual([
      {
        oracle: 'unsafe-load',
        device: 'serial0',
        at: v.endNs,
        message: expect.stringMatching(
          /xmit_fifo.num=17 .*fifo8_push's assert\(fifo->num < fifo->capacity\)/,
        ),
        signature: 'unsafe-load:serial0:xmit-fifo-num',
      },
    ]);
    expect(v.endNs).toBe(5 * MS + 300_000);
  });
});
