import type { BuildRegistry } from '../model/migration/builds.js';
import type { Rng } from '../model/rng.js';
import { type BuildPair, buildPairs } from './arbitraries.js';

/**
 * Schedule-aware mutators. They work on the schedule's JSON document (docs/schedule.md) and
 * keep it meaningful: steps only name devices and ports that exist, times stay sorted. The
 * caller validates the result like any input and drops what does not pass.
 */
export type Doc = {
  seed: number;
  machine: string;
  src: { build: string; backends: Record<string, string> };
  dst: { build: string; backends: Record<string, string> };
  devices: Record<string, { kind: string; irq: number | string; ports?: { id: number }[] }>;
  steps: StepDoc[];
  horizon: number;
} & Record<string, unknown>;
export type StepDoc = { at: number; do: string } & Record<string, unknown>;

export const MUTATORS = [
  'delete',
  'duplicate',
  'move',
  'retime',
  'data',
  'backend',
  'builds',
  'machine',
  'irq-mode',
  'splice',
  'seed',
  'uart-config',
] as const;
export type MutatorName = (typeof MUTATORS)[number];

const UART_LENGTHS = [1, 4, 8, 14, 15, 16, 17, 32];
const PORT_LENGTHS = [...UART_LENGTHS, 64, 65, 255, 256, 257, 300];
const TIME_NUDGES = [1, 10, 1000, 2000, 10_000, 100_000, 300_000, 1_000_000, 5_000_000];
const BACKENDS = { uart: ['open', 'hung-up', 'closed', 'slow'], vport: ['socket-server', 'socket-client'] };

const encoder = new TextEncoder();
const bytesOf = (d: unknown): number[] =>
  typeof d === 'string' ? Array.from(encoder.encode(d)) : Array.isArray(d) ? (d as number[]).slice() : [];

export interface MutationContext {
  rng: Rng;
  builds: BuildRegistry;
  allowed: readonly string[];
  /** Another queue entry, for splicing. */
  other: () => Doc;
}

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.below(xs.length)]!;

const cloneStep = (s: StepDoc): StepDoc =>
  Array.isArray(s.data) ? { ...s, data: s.data.slice() } : { ...s };

/** A deep copy (of the document's known shape): documents in the queue never change in place. */
export function cloneDoc(d: Doc): Doc {
  const devices: Doc['devices'] = {};
  for (const [name, dev] of Object.entries(d.devices)) {
    devices[name] = dev.ports ? { ...dev, ports: dev.ports.map((p) => ({ ...p })) } : { ...dev };
  }
  return {
    ...d,
    src: { build: d.src.build, backends: { ...d.src.backends } },
    dst: { build: d.dst.build, backends: { ...d.dst.backends } },
    devices,
    steps: d.steps.map(cloneStep),
  };
}

/**
 * Applies one mutator; true when the document changed (a mutator that would draw the value
 * already there, or has nothing to work on, reports false: no execution is wasted on it).
 */
