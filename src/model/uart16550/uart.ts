/**
 * 16550A behaviour (QEMU 9.2.4 hw/char/serial.c) as functions over a `UartState` record.
 * Effects on the rest of the VM (the IRQ line, vm_clock timers, the chardev backend) go
 * through the Bus; byte custody is reported as BYTE_ACCEPT / BYTE_DELIVER / BYTE_DISCARD
 * events so oracles can account for every byte.
 *
 * Position of a discarded byte (BYTE_DISCARD b): counted from the oldest byte the device
 * still holds in that stream, -1 for the newest. Transmit order is TSR (while tsrRetry > 0),
 * then THR (non-FIFO) or the xmit FIFO; receive order is RBR (non-FIFO) or the recv FIFO.
 */
import { assert } from '../assert.js';
import type { Bus } from '../bus.js';
import { Ev, streamId } from '../events.js';
import { Fcr, Ier, Iir, Lcr, Lsr, MAX_XMIT_RETRY, Mcr, Msr, UART_FIFO_LENGTH } from './regs.js';
import {
  type Fifo8,
  fifoIsEmpty,
  fifoIsFull,
  fifoPeek,
  fifoPop,
  fifoPush,
  fifoReset,
  RESET_CHAR_TRANSMIT_TIME_NS,
  type UartState,
} from './state.js';
import { serialXmit1x, serialXmitWatch, writeFcr1x, writeIer1x, writeThr1x } from './uart-1x.js';

const NS_PER_SECOND = 1_000_000_000;
/** The character timeout fires after 4 character times without a read (16550A datasheet). */
const TIMEOUT_CHARS = 4;
/**
 * The UART's vm_clock timers (SerialState's QEMUTimer fields): fifo_timeout_timer,
 * modem_status_poll, and the 1.x transmit_timer. The machine owns them (Bus.timerMod).
 */
export const UartTimer = { FIFO_TIMEOUT: 0, MODEM_POLL: 1, TRANSMIT: 2 } as const;
export type UartTimer = (typeof UartTimer)[keyof typeof UartTimer];

export const txStream = (s: UartState): number => streamId(s.dev, 0, false);
export const rxStream = (s: UartState): number => streamId(s.dev, 0, true);
export const fifoMode = (s: UartState): boolean => (s.fcr & Fcr.FE) !== 0;
/** The 1.x hw/serial.c (uart-1x.ts) rather than today's. */
const v1 = (s: UartState): boolean => s.generation === 'transmit-timer';
/** IER and FCR written by serial_ioport_write as before 2.3 (uart-1x.ts): 1.x and 1.5-2.2. */
const ioportIerFcr = (s: UartState): boolean => s.generation !== 'write-watch';

// ---------------------------------------------------------------------------------------------
// Interrupts and line parameters

/** serial_update_irq: recompute IIR (first match wins) and drive the line as a level. */
export function uartUpdateIrq(s: UartState, bus: Bus): void {
  let id: number = Iir.NO_INT;
  if (s.ier & Ier.RLSI && s.lsr & Lsr.INT_ANY) {
    id = Iir.RLSI;
  } else if (s.ier & Ier.RDI && s.timeoutIpending) {
    // IER.RDI masks the character timeout too: not in the datasheet, observed on hardware.
    id = Iir.CTI;
  } else if (s.ier & Ier.RDI && s.lsr & Lsr.DR && (!fifoMode(s) || s.recvFifo.num >= s.recvFifoItl)) {
    id = Iir.RDI;
  } else if (s.ier & Ier.THRI && s.thrIpending) {
    id = Iir.THRI;
  } else if (s.ier & Ier.MSI && s.msr & Msr.ANY_DELTA) {
    id = Iir.MSI;
  }
  // Keeps the FIFO bits 0xC0; OUT2 does not gate the line in QEMU.
  s.iir = id | (s.iir & 0xf0);
  bus.setIrq(s.dev, id !== Iir.NO_INT ? 1 : 0);
}

