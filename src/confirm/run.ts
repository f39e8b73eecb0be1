import type { ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Schedule, SideSpec } from '../model/schedule/types.js';
import type { GuestImage } from './guest.js';
import type { Plan, PlannedStep, RealVser } from './plan.js';
import { portChardev } from './plan.js';
import { spawnQemu } from './qemu.js';
import { Qmp, sleep } from './qmp.js';

/**
 * Carries a plan out on real QEMU processes. Real QEMU is not deterministic, so steps run in
 * schedule order, each after the previous one is acknowledged (the guest agent answers its
 * commands; QMP answers migrate, stop and cont), and virtual-time gaps become short real
 * waits. Every QEMU is a "generation": the first boots the guest, each migrate starts the next
 * with `-incoming` (and `-S` when the step's autostart is false), alternating the schedule's
 * sides as the model does.
 */

export interface RunOptions {
  binary: string;
  machine: string;
  guest: GuestImage;
  /** Sockets (kept short: unix socket paths are limited to 108 bytes). */
  sockDir: string;
  /** Serial logs, QEMU stderr and traces. */
  logDir: string;
  /** Also keep each migration stream (`genN.stream`): migrations then pass through migfuzz. */
  keepStreams?: boolean;
  log: (line: string) => void;
}

/** Bytes on one channel (`serial0`, `vser0.port1`), in the order they were seen. */
export interface Channel {
  /** Bytes the host sent, each run tagged with the generation that took it. */
  hostSent: { gen: number; data: Uint8Array }[];
  /** Bytes the host received, in generation order. */
  hostReceived: { gen: number; data: Uint8Array }[];
  /** Bytes the guest wrote (acknowledged agent commands). */
  guestWrote: Uint8Array[];
  /** Bytes the guest read (from the agent's final report). */
  guestRead: Uint8Array;
}

export interface MigrationRecord {
  step: number;
  from: number;
  to: number;
  status: 'completed' | 'failed';
  /** The source had been loaded by a migration and had not run since (a paused save). */
  savedUnrun: boolean;
  error?: string;
  destStatus?: string;
}

export interface PortFinal {
  dev: string;
  port: number;
  guestView?: { host: number; guest: number; discarded: number };
  /** QEMU's own view (`info qtree`). */
  qemu?: { guest: boolean; host: boolean };
  evidence: string[];
}

export interface RealObservations {
  gens: { gen: number; side: 'src' | 'dst'; status: string; pid: number }[];
  migrations: MigrationRecord[];
  channels: Map<string, Channel>;
  ports: PortFinal[];
  irqs: Record<string, number>;
  /** Interrupt counts at the start of the settle period, to tell a device that went quiet. */
  irqsBeforeSettle: Record<string, number>;
  activeGen: number;
  activeStatus: string;
  untranslatable: { step: number; reason: string }[];
  evidence: string[];
}

const ACK_TIMEOUT_MS = 30_000;
const MIGRATE_TIMEOUT_MS = 120_000;
/** Settle after the last step before the guest's final report (timers, interrupts, bytes in flight). */
const SETTLE_MS = 2500;
/** Longest agent command line (the guest reads it byte by byte from a 16550). */
const CHUNK = 384;

/** A virtual gap of the schedule as a real wait: at least a main-loop's worth, at most 3 s. */
export function realWaitMs(gapNs: number): number {
  return Math.min(3000, 150 + Math.round((gapNs / 1e6) * 20));
}

class HostConn {
  sock: Socket | undefined;
  readonly received: Buffer[] = [];
  private state: 'open' | 'hung-up' | 'slow' = 'open';
  private slowTimer: NodeJS.Timeout | undefined;

  attach(sock: Socket, onData: (d: Buffer) => void): void {
    this.sock = sock;
    sock.on('data', (d: Buffer) => {
      onData(d);
      if (this.state === 'slow') sock.pause();
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      if (this.sock === sock) this.sock = undefined;
    });
    this.setState(this.state);
  }

