import { describe, expect, it } from 'vitest';
import type { Bus } from '../../../src/model/bus.js';
import type { GuestIo } from '../../../src/model/guest/io.js';
import {
  makeUart8250,
  type Uart8250,
  uart8250Boot,
  uart8250Config,
  uart8250Interrupt,
  uart8250Pending,
  uart8250Write,
} from '../../../src/model/guest/serial8250.js';
import { Ier, Iir, Lcr, Lsr, Mcr, Reg } from '../../../src/model/uart16550/regs.js';
import { makeUart, type UartState } from '../../../src/model/uart16550/state.js';
import { UartTimer, uartRead, uartReceive, uartTimer, uartWrite } from '../../../src/model/uart16550/uart.js';

const DEV = 0;

type Access = ['r' | 'w', number, number];

/**
 * The driver against the real UART: the guest's register accesses go to the UART functions
 * and are logged; the UART's effects land in a recording Bus with an always-writable backend.
 */
class Rig implements GuestIo, Bus {
  s: UartState = makeUart(DEV);
  d: Uart8250 = makeUart8250(DEV);
  log: Access[] = [];
  irq = 0;
  sent: number[] = [];
  timers = new Map<number, number>();

  uartRead(dev: number, offset: number): number {
    expect(dev).toBe(DEV);
    const v = uartRead(this.s, this, offset);
    this.log.push(['r', offset, v]);
    return v;
  }
  uartWrite(dev: number, offset: number, value: number): void {
    expect(dev).toBe(DEV);
    this.log.push(['w', offset, value]);
    uartWrite(this.s, this, offset, value);
  }
  vserRead(): number {
    throw new Error('no virtio device');
  }
  vserWrite(): void {
    throw new Error('no virtio device');
  }
  vserMem(): never {
    throw new Error('no virtio device');
  }
  maskSource(): void {}
  emit(): void {}

  vmNow(): number {
    return 0;
  }
  setIrq(_dev: number, level: number): void {
    this.irq = level;
  }
  msixNotify(): void {
    throw new Error('no MSI-X');
  }
  timerMod(_dev: number, timer: number, expiryNs: number): void {
    if (expiryNs < 0) this.timers.delete(timer);
    else this.timers.set(timer, expiryNs);
  }
  timerExpiry(_dev: number, timer: number): number {
    return this.timers.get(timer) ?? -1;
  }
  chrWrite(_dev: number, _port: number, byte: number): number {
    this.sent.push(byte);
    return 1;
  }
  chrAddWatch(): void {}
  chrWatchPending(): boolean {
    return false;
  }
  chrRemoveWatch(): void {}
  chrAcceptInput(): void {}

  /** Accesses since the last call. */
  take(): Access[] {
    const l = this.log;
    this.log = [];
    return l;
  }
  booted(): this {
    uart8250Boot(this.d, this);
    this.take();
    return this;
  }
}

const writesTo = (log: Access[], reg: number): number[] =>
  log.filter(([op, r]) => op === 'w' && r === reg).map(([, , v]) => v);
const iirReads = (log: Access[]): number[] =>
  log.filter(([op, r]) => op === 'r' && r === Reg.IIR).map(([, , v]) => v);

describe('8250 driver: boot', () => {
  it('programs 9600 8N1, the FIFO, the modem lines, clears pending state, then enables RLSI|RDI', () => {
    const rig = new Rig();
    uart8250Boot(rig.d, rig);
    const log = rig.take();
    expect(log.map(([op, r, v]) => (op === 'w' ? [op, r, v] : [op, r]))).toEqual([
      ['w', Reg.LCR, Lcr.DLAB | 0x03],
      ['w', Reg.DLL, 12],
      ['w', Reg.DLM, 0],
      ['w', Reg.LCR, 0x03],
      ['w', Reg.FCR, 0x87],
      ['w', Reg.MCR, Mcr.DTR | Mcr.RTS | Mcr.OUT2],
      ['r', Reg.LSR],
      ['r', Reg.IIR],
      ['r', Reg.MSR],
      ['w', Reg.IER, Ier.RLSI | Ier.RDI],
    ]);
    expect(rig.d.ier).toBe(Ier.RLSI | Ier.RDI);
    expect(rig.s).toMatchObject({ divider: 12, lcr: 0x03, mcr: 0x0b, ier: 0x05, recvFifoItl: 8 });
    expect(rig.s.fcr & 0x01).toBe(1);
    expect(rig.irq).toBe(0);
  });
});

