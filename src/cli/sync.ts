import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Doc } from '../fuzz/mutate.js';
import type { BuildRegistry } from '../model/migration/builds.js';
import { scheduleToJson } from '../model/schedule/to-json.js';
import type { Schedule } from '../model/schedule/types.js';
import { parseSchedule } from '../model/schedule/validate.js';
import { makeDirs, writeFileAtomic } from './fs.js';

/**
 * Campaigns across machines, as AFL++'s `-M`/`-S` instances share a sync directory: each
 * instance is an ordinary campaign directory `DIR/NAME/` that only it writes (every file by
 * an atomic rename), and it reads the others'. It imports their new queue entries (they run
 * first, and join its queue only with new coverage) and does not save a finding that another
 * instance has already saved under the same signature. What it took from each other instance
 * is remembered in `DIR/NAME/.synced/OTHER` (the highest queue id), so a restart resumes.
 */

const INSTANCE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const INSTANCE_EXPECTED = '1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit';

export const validInstance = (name: string): boolean => INSTANCE.test(name);

/** How long a new claim waits before the claims are compared (a finding is claimed once). */
const CLAIM_SETTLE_MS = 500;

/** AFL's queue names: `id:000123,...`. */
const queueId = (name: string): number => {
  const m = /^id:(\d+),/.exec(name);
  return m ? Number(m[1]) : -1;
};

export class SyncDir {
  /** Highest queue id taken from each other instance. */
  private readonly taken = new Map<string, number>();

  constructor(
    readonly root: string,
    readonly instance: string,
  ) {
    makeDirs(join(root, instance, '.synced'));
    for (const other of readdirSync(join(root, instance, '.synced'))) {
      if (other.includes('.tmp-')) continue;
      const n = Number(readFileSync(join(root, instance, '.synced', other), 'utf8').trim());
      if (Number.isInteger(n)) this.taken.set(other, n);
    }
  }

  /** This instance's campaign directory. */
  get own(): string {
    return join(this.root, this.instance);
  }

  /** The other instances: directories of the sync dir with a queue. */
  others(): string[] {
    if (!existsSync(this.root)) return [];
    return readdirSync(this.root)
      .filter((d) => d !== this.instance && validInstance(d) && existsSync(join(this.root, d, 'queue')))
      .sort();
  }

  /**
   * The others' queue entries this instance has not taken yet, of the campaign's builds
   * (one that does not parse, or is of other builds, is passed over for good).
   */
  newEntries(builds: BuildRegistry, keep: (s: Schedule) => boolean): Doc[] {
    const docs: Doc[] = [];
    for (const other of this.others()) {
      const last = this.taken.get(other) ?? -1;
      let high = last;
      const names = readdirSync(join(this.root, other, 'queue'))
        .filter((n) => n.endsWith('.json') && queueId(n) > last)
        .sort((a, b) => queueId(a) - queueId(b));
      for (const name of names) {
        high = Math.max(high, queueId(name));
        try {
          const s = parseSchedule(readFileSync(join(this.root, other, 'queue', name), 'utf8'), builds);
          if (keep(s)) docs.push(scheduleToJson(s) as Doc);
        } catch {
          // Another build set, or written by a newer migfuzz: the queue is an optimisation.
        }
      }
      if (high > last) {
        this.taken.set(other, high);
        writeFileAtomic(join(this.own, '.synced', other), `${high}\n`, { durable: false });
      }
    }
    return docs;
  }

  /**
   * Who saves a finding (`crashes/SIG` or `hangs/SIG`): another instance that already saved
   * it, else the earliest claim. Each instance claims in its own directory
   * (`claims/crashes/SIG`, written atomically) and then reads the others' claims: the claim
   * with the earliest modification time (then the smaller name) wins, so two instances that
   * find it at once still save it once. Undefined: this instance saves it.
   */
  claim(sub: string): string | undefined {
    const others = this.others();
    const saved = others.find((o) => existsSync(join(this.root, o, sub, 'finding.json')));
    if (saved !== undefined) return saved;
    const own = join(this.own, 'claims', sub);
    // A claim stands once made: writing it again would move it behind later ones.
    if (!existsSync(own)) {
      makeDirs(join(own, '..'));
      writeFileAtomic(own, '', { durable: false });
      // A claim's time is when its file was written, but others see it only after the rename:
      // wait until every claim written before this one has surely been renamed into place,
      // or two instances that claim at once could each see only their own and both save.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, CLAIM_SETTLE_MS);
    }
    let winner = { name: this.instance, at: statSync(own).mtimeMs };
    for (const o of others) {
      const file = join(this.root, o, 'claims', sub);
      if (!existsSync(file)) continue;
      const at = statSync(file).mtimeMs;
      if (at < winner.at || (at === winner.at && o < winner.name)) winner = { name: o, at };
    }
    return winner.name === this.instance ? undefined : winner.name;
  }
}
