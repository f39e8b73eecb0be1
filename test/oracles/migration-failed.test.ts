import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Ev, MigPhase, RunState, streamId } from '../../src/model/events.js';
import { builtinRegistry } from '../../src/model/migration/builds.js';
import { DEFAULT_DOWNTIME_NS, type Schedule } from '../../src/model/schedule/types.js';
import { parseSchedule, validateSchedule } from '../../src/model/schedule/validate.js';
import { World } from '../../src/model/world.js';
import { judge } from '../../src/oracles/verdict.js';

/**
 * migration-failed (docs/oracles.md): seed bug B. On a migrate_pre_2_2 machine, rhel-7.4 skips
 * serial/tsr, so a byte waiting for a hung-up reader (tsr_retry > 0, TEMT clear) reaches a
 * destination whose post_load sees TEMT clear with tsr_retry 0 and rejects the stream.
 */

const builds = builtinRegistry();
const MS = 1_000_000;
const MIGRATE_AT = 4 * MS;

const bugB = (): Schedule =>
  parseSchedule(
    readFileSync(new URL('../../corpus/seeds/bug-b-serial.json', import.meta.url), 'utf8'),
    builds,
  );

const onBuilds = (s: Schedule, src: string, dst: string, machine = s.machine): Schedule => ({
  ...s,
  machine,
  src: { ...s.src, build: src },
  dst: { ...s.dst, build: dst },
});

describe('migration-failed', () => {
  it('fires on seed bug B (rhel-7.4, rhel6.6.0): tsr not empty with tsr_retry=0', () => {
    const s = bugB();
    expect(s.steps.find((x) => x.do === 'migrate')?.at).toBe(MIGRATE_AT);
    const v = judge(s, { builds });
    expect(v.findings).toEqual([
      {
        oracle: 'migration-failed',
        device: 'serial0',
        // The destination loads after the downtime.
        at: MIGRATE_AT + DEFAULT_DOWNTIME_NS,
        message: expect.stringContaining('inconsistent state in serial device (tsr not empty, tsr_retry=0'),
        signature: 'migration-failed:serial0:tsr-not-empty',
      },
    ]);
    expect(v.findings[0]!.message).toContain("device 'serial'");
  });

  it.each([
    ['rhel-7.5', 'rhel-7.5', 'rhel6.6.0'],
    ['rhel-7.4', 'rhel-7.4', 'pc-i440fx-rhel7.4.0'],
    ['rhel-7.5', 'rhel-7.5', 'pc-i440fx-rhel7.0.0'],
  ])('does not fire for %s → %s on %s', (src, dst, machine) => {
    const s = onBuilds(bugB(), src, dst, machine);
    const v = judge(s, { builds });
    expect(v.findings).toEqual([]);
    // The migration did complete: the guest runs on the destination.
    const world = new World(s, { builds });
    world.run();
    expect(world.active).toBe(1);
    expect(world.failures).toEqual([]);
  });

  it('the bug is on the sending side: rhel-7.4 → rhel-7.5 fails, rhel-7.5 → rhel-7.4 loads', () => {
    const forward = judge(onBuilds(bugB(), 'rhel-7.4', 'rhel-7.5'), { builds });
    expect(forward.findings.map((f) => f.signature)).toEqual(['migration-failed:serial0:tsr-not-empty']);
    const backward = judge(onBuilds(bugB(), 'rhel-7.5', 'rhel-7.4'), { builds });
    expect(backward.findings).toEqual([]);
  });

  it('after a failed migration the source keeps running and its output still reaches the backend', () => {
    const b = bugB();
    const s = validateSchedule(
      {
        format: 'migfuzz.schedule',
        version: 1,
        seed: b.seed,
        machine: b.machine,
        src: { build: 'rhel-7.4', backends: { serial0: 'hung-up' } },
        dst: { build: 'rhel-7.4', backends: { serial0: 'hung-up' } },
        devices: { serial0: { kind: 'isa-serial', irq: 4 } },
        steps: [
          { at: 500_000, do: 'guest.uart.config', dev: 'serial0', fifo: true, trigger: 4, ier: 3 },
          { at: 1 * MS, do: 'guest.uart.write', dev: 'serial0', data: 'boot: ok\n' },
          { at: MIGRATE_AT, do: 'migrate' },
          { at: 10 * MS, do: 'host.uart.backend', dev: 'serial0', state: 'open' },
          { at: 12 * MS, do: 'guest.uart.write', dev: 'serial0', data: 'after' },
        ],
        horizon: 30 * MS,
      },
      builds,
    );
    const events: { at: number; kind: number; vm: number; dev: number; a: number; b: number }[] = [];
    const v = judge(s, {
      builds,
      sink: { event: (at, kind, vm, dev, a, b) => events.push({ at, kind, vm, dev, a, b }) },
    });
    expect(v.findings.map((f) => f.signature)).toEqual(['migration-failed:serial0:tsr-not-empty']);
    const failed = events.find((e) => e.kind === Ev.MIGRATION && e.a === MigPhase.FAILED)!;
    expect(failed.at).toBe(MIGRATE_AT + DEFAULT_DOWNTIME_NS);
    // The source resumes at once.
    expect(
      events.some(
        (e) => e.kind === Ev.RUN_STATE && e.vm === 0 && e.a === RunState.RUNNING && e.at === failed.at,
      ),
    ).toBe(true);
    const tx = streamId(0, 0, false);
    const delivered = events.filter((e) => e.kind === Ev.BYTE_DELIVER && e.dev === tx);
    expect(delivered.every((e) => e.vm === 0)).toBe(true);
    expect(String.fromCharCode(...delivered.map((e) => e.a))).toBe('boot: ok\nafter');
    const after = delivered.slice(-'after'.length);
    for (const e of after) expect(e.at).toBeGreaterThanOrEqual(12 * MS);

    const world = new World(s, { builds });
    world.run();
    expect(world.active).toBe(0);
    expect(world.vms[0]!.runState).toBe(RunState.RUNNING);
    expect(world.vms[1]).toBeNull();
  });
});
