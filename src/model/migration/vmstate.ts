/**
 * Device sections described as data, with one generic engine to save and load them: QEMU's
 * VMStateDescription (include/migration/vmstate.h) and migration/vmstate.c, plus the stream
 * framing of migration/savevm.c. A device declares name, version, minimum version, fields
 * (with `since`), subsections with `needed()`, and pre/post hooks; nothing else in the model
 * reads or writes section bytes (DESIGN.md example 4).
 *
 * Loading faces a possibly hostile stream: a value is checked against the range its field
 * declares (the checks the build's QEMU has, and the bounds the model's arithmetic needs)
 * before it reaches the target object, lengths are bounded before use, and every failure is a
 * LoadError. What QEMU accepts and then mishandles is accepted here too, and judged after the
 * load (the unsafe-load oracle). A failed
 * load may leave the target half-written (QEMU too): the caller discards the destination.
 */
import { assert, fail } from '../assert.js';
import type { Bus } from '../bus.js';
import {
  decodeInt64,
  hex64,
  LoadError,
  QEMU_VM_CONFIGURATION,
  QEMU_VM_EOF,
  QEMU_VM_FILE_MAGIC,
  QEMU_VM_FILE_VERSION,
  QEMU_VM_FILE_VERSION_COMPAT,
  QEMU_VM_SECTION_FOOTER,
  QEMU_VM_SECTION_FULL,
  QEMU_VM_SUBSECTION,
  StreamReader,
  StreamWriter,
} from './stream.js';

export type VmValue = number | boolean | Uint8Array;

/** Big-endian integers as QEMU's VMSTATE_UINT8/16/32, VMSTATE_INT32, VMSTATE_INT64. */
export type IntType = 'u8' | 'u16' | 'u32' | 'i32' | 'i64';

/**
 * 'bool' is a u8: any nonzero byte loads as true, as QEMU's get_bool stores it into a C bool
 * (the model accepts exactly what QEMU accepts). `{ buffer: N }` is exactly N raw bytes
 * (VMSTATE_BUFFER).
 */
export type ScalarType = IntType | 'bool' | { buffer: number };

/**
 * A variable-shaped part (QEMU's VMStateInfo get/put, or a device's own save/load function
 * such as virtio_serial_save_device). `load` must validate everything it reads, bound every
 * count before looping or allocating, and throw LoadError on bad input.
 */
export interface CustomCodec<T, C> {
  save(w: StreamWriter, o: T, ctx: C): void;
  load(r: StreamReader, o: T, ctx: C, versionId: number): void;
}

export type FieldType<T, C> = ScalarType | { custom: CustomCodec<T, C> };

/**
 * One field. `get`/`set` are required for every type except `custom` (which reads and writes
 * the object itself). `since`: the first section version carrying the field (VMSTATE_*_V).
 * `min`/`max`: a loaded integer outside them fails the load ('field-range'); they are not
 * checked on save, so a source that sends what the destination refuses is a finding, not a
 * crash.
 */
export interface VmField<T, C = unknown> {
  name: string;
  type: FieldType<T, C>;
  since?: number;
  min?: number;
  max?: number;
  get?(o: T): VmValue;
  set?(o: T, v: VmValue): void;
}

/** A post-load failure with its own dedup key (kebab-case). */
export interface PostLoadError {
  message: string;
  key: string;
}

/**
 * What a postLoad returns: null/undefined for success; a string fails the load with that
 * message and a key derived from it (keyFromMessage); a PostLoadError sets the key itself.
 */
export type PostLoadResult = string | PostLoadError | null | undefined;

export interface VmSubsection<T, C = unknown> {
  /** "<section>/<what>", as QEMU names them ("serial/tsr"). */
  name: string;
  version: number;
  /** Oldest incoming version accepted; defaults to `version`. */
  minVersion?: number;
  needed(o: T, ctx: C): boolean;
  fields: readonly VmField<T, C>[];
  preSave?(o: T, ctx: C): void;
  preLoad?(o: T, ctx: C): void;
  postLoad?(o: T, ctx: C, versionId: number): PostLoadResult;
}

