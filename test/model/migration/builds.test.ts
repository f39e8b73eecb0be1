import { describe, expect, it } from 'vitest';
import {
  BUILTIN_BUILDS,
  BUILTIN_DELTAS,
  type Build,
  builtinRegistry,
  findMachine,
} from '../../../src/model/migration/builds.js';

/**
 * Builds as data: each build's machine types as its release offered them (the release's
 * hw/i386/pc_piix.c, QEMU's deprecate-after-3-years / delete-after-6 policy), the RHEL
 * compat globals, and the revisions that follow QEMU commits.
 */

const builds = builtinRegistry();
const build = (name: string): Build => builds.get(name)!;
const names = (b: string): string[] => build(b).machines.map((m) => m.name);
const shared = (a: string, b: string): string[] => names(a).filter((n) => names(b).includes(n));
const range = (prefix: string, versions: string[]): string[] => versions.map((v) => prefix + v);

/** The pc-i440fx types of Debian 12's QEMU 7.2 (`qemu-system-x86_64 -M help`), oldest first. */
const QEMU_7_2_I440FX = range('pc-i440fx-', [
  '1.4',
  '1.5',
  '1.6',
  '1.7',
  '2.0',
  '2.1',
  '2.2',
  '2.3',
  '2.4',
  '2.5',
  '2.6',
  '2.7',
  '2.8',
  '2.9',
  '2.10',
  '2.11',
  '2.12',
  '3.0',
  '3.1',
  '4.0',
  '4.1',
  '4.2',
  '5.0',
  '5.1',
  '5.2',
  '6.0',
  '6.1',
  '6.2',
  '7.0',
  '7.1',
  '7.2',
]);

describe('machine types as each release offered them', () => {
  it('qemu-7.2 offers pc-i440fx-1.4 … pc-i440fx-7.2 and no pc-1.x or pc-0.x (pc-1.x removed in 6.0)', () => {
    expect(names('qemu-7.2')).toEqual(QEMU_7_2_I440FX);
  });

  it('qemu-9.2 starts at pc-i440fx-2.4: 1.4-1.7 were removed in 8.2, 2.0-2.3 in 9.1', () => {
    expect(names('qemu-9.2')[0]).toBe('pc-i440fx-2.4');
    expect(names('qemu-9.2').at(-1)).toBe('pc-i440fx-9.2');
    expect(names('qemu-9.2')).toHaveLength(9 + 14 + 6);
    for (const gone of ['pc-1.3', 'pc-i440fx-1.7', 'pc-i440fx-2.3'])
      expect(names('qemu-9.2')).not.toContain(gone);
  });

  it('1.x and 2.3 offer the pc-0.x and pc-1.x types of their pc_piix.c; 2.3 adds pc-i440fx-1.4 … 2.3', () => {
    expect(names('qemu-1.2')).toEqual([
      ...range('pc-0.', ['10', '11', '12', '13', '14', '15']),
      'pc-1.0',
      'pc-1.1',
      'pc-1.2',
    ]);
    expect(names('qemu-1.3').at(-1)).toBe('pc-1.3');
    expect(names('qemu-2.3')).toEqual([...names('qemu-1.3'), ...QEMU_7_2_I440FX.slice(0, 8)]);
  });

  it('cross-version pairs exist only where a user could migrate: qemu-2.3 ↔ qemu-9.2 shares nothing, ↔ qemu-7.2 shares 1.4 … 2.3', () => {
    expect(shared('qemu-2.3', 'qemu-9.2')).toEqual([]);
    expect(shared('qemu-2.3', 'qemu-7.2')).toEqual(QEMU_7_2_I440FX.slice(0, 8));
    expect(shared('qemu-1.3', 'qemu-7.2')).toEqual([]);
    expect(shared('qemu-7.2', 'qemu-9.2')).toEqual(QEMU_7_2_I440FX.slice(8));
  });

  it('RHEL 7 offers rhel6.0.0 … rhel6.6.0 and its pc-i440fx-rhel7.x.0 types (C2Devel/qemu-kvm pc_piix.c)', () => {
    const rhel6 = range('rhel6.', ['0.0', '1.0', '2.0', '3.0', '4.0', '5.0', '6.0']);
    const rhel7 = range('pc-i440fx-rhel7.', ['0.0', '1.0', '2.0', '3.0', '4.0']);
    expect(names('rhel-7.4')).toEqual([...rhel6, ...rhel7]);
    expect(names('rhel-7.5')).toEqual([...rhel6, ...rhel7, 'pc-i440fx-rhel7.5.0']);
  });

  it('migrate_pre_2_2 is set by pc_compat_rhel710: rhel7.1.0, rhel7.0.0 and every rhel6 type, not rhel7.2.0 on', () => {
    for (const b of ['rhel-7.4', 'rhel-7.5']) {
      const pre22 = build(b)
        .machines.filter((m) => m.migratePre22)
        .map((m) => m.name);
      expect(pre22).toEqual([
        ...range('rhel6.', ['0.0', '1.0', '2.0', '3.0', '4.0', '5.0', '6.0']),
        'pc-i440fx-rhel7.0.0',
        'pc-i440fx-rhel7.1.0',
      ]);
      expect(findMachine(build(b), 'pc-i440fx-rhel7.2.0')?.migratePre22).toBe(false);
    }
    // Upstream never set it (hw_compat_2_2 was empty).
    for (const b of BUILTIN_BUILDS.filter((x) => !x.name.startsWith('rhel'))) {
      expect(b.machines.some((m) => m.migratePre22)).toBe(false);
    }
  });

  it('no build lists a machine type twice', () => {
    for (const b of BUILTIN_BUILDS) expect(new Set(names(b.name)).size).toBe(b.machines.length);
  });
});

