/**
 * The JSON description QEMU appends to a stream (QEMU_VM_VMDESCRIPTION, migration/savevm.c
 * and the vmsd_desc_* writers of migration/vmstate.c), and a walker that decodes a device's
 * section with it, as QEMU's scripts/analyze-migration.py does: each field is `size` bytes
 * (per element when `array_len` is given), a `struct` field nests a description whose `size`
 * covers its subsections too, and `subsections` lists, in order, the subsections the source
 * actually sent.
 */
import { beInt, beUint, type Cursor, hex } from './cursor.js';

export const QEMU_VM_SUBSECTION = 0x05;

export interface DescField {
  name: string;
  type: string;
  size: number;
  array_len?: number;
  index?: number;
  struct?: Desc;
}

export interface Desc {
  vmsd_name?: string;
  version?: number;
  fields?: DescField[];
  subsections?: Desc[];
}

export interface DescDevice extends Desc {
  name: string;
  instance_id: number;
}

export interface VmDescription {
  page_size: number;
  devices: DescDevice[];
}

/** A decoded value: integers (bigint beyond 2^53), booleans, hex strings, records, lists. */
export type Value = number | bigint | boolean | string | Value[] | { [name: string]: Value };

export interface DecodedSubsection {
  name: string;
  version: number;
  offset: number;
  fields: Record<string, Value>;
  subsections?: DecodedSubsection[];
}

export interface DecodedBody {
  fields: Record<string, Value>;
  subsections: DecodedSubsection[];
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null;

/** Checks the parts of the JSON the walker relies on; anything else is ignored. */
export function parseVmDescription(text: string, fail: (why: string) => never): VmDescription {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(`the stream's JSON description does not parse (${(e as Error).message})`);
  }
  if (!isObject(json) || !Array.isArray(json.devices)) fail('the JSON description has no "devices" list');
  const checkDesc = (d: unknown, where: string, depth: number): void => {
    if (depth > 32) fail(`${where}: descriptions nested too deep`);
    if (!isObject(d)) fail(`${where}: not an object`);
    for (const f of (d.fields ?? []) as unknown[]) {
      if (!isObject(f) || typeof f.name !== 'string' || typeof f.type !== 'string')
        fail(`${where}: a field without name or type`);
      // Decoded values are keyed by name: a name that is an object's own machinery is refused.
      if (f.name in Object.prototype) fail(`${where}: field name ${JSON.stringify(f.name)} is not allowed`);
      if (!(Number.isSafeInteger(f.size) && (f.size as number) >= 0))
        fail(`${where}.${f.name}: bad size ${String(f.size)}`);
      const n = f.array_len;
      if (n !== undefined && !(Number.isSafeInteger(n) && (n as number) >= 0))
        fail(`${where}.${f.name}: bad array_len ${String(n)}`);
      if (f.type === 'struct') checkDesc(f.struct, `${where}.${f.name}`, depth + 1);
    }
    if (d.fields !== undefined && !Array.isArray(d.fields)) fail(`${where}: "fields" is not a list`);
    if (d.subsections !== undefined && !Array.isArray(d.subsections))
      fail(`${where}: "subsections" is not a list`);
    for (const s of (d.subsections ?? []) as unknown[]) {
      checkDesc(s, where, depth + 1);
      const name = (s as Desc).vmsd_name;
      if (typeof name !== 'string' || name in Object.prototype)
        fail(`${where}: a subsection without a usable vmsd_name`);
    }
  };
  for (const d of json.devices as unknown[]) {
    if (!isObject(d) || typeof d.name !== 'string' || !Number.isSafeInteger(d.instance_id))
      fail('the JSON description has a device without name or instance_id');
    checkDesc(d, d.name, 0);
  }
  return json as unknown as VmDescription;
}

/** The value of `size` bytes of a given vmstate type (vmfield_get_type_name's names). */
function scalar(type: string, b: Uint8Array): Value {
  if (type === 'bool') return b.length === 1 ? b[0] !== 0 : hex(b);
  if (b.length > 8 || b.length === 0) return hex(b);
  if (type === 'int32 le') return beInt(Uint8Array.from(b).reverse());
  if (/^int(8|16|32|64)( equal)?$/.test(type)) return beInt(b);
  if (/^uint(8|16|32|64)( equal)?$/.test(type) || type === 'timer') return beUint(b);
  return hex(b);
}

/** Reads a subsection header: QEMU_VM_SUBSECTION, counted name, be32 version. */
export function subsectionHeader(c: Cursor): { name: string; version: number; offset: number } {
  const offset = c.pos;
  if (c.u8('subsection marker') !== QEMU_VM_SUBSECTION) c.fail('expected a subsection (0x05)', offset);
  return { name: c.str8('subsection name'), version: c.be32('subsection version'), offset };
}

/**
 * Whether the next subsection's name starts with `prefix`: vmstate_subsection_load ends a
 * description's subsections at the first name without it. Peeks only.
 */
export function nextNameHasPrefix(c: Cursor, prefix: string): boolean {
  const len = c.buf[c.pos + 1];
  if (len === undefined || c.pos + 2 + len > c.buf.length) return false;
  for (let i = 0; i < prefix.length; i++) if (c.buf[c.pos + 2 + i] !== prefix.charCodeAt(i)) return false;
  return len >= prefix.length;
}

/** Decodes one description's fields and listed subsections (VMSDFieldStruct.read). */
export function walkDesc(c: Cursor, d: Desc, where: string): DecodedBody {
  const fields: Record<string, Value> = {};
  for (const f of d.fields ?? []) {
    const n = f.array_len ?? 1;
    const values: Value[] = [];
    for (let i = 0; i < n; i++) values.push(readField(c, f, `${where}.${f.name}`));
    if (f.array_len !== undefined) fields[f.name] = values;
    else if (f.index !== undefined) {
      const list = fields[f.name] ?? [];
      if (!Array.isArray(list)) c.fail(`${where}.${f.name}: an indexed field after a plain one of that name`);
      list.push(values[0]!);
      fields[f.name] = list;
    } else fields[f.name] = values[0]!;
  }
  const subsections: DecodedSubsection[] = [];
  for (const s of d.subsections ?? []) {
    const h = subsectionHeader(c);
    if (h.name !== s.vmsd_name)
      c.fail(`${where}: expected subsection ${s.vmsd_name}, found ${h.name}`, h.offset);
    const body = walkDesc(c, s, h.name);
    subsections.push({
      ...h,
      fields: body.fields,
      ...(body.subsections.length ? { subsections: body.subsections } : {}),
    });
  }
  return { fields, subsections };
}

function readField(c: Cursor, f: DescField, where: string): Value {
  if (f.type !== 'struct' || !f.struct) return scalar(f.type, c.bytes(f.size, where));
  const start = c.pos;
  const body = walkDesc(c, f.struct, where);
  // The size QEMU recorded covers the struct's fields and subsections: a cross-check.
  if (c.pos - start !== f.size)
    c.fail(`${where}: described as ${f.size} bytes, decoded ${c.pos - start}`, start);
  const out: Record<string, Value> = { ...body.fields };
  for (const s of body.subsections) out[s.name] = s.fields;
  return out;
}