  setState(state: 'open' | 'hung-up' | 'slow'): void {
    this.state = state;
    clearInterval(this.slowTimer);
    this.slowTimer = undefined;
    if (!this.sock) return;
    if (state === 'hung-up') this.sock.pause();
    else this.sock.resume();
    if (state === 'slow') {
      const s = this.sock;
      this.slowTimer = setInterval(() => s.resume(), 20);
    }
  }

  close(): void {
    clearInterval(this.slowTimer);
    this.sock?.destroy();
    this.sock = undefined;
  }
}

interface Gen {
  gen: number;
  side: 'src' | 'dst';
  proc: ChildProcess;
  qmp: Qmp;
  agent: Socket;
  agentBuf: string;
  agentLines: string[];
  /** Loaded by a migration and not run since. */
  unrun: boolean;
  conns: Map<string, HostConn>;
  listeners: Server[];
  serialLog: string;
}

export class RealRun {
  private gens: Gen[] = [];
  private active!: Gen;
  private nextId = 1;
  private readonly channels = new Map<string, Channel>();
  private readonly migrations: MigrationRecord[] = [];
  private readonly untranslatable: { step: number; reason: string }[] = [];
  private readonly evidence: string[] = [];
  /** Guest commands waiting for the guest's VM to run. */
  private deferred: PlannedStep[] = [];

  constructor(
    private readonly s: Schedule,
    private readonly plan: Plan,
    private readonly o: RunOptions,
  ) {
    if (plan.serial) this.channel(plan.serial.name);
    for (const v of plan.vsers) for (const p of v.ports) this.channel(`${v.name}.port${p.id}`);
  }

  private channel(key: string): Channel {
    let c = this.channels.get(key);
    if (!c) {
      c = { hostSent: [], hostReceived: [], guestWrote: [], guestRead: new Uint8Array(0) };
      this.channels.set(key, c);
    }
    return c;
  }

  async execute(): Promise<RealObservations> {
    this.active = await this.start(0, 'src', undefined, false);
    const ready = await this.waitLine(
      this.active,
      (l) => l.startsWith('MFZ ready'),
      60_000,
      'the guest to boot',
    );
    this.evidence.push(`gen 0 guest: ${ready}`);
    await this.waitPorts();
    let prevAt = 0;
    for (const ps of this.plan.steps) {
      await sleep(realWaitMs(ps.at - prevAt));
      prevAt = ps.at;
      await this.step(ps);
    }
    await sleep(Math.max(SETTLE_MS, realWaitMs(this.plan.horizon - prevAt)));
    return this.finish();
  }

  // ---------------------------------------------------------------- generations