export function mutate(doc: Doc, name: MutatorName, cx: MutationContext): boolean {
  const { rng } = cx;
  const steps = doc.steps;
  switch (name) {
    case 'delete':
      if (steps.length === 0) return false;
      steps.splice(rng.below(steps.length), 1);
      return true;
    case 'duplicate': {
      if (steps.length === 0) return false;
      const s = pick(rng, steps);
      insertSorted(steps, { ...cloneStep(s), at: s.at + pick(rng, TIME_NUDGES) });
      return true;
    }
    case 'move': {
      // A step jumps next to another one (often a migration): just before or after it.
      if (steps.length < 2) return false;
      const k = rng.below(steps.length);
      const [s] = steps.splice(k, 1);
      const anchor = pick(rng, steps);
      const delta = pick(rng, TIME_NUDGES) * (rng.below(2) ? 1 : -1);
      return (
        insertSorted(steps, { ...s!, at: Math.max(0, anchor.at + delta) }) !== k ||
        anchor.at + delta !== s!.at
      );
    }
    case 'retime': {
      if (steps.length === 0) return false;
      const k = rng.below(steps.length);
      const [s] = steps.splice(k, 1);
      const at = Math.max(0, s!.at + pick(rng, TIME_NUDGES) * (rng.below(2) ? 1 : -1));
      return insertSorted(steps, { ...s!, at }) !== k || at !== s!.at;
    }
    case 'data':
      return mutateData(doc, rng);
    case 'backend':
      return mutateBackend(doc, rng);
    case 'builds':
      return mutateBuilds(doc, cx);
    case 'machine': {
      const pair = buildPairs(cx.builds, [doc.src.build, doc.dst.build]).find(
        (p) => p.src === doc.src.build && p.dst === doc.dst.build,
      );
      const others = pair?.machines.filter((m) => m !== doc.machine) ?? [];
      if (others.length === 0) return false;
      doc.machine = pick(rng, others);
      return true;
    }
    case 'irq-mode': {
      const vser = Object.values(doc.devices).find((d) => d.kind === 'virtio-serial');
      if (!vser) return false;
      vser.irq = vser.irq === 'intx' ? 'msix' : 'intx';
      return true;
    }
    case 'splice':
      return splice(doc, cx.other(), rng);
    case 'seed':
      doc.seed = (doc.seed + 1 + rng.below(0xffff)) & 0xffff;
      return true;
    case 'uart-config':
      return mutateUartConfig(doc, rng);
  }
}

/**
 * One setting of a guest.uart.config step takes another value: FIFO, trigger level, IER,
 * line control or divisor (slow lines keep bytes in the FIFOs longer across a migration).
 */
const UART_SETTINGS: Record<string, readonly (number | boolean)[]> = {
  fifo: [true, false],
  trigger: [1, 4, 8, 14],
  ier: [0, 1, 2, 3, 5, 7, 15],
  lcr: [0x00, 0x03, 0x07, 0x0b, 0x1b, 0x3b, 0x43],
  divider: [1, 2, 12, 96, 384, 0xffff],
};
function mutateUartConfig(doc: Doc, rng: Rng): boolean {
  const key = pick(rng, Object.keys(UART_SETTINGS));
  const configs = doc.steps.filter((s) => s.do === 'guest.uart.config');
  if (configs.length > 0 && rng.below(4) > 0) {
    const s = pick(rng, configs);
    s[key] = pick(
      rng,
      UART_SETTINGS[key]!.filter((v) => v !== s[key]),
    );
    return true;
  }
  // A new config step, early or next to another step, for a UART of the schedule.
  const uarts = Object.entries(doc.devices).filter(([, d]) => d.kind === 'isa-serial');
  if (uarts.length === 0) return false;
  const at = doc.steps.length > 0 && rng.below(2) ? pick(rng, doc.steps).at : pick(rng, TIME_NUDGES);
  insertSorted(doc.steps, {
    at,
    do: 'guest.uart.config',
    dev: pick(rng, uarts)[0],
    [key]: pick(rng, UART_SETTINGS[key]!),
  });
  return true;
}

/** Inserts after the steps at the same time (file order); returns the index. */
function insertSorted(steps: StepDoc[], s: StepDoc): number {
  let i = steps.length;
  while (i > 0 && steps[i - 1]!.at > s.at) i--;
  steps.splice(i, 0, s);
  return i;
}

