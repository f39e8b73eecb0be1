import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PLANTED } from '../bench/power/planted.js';
import { Campaign } from '../src/fuzz/campaign.js';
import { builtinRegistry } from '../src/model/migration/builds.js';
import { validateSchedule } from '../src/model/schedule/validate.js';
import { judge } from '../src/oracles/verdict.js';

/**
 * The planted-bug suite (bench/power/planted.ts) counts a planted bug only if a hand-written
 * witness proves it observable: on its witness schedule the planted load gives a finding the
 * shipped model does not, and the shipped model gives none at all.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const builds = builtinRegistry();

describe('planted bugs: witnesses', () => {
  it('spread over the serial device, virtio-serial and interrupt delivery, stalls included', () => {
    const areas = new Set(PLANTED.map((b) => b.area));
    expect([...areas].sort()).toEqual(['interrupts', 'serial', 'virtio-serial']);
    expect(PLANTED.filter((b) => b.effect === 'stall').length).toBeGreaterThanOrEqual(3);
    expect(new Set(PLANTED.map((b) => b.id)).size).toBe(PLANTED.length);
  });

  it('the shipped CLI never plants a bug: no command passes patchLoad', () => {
    const dir = `${ROOT}src/cli/`;
    const users = readdirSync(dir).filter((f) => readFileSync(`${dir}${f}`, 'utf8').includes('patchLoad'));
    expect(users).toEqual([]);
  });

  for (const bug of PLANTED) {
    it(`${bug.id}: its witness finds it, and is clean on the shipped model`, () => {
      const doc = JSON.parse(readFileSync(`${ROOT}${bug.witness}`, 'utf8'));
      const s = validateSchedule(doc, builds);
      expect(s.src.build).toBe('qemu-9.2');
      expect(judge(s, { builds }).findings).toEqual([]);
      const planted = judge(s, { builds, patchLoad: bug.patch }).findings.map((f) => f.signature);
      expect(planted.length, `${bug.id} on its witness`).toBeGreaterThan(0);
    });
  }
});

describe('planted bugs: the campaign (the quick variant of npm run power)', () => {
  it('a campaign with a planted bug finds what the shipped model does not, from an empty corpus', () => {
    const bug = PLANTED.find((b) => b.id === 'serial-rx-fifo-dropped')!;
    const c = new Campaign({ seed: 1, builds, allowed: ['qemu-9.2'], patchLoad: bug.patch });
    let hit: string | null = null;
    while (c.execs < 3000 && hit === null) {
      for (const f of c.step().newFindings) {
        const shipped = judge(f.schedule, { builds }).findings.map((x) => x.signature);
        if (!shipped.includes(f.signature)) hit = f.signature;
      }
    }
    expect(hit, `after ${c.execs} executions`).toMatch(/^(data-loss|starved-data):serial0:/);
  });
});
