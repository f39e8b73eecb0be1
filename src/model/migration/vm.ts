import { assert } from '../assert.js';
import { Ev, MigPhase } from '../events.js';
import { IOAPIC_PINS, makeLapic, NUM_PIRQS, PIRQ_ISA_IRQ } from '../irqchip.js';
import type { Machine } from '../machine.js';
import { MAX_HORIZON_NS } from '../schedule/limits.js';
import { uartLoadHazard } from '../uart16550/uart.js';
import type { DeviceHazard, MigCtx } from './context.js';
import { doctoredUart, doctoredVser } from './hostile.js';
import { type SerialImage, serialSection, serialStateSection } from './serial-section.js';
import { LoadError, StreamReader, StreamWriter } from './stream.js';
import { FIRST_VSER_SLOT, type VserImage, virtioConsoleSection } from './virtio-section.js';
import {
  field,
  loadSection,
  loadStream,
  saveSection,
  saveStream,
  type VmEntry,
  type VmSection,
  vmEntry,
} from './vmstate.js';

/**
 * A VM's sections in registration order (MODEL.md §5): the vm_clock, CPU/LAPIC and the
 * interrupt controllers (board devices) first, then each serial, then each virtio-serial.
 * Devices' sections are described as data (serial-section.ts, virtio-section.ts); this file
 * holds the board's and the save/load entry points.
 */

/** The vm_clock (QEMU's "timer" section: cpu_clock_offset): guest time continues. */
interface ClockImage {
  m: Machine;
  vmNs: number;
}
const timerSection: VmSection<ClockImage, MigCtx> = {
  name: 'timer',
  version: 2,
  minVersion: 2,
  // Guest time never passes host time, which ends at the horizon: a larger value (up to
  // 2^53) would overflow the timers' arithmetic once the destination runs.
  fields: [field<ClockImage>('vmNs', 'i64', { min: 0, max: MAX_HORIZON_NS })],
  subsections: [],
  preSave: (o) => {
    o.vmNs = o.m.vmNow();
  },
  postLoad: (o) => {
    o.m.clock.frozenNs = o.vmNs;
    return null;
  },
};

/** The local APIC: IRR/ISR/TMR as 256-bit maps. */
interface LapicImage {
  m: Machine;
  irr: Uint8Array;
  isr: Uint8Array;
  tmr: Uint8Array;
}
const packBits = (flags: Uint8Array): Uint8Array => {
  const out = new Uint8Array(flags.length >> 3);
  for (let i = 0; i < flags.length; i++) if (flags[i]) out[i >> 3]! |= 1 << (i & 7);
  return out;
};
/** Into a fresh (all-zero) map: only the nonzero bytes' bits are written (most maps are empty). */
const unpackBits = (bits: Uint8Array, into: Uint8Array): void => {
  for (let j = 0; j < into.length >> 3; j++) {
    const b = bits[j]!;
    if (b !== 0) for (let k = 0; k < 8; k++) into[8 * j + k] = (b >> k) & 1;
  }
};
const apicSection: VmSection<LapicImage, MigCtx> = {
  name: 'apic',
  version: 3,
  minVersion: 3,
  fields: [
    field<LapicImage>('irr', { buffer: 32 }),
    field<LapicImage>('isr', { buffer: 32 }),
    field<LapicImage>('tmr', { buffer: 32 }),
  ],
  subsections: [],
  preSave: (o) => {
    o.irr = packBits(o.m.irq.lapic.irr);
    o.isr = packBits(o.m.irq.lapic.isr);
    o.tmr = packBits(o.m.irq.lapic.tmr);
  },
  postLoad: (o, ctx) => {
    const staged = makeLapic();
    unpackBits(o.irr, staged.irr);
    unpackBits(o.isr, staged.isr);
    unpackBits(o.tmr, staged.tmr);
    // The model's CPU takes a vector and EOIs it in one event: at rest nothing is in service,
    // and an ISR bit from a stream would block every vector below it for good.
    if (staged.isr.includes(1)) return { message: 'apic: a vector is in service at rest', key: 'apic-isr' };
    // 78d6a05d: the LAPIC is installed in its own post_load; before it, only at the end of
    // the whole load (cpu_synchronize_all_post_init), see loadVm.
    if (ctx.rev.lapicLoad === 'post-load') o.m.irq.lapic = staged;
    else o.m.stagedLapic = staged;
    return null;
  },
};

