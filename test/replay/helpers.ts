import { execSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { builtinRegistry } from '../../src/model/migration/builds.js';
import type { Schedule } from '../../src/model/schedule/types.js';
import { parseSchedule, validateSchedule } from '../../src/model/schedule/validate.js';
import type { Trace } from '../../src/replay/format.js';
import { recordRun } from '../../src/replay/record.js';

/** Shared by the replay tests: the repository root, seed schedules, and recorded traces. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The compiled CLI (tests that run it as a real process). */
export const BIN = join(ROOT, 'dist', 'src', 'cli', 'bin.js');

/** `npm run build` for those tests; type errors elsewhere still emit JavaScript, so only a missing bin fails. */
export function buildCli(): void {
  try {
    execSync('npm run build', { cwd: ROOT, stdio: 'pipe' });
  } catch (e) {
    if (!existsSync(BIN)) throw e;
  }
}
export const builds = builtinRegistry();

export const seedPath = (name: string): string => `${ROOT}corpus/seeds/${name}.json`;
export const SEEDS = ['bug-a-virtio-serial', 'bug-b-serial', 'uart-echo', 'uart-slow-backend', 'vport-chat'];

export function seedSchedule(name: string): Schedule {
  return parseSchedule(readFileSync(seedPath(name), 'utf8'), builds);
}

const traces = new Map<string, Trace>();
/** The trace of a seed's run (recorded once per test file). */
export function seedTrace(name: string): Trace {
  let t = traces.get(name);
  if (!t) {
    t = recordRun(seedSchedule(name), builds);
    traces.set(name, t);
  }
  return t;
}

/** A schedule from a partial document on the usual one-virtio-serial machine. */
export function schedule(doc: Record<string, unknown>): Schedule {
  return validateSchedule(
    {
      format: 'migfuzz.schedule',
      version: 1,
      seed: 1,
      machine: 'pc-i440fx-9.2',
      src: { build: 'qemu-9.2', backends: { serial0: 'open' } },
      dst: { build: 'qemu-9.2', backends: { serial0: 'open' } },
      devices: { serial0: { kind: 'isa-serial', irq: 4 } },
      steps: [],
      horizon: 20_000_000,
      ...doc,
    },
    builds,
  );
}

/** A long UART schedule: thousands of events, no finding. */
export function longUartSchedule(lines = 40): Schedule {
  const steps: object[] = [
    { at: 10_000, do: 'guest.uart.config', dev: 'serial0', fifo: true, trigger: 8, ier: 5 },
  ];
  for (let i = 0; i < lines; i++) {
    steps.push({ at: 100_000 + i * 200_000, do: 'guest.uart.write', dev: 'serial0', data: `line ${i}\n` });
    steps.push({ at: 150_000 + i * 200_000, do: 'host.uart.send', dev: 'serial0', data: `ok ${i}\n` });
  }
  return schedule({ steps, horizon: 200_000 + lines * 200_000 + 10_000_000 });
}