  private async start(
    gen: number,
    side: 'src' | 'dst',
    incoming: string | undefined,
    paused: boolean,
  ): Promise<Gen> {
    const spec: SideSpec = this.s[side];
    const sock = (name: string) => join(this.o.sockDir, `g${gen}-${name}`);
    const listeners: Server[] = [];
    const conns = new Map<string, HostConn>();
    const args = [
      ...['-machine', this.o.machine, '-accel', 'tcg', '-m', '128', '-smp', '1'],
      ...['-nodefaults', '-display', 'none', '-vga', 'none', '-no-reboot'],
      ...['-kernel', this.o.guest.kernel, '-initrd', this.o.guest.initrd],
      '-append',
      `console=ttyS${this.plan.agentIndex} loglevel=1 panic=-1 mfz.agent=ttyS${this.plan.agentIndex} mfz.uart=${
        this.plan.serial ? `ttyS${this.plan.serial.index}` : 'none'
      }`,
      ...['-qmp', `unix:${sock('qmp')},server=on,wait=off`],
      ...['-chardev', `socket,id=agent,path=${sock('agent')},server=on,wait=off`],
      ...['-device', `isa-serial,index=${this.plan.agentIndex},chardev=agent`],
      ...['-trace', 'virtio_serial_*', '-trace', 'virtio_console_*', '-trace', 'serial_*'],
    ];
    if (this.plan.serial) {
      const name = this.plan.serial.name;
      args.push('-chardev', `socket,id=${name},path=${sock(name)},server=on,wait=off`);
      args.push('-device', `isa-serial,index=${this.plan.serial.index},chardev=${name}`);
    }
    const clientPorts: { key: string; path: string }[] = [];
    for (const v of this.plan.vsers) {
      args.push(
        '-device',
        `virtio-serial-pci,id=${v.name},addr=0x${v.slot.toString(16)}${v.msix ? '' : ',vectors=0'}`,
      );
      for (const p of v.ports) {
        const key = `${v.name}.port${p.id}`;
        const path = sock(`${v.name}-p${p.id}`);
        if (portChardev(spec, v.name, p.id) === 'client') {
          listeners.push(await this.listen(path, key, gen, conns));
          clientPorts.push({ key, path });
          args.push('-chardev', `socket,id=${key},path=${path},server=off`);
        } else {
          args.push('-chardev', `socket,id=${key},path=${path},server=on,wait=off`);
        }
        const name = p.name ? `,name=${p.name}` : '';
        args.push(
          '-device',
          `${p.console ? 'virtconsole' : 'virtserialport'},bus=${v.name}.0,nr=${p.id},chardev=${key}${name}`,
        );
      }
    }
    if (paused) args.push('-S');
    if (incoming) args.push('-incoming', `unix:${incoming}`);
    const serialLog = join(this.o.logDir, `gen${gen}.agent.log`);
    const proc = spawnQemu(this.o.binary, args, join(this.o.logDir, `gen${gen}.stderr`));
    this.o.log(
      `gen ${gen} (${side}, build ${spec.build}): pid ${proc.pid}${incoming ? ' -incoming' : ''}${paused ? ' -S' : ''}`,
    );
    const dead = () =>
      proc.exitCode !== null ? `QEMU exited with ${proc.exitCode}: ${this.stderrTail(gen)}` : undefined;
    const qmp = await Qmp.open(sock('qmp'), `gen ${gen}`, dead);
    const agent = await connectUnix(sock('agent'));
    const g: Gen = {
      gen,
      side,
      proc,
      qmp,
      agent,
      agentBuf: '',
      agentLines: [],
      unrun: incoming !== undefined,
      conns,
      listeners,
      serialLog,
    };
    agent.setEncoding('latin1');
    const serialOut = createWriteStream(serialLog, { flags: 'a' });
    agent.on('close', () => serialOut.end());
    agent.on('data', (d: string) => {
      serialOut.write(d, 'latin1');
      g.agentBuf += d;
      for (let nl = g.agentBuf.indexOf('\n'); nl >= 0; nl = g.agentBuf.indexOf('\n')) {
        const line = g.agentBuf.slice(0, nl).replace(/\r$/, '');
        g.agentBuf = g.agentBuf.slice(nl + 1);
        const at = line.indexOf('MFZ ');
        if (at >= 0) g.agentLines.push(line.slice(at));
      }
    });
    agent.on('error', () => {});
    // The side's initial backends: a UART client unless `closed`; client-mode ports connect themselves.
    if (this.plan.serial) {
      const st = (spec.backends[this.plan.serial.name] as string | undefined) ?? 'open';
      const c = new HostConn();
      conns.set(this.plan.serial.name, c);
      if (st !== 'closed') await this.attach(c, sock(this.plan.serial.name), this.plan.serial.name, gen, st);
    }
    this.gens.push(g);
    return g;
  }

  private async attach(c: HostConn, path: string, key: string, gen: number, state: string): Promise<void> {
    const sock = await connectUnix(path);
    c.attach(sock, (d) => this.channel(key).hostReceived.push({ gen, data: new Uint8Array(d) }));
    c.setState(state === 'slow' ? 'slow' : state === 'hung-up' ? 'hung-up' : 'open');
  }