const picSection: VmSection<Machine['irq']['pic'], MigCtx> = {
  name: 'i8259',
  version: 1,
  minVersion: 1,
  fields: [field('lastIrr', 'u16'), field('irr', 'u16'), field('imr', 'u16'), field('elcr', 'u16')],
  subsections: [],
};

/** The PCI bus's per-PIRQ count of raised devices (vmstate_pcibus irq_count). */
interface PciBusImage {
  m: Machine;
  counts: Uint8Array;
}
const pciBusSection: VmSection<PciBusImage, MigCtx> = {
  name: 'PCIBUS',
  version: 1,
  minVersion: 1,
  fields: [field<PciBusImage>('counts', { buffer: NUM_PIRQS })],
  subsections: [],
  preSave: (o) => {
    o.counts = Uint8Array.from(o.m.irq.pci.pirqCount);
  },
  postLoad: (o) => {
    o.m.irq.pci.pirqCount.set(o.counts);
    return null;
  },
};

/**
 * The IOAPIC: IRR and the 24 redirection entries in their hardware layout (vector 0-7,
 * Remote-IRR bit 14, trigger mode bit 15, mask bit 16). Input levels are not IOAPIC state:
 * they come back from the i8259's edge memory (ISA) and the PCI counts once every section
 * is loaded (settleIoapicInputs).
 */
interface IoapicImage {
  m: Machine;
  irr: number;
  redir: Uint8Array;
}
const REMOTE_IRR = 1 << 14;
const LEVEL = 1 << 15;
const MASKED = 1 << 16;
const ioapicSection: VmSection<IoapicImage, MigCtx> = {
  name: 'ioapic',
  version: 3,
  minVersion: 3,
  fields: [field<IoapicImage>('irr', 'u32'), field<IoapicImage>('redir', { buffer: IOAPIC_PINS * 4 })],
  subsections: [],
  preSave: (o) => {
    const io = o.m.irq.ioapic;
    o.irr = 0;
    o.redir = new Uint8Array(IOAPIC_PINS * 4);
    const view = new DataView(o.redir.buffer);
    for (let pin = 0; pin < IOAPIC_PINS; pin++) {
      if (io.irr[pin]) o.irr |= 1 << pin;
      const entry =
        io.vector[pin]! |
        (io.remoteIrr[pin] ? REMOTE_IRR : 0) |
        (io.levelTriggered[pin] ? LEVEL : 0) |
        (io.masked[pin] ? MASKED : 0);
      view.setUint32(pin * 4, entry);
    }
    o.irr >>>= 0;
  },
  postLoad: (o) => {
    const io = o.m.irq.ioapic;
    const view = new DataView(o.redir.buffer, o.redir.byteOffset, o.redir.byteLength);
    for (let pin = 0; pin < IOAPIC_PINS; pin++) {
      const entry = view.getUint32(pin * 4);
      io.vector[pin] = entry & 0xff;
      io.remoteIrr[pin] = entry & REMOTE_IRR ? 1 : 0;
      io.levelTriggered[pin] = entry & LEVEL ? 1 : 0;
      io.masked[pin] = entry & MASKED ? 1 : 0;
      io.irr[pin] = (o.irr >>> pin) & 1;
    }
    // The i8259 and the PCI bus came first: devices whose post_load moves their line (1.x
    // serial_post_load) then change it from the loaded level, not from the fresh one.
    settleIoapicInputs(o.m);
    return null;
  },
};

/**
 * The IOAPIC's input levels, once every section is in (a stream may order them as it likes):
 * the PIIX3's PCI IRQs from the bus's counts (the OR of the PIRQs routed to each, as
 * piix3_post_load recomputes pic_levels), the other ISA pins from the i8259's edge memory. A
 * level-triggered pin's IRR follows its input (ioapic_set_irq), whatever the stream said.
 * An older piix3_post_load (piix3_update_irq_levels, before piix3_set_irq_level_internal's
 * "without raising the interrupt") raised these IRQs into the i8259 and IOAPIC before their
 * sections loaded: here those sections overwrite everything such a raise touches (a fresh
 * IOAPIC has every entry masked), and the model has no i8259 INTR path to the CPU (KVM's
 * in-kernel irqchip, an APIC guest), so that version would load the same.
 */
