/**
 * `migfuzz vmstate dump --build B --machine M [--out FILE]`: the modelled devices in QEMU's
 * `-dump-vmstate` format. `migfuzz vmstate diff SRC.json DEST.json [--reverse] [--json]`:
 * what scripts/vmstate-static-checker.py reports for a migration from SRC to DEST (QEMU's
 * dumps or migfuzz's). Exit codes: 0 no difference (or dumped), 1 differences, 2 usage,
 * 3 a file that cannot be read or is not a dump.
 */
import { readFileSync } from 'node:fs';
import { builtinRegistry, findMachine } from '../model/migration/builds.js';
import { quote } from '../model/schedule/validate.js';
import { DumpFormatError, diffDumps, parseDump } from '../vmstate/diff.js';
import { vmstateDump } from '../vmstate/dump.js';
import { flagString, parseArgs, UsageError } from './args.js';
import { ioReason, writeFileAtomic } from './replay-commands.js';
import { StreamInputError } from './stream-command.js';

export function cmdVmstate(argv: string[]): number {
  const [sub, ...rest] = argv;
  if (sub === 'dump') return cmdDump(rest);
  if (sub === 'diff') return cmdDiff(rest);
  throw new UsageError(
    sub === undefined
      ? 'vmstate needs a subcommand: dump or diff'
      : `unknown vmstate subcommand ${quote(sub)}`,
  );
}

function cmdDump(argv: string[]): number {
  const a = parseArgs(argv, ['--build', '--machine', '--out'], []);
  if (a.positionals.length > 0) throw new UsageError('vmstate dump takes no FILE (use --out)');
  const name = flagString(a, '--build');
  const machineName = flagString(a, '--machine');
  if (!name || !machineName) throw new UsageError('vmstate dump needs --build B and --machine M');
  const builds = builtinRegistry();
  const build = builds.get(name);
  if (!build) throw new UsageError(`unknown build ${quote(name)} (builds: ${[...builds.keys()].join(', ')})`);
  const machine = findMachine(build, machineName);
  if (!machine) throw new UsageError(`build ${name} has no machine type ${quote(machineName)}`);
  const text = `${JSON.stringify(vmstateDump(build, machine), null, 2)}\n`;
  const out = flagString(a, '--out');
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

function cmdDiff(argv: string[]): number {
  const a = parseArgs(argv, [], ['--reverse', '--json']);
  if (a.positionals.length !== 2) throw new UsageError('vmstate diff needs SRC.json and DEST.json');
  let [src, dest] = a.positionals as [string, string];
  if (a.flags.has('--reverse')) [src, dest] = [dest, src];
  const r = diffDumps(readDump(src), readDump(dest));
  if (a.flags.has('--json')) console.log(JSON.stringify({ src, dest, ...r }));
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
