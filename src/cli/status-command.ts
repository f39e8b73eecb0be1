import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from './args.js';
import { InputError } from './exit-codes.js';
import { bool, type CommandSpec, parseFlags } from './flags.js';

/**
 * `migfuzz status DIR [--json]`: every campaign of a sync directory at a glance, like
 * afl-whatsup: executions, speed, coverage, queue, findings and how long since each last
 * reached new coverage. DIR may also be one campaign directory.
 */

export interface InstanceStatus {
  instance: string;
  execs: number;
  execsPerSec: number;
  coverage: number;
  corpus: number;
  findings: number;
  /** Seconds since fuzzer_stats.json was written (a dead instance stops updating it). */
  lastUpdateS: number | null;
  /** Seconds since its newest queue entry (AFL's last new path). */
  lastNewPathS: number | null;
}

const STATUS_FLAGS = { json: bool('print one JSON object: every instance and the totals') };

export const STATUS: CommandSpec<typeof STATUS_FLAGS> = {
  name: 'status',
  args: 'DIR',
  summary:
    'every campaign of a sync dir (fuzz --sync-dir) at a glance, like afl-whatsup: executions, exec/s, coverage, queue, findings, last new path',
  flags: STATUS_FLAGS,
  examples: ['npx migfuzz status sync/', 'npx migfuzz status out --json'],
};

function readStats(dir: string): Record<string, unknown> | null {
  try {
    return JSON.parse(readFileSync(join(dir, 'fuzzer_stats.json'), 'utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
}

export function campaignStatus(dir: string, name: string, nowMs: number): InstanceStatus | null {
  const st = readStats(dir);
  if (!st) return null;
  const num = (k: string): number => (typeof st[k] === 'number' ? (st[k] as number) : 0);
  let newest: number | null = null;
  const queue = join(dir, 'queue');
  if (existsSync(queue)) {
    for (const f of readdirSync(queue)) {
      if (!f.endsWith('.json')) continue;
      const t = statSync(join(queue, f)).mtimeMs;
      if (newest === null || t > newest) newest = t;
    }
  }
  const findings = st.findings && typeof st.findings === 'object' ? Object.keys(st.findings).length : 0;
  const updated = typeof st.last_update === 'number' ? st.last_update * 1000 : null;
  return {
    instance: name,
    execs: num('execs'),
    execsPerSec: num('execs_per_sec'),
    coverage: num('coverage'),
    corpus: num('corpus_size'),
    findings,
    lastUpdateS: updated === null ? null : Math.max(0, Math.round((nowMs - updated) / 1000)),
    lastNewPathS: newest === null ? null : Math.max(0, Math.round((nowMs - newest) / 1000)),
  };
}

export function syncStatus(dir: string, nowMs: number): InstanceStatus[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new InputError(`${dir}: not a directory`);
  const own = campaignStatus(dir, '.', nowMs);
  if (own) return [own];
  const out = readdirSync(dir)
    .sort()
    .map((d) => (statSync(join(dir, d)).isDirectory() ? campaignStatus(join(dir, d), d, nowMs) : null))
    .filter((s): s is InstanceStatus => s !== null);
  if (out.length === 0)
    throw new InputError(`${dir}: no campaign here (no fuzzer_stats.json in it or its subdirectories)`);
  return out;
}

const ago = (s: number | null): string =>
  s === null
    ? '-'
    : s < 120
      ? `${s} s`
      : s < 7200
        ? `${Math.round(s / 60)} min`
        : `${Math.round(s / 3600)} h`;

/** `status`'s arguments (usage errors thrown). */
export function statusArgs(argv: readonly string[]): { dir: string; json: boolean } {
  const a = parseFlags(argv, STATUS.flags);
  if (a.positionals.length !== 1)
    throw new UsageError('status needs exactly one DIR (a sync dir or a campaign)');
  return { dir: a.positionals[0]!, json: a.flags.json };
}

export function cmdStatus(argv: string[], nowMs: number): number {
  const { dir, json } = statusArgs(argv);
  const rows = syncStatus(dir, nowMs);
  const total = {
    instances: rows.length,
    execs: rows.reduce((n, r) => n + r.execs, 0),
    execsPerSec: rows.reduce((n, r) => n + r.execsPerSec, 0),
    coverage: Math.max(...rows.map((r) => r.coverage)),
  };
  if (json) {
    console.log(JSON.stringify({ instances: rows, total }));
    return 0;
  }
  const head = ['instance', 'execs', 'exec/s', 'coverage', 'corpus', 'findings', 'updated', 'last new path'];
  const cells = rows.map((r) => [
    r.instance,
    String(r.execs),
    String(r.execsPerSec),
    String(r.coverage),
    String(r.corpus),
    String(r.findings),
    `${ago(r.lastUpdateS)} ago`,
    `${ago(r.lastNewPathS)} ago`,
  ]);
  const width = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  for (const line of [head, ...cells])
    console.log(
      line
        .map((c, i) => c.padEnd(width[i]!))
        .join('  ')
        .trimEnd(),
    );
  console.log(
    `${total.instances} instance(s): ${total.execs} executions, ${total.execsPerSec} exec/s together, coverage up to ${total.coverage}`,
  );
  return 0;
}
