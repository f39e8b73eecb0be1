/**
 * `migfuzz vmstate dump --build B --machine M [--out FILE]`: the modelled devices in QEMU's
 * `-dump-vmstate` format. `migfuzz vmstate diff SRC.json DEST.json [--reverse] [--json]`:
 * what scripts/vmstate-static-checker.py reports for a migration from SRC to DEST (QEMU's
 * dumps or migfuzz's). Exit codes: 0 no difference (or dumped), 1 differences, 2 usage,
 * 3 a file that cannot be read or is not a dump.
 */
import { readFileSync } from 'node:fs';
import { builtinRegistry, findMachine } from '../model/migration/builds.js';
import { quote } from '../model/util/text.js';
import { DumpFormatError, diffDumps, parseDump } from '../vmstate/diff.js';
import { vmstateDump } from '../vmstate/dump.js';
import { UsageError } from './args.js';
import { bool, type CommandSpec, parseFlags, text } from './flags.js';
import { ioReason, writeFileAtomic } from './fs.js';
import { StreamInputError } from './stream-command.js';

const DUMP_FLAGS = {
  build: text('B', 'the build whose devices to describe'),
  machine: text('M', "one of the build's machine types"),
  out: text('FILE', 'write the JSON here instead of standard output'),
};

export const VMSTATE_DUMP: CommandSpec<typeof DUMP_FLAGS> = {
  name: 'vmstate dump',
  args: '',
  summary: "the modelled devices' section descriptions in QEMU's -dump-vmstate JSON format",
  flags: DUMP_FLAGS,
  examples: ['npx migfuzz vmstate dump --build qemu-9.2 --machine pc-i440fx-9.2 --out model.json'],
};

const DIFF_FLAGS = {
  reverse: bool('swap SRC and DEST (migration the other way)'),
  json: bool('print one JSON object: warnings and errors'),
};

export const VMSTATE_DIFF: CommandSpec<typeof DIFF_FLAGS> = {
  name: 'vmstate diff',
  args: 'SRC.json DEST.json',
  summary:
    "what QEMU's scripts/vmstate-static-checker.py reports between two -dump-vmstate files (QEMU's or migfuzz's)",
  flags: DIFF_FLAGS,
  examples: ['npx migfuzz vmstate diff qemu-7.2.json model.json'],
  notes: ['exit: 0 no difference, 1 differences, 3 a file it cannot read'],
};

export function cmdDump(argv: string[]): number {
  const a = parseFlags(argv, VMSTATE_DUMP.flags);
  if (a.positionals.length > 0) throw new UsageError('vmstate dump takes no FILE (use --out)');
  const name = a.flags.build;
  const machineName = a.flags.machine;
  if (!name || !machineName) throw new UsageError('vmstate dump needs --build B and --machine M');
  const builds = builtinRegistry();
  const build = builds.get(name);
  if (!build) throw new UsageError(`unknown build ${quote(name)} (builds: ${[...builds.keys()].join(', ')})`);
  const machine = findMachine(build, machineName);
  if (!machine) throw new UsageError(`build ${name} has no machine type ${quote(machineName)}`);
  const text = `${JSON.stringify(vmstateDump(build, machine), null, 2)}\n`;
  const out = a.flags.out;
  if (out) writeFileAtomic(out, text);
  else process.stdout.write(text);
  return 0;
}

function readDump(file: string) {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new StreamInputError(`${file}: cannot read (${ioReason(e)})`);
  }
  try {
    return parseDump(text);
  } catch (e) {
    if (e instanceof DumpFormatError) throw new StreamInputError(`${file}: ${e.message}`);
    throw e;
  }
}

export function cmdDiff(argv: string[]): number {
  const a = parseFlags(argv, VMSTATE_DIFF.flags);
  if (a.positionals.length !== 2) throw new UsageError('vmstate diff needs SRC.json and DEST.json');
  let [src, dest] = a.positionals as [string, string];
  if (a.flags.reverse) [src, dest] = [dest, src];
  const r = diffDumps(readDump(src), readDump(dest));
  if (a.flags.json) console.log(JSON.stringify({ src, dest, ...r }));
  else {
    for (const line of [...r.warnings, ...r.errors]) console.log(line);
    console.log(
      r.errors.length === 0
        ? `${src} → ${dest}: no difference`
        : `${src} → ${dest}: ${r.errors.length} difference${r.errors.length > 1 ? 's' : ''}`,
    );
  }
  return r.errors.length > 0 ? 1 : 0;
}