describe('8250 driver: transmit', () => {
  it('start_tx sets IER.THRI; the THRI interrupt fills the FIFO 16 at a time; stop_tx clears IER.THRI', () => {
    const rig = new Rig().booted();
    const data = Array.from({ length: 20 }, (_, i) => 0x41 + i);
    uart8250Write(rig.d, rig, Uint8Array.from(data));
    expect(rig.take()).toEqual([['w', Reg.IER, Ier.RLSI | Ier.RDI | Ier.THRI]]);
    expect(rig.irq).toBe(1); // THRE with THRI enabled
    expect(rig.sent).toEqual([]);

    uart8250Interrupt(rig.d, rig);
    const log = rig.take();
    expect(rig.sent).toEqual(data);
    // Two THRI passes: 16 bytes, then the last 4 and stop_tx.
    const firstIer = log.findIndex(([op, r]) => op === 'w' && r === Reg.IER);
    const thrBefore = log.slice(0, firstIer).filter(([op, r]) => op === 'w' && r === Reg.THR);
    expect(thrBefore).toHaveLength(20);
    const iirs = iirReads(log);
    expect(iirs.map((v) => v & 0x0f)).toEqual([Iir.THRI, Iir.THRI, Iir.NO_INT]);
    const thrIdx = log.flatMap(([op, r], i) => (op === 'w' && r === Reg.THR ? [i] : []));
    const secondIir = log.findIndex(([op, r], i) => op === 'r' && r === Reg.IIR && i > thrIdx[0]!);
    expect(thrIdx.filter((i) => i < secondIir)).toHaveLength(16);
    expect(writesTo(log, Reg.IER)).toEqual([Ier.RLSI | Ier.RDI]);
    // The handler's last access is the IIR read that says no interrupt.
    expect(log.at(-1)).toEqual(['r', Reg.IIR, Iir.FIFO_ENABLED | Iir.NO_INT]);
    expect(rig.d.ier & Ier.THRI).toBe(0);
    expect(rig.s.ier & Ier.THRI).toBe(0);
    expect(uart8250Pending(rig.d)).toBe(0);
    expect(rig.irq).toBe(0);
    expect(rig.s.lsr & (Lsr.THRE | Lsr.TEMT)).toBe(Lsr.THRE | Lsr.TEMT);
  });

  it('without a FIFO writes one byte per THRI pass', () => {
    const rig = new Rig().booted();
    uart8250Config(rig.d, rig, { fifo: false });
    expect(rig.take()).toEqual([['w', Reg.FCR, 0]]);
    uart8250Write(rig.d, rig, Uint8Array.from([1, 2, 3]));
    rig.take();
    uart8250Interrupt(rig.d, rig);
    const log = rig.take();
    expect(rig.sent).toEqual([1, 2, 3]);
    const ops = log
      .filter(([op, r]) => (op === 'r' && r === Reg.IIR) || (op === 'w' && r === Reg.THR))
      .map(([op, , v]) => (op === 'r' ? `IIR${v & 0x0f}` : `THR${v}`));
    expect(ops).toEqual(['IIR2', 'THR1', 'IIR2', 'THR2', 'IIR2', 'THR3', 'IIR1']);
    expect(writesTo(log, Reg.IER)).toEqual([Ier.RLSI | Ier.RDI]);
  });

  it('a write while transmitting appends to the queue without touching IER again', () => {
    const rig = new Rig().booted();
    uart8250Write(rig.d, rig, Uint8Array.from([1]));
    uart8250Write(rig.d, rig, Uint8Array.from([2]));
    expect(writesTo(rig.take(), Reg.IER)).toEqual([Ier.RLSI | Ier.RDI | Ier.THRI]);
    uart8250Interrupt(rig.d, rig);
    expect(rig.sent).toEqual([1, 2]);
  });
});

