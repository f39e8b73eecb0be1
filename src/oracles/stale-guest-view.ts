import { Ev, MigPhase } from '../model/events.js';
import { Ctrl, findPort } from '../model/virtio-serial/state.js';
import type { Oracle, OracleContext } from './types.js';

/**
 * stale-guest-view: at the end of the run, the guest's driver believes something about a
 * virtio-serial port that the device contradicts: the host connection (learnt only from
 * PORT_OPEN events, seed bug A) or whether the guest has the port open. Only states that
 * have held for the settle period of guest time are judged (an event may be in flight).
 *
 * A stale host connection has two known causes, told apart in the signature: an event the
 * guest never heard (bug A: sent during load), and an event never sent because a paused
 * destination was migrated on before its post-load timer ran. QEMU saves the port's own
 * host_connected; the post-load record of what the guest was last told is not migration
 * state, so the next destination compares against the wrong value (virtio_serial_save_device).
 *
 * Both directions are stale. A guest that believes a disconnected host is connected has its
 * writes discarded (handle_output); one that believes a connected host is disconnected blocks
 * its writers for ever (Linux will_write_block). The second needs the next destinations'
 * chardevs connected at realize (`socket-client`, QEMU's server=off): a client that connects
 * to a listening chardev (`socket-server`) while the VM does not run is announced at vm_start
 * (virtconsole_enable_backend), and the guest is told.
 */
export function staleGuestView({ world, params, report }: OracleContext): Oracle {
  /** Guest vm time of the last change that the guest could still be catching up with. */
  let lastChangeV = 0;
  /** "dev:port" whose pending PORT_OPEN a save dropped, until a later one is sent. */
  const unsent = new Set<string>();
  return {
    // IRQ_MASK: a guest that unmasks only now is only now able to catch up with what it missed.
    kinds: [Ev.HOST_CONNECTED, Ev.GUEST_VIEW, Ev.MIGRATION, Ev.CTRL_TO_HOST, Ev.CTRL_TO_GUEST, Ev.IRQ_MASK],
    onEvent(_at, kind, vm, dev, a, b) {
      if (kind === Ev.CTRL_TO_GUEST) {
        if (b >>> 16 === Ctrl.PORT_OPEN) unsent.delete(`${dev}:${a}`);
        return;
      }
      if (vm === world.active || kind === Ev.MIGRATION) lastChangeV = world.vms[vm]?.vmNow() ?? lastChangeV;
      if (kind === Ev.MIGRATION && a === MigPhase.SAVED) {
        for (const d of world.vms[vm]!.devices) {
          if (d.kind !== 'vser' || !d.s.postLoad) continue;
          const { ids, hostConnected } = d.s.postLoad;
          ids.forEach((id, i) => {
            if (hostConnected[i] !== findPort(d.s, id)?.hostConnected) unsent.add(`${d.s.dev}:${id}`);
          });
        }
      }
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
                message: view.hostConnected
                  ? `the guest believes ${d.name} port ${p.id}'s host is connected, the device says disconnected (the guest's writes are discarded)`
                  : `the guest believes ${d.name} port ${p.id}'s host is disconnected, the device says connected (the guest's writers wait for ever)`,
              },
              unsent.has(`${dev}:${p.id}`) ? 'host-connected-unsent-at-save' : 'host-connected',
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
