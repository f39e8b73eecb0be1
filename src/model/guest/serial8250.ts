import { Fcr, Ier, Iir, Lcr, Lsr, Mcr, Reg } from '../uart16550/regs.js';
import { type GuestIo, type RxLog, rxOwn } from './io.js';

/**
 * The guest's 8250 driver (Linux drivers/tty/serial/8250): programs FIFO and IER, transmits
 * from a software buffer driven by THRI, reads on RDI/CTI, and loops on IIR until no interrupt
 * is pending (the line is edge-triggered: a missed edge is only recovered by that loop).
 */
export interface Uart8250 extends RxLog {
  dev: number;
  /** The driver's shadow of IER (up->ier). */
  ier: number;
  fifo: boolean;
  /** Bytes the tty layer holds for transmission (the circ buffer), oldest first. */
  tx: number[];
  txHead: number;
  /** Bytes the driver read from RBR, in order (RxLog: rx, rxLength). */
  /** serial8250_startup ran (the port was opened); an unopened port is left alone. */
  open: boolean;
  /** The port is opened at boot (a console or getty); otherwise at its first use. */
  openAtBoot: boolean;
}

/** Linux's 16550A defaults: 8N1, FIFO with an 8-byte trigger, RLSI|RDI. */
const BOOT_FCR = Fcr.FE | Fcr.RFR | Fcr.XFR | 0x80;
const BOOT_IER = Ier.RLSI | Ier.RDI;
/** Bytes written per THRE interrupt (tx_loadsz). */
const FIFO_LOAD = 16;
/** serial8250_rx_chars reads at most this many per call. */
const RX_BUDGET = 256;
/** serial8250_interrupt's PASS_LIMIT. */
const PASS_LIMIT = 512;
/** Divisor latch for 9600 baud at 115200 baud base. */
const BOOT_DIVIDER = 12;

export function makeUart8250(dev: number, openAtBoot = true): Uart8250 {
  return { dev, ier: 0, fifo: true, tx: [], txHead: 0, rx: [], rxLength: 0, open: false, openAtBoot };
}

export function cloneUart8250(d: Uart8250): Uart8250 {
  return { ...d, tx: d.tx.slice(d.txHead), txHead: 0 };
}

/** serial8250_startup + set_termios: line parameters, FIFO, modem control, interrupts. */
export function uart8250Boot(d: Uart8250, io: GuestIo): void {
  d.open = true;
  io.uartWrite(d.dev, Reg.LCR, Lcr.DLAB | 0x03);
  io.uartWrite(d.dev, Reg.DLL, BOOT_DIVIDER & 0xff);
  io.uartWrite(d.dev, Reg.DLM, BOOT_DIVIDER >> 8);
  io.uartWrite(d.dev, Reg.LCR, 0x03);
  io.uartWrite(d.dev, Reg.FCR, BOOT_FCR);
  io.uartWrite(d.dev, Reg.MCR, Mcr.DTR | Mcr.RTS | Mcr.OUT2);
  // Clear anything pending before interrupts are enabled.
  io.uartRead(d.dev, Reg.LSR);
  io.uartRead(d.dev, Reg.IIR);
  io.uartRead(d.dev, Reg.MSR);
  setIer(d, io, BOOT_IER);
}

function setIer(d: Uart8250, io: GuestIo, ier: number): void {
  d.ier = ier;
  io.uartWrite(d.dev, Reg.IER, ier);
}

export interface UartConfig {
  fifo?: boolean;
  trigger?: 1 | 4 | 8 | 14;
  ier?: number;
  lcr?: number;
  divider?: number;
}

const TRIGGER_BITS: Record<number, number> = { 1: 0x00, 4: 0x40, 8: 0x80, 14: 0xc0 };

/** The `guest.uart.config` step: reprogram what the step names, leave the rest. */
export function uart8250Config(d: Uart8250, io: GuestIo, c: UartConfig): void {
  if (c.divider !== undefined || c.lcr !== undefined) {
    const lcr = (c.lcr ?? 0x03) & ~Lcr.DLAB;
    if (c.divider !== undefined) {
      io.uartWrite(d.dev, Reg.LCR, lcr | Lcr.DLAB);
      io.uartWrite(d.dev, Reg.DLL, c.divider & 0xff);
      io.uartWrite(d.dev, Reg.DLM, c.divider >> 8);
    }
    io.uartWrite(d.dev, Reg.LCR, lcr);
  }
  if (c.fifo !== undefined || c.trigger !== undefined) {
    d.fifo = c.fifo ?? d.fifo;
    const fcr = d.fifo ? Fcr.FE | TRIGGER_BITS[c.trigger ?? 8]! : 0;
    io.uartWrite(d.dev, Reg.FCR, fcr);
  }
  if (c.ier !== undefined) setIer(d, io, c.ier);
}

/** The tty layer queues bytes and starts transmission (serial8250_start_tx). */
export function uart8250Write(d: Uart8250, io: GuestIo, data: Uint8Array): void {
  for (const b of data) d.tx.push(b);
  if (!(d.ier & Ier.THRI)) setIer(d, io, d.ier | Ier.THRI);
}

/** serial8250_interrupt → serial8250_handle_irq, until IIR says no interrupt. */
export function uart8250Interrupt(d: Uart8250, io: GuestIo): void {
  for (let pass = 0; pass < PASS_LIMIT; pass++) {
    const iir = io.uartRead(d.dev, Reg.IIR);
    if (iir & Iir.NO_INT) return;
    let lsr = io.uartRead(d.dev, Reg.LSR);
    if (lsr & (Lsr.DR | Lsr.BI)) lsr = rxChars(d, io, lsr);
    io.uartRead(d.dev, Reg.MSR);
    if (lsr & Lsr.THRE && d.ier & Ier.THRI) txChars(d, io);
  }
}

function rxChars(d: Uart8250, io: GuestIo, lsr: number): number {
  const rx = rxOwn(d);
  for (let n = 0; n < RX_BUDGET && lsr & (Lsr.DR | Lsr.BI); n++) {
    rx.push(io.uartRead(d.dev, Reg.RBR));
    d.rxLength++;
    lsr = io.uartRead(d.dev, Reg.LSR);
  }
  return lsr;
}

function txChars(d: Uart8250, io: GuestIo): void {
  for (let n = d.fifo ? FIFO_LOAD : 1; n > 0 && d.txHead < d.tx.length; n--) {
    io.uartWrite(d.dev, Reg.THR, d.tx[d.txHead++]!);
  }
  if (d.txHead === d.tx.length) {
    d.tx.length = 0;
    d.txHead = 0;
    setIer(d, io, d.ier & ~Ier.THRI); // __stop_tx
  }
}

/** Bytes the driver still holds for transmission. */
export const uart8250Pending = (d: Uart8250): number => d.tx.length - d.txHead;
