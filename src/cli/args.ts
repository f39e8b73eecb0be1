import { didYouMean } from '../model/schedule/suggest.js';
import { quote } from '../model/util/text.js';

/**
 * The argv scanner under every command: `--flag value`, `--flag=value`, boolean flags,
 * positionals, `--` ending the flags. It is strict where Node's util.parseArgs is not: a flag
 * given twice, `--flag=` with no value, a value given to a boolean and an unknown flag are all
 * usage errors (exit 2), the last with the closest known flag suggested. Commands declare
 * their flags as a table (src/cli/flags.ts), which parses through here.
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface ParsedArgs {
  positionals: string[];
  flags: Map<string, string | true>;
}

/** Scans argv against the flag names a command knows; `names` lists them all, for did-you-mean. */
export function scanArgs(
  argv: readonly string[],
  kindOf: (name: string) => 'value' | 'bool' | undefined,
  names: readonly string[],
): ParsedArgs {
  const positionals: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(0, eq) : arg;
    if (flags.has(name)) throw new UsageError(`${name} given twice`);
    const kind = kindOf(name);
    if (kind === 'bool') {
      if (eq >= 0) throw new UsageError(`${name} takes no value`);
      flags.set(name, true);
    } else if (kind === 'value') {
      const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
      if (value === undefined || value === '') throw new UsageError(`${name} needs a value`);
      flags.set(name, value);
    } else {
      // Quoted: an argument may hold anything, the message stays one readable line.
      throw new UsageError(`unknown option ${quote(name)}${didYouMean(name, names)}`);
    }
  }
  return { positionals, flags };
}

/** The scanner with plain lists of flag names (commands without a flag table). */
export function parseArgs(
  argv: readonly string[],
  valueFlags: readonly string[],
  boolFlags: readonly string[],
): ParsedArgs {
  return scanArgs(
    argv,
    (name) => (boolFlags.includes(name) ? 'bool' : valueFlags.includes(name) ? 'value' : undefined),
    [...valueFlags, ...boolFlags],
  );
}

export function flagString(a: ParsedArgs, name: string): string | undefined {
  const v = a.flags.get(name);
  return typeof v === 'string' ? v : undefined;
}
