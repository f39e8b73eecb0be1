import { describe, expect, it } from 'vitest';
import { ModelAssertError } from '../../src/model/assert.js';
import { Ev } from '../../src/model/events.js';
import {
  BIOS_ELCR,
  type Irqchip,
  type IrqOut,
  ioapicProgram,
  ioapicSetMask,
  lapicAccept,
  lapicAck,
  lapicDeliverable,
  lapicEoi,
  makeIrqchip,
  msixNotify,
  msixSetMask,
  PIRQ_ISA_IRQ,
  pciSetIrq,
  pciSlotGetPirq,
  setGsiLevel,
  vectorOfGsi,
  vectorOfMsix,
} from '../../src/model/irqchip.js';

interface Emitted {
  kind: number;
  dev: number;
  a: number;
  b: number;
}

/** An IrqOut that records everything and, like the machine, hands deliveries to the LAPIC. */
class FakeOut implements IrqOut {
  events: Emitted[] = [];
  deliveries: { vector: number; level: boolean }[] = [];
  kicks = 0;
  constructor(readonly c: Irqchip) {}
  emit(kind: number, dev: number, a: number, b: number): void {
    this.events.push({ kind, dev, a, b });
  }
  deliver(vector: number, level: boolean): void {
    this.deliveries.push({ vector, level });
    lapicAccept(this.c.lapic, vector, level);
  }
  cpuKick(): void {
    this.kicks++;
  }
  of(kind: number): Emitted[] {
    return this.events.filter((e) => e.kind === kind);
  }
  /** Forget what was recorded so far. */
  clear(): void {
    this.events = [];
    this.deliveries = [];
    this.kicks = 0;
  }
}

function setup(numDevices = 4): { c: Irqchip; out: FakeOut } {
  const c = makeIrqchip(numDevices);
  return { c, out: new FakeOut(c) };
}

/** The CPU takes `vector` and the guest EOIs it. */
function serviceAndEoi(c: Irqchip, out: FakeOut, vector: number): void {
  lapicAck(c.lapic, vector);
  lapicEoi(c, out, vector);
}

const GSI = PIRQ_ISA_IRQ[1]!; // PIRQ B: ISA IRQ 10
const VEC = vectorOfGsi(GSI);

