import { BUILTIN_BUILDS, SERIAL_SUBSECTIONS } from '../model/migration/builds.js';
import { qemuFieldName } from '../model/migration/hostile.js';
import { serialStateSection } from '../model/migration/serial-section.js';
import type { VmField } from '../model/migration/vmstate.js';
import { beInt, type Cursor, hex } from './cursor.js';
import {
  type DecodedBody,
  type DecodedSubsection,
  nextNameHasPrefix,
  QEMU_VM_SUBSECTION,
  subsectionHeader,
  type Value,
} from './vmdesc.js';

/**
 * The "serial" section of a real stream, decoded with the model's own field descriptions
 * (src/model/migration/serial-section.ts, the modern build's: every subsection). QEMU 7.2
 * saves `vmstate_isa_serial`, whose one field is `VMSTATE_STRUCT(state, ..., vmstate_serial)`:
 * the inner description is always read at its own version (3), whatever the section's
 * version says, and its subsections follow the inner fields.
 */

/** The newest built-in build that knows every serial subsection describes the section. */
const modern = [...BUILTIN_BUILDS]
  .reverse()
  .find((b) => b.revisions.serialSubsections.length === SERIAL_SUBSECTIONS.length)!;
const section = serialStateSection(modern.revisions);

function readModelField(c: Cursor, f: VmField<unknown, unknown>, where: string): Value {
  const t = f.type;
  if (typeof t === 'object') {
    if ('custom' in t) c.fail(`${where}: field ${f.name} has no fixed layout`);
    return hex(c.bytes(t.buffer, where));
  }
  switch (t) {
    case 'u8':
      return c.u8(where);
    case 'bool':
      return c.u8(where) !== 0;
    case 'u16':
      return c.be16(where);
    case 'u32':
      return c.be32(where);
    case 'i32':
      return beInt(c.bytes(4, where));
    case 'i64':
      return beInt(c.bytes(8, where));
  }
}

function readFields(c: Cursor, fields: readonly VmField<unknown, unknown>[], version: number, where: string) {
  const out: Record<string, Value> = {};
  for (const f of fields) {
    if ((f.since ?? 0) <= version) out[qemuFieldName(f.name)] = readModelField(c, f, `${where}.${f.name}`);
  }
  return out;
}

/** The body of a serial section (between its header and its footer). */
export function decodeSerial(c: Cursor): DecodedBody {
  const fields = readFields(c, section.fields as VmField<unknown, unknown>[], section.version, 'serial');
  const subsections: DecodedSubsection[] = [];
  // vmstate_subsection_load: a subsection belongs to this description if its name has the prefix.
  while (c.peek() === QEMU_VM_SUBSECTION && nextNameHasPrefix(c, `${section.name}/`)) {
    const h = subsectionHeader(c);
    const sub = section.subsections.find((s) => s.name === h.name);
    if (!sub) c.fail(`unknown serial subsection ${h.name}`, h.offset);
    if (h.version > sub.version)
      c.fail(`${h.name}: version ${h.version} is newer than ${sub.version}`, h.offset);
    subsections.push({
      ...h,
      fields: readFields(c, sub.fields as VmField<unknown, unknown>[], h.version, h.name),
    });
  }
  return { fields, subsections };
}
