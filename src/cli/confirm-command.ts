import { resolve } from 'node:path';
import { type ConfirmResult, confirm } from '../confirm/confirm.js';
import { ensureGuest, RealEnvError } from '../confirm/guest.js';
import { chooseMachine, killAllQemu, probeQemu } from '../confirm/qemu.js';
import {
  proveStream,
  type StreamDevices,
  StreamMisfitError,
  type StreamProof,
  saveBase,
  scheduleDevices,
  streamDevices,
} from '../confirm/stream-proof.js';
import type { BuildRegistry } from '../model/migration/builds.js';
import type { Schedule } from '../model/schedule/types.js';
import { oneLine } from '../model/util/text.js';
import { UsageError } from './args.js';
import { Exit } from './exit-codes.js';
import { bool, type CommandSpec, count, parseFlags, text } from './flags.js';
import { loadStreamFile, StreamInputError } from './stream-command.js';

/**
 * `migfuzz confirm FILE`: the model's verdict and a real QEMU's on the same schedule
 * (docs/confirm.md). Exit 0 when the real run has no finding, 1 when it has, 3 invalid
 * input, 6 no usable QEMU or guest (or the real run broke).
 */

export interface ConfirmDeps {
  /** The schedule and builds of FILE (a schedule, or a trace's own), with a build file or none. */
  load: (
    file: string,
    buildsFile: string | undefined,
  ) => { schedule: Schedule; builds: BuildRegistry; eventBudget?: number };
}

const CONFIRM_FLAGS = {
  stream: text(
    'FILE',
    "instead of a schedule: load this stream (e.g. stream craft's) into a real destination, run the guest, report its fate",
  ),
  watch: count('S', 'with --stream: seconds the destination runs after cont', {
    min: 1,
    max: 600,
    value: 8,
    shown: '8',
  }),
  qemu: text('PATH', 'the QEMU binary to run', 'qemu-system-x86_64'),
  json: bool('print one JSON object: qemu, model, real, agree, untranslatable, ports, channels, evidence'),
  keep: text('DIR', "keep every QEMU's log and trace output here"),
  guestDir: text('DIR', 'where the guest image is built and cached (default: $XDG_CACHE_HOME/migfuzz/guest)'),
  builds: text('FILE', 'a build file adding builds of your own'),
};

export const CONFIRM: CommandSpec<typeof CONFIRM_FLAGS> = {
  name: 'confirm',
  args: '[FILE]',
  summary:
    "check a schedule's verdict on real QEMU processes with a real Linux guest; the model's verdict and the real one side by side, with the evidence (FILE: a schedule, or a trace's schedule); with --stream, a stream's fate on a real destination",
  flags: CONFIRM_FLAGS,
  examples: [
    'npx migfuzz confirm corpus/regressions/qemu-9.2-paused-remigration.mpk',
    'npx migfuzz confirm my-schedule.json --json --keep run/',
    'npx migfuzz confirm --stream hostile.bin --json',
  ],
  notes: [
    'exit: 0 the real run has no finding, 1 it has findings, 3 the file cannot be used, 6 no usable QEMU or guest (or the real run broke)',
    'with --stream: 0 the destination runs as it should, 1 it refused the stream, crashed, exited or runs with corrupted state',
    'the guest is built on first use from Debian packages fetched with apt-get download (docs/confirm.md)',
  ],
};

