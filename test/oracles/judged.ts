import type { MachineFault } from '../../src/model/machine.js';
import { builtinRegistry } from '../../src/model/migration/builds.js';
import type { Schedule } from '../../src/model/schedule/types.js';
import { judge } from '../../src/oracles/verdict.js';

/** One executed event, as the oracles and traces see it. */
export interface Event {
  at: number;
  kind: number;
  vm: number;
  dev: number;
  a: number;
  b: number;
}

export const builds = builtinRegistry();

/** Runs and judges a schedule (optionally with an injected fault), keeping every event. */
export function judged(s: Schedule, fault?: MachineFault) {
  const events: Event[] = [];
  const verdict = judge(s, {
    builds,
    fault,
    sink: { event: (at, kind, vm, dev, a, b) => events.push({ at, kind, vm, dev, a, b }) },
  });
  return { verdict, events, signatures: verdict.findings.map((f) => f.signature) };
}