/**
 * serial_update_parameters: ns per character = frame bits / speed, as the build computes it.
 * 'integer': `speed = baudbase / divider` and `(NANOSECONDS_PER_SECOND / speed) * frame_size`
 * in integer math; a divider of 0 (or, from the CVE-2016-8669 fix, above baudbase: a u16
 * never is with baudbase 115200) keeps the previous value. 'float' (9.2): `float speed`
 * (3500 for a divider of 0), the quotient and product in float, truncated to the u64.
 * Math.fround of a double result is the float32 result (a double holds float32's products
 * and quotients exactly enough to round once).
 */
export function updateParameters(s: UartState): void {
  let frameBits = 1 + 5 + (s.lcr & Lcr.WLS) + (s.lcr & Lcr.NSTB ? 2 : 1);
  if (s.lcr & Lcr.PEN) frameBits++;
  if (s.speedMath === 'float') {
    let speed = s.divider ? Math.fround(Math.trunc(s.baudbase / s.divider)) : 3500;
    if (speed <= 0) speed = 3500;
    s.charTransmitTimeNs = Math.trunc(Math.fround(Math.fround(NS_PER_SECOND / speed) * frameBits));
    return;
  }
  if (s.divider === 0 || s.divider > s.baudbase) return;
  const speed = Math.trunc(s.baudbase / s.divider);
  s.charTransmitTimeNs = Math.trunc(NS_PER_SECOND / speed) * frameBits;
}

/**
 * serial_update_msl with a backend that has no TIOCM ioctl (all of ours): the poll timer is
 * deleted and polling is reported unsupported.
 */
export function updateMsl(s: UartState, bus: Bus): void {
  pollTimerDel(s, bus);
  s.pollMsl = -1;
}

/** timer_del of a pending timer (a timer that is not pending is left alone, as before). */
function timerDel(s: UartState, bus: Bus, timer: UartTimer): void {
  if (bus.timerExpiry(s.dev, timer) < 0) return;
  bus.timerMod(s.dev, timer, -1);
}

export function pollTimerDel(s: UartState, bus: Bus): void {
  timerDel(s, bus, UartTimer.MODEM_POLL);
}

export function fifoTimeoutDel(s: UartState, bus: Bus): void {
  timerDel(s, bus, UartTimer.FIFO_TIMEOUT);
}

function fifoTimeoutArm(s: UartState, bus: Bus): void {
  bus.timerMod(s.dev, UartTimer.FIFO_TIMEOUT, bus.vmNow() + TIMEOUT_CHARS * s.charTransmitTimeNs);
}

/** serial_write_fcr: store the sticky bits, set the IIR FIFO bits and the trigger level. */
export function writeFcr(s: UartState, val: number): void {
  s.fcr = val;
  if (val & Fcr.FE) {
    s.iir |= Iir.FIFO_ENABLED;
    const itl = val & Fcr.ITL_MASK;
    s.recvFifoItl = itl === Fcr.ITL_1 ? 1 : itl === Fcr.ITL_4 ? 4 : itl === Fcr.ITL_8 ? 8 : 14;
  } else {
    s.iir &= ~Iir.FIFO_ENABLED & 0xff;
  }
}

// ---------------------------------------------------------------------------------------------
// Byte custody on resets

/** Everything the transmit side holds is dropped, oldest first (each then at position 0). */
function dropTx(s: UartState, bus: Bus): void {
  const tx = txStream(s);
  if (s.tsrRetry > 0) bus.emit(Ev.BYTE_DISCARD, tx, s.tsr, 0);
  dropTxHolding(s, bus, 0);
}

/** THR (non-FIFO, while THRE is clear) or the xmit FIFO is dropped; TSR is kept. */
function dropTxHolding(s: UartState, bus: Bus, pos: number): void {
  const tx = txStream(s);
  if (fifoMode(s)) {
    const f = s.xmitFifo;
    for (let i = 0; i < f.num; i++) bus.emit(Ev.BYTE_DISCARD, tx, fifoPeek(f, i), pos);
  } else if (!(s.lsr & Lsr.THRE)) {
    bus.emit(Ev.BYTE_DISCARD, tx, s.thr, pos);
  }
}