describe('IOAPIC level-triggered pin', () => {
  it('starts masked: a pin the guest has not programmed delivers nothing', () => {
    const { c, out } = setup();
    expect([...c.ioapic.masked]).toEqual(new Array(24).fill(1));
    setGsiLevel(c, out, GSI, 1);
    expect(c.ioapic.level[GSI]).toBe(1);
    expect(c.ioapic.remoteIrr[GSI]).toBe(0);
    expect(out.deliveries).toEqual([]);
    expect(out.of(Ev.IOAPIC_DELIVER)).toEqual([]);
  });

  it('input 1 sets IRR, services the pin: Remote-IRR 1 and the vector at the LAPIC', () => {
    const { c, out } = setup();
    ioapicProgram(c, out, GSI, true);
    expect(c.ioapic.vector[GSI]).toBe(VEC);
    setGsiLevel(c, out, GSI, 1);
    expect(c.ioapic.level[GSI]).toBe(1);
    expect(c.ioapic.irr[GSI]).toBe(1);
    expect(c.ioapic.remoteIrr[GSI]).toBe(1);
    expect(out.deliveries).toEqual([{ vector: VEC, level: true }]);
    expect(c.lapic.irr[VEC]).toBe(1);
    expect(c.lapic.tmr[VEC]).toBe(1);
    expect(out.events).toEqual([
      { kind: Ev.PIN, dev: GSI, a: 1, b: 0 },
      { kind: Ev.REMOTE_IRR, dev: GSI, a: 1, b: 0 },
      { kind: Ev.IOAPIC_DELIVER, dev: GSI, a: VEC, b: 0 },
    ]);
  });

  it('the same level again is a no-op', () => {
    const { c, out } = setup();
    ioapicProgram(c, out, GSI, true);
    setGsiLevel(c, out, GSI, 1);
    out.clear();
    setGsiLevel(c, out, GSI, 1);
    expect(out.events).toEqual([]);
    expect(out.deliveries).toEqual([]);
  });

  it('does not deliver while Remote-IRR is 1, even on a new 0→1 of the input', () => {
    const { c, out } = setup();
    ioapicProgram(c, out, GSI, true);
    setGsiLevel(c, out, GSI, 1);
    setGsiLevel(c, out, GSI, 0);
    expect(c.ioapic.irr[GSI]).toBe(0);
    expect(c.ioapic.remoteIrr[GSI]).toBe(1); // only an EOI clears it
    setGsiLevel(c, out, GSI, 1);
    expect(c.ioapic.irr[GSI]).toBe(1);
    expect(out.deliveries).toHaveLength(1);
  });

  it('EOI clears Remote-IRR and re-delivers when the input is still 1', () => {
    const { c, out } = setup();
    ioapicProgram(c, out, GSI, true);
    setGsiLevel(c, out, GSI, 1);
    out.clear();
    serviceAndEoi(c, out, VEC);
    expect(out.events).toEqual([
      { kind: Ev.EOI, dev: -1, a: VEC, b: 0 },
      { kind: Ev.REMOTE_IRR, dev: GSI, a: 0, b: 0 },
      { kind: Ev.REMOTE_IRR, dev: GSI, a: 1, b: 0 },
      { kind: Ev.IOAPIC_DELIVER, dev: GSI, a: VEC, b: 0 },
    ]);
    expect(out.deliveries).toEqual([{ vector: VEC, level: true }]);
    expect(c.ioapic.remoteIrr[GSI]).toBe(1);
    expect(c.lapic.irr[VEC]).toBe(1);
    expect(c.lapic.isr[VEC]).toBe(0);
    expect(out.kicks).toBe(1);
  });

  it('EOI after the input dropped clears Remote-IRR and delivers nothing', () => {
    const { c, out } = setup();
    ioapicProgram(c, out, GSI, true);
    setGsiLevel(c, out, GSI, 1);
    setGsiLevel(c, out, GSI, 0);
    out.clear();
    serviceAndEoi(c, out, VEC);
    expect(out.deliveries).toEqual([]);
    expect(c.ioapic.remoteIrr[GSI]).toBe(0);
    expect(c.lapic.irr[VEC]).toBe(0);
    expect(out.of(Ev.REMOTE_IRR)).toEqual([{ kind: Ev.REMOTE_IRR, dev: GSI, a: 0, b: 0 }]);
    // A later raise is a fresh 0→1 with Remote-IRR clear: delivered.
    setGsiLevel(c, out, GSI, 1);
    expect(out.deliveries).toEqual([{ vector: VEC, level: true }]);
  });

  it('a masked pin holds its request and delivers on unmask', () => {
    const { c, out } = setup();
    ioapicProgram(c, out, GSI, true);
    ioapicSetMask(c, out, GSI, true);
    setGsiLevel(c, out, GSI, 1);
    expect(c.ioapic.irr[GSI]).toBe(1);
    expect(c.ioapic.remoteIrr[GSI]).toBe(0);
    expect(out.deliveries).toEqual([]);
    ioapicSetMask(c, out, GSI, false);
    expect(c.ioapic.remoteIrr[GSI]).toBe(1);
    expect(out.deliveries).toEqual([{ vector: VEC, level: true }]);
  });

  it('a masked pin whose input dropped before unmask delivers nothing', () => {
    const { c, out } = setup();
    ioapicProgram(c, out, GSI, true);
    ioapicSetMask(c, out, GSI, true);
    setGsiLevel(c, out, GSI, 1);
    setGsiLevel(c, out, GSI, 0);
    ioapicSetMask(c, out, GSI, false);
    expect(out.deliveries).toEqual([]);
    expect(c.ioapic.remoteIrr[GSI]).toBe(0);
  });

  it('a stuck Remote-IRR (delivery lost at the CPU) blocks every later raise', () => {
    const { c, out } = setup();
    ioapicProgram(c, out, GSI, true);
    setGsiLevel(c, out, GSI, 1);
    // The vector vanishes from the LAPIC (end-of-load LAPIC push): no EOI will ever come.
    c.lapic.irr.fill(0);
    out.clear();
    for (const level of [0, 1, 0, 1]) setGsiLevel(c, out, GSI, level);
    expect(out.deliveries).toEqual([]);
    expect(c.ioapic.remoteIrr[GSI]).toBe(1);
    expect(lapicDeliverable(c.lapic)).toBe(-1);
  });
});

