/**
 * Decodes a real QEMU migration stream (as `migrate "exec:cat > FILE"` saves it), following
 * migration/savevm.c and QEMU's scripts/analyze-migration.py: the header, the configuration
 * section, every section record with its footer, RAM walked by its flags, the JSON
 * description appended after QEMU_VM_EOF (QEMU_VM_VMDESCRIPTION) and, with it, every other
 * device's fields. The serial and virtio-serial sections get decoders of their own
 * (serial.ts, virtio-console.ts). Decoding never allocates from a length it has not checked
 * against the bytes left; any failure is a StreamFormatError with its offset.
 */
import { Cursor } from './cursor.js';
import { decodeSerial } from './serial.js';
import { decodeVirtioConsole, type VirtioConsoleState } from './virtio-console.js';
import {
  type DecodedBody,
  type DecodedSubsection,
  type DescDevice,
  parseVmDescription,
  subsectionHeader,
  type VmDescription,
  walkDesc,
} from './vmdesc.js';

const QEMU_VM_FILE_MAGIC = 0x5145564d;
const QEMU_VM_FILE_VERSION = 3;

/** Record types of savevm.c. */
export const SectionType = {
  EOF: 0x00,
  START: 0x01,
  PART: 0x02,
  END: 0x03,
  FULL: 0x04,
  SUBSECTION: 0x05,
  VMDESCRIPTION: 0x06,
  CONFIGURATION: 0x07,
  COMMAND: 0x08,
  FOOTER: 0x7e,
} as const;
const TYPE_NAMES: Record<number, 'start' | 'part' | 'end' | 'full'> = {
  1: 'start',
  2: 'part',
  3: 'end',
  4: 'full',
};

/** RAM_SAVE_FLAG_* (migration/ram.c). */
const Ram = {
  ZERO: 0x02,
  MEM_SIZE: 0x04,
  PAGE: 0x08,
  EOS: 0x10,
  CONTINUE: 0x20,
  XBZRLE: 0x40,
  HOOK: 0x80,
  COMPRESS_PAGE: 0x100,
} as const;

export interface RamBlock {
  name: string;
  length: number;
  zeroPages: number;
  /** Zero pages whose fill byte was not 0 (RAM_SAVE_FLAG_ZERO with a fill). */
  filledPages: number;
  pages: number;
}

export interface RamPart {
  /** Only the first record of a RAM section announces the blocks (RAM_SAVE_FLAG_MEM_SIZE). */
  totalBytes?: number;
  zeroPages: number;
  pages: number;
}

export type SectionBody =
  | { kind: 'ram'; ram: RamPart }
  | { kind: 'serial'; serial: DecodedBody; describedBytes?: number }
  | { kind: 'virtio-console'; virtio: VirtioConsoleState; describedBytes?: number }
  | { kind: 'described'; desc: DecodedBody }
  | { kind: 'command'; command: number; length: number }
  | { kind: 'opaque'; length: number };

export interface Section {
  offset: number;
  type: 'start' | 'part' | 'end' | 'full' | 'command';
  sectionId: number;
  idstr: string;
  instance: number;
  version: number;
  /** Body bytes: from after the header to the footer. */
  bodyOffset: number;
  bodyLength: number;
  footer: number | null;
  body: SectionBody;
}

export interface DecodedStream {
  size: number;
  version: number;
  configuration: { offset: number; machineType: string; subsections: DecodedSubsection[] };
  sections: Section[];
  ram: { pageSize: number; blocks: RamBlock[] };
  eofOffset: number;
  vmdesc: { offset: number; length: number; devices: number } | null;
}

/** Where the JSON description starts, found as analyze-migration.py finds it. */
function findVmdesc(buf: Uint8Array): { at: number; length: number } | null {
  const nul = buf.lastIndexOf(0);
  const brace = buf.indexOf(0x7b, nul + 1);
  if (brace < 5 || buf[brace - 5] !== SectionType.VMDESCRIPTION) return null;
  const c = new Cursor(buf, brace - 4);
  const length = c.be32();
  return length <= buf.length - brace ? { at: brace - 5, length } : null;
}

function decodeConfiguration(c: Cursor): DecodedStream['configuration'] {
  const offset = c.pos;
  if (c.u8('configuration marker') !== SectionType.CONFIGURATION)
    c.fail('configuration section missing', offset);
  // vmstate_configuration: be32 len, the machine type's name, then optional subsections.
  const len = c.be32('configuration name length');
  const name = c.bytes(len, 'machine type');
  const machineType = String.fromCharCode(...name.subarray(0, 256));
  const subsections: DecodedSubsection[] = [];
  while (c.peek() === SectionType.SUBSECTION) {
    const h = subsectionHeader(c);
    subsections.push({ ...h, fields: configurationSubsection(c, h.name, h.offset) });
  }
  return { offset, machineType, subsections };
}