/** The recv FIFO (FIFO mode) or the unread RBR (non-FIFO, DR set) is dropped. */
function dropRx(s: UartState, bus: Bus): void {
  const rx = rxStream(s);
  if (fifoMode(s)) {
    const f = s.recvFifo;
    for (let i = 0; i < f.num; i++) bus.emit(Ev.BYTE_DISCARD, rx, fifoPeek(f, i), 0);
  } else if (s.lsr & Lsr.DR) {
    bus.emit(Ev.BYTE_DISCARD, rx, s.rbr, 0);
  }
}

// ---------------------------------------------------------------------------------------------
// Reset

/**
 * serial_reset. `fcr` and `recvFifoItl` survive (QEMU does not reset them, though IIR loses
 * its FIFO bits); the chardev watch is removed (g_source_remove), so it never fires.
 */
export function uartReset(s: UartState, bus: Bus): void {
  dropTx(s, bus);
  dropRx(s, bus);
  bus.chrRemoveWatch(s.dev, 0);
  s.rbr = 0;
  s.ier = 0;
  s.iir = Iir.NO_INT;
  s.lcr = 0;
  s.lsr = Lsr.TEMT | Lsr.THRE;
  s.msr = Msr.DCD | Msr.DSR | Msr.CTS;
  s.divider = 0x0c;
  s.mcr = Mcr.OUT2;
  s.scr = 0;
  s.tsrRetry = 0;
  // QEMU's integer (1e9 / 9600) * 10 = 1041660, not serial_update_parameters' 1041666.
  s.charTransmitTimeNs = RESET_CHAR_TRANSMIT_TIME_NS;
  s.pollMsl = 0;
  s.timeoutIpending = 0;
  fifoTimeoutDel(s, bus);
  pollTimerDel(s, bus);
  fifoReset(s.recvFifo);
  fifoReset(s.xmitFifo);
  s.thrIpending = 0;
  s.lastBreakEnable = 0;
  bus.setIrq(s.dev, 0);
  updateMsl(s, bus);
  s.msr &= ~Msr.ANY_DELTA & 0xff;
}

// ---------------------------------------------------------------------------------------------
// Transmit

/**
 * serial_xmit: move bytes THR/FIFO → TSR → backend until THRE, synchronously (not paced by
 * baud rate). An EAGAIN (rc 0) waits for writability up to MAX_XMIT_RETRY times with TEMT
 * still clear; the next failure drops the byte.
 */
export function serialXmit(s: UartState, bus: Bus): void {
  if (s.generation === 'watch-ioport') return serialXmitWatch(s, bus);
  do {
    assert(!(s.lsr & Lsr.TEMT), 'serial_xmit: LSR.TEMT set on entry');
    if (s.tsrRetry === 0) {
      assert(!(s.lsr & Lsr.THRE), 'serial_xmit: LSR.THRE set with nothing in TSR');
      if (fifoMode(s)) {
        assert(!fifoIsEmpty(s.xmitFifo), 'serial_xmit: xmit FIFO empty while THRE clear');
        s.tsr = fifoPop(s.xmitFifo);
        if (fifoIsEmpty(s.xmitFifo)) s.lsr |= Lsr.THRE;
      } else {
        s.tsr = s.thr;
        s.lsr |= Lsr.THRE;
      }
      // The THRE interrupt is raised when the last byte enters TSR, before the backend write.
      if (s.lsr & Lsr.THRE && !s.thrIpending) {
        s.thrIpending = 1;
        uartUpdateIrq(s, bus);
      }
    }

    if (s.mcr & Mcr.LOOP) {
      // Loopback: the byte leaves the transmitter and is received as if from the line.
      bus.emit(Ev.BYTE_DELIVER, txStream(s), s.tsr, 0);
      uartReceive(s, bus, s.tsr);
    } else {
      // The backend emits BYTE_DELIVER itself when it takes the byte (rc 1).
      const rc = bus.chrWrite(s.dev, 0, s.tsr);
      if (rc === 0) {
        if (s.tsrRetry < MAX_XMIT_RETRY) {
          assert(!bus.chrWatchPending(s.dev, 0), 'serial_xmit: watch already registered');
          bus.chrAddWatch(s.dev, 0);
          s.tsrRetry++;
          return;
        }
        // Retries exhausted: the byte in TSR is lost.
        bus.emit(Ev.BYTE_DISCARD, txStream(s), s.tsr, 0);
      }
    }
    s.tsrRetry = 0;
    // Only in FIFO mode can another byte be waiting.
  } while (!(s.lsr & Lsr.THRE));

  s.lsr |= Lsr.TEMT;
}