  /** A listener for a client-mode chardev: QEMU connects to it at realize. */
  private listen(path: string, key: string, gen: number, conns: Map<string, HostConn>): Promise<Server> {
    if (existsSync(path)) unlinkSync(path);
    const c = new HostConn();
    conns.set(key, c);
    const srv = createServer((sock) => {
      if (c.sock) {
        sock.destroy();
        return;
      }
      c.attach(sock, (d) => this.channel(key).hostReceived.push({ gen, data: new Uint8Array(d) }));
    });
    return new Promise((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(path, () => resolve(srv));
    });
  }

  private stderrTail(gen: number): string {
    try {
      const lines = readFileSync(join(this.o.logDir, `gen${gen}.stderr`), 'utf8')
        .split('\n')
        .filter(
          (l) => l.trim() && !/^\d+@\d+\.\d+:/.test(l) && !/^[a-z_]+ [a-z]/.test(l.split(':')[0] ?? ''),
        );
      return lines.slice(-3).join(' | ');
    } catch {
      return '';
    }
  }

  private async status(g: Gen): Promise<string> {
    return (await g.qmp.cmd<{ status: string }>('query-status')).status;
  }

  // ---------------------------------------------------------------- steps

  private async step(ps: PlannedStep): Promise<void> {
    const a = ps.action;
    const g = this.active;
    switch (a.kind) {
      case 'guest':
        if ((await this.status(g)) !== 'running') {
          this.deferred.push(ps);
          return;
        }
        await this.guestCommand(ps);
        return;
      case 'uart-send':
        this.hostSend(g, a.dev, a.data);
        return;
      case 'uart-backend': {
        const c = g.conns.get(a.dev)!;
        if (a.state === 'closed') c.close();
        else if (!c.sock)
          await this.attach(c, join(this.o.sockDir, `g${g.gen}-${a.dev}`), a.dev, g.gen, a.state);
        else c.setState(a.state as 'open' | 'hung-up' | 'slow');
        return;
      }
      case 'vport-connect': {
        const key = `${a.dev}.port${a.port}`;
        if (portChardev(this.s[g.side], a.dev, a.port) === 'client') {
          if (!g.conns.get(key)?.sock)
            this.untranslatable.push({
              step: ps.step,
              reason: `${key} on gen ${g.gen} is a client-mode chardev, which QEMU does not reconnect`,
            });
          return;
        }
        let c = g.conns.get(key);
        if (c?.sock) return;
        c = c ?? new HostConn();
        g.conns.set(key, c);
        await this.attach(c, join(this.o.sockDir, `g${g.gen}-${a.dev}-p${a.port}`), key, g.gen, 'open');
        return;
      }
      case 'vport-disconnect':
        g.conns.get(`${a.dev}.port${a.port}`)?.close();
        return;
      case 'vport-send':
        this.hostSend(g, `${a.dev}.port${a.port}`, a.data);
        return;
      case 'stop':
        await g.qmp.cmd('stop');
        return;
      case 'cont':
        if ((await this.status(g)) === 'running') return;
        await g.qmp.cmd('cont');
        g.unrun = false;
        await this.runDeferred();
        return;
      case 'migrate':
        await this.migrate(ps, a.downtimeNs, a.autostart);
        return;
    }
  }

  private hostSend(g: Gen, key: string, data: Uint8Array): void {
    const c = g.conns.get(key);
    if (!c?.sock) {
      this.evidence.push(
        `host send of ${data.length} bytes on ${key} dropped: no connection on gen ${g.gen}`,
      );
      return;
    }
    c.sock.write(data);
    this.channel(key).hostSent.push({ gen: g.gen, data });
  }

  private async runDeferred(): Promise<void> {
    const todo = this.deferred;
    this.deferred = [];
    for (const ps of todo) await this.guestCommand(ps);
  }

