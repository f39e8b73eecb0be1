import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BuildRegistry } from '../model/migration/builds.js';
import type { Schedule } from '../model/schedule/types.js';
import type { DecodedStream } from '../stream/decode.js';
import { type GuestImage, RealEnvError } from './guest.js';
import { planConfirm } from './plan.js';
import { spawnQemu } from './qemu.js';
import { Qmp, sleep } from './qmp.js';
import { connectUnix } from './run.js';

/**
 * Hostile-stream proofs on a real QEMU: `stream base` saves a real stream of the test guest
 * (the confirm guest, with the agent) for `stream craft` to rewrite, and `confirm --stream`
 * loads a stream into a real destination started with the devices the stream has, lets the
 * guest run, and reports the destination's fate: refused (QEMU's error text), crashed (its
 * signal), running with corrupted state (with the evidence), or running as it should.
 *
 * The layout both sides use: COM1 (isa-serial index 0, created first: serial instance 0) is
 * the UART under test, which the guest keeps open and reads (agent.ts); COM2 (instance 1) is
 * the agent's own line; each virtio-serial-pci at its slot with its ports.
 */

export interface StreamDevices {
  machine: string;
  /** Guest RAM in MiB (the `pc.ram` block). */
  ramMiB: number;
  /** Serial sections: 1 (the UART under test) or 2 (and the agent's line). */
  serials: number;
  /**
   * The test guest (-kernel, its agent on COM2): a stream with two serial sections is taken to
   * be `stream base`'s. The kernel's option ROM travels in fw_cfg, not as a RAM block, so the
   * stream cannot say it; the destination gets the same -kernel as the source had.
   */
  kernel: boolean;
  vsers: { slot: number; msix: boolean; ports: number[] }[];
}

/** A stream whose devices cannot be recreated on a QEMU command line (exit 3). */
export class StreamMisfitError extends Error {
  override readonly name = 'StreamMisfitError';
}

const VIRTIO_IDSTR = /^0000:00:([0-9a-f]{2})\.0\/virtio-console$/;

/** The devices a decoded stream says its source had, in the layout above. */
export function streamDevices(d: DecodedStream): StreamDevices {
  const ram = d.ram.blocks.find((b) => b.name === 'pc.ram');
  if (!ram) throw new StreamMisfitError('the stream has no pc.ram block: not a pc machine');
  const full = d.sections.filter((s) => s.type === 'full');
  const serials = full.filter((s) => s.idstr === 'serial').map((s) => s.instance);
  if (serials.some((n, i) => n !== i) || serials.length > 2)
    throw new StreamMisfitError(
      `serial instances ${serials.join(', ')}: a stream of the test layout has instance 0 (COM1) and at most 1 (COM2)`,
    );
  const vsers: StreamDevices['vsers'] = [];
  for (const s of full) {
    if (s.body.kind !== 'virtio-console') continue;
    const m = VIRTIO_IDSTR.exec(s.idstr);
    if (!m) throw new StreamMisfitError(`virtio-console section '${s.idstr}' is not on bus 0 function 0`);
    const v = s.body.virtio;
    vsers.push({
      slot: Number.parseInt(m[1]!, 16),
      msix: v.msix !== null,
      ports: v.serial.ports.map((p) => p.id),
    });
  }
  return {
    machine: d.configuration.machineType,
    ramMiB: Math.round(ram.length / (1 << 20)),
    serials: serials.length,
    kernel: serials.length === 2,
    vsers,
  };
}

/** The devices `stream base` gives a schedule's VM: its UART under test on COM1, its virtio-serials. */
export function scheduleDevices(s: Schedule, builds: BuildRegistry, machine: string): StreamDevices {
  const plan = planConfirm(s, builds);
  if (!plan.serial) throw new StreamMisfitError('the schedule has no isa-serial device to prove a stream on');
  if (plan.serial.index !== 0)
    throw new StreamMisfitError(
      `${plan.serial.name} is COM2 (irq 3): the stream layout has the UART under test on COM1 (irq 4)`,
    );
  return {
    machine,
    ramMiB: 128,
    serials: 2,
    kernel: true,
    vsers: plan.vsers.map((v) => ({ slot: v.slot, msix: v.msix, ports: v.ports.map((p) => p.id) })),
  };
}

