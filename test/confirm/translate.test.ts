import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { agrees } from '../../src/confirm/confirm.js';
import { cpioArchive } from '../../src/confirm/cpio.js';
import { judgeReal } from '../../src/confirm/judge.js';
import { planConfirm, portChardev } from '../../src/confirm/plan.js';
import { chooseMachine } from '../../src/confirm/qemu.js';
import { parseQtreePorts, type RealObservations, realWaitMs } from '../../src/confirm/run.js';
import { builtinRegistry } from '../../src/model/migration/builds.js';
import { parseSchedule } from '../../src/model/schedule/validate.js';
import { ROOT } from '../replay/helpers.js';

/** Issue 11: translating schedules for a real QEMU, and judging what a real run observed (no QEMU needed). */

const builds = builtinRegistry();
const load = (rel: string) => parseSchedule(readFileSync(join(ROOT, rel), 'utf8'), builds);
const doc = (over: object) =>
  parseSchedule(
    JSON.stringify({
      format: 'migfuzz.schedule',
      version: 1,
      seed: 1,
      machine: 'pc-i440fx-7.2',
      src: { build: 'qemu-9.2' },
      dst: { build: 'qemu-9.2' },
      devices: {
        serial0: { kind: 'isa-serial', irq: 4 },
        vser0: { kind: 'virtio-serial', irq: 'intx', ports: [{ id: 2 }] },
      },
      steps: [],
      horizon: 10_000_000,
      ...over,
    }),
    builds,
  );

describe('planConfirm', () => {
  it('translates every step of the ping-pong schedule, each in order', () => {
    const s = load('test/confirm/schedules/ping-pong.json');
    const p = planConfirm(s, builds);
    expect(p.runnable).toBe(true);
    expect(p.untranslatable).toEqual([]);
    expect(p.steps.map((x) => x.step)).toEqual(s.steps.map((_, i) => i));
    expect(p.serial).toEqual({ name: 'serial0', index: 0 });
    expect(p.agentIndex).toBe(1);
    expect(p.vsers).toEqual([
      { name: 'vser0', slot: 4, msix: true, ports: [{ id: 1, console: false, name: 'org.migfuzz.ping' }] },
    ]);
    expect(p.steps[0]!.action).toEqual({ kind: 'guest', args: ['vport-open', '04', '1'] });
    expect(p.steps[3]!.action).toEqual({
      kind: 'guest',
      args: ['uart-write', Buffer.from('pong-uart-1').toString('hex')],
    });
    expect(p.steps.filter((x) => x.action.kind === 'migrate')).toHaveLength(2);
  });

  it('lists every step of a historical build as untranslatable and runs nothing', () => {
    const p = planConfirm(load('corpus/seeds/bug-a-virtio-serial.json'), builds);
    expect(p.runnable).toBe(false);
    expect(p.steps).toEqual([]);
    expect(p.untranslatable.map((u) => u.step)).toEqual([0, 1, 2]);
    expect(p.untranslatable[0]!.reason).toBe(
      'build qemu-1.2 (src) has no real binary: a QEMU of today stands only for qemu-9.2, qemu-7.2',
    );
  });

  it('keeps what it cannot express in the list, with the reason, and runs the rest', () => {
    const p = planConfirm(
      doc({
        steps: [
          { at: 0, do: 'guest.irq.mask', dev: 'vser0' },
          { at: 1, do: 'guest.uart.config', dev: 'serial0', ier: 3, divider: 12, lcr: 0x1b, trigger: 8 },
          { at: 2, do: 'guest.uart.config', dev: 'serial0', divider: 7 },
        ],
      }),
      builds,
    );
    expect(p.untranslatable).toEqual([
      {
        step: 0,
        reason:
          "guest.irq.mask: Linux gives user space no way to mask a device's line at the IOAPIC or its MSI-X vector",
      },
      { step: 1, reason: 'guest.uart.config applied without ier 3 (the 8250 driver owns IER)' },
      { step: 2, reason: 'guest.uart.config applied without divider 7 (16457.1 baud is no termios speed)' },
    ]);
    // LCR 0x1b: 8 bits, 1 stop bit, even parity; divider 12 is 9600 baud; trigger by sysfs.
    expect(p.steps.map((x) => x.action)).toEqual([
      { kind: 'guest', args: ['uart-config', '9600', 'cs8', '-cstopb', 'parenb', '-parodd', 'trig=8'] },
      { kind: 'guest', args: ['uart-config'] },
    ]);
  });

  it('puts the agent on the COM port the UART under test leaves free, and refuses other IRQs', () => {
    expect(planConfirm(doc({ devices: { serial0: { kind: 'isa-serial', irq: 3 } } }), builds)).toMatchObject({
      serial: { index: 1 },
      agentIndex: 0,
    });
    const p = planConfirm(
      doc({
        devices: { serial0: { kind: 'isa-serial', irq: 5 } },
        steps: [{ at: 0, do: 'host.uart.send', dev: 'serial0', data: 'x' }],
      }),
      builds,
    );
    expect(p.untranslatable).toEqual([
      { step: 0, reason: 'serial0 on IRQ 5: only COM1 (IRQ 4) and COM2 (IRQ 3) are probed by Linux' },
    ]);
  });

  it('makes a port connected from the start a client-mode chardev, every other a listening one', () => {
    const s = doc({ src: { build: 'qemu-9.2', backends: { 'vser0.port2': 'socket' } } });
    expect(portChardev(s.src, 'vser0', 2)).toBe('client');
    expect(portChardev(s.dst, 'vser0', 2)).toBe('server');
  });

  it('maps virtual gaps to short real waits', () => {
    expect(realWaitMs(0)).toBe(150);
    expect(realWaitMs(10_000_000)).toBe(350);
    expect(realWaitMs(1e12)).toBe(3000);
  });
});

