import { BENCH_BUGS } from '../bench/bugs/registry.js';
import { BUILTIN_BUILDS, type Build } from '../src/model/migration/builds.js';
import { KNOWN_CAUSES } from '../src/oracles/known.js';

/**
 * The tables of docs/ that come from the code's own data: test/docs.test.ts checks that the
 * documents hold them verbatim, so a new build or known cause cannot go undocumented. On a
 * mismatch the test prints the table to paste.
 */

/** Machine types as a short list: `pc-i440fx-2.0 … pc-i440fx-9.2 (33)` for long ones. */
function machinesText(b: Build): string {
  const names = b.machines.map((m) => (m.migratePre22 ? `${m.name}*` : m.name));
  return names.length <= 6
    ? names.join(', ')
    : `${names.slice(0, 2).join(', ')} … ${names.at(-1)} (${names.length})`;
}

const list = (xs: readonly string[]): string =>
  xs.length === 0 ? 'none' : xs.map((x) => x.replace('serial/', '')).join(', ');

export function buildsTable(): string {
  const rows = BUILTIN_BUILDS.map((b) => {
    const r = b.revisions;
    return `| \`${b.name}\` | ${machinesText(b)} | ${r.virtioSerialPortOpen} | ${list(r.serialSubsections)} | ${r.serialPostLoadChecks} | ${list(r.serialGatedPre22)} | ${r.lapicLoad} |`;
  });
  return [
    '| build | machine types (* migrate_pre_2_2) | virtioSerialPortOpen | serialSubsections | serialPostLoadChecks | serialGatedPre22 | lapicLoad |',
    '|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

export function knownCausesTable(): string {
  const rows = KNOWN_CAUSES.map((c) => {
    const sigs = c.signatures.map((s) => `\`${s.oracle}:DEV:${s.key}\` (${s.kind})`).join(', ');
    return `| ${c.name} | ${c.summary} | ${c.when} | ${sigs} |`;
  });
  return [
    '| known cause | what goes wrong | builds that have it | signatures |',
    '|---|---|---|---|',
    ...rows,
  ].join('\n');
}

/** The real-bug benchmark of bench/bugs/registry.ts: builds, provenance, account, witness. */
export function benchBugsTable(): string {
  const cell = (text: string): string => text.replace(/\|/g, '\\|');
  const builds = (names: readonly string[]): string => names.map((n) => `\`${n}\``).join(', ');
  const rows = BENCH_BUGS.map(
    (b) =>
      `| \`${b.id}\` ([witness](../${b.witness})) | ${builds(b.buggy.allowed)} → ${builds(b.fixed.allowed)} | ${cell(b.provenance)} | ${cell(b.account)} |`,
  );
  return ['| bug | buggy → fixed builds | provenance | account |', '|---|---|---|---|', ...rows].join('\n');
}
