import type { BuildRegistry } from '../model/migration/builds.js';
import type { Schedule } from '../model/schedule/types.js';
import { judge } from '../oracles/verdict.js';
import { EventLog } from './event-log.js';
import type { Trace } from './format.js';
import { makeTrace, traceRegistry } from './trace.js';

/**
 * Runs and judges `schedule`, recording every executed event: the trace of the run. The run
 * is the plain `judge` run (default oracle parameters and event budget) with the recorder as
 * its extra sink, so its verdict is the one `run` prints.
 */
export function recordRun(schedule: Schedule, builds: BuildRegistry): Trace {
  const log = new EventLog(1 << 14);
  const verdict = judge(schedule, { builds, sink: log });
  return makeTrace(schedule, builds, log, verdict);
}

/** Re-executes a trace's schedule with the builds it recorded: the replayed trace. */
export function rerun(trace: Trace): Trace {
  return recordRun(trace.schedule, traceRegistry(trace));
}