/**
 * serial_watch_cb: the backend became writable (or hung up); retry the byte in TSR. The
 * backend calls it only for a watch still registered (one removed by serial_reset is gone).
 */
export function uartWatch(s: UartState, bus: Bus): void {
  serialXmit(s, bus);
}

// ---------------------------------------------------------------------------------------------
// Receive

/** serial_can_receive: how many bytes the backend may push now. */
export function uartCanReceive(s: UartState): number {
  if (fifoMode(s)) {
    const num = s.recvFifo.num;
    if (num >= UART_FIFO_LENGTH) return 0;
    // Up to the trigger level, then one at a time (and 0 exactly at the level, as QEMU).
    return num <= s.recvFifoItl ? s.recvFifoItl - num : 1;
  }
  return s.lsr & Lsr.DR ? 0 : 1;
}

/** serial_receive1 for one byte (from the backend, or the transmitter in loopback). */
export function uartReceive(s: UartState, bus: Bus, byte: number): void {
  const rx = rxStream(s);
  byte &= 0xff;
  bus.emit(Ev.BYTE_ACCEPT, rx, byte, 0);
  if (fifoMode(s)) {
    // recv_fifo_put: receive overruns do not overwrite the FIFO; the new byte is lost.
    if (fifoIsFull(s.recvFifo)) {
      s.lsr |= Lsr.OE;
      bus.emit(Ev.BYTE_DISCARD, rx, byte, -1);
    } else {
      fifoPush(s.recvFifo, byte);
    }
    s.lsr |= Lsr.DR;
    fifoTimeoutArm(s, bus);
  } else {
    if (s.lsr & Lsr.DR) {
      // Overrun: the unread RBR is overwritten.
      s.lsr |= Lsr.OE;
      bus.emit(Ev.BYTE_DISCARD, rx, s.rbr, 0);
    }
    s.rbr = byte;
    s.lsr |= Lsr.DR;
  }
  uartUpdateIrq(s, bus);
}

/** A vm_clock timer of the UART fired (the machine already consumed it). */
export function uartTimer(s: UartState, bus: Bus, which: UartTimer): void {
  if (which === UartTimer.FIFO_TIMEOUT) {
    // fifo_timeout_int: bytes sat unread for 4 character times.
    if (!fifoIsEmpty(s.recvFifo)) {
      s.timeoutIpending = 1;
      uartUpdateIrq(s, bus);
    }
  } else if (which === UartTimer.TRANSMIT) {
    serialXmit1x(s, bus);
  } else {
    // modem_status_poll runs serial_update_msl.
    updateMsl(s, bus);
  }
}

// ---------------------------------------------------------------------------------------------
// Register access

