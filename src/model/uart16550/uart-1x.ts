/**
 * The 16550 of QEMU 1.x (hw/serial.c up to 1.4, before the G_IO_OUT watch rewrite): the
 * parts that differ from today's code in uart.ts, which dispatches here for a UART whose
 * generation is 'transmit-timer'. Receive, reads, the interrupt priorities and the FIFO
 * timeout are the same in both and stay in uart.ts. QEMU 1.5 to 2.2 ('watch-ioport') kept
 * the IER and FCR writes below and had a serial_xmit of its own (serialXmitWatch).
 *
 * - serial_xmit sends the oldest byte on every THR write; bytes left in the FIFO are paced
 *   by a vm_clock transmit_timer, one character time apart.
 * - A write the backend refuses is retried only while 0 < tsr_retry <= MAX_XMIT_RETRY, and
 *   nothing ever makes tsr_retry positive (fixed by "serial: fix retry logic", f702e62a,
 *   1.5): the byte is dropped at once, and tsr_retry becomes -1 when the backend has no
 *   modem lines (poll_msl < 0). TEMT is set again at once: TSR never stays full.
 * - The THRE interrupt is raised after the write, and resampled on every IER write (no
 *   rising-edge rule yet).
 * - FCR writes return early when the value equals fcr; RFR leaves LSR.DR alone and XFR leaves
 *   THRE alone; serial_post_load runs this full write (serial_ioport_write(s, 2,
 *   fcr_vmstate)), serial_update_irq included, in the middle of the load.
 * - The FIFOs (SerialFIFO) are not migrated; a THR write into a full xmit FIFO overwrites
 *   the slot the next read takes (head == tail): the newest byte goes out first.
 */
import type { Bus } from '../bus.js';
import { Ev } from '../events.js';
import { Fcr, Ier, Lsr, MAX_XMIT_RETRY, Mcr } from './regs.js';
import { fifoIsEmpty, fifoIsFull, fifoPeek, fifoPop, fifoPush, fifoReset, type UartState } from './state.js';
import {
  fifoMode,
  fifoTimeoutDel,
  pollTimerDel,
  rxStream,
  txStream,
  UartTimer,
  uartReceive,
  uartUpdateIrq,
  updateMsl,
  writeFcr,
} from './uart.js';

function transmitTimerMod(s: UartState, bus: Bus, expiryNs: number): void {
  bus.timerMod(s.dev, UartTimer.TRANSMIT, expiryNs);
}

/** serial_xmit (1.x): one byte THR/FIFO → TSR → backend, then the next one a character later. */
export function serialXmit1x(s: UartState, bus: Bus): void {
  const newXmitTs = bus.vmNow();
  const tx = txStream(s);
  /** fifo_get on an empty FIFO returns 0: a NUL goes out that the guest never wrote. */
  let phantom = false;
  if (s.tsrRetry <= 0) {
    if (fifoMode(s)) {
      phantom = fifoIsEmpty(s.xmitFifo);
      s.tsr = phantom ? 0 : fifoPop(s.xmitFifo);
      if (fifoIsEmpty(s.xmitFifo)) s.lsr |= Lsr.THRE;
    } else {
      s.tsr = s.thr;
      s.lsr |= Lsr.THRE;
    }
  }
  if (s.mcr & Mcr.LOOP) {
    if (!phantom) bus.emit(Ev.BYTE_DELIVER, tx, s.tsr, 0);
    uartReceive(s, bus, s.tsr);
  } else if (bus.chrWrite(s.dev, 0, s.tsr) !== 1) {
    // Only a tsr_retry that is already positive retries; none ever is (f702e62a).
    if (s.tsrRetry > 0 && s.tsrRetry <= MAX_XMIT_RETRY) {
      s.tsrRetry++;
      transmitTimerMod(s, bus, newXmitTs + s.charTransmitTimeNs);
      return;
    }
    if (s.pollMsl < 0) s.tsrRetry = -1;
    // The byte in TSR is gone: the next serial_xmit loads a new one over it.
    if (!phantom) bus.emit(Ev.BYTE_DISCARD, tx, s.tsr, 0);
  } else {
    s.tsrRetry = 0;
  }
  if (!(s.lsr & Lsr.THRE)) transmitTimerMod(s, bus, bus.vmNow() + s.charTransmitTimeNs);
  if (s.lsr & Lsr.THRE) {
    s.lsr |= Lsr.TEMT;
    s.thrIpending = 1;
    uartUpdateIrq(s, bus);
  }
}

/**
 * serial_xmit of 1.5 to 2.2 (hw/char/serial.c @003f8dbc; the 'watch-ioport' generation): a
 * refused write is retried from a G_IO_OUT watch as today, but an empty xmit FIFO (which the
 * old FCR flush leaves behind with THRE clear) just returns, so the transmitter stalls where
 * today's code asserts, and THRE (with TEMT and the THRE interrupt) is set only after the
 * backend took the last byte.
 */