function settleIoapicInputs(m: Machine): void {
  const { ioapic: io, pic, pci } = m.irq;
  for (let pin = 0; pin < IOAPIC_PINS; pin++) {
    io.level[pin] = pin < 16 ? (pic.lastIrr >> pin) & 1 : 0;
    if (PIRQ_ISA_IRQ.includes(pin)) {
      io.level[pin] = 0;
      for (let p = 0; p < NUM_PIRQS; p++)
        if (PIRQ_ISA_IRQ[p] === pin && pci.pirqCount[p]! > 0) io.level[pin] = 1;
    }
    if (io.levelTriggered[pin]) io.irr[pin] = io.level[pin]!;
  }
}

/**
 * An image's buffer before its preSave (a save) or its field (a load) sets it: neither reads
 * the one before, so the images need no buffers of their own.
 */
const FILLED_LATER = new Uint8Array(0);

/**
 * The entries of a machine, in registration order; fresh adapter objects each time. `hostile`
 * (by device index): a hostile source's serial (or virtio) fields, saved instead of the device's own.
 */
function entries(m: Machine, hostile?: ReadonlyMap<number, Record<string, number>>): VmEntry<MigCtx>[] {
  const list: VmEntry<MigCtx>[] = [
    vmEntry(timerSection, { m, vmNs: 0 }),
    vmEntry(apicSection, { m, irr: FILLED_LATER, isr: FILLED_LATER, tmr: FILLED_LATER }),
    vmEntry(picSection, m.irq.pic),
    vmEntry(pciBusSection, { m, counts: FILLED_LATER }),
    vmEntry(ioapicSection, { m, irr: 0, redir: FILLED_LATER }),
  ];
  let serials = 0;
  let vsers = 0;
  for (const [dev, d] of m.devices.entries()) {
    if (d.kind === 'uart') {
      const section = serialSection(m.build.revisions);
      const edits = hostile?.get(dev);
      const img: SerialImage = { m, dev, s: edits ? doctoredUart(d.s, edits) : d.s, fcrVmstate: 0 };
      list.push(vmEntry(section, img, serials++));
      // c9808d6028 to f602d047: the core SerialState device registered vmstate_serial too, on
      // the same state; a stream from a build without it loads all the same.
      // Not wrapped: vmstate_serial itself, read at the section's version.
      if (m.build.revisions.serialVmsd === 'isa-and-core') {
        const core = serialStateSection(m.build.revisions);
        list.push({ ...vmEntry(core, { ...img }, serials++), optional: true });
      }
    } else {
      const edits = hostile?.get(dev);
      const img: VserImage = { m, s: edits ? doctoredVser(d.s, edits) : d.s };
      // Each at its own PCI address: its own idstr, instance 0.
      list.push(vmEntry(virtioConsoleSection(FIRST_VSER_SLOT + vsers++), img));
    }
  }
  return list;
}

const ctxOf = (m: Machine): MigCtx => ({
  m,
  rev: m.build.revisions,
  pre22: m.machineType.migratePre22,
  hazards: [],
});

/**
 * qemu_savevm_state_complete: the stopped source's device state as a stream; with `hostile`,
 * a doctored source's (migration/hostile.ts).
 */
export function saveVm(m: Machine, hostile?: ReadonlyMap<number, Record<string, number>>): Uint8Array {
  assert(!m.running, 'saveVm: the source must be stopped');
  return saveStream(entries(m, hostile), ctxOf(m), m.machineType.name);
}

/**
 * qemu_loadvm_state on an incoming destination: every section (loadSections), then the end of
 * the load (finishLoad). Throws LoadError (refused: the caller discards the destination);
 * returns what was accepted but will be mishandled (empty when all is well).
 */
export function loadVm(m: Machine, stream: Uint8Array): DeviceHazard[] {
  return finishLoad(m, loadSections(m, stream));
}

/** The sections of the stream, up to its end marker. Throws LoadError; returns the hazards so far. */
export function loadSections(m: Machine, stream: Uint8Array): DeviceHazard[] {
  const ctx = ctxOf(m);
  loadStream(stream, entries(m), ctx, m.machineType.name);
  // What the sections left the devices with, judged before anything can run on it.
  for (const d of m.devices) {
    const hazard = d.kind === 'uart' ? uartLoadHazard(d.s) : null;
    if (hazard) ctx.hazards.push({ dev: d.s.dev, ...hazard });
  }
  return ctx.hazards;
}