/** serial_ioport_read. */
export function uartRead(s: UartState, bus: Bus, offset: number): number {
  switch (offset & 7) {
    case 0:
      return s.lcr & Lcr.DLAB ? s.divider & 0xff : readRbr(s, bus);
    case 1:
      return s.lcr & Lcr.DLAB ? (s.divider >> 8) & 0xff : s.ier;
    case 2: {
      const ret = s.iir;
      // Reading IIR while it shows THRI clears that interrupt.
      if ((ret & Iir.ID_MASK) === Iir.THRI) {
        s.thrIpending = 0;
        uartUpdateIrq(s, bus);
      }
      return ret;
    }
    case 3:
      return s.lcr;
    case 4:
      return s.mcr;
    case 5: {
      const ret = s.lsr;
      if (s.lsr & (Lsr.BI | Lsr.OE)) {
        s.lsr &= ~(Lsr.BI | Lsr.OE) & 0xff;
        uartUpdateIrq(s, bus);
      }
      return ret;
    }
    case 6:
      return readMsr(s, bus);
    default:
      return s.scr;
  }
}

function readRbr(s: UartState, bus: Bus): number {
  let ret: number;
  if (fifoMode(s)) {
    if (fifoIsEmpty(s.recvFifo)) {
      ret = 0;
      // DR without bytes: only a migration that lost the FIFO leaves this (seed bug B).
      if (s.lsr & Lsr.DR) bus.emit(Ev.PHANTOM_READ, s.dev, 0, 0);
    } else {
      ret = fifoPop(s.recvFifo);
      bus.emit(Ev.BYTE_DELIVER, rxStream(s), ret, 0);
    }
    if (fifoIsEmpty(s.recvFifo)) {
      s.lsr &= ~(Lsr.DR | Lsr.BI) & 0xff;
    } else {
      fifoTimeoutArm(s, bus);
    }
    s.timeoutIpending = 0;
  } else {
    ret = s.rbr;
    if (s.lsr & Lsr.DR) bus.emit(Ev.BYTE_DELIVER, rxStream(s), ret, 0);
    s.lsr &= ~(Lsr.DR | Lsr.BI) & 0xff;
  }
  uartUpdateIrq(s, bus);
  // In loopback the line is disconnected: the backend may not push.
  if (!(s.mcr & Mcr.LOOP)) bus.chrAcceptInput(s.dev, 0);
  return ret;
}

function readMsr(s: UartState, bus: Bus): number {
  if (s.mcr & Mcr.LOOP) {
    // The modem outputs are wired to the inputs: OUT2→DCD, OUT1→RI, RTS→CTS, DTR→DSR.
    return ((s.mcr & 0x0c) << 4) | ((s.mcr & Mcr.RTS) << 3) | ((s.mcr & Mcr.DTR) << 5);
  }
  if (s.pollMsl >= 0) updateMsl(s, bus);
  const ret = s.msr;
  if (s.msr & Msr.ANY_DELTA) {
    s.msr &= 0xf0;
    uartUpdateIrq(s, bus);
  }
  return ret;
}

/** serial_ioport_write. */
export function uartWrite(s: UartState, bus: Bus, offset: number, value: number): void {
  const val = value & 0xff;
  switch (offset & 7) {
    case 0:
      if (s.lcr & Lcr.DLAB) {
        s.divider = (s.divider & 0xff00) | val;
        updateParameters(s);
      } else {
        writeThr(s, bus, val);
      }
      return;
    case 1:
      if (s.lcr & Lcr.DLAB) {
        s.divider = (s.divider & 0x00ff) | (val << 8);
        updateParameters(s);
      } else {
        writeIer(s, bus, val);
      }
      return;
    case 2:
      writeFcrReg(s, bus, val);
      return;
    case 3:
      s.lcr = val;
      updateParameters(s);
      // The break ioctl goes to the backend only when LCR.BREAK toggles; ours ignore it.
      s.lastBreakEnable = val & Lcr.BREAK ? 1 : 0;
      return;
    case 4:
      writeMcr(s, bus, val);
      return;
    case 5:
    case 6:
      return;
    default:
      s.scr = val;
  }
}

