import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { confirm } from '../confirm/confirm.js';
import { planConfirm } from '../confirm/plan.js';
import { killAllQemu } from '../confirm/qemu.js';
import type { BuildRegistry } from '../model/migration/builds.js';
import type { Schedule } from '../model/schedule/types.js';
import { writeFileAtomic } from './fs.js';

/**
 * `fuzz --confirm`: each new signature found on a modern build is run once on a real QEMU
 * (`migfuzz confirm` on its shrunk schedule), one at a time beside the campaign, which never
 * waits for it. The verdict and the real run's evidence go to crashes/SIGNATURE/confirm.json
 * (and its logs to crashes/SIGNATURE/real/); the findings table and fuzzer_stats.json show it.
 */

export type RealVerdict =
  | 'confirmed'
  | 'not reproduced'
  | 'untranslatable'
  | 'pending'
  | 'interrupted'
  | `error: ${string}`;

interface Job {
  signature: string;
  schedule: Schedule;
  dir: string;
}

export class Confirmer {
  readonly verdicts = new Map<string, RealVerdict>();
  private readonly queue: Job[] = [];
  private running: Promise<void> | undefined;
  private aborted = false;

  constructor(
    private readonly builds: BuildRegistry,
    private readonly binary: string,
    private readonly eventBudget: number,
  ) {
    process.once('exit', killAllQemu);
  }

  /**
   * A finding's shrunk schedule, saved in `dir`. A signature confirmed before (a resumed
   * campaign) keeps its verdict; one saved before without a verdict (no schedule) is left.
   */
  submit(signature: string, schedule: Schedule | undefined, dir: string): void {
    if (this.verdicts.has(signature) || this.aborted) return;
    const earlier = readVerdict(dir);
    if (earlier && earlier !== 'interrupted' && earlier !== 'pending') {
      this.verdicts.set(signature, earlier);
      return;
    }
    if (!schedule) return;
    const plan = planConfirm(schedule, this.builds);
    if (!plan.runnable) {
      this.settle({ signature, schedule, dir }, 'untranslatable', { untranslatable: plan.untranslatable });
      return;
    }
    this.verdicts.set(signature, 'pending');
    this.queue.push({ signature, schedule, dir });
    this.pump();
  }

  /** Waits for every confirmation under way or queued. */
  async drain(): Promise<void> {
    while (this.running) await this.running;
  }

  /** A stopped campaign: no more confirmations, and the QEMUs of the current one killed. */
  abort(): void {
    this.aborted = true;
    for (const j of this.queue.splice(0)) this.verdicts.set(j.signature, 'interrupted');
    killAllQemu();
  }

  private pump(): void {
    if (this.running || this.aborted) return;
    const job = this.queue.shift();
    if (!job) return;
    this.running = this.one(job).finally(() => {
      this.running = undefined;
      this.pump();
    });
  }

  private async one(job: Job): Promise<void> {
    try {
      const r = await confirm(job.schedule, this.builds, {
        binary: this.binary,
        keep: join(job.dir, 'real'),
        eventBudget: this.eventBudget,
        log: () => {},
      });
      const verdict = r.real.some((f) => f.signature === job.signature) ? 'confirmed' : 'not reproduced';
      this.settle(job, verdict, r);
    } catch (e) {
      this.settle(job, this.aborted ? 'interrupted' : `error: ${(e as Error).message.split('\n')[0]}`, {});
    }
  }

  private settle(job: Job, verdict: RealVerdict, detail: object): void {
    this.verdicts.set(job.signature, verdict);
    writeFileAtomic(
      join(job.dir, 'confirm.json'),
      `${JSON.stringify({ signature: job.signature, verdict, ...detail }, null, 1)}\n`,
    );
  }
}

function readVerdict(dir: string): RealVerdict | undefined {
  const file = join(dir, 'confirm.json');
  if (!existsSync(file)) return undefined;
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { verdict?: RealVerdict }).verdict;
  } catch {
    return undefined;
  }
}