describe('edge-triggered input', () => {
  const EDGE = 4; // COM1
  const EVEC = vectorOfGsi(EDGE);

  it('only a 0→1 transition delivers; a line held at 1 delivers nothing more', () => {
    const { c, out } = setup();
    ioapicProgram(c, out, EDGE, false);
    setGsiLevel(c, out, EDGE, 1);
    expect(out.deliveries).toEqual([{ vector: EVEC, level: false }]);
    expect(c.ioapic.irr[EDGE]).toBe(0); // consumed by the delivery
    expect(c.ioapic.remoteIrr[EDGE]).toBe(0); // edge pins have no Remote-IRR
    setGsiLevel(c, out, EDGE, 1);
    expect(out.deliveries).toHaveLength(1);
    // The EOI of an edge vector does not re-deliver a line that is still high.
    serviceAndEoi(c, out, EVEC);
    expect(out.deliveries).toHaveLength(1);
    setGsiLevel(c, out, EDGE, 0);
    expect(out.deliveries).toHaveLength(1);
    setGsiLevel(c, out, EDGE, 1);
    expect(out.deliveries).toEqual([
      { vector: EVEC, level: false },
      { vector: EVEC, level: false },
    ]);
    expect(c.lapic.tmr[EVEC]).toBe(0);
  });

  it('ignores an edge on a masked pin, also after unmask', () => {
    const { c, out } = setup();
    ioapicProgram(c, out, EDGE, false);
    ioapicSetMask(c, out, EDGE, true);
    setGsiLevel(c, out, EDGE, 1);
    expect(c.ioapic.irr[EDGE]).toBe(0);
    ioapicSetMask(c, out, EDGE, false);
    expect(out.deliveries).toEqual([]);
    // Still high: no new edge until it drops and rises.
    setGsiLevel(c, out, EDGE, 1);
    expect(out.deliveries).toEqual([]);
    setGsiLevel(c, out, EDGE, 0);
    setGsiLevel(c, out, EDGE, 1);
    expect(out.deliveries).toEqual([{ vector: EVEC, level: false }]);
  });

  it('the i8259 latches a request only on 0→1 and tracks the level in last_irr', () => {
    const { c, out } = setup();
    setGsiLevel(c, out, EDGE, 1);
    expect(c.pic.irr).toBe(1 << EDGE);
    expect(c.pic.lastIrr).toBe(1 << EDGE);
    c.pic.irr = 0; // acknowledged
    setGsiLevel(c, out, EDGE, 1);
    expect(c.pic.irr).toBe(0);
    setGsiLevel(c, out, EDGE, 0);
    expect(c.pic.lastIrr).toBe(0);
    expect(c.pic.irr).toBe(0);
    setGsiLevel(c, out, EDGE, 1);
    expect(c.pic.irr).toBe(1 << EDGE);
  });
});

