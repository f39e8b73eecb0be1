import { Ev } from '../model/events.js';
import type { Oracle, OracleContext } from './types.js';

/**
 * stale-guest-view: at the end of the run, the guest's driver believes something about a
 * virtio-serial port that the device contradicts: the host connection (learnt only from
 * PORT_OPEN events, seed bug A) or whether the guest has the port open. Only states that
 * have held for the settle period of guest time are judged (an event may be in flight).
 */
export function staleGuestView({ world, params, report }: OracleContext): Oracle {
  /** Guest vm time of the last change that the guest could still be catching up with. */
  let lastChangeV = 0;
  return {
    kinds: [Ev.HOST_CONNECTED, Ev.GUEST_VIEW, Ev.MIGRATION, Ev.CTRL_TO_HOST],
    onEvent(_at, _kind, vm) {
      if (vm === world.active || _kind === Ev.MIGRATION) lastChangeV = world.vms[vm]?.vmNow() ?? lastChangeV;
    },
    finish() {
      const m = world.guestVm;
      if (m.vmNow() - lastChangeV < params.settleNs) return;
      for (const [dev, d] of m.devices.entries()) {
        const drv = m.ram.guest.drivers[dev];
        // A guest that keeps the interrupt masked chose not to hear about changes.
        if (d.kind !== 'vser' || drv?.kind !== 'vser' || !drv.d.ready || m.ram.guest.disabled[dev]) continue;
        for (const p of d.s.ports) {
          const view = drv.d.ports.find((v) => v.id === p.id);
          if (!view?.added) continue;
          if (view.hostConnected !== p.hostConnected) {
            report(
              {
                oracle: 'stale-guest-view',
                device: d.name,
                at: world.hostNow,
                message: `the guest believes ${d.name} port ${p.id}'s host is ${view.hostConnected ? 'connected' : 'disconnected'}, the device says ${p.hostConnected ? 'connected' : 'disconnected'}`,
              },
              'host-connected',
            );
          }
          if (view.open !== p.guestConnected) {
            report(
              {
                oracle: 'stale-guest-view',
                device: d.name,
                at: world.hostNow,
                message: `the guest has ${d.name} port ${p.id} ${view.open ? 'open' : 'closed'}, the device says guest_connected=${p.guestConnected ? 1 : 0}`,
              },
              'guest-connected',
            );
          }
        }
      }
    },
  };
}
