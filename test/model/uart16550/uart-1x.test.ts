import { describe, expect, it } from 'vitest';
import type { Bus } from '../../../src/model/bus.js';
import { Ev, streamId } from '../../../src/model/events.js';
import { builtinRegistry } from '../../../src/model/migration/builds.js';
import type { Schedule } from '../../../src/model/schedule/types.js';
import { validateSchedule } from '../../../src/model/schedule/validate.js';
import { Fcr, Ier, Iir, Lsr, Reg } from '../../../src/model/uart16550/regs.js';
import {
  fifoPush,
  makeUart,
  type UartGeneration,
  type UartState,
} from '../../../src/model/uart16550/state.js';
import { UartTimer, uartRead, uartReceive, uartTimer, uartWrite } from '../../../src/model/uart16550/uart.js';
import { World } from '../../../src/model/world.js';
import { judge } from '../../../src/oracles/verdict.js';

/**
 * The 1.x 16550 (hw/serial.c up to QEMU 1.4, the 'transmit-timer' generation of qemu-1.2
 * and qemu-1.3) against today's code ('write-watch': qemu-2.2 onwards), function by function.
 */

const builds = builtinRegistry();
const MS = 1_000_000;
const DEV = 0;
const TX = streamId(DEV, 0, false);

/** Records what a device does to its VM; chrWrite answers from a script (default 1). */
class RecordingBus implements Bus {
  now = 0;
  irq = 0;
  /** Pending timers by name (UartTimer). */
  timers = new Map<number, number>();
  script: number[] = [];
  writes: number[] = [];
  watches = 0;
  watch = false;
  events: { kind: number; a: number; b: number }[] = [];
  vmNow(): number {
    return this.now;
  }
  setIrq(_dev: number, level: number): void {
    this.irq = level;
  }
  msixNotify(): void {}
  timerMod(_dev: number, timer: number, expiryNs: number): void {
    if (expiryNs < 0) this.timers.delete(timer);
    else this.timers.set(timer, expiryNs);
  }
  timerExpiry(_dev: number, timer: number): number {
    return this.timers.get(timer) ?? -1;
  }
  chrWrite(_dev: number, _port: number, byte: number): number {
    const rc = this.script.shift() ?? 1;
    if (rc === 1) this.writes.push(byte);
    return rc;
  }
  chrAddWatch(): void {
    this.watches++;
    this.watch = true;
  }
  chrWatchPending(): boolean {
    return this.watch;
  }
  chrRemoveWatch(): void {
    this.watch = false;
  }
  chrAcceptInput(): void {}
  emit(kind: number, _dev: number, a: number, b: number): void {
    this.events.push({ kind, a, b });
  }
}

/** A UART as qemu-1.3 (1.x code, poll_msl 0 after reset) or qemu-2.2 makes it. */
const uart = (generation: UartGeneration): { s: UartState; bus: RecordingBus } => ({
  s: makeUart(DEV, generation, generation === 'transmit-timer' ? 0 : -1),
  bus: new RecordingBus(),
});

describe('serial_xmit: a write the backend refuses', () => {
  // 1.x: `if ((s->tsr_retry > 0) && (s->tsr_retry <= MAX_XMIT_RETRY))` never holds, since
  // nothing else makes tsr_retry positive ("serial: fix retry logic", f702e62a, 1.5).
  it('1.x drops the byte at once, sets tsr_retry = -1 once poll_msl < 0, and TEMT again', () => {
    const { s, bus } = uart('transmit-timer');
    uartRead(s, bus, Reg.MSR); // serial_update_msl: no TIOCM, poll_msl = -1
    expect(s.pollMsl).toBe(-1);
    bus.script = [0, 0];
    uartWrite(s, bus, Reg.THR, 0x41);
    uartWrite(s, bus, Reg.THR, 0x42);
    expect(bus.events.filter((e) => e.kind === Ev.BYTE_DISCARD).map((e) => e.a)).toEqual([0x41, 0x42]);
    expect(s.tsrRetry).toBe(-1);
    expect(s.lsr & (Lsr.TEMT | Lsr.THRE)).toBe(Lsr.TEMT | Lsr.THRE);
    expect(bus.watches).toBe(0);
    expect(bus.timers.has(UartTimer.TRANSMIT)).toBe(false);
    // The next accepted write resets it.
    uartWrite(s, bus, Reg.THR, 0x43);
    expect(s.tsrRetry).toBe(0);
    expect(bus.writes).toEqual([0x43]);
  });

  it('1.x with poll_msl still 0 (no MSR read yet) drops the byte too, tsr_retry stays 0', () => {
    const { s, bus } = uart('transmit-timer');
    expect(s.pollMsl).toBe(0);
    bus.script = [0];
    uartWrite(s, bus, Reg.THR, 0x41);
    expect(s.tsrRetry).toBe(0);
    expect(bus.events.filter((e) => e.kind === Ev.BYTE_DISCARD).map((e) => e.a)).toEqual([0x41]);
    expect(s.lsr & Lsr.TEMT).toBe(Lsr.TEMT);
  });

  it('write-watch keeps it in TSR with TEMT clear and waits on a G_IO_OUT watch', () => {
    const { s, bus } = uart('write-watch');
    bus.script = [0];
    uartWrite(s, bus, Reg.THR, 0x41);
    expect(s.tsrRetry).toBe(1);
    expect(s.lsr & Lsr.TEMT).toBe(0);
    expect(bus.watches).toBe(1);
    expect(bus.events.filter((e) => e.kind === Ev.BYTE_DISCARD)).toEqual([]);
  });
});

