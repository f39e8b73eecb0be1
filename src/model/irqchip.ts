import { fail } from './assert.js';
import { Ev } from './events.js';

/**
 * The interrupt path of one VM as plain records (MODEL.md §2): PCI INTx wiring, the i8259
 * (edge state only: the guest masks it and uses the IOAPIC), the IOAPIC, MSI-X tables and the
 * local APIC. Functions here change these records and report through IrqOut; the machine
 * runs the CPU.
 */

export const IOAPIC_PINS = 24;
export const NUM_PIRQS = 4;
/**
 * i440fx: PCI INTx reaches the interrupt controllers through the PIIX3. pci_slot_get_pirq
 * (hw/pci-host/i440fx.c) maps a slot's INTx pin to PIRQ (slot - 1 + pin) & 3; the PIIX3's
 * PIRQ route control registers (config 0x60-0x63) name the ISA IRQ each PIRQ drives, and
 * SeaBIOS programs them to 10, 10, 11, 11 (src/fw/pciinit.c pci_irqs) and marks those IRQs
 * level-triggered in the ELCR. piix3_set_irq_pic drives an ISA IRQ with the OR of the PIRQs
 * routed to it, into the i8259 and the IOAPIC pin of the same number (GSI = ISA IRQ).
 */
export const PIRQ_ISA_IRQ: readonly number[] = [10, 10, 11, 11];
export const pciSlotGetPirq = (slot: number, intx: number): number => (slot - 1 + intx) & 3;
/** The ELCR SeaBIOS leaves (piix_isa_bridge_setup): the PCI IRQs level, the rest edge. */
export const BIOS_ELCR = PIRQ_ISA_IRQ.reduce((mask, irq) => mask | (1 << irq), 0);
/** Vector the guest programs for a GSI (one vector per pin; sharing devices share it). */
export const vectorOfGsi = (gsi: number): number => 0x30 + gsi;
/** MSI-X vectors: two table entries per device (0 = config, 1 = virtqueues). */
export const MSIX_ENTRIES = 2;
export const vectorOfMsix = (dev: number, entry: number): number => 0x60 + dev * MSIX_ENTRIES + entry;

export interface IoapicState {
  /** Input level of each pin. */
  level: Uint8Array;
  /** IRR: a level pin's input is asserted / an edge is waiting to be serviced. */
  irr: Uint8Array;
  remoteIrr: Uint8Array;
  /** Redirection entries, as the guest programmed them. */
  vector: Uint8Array;
  levelTriggered: Uint8Array;
  masked: Uint8Array;
}

export interface PicState {
  /** Bitmask of input levels (i8259 last_irr, for edge detection). */
  lastIrr: number;
  /** Bitmask of latched requests. */
  irr: number;
  /** The guest masks every input: it uses the IOAPIC. */
  imr: number;
  /** Edge/level control register (ELCR): a set bit makes that input level-triggered. */
  elcr: number;
}

export interface PciIntxState {
  /** Per device: its INTx output level (pci irq_state). */
  irqState: Uint8Array;
  /** Per PIRQ: how many devices raise it (pci bus irq_count). */
  pirqCount: Int32Array;
}

export interface MsixState {
  /** Per device and entry: masked, and the pending bit (PBA). */
  masked: Uint8Array;
  pending: Uint8Array;
}

export interface LapicState {
  /** Per vector: requested (IRR), in service (ISR), level-triggered (TMR). */
  irr: Uint8Array;
  isr: Uint8Array;
  tmr: Uint8Array;
}

export interface Irqchip {
  ioapic: IoapicState;
  pic: PicState;
  pci: PciIntxState;
  msix: MsixState;
  lapic: LapicState;
}

