/**
 * The 16550A's state: a plain record holding the fields of QEMU's `SerialState`
 * (include/hw/char/serial.h) that the model needs, plus the FIFO helper set (util/fifo8.c).
 * No classes and no closures, so the record saves, compares and hashes as data.
 */
import { assert } from '../assert.js';
import { BAUDBASE, Iir, Lsr, Mcr, Msr, UART_FIFO_LENGTH } from './regs.js';

/** QEMU's Fifo8, in the layout `vmstate_fifo8` migrates: data[capacity], head, num. */
export interface Fifo8 {
  data: Uint8Array;
  /** Index of the oldest byte. */
  head: number;
  /** Bytes held. */
  num: number;
}

export function makeFifo8(capacity = UART_FIFO_LENGTH): Fifo8 {
  return { data: new Uint8Array(capacity), head: 0, num: 0 };
}

export function fifoIsEmpty(f: Fifo8): boolean {
  return f.num === 0;
}

export function fifoIsFull(f: Fifo8): boolean {
  return f.num >= f.data.length;
}

/** fifo8_push: the caller checks for room first, as QEMU asserts it. */
export function fifoPush(f: Fifo8, byte: number): void {
  assert(f.num < f.data.length, 'fifo8_push: FIFO full');
  f.data[(f.head + f.num) % f.data.length] = byte;
  f.num++;
}

/** fifo8_pop: the oldest byte; the FIFO must not be empty (QEMU asserts it). */
export function fifoPop(f: Fifo8): number {
  assert(f.num > 0, 'fifo8_pop: FIFO empty');
  const byte = f.data[f.head]!;
  f.head = (f.head + 1) % f.data.length;
  f.num--;
  return byte;
}

/** The i-th oldest byte held (0 = the next pop), without removing it. */
export function fifoPeek(f: Fifo8, i: number): number {
  return f.data[(f.head + i) % f.data.length]!;
}

/** fifo8_reset: forget the contents (the data bytes stay, as in QEMU). */
export function fifoReset(f: Fifo8): void {
  f.num = 0;
  f.head = 0;
}

/** Which hw/serial.c the device runs (the build's uartGeneration revision). */
export type UartGeneration = 'transmit-timer' | 'watch-ioport' | 'write-watch';
/** serial_update_parameters' arithmetic (the build's serialSpeed revision). */
export type UartSpeedMath = 'integer' | 'float';

export interface UartState {
  /** Device index, passed to every Bus call. */
  readonly dev: number;
  readonly generation: UartGeneration;
  readonly speedMath: UartSpeedMath;

  /** DLL (low byte) and DLM (high byte), u16. */
  divider: number;
  rbr: number;
  thr: number;
  /** Transmit shift register: the byte being sent to the backend. */
  tsr: number;
  ier: number;
  iir: number;
  lcr: number;
  mcr: number;
  lsr: number;
  msr: number;
  scr: number;
  fcr: number;

  /** THRE interrupt pending (int in QEMU; the migration code uses -1 for "absent"). */
  thrIpending: number;
  /**
   * Backend write attempts that failed with EAGAIN for the byte in TSR (u32, ≤ MAX_XMIT_RETRY);
   * the 1.x code (an int) sets -1 once it drops refused bytes at once.
   */
  tsrRetry: number;
  /** Character timeout interrupt pending. */
  timeoutIpending: number;
  /** Modem-status polling: -1 unsupported by the backend, 0 off, 1 on. */
  pollMsl: number;
  /** LCR.BREAK as last sent to the backend. */
  lastBreakEnable: number;

  recvFifo: Fifo8;
  xmitFifo: Fifo8;
  /** Receive trigger level: 1, 4, 8 or 14. */
  recvFifoItl: number;

  /** ns per character at the current divider and LCR. */
  charTransmitTimeNs: number;
  baudbase: number;
}

/** serial_reset's char_transmit_time: `(NANOSECONDS_PER_SECOND / 9600) * 10` in integer math. */
export const RESET_CHAR_TRANSMIT_TIME_NS = Math.floor(1e9 / 9600) * 10;

/**
 * A UART after serial_realize and serial_reset. `fcr` and `recvFifoItl` are realize-time
 * values that serial_reset leaves alone; `pollMsl` is -1 because our backends have no TIOCM
 * support (serial_update_msl gets -ENOTSUP), except up to QEMU 2.3 (`pollMslAtReset` 0),
 * whose serial_reset sets poll_msl = 0 and whose ISA realize never calls serial_update_msl
 * (only an MSR read or an IER write finds out; a30cf876 probes at realize).
 */
export function makeUart(
  dev: number,
  generation: UartGeneration = 'write-watch',
  pollMslAtReset: 0 | -1 = -1,
  speedMath: UartSpeedMath = 'float',
): UartState {
  return {
    dev,
    generation,
    speedMath,
    divider: 0x0c,
    rbr: 0,
    thr: 0,
    tsr: 0,
    ier: 0,
    iir: Iir.NO_INT,
    lcr: 0,
    mcr: Mcr.OUT2,
    lsr: Lsr.TEMT | Lsr.THRE,
    msr: Msr.DCD | Msr.DSR | Msr.CTS,
    scr: 0,
    fcr: 0,
    thrIpending: 0,
    tsrRetry: 0,
    timeoutIpending: 0,
    pollMsl: pollMslAtReset,
    lastBreakEnable: 0,
    recvFifo: makeFifo8(),
    xmitFifo: makeFifo8(),
    recvFifoItl: 1,
    charTransmitTimeNs: RESET_CHAR_TRANSMIT_TIME_NS,
    baudbase: BAUDBASE,
  };
}