describe('chooseMachine', () => {
  const info = {
    binary: 'q',
    version: '7.2.22',
    machines: ['pc-i440fx-6.0', 'pc-i440fx-7.2', 'pc-i440fx-7.1', 'pc-q35-7.2', 'pc'],
  };
  it('runs the model machine type when the binary has it, else the newest pc-i440fx', () => {
    expect(chooseMachine(info, 'pc-i440fx-6.0')).toEqual({ machine: 'pc-i440fx-6.0', substituted: false });
    expect(chooseMachine(info, 'pc-1.2')).toEqual({ machine: 'pc-i440fx-7.2', substituted: true });
  });
});

describe('judgeReal', () => {
  const plan = planConfirm(doc({}), builds);
  const obs = (over: Partial<RealObservations>): RealObservations => ({
    gens: [],
    migrations: [],
    channels: new Map(),
    ports: [],
    irqs: {},
    irqsBeforeSettle: {},
    activeGen: 2,
    activeStatus: 'running',
    untranslatable: [],
    evidence: [],
    ...over,
  });
  const port = (host: number, qemuHost: boolean) => ({
    dev: 'vser0',
    port: 2,
    guestView: { host, guest: 0, discarded: 0 },
    qemu: { host: qemuHost, guest: false },
    evidence: ['guest line'],
  });

  it('names a stale host view after a paused save as the model does', () => {
    const saved = { step: 2, from: 1, to: 2, status: 'completed' as const, savedUnrun: true };
    const f = judgeReal(obs({ ports: [port(1, false)], migrations: [saved] }), plan);
    expect(f.map((x) => x.signature)).toEqual(['stale-guest-view:vser0:host-connected-unsent-at-save']);
    expect(f[0]!.message).toBe("the guest believes vser0 port 2's host is connected, QEMU says disconnected");
    expect(judgeReal(obs({ ports: [port(0, true)] }), plan).map((x) => x.signature)).toEqual([
      'stale-guest-view:vser0:host-connected',
    ]);
    expect(judgeReal(obs({ ports: [port(1, true)] }), plan)).toEqual([]);
  });

  it('tells lost bytes from bytes held by a former VM, and altered bytes from both', () => {
    const ch = (sentGen: number, read: string) =>
      new Map([
        [
          'serial0',
          {
            hostSent: [{ gen: sentGen, data: Buffer.from('hello') }],
            hostReceived: [],
            guestWrote: [],
            guestRead: Buffer.from(read),
          },
        ],
      ]);
    expect(judgeReal(obs({ channels: ch(2, 'hel') }), plan).map((x) => x.signature)).toEqual([
      'data-loss:serial0:rx-lost',
    ]);
    expect(judgeReal(obs({ channels: ch(0, 'hel') }), plan)).toEqual([]);
    expect(judgeReal(obs({ channels: ch(2, 'hxl') }), plan).map((x) => x.signature)).toEqual([
      'data-corruption:serial0:rx-altered',
    ]);
  });

  it("keys a failed load by QEMU's own message and device", () => {
    const failed = {
      step: 1,
      from: 0,
      to: 1,
      status: 'failed' as const,
      savedUnrun: false,
      error:
        "inconsistent state in serial device (tsr not empty, tsr_retry=0); error while loading state for instance 0x0 of device 'serial'",
    };
    expect(judgeReal(obs({ migrations: [failed] }), plan).map((x) => x.signature)).toEqual([
      'migration-failed:serial0:tsr-not-empty',
    ]);
  });
});

