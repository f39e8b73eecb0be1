import { Ev, MigPhase, RunState } from '../model/events.js';
import { Stopwatches } from './deadline.js';
import type { Oracle, OracleContext } from './types.js';

/**
 * lost-interrupt: a device raised its line (or sent an MSI-X message) and the guest's handler
 * for it did not run within the deadline, counting only running time with the interrupt
 * unmasked. A line the guest lowered (it read the device) also settles the debt.
 *
 * A source's devices keep running after it saved its state (the 16550 has no vm-state
 * handler): what they raise then is not in the stream, so it does not follow the guest to
 * the destination; it counts again only if the migration fails and the source goes on.
 */
export function lostInterrupt({ world, params, report }: OracleContext): Oracle {
  const n = world.deviceNames.length;
  const watch = new Stopwatches(world, n, params.deadlineNs);
  const fired = new Uint8Array(n);
  /** Per VM: it saved its state for a migration (and has not run since). */
  const saved = [false, false];
  /** Per VM: a source whose migration completed; its devices no longer serve the guest. */
  const gone = [false, false];
  /** Per VM, per device: raised since that save. */
  const raisedAfterSave = [new Uint8Array(n), new Uint8Array(n)];
  const start = (vm: number, dev: number): void => {
    if (gone[vm]) return;
    // A debt from before the save travels; one that starts after it does not.
    if (saved[vm] && !watch.running(vm, dev)) raisedAfterSave[vm]![dev] = 1;
    watch.start(vm, dev);
  };
  const expired = (dev: number, at: number): void => {
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
  };
  const check = (vm: number): void => watch.expired(vm, expired);
  return {
    kinds: [Ev.DEV_IRQ, Ev.MSI, Ev.HANDLER, Ev.IRQ_MASK, Ev.RUN_STATE, Ev.MIGRATION],
    onEvent(_at, kind, vm, dev, a) {
      switch (kind) {
        case Ev.DEV_IRQ:
          if (a === 1) start(vm, dev);
          else watch.stop(vm, dev);
          return;
        case Ev.MSI:
          start(vm, dev);
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
          if (a === RunState.RUNNING || a === RunState.PAUSED || a === RunState.INMIGRATE) {
            saved[vm] = false;
            gone[vm] = false;
            raisedAfterSave[vm]!.fill(0);
          }
          return;
        case Ev.MIGRATION:
          if (a === MigPhase.SAVED) saved[vm] = true;
          else if (a === MigPhase.COMPLETED) {
            const from = 1 - vm;
            for (let d = 0; d < n; d++) if (raisedAfterSave[from]![d]) watch.stop(from, d);
            watch.migrate(from, vm, true);
            gone[from] = true;
          } else if (a === MigPhase.FAILED) watch.reset(vm);
          return;
      }
    },
    finish() {
      check(world.active);
    },
  };
}
