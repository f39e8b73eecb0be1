import { describe, expect, it } from 'vitest';
import { RunState } from '../../../src/model/events.js';
import { PCI_GSI_BASE, pciSetIrq } from '../../../src/model/irqchip.js';
import { cloneRam, Machine } from '../../../src/model/machine.js';
import { builtinRegistry, findMachine } from '../../../src/model/migration/builds.js';
import { LoadError } from '../../../src/model/migration/stream.js';
import { loadVm, saveVm } from '../../../src/model/migration/vm.js';
import { validateSchedule } from '../../../src/model/schedule/validate.js';
import { World } from '../../../src/model/world.js';

/**
 * States an honest source never saves, written by a doctored source: the destination must
 * refuse them with a LoadError (or settle them) instead of running into a broken invariant
 * later, once it runs or migrates again (MODEL.md §5: a hostile stream never leaves a device
 * in a state that breaks its invariants).
 */

const builds = builtinRegistry();
const US = 1_000;
const MS = 1_000_000;

/** A stopped source with a UART and a virtio-serial port the guest opened. */
function stoppedSource(): { src: Machine; dst: () => Machine } {
  const s = validateSchedule(
    {
      format: 'migfuzz.schedule',
      version: 1,
      seed: 1,
      machine: 'pc-i440fx-9.2',
      src: { build: 'qemu-9.2', backends: { 'vser0.port1': 'socket' } },
      dst: { build: 'qemu-9.2', backends: { 'vser0.port1': 'socket' } },
      devices: {
        uart0: { kind: 'isa-serial', irq: 4 },
        vser0: { kind: 'virtio-serial', irq: 'intx', ports: [{ id: 1 }] },
      },
      steps: [
        { at: 500 * US, do: 'guest.uart.config', dev: 'uart0', fifo: true },
        { at: 500 * US, do: 'guest.vport.open', dev: 'vser0', port: 1 },
      ],
      horizon: 2 * MS,
    },
    builds,
  );
  const world = new World(s, { builds });
  expect(world.run().kind).toBe('horizon');
  const src = world.guestVm;
  src.vmStop(RunState.FINISH_MIGRATE);
  const build = builds.get('qemu-9.2')!;
  const dst = (): Machine => {
    const m = new Machine(world, {
      vm: 1,
      build,
      machineType: findMachine(build, s.machine)!,
      devices: Object.entries(s.devices),
      backends: s.dst.backends as Record<string, string>,
      ram: cloneRam(src.ram),
    });
    m.startIncoming();
    return m;
  };
  return { src, dst };
}

const vserOf = (m: Machine) => {
  const d = m.devices[1]!;
  if (d.kind !== 'vser') throw new Error('device 1 is not virtio-serial');
  return d.s;
};
const uartOf = (m: Machine) => {
  const d = m.devices[0]!;
  if (d.kind !== 'uart') throw new Error('device 0 is not a UART');
  return d.s;
};

function loadError(dst: Machine, stream: Uint8Array): LoadError {
  try {
    loadVm(dst, stream);
  } catch (e) {
    if (e instanceof LoadError) return e;
    throw e;
  }
  throw new Error('the load succeeded');
}

describe('a doctored source', () => {
  it('a popped element at offset -1 (int64 all ones) is out of range', () => {
    const { src, dst } = stoppedSource();
    vserOf(src).ports[0]!.elem = { id: 0, offset: -1 };
    expect(loadError(dst(), saveVm(src)).message).toMatch(/port 1: popped element out of range/);
  });

  it('a popped element that is not in flight (nothing popped from its queue)', () => {
    const { src, dst } = stoppedSource();
    vserOf(src).ports[0]!.elem = { id: 0, offset: 0 };
    const e = loadError(dst(), saveVm(src));
    expect(e.message).toMatch(/port 1: popped element 0 is not in flight/);
    expect(e.key).toBe('elem');
  });

  it('a TSR retry with THRE clear and an empty transmit FIFO (FIFO mode)', () => {
    const { src, dst } = stoppedSource();
    const u = uartOf(src);
    expect(u.fcr & 1).toBe(1);
    u.lsr &= ~0x60; // THRE and TEMT clear: TSR and the FIFO said to hold bytes
    u.tsrRetry = 1;
    const e = loadError(dst(), saveVm(src));
    expect(e.key).toBe('xmit-fifo-empty');
    expect(e.message).toMatch(
      /^inconsistent state in serial device \(THRE clear with an empty transmit FIFO/,
    );
  });

  it('a vm_clock past the longest run', () => {
    const { src, dst } = stoppedSource();
    src.clock.frozenNs = Number.MAX_SAFE_INTEGER;
    expect(loadError(dst(), saveVm(src)).message).toMatch(/^timer: field vmNs: value .* out of range/);
  });

  it('a LAPIC vector in service at rest', () => {
    const { src, dst } = stoppedSource();
    src.irq.lapic.isr[0xff] = 1;
    expect(loadError(dst(), saveVm(src)).key).toBe('apic-isr');
  });

  it('the ioapic section before PCIBUS: input levels come from the bus however the stream is ordered', () => {
    const { src, dst } = stoppedSource();
    const vs = vserOf(src);
    vs.isr = 1;
    pciSetIrq(src.irq, src, 1, vs.pirq, 1);
    const gsi = PCI_GSI_BASE + vs.pirq;
    expect(src.irq.ioapic.level[gsi]).toBe(1);
    const stream = saveVm(src);
    const at = (name: string): number => {
      const bytes = [name.length, ...[...name].map((c) => c.charCodeAt(0))];
      for (let i = 0; i < stream.length; i++) if (bytes.every((b, j) => stream[i + j] === b)) return i - 5;
      throw new Error(`no section ${name}`);
    };
    // Records are contiguous: PCIBUS, then ioapic, then serial. Swap the first two.
    const pci = at('PCIBUS');
    const io = at('ioapic');
    const end = at('serial');
    const swapped = Uint8Array.from([
      ...stream.subarray(0, pci),
      ...stream.subarray(io, end),
      ...stream.subarray(pci, io),
      ...stream.subarray(end),
    ]);
    const m = dst();
    loadVm(m, swapped);
    expect(m.irq.pci.pirqCount[vs.pirq]).toBe(1);
    expect(m.irq.ioapic.level[gsi]).toBe(1);
  });
});