/** The QEMU command line of a VM with these devices (sockets named by `sock`). */
export function qemuArgs(
  dev: StreamDevices,
  guest: GuestImage | null,
  sock: (name: string) => string,
): string[] {
  const args = [
    ...['-machine', dev.machine, '-accel', 'tcg', '-m', `${dev.ramMiB}`, '-smp', '1'],
    ...['-nodefaults', '-display', 'none', '-vga', 'none', '-no-reboot'],
    ...['-qmp', `unix:${sock('qmp')},server=on,wait=off`],
  ];
  if (dev.kernel) {
    if (!guest)
      throw new RealEnvError(
        'the stream was saved from a guest started with -kernel: the test guest is needed',
      );
    const agent = dev.serials > 1 ? 'ttyS1' : 'none';
    args.push('-kernel', guest.kernel, '-initrd', guest.initrd);
    args.push(
      '-append',
      `console=${agent === 'none' ? 'ttyS0' : agent} loglevel=1 panic=-1 mfz.agent=${agent} mfz.uart=ttyS0`,
    );
  }
  const serials = ['uart', 'agent'];
  for (let i = 0; i < dev.serials; i++) {
    args.push('-chardev', `socket,id=${serials[i]},path=${sock(serials[i]!)},server=on,wait=off`);
    args.push('-device', `isa-serial,index=${i},chardev=${serials[i]}`);
  }
  for (const [n, v] of dev.vsers.entries()) {
    const id = `vser${n}`;
    args.push(
      '-device',
      `virtio-serial-pci,id=${id},addr=0x${v.slot.toString(16)}${v.msix ? '' : ',vectors=0'}`,
    );
    for (const p of v.ports) {
      args.push('-chardev', `socket,id=${id}p${p},path=${sock(`${id}p${p}`)},server=on,wait=off`);
      args.push('-device', `virtserialport,bus=${id}.0,nr=${p},chardev=${id}p${p}`);
    }
  }
  return args;
}

/** The agent's line: commands out, `MFZ` lines in. */
class Agent {
  readonly lines: string[] = [];
  private buf = '';
  private nextId = 1;
  constructor(readonly sock: Socket) {
    sock.setEncoding('latin1');
    sock.on('error', () => {});
    sock.on('data', (d: string) => {
      this.buf += d;
      for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
        const line = this.buf.slice(0, nl).replace(/\r$/, '');
        this.buf = this.buf.slice(nl + 1);
        this.lines.push(line);
      }
    });
  }

  async waitFor(
    pred: (l: string) => boolean,
    timeoutMs: number,
    alive: () => boolean,
  ): Promise<string | null> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end && alive()) {
      const hit = this.lines.find(pred);
      if (hit !== undefined) return hit;
      await sleep(25);
    }
    return this.lines.find(pred) ?? null;
  }

  /** Sends a command; its reply line, or null when none came in time. */
  cmd(args: string[], timeoutMs: number, alive: () => boolean): Promise<string | null> {
    const id = this.nextId++;
    this.sock.write(`C ${id} ${args.join(' ')}\n`);
    return this.waitFor((l) => l.includes(`MFZ ${id} ok`) || l.includes(`MFZ ${id} err`), timeoutMs, alive);
  }
}

const exited = (p: ChildProcess): boolean => p.exitCode !== null || p.signalCode !== null;

async function waitExit(p: ChildProcess, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!exited(p) && Date.now() < end) await sleep(25);
}

async function stop(p: ChildProcess): Promise<void> {
  if (exited(p)) return;
  p.kill('SIGTERM');
  await waitExit(p, 5000);
  if (!exited(p)) p.kill('SIGKILL');
  await waitExit(p, 5000);
}

export interface BaseOptions {
  binary: string;
  guest: GuestImage;
  log: (line: string) => void;
}

/**
 * Boots the test guest with these devices, waits for its agent (the UART under test is then
 * open and read), stops the VM and saves it with `migrate "exec:cat > FILE"`. The file is
 * written under a temporary name and renamed when complete.
 */