function writeThr(s: UartState, bus: Bus, val: number): void {
  if (v1(s)) return writeThr1x(s, bus, val);
  const tx = txStream(s);
  bus.emit(Ev.BYTE_ACCEPT, tx, val, 0);
  // A byte still waiting in TSR is older than anything in THR or the FIFO.
  const holdPos = s.tsrRetry > 0 ? 1 : 0;
  if (fifoMode(s)) {
    // Transmit overruns overwrite: the oldest FIFO byte makes room.
    if (fifoIsFull(s.xmitFifo)) bus.emit(Ev.BYTE_DISCARD, tx, fifoPop(s.xmitFifo), holdPos);
    fifoPush(s.xmitFifo, val);
  } else if (!(s.lsr & Lsr.THRE)) {
    // THR still held (TSR waiting for the backend): the new byte overwrites it.
    bus.emit(Ev.BYTE_DISCARD, tx, s.thr, holdPos);
  }
  s.thr = val;
  s.thrIpending = 0;
  s.lsr &= ~(Lsr.THRE | Lsr.TEMT) & 0xff;
  uartUpdateIrq(s, bus);
  if (s.tsrRetry === 0) serialXmit(s, bus);
}

function writeIer(s: UartState, bus: Bus, val: number): void {
  if (ioportIerFcr(s)) return writeIer1x(s, bus, val);
  const changed = (s.ier ^ val) & Ier.MASK;
  s.ier = val & Ier.MASK;
  if (changed & Ier.MSI && s.pollMsl >= 0) {
    if (s.ier & Ier.MSI) {
      s.pollMsl = 1;
      updateMsl(s, bus);
    } else {
      pollTimerDel(s, bus);
      s.pollMsl = 0;
    }
  }
  // THRE is resampled on a change of IER.THRI only (Bochs does it on the rising edge and
  // Windows relies on it); with THRI off thr_ipending is 0 so it is not migrated.
  if (changed & Ier.THRI) {
    s.thrIpending = s.ier & Ier.THRI && s.lsr & Lsr.THRE ? 1 : 0;
  }
  if (changed) uartUpdateIrq(s, bus);
}

function writeFcrReg(s: UartState, bus: Bus, val: number): void {
  if (ioportIerFcr(s)) return writeFcr1x(s, bus, val);
  // A change of FIFO enable flushes both FIFOs.
  if ((val ^ s.fcr) & Fcr.FE) val |= Fcr.XFR | Fcr.RFR;
  if (val & Fcr.RFR) {
    dropRx(s, bus);
    s.lsr &= ~(Lsr.DR | Lsr.BI) & 0xff;
    fifoTimeoutDel(s, bus);
    s.timeoutIpending = 0;
    fifoReset(s.recvFifo);
  }
  if (val & Fcr.XFR) {
    // TSR keeps its byte (and its retries); THR/the FIFO are flushed.
    dropTxHolding(s, bus, s.tsrRetry > 0 ? 1 : 0);
    s.lsr |= Lsr.THRE;
    s.thrIpending = 1;
    fifoReset(s.xmitFifo);
  }
  writeFcr(s, val & Fcr.STICKY);
  uartUpdateIrq(s, bus);
}

function writeMcr(s: UartState, bus: Bus, val: number): void {
  const oldMcr = s.mcr;
  s.mcr = val & Mcr.MASK;
  if (val & Mcr.LOOP) return;
  if (s.pollMsl >= 0 && oldMcr !== s.mcr) {
    // serial_update_tiocm is a no-op without TIOCM; re-poll one character time later.
    bus.timerMod(s.dev, UartTimer.MODEM_POLL, bus.vmNow() + s.charTransmitTimeNs);
  }
}

// ---------------------------------------------------------------------------------------------
// Invariants

