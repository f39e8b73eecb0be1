import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { builtinRegistry, findMachine } from '../../src/model/migration/builds.js';
import { DumpFormatError, diffDumps, parseDump } from '../../src/vmstate/diff.js';
import { type DumpDesc, type DumpDevice, vmstateDump } from '../../src/vmstate/dump.js';
import { fixturePath } from '../stream/fixtures.js';

/**
 * The model's sections in -dump-vmstate format, compared with QEMU 7.2's own dump
 * (test/fixtures/vmstate) and with each other the way scripts/vmstate-static-checker.py does.
 */

const real = (): Record<string, Record<string, unknown>> =>
  parseDump(readFileSync(fixturePath('vmstate/qemu72-pc-i440fx-7.2.json'), 'utf8'));
const model = (build: string, machine: string) => {
  const b = builtinRegistry().get(build)!;
  return parseDump(JSON.stringify(vmstateDump(b, findMachine(b, machine)!)));
};
const serialDesc = (dump: Record<string, Record<string, unknown>>): DumpDesc =>
  (dump['isa-serial'] as unknown as DumpDevice).Description.Fields![0]!.Description!;

describe('the modern build against QEMU 7.2', () => {
  it('describes isa-serial and virtio-serial-device exactly as QEMU 7.2 dumps them', () => {
    const m = model('qemu-9.2', 'pc-i440fx-7.2');
    const q = real();
    expect(m['isa-serial']).toEqual(q['isa-serial']);
    expect(m['virtio-serial-device']).toEqual(q['virtio-serial-device']);
    expect(m.vmschkmachine).toEqual(q.vmschkmachine);
  });

  it('vmstate diff reports no difference in either direction', () => {
    const m = model('qemu-9.2', 'pc-i440fx-7.2');
    expect(diffDumps(real(), m)).toEqual({ errors: [], warnings: [] });
    expect(diffDumps(m, real())).toEqual({ errors: [], warnings: [] });
  });
});

describe('the builds against each other', () => {
  it('qemu-2.3 → qemu-1.3: every serial subsection a 1.3 destination does not know', () => {
    const r = diffDumps(model('qemu-2.3', 'pc-1.3'), model('qemu-1.3', 'pc-1.3'));
    expect(r.errors[0]).toBe('Section "isa-serial" Description "serial": Entry "Subsections" missing');
    expect(r.errors.slice(1)).toEqual(
      ['thr_ipending', 'tsr', 'recv_fifo', 'xmit_fifo', 'fifo_timeout_timer', 'timeout_ipending', 'poll'].map(
        (s) => `Section "isa-serial", Description "serial": Subsection "serial/${s}" not found`,
      ),
    );
    expect(diffDumps(model('qemu-1.3', 'pc-1.3'), model('qemu-2.3', 'pc-1.3')).errors).toEqual([]);
  });

  it('rhel-7.5 → rhel-7.4 on a pre-2.2 machine: statically identical (the gate is in needed())', () => {
    const r = diffDumps(model('rhel-7.5', 'pc-i440fx-rhel7.0.0'), model('rhel-7.4', 'pc-i440fx-rhel7.0.0'));
    expect(r.errors).toEqual([]);
  });
});

describe('what the checker reports', () => {
  const edit = (f: (serial: DumpDesc) => void) => {
    const d = real();
    f(serialDesc(d));
    return d;
  };

  it('a field removed without a version bump, a size change, a minimum-version change', () => {
    const removed = edit((s) => s.Fields!.splice(8, 1)); // scr
    expect(diffDumps(real(), removed).errors).toEqual([
      'Section "isa-serial", Description "serial": expected field "scr", got "fcr_vmstate"; skipping rest',
    ]);
    expect(diffDumps(removed, real()).errors).toEqual([
      'Section "isa-serial", Description "serial": expected field "fcr_vmstate", got "scr"; skipping rest',
    ]);
    const trailing = edit((s) => s.Fields!.pop());
    expect(diffDumps(real(), trailing).errors).toEqual([
      'Section "isa-serial", Description "serial": expected field "fcr_vmstate", while dest has no further fields',
    ]);
    const resized = edit((s) => {
      s.Fields![0]!.size = 1;
    });
    expect(diffDumps(real(), resized).errors).toEqual([
      'Section "isa-serial" Description "serial" Field "divider" size mismatch: 2 , 1',
    ]);
    const bumped = edit((s) => {
      s.minimum_version_id = 4;
      s.version_id = 4;
    });
    expect(diffDumps(real(), bumped).errors).toEqual([
      'Section "isa-serial" Description "serial": minimum version error: 3 < 4',
    ]);
    expect(diffDumps(bumped, real()).errors).toEqual([
      'Section "isa-serial" Description "serial": version error: 4 > 3',
    ]);
  });

  it('a subsection the destination lacks, a section it lacks, another machine type', () => {
    const noTsr = edit((s) => s.Subsections!.splice(1, 1));
    expect(diffDumps(real(), noTsr).errors).toEqual([
      'Section "isa-serial", Description "serial": Subsection "serial/tsr" not found',
    ]);
    const q = real();
    delete q['virtio-serial-device'];
    (q.vmschkmachine as { Name: string }).Name = 'pc-i440fx-2.3';
    expect(diffDumps(real(), q)).toEqual({
      errors: ['Section "virtio-serial-device" does not exist in dest'],
      warnings: ['Warning: checking incompatible machine types: "pc-i440fx-7.2", "pc-i440fx-2.3"'],
    });
  });

  it('unused buffers may be split or merged; a mismatch is reported', () => {
    const field = (name: string, size: number) => ({ field: name, version_id: 0, field_exists: false, size });
    const dev = (...fields: ReturnType<typeof field>[]) => ({
      d: {
        Name: 'd',
        version_id: 1,
        minimum_version_id: 1,
        Description: { name: 'd', version_id: 1, minimum_version_id: 1, Fields: fields },
      },
    });
    const merged = dev(field('a', 1), field('unused', 6), field('b', 1));
    const split = dev(field('a', 1), field('x', 2), field('y', 4), field('b', 1));
    expect(diffDumps(split, merged).errors).toEqual([]);
    expect(diffDumps(merged, split).errors).toEqual([]);
    const short = dev(field('a', 1), field('x', 2), field('y', 8), field('b', 1));
    expect(diffDumps(short, merged).errors).toEqual([
      'Section "d", Description "d": unused size mismatch near "y"',
    ]);
  });

  it('a file that is not a dump is one DumpFormatError', () => {
    expect(() => parseDump('[1, 2]')).toThrow(DumpFormatError);
    expect(() => parseDump('{"x": {"version_id": 1, "Description": {"name": "x"}}}')).toThrow(
      /x: a description needs "name" and "version_id"/,
    );
    expect(() => parseDump('{"x": ')).toThrow(/not JSON/);
  });
});