export async function cmdConfirm(argv: string[], deps: ConfirmDeps): Promise<number> {
  const a = parseFlags(argv, CONFIRM.flags);
  if (a.flags.stream !== undefined) {
    if (a.positionals.length !== 0) throw new UsageError('confirm --stream FILE takes no other FILE');
    return confirmStream(a.flags.stream, a.flags);
  }
  if (a.positionals.length !== 1)
    throw new UsageError('confirm needs exactly one FILE (a schedule or a trace)');
  const file = a.positionals[0]!;
  const { schedule, builds, eventBudget } = deps.load(file, a.flags.builds);
  const json = a.flags.json;
  const log = (line: string) => process.stderr.write(`confirm: ${line}\n`);
  const unguard = guardQemu();
  let r: ConfirmResult;
  try {
    const { keep, guestDir } = a.flags;
    r = await confirm(schedule, builds, {
      binary: a.flags.qemu,
      ...(guestDir ? { guestDir } : {}),
      ...(keep ? { keep } : {}),
      ...(eventBudget ? { eventBudget } : {}),
      log: json ? () => {} : log,
    });
  } catch (e) {
    killAllQemu();
    const why = e instanceof RealEnvError ? e.message : `the real run broke: ${(e as Error).message}`;
    console.error(`migfuzz: confirm: ${why.split('\n')[0]}`);
    return Exit.NO_REAL_QEMU;
  } finally {
    unguard();
  }
  if (json) {
    console.log(JSON.stringify(r));
  } else {
    printConfirm(file, r);
  }
  return r.real.length > 0 ? Exit.FOUND : Exit.OK;
}

function printConfirm(file: string, r: ConfirmResult): void {
  const q = r.qemu;
  console.log(
    `${file}: model vs real QEMU ${q.version} (${q.binary}, ${q.machine}${q.machineSubstituted ? ', substituted' : ''})`,
  );
  const sigs = (xs: readonly { signature: string }[]) =>
    xs.length === 0 ? ['no finding'] : xs.map((f) => f.signature);
  console.log('  model:');
  for (const s of sigs(r.model)) console.log(`    ${s}`);
  console.log(`  real QEMU${r.ran ? '' : ' (not run: no step can run on a real QEMU)'}:`);
  if (r.ran && r.real.length === 0) console.log('    no finding');
  for (const f of r.real) {
    console.log(`    ${f.signature}: ${f.message}`);
    for (const e of f.evidence) console.log(`      ${e}`);
  }
  for (const p of r.ports) {
    const g = p.guest ? `guest sees host=${p.guest.host} guest=${p.guest.guest}` : 'guest view unread';
    const q = p.qemu ? `QEMU host ${p.qemu.host ? 'on' : 'off'} guest ${p.qemu.guest ? 'on' : 'off'}` : '';
    console.log(`  ${p.dev} port ${p.port} at the end: ${g}; ${q}`);
  }
  for (const [k, c] of Object.entries(r.channels)) {
    console.log(
      `  ${k}: host→guest ${c.guestRead}/${c.hostSent} bytes, guest→host ${c.hostReceived}/${c.guestWrote} bytes${c.delivered ? ', all delivered' : ''}`,
    );
  }
  for (const e of r.evidence) console.log(`  seen: ${e}`);
  for (const u of r.untranslatable) console.log(`  untranslatable: steps[${u.step}]: ${u.reason}`);
  console.log(`  ${r.agree ? 'agree' : 'disagree'}`);
}

// ---------------------------------------------------------------------------------------
// Streams on a real QEMU: confirm --stream, stream base

