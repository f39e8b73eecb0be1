import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BuildRegistry } from '../model/migration/builds.js';
import type { Schedule } from '../model/schedule/types.js';
import type { Finding } from '../oracles/types.js';
import { judge } from '../oracles/verdict.js';
import { ensureGuest } from './guest.js';
import { judgeReal, OBSERVABLE, type RealFinding } from './judge.js';
import { type Plan, planConfirm } from './plan.js';
import { chooseMachine, killAllQemu, probeQemu } from './qemu.js';
import { type Channel, RealRun } from './run.js';

/**
 * `migfuzz confirm`: the model's verdict beside a real QEMU's on the same schedule. The JSON
 * shape is the command's contract: { qemu: { binary, version, machine }, model, real, agree,
 * untranslatable }.
 */

export interface ConfirmOptions {
  binary: string;
  guestDir?: string;
  /** Keep QEMU logs, agent output and sockets' logs here (else a temporary directory, removed). */
  keep?: string;
  eventBudget?: number;
  log: (line: string) => void;
}

export interface ConfirmResult {
  qemu: { binary: string; version: string; machine: string; machineSubstituted: boolean };
  model: Finding[];
  real: RealFinding[];
  /** Whether the real run took place (not when a side's build has no real binary). */
  ran: boolean;
  agree: boolean;
  untranslatable: { step: number; reason: string }[];
  /** What the real run saw at its end, finding or not: each port's two views, each channel's bytes. */
  ports: {
    dev: string;
    port: number;
    guest?: { host: number; guest: number };
    qemu?: { host: boolean; guest: boolean };
  }[];
  channels: Record<string, ChannelSummary>;
  evidence: string[];
}

/** Byte counts of one channel: host → guest (sent, read) and guest → host (written, received). */
export interface ChannelSummary {
  hostSent: number;
  guestRead: number;
  guestWrote: number;
  hostReceived: number;
  /** Every byte sent either way arrived, in order. */
  delivered: boolean;
}

function summarise(c: Channel): ChannelSummary {
  const cat = (xs: readonly Uint8Array[]) => Buffer.concat(xs);
  const sent = cat(c.hostSent.map((x) => x.data));
  const wrote = cat(c.guestWrote);
  const got = cat(c.hostReceived.map((x) => x.data));
  return {
    hostSent: sent.length,
    guestRead: c.guestRead.length,
    guestWrote: wrote.length,
    hostReceived: got.length,
    delivered: sent.equals(c.guestRead) && wrote.equals(got),
  };
}

export async function confirm(s: Schedule, builds: BuildRegistry, o: ConfirmOptions): Promise<ConfirmResult> {
  const model = judge(s, { builds, ...(o.eventBudget ? { eventBudget: o.eventBudget } : {}) }).findings;
  const plan: Plan = planConfirm(s, builds);
  const info = probeQemu(o.binary);
  const { machine, substituted } = chooseMachine(info, s.machine);
  const qemu = { binary: o.binary, version: info.version, machine, machineSubstituted: substituted };
  if (substituted) o.log(`${o.binary} has no machine type ${s.machine}: running ${machine}`);
  if (!plan.runnable) {
    return {
      qemu,
      model,
      real: [],
      ran: false,
      agree: false,
      untranslatable: plan.untranslatable,
      ports: [],
      channels: {},
      evidence: [],
    };
  }
  const guest = ensureGuest(o.guestDir);
  // Unix socket paths are short (108 bytes): sockets live in a short temporary directory.
  const sockDir = mkdtempSync(join(tmpdir(), 'mfz-'));
  const logDir = o.keep ?? mkdtempSync(join(tmpdir(), 'migfuzz-confirm-'));
  mkdirSync(logDir, { recursive: true });
  const run = new RealRun(s, plan, {
    binary: o.binary,
    machine,
    guest,
    sockDir,
    logDir,
    keepStreams: o.keep !== undefined,
    log: o.log,
  });
  try {
    const obs = await run.execute();
    const real = judgeReal(obs, plan);
    const untranslatable = [...plan.untranslatable, ...obs.untranslatable].sort((a, b) => a.step - b.step);
    const ports = obs.ports.map((p) => ({
      dev: p.dev,
      port: p.port,
      ...(p.guestView ? { guest: { host: p.guestView.host, guest: p.guestView.guest } } : {}),
      ...(p.qemu ? { qemu: { host: p.qemu.host, guest: p.qemu.guest } } : {}),
    }));
    const channels = Object.fromEntries([...obs.channels].map(([k, c]) => [k, summarise(c)]));
    return {
      qemu,
      model,
      real,
      ports,
      channels,
      ran: true,
      agree: agrees(model, real),
      untranslatable,
      evidence: obs.evidence,
    };
  } finally {
    run.close();
    killAllQemu();
    rmSync(sockDir, { recursive: true, force: true });
    if (!o.keep) rmSync(logDir, { recursive: true, force: true });
  }
}

/** The two verdicts agree when they name the same signatures among what a real run can show. */
export function agrees(model: readonly Finding[], real: readonly RealFinding[]): boolean {
  const set = (xs: readonly { oracle: string; signature: string }[]) =>
    [
      ...new Set(
        xs.filter((f) => (OBSERVABLE as readonly string[]).includes(f.oracle)).map((f) => f.signature),
      ),
    ]
      .sort()
      .join('\n');
  return set(model) === set(real);
}
