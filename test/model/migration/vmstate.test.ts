import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  LoadError,
  QEMU_VM_CONFIGURATION,
  QEMU_VM_EOF,
  QEMU_VM_FILE_MAGIC,
  QEMU_VM_FILE_VERSION,
  QEMU_VM_SECTION_FOOTER,
  QEMU_VM_SECTION_FULL,
  QEMU_VM_SUBSECTION,
  StreamReader,
  StreamWriter,
} from '../../../src/model/migration/stream.js';
import {
  custom,
  field,
  fieldAt,
  keyFromMessage,
  loadSection,
  loadStream,
  saveSection,
  saveStream,
  type VmEntry,
  type VmSection,
  type VmSubsection,
  vmEntry,
} from '../../../src/model/migration/vmstate.js';

/** A toy device: one field of every kind, a late field, two subsections, a custom list. */
interface Toy {
  a: number; // u8, at most 200
  b: number; // u16
  c: number; // u32
  d: number; // i32
  e: number; // i64: an expiry, -1 = none
  f: boolean;
  buf: Uint8Array; // 4 bytes
  late: number; // u8, since version 3
  extra: number; // u32 in toy/extra, at most 1000
  inner: { x: number }; // i32 in toy/list
  items: number[]; // u16 each, at most MAX_ITEMS, in toy/list
  /** Set by preLoad to -1, rebuilt by postLoad: QEMU's thr_ipending pattern. */
  derived: number;
}

interface Ctx {
  /** A compat flag the machine type implies (like RHEL's migrate_pre_2_2). */
  oldMachine: boolean;
}

const MAX_ITEMS = 8;
const CTX: Ctx = { oldMachine: false };
const MACHINE = 'pc-i440fx-2.3';

function makeToy(): Toy {
  return {
    a: 0,
    b: 0,
    c: 0,
    d: 0,
    e: -1,
    f: false,
    buf: new Uint8Array(4),
    late: 0,
    extra: 0,
    inner: { x: 0 },
    items: [],
    derived: 0,
  };
}

/** A custom part: u8 count, bounded before the loop, then be16 items. */
const itemsCodec = {
  save(w: StreamWriter, o: Toy): void {
    w.u8(o.items.length);
    for (const v of o.items) w.be16(v);
  },
  load(r: StreamReader, o: Toy): void {
    const n = r.u8();
    if (n > MAX_ITEMS) throw new LoadError(`toy/list: ${n} items, at most ${MAX_ITEMS}`, 'toy-items');
    const items: number[] = [];
    for (let i = 0; i < n; i++) items.push(r.be16());
    o.items = items;
  },
};

const extraSub: VmSubsection<Toy, Ctx> = {
  name: 'toy/extra',
  version: 1,
  needed: (o, ctx) => o.extra !== 0 && !ctx.oldMachine,
  fields: [field<Toy>('extra', 'u32', { max: 1000 })],
};

const listSub: VmSubsection<Toy, Ctx> = {
  name: 'toy/list',
  version: 1,
  needed: (o) => o.inner.x !== 0 || o.items.length > 0,
  fields: [fieldAt<Toy>('inner.x', 'i32'), custom<Toy, Ctx>('items', itemsCodec)],
};

const toySection: VmSection<Toy, Ctx> = {
  name: 'toy',
  version: 3,
  minVersion: 2,
  fields: [
    field<Toy>('a', 'u8', { max: 200 }),
    field<Toy>('b', 'u16'),
    field<Toy>('c', 'u32'),
    field<Toy>('d', 'i32'),
    field<Toy>('e', 'i64'),
    field<Toy>('f', 'bool'),
    field<Toy>('buf', { buffer: 4 }),
    field<Toy>('late', 'u8', { since: 3 }),
  ],
  subsections: [extraSub, listSub],
  preLoad: (o) => {
    o.derived = -1;
  },
  postLoad: (o, _ctx, versionId) => {
    if (versionId < 3) o.late = 0;
    o.derived = o.a + o.b;
    // Both strings lack the closing parenthesis, as serial_post_load's do.
    if (o.f && o.a === 0) return `inconsistent state in toy device (f set, a=${o.a}`;
    if (o.items.length > 0 && o.inner.x < 0)
      return { message: 'toy: items with negative x', key: 'toy-negative-x' };
    return null;
  },
};

