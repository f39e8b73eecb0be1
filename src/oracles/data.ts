import { Ev, MigPhase, RunState, streamDev, streamPort, streamToGuest } from '../model/events.js';
import { heldBytes } from './held.js';
import type { Oracle, OracleContext } from './types.js';

/**
 * data-loss and data-corruption, from byte accounting (docs/oracles.md): every byte a device
 * accepts (from the guest or its backend) joins its stream's in-flight list; a delivery must
 * match the oldest in-flight byte; a documented discard removes the byte it names. At the
 * end, in-flight bytes no VM still holds are lost.
 *
 * Backends keep running after their VM saved its state for a migration (QEMU never detaches
 * the 16550, nor virtio-console's write watch). What a saved VM's devices exchange with its
 * host waits: if the migration fails and the VM goes on, it joins the streams in order; once
 * the destination has the guest, it belongs to the old host's connections, like bytes still
 * in a backend (INTERFACE.md §2), not to the guest's streams, which continue on the
 * destination. Bytes taken before the save were part of the state: if the stream drops
 * them, they are lost.
 */
interface Stream {
  /** Accepted bytes; those before `head` were delivered. */
  bytes: number[];
  head: number;
  /** Bytes passed over by a later delivery: lost, unless they turn up (then reordered). */
  skipped: number[];
}

export function dataOracles({ world, report }: OracleContext): Oracle {
  /** Indexed by stream id (dev * 64 + port * 2 + direction). */
  const streams: (Stream | undefined)[] = [];
  const firedLoss = new Set<string>();
  /** Per VM: 'live', 'saved' (its byte events wait), or 'old' (they are the old host's). */
  const phase: ('live' | 'saved' | 'old')[] = ['live', 'live'];
  /** Per VM: the byte events of a saved VM, five numbers each: at, kind, id, byte, pos. */
  const waiting: number[][] = [[], []];
  const firedCorrupt = new Set<string>();
  const streamOf = (id: number): Stream => {
    let s = streams[id];
    if (!s) {
      s = { bytes: [], head: 0, skipped: [] };
      streams[id] = s;
    }
    return s;
  };
  const label = (id: number): string => {
    const dev = world.deviceNames[streamDev(id)]!;
    const port = streamPort(id);
    const where = world.schedule.devices[dev]?.kind === 'virtio-serial' ? `${dev} port ${port}` : dev;
    return `${where} ${streamToGuest(id) ? 'host→guest' : 'guest→host'}`;
  };
  const corrupt = (at: number, id: number, key: string, message: string): void => {
    const dev = world.deviceNames[streamDev(id)]!;
    if (firedCorrupt.has(`${dev}:${key}`)) return;
    firedCorrupt.add(`${dev}:${key}`);
    report({ oracle: 'data-corruption', device: dev, at, message }, key);
  };
  const hex = (b: number): string => `0x${b.toString(16).padStart(2, '0')}`;

  const byteEvent = (at: number, kind: number, id: number, byte: number, pos: number): void => {
    if (kind === Ev.PHANTOM_READ) {
      const dev = world.deviceNames[id]!;
      corrupt(
        at,
        id * 64 + 1,
        'phantom-read',
        `the guest read ${hex(byte)} from ${dev}'s empty receive FIFO with LSR.DR set`,
      );
      return;
    }
    const s = streamOf(id);
    if (kind === Ev.BYTE_ACCEPT) {
      s.bytes.push(byte);
      return;
    }
    const inFlight = s.bytes.length - s.head;
    if (kind === Ev.BYTE_DISCARD) {
      const i = pos < 0 ? s.bytes.length - 1 : s.head + pos;
      if (inFlight > 0 && i >= s.head && i < s.bytes.length) s.bytes.splice(i, 1);
      return;
    }
    // Delivery: must be the oldest byte in flight.
    if (inFlight > 0 && s.bytes[s.head] === byte) {
      s.head++;
      if (s.head > 4096 && s.head * 2 > s.bytes.length) {
        s.bytes.splice(0, s.head);
        s.head = 0;
      }
      return;
    }
    const late = s.skipped.indexOf(byte);
    if (late >= 0) {
      s.skipped.splice(late, 1);
      corrupt(at, id, 'reordered', `${label(id)}: ${hex(byte)} delivered after younger bytes`);
      return;
    }
    const later = s.bytes.indexOf(byte, s.head + 1);
    if (later >= 0) {
      // Older bytes were passed over: lost so far (counted at the end), reordered if they come.
      for (let i = s.head; i < later; i++) s.skipped.push(s.bytes[i]!);
      s.head = later + 1;
    } else if (inFlight > 0) {
      corrupt(
        at,
        id,
        'altered',
        `${label(id)}: delivered ${hex(byte)} where ${hex(s.bytes[s.head]!)} was expected`,
      );
      s.head++;
    } else {
      corrupt(at, id, 'duplicated', `${label(id)}: delivered ${hex(byte)} that was never sent (or twice)`);
    }
  };

  const live = (vm: number): void => {
    phase[vm] = 'live';
    const list = waiting[vm]!;
    waiting[vm] = [];
    for (let i = 0; i < list.length; i += 5)
      byteEvent(list[i]!, list[i + 1]!, list[i + 2]!, list[i + 3]!, list[i + 4]!);
  };

  return {
    kinds: [Ev.BYTE_ACCEPT, Ev.BYTE_DELIVER, Ev.BYTE_DISCARD, Ev.PHANTOM_READ, Ev.MIGRATION, Ev.RUN_STATE],
    onEvent(at, kind, vm, id, byte, pos) {
      if (kind === Ev.MIGRATION) {
        if (byte === MigPhase.SAVED) phase[vm] = 'saved';
        else if (byte === MigPhase.COMPLETED) {
          // The destination (vm) has the guest: its source's waiting events are the old host's.
          phase[1 - vm] = 'old';
          waiting[1 - vm] = [];
        }
        return;
      }
      if (kind === Ev.RUN_STATE) {
        // A failed migration's source goes on (or a new VM takes the slot): its bytes count.
        if (byte === RunState.RUNNING || byte === RunState.PAUSED || byte === RunState.INMIGRATE) {
          if (phase[vm] === 'saved') live(vm);
          else phase[vm] = 'live';
        }
        return;
      }
      if (phase[vm] === 'saved' && kind !== Ev.PHANTOM_READ) {
        waiting[vm]!.push(at, kind, id, byte, pos);
        return;
      }
      if (phase[vm] === 'old') return;
      byteEvent(at, kind, id, byte, pos);
    },
    finish() {
      const m = world.guestVm;
      for (const [id, s] of streams.entries()) {
        if (!s) continue;
        const dev = streamDev(id);
        const held = heldBytes(m, dev, streamPort(id), streamToGuest(id));
        const lost = s.skipped.length + Math.max(0, s.bytes.length - s.head - held);
        const key = streamToGuest(id) ? 'rx-lost' : 'tx-lost';
        if (lost <= 0 || firedLoss.has(`${dev}:${key}`)) continue;
        firedLoss.add(`${dev}:${key}`);
        const device = world.deviceNames[dev]!;
        const message = `${label(id)}: ${lost} byte(s) accepted were never delivered and are held nowhere`;
        report({ oracle: 'data-loss', device, at: world.hostNow, message }, key);
      }
    },
  };
}