  private async guestCommand(ps: PlannedStep): Promise<void> {
    if (ps.action.kind !== 'guest') return;
    const [op, ...rest] = ps.action.args;
    // Long data goes in several commands: the agent reads its line byte by byte.
    const data = op === 'uart-write' ? rest[0]! : op === 'vport-write' ? rest[2]! : undefined;
    const head = op === 'vport-write' ? rest.slice(0, 2) : [];
    if (data !== undefined) {
      for (let i = 0; i < data.length; i += CHUNK * 2)
        await this.agentCmd([op!, ...head, data.slice(i, i + CHUNK * 2)], ps.step);
      const key = op === 'uart-write' ? this.plan.serial!.name : this.portKey(rest[0]!, rest[1]!);
      this.channel(key).guestWrote.push(Buffer.from(data, 'hex'));
    } else {
      await this.agentCmd(ps.action.args, ps.step);
    }
  }

  private portKey(slot: string, port: string): string {
    const v = this.plan.vsers.find((x) => x.slot === Number.parseInt(slot, 16)) as RealVser;
    return `${v.name}.port${port}`;
  }

  private async agentCmd(args: string[], step: number): Promise<string[]> {
    const g = this.active;
    const id = this.nextId++;
    const from = g.agentLines.length;
    g.agent.write(`C ${id} ${args.join(' ')}\n`);
    const done = await this.waitLine(
      g,
      (l) => l.startsWith(`MFZ ${id} ok`) || l.startsWith(`MFZ ${id} err`),
      ACK_TIMEOUT_MS,
      `the guest agent to answer ${args[0]}`,
      from,
    );
    if (done.startsWith(`MFZ ${id} err`)) this.evidence.push(`step ${step}: guest agent: ${done}`);
    return g.agentLines.slice(from).filter((l) => l.startsWith(`MFZ ${id} `));
  }

