import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { builtinRegistry } from '../../src/model/migration/builds.js';
import { parseSchedule } from '../../src/model/schedule/validate.js';
import { sourceStateMisfit, World } from '../../src/model/world.js';
import { judge } from '../../src/oracles/verdict.js';
import { decodeStream } from '../../src/stream/decode.js';
import { sourceStateOf } from '../../src/stream/source-state.js';
import { captureCli } from '../cli/capture.js';
import { PORT_BLOCK, realStream } from './fixtures.js';

/** `run SCHEDULE --from-stream FILE`: a run whose source starts from a real 7.2 stream's state. */

const builds = builtinRegistry();
const fifo = realStream('qemu72-fifo');

interface Opts {
  src?: string;
  dst?: string;
  machine?: string;
  port?: 'socket' | 'none';
  ports?: number[];
  vser?: boolean;
}
function scheduleJson({
  src = 'rhel-7.4',
  dst = 'rhel-7.4',
  machine = 'pc-i440fx-rhel7.0.0',
  port = 'socket',
  ports = [1],
  vser = true,
}: Opts = {}): string {
  const backends = {
    serial0: 'hung-up',
    ...(vser ? Object.fromEntries(ports.map((p) => [`vser0.port${p}`, port])) : {}),
  };
  return JSON.stringify({
    format: 'migfuzz.schedule',
    version: 1,
    seed: 1,
    machine,
    src: { build: src, backends },
    dst: { build: dst, backends },
    devices: {
      serial0: { kind: 'isa-serial', irq: 4 },
      ...(vser ? { vser0: { kind: 'virtio-serial', irq: 'msix', ports: ports.map((id) => ({ id })) } } : {}),
    },
    steps: [{ at: 1_000_000, do: 'migrate', downtime: 300_000, autostart: true }],
    horizon: 20_000_000,
  });
}
const schedule = (o?: Opts) => parseSchedule(scheduleJson(o), builds);
const stateOf = (bytes: Uint8Array) => sourceStateOf(bytes, decodeStream(bytes));

describe('the source takes the stream state', () => {
  it('the UART holds the real registers and FIFOs, loaded by the model; the guest driver agrees', () => {
    const w = new World(schedule({ src: 'qemu-9.2', dst: 'qemu-9.2', machine: 'pc-i440fx-7.2' }), {
      builds,
      fromStream: stateOf(fifo),
    });
    w.boot();
    const d = w.vms[0]!.devices[0]!;
    if (d.kind !== 'uart') throw new Error('not a uart');
    expect(d.s).toMatchObject({
      divider: 12,
      lcr: 3,
      mcr: 0x0b,
      lsr: 0x01,
      ier: 0,
      tsrRetry: 1,
      thr: 0x50,
      tsr: 0x47,
    });
    expect(d.s.fcr & 1).toBe(1);
    expect(d.s.xmitFifo).toMatchObject({ head: 7, num: 9 });
    expect(d.s.recvFifo).toMatchObject({ head: 0, num: 1 });
    expect(d.s.recvFifo.data[0]).toBe(0x68);
    expect(d.s.timeoutIpending).toBe(1);
    const drv = w.vms[0]!.ram.guest.drivers[0]!;
    expect(drv.kind === 'uart' && drv.d.ier).toBe(0);
  });

  it('a port the guest had open is opened by the guest, and the device sees it once the port is added', () => {
    const bytes = fifo.slice();
    const d = decodeStream(bytes);
    const v = d.sections.find((s) => s.body.kind === 'virtio-console')!;
    const at = v.bodyOffset + PORT_BLOCK + 16 + 4; // guest_connected of port 1
    expect(bytes[at]).toBe(0);
    bytes[at] = 1;
    const s = schedule({ src: 'qemu-9.2', dst: 'qemu-9.2', machine: 'pc-i440fx-7.2' });
    const w = new World(s, { builds, fromStream: stateOf(bytes) });
    w.run();
    const dev = w.guestVm.devices[1]!;
    expect(dev.kind === 'vser' && dev.s.ports[0]!.guestConnected).toBe(true);
    const plain = new World(s, { builds });
    plain.run();
    const dev0 = plain.guestVm.devices[1]!;
    expect(dev0.kind === 'vser' && dev0.s.ports[0]!.guestConnected).toBe(false);
  });

  it('what happens if it migrates now: bytes stuck in the transmit FIFO break rhel-7.4 on a pre-2.2 machine', () => {
    const v = judge(schedule(), { builds, fromStream: stateOf(fifo) });
    expect(v.findings.map((f) => f.signature)).toEqual(['migration-failed:serial0:tsr-not-empty']);
    // The same schedule from the guest's own boot state migrates cleanly.
    expect(judge(schedule(), { builds }).findings).toEqual([]);
    // rhel-7.5 sends tsr and the FIFOs on pre-2.2 machines too (c782c664).
    expect(
      judge(schedule({ src: 'rhel-7.5', dst: 'rhel-7.5' }), { builds, fromStream: stateOf(fifo) }).findings,
    ).toEqual([]);
  });
});