export async function saveBase(dev: StreamDevices, out: string, o: BaseOptions): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mfz-'));
  const sock = (n: string) => join(dir, n);
  const proc = spawnQemu(o.binary, qemuArgs(dev, o.guest, sock), join(dir, 'qemu.log'));
  const alive = () => !exited(proc);
  const socks: Socket[] = [];
  try {
    const qmp = await Qmp.open(sock('qmp'), 'base', () => (alive() ? undefined : 'QEMU exited at start'));
    const agent = new Agent(await connectUnix(sock('agent')));
    socks.push(agent.sock, await connectUnix(sock('uart')));
    const ready = await agent.waitFor((l) => l.includes('MFZ ready'), 90_000, alive);
    if (!ready) throw new RealEnvError('the test guest did not come up');
    o.log(`base: guest up (${ready.slice(ready.indexOf('MFZ ready'))})`);
    // The agent has the UART under test open; give the 8250 driver a moment to settle.
    if ((await agent.cmd(['hello'], 10_000, alive)) === null)
      throw new RealEnvError('the agent does not answer');
    await sleep(500);
    await qmp.cmd('stop');
    const tmp = `${out}.tmp-${process.pid}`;
    await qmp.cmd('migrate', { uri: `exec:cat > ${shellQuote(tmp)}` });
    const end = Date.now() + 120_000;
    for (;;) {
      const m = await qmp.cmd<{ status?: string; 'error-desc'?: string }>('query-migrate');
      if (m.status === 'completed') break;
      if (m.status === 'failed' || m.status === 'cancelled' || Date.now() > end)
        throw new RealEnvError(`saving the base stream failed: ${m['error-desc'] ?? m.status}`);
      await sleep(50);
    }
    renameSync(tmp, out);
    qmp.close();
  } finally {
    for (const s of socks) s.destroy();
    await stop(proc);
    rmSync(dir, { recursive: true, force: true });
  }
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export type Fate = 'refused' | 'crashed' | 'exited' | 'corrupted' | 'running';

export interface StreamProof {
  qemu: { binary: string; version: string };
  machine: string;
  /** The destination's command line (sockets in a temporary directory). */
  args: string[];
  fate: Fate;
  /** Whether the load completed (the destination reached `paused` with -S). */
  loaded: boolean;
  /** The signal that ended QEMU (crashed), or its exit status (refused, exited). */
  signal?: string;
  exitStatus?: number;
  /** QEMU's own lines on stderr (trace lines left out): its error text. */
  error: string[];
  /** RBR reads of both serial ports (trace event serial_read, offset 0) after `cont`. */
  rbrReads: number;
  watchedMs: number;
  evidence: string[];
}

export interface ProofOptions {
  binary: string;
  version: string;
  guest: GuestImage | null;
  /** How long the destination runs after `cont` (ms). */
  watchMs: number;
  /** Bytes the agent writes to the UART under test once the VM runs (THR writes). */
  write?: Uint8Array;
  log: (line: string) => void;
}

/** More RBR reads than this during the watch: the guest's driver is stuck reading (a storm). */
const STORM_READS = 10_000;
const RBR_READ = /serial_read .*addr 0x00 val 0x([0-9a-f]{2})/;