describe('PCI INTx', () => {
  it('a PIRQ counts its raised devices; the pin is high while the count is non-zero', () => {
    const { c, out } = setup();
    ioapicProgram(c, out, GSI, true);
    const pins = (): number[] => out.of(Ev.PIN).map((e) => e.a);
    pciSetIrq(c, out, 0, 1, 1);
    expect(c.pci.pirqCount[1]).toBe(1);
    expect(c.ioapic.level[GSI]).toBe(1);
    pciSetIrq(c, out, 2, 1, 1);
    expect(c.pci.pirqCount[1]).toBe(2);
    expect(pins()).toEqual([1]);
    pciSetIrq(c, out, 0, 1, 0);
    expect(c.pci.pirqCount[1]).toBe(1);
    expect(c.ioapic.level[GSI]).toBe(1);
    expect(pins()).toEqual([1]);
    pciSetIrq(c, out, 2, 1, 0);
    expect(c.pci.pirqCount[1]).toBe(0);
    expect(c.ioapic.level[GSI]).toBe(0);
    expect(pins()).toEqual([1, 0]);
    expect(out.of(Ev.DEV_IRQ).map((e) => [e.dev, e.a])).toEqual([
      [0, 1],
      [2, 1],
      [0, 0],
      [2, 0],
    ]);
    // Other PIRQs are untouched.
    expect([c.pci.pirqCount[0], c.pci.pirqCount[2], c.pci.pirqCount[3]]).toEqual([0, 0, 0]);
  });

  it('setting the same level is a no-op: no count change, no event', () => {
    const { c, out } = setup();
    pciSetIrq(c, out, 1, 1, 1);
    out.clear();
    pciSetIrq(c, out, 1, 1, 1);
    expect(c.pci.pirqCount[1]).toBe(1);
    expect(c.pci.irqState[1]).toBe(1);
    expect(out.events).toEqual([]);
    pciSetIrq(c, out, 3, 1, 0);
    expect(c.pci.pirqCount[1]).toBe(1);
    expect(out.events).toEqual([]);
  });

  it('a device sharing a pin whose Remote-IRR is stuck is never serviced (starvation)', () => {
    const { c, out } = setup();
    ioapicProgram(c, out, GSI, true);
    pciSetIrq(c, out, 0, 1, 1);
    c.lapic.irr.fill(0); // the delivery is lost
    out.clear();
    pciSetIrq(c, out, 2, 1, 1);
    expect(c.pci.pirqCount[1]).toBe(2);
    expect(out.deliveries).toEqual([]);
    expect(out.of(Ev.PIN)).toEqual([]);
  });

  it('the level path from device to EOI: serviced once, re-delivered while any device holds the pin', () => {
    const { c, out } = setup();
    ioapicProgram(c, out, GSI, true);
    pciSetIrq(c, out, 0, 1, 1);
    pciSetIrq(c, out, 2, 1, 1);
    expect(out.deliveries).toHaveLength(1);
    // The handler runs: device 0 lowers its line (ISR read), device 2 still holds it.
    lapicAck(c.lapic, VEC);
    pciSetIrq(c, out, 0, 1, 0);
    lapicEoi(c, out, VEC);
    expect(out.deliveries).toHaveLength(2);
    lapicAck(c.lapic, VEC);
    pciSetIrq(c, out, 2, 1, 0);
    lapicEoi(c, out, VEC);
    expect(out.deliveries).toHaveLength(2);
    expect(c.ioapic.remoteIrr[GSI]).toBe(0);
  });
});

describe('MSI-X', () => {
  const DEV = 1;
  const ENTRY = 1;
  const MVEC = vectorOfMsix(DEV, ENTRY);
  const idx = DEV * 2 + ENTRY;

  it('entries start masked: a notify sets the pending bit and sends nothing', () => {
    const { c, out } = setup();
    msixNotify(c, out, DEV, ENTRY);
    expect(c.msix.pending[idx]).toBe(1);
    expect(out.deliveries).toEqual([]);
    expect(out.events).toEqual([{ kind: Ev.MSI, dev: DEV, a: MVEC, b: 0 }]);
  });

  it('unmask sends the pending message once and clears the bit', () => {
    const { c, out } = setup();
    msixNotify(c, out, DEV, ENTRY);
    msixNotify(c, out, DEV, ENTRY);
    out.clear();
    msixSetMask(c, out, DEV, ENTRY, false);
    expect(c.msix.pending[idx]).toBe(0);
    expect(out.deliveries).toEqual([{ vector: MVEC, level: false }]);
    expect(out.events).toEqual([{ kind: Ev.MSI, dev: DEV, a: MVEC, b: 1 }]);
    msixSetMask(c, out, DEV, ENTRY, true);
    msixSetMask(c, out, DEV, ENTRY, false);
    expect(out.deliveries).toHaveLength(1);
  });

  it('an unmasked entry sends at once and latches nothing: one message per notify', () => {
    const { c, out } = setup();
    msixSetMask(c, out, DEV, ENTRY, false);
    expect(out.deliveries).toEqual([]); // nothing was pending
    msixNotify(c, out, DEV, ENTRY);
    msixNotify(c, out, DEV, ENTRY);
    expect(out.deliveries).toEqual([
      { vector: MVEC, level: false },
      { vector: MVEC, level: false },
    ]);
    expect(c.msix.pending[idx]).toBe(0);
    expect(c.lapic.tmr[MVEC]).toBe(0);
    // The EOI of an edge (MSI) vector touches no IOAPIC pin.
    lapicAck(c.lapic, MVEC);
    out.clear();
    lapicEoi(c, out, MVEC);
    expect(out.events).toEqual([{ kind: Ev.EOI, dev: -1, a: MVEC, b: 0 }]);
  });

  it('entries are independent: another entry keeps its own pending bit', () => {
    const { c, out } = setup();
    msixNotify(c, out, DEV, 0);
    msixSetMask(c, out, DEV, ENTRY, false);
    expect(out.deliveries).toEqual([]);
    expect(c.msix.pending[DEV * 2]).toBe(1);
    msixSetMask(c, out, DEV, 0, false);
    expect(out.deliveries).toEqual([{ vector: vectorOfMsix(DEV, 0), level: false }]);
  });
});

