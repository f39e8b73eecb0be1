/**
 * `show --vcd`: a trace as a Value Change Dump (IEEE 1364-2005 §18) for GTKWave or Surfer.
 * The signals (run states, migration phases, IRQ lines, Remote-IRR, LAPIC, registers, port
 * connections, bytes held, findings) are those of signals.ts, declared in its scopes.
 *
 * Timescale 1 ns; one `#t` per distinct time, strictly increasing; several changes at one
 * time are dumped as the value after the last of them (a pulse within one ns is not
 * visible: see `show` for every event). Time 0's changes are the `$dumpvars` values.
 */

import { TRACE_FORMAT, TRACE_VERSION, type Trace } from './format.js';
import { type Scope, type Signal, traceSignals } from './signals.js';

/** An enumeration (run state, migration phase): a string signal, named values, not numbers. */
const labelsOf = (s: Signal): readonly string[] | undefined =>
  s.lane?.style === 'enum' ? s.lane.labels : undefined;

function valueText(s: Signal): string {
  const labels = labelsOf(s);
  // GTKWave and Surfer read `$var string` changes as `s<text> <id>`; `sx` is unknown.
  if (labels) return `s${s.value === null ? 'x' : (labels[s.value] ?? s.value)} ${s.id}`;
  if (s.width === 1) return `${s.value === null ? 'x' : s.value & 1}${s.id}`;
  if (s.value === null) return `bx ${s.id}`;
  const bitsText = (s.value >>> 0).toString(2);
  return `b${bitsText.length > s.width ? bitsText.slice(-s.width) : bitsText} ${s.id}`;
}

function declare(scope: Scope, out: string[]): void {
  out.push(`$scope module ${scope.name} $end`);
  for (const s of scope.signals) {
    if (labelsOf(s)) out.push(`$var string 1 ${s.id} ${s.name} $end`);
    else out.push(`$var wire ${s.width} ${s.id} ${s.name}${s.width > 1 ? ` [${s.width - 1}:0]` : ''} $end`);
  }
  for (const c of scope.scopes) declare(c, out);
  out.push('$upscope $end');
}

/** The VCD text of a trace. */
/** The header comment's legend: every value of each string signal (one line per name). */
function legend(all: readonly Signal[]): string[] {
  const lines = new Map<string, string>();
  for (const s of all) {
    const labels = labelsOf(s);
    if (!labels) continue;
    // Per-VM signals share one line: `vmN.run_state`.
    const name = s.path
      .split('.')
      .slice(1)
      .join('.')
      .replace(/^vm\d+\./, 'vmN.');
    const note = s.value === null ? ', the last phase; x before the first' : '';
    lines.set(name, `  ${name} (string${note}): ${labels.join(', ')}`);
  }
  return [...lines.values()];
}

export function traceToVcd(t: Trace): string {
  const signals = traceSignals(t);
  const out: string[] = [
    '$comment',
    `  ${TRACE_FORMAT} v${TRACE_VERSION}: ${t.schedule.src.build} -> ${t.schedule.dst.build} on ${t.schedule.machine}, seed ${t.schedule.seed}, ${t.events.length} events, digest ${t.digest}`,
    ...legend(signals.all),
    '$end',
    `$version ${t.tool.name} ${t.tool.version} $end`,
    '$timescale 1ns $end',
  ];
  declare(signals.top, out);
  out.push('$enddefinitions $end');

  let last = 0;
  signals.play((time, first) => {
    const changed: string[] = [];
    for (const s of signals.all) {
      if (first || s.value !== s.dumped) {
        changed.push(valueText(s));
        s.dumped = s.value;
      }
    }
    if (first) out.push('#0', '$dumpvars', ...changed, '$end');
    else if (changed.length > 0) out.push(`#${time}`, ...changed);
    last = time;
  });
  // The run's end, so viewers show its whole length.
  if (t.verdict.endNs > last) out.push(`#${t.verdict.endNs}`);
  out.push('');
  return out.join('\n');
}
