import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';

/**
 * A real QEMU for tests: started with a QMP socket, driven one command at a time, and
 * always killed by its pid (kill() in a finally/afterAll). Used only where
 * qemu-system-x86_64 is installed; realQemu() says whether to run or skip.
 */
export const QEMU = 'qemu-system-x86_64';

/** Run the real-QEMU tests? Skipped (with the reason printed) only when QEMU is absent and not required. */
export function realQemu(): { run: boolean; reason: string } {
  const have = spawnSync(QEMU, ['--version'], { stdio: 'ignore' }).status === 0;
  const required = process.env.MIGFUZZ_REQUIRE_REAL === '1' || process.env.CI === 'true';
  if (have || required) return { run: true, reason: '' };
  return {
    run: false,
    reason: `${QEMU} is not installed (set MIGFUZZ_REQUIRE_REAL=1 to make this a failure)`,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(file: string, ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 50) {
    if (existsSync(file)) return;
    await sleep(50);
  }
  throw new Error(`${file} did not appear within ${ms} ms`);
}

export class Qemu {
  readonly proc: ChildProcess;
  private qmp: Socket | null = null;
  private buffered = '';
  private waiting: ((line: Record<string, unknown>) => void) | null = null;
  stderr = '';

  constructor(args: string[]) {
    this.proc = spawn(QEMU, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc.stderr!.on('data', (b: Buffer) => {
      this.stderr += b.toString();
    });
    // A binary that cannot be started reports here (then it has no pid and no exit).
    this.proc.on('error', (e) => {
      this.stderr += String(e);
    });
  }

  async connect(socket: string): Promise<void> {
    if (this.proc.pid === undefined) throw new Error(`${QEMU} did not start: ${this.stderr}`);
    await waitFor(socket, 10_000);
    const s = createConnection(socket);
    this.qmp = s;
    s.setEncoding('utf8');
    s.on('data', (text: string) => {
      this.buffered += text;
      for (let nl = this.buffered.indexOf('\n'); nl >= 0; nl = this.buffered.indexOf('\n')) {
        const line = JSON.parse(this.buffered.slice(0, nl)) as Record<string, unknown>;
        this.buffered = this.buffered.slice(nl + 1);
        if ('event' in line) continue;
        const w = this.waiting;
        this.waiting = null;
        w?.(line);
      }
    });
    await this.reply(); // the greeting
    await this.cmd('qmp_capabilities');
  }

  private reply(): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`QMP: no answer (stderr: ${this.stderr})`)), 30_000);
      this.waiting = (line) => {
        clearTimeout(timer);
        resolve(line);
      };
    });
  }

  /** One QMP command; an error reply throws. */
  async cmd(execute: string, args: Record<string, unknown> = {}): Promise<unknown> {
    const r = this.reply();
    this.qmp!.write(`${JSON.stringify({ execute, arguments: args })}\n`);
    const line = await r;
    if ('error' in line) throw new Error(`QMP ${execute}: ${JSON.stringify(line.error)}`);
    return line.return;
  }

  hmp(command: string): Promise<string> {
    return this.cmd('human-monitor-command', { 'command-line': command }) as Promise<string>;
  }

  /** Kills the process by its pid and waits for it to be gone. */
  async kill(): Promise<void> {
    this.qmp?.destroy();
    if (this.proc.pid === undefined || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const gone = new Promise((r) => this.proc.once('exit', r));
    this.proc.kill('SIGKILL');
    await gone;
  }
}