/** Lengths move to the interesting sizes; bytes flip; a prefix or suffix goes. */
function mutateData(doc: Doc, rng: Rng): boolean {
  const withData = doc.steps.filter((s) => 'data' in s);
  if (withData.length === 0) return false;
  const s = pick(rng, withData);
  const bytes = bytesOf(s.data);
  switch (rng.below(4)) {
    case 0:
      // FIFO sizes and trigger levels; for a port, a guest buffer (64) and past a socket
      // backend's buffer (256), where the port throttles.
      bytes.length = pick(rng, String(s.do).includes('vport') ? PORT_LENGTHS : UART_LENGTHS);
      for (let i = 0; i < bytes.length; i++) bytes[i] ??= 0x61 + (i % 26);
      break;
    case 1:
      bytes.splice(0, rng.below(bytes.length));
      break;
    case 2:
      bytes.push(...bytes.slice(0, Math.min(bytes.length, 4096 - bytes.length)));
      break;
    default:
      bytes[rng.below(bytes.length)] = rng.below(256);
  }
  if (bytes.length === 0) bytes.push(0x2a);
  const old = bytesOf(s.data);
  if (bytes.length === old.length && bytes.every((x, i) => x === old[i])) return false;
  // Printable ASCII goes back to a string: queued documents stay small.
  s.data = bytes.every((b) => b >= 0x20 && b <= 0x7e) ? String.fromCharCode(...bytes) : bytes;
  return true;
}

function mutateBackend(doc: Doc, rng: Rng): boolean {
  const side = rng.below(2) ? doc.src : doc.dst;
  const keys: string[] = [];
  for (const [name, d] of Object.entries(doc.devices)) {
    if (d.kind === 'isa-serial') keys.push(name);
    else for (const p of d.ports ?? []) keys.push(`${name}.port${p.id}`);
  }
  if (keys.length === 0) return false;
  const key = pick(rng, keys);
  const values = key.includes('.port') ? BACKENDS.vport : BACKENDS.uart;
  // An absent backend is the first value (open, none).
  const others = values.filter((v) => v !== (side.backends[key] ?? values[0]));
  side.backends[key] = pick(rng, others);
  return true;
}

function mutateBuilds(doc: Doc, cx: MutationContext): boolean {
  const pairs: BuildPair[] = buildPairs(cx.builds, cx.allowed).filter(
    (p) => p.src !== doc.src.build || p.dst !== doc.dst.build,
  );
  if (pairs.length === 0) return false;
  const pair = pick(cx.rng, pairs);
  doc.src.build = pair.src;
  doc.dst.build = pair.dst;
  if (!pair.machines.includes(doc.machine)) doc.machine = pick(cx.rng, pair.machines);
  return true;
}

/** The first part of one schedule's steps and the rest of another's, on the first's devices. */
function splice(doc: Doc, other: Doc, rng: Rng): boolean {
  if (other.steps.length === 0) return false;
  const cut = doc.steps.length > 0 ? pick(rng, doc.steps).at : 0;
  const tail = other.steps.filter((s) => s.at >= cut && fits(doc, s)).map(cloneStep);
  const kept = doc.steps.filter((s) => s.at < cut);
  // Splicing with itself (or an equal tail) changes nothing.
  if (JSON.stringify(doc.steps.slice(kept.length)) === JSON.stringify(tail)) return false;
  doc.steps = kept.concat(tail);
  doc.horizon = Math.max(doc.horizon, other.horizon);
  return true;
}

/** A step fits a schedule when its device (and port) exist there with the right kind. */
function fits(doc: Doc, s: StepDoc): boolean {
  if (typeof s.dev !== 'string') return true;
  const d = doc.devices[s.dev];
  if (!d) return false;
  const uartStep = s.do.startsWith('guest.uart') || s.do.startsWith('host.uart');
  if (d.kind === 'isa-serial') return uartStep || s.do.startsWith('guest.irq');
  if (uartStep) return false;
  return typeof s.port !== 'number' || (d.ports ?? []).some((p) => p.id === s.port);
}

/** Keep the horizon past the last step, so its effects can be judged. */
export function fixHorizon(doc: Doc): void {
  const last = doc.steps.length > 0 ? doc.steps[doc.steps.length - 1]!.at : 0;
  doc.horizon = Math.max(doc.horizon, last + 25_000_000);
}
