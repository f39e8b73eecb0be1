import { connect, type Socket } from 'node:net';

/**
 * A QMP client on a unix socket: one command at a time, replies matched in order, events
 * kept for whoever asks (QEMU's docs/interop/qmp-spec.rst).
 */
export class Qmp {
  private buf = '';
  private waiting: { resolve: (v: unknown) => void; reject: (e: Error) => void }[] = [];
  readonly events: { event: string; data?: unknown }[] = [];
  private closed: Error | undefined;

  private constructor(
    private readonly sock: Socket,
    private readonly name: string,
  ) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => this.onData(d));
    const fail = (e?: Error) => {
      this.closed = new Error(`${name}: QMP closed${e ? ` (${e.message})` : ''}`);
      for (const w of this.waiting.splice(0)) w.reject(this.closed);
    };
    sock.on('error', fail);
    sock.on('close', () => fail());
  }

  /** Connects (retrying while QEMU creates the socket) and negotiates capabilities. */
  static async open(
    path: string,
    name: string,
    alive: () => string | undefined,
    timeoutMs = 20_000,
  ): Promise<Qmp> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const dead = alive();
      if (dead) throw new Error(`${name}: ${dead}`);
      try {
        const sock = await new Promise<Socket>((resolve, reject) => {
          const s = connect(path);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
        const q = new Qmp(sock, name);
        await q.next(); // the greeting
        await q.cmd('qmp_capabilities');
        return q;
      } catch (e) {
        if (Date.now() > end) throw new Error(`${name}: no QMP (${(e as Error).message})`);
        await sleep(50);
      }
    }
  }

  private onData(d: string): void {
    this.buf += d;
    for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      const msg = JSON.parse(line) as { event?: string; data?: unknown };
      if (msg.event !== undefined) {
        this.events.push({ event: msg.event, data: msg.data });
        continue;
      }
      this.waiting.shift()?.resolve(msg);
    }
  }

  private next(): Promise<unknown> {
    if (this.closed) return Promise.reject(this.closed);
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /** Runs a command; a QMP error is thrown with QEMU's own text. */
  async cmd<T = unknown>(execute: string, args?: Record<string, unknown>): Promise<T> {
    const reply = this.next();
    this.sock.write(`${JSON.stringify(args ? { execute, arguments: args } : { execute })}\n`);
    const r = (await reply) as { return?: T; error?: { class: string; desc: string } };
    if (r.error) throw new QmpError(`${this.name}: ${execute}: ${r.error.desc}`);
    return r.return as T;
  }

  hmp(commandLine: string): Promise<string> {
    return this.cmd<string>('human-monitor-command', { 'command-line': commandLine });
  }

  close(): void {
    this.sock.destroy();
  }
}

export class QmpError extends Error {
  override readonly name = 'QmpError';
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