describe('local APIC', () => {
  it('offers the highest requested vector first', () => {
    const { c } = setup();
    const l = c.lapic;
    expect(lapicDeliverable(l)).toBe(-1);
    lapicAccept(l, 0x31, true);
    lapicAccept(l, 0x62, false);
    lapicAccept(l, 0x45, true);
    expect(lapicDeliverable(l)).toBe(0x62);
    lapicAck(l, 0x62);
    expect(l.irr[0x62]).toBe(0);
    expect(l.isr[0x62]).toBe(1);
  });

  it('holds a vector whose priority class does not beat the in-service one', () => {
    const { c, out } = setup();
    const l = c.lapic;
    lapicAccept(l, 0x45, false);
    lapicAck(l, 0x45);
    lapicAccept(l, 0x4f, false); // same class 4
    lapicAccept(l, 0x31, false); // lower class
    expect(lapicDeliverable(l)).toBe(-1);
    lapicAccept(l, 0x50, false); // class 5 preempts
    expect(lapicDeliverable(l)).toBe(0x50);
    lapicAck(l, 0x50);
    expect(lapicDeliverable(l)).toBe(-1);
    lapicEoi(c, out, 0x50);
    expect(lapicDeliverable(l)).toBe(-1); // 0x45 still in service
    lapicEoi(c, out, 0x45);
    expect(lapicDeliverable(l)).toBe(0x4f);
    lapicAck(l, 0x4f);
    lapicEoi(c, out, 0x4f);
    expect(lapicDeliverable(l)).toBe(0x31);
  });

  it('a vector already requested stays one request (IRR is a bit)', () => {
    const { c, out } = setup();
    lapicAccept(c.lapic, 0x40, false);
    lapicAccept(c.lapic, 0x40, false);
    lapicAck(c.lapic, 0x40);
    lapicEoi(c, out, 0x40);
    expect(lapicDeliverable(c.lapic)).toBe(-1);
  });

  it('acking a vector that is not requested is a model assertion', () => {
    const { c } = setup();
    expect(() => lapicAck(c.lapic, 0x33)).toThrow(ModelAssertError);
  });
});

describe('i440fx PIIX3 routing (pci_slot_get_pirq, SeaBIOS pci_irqs)', () => {
  it('maps a slot and INTx pin to PIRQ (slot - 1 + pin) & 3', () => {
    // Slot 3 (the first after host bridge, PIIX3 and VGA) INTA is PIRQC; slot 6 INTA wraps to PIRQB.
    expect([3, 4, 5, 6].map((slot) => pciSlotGetPirq(slot, 0))).toEqual([2, 3, 0, 1]);
    expect([0, 1, 2, 3].map((pin) => pciSlotGetPirq(3, pin))).toEqual([2, 3, 0, 1]);
  });

  it('routes PIRQA-D to ISA IRQs 10, 10, 11, 11, level-triggered in the ELCR', () => {
    expect(PIRQ_ISA_IRQ).toEqual([10, 10, 11, 11]);
    expect(BIOS_ELCR).toBe((1 << 10) | (1 << 11));
    expect(makeIrqchip(1).pic.elcr).toBe(BIOS_ELCR);
  });

  it('drives an ISA IRQ with the OR of the PIRQs routed to it, into the i8259 and the IOAPIC', () => {
    const { c, out } = setup();
    ioapicProgram(c, out, 10, true);
    const pins = (): number[][] => out.of(Ev.PIN).map((e) => [e.dev, e.a]);
    pciSetIrq(c, out, 0, 0, 1); // PIRQA
    pciSetIrq(c, out, 1, 1, 1); // PIRQB, the same IRQ 10
    expect(pins()).toEqual([[10, 1]]);
    expect(c.pic.irr & (1 << 10)).not.toBe(0); // ELCR level: the request follows the input
    pciSetIrq(c, out, 0, 0, 0);
    expect(c.ioapic.level[10]).toBe(1);
    pciSetIrq(c, out, 1, 1, 0);
    expect(pins()).toEqual([
      [10, 1],
      [10, 0],
    ]);
    expect(c.pic.irr & (1 << 10)).toBe(0);
    // IRQ 11 (PIRQC, PIRQD) never moved.
    expect(c.ioapic.level[11]).toBe(0);
  });
});