export function makeIrqchip(numDevices: number): Irqchip {
  return {
    ioapic: {
      level: new Uint8Array(IOAPIC_PINS),
      irr: new Uint8Array(IOAPIC_PINS),
      remoteIrr: new Uint8Array(IOAPIC_PINS),
      vector: new Uint8Array(IOAPIC_PINS),
      levelTriggered: new Uint8Array(IOAPIC_PINS),
      // Reset state of the 82093AA: every redirection entry masked until the guest programs it.
      masked: new Uint8Array(IOAPIC_PINS).fill(1),
    },
    pic: { lastIrr: 0, irr: 0, imr: 0xff, elcr: BIOS_ELCR },
    pci: { irqState: new Uint8Array(numDevices), pirqCount: new Int32Array(NUM_PIRQS) },
    msix: {
      masked: new Uint8Array(numDevices * MSIX_ENTRIES).fill(1),
      pending: new Uint8Array(numDevices * MSIX_ENTRIES),
    },
    lapic: makeLapic(),
  };
}

/** The three vector maps over one buffer (every machine makes one; a buffer costs more than its bytes). */
export function makeLapic(): LapicState {
  const maps = new Uint8Array(3 * 256);
  return { irr: maps.subarray(0, 256), isr: maps.subarray(256, 512), tmr: maps.subarray(512) };
}

/** Where the interrupt path reports: events, deliveries to the CPU, "look again". */
export interface IrqOut {
  emit(kind: number, dev: number, a: number, b: number): void;
  /** A fixed-mode interrupt message reaches the local APIC (see lapicAccept). */
  deliver(vector: number, level: boolean): void;
  cpuKick(): void;
}

/** The guest programs a redirection entry (done at boot by its drivers). */
export function ioapicProgram(c: Irqchip, out: IrqOut, gsi: number, levelTriggered: boolean): void {
  const io = c.ioapic;
  io.vector[gsi] = vectorOfGsi(gsi);
  io.levelTriggered[gsi] = levelTriggered ? 1 : 0;
  ioapicSetMask(c, out, gsi, false);
}

/** ioapic_mem_write of a redirection entry's mask bit: unmasking services a waiting request. */
export function ioapicSetMask(c: Irqchip, out: IrqOut, gsi: number, masked: boolean): void {
  c.ioapic.masked[gsi] = masked ? 1 : 0;
  if (!masked) ioapicService(c, out, gsi);
}

/** An input pin changes level: ISA lines and PIRQs (ioapic_set_irq, pic_set_irq). */
export function setGsiLevel(c: Irqchip, out: IrqOut, gsi: number, level: number): void {
  const io = c.ioapic;
  if (io.level[gsi] === level) return;
  io.level[gsi] = level;
  out.emit(Ev.PIN, gsi, level, 0);
  if (gsi < 16) picSetIrq(c.pic, gsi, level);
  if (io.levelTriggered[gsi]) {
    io.irr[gsi] = level;
    if (level && !io.remoteIrr[gsi]) ioapicService(c, out, gsi);
  } else if (level && !io.masked[gsi]) {
    // Edge: only the 0→1 transition reaches here (same level returned above). The 82093AA
    // ignores edges on a masked pin (QEMU ioapic_set_irq).
    io.irr[gsi] = 1;
    ioapicService(c, out, gsi);
  }
}

function picSetIrq(p: PicState, irq: number, level: number): void {
  const mask = 1 << irq;
  if (p.elcr & mask) {
    p.irr = level ? p.irr | mask : p.irr & ~mask;
  } else if (level && !(p.lastIrr & mask)) {
    p.irr |= mask;
  }
  p.lastIrr = level ? p.lastIrr | mask : p.lastIrr & ~mask;
}

/** ioapic_service for one pin: deliver if requested, unmasked, and (level) Remote-IRR clear. */
function ioapicService(c: Irqchip, out: IrqOut, gsi: number): void {
  const io = c.ioapic;
  if (!io.irr[gsi] || io.masked[gsi]) return;
  const level = io.levelTriggered[gsi] === 1;
  if (level) {
    if (io.remoteIrr[gsi]) return;
    io.remoteIrr[gsi] = 1;
    out.emit(Ev.REMOTE_IRR, gsi, 1, 0);
  } else {
    io.irr[gsi] = 0;
  }
  const vector = io.vector[gsi]!;
  out.deliver(vector, level);
  out.emit(Ev.IOAPIC_DELIVER, gsi, vector, 0);
}

