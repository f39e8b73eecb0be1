/**
 * `migfuzz stream show FILE [--json]`: a real QEMU migration stream, decoded (src/stream).
 * Exit codes: 0 decoded, 2 usage, 3 a file that cannot be read or decoded (one line naming
 * the offset).
 */
import { readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { BuildRegistry } from '../model/migration/builds.js';
import type { SourceState } from '../model/migration/from-stream.js';
import type { Schedule } from '../model/schedule/types.js';
import { sourceStateMisfit } from '../model/world.js';
import { CraftError, flaggedSection, spliceSection } from '../stream/craft.js';
import { StreamFormatError } from '../stream/cursor.js';
import { type DecodedStream, decodeStream, type Section } from '../stream/decode.js';
import { sourceStateOf } from '../stream/source-state.js';
import type { VirtioConsoleState } from '../stream/virtio-console.js';
import type { DecodedBody, DecodedSubsection, Value } from '../stream/vmdesc.js';
import { UsageError } from './args.js';
import { bool, type CommandSpec, parseFlags, text } from './flags.js';
import { ioReason } from './fs.js';

/** A stream file that cannot be used: exit 3 with `migfuzz: <message>`. */
export class StreamInputError extends Error {
  override readonly name = 'StreamInputError';
}

/** Larger files are refused before they are read (a -m 64 guest saves well under 1 MiB). */
const MAX_STREAM_BYTES = 1 << 30;

export function readStream(file: string): Uint8Array {
  let size: number;
  try {
    size = statSync(file).size;
  } catch (e) {
    throw new StreamInputError(`${file}: cannot read (${ioReason(e)})`);
  }
  if (size > MAX_STREAM_BYTES)
    throw new StreamInputError(
      `${file}: ${size} bytes, more than the ${MAX_STREAM_BYTES} bytes migfuzz reads`,
    );
  try {
    return readFileSync(file);
  } catch (e) {
    throw new StreamInputError(`${file}: cannot read (${ioReason(e)})`);
  }
}

/** Decodes a file or fails with one line naming the file and the offset. */
export function loadStreamFile(file: string, bytes = readStream(file)): DecodedStream {
  try {
    return decodeStream(bytes);
  } catch (e) {
    if (e instanceof StreamFormatError) throw new StreamInputError(`${file}: ${e.message}`);
    throw e;
  }
}

const STREAM_SHOW_FLAGS = { json: bool('print one JSON object instead of text') };

export const STREAM_SHOW: CommandSpec<typeof STREAM_SHOW_FLAGS> = {
  name: 'stream show',
  args: 'FILE',
  summary:
    'decode a real QEMU migration stream (migrate "exec:cat > FILE"): header, sections and footers, RAM, devices by the JSON description, serial and virtio-serial field by field',
  flags: STREAM_SHOW_FLAGS,
  examples: ['npx migfuzz stream show vm.bin', 'npx migfuzz stream show vm.bin --json'],
  notes: ['exit: 0, or 3 (one line naming the offset) for input it cannot decode'],
};

export function cmdStreamShow(argv: string[]): number {
  const a = parseFlags(argv, STREAM_SHOW.flags);
  if (a.positionals.length !== 1) throw new UsageError('stream show needs exactly one FILE');
  const file = a.positionals[0]!;
  const d = loadStreamFile(file);
  if (a.flags.json) console.log(JSON.stringify({ file, ...d }, jsonValue));
  else for (const line of streamText(file, d)) console.log(line);
  return 0;
}

/** 64-bit values beyond 2^53 as hex strings: JSON has no bigint. */
const jsonValue = (_key: string, v: unknown): unknown => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v);

const LONG = 48;

function show(v: Value): string {
  if (typeof v === 'bigint') return `0x${v.toString(16)}`;
  if (typeof v === 'string') return v.length > LONG ? `${v.slice(0, LONG)}…(${v.length / 2} bytes)` : v;
  if (typeof v !== 'object') return String(v);
  const s = JSON.stringify(v, jsonValue);
  return s.length > LONG ? `${s.slice(0, LONG)}…` : s;
}

const fieldsLine = (fields: Record<string, Value>): string =>
  Object.entries(fields)
    .map(([k, v]) => `${k}=${show(v)}`)
    .join(' ');

function subsectionLines(subs: DecodedSubsection[], indent: string): string[] {
  return subs.flatMap((s) => [
    `${indent}subsection ${s.name} v${s.version} @${s.offset}: ${fieldsLine(s.fields)}`.trimEnd(),
    ...subsectionLines(s.subsections ?? [], `${indent}  `),
  ]);
}