describe('serial_xmit: the transmit_timer paces what the FIFO still holds (1.x)', () => {
  it('sends the oldest byte on the THR write and the next one a character time later', () => {
    const { s, bus } = uart('transmit-timer');
    uartWrite(s, bus, Reg.FCR, Fcr.FE);
    // THR cleared with a byte waiting, as a stream from a later build can leave it.
    fifoPush(s.xmitFifo, 0x31);
    s.lsr &= ~(Lsr.THRE | Lsr.TEMT) & 0xff;
    bus.now = 1000;
    uartWrite(s, bus, Reg.THR, 0x32);
    expect(bus.writes).toEqual([0x31]);
    expect(bus.timers.get(UartTimer.TRANSMIT)).toBe(1000 + s.charTransmitTimeNs);
    expect(s.lsr & Lsr.THRE).toBe(0);
    bus.now = 1000 + s.charTransmitTimeNs;
    bus.timers.delete(UartTimer.TRANSMIT); // the machine consumes the timer as it fires
    uartTimer(s, bus, UartTimer.TRANSMIT);
    expect(bus.writes).toEqual([0x31, 0x32]);
    expect(s.lsr & (Lsr.THRE | Lsr.TEMT)).toBe(Lsr.THRE | Lsr.TEMT);
    expect(s.thrIpending).toBe(1);
  });
});

describe('IER writes: THRE resampling', () => {
  const consumedThri = (generation: UartGeneration): { s: UartState; bus: RecordingBus } => {
    const u = uart(generation);
    uartWrite(u.s, u.bus, Reg.IER, Ier.THRI);
    expect(u.s.iir & Iir.ID_MASK).toBe(Iir.THRI);
    uartRead(u.s, u.bus, Reg.IIR); // reading IIR showing THRI clears thr_ipending
    expect(u.s.iir & Iir.NO_INT).toBe(Iir.NO_INT);
    return u;
  };

  it('1.x resamples on every IER write (`if (s->lsr & UART_LSR_THRE) s->thr_ipending = 1`)', () => {
    const { s, bus } = consumedThri('transmit-timer');
    uartWrite(s, bus, Reg.IER, Ier.THRI);
    expect(s.thrIpending).toBe(1);
    expect(bus.irq).toBe(1);
  });

  it('write-watch only on a rising IER.THRI (1645b8ee)', () => {
    const { s, bus } = consumedThri('write-watch');
    uartWrite(s, bus, Reg.IER, Ier.THRI);
    expect(s.thrIpending).toBe(0);
    expect(bus.irq).toBe(0);
  });
});

describe('FCR writes (1.x serial_ioport_write case 2)', () => {
  it('return early on the current value, and RFR leaves LSR.DR set over an empty FIFO', () => {
    const { s, bus } = uart('transmit-timer');
    uartWrite(s, bus, Reg.FCR, Fcr.FE | Fcr.ITL_4);
    uartReceive(s, bus, 0x61);
    expect(s.recvFifo.num).toBe(1);
    uartWrite(s, bus, Reg.FCR, Fcr.FE | Fcr.ITL_4);
    expect(s.recvFifo.num).toBe(1); // same value: nothing
    uartWrite(s, bus, Reg.FCR, Fcr.FE | Fcr.ITL_4 | Fcr.RFR);
    expect(s.recvFifo.num).toBe(0);
    expect(s.lsr & Lsr.DR).toBe(Lsr.DR);
  });

  it('write-watch clears LSR.DR with the recv FIFO', () => {
    const { s, bus } = uart('write-watch');
    uartWrite(s, bus, Reg.FCR, Fcr.FE | Fcr.ITL_4);
    uartReceive(s, bus, 0x61);
    uartWrite(s, bus, Reg.FCR, Fcr.FE | Fcr.ITL_4 | Fcr.RFR);
    expect(s.lsr & Lsr.DR).toBe(0);
  });
});

function serialSchedule(src: string, dst: string, backend: string, steps: unknown[]): Schedule {
  return validateSchedule(
    {
      format: 'migfuzz.schedule',
      version: 1,
      seed: 1,
      machine: 'pc-1.3',
      src: { build: src, backends: { serial0: backend } },
      dst: { build: dst, backends: { serial0: backend } },
      devices: { serial0: { kind: 'isa-serial', irq: 4 } },
      steps,
      horizon: 40 * MS,
    },
    builds,
  );
}

