import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseBuildFile } from '../../../src/model/migration/build-file.js';
import { builtinRegistry } from '../../../src/model/migration/builds.js';
import type { Schedule } from '../../../src/model/schedule/types.js';
import { judge } from '../../../src/oracles/verdict.js';
import { decodeTrace } from '../../../src/replay/trace.js';
import { ROOT } from '../../replay/helpers.js';

/**
 * The proposed fix of the paused re-migration (docs/findings/virtio-serial-paused-remigration.md),
 * modelled as the revision virtioSerialSaveHostConnected = 'post-load-record': while a post-load
 * record is pending, virtio_serial_save_device writes the recorded host_connected (what the
 * guest was last told) instead of port->host_connected.
 */

const builds = parseBuildFile(
  readFileSync(join(ROOT, 'docs', 'findings', 'qemu-9.2-remigration-fix.json'), 'utf8'),
  builtinRegistry(),
);
const seed = decodeTrace(
  readFileSync(join(ROOT, 'corpus', 'regressions', 'qemu-9.2-paused-remigration.mpk')),
).schedule;
const on = (s: Schedule, build: string): Schedule => ({
  ...s,
  src: { ...s.src, build },
  dst: { ...s.dst, build },
});

describe('the paused re-migration fix (virtioSerialSaveHostConnected)', () => {
  it('qemu-9.2 (the port own host_connected) leaves the guest stale; the fix tells it', () => {
    expect(judge(on(seed, 'qemu-9.2'), { builds }).findings.map((f) => f.signature)).toEqual([
      'stale-guest-view:vser0:host-connected-unsent-at-save',
    ]);
    expect(judge(on(seed, 'qemu-9.2-remigration-fix'), { builds }).findings).toEqual([]);
  });

  it('changes nothing when no post-load record is pending (the middle destination ran first)', () => {
    const control: Schedule = {
      ...seed,
      steps: [...seed.steps.slice(0, 2), { at: 5_000_000, do: 'vm.cont' }, ...seed.steps.slice(2)],
    };
    for (const build of ['qemu-9.2', 'qemu-9.2-remigration-fix']) {
      expect(judge(on(control, build), { builds }).findings, build).toEqual([]);
    }
  });

  it('is the only difference from qemu-9.2', () => {
    const fix = builds.get('qemu-9.2-remigration-fix')!;
    const base = builds.get('qemu-9.2')!;
    expect({ ...fix.revisions, virtioSerialSaveHostConnected: 'port' }).toEqual(base.revisions);
    expect(fix.revisions.virtioSerialSaveHostConnected).toBe('post-load-record');
    expect(fix.machines).toEqual(base.machines);
  });
});
