import { type OracleName, signatureOf } from '../oracles/types.js';
import type { Plan } from './plan.js';
import type { Channel, RealObservations } from './run.js';

/**
 * Judging a real run with the model's oracle names, where a real guest makes the condition
 * observable: the guest's view of each port against QEMU's own (`info qtree`), the bytes
 * sent on each side against those received on the other, each migration's outcome, and
 * interrupt counts that stop while bytes wait. Signatures are the model's where the same
 * condition is seen.
 */

export interface RealFinding {
  oracle: OracleName;
  device: string | null;
  message: string;
  signature: string;
  evidence: string[];
}

/** Oracles a real run can show; the others (model-assert, hang) exist only in the model. */
export const OBSERVABLE: readonly OracleName[] = [
  'stale-guest-view',
  'data-loss',
  'data-corruption',
  'migration-failed',
  'lost-interrupt',
  'stuck-irq-line',
];

export function judgeReal(obs: RealObservations, plan: Plan): RealFinding[] {
  const out: RealFinding[] = [];
  const add = (
    oracle: OracleName,
    device: string | null,
    key: string,
    message: string,
    evidence: string[],
  ): void => {
    const signature = signatureOf(oracle, device, key);
    if (!out.some((f) => f.signature === signature))
      out.push({ oracle, device, message, signature, evidence });
  };
  for (const m of obs.migrations) {
    if (m.status !== 'failed') continue;
    const text = m.error ?? 'failed';
    const dev = /device '([^']+)'/.exec(text)?.[1];
    const device =
      dev === undefined
        ? null
        : /serial/.test(dev) && !/virtio/.test(dev)
          ? (plan.serial?.name ?? dev)
          : (plan.vsers.find((v) => dev.startsWith(`0000:00:${v.slot.toString(16).padStart(2, '0')}.0/`))
              ?.name ?? dev);
    add('migration-failed', device, failureKey(text), `migration gen ${m.from} → ${m.to} failed: ${text}`, [
      `step ${m.step}: QEMU (gen ${m.to}): ${text}`,
      `destination status: ${m.destStatus ?? '?'}`,
    ]);
  }
  const savedUnrun = obs.migrations.some((m) => m.status === 'completed' && m.savedUnrun);
  for (const p of obs.ports) {
    if (!p.guestView || !p.qemu) continue;
    const evidence = [...p.evidence];
    if (p.guestView.host !== Number(p.qemu.host)) {
      if (savedUnrun) {
        const m = obs.migrations.find((x) => x.savedUnrun)!;
        evidence.push(
          `step ${m.step}: gen ${m.from} was saved paused, loaded from a migration and never run since`,
        );
      }
      add(
        'stale-guest-view',
        p.dev,
        savedUnrun ? 'host-connected-unsent-at-save' : 'host-connected',
        `the guest believes ${p.dev} port ${p.port}'s host is ${p.guestView.host ? 'connected' : 'disconnected'}, QEMU says ${p.qemu.host ? 'connected' : 'disconnected'}`,
        evidence,
      );
    }
    if (p.guestView.guest !== Number(p.qemu.guest)) {
      add(
        'stale-guest-view',
        p.dev,
        'guest-connected',
        `the guest has ${p.dev} port ${p.port} ${p.guestView.guest ? 'open' : 'closed'}, QEMU says guest ${p.qemu.guest ? 'on' : 'off'}`,
        evidence,
      );
    }
  }
  if (obs.activeStatus === 'running') {
    for (const [key, c] of obs.channels) judgeChannel(key, c, obs, plan, add);
  }
  return out;
}

function failureKey(text: string): string {
  if (/tsr not empty/.test(text)) return 'tsr-not-empty';
  if (/tsr empty/.test(text)) return 'tsr-empty';
  if (/[Uu]nknown subsection|subsection/.test(text)) return 'unknown-subsection';
  if (/version/.test(text)) return 'version';
  return 'load-error';
}

const concat = (parts: readonly Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));
const show = (b: Uint8Array): string =>
  b.length > 32 ? `${Buffer.from(b.subarray(0, 32)).toString('hex')}…` : Buffer.from(b).toString('hex');

