import { Ev, MigPhase } from '../model/events.js';
import { Stopwatches } from './deadline.js';
import type { Oracle, OracleContext } from './types.js';

/**
 * lost-interrupt: a device raised its line (or sent an MSI-X message) and the guest's handler
 * for it did not run within the deadline, counting only running time with the interrupt
 * unmasked. A line the guest lowered (it read the device) also settles the debt.
 */
export function lostInterrupt({ world, params, report }: OracleContext): Oracle {
  const n = world.deviceNames.length;
  const watch = new Stopwatches(world, n, params.deadlineNs);
  const fired = new Uint8Array(n);
  const check = (vm: number): void =>
    watch.expired(vm, (dev, at) => {
      if (fired[dev]) return;
      fired[dev] = 1;
      const device = world.deviceNames[dev]!;
      report(
        {
          oracle: 'lost-interrupt',
          device,
          at,
          message: `${device} raised an interrupt and the guest's handler did not run within ${params.deadlineNs / 1e6} ms`,
        },
        'handler-not-run',
      );
    });
  return {
    kinds: [Ev.DEV_IRQ, Ev.MSI, Ev.HANDLER, Ev.IRQ_MASK, Ev.RUN_STATE, Ev.MIGRATION],
    onEvent(_at, kind, vm, dev, a) {
      switch (kind) {
        case Ev.DEV_IRQ:
          if (a === 1) watch.start(vm, dev);
          else watch.stop(vm, dev);
          return;
        case Ev.MSI:
          watch.start(vm, dev);
          return;
        case Ev.HANDLER:
          watch.stop(vm, dev);
          return;
        case Ev.IRQ_MASK:
          check(vm);
          watch.setPaused(vm, dev, a === 1);
          return;
        case Ev.RUN_STATE:
          check(vm);
          return;
        case Ev.MIGRATION:
          if (a === MigPhase.COMPLETED) watch.migrate(1 - vm, vm, () => true);
          else if (a === MigPhase.FAILED) watch.reset(vm);
          return;
      }
    },
    finish() {
      check(world.active);
    },
  };
}