/** The invariants a successful load must leave: every field in its declared range. */
function inRange(o: Toy): boolean {
  const int = (v: number, lo: number, hi: number) => Number.isInteger(v) && v >= lo && v <= hi;
  return (
    int(o.a, 0, 200) &&
    int(o.b, 0, 0xffff) &&
    int(o.c, 0, 0xffffffff) &&
    int(o.d, -0x80000000, 0x7fffffff) &&
    (o.e === -1 || int(o.e, 0, Number.MAX_SAFE_INTEGER)) &&
    typeof o.f === 'boolean' &&
    o.buf instanceof Uint8Array &&
    o.buf.length === 4 &&
    int(o.late, 0, 0xff) &&
    int(o.extra, 0, 1000) &&
    int(o.inner.x, -0x80000000, 0x7fffffff) &&
    o.items.length <= MAX_ITEMS &&
    o.items.every((v) => int(v, 0, 0xffff)) &&
    !(o.f && o.a === 0) &&
    !(o.items.length > 0 && o.inner.x < 0) &&
    o.derived === o.a + o.b
  );
}

/** Two instances, as QEMU numbers several devices of one kind. */
function entries(t0: Toy, t1: Toy, section: VmSection<Toy, Ctx> = toySection): VmEntry<Ctx>[] {
  return [vmEntry(section, t0, 0), vmEntry(section, t1, 1)];
}

function sample(): Toy {
  return {
    a: 17,
    b: 0xbeef,
    c: 0xdeadbeef,
    d: -5,
    e: 123_456_789_012,
    f: true,
    buf: new Uint8Array([1, 2, 3, 4]),
    late: 9,
    extra: 999,
    inner: { x: -7 },
    items: [],
    derived: 17 + 0xbeef,
  };
}

function loadErrorOf(fn: () => unknown): LoadError {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof LoadError)) throw e;
    return e;
  }
  throw new Error('expected a LoadError');
}

/** Loads one toy stream into fresh destinations; returns instance 0. */
/** Loads into two toy instances (as saveStream(entries(...)) makes); `only` registers one. */
function migrate(bytes: Uint8Array, section = toySection, only = false): Toy {
  const d0 = makeToy();
  loadStream(bytes, only ? [vmEntry(section, d0, 0)] : entries(d0, makeToy(), section), CTX, MACHINE);
  return d0;
}

/** A stream built by hand: header, configuration, then `body`, then EOF. */
function handStream(body: (w: StreamWriter) => void, machine = MACHINE): Uint8Array {
  const w = new StreamWriter();
  w.be32(QEMU_VM_FILE_MAGIC);
  w.be32(QEMU_VM_FILE_VERSION);
  w.u8(QEMU_VM_CONFIGURATION);
  w.be32(machine.length);
  w.bytes(new TextEncoder().encode(machine));
  body(w);
  w.u8(QEMU_VM_EOF);
  return w.finish();
}

/** One full toy section record whose body is written by `body`. */
function toyRecord(
  w: StreamWriter,
  body: (w: StreamWriter) => void,
  version = 3,
  id = 0,
  idstr = 'toy',
): void {
  w.u8(QEMU_VM_SECTION_FULL);
  w.be32(id);
  w.str8(idstr);
  w.be32(0);
  w.be32(version);
  body(w);
  w.u8(QEMU_VM_SECTION_FOOTER);
  w.be32(id);
}