/**
 * The end of the load: cross-section checks, then (pre-2017 builds) the LAPIC from the stream
 * is pushed (cpu_synchronize_all_post_init), overwriting whatever was delivered to the CPU
 * during the load. Throws LoadError; returns `hazards`.
 */
export function finishLoad(m: Machine, hazards: DeviceHazard[] = []): DeviceHazard[] {
  checkPciCounts(m);
  settleIoapicInputs(m);
  const staged = m.stagedLapic;
  if (staged) {
    m.stagedLapic = null;
    let lost = 0;
    for (let v = 0; v < 256; v++) if (m.irq.lapic.irr[v] && !staged.irr[v]) lost++;
    m.irq.lapic = staged;
    m.emit(Ev.MIGRATION, -1, MigPhase.LAPIC_PUSH, lost);
  }
  return hazards;
}

/** The bus's counts must be the sum of the devices' INTx levels (pci_change_irq_level). */
function checkPciCounts(m: Machine): void {
  const sums = new Int32Array(NUM_PIRQS);
  for (const [dev, d] of m.devices.entries()) {
    if (d.kind === 'vser' && !d.s.msix) sums[d.s.pirq]! += m.irq.pci.irqState[dev]!;
  }
  for (let p = 0; p < NUM_PIRQS; p++) {
    if (sums[p] !== m.irq.pci.pirqCount[p]) {
      throw new LoadError(
        `PCIBUS: irq_count[${p}]=${m.irq.pci.pirqCount[p]} but ${sums[p]} device(s) assert it`,
        'pci-irq-count',
        'PCIBUS',
        0,
      );
    }
  }
}

/** One device's section as QEMU frames it: idstr, instance id, version, and the body bytes. */
export interface DeviceSection {
  idstr: string;
  instanceId: number;
  version: number;
  body: Uint8Array;
}

function deviceEntry(
  m: Machine,
  dev: number,
  hostile?: ReadonlyMap<number, Record<string, number>>,
): VmEntry<MigCtx> {
  const d = m.devices[dev];
  assert(d !== undefined, `no device ${dev}`);
  // The board's five sections come first, then the devices in order (entries()), a UART
  // twice on 'isa-and-core' builds (its first entry is the isa-serial one).
  const twice = m.build.revisions.serialVmsd === 'isa-and-core';
  let at = 5;
  for (let i = 0; i < dev; i++) at += twice && m.devices[i]!.kind === 'uart' ? 2 : 1;
  return entries(m, hostile)[at]!;
}

/**
 * The section a stopped VM saves for one device (what `stream craft` writes into a real
 * stream); with `hostile`, a doctored source's (saveVm).
 */
export function saveDeviceSection(
  m: Machine,
  dev: number,
  hostile?: ReadonlyMap<number, Record<string, number>>,
): DeviceSection {
  const e = deviceEntry(m, dev, hostile);
  const w = new StreamWriter(256);
  saveSection(w, e.section, e.obj, ctxOf(m));
  return { idstr: e.section.name, instanceId: e.instanceId, version: e.section.version, body: w.finish() };
}

/**
 * One device's section body, loaded as qemu_loadvm_section_start_full does (its version
 * checks, fields, subsections, post_load), with nothing after it. Throws LoadError; returns
 * the hazards it left, as loadSections judges them.
 */
export function loadDeviceSection(
  m: Machine,
  dev: number,
  versionId: number,
  body: Uint8Array,
): DeviceHazard[] {
  const e = deviceEntry(m, dev);
  const ctx = ctxOf(m);
  const r = new StreamReader(body);
  loadSection(r, e.section, e.obj, ctx, versionId);
  if (r.remaining > 0)
    throw new LoadError(
      `${e.section.name}: ${r.remaining} bytes after the section's state`,
      'trailing-bytes',
      e.section.name,
      e.instanceId,
    );
  const d = m.devices[dev]!;
  const hazard = d.kind === 'uart' ? uartLoadHazard(d.s) : null;
  if (hazard) ctx.hazards.push({ dev, ...hazard });
  return ctx.hazards;
}