describe('agreement and QEMU output', () => {
  it('compares only what a real run can show', () => {
    const m = (signature: string) => ({
      oracle: signature.split(':')[0] as 'hang',
      device: null,
      at: 0,
      message: '',
      signature,
    });
    const r = (signature: string) => ({ ...m(signature), evidence: [] });
    expect(
      agrees([m('stale-guest-view:vser0:host-connected')], [r('stale-guest-view:vser0:host-connected')]),
    ).toBe(true);
    expect(agrees([m('hang:-:event-budget')], [])).toBe(true);
    expect(agrees([m('stale-guest-view:vser0:host-connected')], [])).toBe(false);
  });

  it("reads each port's state from info qtree", () => {
    const qtree = `  dev: virtio-serial-pci, id "vser0"
        bus: virtio-bus
          dev: virtio-serial-device, id ""
            bus: vser0.0
              dev: virtserialport, id ""
                nr = 3 (0x3)
                port 3, guest off, host on, throttle off`;
    expect([...parseQtreePorts(qtree)]).toEqual([
      ['vser0.port3', { guest: false, host: true, line: 'port 3, guest off, host on, throttle off' }],
    ]);
  });
});

describe('cpioArchive', () => {
  it('writes newc entries the kernel unpacks: header, padded name, padded data, trailer', () => {
    const a = cpioArchive([
      { name: 'bin', type: 'dir', mode: 0o755 },
      { name: 'init', type: 'file', mode: 0o755, data: Buffer.from('#!/bin/sh\n') },
    ]);
    const entries: { name: string; mode: number; data: string }[] = [];
    for (let off = 0; ; ) {
      const h = Buffer.from(a.subarray(off, off + 110)).toString('latin1');
      expect(h.slice(0, 6)).toBe('070701');
      const field = (i: number) => Number.parseInt(h.slice(6 + i * 8, 14 + i * 8), 16);
      const nameLen = field(11);
      const size = field(6);
      const name = Buffer.from(a.subarray(off + 110, off + 110 + nameLen - 1)).toString();
      const dataAt = off + 110 + nameLen + ((4 - ((110 + nameLen) % 4)) % 4);
      entries.push({ name, mode: field(1), data: Buffer.from(a.subarray(dataAt, dataAt + size)).toString() });
      off = dataAt + size + ((4 - (size % 4)) % 4);
      if (name === 'TRAILER!!!') {
        expect(off).toBe(a.length);
        break;
      }
    }
    expect(entries).toEqual([
      { name: 'bin', mode: 0o040755, data: '' },
      { name: 'init', mode: 0o100755, data: '#!/bin/sh\n' },
      { name: 'TRAILER!!!', mode: 0, data: '' },
    ]);
  });
});