describe('a stream that does not fit the schedule', () => {
  const misfit = (o: Opts, bytes = fifo) => sourceStateMisfit(schedule(o), builds, stateOf(bytes))?.message;

  it('names the device and what differs', () => {
    expect(misfit({})).toBeUndefined();
    expect(misfit({ port: 'none' })).toBe(
      'vser0: port 1: the stream says host_connected=1, the schedule\'s src backend is "none"',
    );
    expect(misfit({ vser: false })).toBe('the stream has 1 virtio-serial device(s), the schedule 0');
    expect(misfit({ ports: [1, 2] })).toBe("vser0: ports_map 0x3 differs from the schedule's 0x7");
  });

  it('a serial state the source build cannot load is its loader error', () => {
    expect(misfit({ src: 'qemu-1.3', dst: 'qemu-1.3', machine: 'pc-1.3' })).toMatch(
      /^serial0: serial: unknown subsection 'serial\/tsr'/,
    );
  });

  it('a popped element is refused', () => {
    const state = stateOf(fifo);
    state.vsers[0]!.ports[0]!.elemPopped = true;
    expect(sourceStateMisfit(schedule(), builds, state)?.message).toMatch(/port 1 has a popped element/);
  });
});

describe('migfuzz run --from-stream', () => {
  const run = captureCli();
  const cli = (argv: string[]): number => main(argv) as number;
  const tmp = mkdtempSync(join(tmpdir(), 'migfuzz-from-stream-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const STREAM = join(tmp, 'fifo.bin');
  writeFileSync(STREAM, fifo);
  const file = (name: string, text: string): string => {
    writeFileSync(join(tmp, name), text);
    return join(tmp, name);
  };

  it('prints the verdict and a reproduction that names the stream', () => {
    const s = file('rhel74.json', scheduleJson());
    const r = run(cli, ['run', s, '--from-stream', STREAM]);
    expect(r.code).toBe(1);
    expect(r.out).toContain(
      "  migration-failed on serial0 at 1.300 ms: inconsistent state in serial device (tsr not empty, tsr_retry=0: error while loading state for instance 0x0 of device 'serial'",
    );
    expect(r.out).toContain(`    reproduce: npx migfuzz run ${s} --from-stream ${STREAM}`);
    const j = run(cli, ['run', s, '--from-stream', STREAM, '--json']);
    expect(JSON.parse(j.out[0]!)).toMatchObject({
      stream: STREAM,
      findings: [{ signature: 'migration-failed:serial0:tsr-not-empty' }],
    });
  });

  it('a misfit or a bad stream is one line, exit 3; with --trace it is a usage error', () => {
    const s = file('none.json', scheduleJson({ port: 'none' }));
    const r = run(cli, ['run', s, '--from-stream', STREAM]);
    expect(r.code).toBe(3);
    expect(r.err).toEqual([
      `migfuzz: ${STREAM}: does not fit the schedule: vser0: port 1: the stream says host_connected=1, the schedule's src backend is "none"`,
    ]);
    const cut = file('cut.bin', '');
    writeFileSync(cut, fifo.subarray(0, 1000));
    const c = run(cli, ['run', s, '--from-stream', cut]);
    expect(c.code).toBe(3);
    expect(c.err[0]).toMatch(/cut\.bin: offset \d+ \(0x[0-9a-f]+\): truncated/);
    expect(run(cli, ['run', s, '--from-stream', STREAM, '--trace', join(tmp, 'x.mpk')]).code).toBe(2);
  });
});