function configurationSubsection(c: Cursor, name: string, at: number): DecodedSubsection['fields'] {
  switch (name) {
    case 'configuration/target-page-bits':
      return { target_page_bits: c.be32() };
    case 'configuration/capabilities': {
      const n = c.be32('caps_count');
      if (n > c.remaining) c.fail(`caps_count ${n} does not fit in the stream`, at);
      const caps: string[] = [];
      for (let i = 0; i < n; i++) caps.push(c.str8('capability'));
      return { capabilities: caps };
    }
    case 'configuration/uuid':
      return { uuid: Buffer.from(c.bytes(16, 'uuid')).toString('hex') };
    default:
      c.fail(`unknown configuration subsection ${name}`, at);
  }
}

/**
 * One RAM record (RamSection.read of analyze-migration.py): pages until RAM_SAVE_FLAG_EOS.
 * Pages are counted per block, not kept.
 */
function decodeRam(c: Cursor, ram: DecodedStream['ram'], state: { block: RamBlock | null }): RamPart {
  const part: RamPart = { zeroPages: 0, pages: 0 };
  // The page size is at most 2^31 here, so the flags sit in the low word (no bigint per page).
  const mask = ram.pageSize - 1;
  const byName = (name: string, at: number): RamBlock =>
    ram.blocks.find((b) => b.name === name) ?? c.fail(`RAM page for unknown block ${name}`, at);
  for (;;) {
    const at = c.pos;
    const hi = c.be32('RAM address and flags');
    const lo = c.be32('RAM address and flags');
    let flags = lo & mask;
    if (flags & Ram.MEM_SIZE) {
      part.totalBytes = hi * 2 ** 32 + (lo - flags);
      // Block list: counted name, be64 used_length; a zero length byte starts the next word.
      while (c.peek() > 0) {
        const name = c.str8('RAM block name');
        const length = Number(c.be64('RAM block length'));
        if (ram.blocks.some((b) => b.name === name)) c.fail(`RAM block ${name} announced twice`, at);
        ram.blocks.push({ name, length, zeroPages: 0, filledPages: 0, pages: 0 });
      }
      flags &= ~Ram.MEM_SIZE;
    }
    if (flags & (Ram.ZERO | Ram.PAGE)) {
      const block =
        flags & Ram.CONTINUE
          ? (state.block ?? c.fail('RAM_SAVE_FLAG_CONTINUE before any block', at))
          : byName(c.str8('RAM block name'), at);
      state.block = block;
      if (flags & Ram.ZERO) {
        if (c.u8('fill byte') !== 0) block.filledPages++;
        block.zeroPages++;
        part.zeroPages++;
      } else {
        c.bytes(ram.pageSize, 'RAM page');
        block.pages++;
        part.pages++;
      }
      flags &= ~(Ram.ZERO | Ram.PAGE | Ram.CONTINUE);
    }
    if (flags & (Ram.XBZRLE | Ram.HOOK | Ram.COMPRESS_PAGE))
      c.fail(`RAM flags 0x${flags.toString(16)}: compressed or hooked pages are not supported`, at);
    if (flags & Ram.EOS) return part;
    if (flags !== 0) c.fail(`unknown RAM flags 0x${flags.toString(16)}`, at);
  }
}

function describedSize(d: DescDevice): number {
  let n = 0;
  for (const f of d.fields ?? []) n += f.size * (f.array_len ?? 1);
  return n;
}

/** The footer after each record: QEMU_VM_SECTION_FOOTER and the section id again. */
function footer(c: Cursor, sectionId: number, idstr: string): number {
  const at = c.pos;
  if (c.u8('section footer') !== SectionType.FOOTER) c.fail(`missing section footer for ${idstr}`, at);
  const id = c.be32('footer section id');
  if (id !== sectionId) c.fail(`section footer for ${idstr} says ${id}, expected ${sectionId}`, at);
  return at;
}

function bodyOf(
  c: Cursor,
  sectionId: number,
  idstr: string,
  instance: number,
  desc: Map<string, DescDevice>,
  ram: DecodedStream['ram'],
  ramState: { block: RamBlock | null },
): SectionBody {
  if (idstr === 'ram') return { kind: 'ram', ram: decodeRam(c, ram, ramState) };
  const d = desc.get(`${idstr}#${instance}`);
  const start = c.pos;
  let body: SectionBody | null = null;
  if (idstr === 'serial') body = { kind: 'serial', serial: decodeSerial(c) };
  else if (idstr === 'virtio-console' || idstr.endsWith('/virtio-console'))
    body = { kind: 'virtio-console', virtio: decodeVirtioConsole(c) };
  if (body) {
    // Our own decoders end at the section's footer (checked by the caller). A size other than
    // the one QEMU recorded in its JSON description means the section was rewritten after QEMU
    // saved the stream (`stream craft`): QEMU's loader never reads the description.
    const size = d && !d.subsections ? describedSize(d) : null;
    if (size !== null && c.pos - start !== size) body.describedBytes = size;
    return body;
  }
  if (d) return { kind: 'described', desc: walkDesc(c, d, idstr) };
  return { kind: 'opaque', length: skipToFooter(c, sectionId, idstr) };
}

