import type { BuildRegistry } from '../model/migration/builds.js';
import type { Schedule } from '../model/schedule/types.js';
import { DEFAULT_EVENT_BUDGET } from '../model/world.js';
import { judge } from '../oracles/verdict.js';
import type { Trace } from './format.js';
import { TraceRecorder } from './recorder.js';
import { makeTrace, traceRegistry } from './trace.js';

/**
 * Runs and judges `schedule`, recording every executed event: the trace of the run. The run
 * is the plain `judge` run (default oracle parameters; the default event budget unless one
 * is given, which the trace then keeps) with the recorder as its extra sink, so its verdict
 * is the one `run` prints.
 */
export function recordRun(
  schedule: Schedule,
  builds: BuildRegistry,
  eventBudget = DEFAULT_EVENT_BUDGET,
): Trace {
  const recorder = new TraceRecorder();
  const verdict = judge(schedule, { builds, sink: recorder, eventBudget });
  const vmEndNs = recorder.vmNs(verdict.endNs);
  return makeTrace(schedule, builds, recorder.parts(), recorder.count, verdict, vmEndNs, eventBudget);
}

/** Re-executes a trace's schedule with the builds it recorded: the replayed trace. */
export function rerun(trace: Trace): Trace {
  return recordRun(trace.schedule, traceRegistry(trace), trace.stats.eventBudget);
}
