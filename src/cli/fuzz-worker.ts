import { parentPort, workerData } from 'node:worker_threads';
import { Campaign, type CoveredEntry, type FindingRecord } from '../fuzz/campaign.js';
import type { Doc } from '../fuzz/mutate.js';
import type { Build } from '../model/migration/builds.js';
import { scheduleToJson } from '../model/schedule/to-json.js';
import { validateSchedule } from '../model/schedule/validate.js';

/**
 * A campaign worker thread: runs its own deterministic campaign (its own seed) in batches,
 * reports each batch (new queue entries, new findings, counters) and takes in the entries
 * other workers found, so coverage found anywhere is mutated everywhere.
 */
export interface WorkerInit {
  seed: number;
  builds: Build[];
  allowed: string[];
  maxQueue: number;
  eventBudget: number;
  /** false: coverage feedback off (--no-coverage). */
  coverage: boolean;
  /** Executions this worker may run (its share of --execs), or null: until told to stop. */
  maxExecs: number | null;
  /** Starting inputs as schedule documents (only worker 0 runs them). */
  initial: Doc[];
  /** Their file names (a finding's origin). */
  initialNames: string[];
  imported: Doc[];
}

export interface BatchReport {
  type: 'batch';
  execs: number;
  invalid: number;
  queueSize: number;
  covered: number;
  /** New queue entries, with what their runs reached: the other workers merge it unrun. */
  entries: (CoveredEntry & { op: string; exec: number })[];
  findings: (Omit<FindingRecord, 'schedule'> & { schedule: object })[];
  /** How often this worker has seen each signature so far. */
  counts: Record<string, number>;
}

/**
 * The main thread sends entries found elsewhere: another instance's, to run ('import'), or
 * another worker's, with their coverage ('covered'). It ends a worker with terminate().
 */
export type ToWorker = { type: 'import'; docs: Doc[] } | { type: 'covered'; entries: CoveredEntry[] };

const BATCH = 64;

function start(init: WorkerInit): void {
  const port = parentPort!;
  const builds = new Map(init.builds.map((b) => [b.name, b]));
  const campaign = new Campaign({
    seed: init.seed,
    builds,
    allowed: init.allowed,
    maxQueue: init.maxQueue,
    eventBudget: init.eventBudget,
    coverage: init.coverage,
    initial: init.initial.map((doc) => validateSchedule(doc, builds)),
    initialNames: init.initialNames,
  });
  for (const doc of init.imported) campaign.importEntry(doc);
  port.on('message', (m: ToWorker) => {
    if (m.type === 'import') for (const doc of m.docs) campaign.importEntry(doc);
    else for (const e of m.entries) campaign.importCovered(e);
  });
  const loop = (): void => {
    const left = init.maxExecs === null ? BATCH : Math.min(BATCH, init.maxExecs - campaign.execs);
    if (left <= 0) return; // its share is done and reported: idle until terminated
    const report: BatchReport = {
      type: 'batch',
      execs: 0,
      invalid: 0,
      queueSize: 0,
      covered: 0,
      entries: [],
      findings: [],
      counts: {},
    };
    for (let i = 0; i < left; i++) {
      const r = campaign.step();
      // Entries taken from the others are theirs to report.
      const e = r.newEntry;
      if (e && e.op !== 'imported')
        report.entries.push({
          doc: e.doc,
          op: e.op,
          exec: campaign.execs,
          cost: e.cost,
          reached: e.reached,
          buckets: r.newEntryBuckets!,
        });
      for (const f of r.newFindings) report.findings.push({ ...f, schedule: scheduleToJson(f.schedule) });
    }
    report.execs = campaign.execs;
    report.invalid = campaign.invalid;
    report.queueSize = campaign.queue.length;
    report.covered = campaign.virgin.covered;
    for (const [sig, f] of campaign.findings) report.counts[sig] = f.count;
    port.postMessage(report);
    setImmediate(loop);
  };
  loop();
}

if (parentPort && workerData) start(workerData as WorkerInit);