function bodyLines(b: DecodedBody): string[] {
  return [`    ${fieldsLine(b.fields)}`, ...subsectionLines(b.subsections, '    ')];
}

const h2 = (n: number): string => `0x${n.toString(16).padStart(2, '0')}`;

function virtioLines(v: VirtioConsoleState): string[] {
  const out = [
    `    PCI: version_id ${v.pci.version_id} vendor ${v.pci.vendor_id.toString(16)} device ${v.pci.device_id.toString(16)} command 0x${v.pci.command.toString(16)} irq_state ${v.pci.irq_state.join(' ')}`,
  ];
  if (v.msix) {
    const masks = v.msix.table.map((e) => (e.masked ? 'masked' : `${e.addr}/${e.data}`)).join(', ');
    out.push(
      `    MSI-X: ${v.msix.vectors} vectors (${masks}), pending ${v.msix.pba}, config_vector ${v.config_vector}`,
    );
  } else out.push('    MSI-X: absent');
  out.push(
    `    virtio: status ${h2(v.status)} isr ${h2(v.isr)} queue_sel ${v.queue_sel} guest_features_lo 0x${v.guest_features_lo.toString(16)} config ${v.config}`,
  );
  const used = v.queues.filter((q) => q.desc !== '0x0' || q.last_avail_idx !== 0);
  out.push(`    queues: ${v.queues.length} (${used.length} with a ring)`);
  for (const q of used)
    out.push(
      `      queue ${q.index}: num ${q.num} desc ${q.desc} last_avail_idx ${q.last_avail_idx} vector ${q.vector ?? '-'}`,
    );
  const s = v.serial;
  out.push(
    `    virtio-serial: cols ${s.cols} rows ${s.rows} max_nr_ports ${s.max_nr_ports} ports_map ${s.ports_map.map((w) => `0x${w.toString(16).padStart(8, '0')}`).join(' ')}, ${s.ports.length} active port(s)`,
  );
  for (const p of s.ports) {
    const elem = p.elem
      ? ` popped element ${p.elem.index} (in ${p.elem.in_num}, out ${p.elem.out_num}) iov_idx ${p.elem.iov_idx} iov_offset ${p.elem.iov_offset}`
      : '';
    out.push(
      `      port ${p.id}: guest_connected ${p.guest_connected} host_connected ${p.host_connected}${elem}`,
    );
  }
  return [...out, ...subsectionLines(v.subsections, '    ')];
}

function sectionHead(s: Section): string {
  const id = s.type === 'part' || s.type === 'end' ? `${s.idstr}` : `${s.idstr} #${s.instance} v${s.version}`;
  const foot = s.footer === null ? '' : `, footer @${s.footer}`;
  const described =
    'describedBytes' in s.body && s.body.describedBytes !== undefined
      ? ` (the JSON description says ${s.body.describedBytes}: rewritten after QEMU saved it)`
      : '';
  return `  @${s.offset} ${s.type} section ${s.sectionId} ${id}: ${s.bodyLength} bytes${described}${foot}`;
}

function sectionLines(s: Section): string[] {
  const b = s.body;
  switch (b.kind) {
    case 'ram':
      return [`${sectionHead(s)}; ${b.ram.pages} pages, ${b.ram.zeroPages} zero pages`];
    case 'serial':
      return [sectionHead(s), ...bodyLines(b.serial)];
    case 'virtio-console':
      return [sectionHead(s), ...virtioLines(b.virtio)];
    case 'described':
      return [sectionHead(s), ...bodyLines(b.desc)];
    case 'opaque':
      return [`${sectionHead(s)} (no description: up to its footer)`];
    case 'command':
      return [`  @${s.offset} command ${b.command}: ${b.length} bytes`];
  }
}

function streamText(file: string, d: DecodedStream): string[] {
  const c = d.configuration;
  const lines = [
    `${file}: QEMU migration stream version ${d.version}, ${d.size} bytes, ${d.sections.length} section records`,
    `configuration @${c.offset}: machine type ${c.machineType}`,
    ...subsectionLines(c.subsections, '  '),
    `RAM: page size ${d.ram.pageSize}`,
    ...d.ram.blocks.map(
      (r) =>
        `  ${r.name}: ${r.length} bytes, ${r.pages} pages, ${r.zeroPages} zero pages${r.filledPages ? ` (${r.filledPages} filled)` : ''}`,
    ),
    'sections:',
    ...d.sections.flatMap(sectionLines),
    `EOF @${d.eofOffset}`,
    d.vmdesc
      ? `JSON description @${d.vmdesc.offset}: ${d.vmdesc.length} bytes, ${d.vmdesc.devices} devices`
      : 'no JSON description',
  ];
  return lines;
}