/** Loads `file` into a real destination, runs the guest, and reports its fate. */
export async function proveStream(file: string, dev: StreamDevices, o: ProofOptions): Promise<StreamProof> {
  const dir = mkdtempSync(join(tmpdir(), 'mfz-'));
  const sock = (n: string) => join(dir, n);
  const args = [...qemuArgs(dev, o.guest, sock), '-S', '-incoming', 'defer', '-trace', 'serial_read'];
  const proc = spawnQemu(o.binary, args, 'pipe');
  const alive = () => !exited(proc);
  const error: string[] = [];
  let rbr = 0;
  let counting = false;
  // The last RBR values read (a storm shows the same bytes round and round).
  const rbrLast: string[] = [];
  let partial = '';
  const onOutput = (d: Buffer) => {
    const text = partial + d.toString('latin1');
    const lines = text.split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      const m = RBR_READ.exec(l);
      if (m) {
        if (counting) {
          rbr++;
          rbrLast.push(m[1]!);
          if (rbrLast.length > 24) rbrLast.shift();
        }
      } else if (!l.includes('serial_read') && l.trim()) error.push(l.trim());
    }
  };
  proc.stdout?.on('data', onOutput);
  proc.stderr?.on('data', onOutput);
  const socks: Socket[] = [];
  const evidence: string[] = [];
  let loaded = false;
  let watchedMs = 0;
  let aliveAtEnd = false;
  let errorLines = 0;
  try {
    const qmp = await Qmp.open(sock('qmp'), 'destination', () =>
      alive() ? undefined : 'QEMU exited at start',
    );
    const agent = dev.serials > 1 && dev.kernel ? new Agent(await connectUnix(sock('agent'))) : null;
    if (agent) socks.push(agent.sock);
    socks.push(await connectUnix(sock('uart')));
    o.log(`destination pid ${proc.pid}: loading ${file}`);
    await qmp.cmd('migrate-incoming', { uri: `exec:cat ${shellQuote(file)}` }).catch(() => {});
    const end = Date.now() + 120_000;
    while (alive() && Date.now() < end) {
      const m = await qmp.cmd<{ status?: string }>('query-migrate').catch(() => ({ status: 'gone' }));
      const st = await qmp.cmd<{ status: string }>('query-status').catch(() => ({ status: 'gone' }));
      if (
        m.status === 'completed' ||
        (st.status === 'paused' && m.status !== 'active' && m.status !== 'setup')
      ) {
        loaded = true;
        break;
      }
      if (m.status === 'failed') break;
      await sleep(50);
    }
    if (loaded) {
      o.log('destination: loaded, cont');
      counting = true;
      await qmp.cmd('cont');
      const start = Date.now();
      if (agent && o.write) {
        const hex = Buffer.from(o.write).toString('hex');
        const reply = await agent.cmd(['uart-write', hex], 5000, alive);
        evidence.push(
          reply === null
            ? `the agent did not acknowledge writing ${o.write.length} bytes to the UART under test`
            : `the agent wrote ${o.write.length} bytes to the UART under test (${reply.slice(reply.indexOf('MFZ'))})`,
        );
      }
      while (alive() && Date.now() - start < o.watchMs) await sleep(50);
      watchedMs = Date.now() - start;
      if (alive() && agent) {
        const reply = await agent.cmd(['hello'], 5000, alive);
        evidence.push(
          reply === null
            ? 'the agent does not answer: the guest is stuck'
            : `the agent answers (${reply.slice(reply.indexOf('MFZ'))})`,
        );
      }
      qmp.close();
    } else {
      await waitExit(proc, 10_000);
    }
  } finally {
    counting = false;
    aliveAtEnd = alive();
    errorLines = error.length;
    if (alive()) await stop(proc);
    else await waitExit(proc, 5000);
    for (const s of socks) s.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
  const fate = fateOf(proc, loaded, aliveAtEnd, rbr, evidence);
  // The trace event does not name the port: the agent's commands on COM2 are read there too.
  if (rbr > 0)
    evidence.push(
      `${rbr} RBR reads (COM1 and the agent's COM2) in ${(watchedMs / 1000).toFixed(1)} s; the last: ${rbrLast.join(' ')}`,
    );
  return {
    qemu: { binary: o.binary, version: o.version },
    machine: dev.machine,
    args,
    fate: fate.fate,
    loaded,
    ...(fate.signal ? { signal: fate.signal } : {}),
    ...(fate.exitStatus !== undefined ? { exitStatus: fate.exitStatus } : {}),
    // QEMU's lines up to the end of the watch (not its "terminating on signal" when stopped).
    error: error.slice(0, aliveAtEnd ? errorLines : error.length).slice(-8),
    rbrReads: rbr,
    watchedMs,
    evidence,
  };
}

function fateOf(
  proc: ChildProcess,
  loaded: boolean,
  aliveAtEnd: boolean,
  rbr: number,
  evidence: string[],
): { fate: Fate; signal?: string; exitStatus?: number } {
  if (!aliveAtEnd) {
    if (proc.signalCode) return { fate: 'crashed', signal: proc.signalCode };
    return { fate: loaded ? 'exited' : 'refused', exitStatus: proc.exitCode ?? -1 };
  }
  if (!loaded) return { fate: 'refused' };
  const stuck = evidence.some((e) => e.includes('does not answer'));
  return { fate: rbr > STORM_READS || stuck ? 'corrupted' : 'running' };
}