describe('migrations between builds', () => {
  const hungUp = (src: string): Schedule =>
    serialSchedule(src, 'qemu-2.3', 'hung-up', [
      { at: 0.5 * MS, do: 'guest.uart.config', dev: 'serial0', fifo: true, trigger: 4, ier: 3 },
      { at: 1 * MS, do: 'guest.uart.write', dev: 'serial0', data: 'boot: ok\n' },
      { at: 4 * MS, do: 'migrate' },
    ]);

  // 2.3's serial_post_load: "inconsistent state in serial device (tsr not empty, tsr_retry=0".
  it('qemu-2.2 → qemu-2.3 with a hung-up reader fails tsr-not-empty (the watch left TEMT=0)', () => {
    const v = judge(hungUp('qemu-2.2'), { builds });
    expect(v.findings.map((f) => f.signature)).toEqual(['migration-failed:serial0:tsr-not-empty']);
  });

  it('qemu-1.3 → qemu-2.3 does not: the 1.x source dropped the bytes and set TEMT', () => {
    const world = new World(hungUp('qemu-1.3'), { builds });
    world.run();
    expect(world.failures).toEqual([]);
    expect(world.active).toBe(1);
    const v = judge(hungUp('qemu-1.3'), { builds });
    expect(v.findings).toEqual([]);
  });

  // The guest enables THRI and the VM migrates before its handler runs: IIR shows THRI on
  // the source. 1.x serial_post_load's FCR write recomputes IIR with thr_ipending = 0.
  const thriPending = (build: string): Schedule =>
    serialSchedule(build, build, 'open', [
      { at: 1 * MS, do: 'guest.uart.write', dev: 'serial0', data: 'written before the migration' },
      { at: 1 * MS, do: 'migrate' },
    ]);

  // hw/char/serial.c @003f8dbc (2.0-2.2) still called serial_ioport_write(s, 0x02, fcr_vmstate).
  it.each(['qemu-1.3', 'qemu-2.2'])(
    'serial_post_load before 2.3 loses a pending THRI: the guest never sends (%s)',
    (build) => {
      const events: { kind: number; vm: number; dev: number; a: number }[] = [];
      const v = judge(thriPending(build), {
        builds,
        sink: { event: (_at, kind, vm, dev, a) => events.push({ kind, vm, dev, a }) },
      });
      // The line drops during the load (before 'loaded'), from serial_update_irq.
      const loaded = events.findIndex((e) => e.kind === Ev.MIGRATION && e.a === 2);
      const lowered = events.findIndex((e) => e.kind === Ev.DEV_IRQ && e.vm === 1 && e.a === 0);
      expect(lowered).toBeGreaterThan(-1);
      expect(lowered).toBeLessThan(loaded);
      expect(events.filter((e) => e.kind === Ev.BYTE_DELIVER && e.dev === TX)).toEqual([]);
      expect(v.findings.map((f) => f.signature)).toEqual(['starved-data:serial0:tx-driver']);
    },
  );

  it.each(['qemu-2.3'])('%s keeps the THRI (post_load calls serial_write_fcr, no IRQ update)', (b) => {
    const events: { kind: number; dev: number; a: number }[] = [];
    const v = judge(thriPending(b), {
      builds,
      sink: { event: (_at, kind, _vm, dev, a) => events.push({ kind, dev, a }) },
    });
    expect(v.findings).toEqual([]);
    const sent = String.fromCharCode(
      ...events.filter((e) => e.kind === Ev.BYTE_DELIVER && e.dev === TX).map((e) => e.a),
    );
    expect(sent).toBe('written before the migration');
  });
});

describe('serial_update_parameters per build (the serialSpeed revision)', () => {
  const charTime = (build: string, machine: string): number => {
    const s = validateSchedule(
      {
        format: 'migfuzz.schedule',
        version: 1,
        seed: 1,
        machine,
        src: { build, backends: { serial0: 'open' } },
        dst: { build, backends: { serial0: 'open' } },
        devices: { serial0: { kind: 'isa-serial', irq: 4 } },
        steps: [],
        horizon: MS,
      },
      builds,
    );
    const world = new World(s, { builds });
    world.run();
    const d = world.vms[0]!.devices[0]!;
    if (d.kind !== 'uart') throw new Error('not a UART');
    return d.s.charTransmitTimeNs;
  };

  // The guest programs divider 12, 8N1 at boot: 9600 baud, 10 bits a character.
  it.each([
    ['qemu-1.3', 'pc-1.3'],
    ['qemu-2.3', 'pc-1.3'],
    ['rhel-7.5', 'pc-i440fx-rhel7.5.0'],
  ])('%s: integer `(NANOSECONDS_PER_SECOND / speed) * frame_size`', (build, machine) => {
    expect(charTime(build, machine)).toBe(Math.floor(1e9 / 9600) * 10);
  });

  it('qemu-9.2: float speed, the float product truncated', () => {
    expect(charTime('qemu-9.2', 'pc-i440fx-9.2')).toBe(1041666);
  });
});