/** The local APIC accepts a fixed-mode interrupt. */
export function lapicAccept(l: LapicState, vector: number, level: boolean): void {
  l.irr[vector] = 1;
  l.tmr[vector] = level ? 1 : 0;
}

/** Highest requested vector whose priority class beats every in-service one; -1 if none. */
export function lapicDeliverable(l: LapicState): number {
  // Native scans: this runs after every delivery, dispatch and EOI.
  const v = l.irr.lastIndexOf(1);
  if (v < 16) return -1; // vectors 0-15 are reserved and never delivered
  return v >> 4 > l.isr.lastIndexOf(1) >> 4 ? v : -1;
}

/** The CPU takes a vector: IRR → ISR. */
export function lapicAck(l: LapicState, vector: number): void {
  if (!(l.irr[vector] === 1)) fail(`lapic: ack of vector ${vector} that is not requested`);
  l.irr[vector] = 0;
  l.isr[vector] = 1;
}

/**
 * The guest's EOI: clears the in-service vector; a level-triggered one is broadcast to the
 * IOAPIC, which clears Remote-IRR and re-services the pin if its input is still asserted
 * (ioapic_eoi_broadcast).
 */
export function lapicEoi(c: Irqchip, out: IrqOut, vector: number): void {
  const l = c.lapic;
  l.isr[vector] = 0;
  out.emit(Ev.EOI, -1, vector, 0);
  if (l.tmr[vector]) {
    const io = c.ioapic;
    for (let gsi = 0; gsi < IOAPIC_PINS; gsi++) {
      if (io.vector[gsi] !== vector || !io.remoteIrr[gsi]) continue;
      io.remoteIrr[gsi] = 0;
      out.emit(Ev.REMOTE_IRR, gsi, 0, 0);
      ioapicService(c, out, gsi);
    }
  }
  out.cpuKick();
}

/**
 * A PCI device's INTx output (pci_irq_handler): no change, no propagation; otherwise the
 * PIRQ's count of raised devices moves, and the PIIX3 drives the PIRQ's ISA IRQ with the OR
 * of every PIRQ routed to it (piix3_set_irq_level, piix3_set_irq_pic).
 */
export function pciSetIrq(c: Irqchip, out: IrqOut, dev: number, pirq: number, level: number): void {
  const change = level - c.pci.irqState[dev]!;
  if (change === 0) return;
  c.pci.irqState[dev] = level;
  out.emit(Ev.DEV_IRQ, dev, level, 0);
  const count = c.pci.pirqCount[pirq]! + change;
  c.pci.pirqCount[pirq] = count;
  if (!(count >= 0)) fail(`pci: PIRQ ${pirq} raised by a negative number of devices`);
  const irq = PIRQ_ISA_IRQ[pirq]!;
  let isaLevel = 0;
  for (let p = 0; p < NUM_PIRQS; p++) if (PIRQ_ISA_IRQ[p] === irq && c.pci.pirqCount[p]! > 0) isaLevel = 1;
  setGsiLevel(c, out, irq, isaLevel);
}

/** msix_notify: a masked entry sets its pending bit; otherwise the message goes out. */
export function msixNotify(c: Irqchip, out: IrqOut, dev: number, entry: number): void {
  const i = dev * MSIX_ENTRIES + entry;
  const vector = vectorOfMsix(dev, entry);
  if (c.msix.masked[i]) {
    c.msix.pending[i] = 1;
    out.emit(Ev.MSI, dev, vector, 0);
    return;
  }
  out.emit(Ev.MSI, dev, vector, 1);
  out.deliver(vector, false);
}

/** The guest writes an MSI-X entry's mask bit; unmasking sends a pending message. */
export function msixSetMask(c: Irqchip, out: IrqOut, dev: number, entry: number, masked: boolean): void {
  const i = dev * MSIX_ENTRIES + entry;
  c.msix.masked[i] = masked ? 1 : 0;
  if (!masked && c.msix.pending[i]) {
    c.msix.pending[i] = 0;
    msixNotify(c, out, dev, entry);
  }
}
