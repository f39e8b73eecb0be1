import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { fixturePath } from '../stream/fixtures.js';
import { captureCli } from './capture.js';

/** `migfuzz vmstate dump` and `migfuzz vmstate diff`. */

const run = captureCli();
const cli = (argv: string[]): number => main(argv) as number;
const tmp = mkdtempSync(join(tmpdir(), 'migfuzz-vmstate-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const REAL = fixturePath('vmstate/qemu72-pc-i440fx-7.2.json');

describe('vmstate dump / diff', () => {
  it('dump --out writes the dump (and nothing else) that diff finds identical to QEMU 7.2', () => {
    const out = join(tmp, 'm92.json');
    expect(
      run(cli, ['vmstate', 'dump', '--build', 'qemu-9.2', '--machine', 'pc-i440fx-7.2', '--out', out]).code,
    ).toBe(0);
    expect(readdirSync(tmp)).toEqual(['m92.json']);
    expect(JSON.parse(readFileSync(out, 'utf8'))['isa-serial'].Name).toBe('isa-serial');
    const r = run(cli, ['vmstate', 'diff', REAL, out]);
    expect(r.code).toBe(0);
    expect(r.out).toEqual([`${REAL} → ${out}: no difference`]);
  });

  it('diff exits 1 with the checker lines when a destination lacks subsections', () => {
    const a = join(tmp, 'a.json');
    const b = join(tmp, 'b.json');
    run(cli, ['vmstate', 'dump', '--build', 'qemu-2.3', '--machine', 'pc-1.3', '--out', a]);
    run(cli, ['vmstate', 'dump', '--build', 'qemu-1.3', '--machine', 'pc-1.3', '--out', b]);
    const r = run(cli, ['vmstate', 'diff', a, b, '--json']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.out[0]!).errors).toHaveLength(8);
    expect(run(cli, ['vmstate', 'diff', a, b, '--reverse']).code).toBe(0);
  });

  it('bad names are usage errors (2), bad files invalid input (3)', () => {
    expect(run(cli, ['vmstate', 'dump', '--build', 'qemu-0.1', '--machine', 'pc']).code).toBe(2);
    expect(run(cli, ['vmstate', 'dump', '--build', 'qemu-9.2', '--machine', 'pc-1.0']).code).toBe(2);
    expect(run(cli, ['vmstate', 'dump', '--build', 'qemu-9.2']).code).toBe(2);
    expect(run(cli, ['vmstate', 'diff', REAL]).code).toBe(2);
    const bad = join(tmp, 'bad.json');
    writeFileSync(bad, '{"isa-serial": 3}');
    const r = run(cli, ['vmstate', 'diff', REAL, bad]);
    expect(r.code).toBe(3);
    expect(r.err).toEqual([`migfuzz: ${bad}: section "isa-serial" is not an object`]);
    expect(run(cli, ['vmstate', 'diff', REAL, join(tmp, 'none.json')]).code).toBe(3);
  });
});