/**
 * `run SCHEDULE --from-stream FILE`: the stream's serial and virtio-serial state for the
 * schedule's source, or one line saying why it does not fit the schedule's devices.
 */
export function fromStream(file: string, schedule: Schedule, builds: BuildRegistry): SourceState {
  const bytes = readStream(file);
  const st = sourceStateOf(bytes, loadStreamFile(file, bytes));
  const misfit = sourceStateMisfit(schedule, builds, st);
  if (misfit) throw new StreamInputError(`${file}: does not fit the schedule: ${misfit.message}`);
  return st;
}

// ---------------------------------------------------------------------------------------
// stream craft, stream base

/** The schedule and builds of a FILE (a schedule, or a trace's own), as `run` loads them. */
export type RunInputLoader = (
  file: string,
  buildsFile: string | undefined,
) => { schedule: Schedule; builds: BuildRegistry };

const STREAM_CRAFT_FLAGS = {
  base: text(
    'REAL.bin',
    'the real QEMU stream to rewrite (from migrate "exec:cat > FILE", e.g. stream base)',
  ),
  out: text('OUT.bin', 'where to write the crafted stream'),
  json: bool('print one JSON object: the finding, the section replaced, the offsets'),
  builds: text('FILE', 'a build file adding builds of your own'),
};

export const STREAM_CRAFT: CommandSpec<typeof STREAM_CRAFT_FLAGS> = {
  name: 'stream craft',
  args: 'FILE',
  summary:
    "write a model finding's device state into a real QEMU stream: the section the run's destination flagged (unsafe-load, or refused) replaces the same section of --base, every other byte kept (FILE: a trace or a schedule)",
  flags: STREAM_CRAFT_FLAGS,
  examples: ['npx migfuzz stream craft finding.mpk --base base.bin --out hostile.bin'],
  notes: [
    'exit: 0 written, 2 usage, 3 a file that cannot be used or a run with no flagged device state',
    'serial sections only (the model writes them in QEMU isa-serial layout)',
  ],
};

function writeAtomic(file: string, bytes: Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, bytes);
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new StreamInputError(`${file}: cannot write (${ioReason(e)})`);
  }
}

export function cmdStreamCraft(argv: string[], load: RunInputLoader): number {
  const a = parseFlags(argv, STREAM_CRAFT.flags);
  if (a.positionals.length !== 1)
    throw new UsageError('stream craft needs exactly one FILE (a trace or a schedule)');
  const { base, out } = a.flags;
  if (base === undefined || out === undefined)
    throw new UsageError('stream craft needs --base REAL.bin and --out OUT.bin');
  const file = a.positionals[0]!;
  const { schedule, builds } = load(file, a.flags.builds);
  const baseBytes = readStream(base);
  const craftError = (where: string, e: unknown): never => {
    if (e instanceof CraftError) throw new StreamInputError(`${where}: ${e.message}`);
    throw e;
  };
  let flagged: ReturnType<typeof flaggedSection>;
  try {
    flagged = flaggedSection(schedule, builds);
  } catch (e) {
    return craftError(file, e);
  }
  let crafted: ReturnType<typeof spliceSection>;
  try {
    crafted = spliceSection(baseBytes, flagged.section);
  } catch (e) {
    return craftError(base, e);
  }
  writeAtomic(out, crafted.bytes);
  const { target, section } = flagged;
  const result = {
    file,
    base,
    out,
    finding: target,
    section: { idstr: section.idstr, instance: section.instanceId, version: section.version },
    offset: crafted.offset,
    bodyOffset: crafted.bodyOffset,
    oldLength: crafted.oldLength,
    newLength: crafted.newLength,
    bytes: crafted.bytes.length,
  };
  if (a.flags.json) console.log(JSON.stringify(result));
  else {
    console.log(
      `${out}: ${base} with '${section.idstr}' #${section.instanceId} (${target.device}) replaced at offset ${crafted.offset}: ${crafted.oldLength} → ${crafted.newLength} body bytes; every other section unchanged`,
    );
    console.log(
      `  from the run of ${file}: ${target.outcome} ${target.key} (migration ${target.migration}): ${target.message}`,
    );
    console.log(`  prove it: npx migfuzz confirm --stream ${out}`);
  }
  return 0;
}
