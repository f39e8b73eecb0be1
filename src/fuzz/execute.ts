import type { EventSink } from '../model/events.js';
import type { BuildRegistry } from '../model/migration/builds.js';
import { type Schedule, ScheduleError } from '../model/schedule/types.js';
import { validateSchedule } from '../model/schedule/validate.js';
import type { Finding, NearMissSink } from '../oracles/types.js';
import { judge } from '../oracles/verdict.js';
import { CoverageSink } from './coverage.js';
import type { Doc } from './mutate.js';

/**
 * The executor: builds one schedule from its JSON document, runs it with coverage, and judges
 * it. What the campaign keeps of the outcome (queue entry, findings) is the loop's business.
 */

/**
 * judge(), except that a model that throws (a bug of the model itself, not one of its
 * asserts) gives a model-assert finding instead of ending the campaign.
 */
export function judgeSafely(
  schedule: Schedule,
  builds: BuildRegistry,
  coverage?: EventSink & NearMissSink,
  eventBudget?: number,
): { findings: Finding[]; events: number } {
  try {
    const v = judge(schedule, { builds, sink: coverage, nearMiss: coverage, eventBudget });
    return { findings: v.findings, events: v.events };
  } catch (e) {
    const name = e instanceof Error ? e.name : 'throw';
    const message = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    return {
      findings: [
        { oracle: 'model-assert', device: null, at: 0, message, signature: `model-assert:-:crash-${name}` },
      ],
      events: 0,
    };
  }
}

/** One execution's outcome: a document that is no valid schedule, or a judged run. */
export type Execution =
  | { kind: 'invalid' }
  | {
      kind: 'ran';
      schedule: Schedule;
      findings: Finding[];
      events: number;
      /** What the run reached; valid until the next execution. */
      coverage: CoverageSink;
    };

export class Executor {
  private readonly coverage = new CoverageSink();

  constructor(
    private readonly builds: BuildRegistry,
    private readonly eventBudget?: number,
  ) {}

  run(doc: Doc): Execution {
    let schedule: Schedule;
    try {
      schedule = validateSchedule(doc, this.builds);
    } catch (e) {
      if (!(e instanceof ScheduleError)) throw e;
      return { kind: 'invalid' };
    }
    const cov = this.coverage;
    cov.reset();
    const { findings, events } = judgeSafely(schedule, this.builds, cov, this.eventBudget);
    return { kind: 'ran', schedule, findings, events, coverage: cov };
  }
}
