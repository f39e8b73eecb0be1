import { describe, expect, it } from 'vitest';
import { Ev } from '../../../src/model/events.js';
import { builtinRegistry, SERIAL_SUBSECTIONS } from '../../../src/model/migration/builds.js';
import type { Schedule } from '../../../src/model/schedule/types.js';
import { ScheduleError } from '../../../src/model/schedule/types.js';
import { validateSchedule } from '../../../src/model/schedule/validate.js';
import { judge } from '../../../src/oracles/verdict.js';

/**
 * qemu-2.3's needless serial/poll: serial_reset set poll_msl = 0 and the ISA realize never
 * asked the backend for its modem lines, so serial_poll_needed (poll_msl >= 0) held until
 * the guest read MSR or wrote IER (serial_update_msl then finds no TIOCM: -1). a30cf876
 * ("check if backed by a physical serial port at realize time") fixed it after 2.3. A 2.3
 * source therefore sends serial/poll for a port the guest never opened, and builds without
 * the subsection (1.x, 2.2) refuse the stream.
 */

const builds = builtinRegistry();
const MS = 1_000_000;
const POLL = SERIAL_SUBSECTIONS.indexOf('serial/poll');

function schedule(
  src: string,
  dst: string,
  machine: string,
  guestOpen: boolean,
  steps: unknown[] = [],
): Schedule {
  return validateSchedule(
    {
      format: 'migfuzz.schedule',
      version: 1,
      seed: 1,
      machine,
      src: { build: src, backends: { serial0: 'open' } },
      dst: { build: dst, backends: { serial0: 'open' } },
      devices: { serial0: { kind: 'isa-serial', irq: 4, ...(guestOpen ? {} : { guestOpen: false }) } },
      steps: [...steps, { at: 2 * MS, do: 'migrate' }],
      horizon: 20 * MS,
    },
    builds,
  );
}

/** Signatures and the serial subsections sent (b = 0) by the source. */
function run(s: Schedule): { signatures: string[]; sent: number[] } {
  const sent: number[] = [];
  const v = judge(s, {
    builds,
    sink: { event: (_at, kind, _vm, _dev, a, b) => kind === Ev.SUBSECTION && b === 0 && sent.push(a) },
  });
  return { signatures: v.findings.map((f) => f.signature), sent };
}

describe('serial/poll from qemu-2.3 (poll_msl = 0 after serial_reset, before a30cf876)', () => {
  it.each(['qemu-1.3', 'qemu-2.2'])('a port nobody opened: 2.3 → %s fails on serial/poll', (dst) => {
    const s = schedule('qemu-2.3', dst, 'pc-1.3', false);
    const { signatures, sent } = run(s);
    expect(sent).toEqual([POLL]);
    expect(signatures).toEqual(['migration-failed:serial0:unknown-subsection']);
    const f = judge(s, { builds }).findings[0]!;
    expect(f.message).toContain("'serial/poll'");
  });

  it('the guest opened it at boot (serial8250_startup reads MSR): nothing needless is sent', () => {
    expect(run(schedule('qemu-2.3', 'qemu-1.3', 'pc-1.3', true))).toEqual({ signatures: [], sent: [] });
  });

  it('a first use before the migration opens it, and clears poll_msl the same way', () => {
    const config = { at: 1 * MS, do: 'guest.uart.config', dev: 'serial0', fifo: true };
    expect(run(schedule('qemu-2.3', 'qemu-2.2', 'pc-1.3', false, [config]))).toEqual({
      signatures: [],
      sent: [],
    });
  });

  it('2.3 → 2.3 carries serial/poll and loads it', () => {
    const { signatures, sent } = run(schedule('qemu-2.3', 'qemu-2.3', 'pc-1.3', false));
    expect(sent).toEqual([POLL]);
    expect(signatures).toEqual([]);
  });

  it('qemu-9.2 (a30cf876: probed at realize) sends no serial/poll for an unopened port', () => {
    expect(run(schedule('qemu-9.2', 'qemu-9.2', 'pc-i440fx-9.2', false))).toEqual({
      signatures: [],
      sent: [],
    });
  });
});

describe('guestOpen in a schedule', () => {
  it('defaults to true and must be a boolean', () => {
    expect(schedule('qemu-9.2', 'qemu-9.2', 'pc-i440fx-9.2', true).devices.serial0).toEqual({
      kind: 'isa-serial',
      irq: 4,
      guestOpen: true,
    });
    const bad = () =>
      validateSchedule(
        {
          format: 'migfuzz.schedule',
          version: 1,
          seed: 1,
          machine: 'pc-i440fx-9.2',
          src: { build: 'qemu-9.2', backends: {} },
          dst: { build: 'qemu-9.2', backends: {} },
          devices: { serial0: { kind: 'isa-serial', irq: 4, guestOpen: 'no' } },
          steps: [],
          horizon: MS,
        },
        builds,
      );
    expect(bad).toThrow(ScheduleError);
    expect(bad).toThrow(/devices\.serial0\.guestOpen/);
  });
});
