import { Ev, MigPhase } from '../model/events.js';
import { IOAPIC_PINS } from '../model/irqchip.js';
import type { Machine } from '../model/machine.js';
import { Stopwatches } from './deadline.js';
import type { Oracle, OracleContext } from './types.js';

function allDisabled(m: Machine, vector: number): boolean {
  const devs = m.vectorDevs.get(vector);
  if (!devs || devs.length === 0) return false;
  for (const d of devs) if (!m.ram.guest.disabled[d]) return false;
  return true;
}

/**
 * stuck-irq-line: while the VM runs, a pin stays asserted past the deadline although the
 * interrupt controller can no longer deliver it: a level pin with Remote-IRR latched and
 * nothing pending or in service at the CPU (seed bug A), or an edge input held high with
 * nothing pending (no new 0→1 edge will ever come).
 */
export function stuckIrqLine({ world, params, report }: OracleContext): Oracle {
  const watch = new Stopwatches(world, IOAPIC_PINS, params.deadlineNs);
  const fired = new Set<string>();
  const stuckKey = (m: Machine, gsi: number): string | null => {
    const io = m.irq.ioapic;
    if (!io.level[gsi] || io.masked[gsi]) return null;
    const v = io.vector[gsi]!;
    if (m.irq.lapic.irr[v] || m.irq.lapic.isr[v]) return null;
    // The guest disabled every device on the pin: it chose not to listen.
    if (allDisabled(m, v)) return null;
    if (io.levelTriggered[gsi]) return io.remoteIrr[gsi] ? 'remote-irr' : null;
    return 'edge-held';
  };
  const updatePin = (vm: number, m: Machine, gsi: number): void => {
    if (stuckKey(m, gsi)) watch.start(vm, gsi);
    else watch.stop(vm, gsi);
  };
  /** Re-examine the pins that use a vector (the LAPIC side of their state changed). */
  const updateVector = (vm: number, m: Machine, vector: number): void => {
    const io = m.irq.ioapic;
    for (let gsi = 0; gsi < IOAPIC_PINS; gsi++) if (io.vector[gsi] === vector) updatePin(vm, m, gsi);
  };
  const updateAll = (vm: number): void => {
    const m = world.vms[vm];
    if (!m) return;
    const io = m.irq.ioapic;
    for (let gsi = 0; gsi < IOAPIC_PINS; gsi++) {
      // A low pin is not stuck: nothing to do unless its count runs.
      if (io.level[gsi] || watch.running(vm, gsi)) updatePin(vm, m, gsi);
    }
  };
  const check = (vm: number): void =>
    watch.expired(vm, (gsi, at) => {
      const m = world.vms[vm]!;
      const key = stuckKey(m, gsi) ?? 'remote-irr';
      for (const dev of m.vectorDevs.get(m.irq.ioapic.vector[gsi]!) ?? []) {
        const d = m.devices[dev]!;
        const high = d.kind === 'vser' ? m.irq.pci.irqState[dev] === 1 : true;
        if (!high || fired.has(`${dev}:${key}`)) continue;
        fired.add(`${dev}:${key}`);
        const why =
          key === 'remote-irr'
            ? 'Remote-IRR latched and nothing pending at the CPU'
            : 'an edge input held high';
        report(
          {
            oracle: 'stuck-irq-line',
            device: d.name,
            at,
            message: `${d.name}'s interrupt line (GSI ${gsi}) stayed asserted for ${params.deadlineNs / 1e6} ms with ${why}`,
          },
          key,
        );
      }
    });
  return {
    kinds: [
      Ev.PIN,
      Ev.REMOTE_IRR,
      Ev.IOAPIC_DELIVER,
      Ev.EOI,
      Ev.HANDLER,
      Ev.IRQ_MASK,
      Ev.RUN_STATE,
      Ev.MIGRATION,
    ],
    onEvent(_at, kind, vm, dev, a) {
      const m = world.vms[vm];
      if (!m) return;
      switch (kind) {
        case Ev.PIN:
        case Ev.REMOTE_IRR:
        case Ev.IOAPIC_DELIVER:
          return updatePin(vm, m, dev);
        case Ev.EOI:
          return updateVector(vm, m, a);
        case Ev.HANDLER:
        case Ev.IRQ_MASK: {
          const d = m.devices[dev];
          if (d && d.kind === 'uart') updatePin(vm, m, d.gsi);
          else if (d && !d.s.msix) updatePin(vm, m, d.gsi);
          return;
        }
        case Ev.RUN_STATE:
          check(vm);
          return updateAll(vm);
        case Ev.MIGRATION:
          if (a === MigPhase.FAILED) watch.reset(vm);
          if (a === MigPhase.COMPLETED) watch.reset(1 - vm);
          return updateAll(vm);
      }
    },
    finish() {
      check(world.active);
    },
  };
}