describe('vmstate engine', () => {
  it('round-trips a record, and re-saving gives identical bytes', () => {
    const src = sample();
    const src1 = { ...sample(), a: 3, f: false, extra: 0, inner: { x: 4 }, items: [1, 0xffff] };
    const bytes = saveStream(entries(src, src1), CTX, MACHINE);
    const d0 = makeToy();
    const d1 = makeToy();
    loadStream(bytes, entries(d0, d1), CTX, MACHINE);
    expect(d0).toEqual(src);
    expect(d1).toEqual({ ...src1, derived: 3 + 0xbeef });
    expect(saveStream(entries(d0, d1), CTX, MACHINE)).toEqual(bytes);
  });

  it('does not let a loaded buffer alias the stream', () => {
    const bytes = saveStream(entries(sample(), makeToy()), CTX, MACHINE);
    const d0 = migrate(bytes);
    bytes.fill(0);
    expect([...d0.buf]).toEqual([1, 2, 3, 4]);
  });

  it('writes subsections only when needed(), with the QEMU marker, name and version', () => {
    const w = new StreamWriter();
    const t = { ...makeToy(), extra: 5 };
    saveSection(w, toySection, t, CTX);
    const b = w.finish();
    const main = 1 + 2 + 4 + 4 + 8 + 1 + 4 + 1;
    expect(b[main]).toBe(QEMU_VM_SUBSECTION);
    const r = new StreamReader(b.subarray(main + 1));
    expect(r.str8()).toBe('toy/extra');
    expect(r.be32()).toBe(1);
    expect(r.be32()).toBe(5);
    expect(r.remaining).toBe(0);
    const gated = new StreamWriter();
    saveSection(gated, toySection, t, { oldMachine: true });
    expect(gated.length).toBe(main);
  });

  it('keeps the destination value when a subsection is missing', () => {
    const src = { ...sample(), extra: 0 };
    const bytes = saveStream(entries(src, makeToy()), CTX, MACHINE);
    const d0 = { ...makeToy(), extra: 7 };
    loadStream(bytes, entries(d0, makeToy()), CTX, MACHINE);
    expect(d0.extra).toBe(7);
    expect(d0.a).toBe(17);
  });

  it('loads an older version without the fields it lacks (since)', () => {
    const v2 = { ...toySection, version: 2 };
    const bytes = saveStream(entries(sample(), makeToy(), v2), CTX, MACHINE);
    const d0 = migrate(bytes);
    expect(d0.late).toBe(0);
    expect(d0.e).toBe(sample().e);
  });

  it('fails on a subsection the destination does not know', () => {
    const newer: VmSection<Toy, Ctx> = {
      ...toySection,
      subsections: [
        ...toySection.subsections,
        { name: 'toy/new', version: 1, needed: () => true, fields: [] },
      ],
    };
    const e = loadErrorOf(() => migrate(saveStream(entries(sample(), makeToy(), newer), CTX, MACHINE)));
    expect(e.message).toBe(
      "toy: unknown subsection 'toy/new': error while loading state for instance 0x0 of device 'toy'",
    );
    expect(e.key).toBe('unknown-subsection');
    expect(e.section).toBe('toy');
    expect(e.instanceId).toBe(0);
  });

  it('fails on a subsection version above the local one, or a duplicate subsection', () => {
    const newerExtra = { ...toySection, subsections: [{ ...extraSub, version: 2 }, listSub] };
    const e = loadErrorOf(() => migrate(saveStream(entries(sample(), makeToy(), newerExtra), CTX, MACHINE)));
    expect(e.key).toBe('unknown-subsection');
    expect(e.message).toContain("toy: unknown subsection 'toy/extra' (incoming version_id 2 is too new");
    const twice = { ...toySection, subsections: [extraSub, { ...extraSub, name: 'toy/extra' }] };
    const dup = loadErrorOf(() => migrate(saveStream(entries(sample(), makeToy(), twice), CTX, MACHINE)));
    expect(dup.key).toBe('duplicate-subsection');
  });

  it('fails on a section version too new or too old', () => {
    const v4 = { ...toySection, version: 4 };
    const tooNew = loadErrorOf(() => migrate(saveStream(entries(sample(), makeToy(), v4), CTX, MACHINE)));
    expect(tooNew.message).toBe(
      "toy: incoming version_id 4 is too new for local version_id 3: error while loading state for instance 0x0 of device 'toy'",
    );
    expect(tooNew.key).toBe('version-too-new');
    const v1 = { ...toySection, version: 1 };
    const tooOld = loadErrorOf(() => migrate(saveStream(entries(sample(), makeToy(), v1), CTX, MACHINE)));
    expect(tooOld.message).toMatch(/^toy: incoming version_id 1 is too old for local minimum version_id 2: /);
    expect(tooOld.key).toBe('version-too-old');
  });

  it("wraps a postLoad failure in QEMU's outer context", () => {
    const bad = { ...sample(), a: 0 };
    const e = loadErrorOf(() => migrate(saveStream(entries(bad, makeToy()), CTX, MACHINE)));
    expect(e.message).toBe(
      "inconsistent state in toy device (f set, a=0: error while loading state for instance 0x0 of device 'toy'",
    );
    expect(e.key).toBe('inconsistent-state-in-toy-device-f-set-a');
    const neg = { ...sample(), items: [1] };
    const e1 = loadErrorOf(() => {
      const d = [makeToy(), makeToy()] as const;
      loadStream(saveStream(entries(makeToy(), neg), CTX, MACHINE), entries(d[0], d[1]), CTX, MACHINE);
    });
    expect(e1.message).toBe(
      "toy: items with negative x: error while loading state for instance 0x1 of device 'toy'",
    );
    expect(e1.key).toBe('toy-negative-x');
    expect(e1.instanceId).toBe(1);
  });

  it('rejects out-of-range field values', () => {
    const overMax = handStream((w) =>
      toyRecord(w, (b) => {
        b.u8(201);
      }),
    );
    const e = loadErrorOf(() => migrate(overMax));
    expect(e.message).toBe(
      "toy: field a: value 201 out of range: error while loading state for instance 0x0 of device 'toy'",
    );
    expect(e.key).toBe('field-range');
    const body = (bool: number, e64: (w: StreamWriter) => void) => (b: StreamWriter) => {
      b.u8(1);
      b.be16(0);
      b.be32(0);
      b.i32(0);
      e64(b);
      b.u8(bool);
      b.bytes(new Uint8Array(4));
      b.u8(0);
    };
    // get_bool (migration/vmstate-types.c) stores any byte into a C bool: 2 loads as true.
    expect(
      migrate(
        handStream((w) =>
          toyRecord(
            w,
            body(2, (b) => b.be64(0)),
          ),
        ),
        toySection,
        true,
      ),
    ).toMatchObject({ f: true });
    const badI64 = handStream((w) =>
      toyRecord(
        w,
        body(0, (b) => {
          b.be32(0xffffffff);
          b.be32(0xfffffffe);
        }),
      ),
    );
    expect(loadErrorOf(() => migrate(badI64)).message).toMatch(
      /^toy: field e: value 0xfffffffffffffffe out of range/,
    );
    expect(
      migrate(
        handStream((w) =>
          toyRecord(
            w,
            body(1, (b) => b.be64(-1)),
          ),
        ),
        toySection,
        true,
      ),
    ).toMatchObject({ a: 1, f: true });
  });

  it('lets a custom loader bound its counts', () => {
    const w = new StreamWriter();
    saveSection(w, toySection, { ...makeToy(), inner: { x: 1 } }, CTX);
    const b = w.finish();
    b[b.length - 1] = 200; // the item count
    const e = loadErrorOf(() => loadSection(new StreamReader(b), toySection, makeToy(), CTX, 3));
    expect(e.key).toBe('toy-items');
  });
});