/** No QEMU may outlive the command, whatever ends it; returns the undo. */
function guardQemu(): () => void {
  const onSignal = () => {
    killAllQemu();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', killAllQemu);
  return () => {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  };
}

function realEnvFailure(e: unknown, what: string): number {
  killAllQemu();
  const why = e instanceof RealEnvError ? e.message : `${what} broke: ${(e as Error).message}`;
  console.error(`migfuzz: ${oneLine(why)}`);
  return Exit.NO_REAL_QEMU;
}

function misfit(file: string, e: unknown): never {
  if (e instanceof StreamMisfitError) throw new StreamInputError(`${file}: ${e.message}`);
  throw e;
}

async function confirmStream(
  file: string,
  f: { qemu: string; json: boolean; watch: number; guestDir: string | undefined },
): Promise<number> {
  let dev: StreamDevices;
  try {
    dev = streamDevices(loadStreamFile(file));
  } catch (e) {
    return misfit(file, e);
  }
  const log = f.json ? () => {} : (line: string) => process.stderr.write(`confirm: ${line}\n`);
  const undo = guardQemu();
  let r: StreamProof;
  try {
    const info = probeQemu(f.qemu);
    if (!info.machines.includes(dev.machine))
      throw new RealEnvError(`${f.qemu} has no machine type ${dev.machine}, the stream's`);
    r = await proveStream(resolve(file), dev, {
      binary: f.qemu,
      version: info.version,
      guest: dev.kernel ? ensureGuest(f.guestDir) : null,
      watchMs: f.watch * 1000,
      write: new TextEncoder().encode('migfuzz stream proof\n'),
      log,
    });
  } catch (e) {
    return realEnvFailure(e, 'the destination run');
  } finally {
    undo();
  }
  if (f.json) console.log(JSON.stringify({ stream: file, ...r }));
  else printProof(file, r);
  return r.fate === 'running' ? Exit.OK : Exit.FOUND;
}

const FATE_TEXT: Record<StreamProof['fate'], string> = {
  refused: 'refused the stream',
  crashed: 'crashed',
  exited: 'exited',
  corrupted: 'runs with corrupted state',
  running: 'runs as it should',
};

function printProof(file: string, r: StreamProof): void {
  const how = r.signal
    ? ` (${r.signal})`
    : r.exitStatus !== undefined
      ? ` (exit status ${r.exitStatus})`
      : '';
  console.log(
    `${file}: real QEMU ${r.qemu.version} (${r.qemu.binary}, ${r.machine}): the destination ${FATE_TEXT[r.fate]}${how}`,
  );
  console.log(`  load: ${r.loaded ? 'accepted' : 'refused'}`);
  for (const l of r.error) console.log(`  QEMU: ${l}`);
  for (const e of r.evidence) console.log(`  seen: ${e}`);
}

const STREAM_BASE_FLAGS = {
  out: text('OUT.bin', 'where to write the stream'),
  json: bool('print one JSON object: out, qemu, machine, devices'),
  qemu: text('PATH', 'the QEMU binary to run', 'qemu-system-x86_64'),
  guestDir: text('DIR', 'where the guest image is built and cached (default: $XDG_CACHE_HOME/migfuzz/guest)'),
  builds: text('FILE', 'a build file adding builds of your own'),
};

export const STREAM_BASE: CommandSpec<typeof STREAM_BASE_FLAGS> = {
  name: 'stream base',
  args: 'FILE',
  summary:
    "save a real QEMU stream of the test guest with FILE's devices (its UART on COM1, the guest agent on COM2, its virtio-serials), for stream craft to rewrite (FILE: a schedule, or a trace's schedule)",
  flags: STREAM_BASE_FLAGS,
  examples: ['npx migfuzz stream base finding.mpk --out base.bin'],
  notes: ['exit: 0 written, 2 usage, 3 the file cannot be used, 6 no usable QEMU or guest'],
};

export async function cmdStreamBase(argv: string[], deps: ConfirmDeps): Promise<number> {
  const a = parseFlags(argv, STREAM_BASE.flags);
  if (a.positionals.length !== 1)
    throw new UsageError('stream base needs exactly one FILE (a schedule or a trace)');
  const out = a.flags.out;
  if (out === undefined) throw new UsageError('stream base needs --out OUT.bin');
  const file = a.positionals[0]!;
  const { schedule, builds } = deps.load(file, a.flags.builds);
  const log = (line: string) => process.stderr.write(`stream base: ${line}\n`);
  const undo = guardQemu();
  try {
    const info = probeQemu(a.flags.qemu);
    const { machine } = chooseMachine(info, schedule.machine);
    let dev: StreamDevices;
    try {
      dev = scheduleDevices(schedule, builds, machine);
    } catch (e) {
      return misfit(file, e);
    }
    await saveBase(dev, out, { binary: a.flags.qemu, guest: ensureGuest(a.flags.guestDir), log });
    console.log(
      `${out}: a real QEMU ${info.version} stream (${machine}) of the test guest with ${file}'s devices`,
    );
    return Exit.OK;
  } catch (e) {
    if (e instanceof StreamInputError) throw e;
    return realEnvFailure(e, 'saving the base stream');
  } finally {
    undo();
  }
}