export interface VmSection<T, C = unknown> {
  name: string;
  version: number;
  minVersion: number;
  fields: readonly VmField<T, C>[];
  subsections: readonly VmSubsection<T, C>[];
  preSave?(o: T, ctx: C): void;
  preLoad?(o: T, ctx: C): void;
  /** Runs after every subsection (vmstate.c:234); validates and rebuilds derived state. */
  postLoad?(o: T, ctx: C, versionId: number): PostLoadResult;
}

/** A registered section instance (QEMU's SaveStateEntry): idstr = section.name. */
export interface VmEntry<C> {
  section: VmSection<unknown, C>;
  instanceId: number;
  obj: unknown;
  /**
   * A stream without it still loads. QEMU's loadvm never checks that every registered section
   * arrived; the model does, except for a copy that carries nothing another section does not
   * (the core "serial" of serialVmsd 'isa-and-core').
   */
  optional?: boolean;
}

/** An entry with the object's type checked against the section's. */
export function vmEntry<T, C>(section: VmSection<T, C>, obj: T, instanceId = 0): VmEntry<C> {
  return { section: section as VmSection<unknown, C>, instanceId, obj };
}

export interface FieldOpts {
  since?: number;
  min?: number;
  max?: number;
}

type Slots = Record<string, VmValue>;

/** The common case: the field is `o[name]`. */
export function field<T, C = unknown>(
  name: keyof T & string,
  type: ScalarType,
  opts?: FieldOpts,
): VmField<T, C> {
  return {
    name,
    type,
    ...opts,
    get: (o) => (o as unknown as Slots)[name]!,
    set: (o, v) => {
      (o as unknown as Slots)[name] = v;
    },
  };
}

/** A field inside a nested record, by dotted path: `fieldAt<UartState>('recvFifo.head', 'u32')`. */
export function fieldAt<T, C = unknown>(path: string, type: ScalarType, opts?: FieldOpts): VmField<T, C> {
  const parents = path.split('.');
  const leaf = parents.pop()!;
  const holder = (o: T): Slots => {
    let cur: unknown = o;
    for (const p of parents) {
      if (!(typeof cur === 'object' && cur !== null)) fail(`vmstate: bad field path ${path}`);
      cur = (cur as Record<string, unknown>)[p];
    }
    if (!(typeof cur === 'object' && cur !== null)) fail(`vmstate: bad field path ${path}`);
    return cur as Slots;
  };
  return {
    name: path,
    type,
    ...opts,
    get: (o) => holder(o)[leaf]!,
    set: (o, v) => {
      holder(o)[leaf] = v;
    },
  };
}

/**
 * VMSTATE_TIMER_PTR: one of the device's vm_clock timers, which the machine owns, as its
 * expiry (i64, -1 when not pending). Loading is timer_get: -1 deletes the timer, anything
 * else is timer_mod_ns at that expiry.
 */
export function timerField<T extends { m: Bus; dev: number }, C = unknown>(
  name: string,
  timer: number,
): VmField<T, C> {
  return {
    name,
    type: 'i64',
    get: (o) => o.m.timerExpiry(o.dev, timer),
    set: (o, v) => o.m.timerMod(o.dev, timer, v as number),
  };
}

/** A custom (variable-shaped) field. */
export function custom<T, C = unknown>(
  name: string,
  codec: CustomCodec<T, C>,
  opts?: { since?: number },
): VmField<T, C> {
  return { name, type: { custom: codec }, ...opts };
}

/** A stable kebab-case key from a message: lower case, digits and punctuation dropped. */
export function keyFromMessage(message: string): string {
  const key = message
    .toLowerCase()
    .replace(/[^a-z]+/g, '-')
    .slice(0, 80)
    .replace(/^-+|-+$/g, '');
  return key === '' ? 'post-load' : key;
}

// ---------------------------------------------------------------------------------------
// Save (vmstate_save_state_v, vmstate_subsection_save)