describe('8250 driver: receive', () => {
  it('reads every byte on RDI (trigger level reached), in order', () => {
    const rig = new Rig().booted();
    const data = [10, 20, 30, 40, 50, 60, 70, 80];
    for (const b of data) uartReceive(rig.s, rig, b);
    expect(rig.irq).toBe(1);
    expect(rig.s.iir & 0x0f).toBe(Iir.RDI);
    uart8250Interrupt(rig.d, rig);
    const log = rig.take();
    expect(rig.d.rx).toEqual(data);
    expect(log.filter(([op, r]) => op === 'r' && r === Reg.RBR).map(([, , v]) => v)).toEqual(data);
    expect(iirReads(log).map((v) => v & 0x0f)).toEqual([Iir.RDI, Iir.NO_INT]);
    expect(rig.s.lsr & Lsr.DR).toBe(0);
    expect(rig.irq).toBe(0);
  });

  it('reads the bytes below the trigger level on the character timeout (CTI)', () => {
    const rig = new Rig().booted();
    for (const b of [1, 2, 3]) uartReceive(rig.s, rig, b);
    expect(rig.irq).toBe(0); // below the trigger level of 8
    expect(rig.timers.has(UartTimer.FIFO_TIMEOUT)).toBe(true);
    rig.timers.delete(UartTimer.FIFO_TIMEOUT); // the machine consumes the timer as it fires
    uartTimer(rig.s, rig, UartTimer.FIFO_TIMEOUT);
    expect(rig.s.iir & 0x0f).toBe(Iir.CTI);
    expect(rig.irq).toBe(1);
    uart8250Interrupt(rig.d, rig);
    const log = rig.take();
    expect(rig.d.rx).toEqual([1, 2, 3]);
    expect(iirReads(log).map((v) => v & 0x0f)).toEqual([Iir.CTI, Iir.NO_INT]);
    expect(rig.s.timeoutIpending).toBe(0);
    expect(rig.irq).toBe(0);
  });

  it('serves receive and transmit in one interrupt until IIR says no interrupt', () => {
    const rig = new Rig().booted();
    uart8250Write(rig.d, rig, Uint8Array.from([7, 8]));
    for (const b of [1, 2, 3, 4, 5, 6, 7, 8, 9]) uartReceive(rig.s, rig, b);
    rig.take();
    uart8250Interrupt(rig.d, rig);
    const log = rig.take();
    expect(rig.d.rx).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(rig.sent).toEqual([7, 8]);
    const iirs = iirReads(log).map((v) => v & 0x0f);
    expect(iirs[0]).toBe(Iir.RDI);
    expect(iirs.at(-1)).toBe(Iir.NO_INT);
    expect(iirs.slice(0, -1).every((v) => v !== Iir.NO_INT)).toBe(true);
    expect(rig.irq).toBe(0);
  });
});

describe('8250 driver: the IIR loop', () => {
  /** Registers scripted by the test; IIR answers from a list, then repeats the last value. */
  class Scripted implements GuestIo {
    iir: number[];
    reads: number[] = [];
    constructor(iir: number[]) {
      this.iir = iir;
    }
    uartRead(_dev: number, offset: number): number {
      this.reads.push(offset);
      if (offset === Reg.IIR) return this.iir.length > 1 ? this.iir.shift()! : this.iir[0]!;
      if (offset === Reg.LSR) return Lsr.THRE | Lsr.TEMT;
      return 0;
    }
    uartWrite(): void {}
    vserRead(): number {
      return 0;
    }
    vserWrite(): void {}
    vserMem(): never {
      throw new Error('no virtio device');
    }
    maskSource(): void {}
    emit(): void {}
  }

  it('loops while IIR shows an interrupt and stops at the first NO_INT', () => {
    const io = new Scripted([0xc6, 0xc0, 0xc2, 0xc1, 0xc4]);
    uart8250Interrupt(makeUart8250(DEV), io);
    expect(io.reads.filter((r) => r === Reg.IIR)).toHaveLength(4);
    expect(io.iir).toEqual([0xc4]);
  });

  it('reads nothing else when IIR says no interrupt at once', () => {
    const io = new Scripted([0x01]);
    uart8250Interrupt(makeUart8250(DEV), io);
    expect(io.reads).toEqual([Reg.IIR]);
  });

  it('gives up after PASS_LIMIT (512) passes of an interrupt that never clears', () => {
    const io = new Scripted([0xc0]);
    uart8250Interrupt(makeUart8250(DEV), io);
    expect(io.reads.filter((r) => r === Reg.IIR)).toHaveLength(512);
  });
});
