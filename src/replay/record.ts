import type { BuildRegistry } from '../model/migration/builds.js';
import type { Schedule } from '../model/schedule/types.js';
import { judge } from '../oracles/verdict.js';
import type { Trace } from './format.js';
import { TraceRecorder } from './recorder.js';
import { makeTrace, traceRegistry } from './trace.js';

/**
 * Runs and judges `schedule`, recording every executed event: the trace of the run. The run
 * is the plain `judge` run (default oracle parameters and event budget) with the recorder as
 * its extra sink, so its verdict is the one `run` prints.
 */
export function recordRun(schedule: Schedule, builds: BuildRegistry): Trace {
  const recorder = new TraceRecorder();
  const verdict = judge(schedule, { builds, sink: recorder });
  return makeTrace(schedule, builds, recorder.parts(), recorder.count, verdict, recorder.vmNs(verdict.endNs));
}

/** Re-executes a trace's schedule with the builds it recorded: the replayed trace. */
export function rerun(trace: Trace): Trace {
  return recordRun(trace.schedule, traceRegistry(trace));
}