describe('revisions that follow QEMU commits', () => {
  it('vm_clock starts enabled before 3fdd0ee3 ("timer: set vm_clock disabled default", 2.7) and disabled from it', () => {
    const at = Object.fromEntries(BUILTIN_BUILDS.map((b) => [b.name, b.revisions.vmClockAtCreation]));
    expect(at).toEqual({
      'qemu-1.2': 'enabled',
      'qemu-1.3': 'enabled',
      'qemu-2.2': 'enabled',
      'qemu-2.3': 'enabled',
      'rhel-7.4': 'disabled',
      'rhel-7.5': 'disabled',
      'qemu-9.2': 'disabled',
      'qemu-7.2': 'disabled',
    });
  });

  it("qemu-7.2 has qemu-9.2's value for every revision switch the model has", () => {
    expect(build('qemu-7.2').revisions).toEqual(build('qemu-9.2').revisions);
  });
});

describe('built-in builds as deltas (the build-file shape)', () => {
  it('each build after the oldest names an earlier base and lists only the revisions that differ from it', () => {
    const [oldest, ...rest] = BUILTIN_DELTAS;
    expect(oldest!.base).toBeUndefined();
    const seen = new Set([oldest!.name]);
    for (const d of rest) {
      expect(seen.has(d.base!), `${d.name}: base ${d.base}`).toBe(true);
      const base = build(d.base!).revisions;
      for (const [key, value] of Object.entries(d.revisions)) {
        expect(value, `${d.name}.${key} repeats its base`).not.toEqual(base[key as keyof typeof base]);
      }
      seen.add(d.name);
    }
  });

  it('resolves to whole builds: every revision of the oldest is set on every build', () => {
    const keys = Object.keys(BUILTIN_DELTAS[0]!.revisions).sort();
    for (const b of BUILTIN_BUILDS) expect(Object.keys(b.revisions).sort(), b.name).toEqual(keys);
    expect(build('qemu-1.3').revisions).toEqual({
      ...build('qemu-1.2').revisions,
      virtioSerialPortOpen: 'timer',
    });
    expect(build('qemu-7.2').revisions).toEqual(build('qemu-9.2').revisions);
  });
});