function fits(v: number, t: IntType): boolean {
  switch (t) {
    case 'u8':
      return Number.isInteger(v) && v >= 0 && v <= 0xff;
    case 'u16':
      return Number.isInteger(v) && v >= 0 && v <= 0xffff;
    case 'u32':
      return Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
    case 'i32':
      return Number.isInteger(v) && v >= -0x80000000 && v <= 0x7fffffff;
    case 'i64':
      return v === -1 || (Number.isSafeInteger(v) && v >= 0);
  }
}

function getValue<T, C>(desc: string, f: VmField<T, C>, o: T): VmValue {
  if (!(f.get !== undefined)) fail(`${desc}: field ${f.name} has no get`);
  return f.get(o);
}

function saveField<T, C>(w: StreamWriter, desc: string, f: VmField<T, C>, o: T, ctx: C): void {
  const t = f.type;
  if (typeof t === 'object') {
    if ('custom' in t) {
      t.custom.save(w, o, ctx);
      return;
    }
    const v = getValue(desc, f, o);
    assert(
      v instanceof Uint8Array && v.length === t.buffer,
      `${desc}: field ${f.name}: not a ${t.buffer}-byte buffer`,
    );
    w.bytes(v);
    return;
  }
  const v = getValue(desc, f, o);
  if (t === 'bool') {
    if (!(typeof v === 'boolean')) fail(`${desc}: field ${f.name}: not a boolean: ${String(v)}`);
    w.u8(v ? 1 : 0);
    return;
  }
  if (!(typeof v === 'number' && fits(v, t)))
    fail(`${desc}: field ${f.name}: cannot save ${String(v)} as ${t}`);
  switch (t) {
    case 'u8':
      w.u8(v);
      return;
    case 'u16':
      w.be16(v);
      return;
    case 'u32':
      w.be32(v);
      return;
    case 'i32':
      w.i32(v);
      return;
    case 'i64':
      w.be64(v);
      return;
  }
}

/** Every field a given version carries: those with `since <= version` (vmstate.c field loop). */
function saveFields<T, C>(
  w: StreamWriter,
  desc: string,
  fields: readonly VmField<T, C>[],
  version: number,
  o: T,
  ctx: C,
): void {
  for (const f of fields) {
    if ((f.since ?? 0) <= version) saveField(w, desc, f, o, ctx);
  }
}

/**
 * One section's body: preSave, the fields, then every subsection whose needed() holds as
 * QEMU_VM_SUBSECTION, str8 name, be32 version, its fields (vmstate_subsection_save).
 * needed() is asked after preSave, as in QEMU.
 */
export function saveSection<T, C>(w: StreamWriter, section: VmSection<T, C>, o: T, ctx: C): void {
  section.preSave?.(o, ctx);
  saveFields(w, section.name, section.fields, section.version, o, ctx);
  for (const sub of section.subsections) {
    if (!sub.needed(o, ctx)) continue;
    sub.preSave?.(o, ctx);
    w.u8(QEMU_VM_SUBSECTION);
    w.str8(sub.name);
    w.be32(sub.version);
    saveFields(w, sub.name, sub.fields, sub.version, o, ctx);
  }
}

// ---------------------------------------------------------------------------------------
// Load (vmstate_load_state, vmstate_subsection_load)

function outOfRange(top: string, desc: string, name: string, shown: string): LoadError {
  return new LoadError(`${desc}: field ${name}: value ${shown} out of range`, 'field-range', top);
}

function setValue<T, C>(desc: string, f: VmField<T, C>, o: T, v: VmValue): void {
  if (!(f.set !== undefined)) fail(`${desc}: field ${f.name} has no set`);
  f.set(o, v);
}

/** A stream integer of type t; only i64 can be unrepresentable (decodeInt64). */
function readInt(r: StreamReader, t: IntType, top: string, desc: string, name: string): number {
  switch (t) {
    case 'u8':
      return r.u8();
    case 'u16':
      return r.be16();
    case 'u32':
      return r.be32();
    case 'i32':
      return r.i32();
    case 'i64': {
      const hi = r.be32();
      const lo = r.be32();
      const v = decodeInt64(hi, lo);
      if (Number.isNaN(v)) throw outOfRange(top, desc, name, hex64(hi, lo));
      return v;
    }
  }
}

