import type { BuildRegistry } from '../model/migration/builds.js';
import { scheduleToJson } from '../model/schedule/to-json.js';
import { type Schedule, ScheduleError } from '../model/schedule/types.js';
import { validateSchedule } from '../model/schedule/validate.js';
import { judgeSafely } from './execute.js';
import { cloneDoc, type Doc } from './mutate.js';

/**
 * Shrinking: remove steps and simplify data, times and configuration while the run still
 * reports the same signature. The result is 1-minimal: no single step can be removed.
 */
export interface ShrinkResult {
  schedule: Schedule;
  /** Candidate schedules run (each distinct valid schedule at most once). */
  tries: number;
  stepsBefore: number;
  stepsAfter: number;
  /** False when a limit stopped it first: a step might still be removable. */
  minimal: boolean;
}

export interface ShrinkOptions {
  /** Candidate runs allowed, and their executed events in all (a hang costs its whole budget
   * per try); past either, the result may not be 1-minimal. */
  maxTries?: number;
  maxEvents?: number;
  /** The runs' event budget (a hang found under a smaller budget shrinks under it too). */
  eventBudget?: number;
}

export function shrink(
  start: Schedule,
  signature: string,
  builds: BuildRegistry,
  { maxTries = 5000, maxEvents = 50_000_000, eventBudget }: ShrinkOptions = {},
): ShrinkResult {
  let tries = 0;
  let events = 0;
  let stopped = false;
  let best = scheduleToJson(start) as Doc;
  // Runs are deterministic, so a candidate is known by its schedule: the same schedule as
  // the best one shows the signature, and one that lost it loses it again. Simplification
  // meets many such candidates (a default option removed, a step removal tried before).
  const key = (s: Schedule): string => {
    const doc = scheduleToJson(s) as Doc;
    // A step's fields in one order: removing a default option moves it to the end.
    return JSON.stringify({ ...doc, steps: doc.steps.map((x) => Object.entries(x).sort(byName)) });
  };
  let bestKey = key(start);
  const failed = new Set<string>();
  /** Keeps `doc` if it still shows the signature. */
  const attempt = (doc: Doc): boolean => {
    let s: Schedule;
    try {
      s = validateSchedule(doc, builds);
    } catch (e) {
      if (e instanceof ScheduleError) return false;
      throw e;
    }
    const k = key(s);
    if (k === bestKey) {
      best = doc;
      return true;
    }
    if (failed.has(k)) return false;
    if (tries >= maxTries || events >= maxEvents) {
      stopped = true;
      return false;
    }
    tries++;
    const run = judgeSafely(s, builds, undefined, eventBudget);
    events += run.events;
    if (!run.findings.some((f) => f.signature === signature)) {
      failed.add(k);
      return false;
    }
    best = doc;
    bestKey = k;
    return true;
  };
  const variant = (change: (d: Doc) => void): Doc => {
    const d = cloneDoc(best);
    change(d);
    return d;
  };

  removeSteps(attempt, () => best);
  simplify(attempt, variant, () => best);
  // Simplification can make more steps removable: end with single-step removal to a fixpoint.
  removeSteps(attempt, () => best);
  return {
    schedule: validateSchedule(best, builds),
    tries,
    stepsBefore: start.steps.length,
    stepsAfter: best.steps.length,
    minimal: !stopped,
  };
}

const byName = ([a]: [string, unknown], [b]: [string, unknown]): number => (a < b ? -1 : a > b ? 1 : 0);

type Attempt = (doc: Doc) => boolean;
type Variant = (change: (d: Doc) => void) => Doc;

/** ddmin over the steps: halves, quarters... then single steps until none can go. */
function removeSteps(attempt: Attempt, best: () => Doc): void {
  let size = Math.max(1, best().steps.length >> 1);
  for (;;) {
    let removed = false;
    for (let i = 0; i < best().steps.length; ) {
      const d = cloneDoc(best());
      d.steps.splice(i, size);
      if (attempt(d))
        removed = true; // the next chunk now starts at i
      else i += size;
    }
    if (size > 1) size >>= 1;
    else if (!removed) return;
  }
}

/** Smaller data, rounder times, fewer ports and devices, default backends and options. */
function simplify(attempt: Attempt, variant: Variant, best: () => Doc): void {
  for (let i = 0; i < best().steps.length; i++) {
    const data = best().steps[i]!.data;
    if (data !== undefined) {
      const len = typeof data === 'string' ? data.length : (data as unknown[]).length;
      for (const n of [1, 2, 4, 8, Math.ceil(len / 2)]) {
        if (n >= len) continue;
        if (attempt(variant((d) => shorten(d.steps[i]!, n)))) break;
      }
    }
    const at = best().steps[i]!.at;
    for (const unit of [10_000_000, 1_000_000, 100_000, 10_000, 1000]) {
      const rounded = Math.round(at / unit) * unit;
      if (rounded === at) break;
      const prev = i > 0 ? best().steps[i - 1]!.at : 0;
      const next = best().steps[i + 1]?.at ?? Number.POSITIVE_INFINITY;
      if (rounded >= prev && rounded <= next && attempt(variant((d) => (d.steps[i]!.at = rounded)))) break;
    }
    for (const key of ['downtime', 'autostart', 'trigger', 'fifo', 'ier', 'lcr', 'divider']) {
      if (key in best().steps[i]!) attempt(variant((d) => delete d.steps[i]![key]));
    }
  }
  const used = (dev: string, port?: number): boolean =>
    best().steps.some(
      (s) => s.dev === dev && (port === undefined || s.port === undefined || s.port === port),
    );
  for (const [name, dev] of Object.entries(best().devices)) {
    if (!used(name)) {
      attempt(
        variant((d) => {
          delete d.devices[name];
          for (const side of [d.src, d.dst])
            for (const k of Object.keys(side.backends)) if (k.split('.')[0] === name) delete side.backends[k];
        }),
      );
      continue;
    }
    for (const p of dev.ports ?? []) {
      if (used(name, p.id) || (dev.ports ?? []).length < 2) continue;
      attempt(
        variant((d) => {
          const ports = d.devices[name]!.ports!;
          ports.splice(
            ports.findIndex((x) => x.id === p.id),
            1,
          );
          for (const side of [d.src, d.dst]) delete side.backends[`${name}.port${p.id}`];
        }),
      );
    }
  }
  for (const side of ['src', 'dst'] as const) {
    for (const k of Object.keys(best()[side].backends)) attempt(variant((d) => delete d[side].backends[k]));
  }
  attempt(variant((d) => (d.seed = 0)));
  const last = best().steps.at(-1)?.at ?? 0;
  for (const extra of [15_000_000, 25_000_000]) {
    const horizon = last + extra;
    if (horizon < best().horizon && attempt(variant((d) => (d.horizon = horizon)))) break;
  }
}

function shorten(step: Record<string, unknown>, n: number): void {
  const data = step.data;
  step.data = typeof data === 'string' ? data.slice(0, n) || 'x' : (data as number[]).slice(0, n);
}
