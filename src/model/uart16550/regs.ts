/**
 * 16550A register offsets and bits, named as in the datasheet and in QEMU's
 * hw/char/serial.c (which takes them from Linux's serial_reg.h).
 */

/** Register offsets (address & 7). Offsets 0 and 1 are DLL/DLM while LCR.DLAB is set. */
export const Reg = {
  RBR: 0,
  THR: 0,
  DLL: 0,
  IER: 1,
  DLM: 1,
  IIR: 2,
  FCR: 2,
  LCR: 3,
  MCR: 4,
  LSR: 5,
  MSR: 6,
  SCR: 7,
} as const;

/** Interrupt Enable Register. */
export const Ier = {
  /** Received data available (also gates the character timeout, a hardware quirk). */
  RDI: 0x01,
  /** Transmitter holding register empty. */
  THRI: 0x02,
  /** Receiver line status. */
  RLSI: 0x04,
  /** Modem status. */
  MSI: 0x08,
  /** The bits that exist: serial_ioport_write stores `val & 0x0f`. */
  MASK: 0x0f,
} as const;

/** Interrupt Identification Register. */
export const Iir = {
  NO_INT: 0x01,
  /** Mask of the interrupt id (without the CTI bit 3). */
  ID_MASK: 0x06,
  MSI: 0x00,
  THRI: 0x02,
  RDI: 0x04,
  RLSI: 0x06,
  /** Character timeout indication. */
  CTI: 0x0c,
  /** FIFO enabled, but not functioning. */
  FENF: 0x80,
  /** Both FIFO bits: set while FCR.FE is set. */
  FIFO_ENABLED: 0xc0,
} as const;

/** Line Status Register. */
export const Lsr = {
  /** Data ready. */
  DR: 0x01,
  /** Overrun error. */
  OE: 0x02,
  /** Parity error. */
  PE: 0x04,
  /** Framing error. */
  FE: 0x08,
  /** Break interrupt. */
  BI: 0x10,
  /** Transmitter holding register empty. */
  THRE: 0x20,
  /** Transmitter empty (THR/FIFO and TSR). */
  TEMT: 0x40,
  /** Error in receiver FIFO (never set by QEMU). */
  ERR: 0x80,
  /** The bits that raise the line status interrupt: OE|PE|FE|BI. */
  INT_ANY: 0x1e,
} as const;

/** Line Control Register. */
export const Lcr = {
  /** Word length select: data bits = 5 + (lcr & WLS). */
  WLS: 0x03,
  /** Number of stop bits: 2 when set (1.5 for 5-bit words; QEMU counts 2). */
  NSTB: 0x04,
  /** Parity enable. */
  PEN: 0x08,
  /** Even parity select. */
  EPS: 0x10,
  /** Stick parity. */
  SPAR: 0x20,
  /** Set break (UART_LCR_SB). */
  BREAK: 0x40,
  /** Divisor latch access. */
  DLAB: 0x80,
} as const;

/** Modem Control Register. */
export const Mcr = {
  DTR: 0x01,
  RTS: 0x02,
  OUT1: 0x04,
  OUT2: 0x08,
  /** Loopback test mode. */
  LOOP: 0x10,
  /** The bits that exist: serial_ioport_write stores `val & 0x1f`. */
  MASK: 0x1f,
} as const;

/** Modem Status Register. */
export const Msr = {
  /** Delta CTS. */
  DCTS: 0x01,
  /** Delta DSR. */
  DDSR: 0x02,
  /** Trailing edge ring indicator. */
  TERI: 0x04,
  /** Delta DCD. */
  DDCD: 0x08,
  CTS: 0x10,
  DSR: 0x20,
  RI: 0x40,
  DCD: 0x80,
  ANY_DELTA: 0x0f,
} as const;

/** FIFO Control Register (write-only at offset 2). */
export const Fcr = {
  /** FIFO enable. */
  FE: 0x01,
  /** Receiver FIFO reset. */
  RFR: 0x02,
  /** Transmitter FIFO reset. */
  XFR: 0x04,
  /** DMA mode select. */
  DMS: 0x08,
  /** Receiver trigger level field. */
  ITL_MASK: 0xc0,
  ITL_1: 0x00,
  ITL_4: 0x40,
  ITL_8: 0x80,
  ITL_14: 0xc0,
  /** The bits that stick in `fcr` (serial_write_fcr gets `val & 0xC9`). */
  STICKY: 0xc9,
} as const;

/** Depth of each FIFO (serial.h UART_FIFO_LENGTH). */
export const UART_FIFO_LENGTH = 16;
/** Backend write attempts retried after the first failure before the byte is dropped. */
export const MAX_XMIT_RETRY = 4;
/** Default `baudbase` property (serial.c serial_properties). */
export const BAUDBASE = 115200;