function loadField<T, C>(
  r: StreamReader,
  top: string,
  desc: string,
  f: VmField<T, C>,
  o: T,
  ctx: C,
  versionId: number,
): void {
  const t = f.type;
  if (typeof t === 'object') {
    // A buffer is copied: the target must never alias the stream's bytes.
    if ('custom' in t) t.custom.load(r, o, ctx, versionId);
    else setValue(desc, f, o, r.bytes(t.buffer).slice());
    return;
  }
  if (t === 'bool') {
    setValue(desc, f, o, r.u8() !== 0);
    return;
  }
  const v = readInt(r, t, top, desc, f.name);
  if ((f.max !== undefined && v > f.max) || (f.min !== undefined && v < f.min)) {
    throw outOfRange(top, desc, f.name, String(v));
  }
  setValue(desc, f, o, v);
}

function loadFields<T, C>(
  r: StreamReader,
  top: string,
  desc: string,
  fields: readonly VmField<T, C>[],
  o: T,
  ctx: C,
  versionId: number,
): void {
  for (const f of fields) {
    if ((f.since ?? 0) <= versionId) loadField(r, top, desc, f, o, ctx, versionId);
  }
}

function failOnPostLoad(top: string, res: PostLoadResult): void {
  if (res === null || res === undefined) return;
  if (typeof res === 'string') throw new LoadError(res, keyFromMessage(res), top);
  throw new LoadError(res.message, res.key, top);
}

function subsectionIndex<T, C>(subs: readonly VmSubsection<T, C>[], name: string): number {
  for (let i = 0; i < subs.length; i++) if (subs[i]!.name === name) return i;
  return -1;
}

/**
 * vmstate_subsection_load: read subsections while the next byte is QEMU_VM_SUBSECTION. An
 * unknown name fails (-ENOENT, vmstate.c:599); a missing one is fine, the destination keeps
 * its own value ("There's no check that a subsection is loaded", migration/main.rst).
 * Duplicates fail here (QEMU would load twice); a version above ours counts as unknown.
 */
function loadSubsections<T, C>(r: StreamReader, section: VmSection<T, C>, o: T, ctx: C): void {
  const top = section.name;
  const subs = section.subsections;
  if (!(subs.length <= 31)) fail(`${top}: too many subsections`);
  let seen = 0;
  while (r.peek() === QEMU_VM_SUBSECTION) {
    r.u8();
    const name = r.str8();
    const version = r.be32();
    const i = subsectionIndex(subs, name);
    const sub = subs[i];
    if (sub === undefined)
      throw new LoadError(`${top}: unknown subsection '${name}'`, 'unknown-subsection', top);
    if (version > sub.version) {
      const why = `incoming version_id ${version} is too new for local version_id ${sub.version}`;
      throw new LoadError(`${top}: unknown subsection '${name}' (${why})`, 'unknown-subsection', top);
    }
    const minVersion = sub.minVersion ?? sub.version;
    if (version < minVersion) {
      const msg = `${name}: incoming version_id ${version} is too old for local minimum version_id ${minVersion}`;
      throw new LoadError(msg, 'version-too-old', top);
    }
    if ((seen & (1 << i)) !== 0) {
      throw new LoadError(`${top}: duplicate subsection '${name}'`, 'duplicate-subsection', top);
    }
    seen |= 1 << i;
    sub.preLoad?.(o, ctx);
    loadFields(r, top, name, sub.fields, o, ctx, version);
    failOnPostLoad(top, sub.postLoad?.(o, ctx, version));
  }
}

/**
 * vmstate_load_state: version checks, preLoad, the fields the incoming version carries, the
 * subsections, then postLoad (after all subsections, vmstate.c:234). LoadErrors raised here
 * carry `section` = section.name; the reader's own ('truncated', ...) carry null until
 * loadStream adds the context.
 */