  private async waitLine(
    g: Gen,
    pred: (l: string) => boolean,
    timeoutMs: number,
    what: string,
    from = 0,
  ): Promise<string> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const hit = g.agentLines.slice(from).find(pred);
      if (hit !== undefined) return hit;
      if (g.proc.exitCode !== null)
        throw new Error(
          `gen ${g.gen}: QEMU exited with ${g.proc.exitCode} waiting for ${what}: ${this.stderrTail(g.gen)}`,
        );
      if (Date.now() > end) throw new Error(`gen ${g.gen}: timed out waiting for ${what}`);
      await sleep(25);
    }
  }

  /** The virtio_console driver adds ports asynchronously after the module loads. */
  private async waitPorts(): Promise<void> {
    const want = this.reportArgs();
    if (want.length === 0) return;
    for (let i = 0; i < 100; i++) {
      const lines = await this.agentCmd(['report', ...want], -1);
      if (!lines.some((l) => / port \S+ missing$/.test(l))) return;
      await sleep(100);
    }
    throw new Error('the guest never showed every virtio-serial port');
  }

  private reportArgs(): string[] {
    return this.plan.vsers.flatMap((v) =>
      v.ports.map((p) => `${v.slot.toString(16).padStart(2, '0')}:${p.id}`),
    );
  }

  private async migrate(ps: PlannedStep, downtimeNs: number, autostart: boolean): Promise<void> {
    const src = this.active;
    const gen = this.gens.length;
    const side = src.side === 'src' ? 'dst' : 'src';
    const incoming = join(this.o.sockDir, `g${gen}-mig`);
    const dst = await this.start(gen, side, incoming, !autostart);
    const srcWasRunning = (await this.status(src)) === 'running';
    // What the guest believes just before it leaves: the evidence a stale view starts from.
    if (srcWasRunning) {
      for (const l of await this.agentCmd(['report', ...this.reportArgs()], ps.step)) {
        if (/ port \S+ host=/.test(l))
          this.evidence.push(`step ${ps.step}: before migrating, guest (gen ${src.gen}): ${l}`);
      }
    }
    // A generous bandwidth keeps an idle TCG guest's precopy converging under any downtime.
    await src.qmp.cmd('migrate-set-parameters', {
      'downtime-limit': Math.max(1, Math.ceil(downtimeNs / 1e6)),
      'max-bandwidth': 10 * 1024 ** 3,
    });
    for (let i = 0; i < 100 && !existsSync(incoming); i++) await sleep(20);
    const uri = this.o.keepStreams ? await this.streamTap(gen, incoming) : incoming;
    await src.qmp.cmd('migrate', { uri: `unix:${uri}` });
    const rec: MigrationRecord = {
      step: ps.step,
      from: src.gen,
      to: gen,
      status: 'failed',
      savedUnrun: src.unrun,
    };
    const end = Date.now() + MIGRATE_TIMEOUT_MS;
    for (;;) {
      const m = await src.qmp.cmd<{ status?: string; 'error-desc'?: string }>('query-migrate');
      if (m.status === 'completed') {
        rec.status = 'completed';
        break;
      }
      if (m.status === 'failed' || m.status === 'cancelled') {
        rec.error = m['error-desc'] ?? m.status;
        break;
      }
      if (Date.now() > end)
        throw new Error(
          `migration gen ${src.gen} → ${gen} did not complete in ${MIGRATE_TIMEOUT_MS / 1000} s`,
        );
      await sleep(50);
    }
    if (rec.status === 'completed') {
      // The destination leaves `inmigrate` once it has loaded (and started, if it will).
      let st = 'inmigrate';
      for (let i = 0; i < 400 && (st === 'inmigrate' || st === 'prelaunch'); i++) {
        st = await this.status(dst).catch(() => 'dead');
        if (dst.proc.exitCode !== null) break;
        if (st === 'inmigrate') await sleep(25);
      }
      if (dst.proc.exitCode !== null || st === 'dead') {
        rec.status = 'failed';
        rec.error = this.stderrTail(gen) || `destination exited with ${dst.proc.exitCode}`;
      } else {
        rec.destStatus = st;
        dst.unrun = st !== 'running';
        this.active = dst;
      }
    }
    if (rec.status === 'failed') {
      rec.error = [rec.error, this.stderrTail(gen)].filter((x) => x).join('; ');
      rec.destStatus =
        dst.proc.exitCode !== null
          ? `exited ${dst.proc.exitCode}`
          : await this.status(dst).catch(() => 'dead');
      // QEMU resumes a source that was running when its migration fails.
      if (srcWasRunning && (await this.status(src)) !== 'running') await src.qmp.cmd('cont').catch(() => {});
    }
    this.migrations.push(rec);
    this.o.log(
      `migrate gen ${src.gen} → ${gen}: ${rec.status}${rec.error ? ` (${rec.error})` : ''}${rec.destStatus ? `, destination ${rec.destStatus}` : ''}`,
    );
    if (this.active === dst && dst.unrun === false) await this.runDeferred();
  }

  /**
   * A unix socket between source and destination that copies the migration stream to
   * `genN.stream` as it passes (precopy sends one way; the other way is relayed too).
   */
  private async streamTap(gen: number, incoming: string): Promise<string> {
    const path = join(this.o.sockDir, `g${gen}-tap`);
    const file = createWriteStream(join(this.o.logDir, `gen${gen}.stream`));
    const srv = createServer((from) => {
      srv.close();
      const to = connect(incoming);
      from.on('data', (d) => {
        file.write(d);
        to.write(d);
      });
      to.on('data', (d) => from.write(d));
      from.on('end', () => to.end());
      from.on('close', () => file.end());
      to.on('close', () => from.destroy());
      for (const s of [from, to]) s.on('error', () => {});
    });
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(path, resolve);
    });
    this.gens[gen]!.listeners.push(srv);
    return path;
  }

  // ---------------------------------------------------------------- the end

  private async finish(): Promise<RealObservations> {
    const g = this.active;
    let st = await this.status(g);
    const irqsBeforeSettle: Record<string, number> = {};
    const irqs: Record<string, number> = {};
    const ports: RealObservations['ports'] = [];
    const qtree = await g.qmp.hmp('info qtree');
    const qemuPorts = parseQtreePorts(qtree);
    if (st === 'running') {
      const first = await this.agentCmd(['report', ...this.reportArgs()], -1);
      parseIrqs(first, irqsBeforeSettle);
      await sleep(SETTLE_MS);
      const lines = await this.agentCmd(['report', ...this.reportArgs()], -1);
      parseIrqs(lines, irqs);
      for (const v of this.plan.vsers) {
        for (const p of v.ports) {
          const sp = `${v.slot.toString(16).padStart(2, '0')}:${p.id}`;
          const view = lines.find((l) => l.includes(` port ${sp} host=`));
          const m = view && /host=(\d+) guest=(\d+) discarded=(\d*)/.exec(view);
          const rx = lines.find((l) => l.includes(` rx port ${sp}`));
          const q = qemuPorts.get(`${v.name}.port${p.id}`);
          ports.push({
            dev: v.name,
            port: p.id,
            ...(m
              ? { guestView: { host: Number(m[1]), guest: Number(m[2]), discarded: Number(m[3] || 0) } }
              : {}),
            ...(q ? { qemu: q } : {}),
            evidence: [
              ...(view ? [`guest (gen ${g.gen}): ${view}`] : []),
              ...(q ? [`QEMU (gen ${g.gen}) info qtree: ${q.line}`] : []),
            ],
          });
          this.channel(`${v.name}.port${p.id}`).guestRead = hexOf(rx, ` rx port ${sp}`);
        }
      }
      if (this.plan.serial)
        this.channel(this.plan.serial.name).guestRead = hexOf(
          lines.find((l) => l.includes(' rx uart')),
          ' rx uart',
        );
    } else {
      this.evidence.push(`gen ${g.gen} ends ${st}: the guest never ran, so its view could not be read`);
    }
    st = await this.status(g);
    return {
      gens: this.gens.map((x) => ({
        gen: x.gen,
        side: x.side,
        status: x === g ? st : 'migrated',
        pid: x.proc.pid ?? -1,
      })),
      migrations: this.migrations,
      channels: this.channels,
      ports,
      irqs,
      irqsBeforeSettle,
      activeGen: g.gen,
      activeStatus: st,
      untranslatable: this.untranslatable,
      evidence: this.evidence,
    };
  }

  close(): void {
    for (const g of this.gens) {
      g.qmp.close();
      g.agent.destroy();
      for (const c of g.conns.values()) c.close();
      for (const l of g.listeners) l.close();
    }
  }
}

