import { Ev, MigPhase } from '../model/events.js';
import type { Oracle, OracleContext } from './types.js';

/**
 * migration-failed: the destination rejected the stream. The schedule validator already
 * guarantees a supported pair (a machine type both builds offer), so every rejection counts.
 */
export function migrationFailed({ world, report }: OracleContext): Oracle {
  return {
    kinds: [Ev.MIGRATION],
    onEvent(at, _kind, _vm, _dev, phase, index) {
      if (phase !== MigPhase.FAILED) return;
      const f = world.failures[index]!;
      report({ oracle: 'migration-failed', device: f.device, at, message: f.message }, f.key);
    },
    finish() {},
  };
}