export function loadSection<T, C>(
  r: StreamReader,
  section: VmSection<T, C>,
  o: T,
  ctx: C,
  versionId: number,
): void {
  const top = section.name;
  if (versionId > section.version) {
    const msg = `${top}: incoming version_id ${versionId} is too new for local version_id ${section.version}`;
    throw new LoadError(msg, 'version-too-new', top);
  }
  if (versionId < section.minVersion) {
    const msg = `${top}: incoming version_id ${versionId} is too old for local minimum version_id ${section.minVersion}`;
    throw new LoadError(msg, 'version-too-old', top);
  }
  section.preLoad?.(o, ctx);
  loadFields(r, top, top, section.fields, o, ctx, versionId);
  loadSubsections(r, section, o, ctx);
  failOnPostLoad(top, section.postLoad?.(o, ctx, versionId));
}

// ---------------------------------------------------------------------------------------
// The whole stream (qemu_savevm_state_header/complete, qemu_loadvm_state[_main])

function isPrintableAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

/**
 * The writer of every saveStream, which returns a copy of what it wrote: a save runs to its
 * end before another starts, and a new buffer per save cost more than the bytes written
 * into it. A stream of the modelled machines is 1-2 KiB (most of it virtio-serial's PCI state).
 */
const STREAM_WRITER = new StreamWriter(4096);

/**
 * Every entry as QEMU_VM_SECTION_FULL, section_id, idstr, instance_id, version_id, body,
 * QEMU_VM_SECTION_FOOTER + section_id; after the header and the configuration record that
 * names the machine type (vmstate_configuration: be32 length + name); then QEMU_VM_EOF.
 * Section ids count from 0 in entry order (savevm_state.global_section_id).
 */
export function saveStream<C>(entries: readonly VmEntry<C>[], ctx: C, machineType: string): Uint8Array {
  if (!isPrintableAscii(machineType)) fail(`savevm: machine type is not printable ASCII: ${machineType}`);
  assertUnique(entries);
  const w = STREAM_WRITER;
  w.reset();
  w.be32(QEMU_VM_FILE_MAGIC);
  w.be32(QEMU_VM_FILE_VERSION);
  w.u8(QEMU_VM_CONFIGURATION);
  w.be32(machineType.length);
  for (let i = 0; i < machineType.length; i++) w.u8(machineType.charCodeAt(i));
  for (let id = 0; id < entries.length; id++) {
    const e = entries[id]!;
    w.u8(QEMU_VM_SECTION_FULL);
    w.be32(id);
    w.str8(e.section.name);
    w.be32(e.instanceId);
    w.be32(e.section.version);
    saveSection(w, e.section, e.obj, ctx);
    w.u8(QEMU_VM_SECTION_FOOTER);
    w.be32(id);
  }
  w.u8(QEMU_VM_EOF);
  return w.finish();
}

/** A duplicate idstr/instance is a registration bug: QEMU exits at registration. */
function assertUnique<C>(entries: readonly VmEntry<C>[]): void {
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    const j = findEntry(entries, e.section.name, e.instanceId);
    if (!(j === i)) fail(`savevm: section '${e.section.name}' instance ${e.instanceId} registered twice`);
  }
}

function findEntry<C>(entries: readonly VmEntry<C>[], idstr: string, instanceId: number): number {
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    if (e.section.name === idstr && e.instanceId === instanceId) return i;
  }
  return -1;
}