/**
 * A device without a description (a stream without QEMU_VM_VMDESCRIPTION, or cut before it):
 * its body ends where its footer (0x7e, be32 section id) is next found. Shown as opaque.
 */
function skipToFooter(c: Cursor, sectionId: number, idstr: string): number {
  const start = c.pos;
  const id = [sectionId >>> 24, (sectionId >>> 16) & 0xff, (sectionId >>> 8) & 0xff, sectionId & 0xff];
  for (
    let at = c.buf.indexOf(SectionType.FOOTER, start);
    at >= 0;
    at = c.buf.indexOf(SectionType.FOOTER, at + 1)
  ) {
    if (id.every((b, i) => c.buf[at + 1 + i] === b)) {
      c.pos = at;
      return at - start;
    }
  }
  c.fail(`truncated: ${idstr} has no description and no footer follows`, start);
}

export function decodeStream(buf: Uint8Array): DecodedStream {
  const c = new Cursor(buf);
  if (c.be32('magic') !== QEMU_VM_FILE_MAGIC) c.fail('not a QEMU migration stream (no QEVM magic)', 0);
  const version = c.be32('version');
  if (version !== QEMU_VM_FILE_VERSION) c.fail(`unsupported stream version ${version}`, 4);
  const where = findVmdesc(buf);
  let vm: VmDescription | null = null;
  if (where) {
    const text = Buffer.from(buf.subarray(where.at + 5, where.at + 5 + where.length)).toString('utf8');
    vm = parseVmDescription(text, (why) => c.fail(why, where.at));
  }
  const ram: DecodedStream['ram'] = { pageSize: vm?.page_size ?? 4096, blocks: [] };
  if (
    !(
      Number.isSafeInteger(ram.pageSize) &&
      ram.pageSize >= 512 &&
      ram.pageSize <= 1 << 30 &&
      (ram.pageSize & (ram.pageSize - 1)) === 0
    )
  )
    c.fail(`JSON description: bad page_size ${ram.pageSize}`, where?.at ?? 0);
  const desc = new Map((vm?.devices ?? []).map((d) => [`${d.name}#${d.instance_id}`, d]));
  const configuration = decodeConfiguration(c);
  const sections: Section[] = [];
  const open = new Map<number, Section>();
  const ramState = { block: null as RamBlock | null };
  for (;;) {
    const offset = c.pos;
    const type = c.u8('section type');
    if (type === SectionType.EOF) break;
    if (type === SectionType.COMMAND) {
      const command = c.be16('command');
      const length = c.be16('command length');
      c.bytes(length, 'command data');
      sections.push({
        offset,
        type: 'command',
        sectionId: -1,
        idstr: '',
        instance: 0,
        version: 0,
        bodyOffset: offset + 5,
        bodyLength: length,
        footer: null,
        body: { kind: 'command', command, length },
      });
      continue;
    }
    const typeName = TYPE_NAMES[type] ?? c.fail(`unknown section type 0x${type.toString(16)}`, offset);
    const sectionId = c.be32('section id');
    let head: Pick<Section, 'idstr' | 'instance' | 'version'>;
    if (type === SectionType.START || type === SectionType.FULL) {
      head = { idstr: c.str8('idstr'), instance: c.be32('instance id'), version: c.be32('version id') };
    } else {
      const start =
        open.get(sectionId) ?? c.fail(`section id ${sectionId} continues a section never started`, offset);
      head = { idstr: start.idstr, instance: start.instance, version: start.version };
    }
    const bodyOffset = c.pos;
    const body = bodyOf(c, sectionId, head.idstr, head.instance, desc, ram, ramState);
    const bodyLength = c.pos - bodyOffset;
    const s: Section = {
      offset,
      type: typeName,
      sectionId,
      ...head,
      bodyOffset,
      bodyLength,
      footer: 0,
      body,
    };
    s.footer = footer(c, sectionId, head.idstr);
    if (type === SectionType.START) open.set(sectionId, s);
    sections.push(s);
  }
  const eofOffset = c.pos - 1;
  let vmdesc: DecodedStream['vmdesc'] = null;
  if (c.remaining > 0) {
    if (!where || where.at !== c.pos)
      return c.fail('bytes after QEMU_VM_EOF that are not its JSON description');
    vmdesc = { offset: where.at, length: where.length, devices: vm?.devices.length ?? 0 };
    c.pos = where.at + 5 + where.length;
    if (c.remaining > 0) c.fail(`${c.remaining} bytes after the JSON description`);
  }
  return { size: buf.length, version, configuration, sections, ram, eofOffset, vmdesc };
}
