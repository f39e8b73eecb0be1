import { type ConfirmResult, confirm } from '../confirm/confirm.js';
import { RealEnvError } from '../confirm/guest.js';
import { killAllQemu } from '../confirm/qemu.js';
import type { BuildRegistry } from '../model/migration/builds.js';
import type { Schedule } from '../model/schedule/types.js';
import { UsageError } from './args.js';
import { Exit } from './exit-codes.js';
import { bool, type CommandSpec, parseFlags, text } from './flags.js';

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
  qemu: text('PATH', 'the QEMU binary to run', 'qemu-system-x86_64'),
  json: bool('print one JSON object: qemu, model, real, agree, untranslatable, ports, channels, evidence'),
  keep: text('DIR', "keep every QEMU's log and trace output here"),
  guestDir: text('DIR', 'where the guest image is built and cached (default: $XDG_CACHE_HOME/migfuzz/guest)'),
  builds: text('FILE', 'a build file adding builds of your own'),
};

export const CONFIRM: CommandSpec<typeof CONFIRM_FLAGS> = {
  name: 'confirm',
  args: 'FILE',
  summary:
    "check a schedule's verdict on real QEMU processes with a real Linux guest; the model's verdict and the real one side by side, with the evidence (FILE: a schedule, or a trace's schedule)",
  flags: CONFIRM_FLAGS,
  examples: [
    'npx migfuzz confirm corpus/regressions/qemu-9.2-paused-remigration.mpk',
    'npx migfuzz confirm my-schedule.json --json --keep run/',
  ],
  notes: [
    'exit: 0 the real run has no finding, 1 it has findings, 3 the file cannot be used, 6 no usable QEMU or guest (or the real run broke)',
    'the guest is built on first use from Debian packages fetched with apt-get download (docs/confirm.md)',
  ],
};

export async function cmdConfirm(argv: string[], deps: ConfirmDeps): Promise<number> {
  const a = parseFlags(argv, CONFIRM.flags);
  if (a.positionals.length !== 1)
    throw new UsageError('confirm needs exactly one FILE (a schedule or a trace)');
  const file = a.positionals[0]!;
  const { schedule, builds, eventBudget } = deps.load(file, a.flags.builds);
  const json = a.flags.json;
  const log = (line: string) => process.stderr.write(`confirm: ${line}\n`);
  // No QEMU may outlive the command, whatever ends it.
  const onSignal = () => {
    killAllQemu();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', killAllQemu);
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
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
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