describe('migration stream', () => {
  it('fails on a section the destination does not have', () => {
    const ghost: VmSection<Toy, Ctx> = { ...toySection, name: 'ghost' };
    const bytes = saveStream([vmEntry(ghost, sample())], CTX, MACHINE);
    const e = loadErrorOf(() => migrate(bytes));
    expect(e.message).toBe("Unknown savevm section or instance 'ghost' 0");
    expect(e.key).toBe('unknown-section');
    const third = saveStream([vmEntry(toySection, sample(), 2)], CTX, MACHINE);
    expect(loadErrorOf(() => migrate(third)).key).toBe('unknown-section');
  });

  it('fails on a different machine type', () => {
    const bytes = saveStream(entries(sample(), makeToy()), CTX, 'pc-i440fx-rhel7.0.0');
    const e = loadErrorOf(() => migrate(bytes));
    expect(e.message).toBe("Machine type received is 'pc-i440fx-rhel7.0.0' and local is 'pc-i440fx-2.3'");
    expect(e.key).toBe('machine-mismatch');
    expect(e.section).toBeNull();
  });

  it('fails on a section the stream lacks, and on a repeated one', () => {
    const lacking = loadErrorOf(() =>
      loadStream(
        handStream(() => {}),
        entries(makeToy(), makeToy()),
        CTX,
        MACHINE,
      ),
    );
    expect(lacking.message).toBe("section 'toy' instance 0 is missing from the migration stream");
    expect(lacking.key).toBe('missing-section');
    const w = new StreamWriter();
    saveSection(w, toySection, sample(), CTX);
    const body = w.finish();
    const twice = handStream((s) => {
      toyRecord(s, (b) => b.bytes(body), 3, 0);
      toyRecord(s, (b) => b.bytes(body), 3, 1);
    });
    const e = loadErrorOf(() => migrate(twice));
    expect(e.message).toBe("Duplicate savevm section 'toy' 0");
    expect(e.key).toBe('duplicate-section');
  });

  it('checks header, footer, section types and trailing bytes', () => {
    const good = saveStream(entries(sample(), makeToy()), CTX, MACHINE);
    const keyOf = (b: Uint8Array) => loadErrorOf(() => migrate(b)).key;
    expect(keyOf(new Uint8Array(0))).toBe('truncated');
    const patched = (at: number, v: number) => {
      const b = good.slice();
      b[at] = v;
      return b;
    };
    expect(keyOf(patched(0, 0x52))).toBe('bad-magic');
    expect(keyOf(patched(7, 2))).toBe('bad-version');
    expect(keyOf(patched(8, QEMU_VM_SECTION_FULL))).toBe('no-configuration');
    const afterConfig = 8 + 1 + 4 + MACHINE.length;
    expect(keyOf(patched(afterConfig, 0x03))).toBe('unknown-section-type');
    const w = new StreamWriter();
    saveSection(w, toySection, sample(), CTX);
    const footerAt = afterConfig + 1 + 4 + 1 + 3 + 4 + 4 + w.length;
    expect(good[footerAt]).toBe(QEMU_VM_SECTION_FOOTER);
    expect(keyOf(patched(footerAt, 0))).toBe('missing-footer');
    const e = loadErrorOf(() => migrate(patched(footerAt + 4, 9)));
    expect(e.message).toBe('Mismatched section id in footer for toy - read 0x9 expected 0x0');
    expect(e.key).toBe('footer-mismatch');
    const trailing = new Uint8Array(good.length + 1);
    trailing.set(good);
    expect(keyOf(trailing)).toBe('trailing-bytes');
  });

  it('wraps a truncation inside a section with the device context', () => {
    const good = saveStream(entries(sample(), makeToy()), CTX, MACHINE);
    const afterConfig = 8 + 1 + 4 + MACHINE.length;
    const e = loadErrorOf(() => migrate(good.subarray(0, afterConfig + 1 + 4 + 4 + 4 + 4 + 3)));
    expect(e.key).toBe('truncated');
    expect(e.message).toMatch(
      /^stream truncated: .*: error while loading state for instance 0x0 of device 'toy'$/,
    );
  });

  it('derives stable keys from post-load messages', () => {
    expect(keyFromMessage('inconsistent state in serial device (tsr not empty, tsr_retry=0')).toBe(
      'inconsistent-state-in-serial-device-tsr-not-empty-tsr-retry',
    );
    expect(keyFromMessage('42')).toBe('post-load');
  });
});