function isPrefix(got: Uint8Array, sent: Uint8Array): boolean {
  return got.length <= sent.length && Buffer.from(sent.subarray(0, got.length)).equals(got);
}

type Add = (
  oracle: OracleName,
  device: string | null,
  key: string,
  message: string,
  evidence: string[],
) => void;

function judgeChannel(key: string, c: Channel, obs: RealObservations, plan: Plan, add: Add): void {
  const device = key.split('.')[0]!;
  const port = obs.ports.find((p) => `${p.dev}.port${p.port}` === key);
  // Host to guest: what the guest read must be what the host sent, in order.
  const sent = concat(c.hostSent.map((x) => x.data));
  const read = c.guestRead;
  const rxEvidence = [
    `host sent ${sent.length} bytes on ${key}: ${show(sent)}`,
    `guest read ${read.length}: ${show(read)}`,
  ];
  if (!isPrefix(read, sent)) {
    add(
      'data-corruption',
      device,
      'rx-altered',
      `${key}: the guest read bytes the host did not send in that order`,
      rxEvidence,
    );
  } else if (read.length < sent.length) {
    // Bytes still unread belong to the connection that took them; judged only on the VM that
    // runs at the end (a former VM's socket keeps what it never read, as the model says).
    // A port the guest does not hold open reads nothing: QEMU leaves the bytes in the socket.
    const missingFrom = firstGenAt(c.hostSent, read.length);
    if (missingFrom === obs.activeGen && (port === undefined || port.guestView?.guest === 1)) {
      const irq = irqOf(key, plan, obs);
      if (irq && irq.before === irq.after) {
        add(
          'lost-interrupt',
          device,
          'handler-not-run',
          `${key}: ${sent.length - read.length} bytes wait for the guest and ${irq.name} took no interrupt in the settle period`,
          [...rxEvidence, `/proc/interrupts ${irq.name}: ${irq.before} before and after the settle period`],
        );
      }
      add(
        'data-loss',
        device,
        'rx-lost',
        `${key}: ${sent.length - read.length} of ${sent.length} bytes sent by the host never reached the guest`,
        rxEvidence,
      );
    }
  }
  // Guest to host: what the host received (generation by generation) against what the guest wrote.
  const wrote = concat(c.guestWrote);
  const got = concat(c.hostReceived.map((x) => x.data));
  const txEvidence = [
    `guest wrote ${wrote.length} bytes on ${key}: ${show(wrote)}`,
    `host received ${got.length}: ${show(got)}`,
  ];
  if (!isPrefix(got, wrote)) {
    add(
      'data-corruption',
      device,
      'tx-altered',
      `${key}: the host received bytes the guest did not write in that order`,
      txEvidence,
    );
  } else if (got.length < wrote.length) {
    // The guest holds what it cannot send to a disconnected host (Linux blocks the writer).
    const hostGone = port ? port.qemu?.host === false : false;
    if (!hostGone)
      add(
        'data-loss',
        device,
        'tx-lost',
        `${key}: ${wrote.length - got.length} of ${wrote.length} bytes written by the guest never reached the host`,
        txEvidence,
      );
  }
}

function firstGenAt(runs: readonly { gen: number; data: Uint8Array }[], offset: number): number {
  let n = 0;
  for (const r of runs) {
    n += r.data.length;
    if (n > offset) return r.gen;
  }
  return -1;
}

function irqOf(
  key: string,
  plan: Plan,
  obs: RealObservations,
): { name: string; before: number; after: number } | undefined {
  const dev = key.split('.')[0]!;
  const sum = (rec: Record<string, number>, prefix: string): number =>
    Object.entries(rec).reduce((n, [k, v]) => (k === prefix || k.startsWith(`${prefix}-`) ? n + v : n), 0);
  const name =
    plan.serial?.name === dev
      ? `ttyS${plan.serial.index}`
      : `virtio${plan.vsers.findIndex((v) => v.name === dev)}`;
  if (!Object.keys(obs.irqs).some((k) => k === name || k.startsWith(`${name}-`))) return undefined;
  return { name, before: sum(obs.irqsBeforeSettle, name), after: sum(obs.irqs, name) };
}