/** The first broken invariant of a UART at rest (e.g. after a migration load), or null. */
export function uartCheckInvariants(s: UartState): string | null {
  const temt = (s.lsr & Lsr.TEMT) !== 0;
  if (s.tsrRetry > 0 && temt) return `tsr_retry=${s.tsrRetry} with LSR.TEMT set (tsr empty)`;
  if (s.tsrRetry === 0 && !temt) return 'LSR.TEMT clear with tsr_retry=0 (tsr not empty)';
  if (s.tsrRetry > MAX_XMIT_RETRY) return `tsr_retry=${s.tsrRetry} above ${MAX_XMIT_RETRY}`;
  const fifoErr = checkFifo('recv_fifo', s.recvFifo) ?? checkFifo('xmit_fifo', s.xmitFifo);
  if (fifoErr !== null) return fifoErr;
  const itl = s.recvFifoItl;
  if (itl !== 1 && itl !== 4 && itl !== 8 && itl !== 14) return `recv_fifo_itl=${itl} not 1/4/8/14`;
  return null;
}

function checkFifo(name: string, f: Fifo8): string | null {
  if (!Number.isInteger(f.num) || f.num < 0 || f.num > UART_FIFO_LENGTH) {
    return `${name}.num=${f.num} outside 0..${UART_FIFO_LENGTH}`;
  }
  if (!Number.isInteger(f.head) || f.head < 0 || f.head >= UART_FIFO_LENGTH) {
    return `${name}.head=${f.head} outside 0..${UART_FIFO_LENGTH - 1}`;
  }
  if (f.data.length !== UART_FIFO_LENGTH) return `${name} capacity ${f.data.length} not ${UART_FIFO_LENGTH}`;
  return null;
}

/** A loaded state the device code mishandles: what QEMU does with it, named. */
export interface LoadHazard {
  key: string;
  message: string;
}

/**
 * A UART state that QEMU's loader accepts (vmstate_fifo8 checks nothing; serial_post_load
 * checks only tsr_retry against TEMT) and its device code then mishandles, with the access or
 * assert it runs into (../realqemu: QEMU 7.2 crashes or aborts on each FIFO case). Only FIFO
 * mode touches the FIFOs; enabling it later resets them (fifo8_reset).
 */
export function uartLoadHazard(s: UartState): LoadHazard | null {
  if (!fifoMode(s)) return null;
  const fifos = [
    ['recv_fifo', s.recvFifo, 'the next RBR read (serial_ioport_read)'],
    ['xmit_fifo', s.xmitFifo, 'the next transmit (serial_xmit)'],
  ] as const;
  for (const [name, f, when] of fifos) {
    if (f.head >= UART_FIFO_LENGTH) {
      return {
        key: `${name.replace('_', '-')}-head`,
        message: `${name}.head=${f.head} lies outside its ${UART_FIFO_LENGTH}-byte buffer: fifo8_pop reads data[head] out of bounds at ${when}`,
      };
    }
  }
  if (s.xmitFifo.num > UART_FIFO_LENGTH) {
    return {
      key: 'xmit-fifo-num',
      message: `xmit_fifo.num=${s.xmitFifo.num} above its capacity ${UART_FIFO_LENGTH}: the next THR write fails fifo8_push's assert(fifo->num < fifo->capacity)`,
    };
  }
  if (s.recvFifo.num > UART_FIFO_LENGTH) {
    return {
      key: 'recv-fifo-num',
      message: `recv_fifo.num=${s.recvFifo.num} above its capacity ${UART_FIFO_LENGTH}: fifo8_pop reads the buffer round and round and LSR.DR never clears (an interrupt storm); a received byte fails fifo8_push's assert(fifo->num < fifo->capacity)`,
    };
  }
  // The watch re-added by post_load sends TSR, then takes the next byte from the FIFO.
  if (s.tsrRetry > 0 && !(s.lsr & Lsr.THRE) && fifoIsEmpty(s.xmitFifo)) {
    return {
      key: 'xmit-fifo-empty',
      message: `THRE clear with an empty transmit FIFO (tsr_retry=${s.tsrRetry}): serial_xmit fails assert(!fifo8_is_empty(&s->xmit_fifo)) once TSR is sent`,
    };
  }
  return null;
}