function hexOf(line: string | undefined, tag: string): Uint8Array {
  if (!line) return new Uint8Array(0);
  const rest =
    line
      .slice(line.indexOf(tag) + tag.length)
      .trim()
      .split(' ')
      .pop() ?? '';
  return /^[0-9a-f]*$/.test(rest) ? new Uint8Array(Buffer.from(rest, 'hex')) : new Uint8Array(0);
}

function parseIrqs(lines: string[], into: Record<string, number>): void {
  for (const l of lines) {
    const m = / irq (\S+) (\d+)$/.exec(l);
    if (m) into[m[1]!] = Number(m[2]);
  }
}

/** `info qtree`'s virtserialport lines (virtser_bus_dev_print) by `DEV.portN`. */
export function parseQtreePorts(qtree: string): Map<string, { guest: boolean; host: boolean; line: string }> {
  const out = new Map<string, { guest: boolean; host: boolean; line: string }>();
  let dev = '';
  for (const line of qtree.split('\n')) {
    const d = /dev: virtio-serial-pci, id "([^"]+)"/.exec(line);
    if (d) dev = d[1]!;
    const m = /port (\d+), guest (on|off), host (on|off), throttle (on|off)/.exec(line);
    if (m && dev) out.set(`${dev}.port${m[1]}`, { guest: m[2] === 'on', host: m[3] === 'on', line: m[0] });
  }
  return out;
}

/** A unix socket QEMU is about to listen on: retried until it accepts, for up to 10 s. */
export function connectUnix(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const end = Date.now() + 10_000;
    const tryOnce = () => {
      const s = connect(path);
      s.once('connect', () => resolve(s));
      s.once('error', (e) => {
        if (Date.now() > end) reject(new Error(`cannot connect to ${path}: ${e.message}`));
        else setTimeout(tryOnce, 25);
      });
    };
    tryOnce();
  });
}