/** For messages: at most 64 bytes, non-printable ones escaped, so a message stays one line. */
function showBytes(b: Uint8Array): string {
  let s = '';
  const n = Math.min(b.length, 64);
  for (let i = 0; i < n; i++) {
    const c = b[i]!;
    s += c >= 0x20 && c <= 0x7e ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`;
  }
  return b.length > n ? `${s}...` : s;
}

function sameAscii(b: Uint8Array, s: string): boolean {
  if (b.length !== s.length) return false;
  for (let i = 0; i < b.length; i++) if (b[i] !== s.charCodeAt(i)) return false;
  return true;
}

/** qemu_loadvm_state's header checks (savevm.c), then the configuration record. */
function loadHeader(r: StreamReader, machineType: string): void {
  if (r.be32() !== QEMU_VM_FILE_MAGIC) throw new LoadError('Not a migration stream', 'bad-magic');
  const version = r.be32();
  if (version === QEMU_VM_FILE_VERSION_COMPAT) {
    throw new LoadError("SaveVM v2 format is obsolete and don't work anymore", 'bad-version');
  }
  if (version !== QEMU_VM_FILE_VERSION)
    throw new LoadError('Unsupported migration stream version', 'bad-version');
  if (r.u8() !== QEMU_VM_CONFIGURATION)
    throw new LoadError('Configuration section missing', 'no-configuration');
  // The length is checked against the bytes left before anything is read (no allocation).
  const name = r.bytes(r.be32());
  if (!sameAscii(name, machineType)) {
    // configuration_post_load (savevm.c)
    const msg = `Machine type received is '${showBytes(name)}' and local is '${machineType}'`;
    throw new LoadError(msg, 'machine-mismatch');
  }
}

/** check_section_footer (savevm.c). */
function loadFooter(r: StreamReader, idstr: string, instanceId: number, sectionId: number): void {
  if (r.u8() !== QEMU_VM_SECTION_FOOTER) {
    throw new LoadError(`Missing section footer for ${idstr}`, 'missing-footer', idstr, instanceId);
  }
  const read = r.be32();
  if (read !== sectionId) {
    const msg = `Mismatched section id in footer for ${idstr} - read 0x${read.toString(16)} expected 0x${sectionId.toString(16)}`;
    throw new LoadError(msg, 'footer-mismatch', idstr, instanceId);
  }
}

/** qemu_loadvm_section_start_full: find the registered instance, load it, check the footer. */
function loadFullSection<C>(
  r: StreamReader,
  registry: readonly VmEntry<C>[],
  loaded: Uint8Array,
  ctx: C,
): void {
  const sectionId = r.be32();
  const idstr = r.str8();
  const instanceId = r.be32();
  const versionId = r.be32();
  const i = findEntry(registry, idstr, instanceId);
  const e = registry[i];
  if (e === undefined) {
    const msg = `Unknown savevm section or instance '${idstr}' ${instanceId}`;
    throw new LoadError(msg, 'unknown-section', idstr, instanceId);
  }
  if (loaded[i] !== 0) {
    const msg = `Duplicate savevm section '${idstr}' ${instanceId}`;
    throw new LoadError(msg, 'duplicate-section', idstr, instanceId);
  }
  loaded[i] = 1;
  try {
    loadSection(r, e.section, e.obj, ctx, versionId);
  } catch (err) {
    throw err instanceof LoadError ? err.inSection(idstr, instanceId) : err;
  }
  loadFooter(r, idstr, instanceId, sectionId);
}

/**
 * Loads a stream into the registry's objects, section by section in stream order
 * (qemu_loadvm_state_main). Throws only LoadError for any input bytes; on a throw the
 * destination is to be discarded. Unlike QEMU, bytes after QEMU_VM_EOF are an error (nothing
 * may hide there), and so is a section the destination has that the stream lacks: QEMU would
 * keep the device's reset state beside the source's RAM (its rings, its driver's view), a
 * pair no run can reach.
 */
export function loadStream<C>(
  bytes: Uint8Array,
  registry: readonly VmEntry<C>[],
  ctx: C,
  machineType: string,
): void {
  const r = new StreamReader(bytes);
  loadHeader(r, machineType);
  const loaded = new Uint8Array(registry.length);
  for (;;) {
    const type = r.u8();
    if (type === QEMU_VM_EOF) break;
    if (type !== QEMU_VM_SECTION_FULL) {
      throw new LoadError(`Unknown savevm section type ${type}`, 'unknown-section-type');
    }
    loadFullSection(r, registry, loaded, ctx);
  }
  if (r.remaining > 0) {
    throw new LoadError(
      `${r.remaining} trailing bytes after the end of the migration stream`,
      'trailing-bytes',
    );
  }
  const missing = registry.findIndex((e, i) => loaded[i] === 0 && !e.optional);
  if (missing >= 0) {
    const { section, instanceId } = registry[missing]!;
    throw new LoadError(
      `section '${section.name}' instance ${instanceId} is missing from the migration stream`,
      'missing-section',
      section.name,
      instanceId,
    );
  }
}