describe('hostile streams', () => {
  const toyArb: fc.Arbitrary<Toy> = fc
    .record({
      a: fc.integer({ min: 0, max: 200 }),
      b: fc.integer({ min: 0, max: 0xffff }),
      c: fc.integer({ min: 0, max: 0xffffffff }),
      d: fc.integer({ min: -0x80000000, max: 0x7fffffff }),
      e: fc.oneof(fc.constant(-1), fc.maxSafeNat()),
      f: fc.boolean(),
      buf: fc.uint8Array({ minLength: 4, maxLength: 4 }),
      late: fc.integer({ min: 0, max: 0xff }),
      extra: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 1000 })),
      x: fc.oneof(fc.constant(0), fc.integer({ min: -0x80000000, max: 0x7fffffff })),
      items: fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: MAX_ITEMS }),
    })
    .map(({ x, ...t }) => {
      const toy = { ...t, inner: { x }, derived: t.a + t.b };
      // Keep the source valid: postLoad's invariants hold on a device that never migrated.
      if (toy.f && toy.a === 0) toy.a = 1;
      if (toy.items.length > 0 && x < 0) toy.inner.x = -x - 1;
      toy.derived = toy.a + toy.b;
      return toy;
    });

  /** Loads `bytes` into fresh devices: only LoadError may escape; a success leaves ranges intact. */
  function checkHostile(bytes: Uint8Array): void {
    const d0 = makeToy();
    const d1 = makeToy();
    try {
      loadStream(bytes, entries(d0, d1), CTX, MACHINE);
    } catch (e) {
      if (e instanceof LoadError) return;
      throw e;
    }
    expect(inRange(d0) && inRange(d1)).toBe(true);
  }

  it('round-trips any valid record, byte-identically', () => {
    fc.assert(
      fc.property(toyArb, toyArb, (t0, t1) => {
        const bytes = saveStream(entries(t0, t1), CTX, MACHINE);
        const d0 = makeToy();
        const d1 = makeToy();
        loadStream(bytes, entries(d0, d1), CTX, MACHINE);
        expect(d0).toEqual(t0);
        expect(d1).toEqual(t1);
        expect(saveStream(entries(d0, d1), CTX, MACHINE)).toEqual(bytes);
      }),
      { seed: 1, numRuns: 500 },
    );
  });

  it('fails every truncation of a valid stream with LoadError', () => {
    const t1 = { ...sample(), f: false, inner: { x: 3 }, items: [1, 2, 3] };
    const good = saveStream(entries(sample(), t1), CTX, MACHINE);
    for (let n = 0; n < good.length; n++) {
      expect(() => migrate(good.subarray(0, n))).toThrow(LoadError);
    }
  });

  it('only ever throws LoadError on random bytes', () => {
    const header = handStream(() => {}).subarray(0, -1);
    fc.assert(
      fc.property(fc.boolean(), fc.uint8Array({ maxLength: 120 }), (withHeader, tail) => {
        const bytes = new Uint8Array((withHeader ? header.length : 0) + tail.length);
        if (withHeader) bytes.set(header);
        bytes.set(tail, withHeader ? header.length : 0);
        checkHostile(bytes);
      }),
      { seed: 1, numRuns: 3000 },
    );
  });

  it('only ever throws LoadError on byte flips of a valid stream, and a success stays in range', () => {
    const flip = fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 0xff }) });
    fc.assert(
      fc.property(toyArb, toyArb, fc.array(flip, { minLength: 1, maxLength: 4 }), (t0, t1, flips) => {
        const bytes = saveStream(entries(t0, t1), CTX, MACHINE);
        for (const { at, value } of flips) bytes[at % bytes.length] = value;
        checkHostile(bytes);
      }),
      { seed: 1, numRuns: 3000 },
    );
  });
});
