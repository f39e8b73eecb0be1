import type { EventSink } from '../model/events.js';
import type { MachineFault } from '../model/machine.js';
import type { BuildRegistry } from '../model/migration/builds.js';
import type { SourceState } from '../model/migration/from-stream.js';
import type { Schedule } from '../model/schedule/types.js';
import { oneLine } from '../model/util/text.js';
import { type RunEnd, type RunOptions, World } from '../model/world.js';
import { dataOracles } from './data.js';
import { lostInterrupt } from './lost-interrupt.js';
import { migrationFailed } from './migration-failed.js';
import { staleGuestView } from './stale-guest-view.js';
import { starvedData } from './starved-data.js';
import { stuckIrqLine } from './stuck-irq-line.js';
import {
  DEFAULT_ORACLE_PARAMS,
  type Finding,
  type NearMissSink,
  type Oracle,
  type OracleContext,
  type OracleParams,
  signatureOf,
} from './types.js';

/** Every oracle that watches a run (model-assert and hang come from how the run ended). */
export const ORACLES: readonly ((ctx: OracleContext) => Oracle)[] = [
  lostInterrupt,
  stuckIrqLine,
  staleGuestView,
  dataOracles,
  migrationFailed,
  starvedData,
];

export interface Verdict {
  findings: Finding[];
  /** Executed events. */
  events: number;
  /** Host ns at the end of the run. */
  endNs: number;
  end: RunEnd['kind'];
}

export interface JudgeOptions {
  builds: BuildRegistry;
  /** Also receives every executed event (a trace recorder). */
  sink?: EventSink;
  /** Receives the oracles' near-misses (coverage). */
  nearMiss?: NearMissSink;
  eventBudget?: number;
  fault?: MachineFault;
  params?: Partial<OracleParams>;
  /** Start the source from a real stream's device state (run --from-stream). */
  fromStream?: SourceState;
  tamper?: RunOptions['tamper'];
}

/**
 * Fans events out to the oracles that asked for their kind: one table lookup per event, so
 * an oracle costs nothing on the kinds it ignores.
 */
class OracleSink implements EventSink {
  private readonly byKind: Oracle[][] = [];
  constructor(
    oracles: readonly Oracle[],
    private readonly next: EventSink | undefined,
  ) {
    for (const o of oracles) {
      for (const k of o.kinds) {
        const list = this.byKind[k] ?? [];
        list.push(o);
        this.byKind[k] = list;
      }
    }
  }

  event(at: number, kind: number, vm: number, dev: number, a: number, b: number): void {
    this.next?.event(at, kind, vm, dev, a, b);
    const list = this.byKind[kind];
    if (list) for (const o of list) o.onEvent(at, kind, vm, dev, a, b);
  }
}

/** Runs a schedule and judges it: the verdict, with findings in the order they fired. */
export function judge(schedule: Schedule, opts: JudgeOptions): Verdict {
  const findings: Finding[] = [];
  const seen = new Set<string>();
  const params = { ...DEFAULT_ORACLE_PARAMS, ...opts.params };
  const report = (f: Omit<Finding, 'signature'>, key: string): void => {
    const signature = signatureOf(f.oracle, f.device, key);
    if (seen.has(signature)) return;
    seen.add(signature);
    findings.push({ ...f, signature });
  };
  const world = new World(schedule, {
    builds: opts.builds,
    eventBudget: opts.eventBudget,
    fault: opts.fault,
    fromStream: opts.fromStream,
    tamper: opts.tamper,
  });
  const nearMissSink = opts.nearMiss;
  const nearMiss: NearMissSink['nearMiss'] = nearMissSink
    ? (oracle, key) => nearMissSink.nearMiss(oracle, key)
    : () => {};
  const oracles = ORACLES.map((make) => make({ world, params, report, nearMiss }));
  world.sink = new OracleSink(oracles, opts.sink);
  const end = world.run();
  if (end.kind === 'assert') {
    report(
      {
        oracle: 'model-assert',
        device: null,
        at: world.hostNow,
        message: oneLine(end.message).slice(0, 1000),
      },
      assertKey(end.message),
    );
  } else if (end.kind === 'unsafe-load') {
    report(
      {
        oracle: 'unsafe-load',
        device: end.device,
        at: world.hostNow,
        message: `${end.device}: the destination accepted a state it mishandles: ${end.message}`,
      },
      end.key,
    );
  } else if (end.kind === 'hang') {
    report(
      {
        oracle: 'hang',
        device: null,
        at: world.hostNow,
        message: `the run exceeded its budget of ${world.budget} events`,
      },
      'event-budget',
    );
  } else {
    for (const o of oracles) o.finish();
  }
  return { findings, events: world.eventCount, endNs: world.hostNow, end: end.kind };
}

/** A stable key from an assertion message: its words, without the numbers. */
function assertKey(message: string): string {
  return (
    message
      .toLowerCase()
      .replace(/[0-9]+/g, '')
      .replace(/[^a-z]+/g, '-')
      .replace(/^-|-$/g, '')
      .slice(0, 48) || 'assert'
  );
}
