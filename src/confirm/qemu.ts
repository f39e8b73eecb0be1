import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { RealEnvError } from './guest.js';

/**
 * QEMU processes: every one started is tracked here and killed by its pid, so none outlives
 * the command (a SIGINT during a confirmation included: see `killAllQemu`).
 */

const LIVE = new Set<ChildProcess>();

/** Starts QEMU with its stdout and stderr appended to `logFile`, or piped to the caller ('pipe'). */
export function spawnQemu(binary: string, args: string[], logFile: string): ChildProcess {
  if (logFile === 'pipe') {
    const p = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: false });
    track(p);
    return p;
  }
  const fd = openSync(logFile, 'a');
  try {
    const p = spawn(binary, args, { stdio: ['ignore', fd, fd], detached: false });
    track(p);
    return p;
  } finally {
    closeSync(fd);
  }
}

function track(p: ChildProcess): void {
  LIVE.add(p);
  p.once('exit', () => LIVE.delete(p));
  p.once('error', () => LIVE.delete(p));
}

/** Kills every QEMU still running (SIGKILL: a migration in flight must not linger). */
export function killAllQemu(): void {
  for (const p of LIVE) {
    try {
      p.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  LIVE.clear();
}

export interface QemuInfo {
  binary: string;
  version: string;
  /** Machine types the binary offers. */
  machines: string[];
}

/** Asks the binary its version and machine types; exit 6's one line when it cannot run. */
export function probeQemu(binary: string): QemuInfo {
  const out = (args: string[]): string => {
    try {
      return execFileSync(binary, args, {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 20_000,
      });
    } catch (e) {
      const err = e as { code?: string; message: string };
      if (err.code === 'ENOENT') {
        throw new RealEnvError(
          `${binary} not found: install QEMU (apt-get install qemu-system-x86) or name one with --qemu PATH`,
        );
      }
      throw new RealEnvError(`${binary} ${args.join(' ')} failed: ${err.message.split('\n')[0]}`);
    }
  };
  const version = /version (\S+)/.exec(out(['--version']))?.[1] ?? 'unknown';
  const machines = out(['-machine', 'help'])
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/)[0]!)
    .filter((m) => m.length > 0);
  return { binary, version, machines };
}

/** The model's machine type when the binary offers it, else the binary's newest pc-i440fx-*. */
export function chooseMachine(info: QemuInfo, wanted: string): { machine: string; substituted: boolean } {
  if (info.machines.includes(wanted)) return { machine: wanted, substituted: false };
  const i440fx = info.machines
    .map((m) => /^pc-i440fx-(\d+)\.(\d+)$/.exec(m))
    .filter((m): m is RegExpExecArray => m !== null)
    .sort((a, b) => Number(b[1]) - Number(a[1]) || Number(b[2]) - Number(a[2]));
  if (!i440fx[0]) throw new RealEnvError(`${info.binary} offers no pc-i440fx machine type`);
  return { machine: i440fx[0][0], substituted: true };
}