export function serialXmitWatch(s: UartState, bus: Bus): void {
  const tx = txStream(s);
  do {
    if (s.tsrRetry <= 0) {
      if (fifoMode(s)) {
        if (fifoIsEmpty(s.xmitFifo)) return;
        s.tsr = fifoPop(s.xmitFifo);
        if (fifoIsEmpty(s.xmitFifo)) s.lsr |= Lsr.THRE;
      } else if (s.lsr & Lsr.THRE) {
        return;
      } else {
        s.tsr = s.thr;
        s.lsr = (s.lsr | Lsr.THRE) & ~Lsr.TEMT & 0xff;
      }
    }
    if (s.mcr & Mcr.LOOP) {
      bus.emit(Ev.BYTE_DELIVER, tx, s.tsr, 0);
      uartReceive(s, bus, s.tsr);
    } else if (bus.chrWrite(s.dev, 0, s.tsr) !== 1) {
      if (s.tsrRetry >= 0 && s.tsrRetry < MAX_XMIT_RETRY) {
        bus.chrAddWatch(s.dev, 0);
        s.tsrRetry++;
        return;
      }
      // Retries exhausted: the next byte loads over this one.
      s.tsrRetry = 0;
      bus.emit(Ev.BYTE_DISCARD, tx, s.tsr, 0);
    } else {
      s.tsrRetry = 0;
    }
  } while (fifoMode(s) && !fifoIsEmpty(s.xmitFifo));
  if (s.lsr & Lsr.THRE) {
    s.lsr |= Lsr.TEMT;
    s.thrIpending = 1;
    uartUpdateIrq(s, bus);
  }
}

/** serial_ioport_write, THR (1.x): store, clear THRE (and TEMT in FIFO mode), transmit now. */
export function writeThr1x(s: UartState, bus: Bus, val: number): void {
  const tx = txStream(s);
  bus.emit(Ev.BYTE_ACCEPT, tx, val, 0);
  const holdPos = s.tsrRetry > 0 ? 1 : 0;
  if (fifoMode(s)) {
    const f = s.xmitFifo;
    if (fifoIsFull(f)) {
      // fifo_put at head == tail: the oldest byte's slot takes the new one, count stays 16.
      bus.emit(Ev.BYTE_DISCARD, tx, fifoPeek(f, 0), holdPos);
      f.data[f.head] = val;
    } else {
      fifoPush(f, val);
    }
    s.lsr &= ~Lsr.TEMT & 0xff;
  } else if (!(s.lsr & Lsr.THRE)) {
    // Only a state loaded from a later build holds THR: the new byte overwrites it.
    bus.emit(Ev.BYTE_DISCARD, tx, s.thr, holdPos);
  }
  s.thr = val;
  s.thrIpending = 0;
  s.lsr &= ~Lsr.THRE & 0xff;
  uartUpdateIrq(s, bus);
  serialXmit1x(s, bus);
}

/** serial_ioport_write, IER (1.x): THRE is resampled on every write, not on a THRI edge. */
export function writeIer1x(s: UartState, bus: Bus, val: number): void {
  s.ier = val & Ier.MASK;
  if (s.pollMsl >= 0) {
    if (s.ier & Ier.MSI) {
      s.pollMsl = 1;
      updateMsl(s, bus);
    } else {
      pollTimerDel(s, bus);
      s.pollMsl = 0;
    }
  }
  if (s.lsr & Lsr.THRE) {
    s.thrIpending = 1;
    uartUpdateIrq(s, bus);
  }
}

/**
 * serial_ioport_write, FCR (1.x), also what serial_post_load runs with fcr_vmstate: nothing
 * if the value equals fcr; the flushes keep LSR (DR stays set over an emptied recv FIFO,
 * THRE stays clear over an emptied xmit FIFO); the interrupt is recomputed.
 */
export function writeFcr1x(s: UartState, bus: Bus, value: number): void {
  let val = value & 0xff;
  if (s.fcr === val) return;
  if ((val ^ s.fcr) & Fcr.FE) val |= Fcr.XFR | Fcr.RFR;
  if (val & Fcr.RFR) {
    fifoTimeoutDel(s, bus);
    s.timeoutIpending = 0;
    const f = s.recvFifo;
    for (let i = 0; i < f.num; i++) bus.emit(Ev.BYTE_DISCARD, rxStream(s), fifoPeek(f, i), 0);
    fifoReset(f);
  }
  if (val & Fcr.XFR) {
    const f = s.xmitFifo;
    const pos = s.tsrRetry > 0 ? 1 : 0;
    for (let i = 0; i < f.num; i++) bus.emit(Ev.BYTE_DISCARD, txStream(s), fifoPeek(f, i), pos);
    fifoReset(f);
  }
  writeFcr(s, val & Fcr.STICKY);
  uartUpdateIrq(s, bus);
}
