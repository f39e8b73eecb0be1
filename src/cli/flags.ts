import { quote } from '../model/util/text.js';
import { type ParsedArgs, scanArgs, UsageError } from './args.js';

/**
 * Declarative flags: each command lists its flags once, as a table of typed entries (value
 * type, bounds, default, help line). The same table parses argv into typed settings and
 * renders the command's usage line and `--help`, so the three cannot disagree. Long options
 * only (`--name value` or `--name=value`); a few old short aliases stay accepted.
 */
export interface Flag<T> {
  /** The value's name in usage (FILE, N, LIST); none for a boolean flag. */
  readonly arg?: string;
  readonly help: string;
  /** The value when the flag is not given. */
  readonly value: T;
  /** The default as --help shows it, when there is one worth showing. */
  readonly shown?: string;
  /** An older spelling still accepted (`-o`). */
  readonly alias?: string;
  /** Values the shell may complete. */
  readonly choices?: readonly string[];
  parse(text: string, flag: string): T;
}

// biome-ignore lint/suspicious/noExplicitAny: a table holds flags of every value type
export type FlagTable = Record<string, Flag<any>>;

/** The typed settings a table parses into: each key holds its flag's value. */
export type Settings<S extends FlagTable> = { -readonly [K in keyof S]: S[K]['value'] };

/** `maxQueue` → `--max-queue`. */
export const flagName = (key: string): string => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

export function bool(help: string): Flag<boolean> {
  return { help, value: false, parse: () => true };
}

export function text<D extends string | undefined = undefined>(
  arg: string,
  help: string,
  value?: D,
  more: { alias?: string; choices?: readonly string[] } = {},
): Flag<string | D> {
  return {
    arg,
    help,
    value: value as D,
    ...(value !== undefined ? { shown: value } : {}),
    ...more,
    parse: (t) => t,
  };
}

/** A whole number in [min, max]. */
export function count<D extends number | undefined = undefined>(
  arg: string,
  help: string,
  { min = 1, max, value, shown }: { min?: number; max: number; value?: D; shown?: string },
): Flag<number | D> {
  return {
    arg,
    help,
    value: value as D,
    ...(shown !== undefined || value !== undefined ? { shown: shown ?? String(value) } : {}),
    parse: (t, flag) => {
      if (!/^\d+$/.test(t) || Number(t) < min || Number(t) > max)
        throw new UsageError(`${flag}: expected a whole number from ${min} to ${max}, got ${quote(t)}`);
      return Number(t);
    },
  };
}

const DURATION = /^(\d+)(ms|s|m|h)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `60s`, `5m`, `1h`, `500ms` (a bare number is seconds), in milliseconds. */
export function parseDuration(t: string, flag = '--time'): number {
  const m = DURATION.exec(t);
  if (!m) throw new UsageError(`${flag}: ${quote(t)} is not a duration (e.g. 60s, 5m, 1h)`);
  const ms = Number(m[1]) * UNIT_MS[m[2] ?? 's']!;
  if (!(ms >= 1)) throw new UsageError(`${flag}: ${quote(t)} is no time at all`);
  return ms;
}

export function duration(help: string, shown?: string): Flag<number | undefined> {
  return { arg: 'DURATION', help, value: undefined, ...(shown ? { shown } : {}), parse: parseDuration };
}

/**
 * A comma-separated list: items are trimmed and empty ones dropped, so `"a, b"` and `a,b,`
 * both mean a and b.
 */
export function list(arg: string, help: string): Flag<string[] | undefined> {
  return {
    arg,
    help,
    value: undefined,
    parse: (t, flag) => {
      const items = t
        .split(',')
        .map((x) => x.trim())
        .filter((x) => x !== '');
      if (items.length === 0) throw new UsageError(`${flag}: ${quote(t)} names nothing`);
      return items;
    },
  };
}

/** What a command is, for help, usage and completion. */
export interface CommandSpec<S extends FlagTable = FlagTable> {
  /** `run`, or `corpus add` for a subcommand. */
  readonly name: string;
  /** Its positionals in usage: `FILE`, `[DIR]`, or ''. */
  readonly args: string;
  readonly summary: string;
  readonly flags: S;
  readonly examples: readonly string[];
  /** More help paragraphs (exit codes particular to it, the status line's legend). */
  readonly notes?: readonly string[];
}

/** A command spec with the function that runs it: one entry of main.ts's COMMANDS. */
export interface Command {
  readonly spec: CommandSpec;
  run(argv: string[]): number | Promise<number>;
}

/**
 * Parses argv against a command's table: typed settings (each flag's default when it is not
 * given), the positionals, and which flags were given.
 */
export function parseFlags<S extends FlagTable>(
  argv: readonly string[],
  table: S,
): { positionals: string[]; flags: Settings<S>; given: Set<keyof S & string>; raw: ParsedArgs } {
  const byName = new Map<string, string>();
  for (const key of Object.keys(table)) {
    byName.set(flagName(key), key);
    const alias = table[key]!.alias;
    if (alias) byName.set(alias, key);
  }
  const raw = scanArgs(
    argv,
    (name) => {
      const key = byName.get(name);
      return key === undefined ? undefined : table[key]!.arg === undefined ? 'bool' : 'value';
    },
    Object.keys(table).map(flagName),
  );
  const flags = {} as Settings<S>;
  const given = new Set<keyof S & string>();
  for (const key of Object.keys(table) as (keyof S & string)[]) flags[key] = table[key]!.value;
  for (const [name, value] of raw.flags) {
    const key = byName.get(name)! as keyof S & string;
    if (given.has(key)) throw new UsageError(`${flagName(key)} given twice`);
    given.add(key);
    flags[key] = table[key]!.parse(value === true ? '' : value, flagName(key));
  }
  return { positionals: raw.positionals, flags, given, raw };
}

const flagSynopsis = (key: string, f: Flag<unknown>): string =>
  `[${flagName(key)}${f.arg ? ` ${f.arg}` : ''}]`;

/** `migfuzz run FILE [--trace OUT.mpk] [--json] [--builds LIST]`. */
export function usageLine(spec: CommandSpec): string {
  const flags = Object.entries(spec.flags).map(([k, f]) => flagSynopsis(k, f));
  return ['usage: migfuzz', spec.name, spec.args, ...flags].filter((x) => x !== '').join(' ');
}

/** `migfuzz COMMAND --help`: synopsis, what it does, every flag with its default, examples. */
export function helpText(spec: CommandSpec): string {
  const rows = Object.entries(spec.flags).map(([k, f]) => {
    const left = `  ${flagName(k)}${f.arg ? ` ${f.arg}` : ''}${f.alias ? `, ${f.alias}` : ''}`;
    return [left, `${f.help}${f.shown !== undefined ? ` (default: ${f.shown})` : ''}`] as const;
  });
  rows.push(['  --help', 'print this help']);
  const width = Math.max(...rows.map(([l]) => l.length)) + 2;
  return [
    usageLine(spec),
    '',
    spec.summary,
    '',
    'options:',
    ...rows.map(([l, r]) => `${l.padEnd(width)}${r}`),
    ...(spec.notes ?? []).flatMap((n) => ['', n]),
    '',
    spec.examples.length === 1 ? 'example:' : 'examples:',
    ...spec.examples.map((e) => `  ${e}`),
  ].join('\n');
}
