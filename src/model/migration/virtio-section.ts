import { MSIX_ENTRIES } from '../irqchip.js';
import type { Machine } from '../machine.js';
import { sendControlEvent } from '../virtio-serial/device.js';
import { Ctrl, findPort, inQueueOf, MAX_PORTS, NUM_QUEUES, type VserState } from '../virtio-serial/state.js';
import { u16 } from '../virtio-serial/virtqueue.js';
import type { MigCtx } from './context.js';
import { LoadError, type StreamReader } from './stream.js';
import { custom, fieldAt, type VmSection } from './vmstate.js';

/**
 * The "virtio-console" section (version 3): virtio common state (transport INTx level and
 * MSI-X bits, status, ISR, each queue's last_avail_idx), then virtio_serial_save_device
 * (config, ports_map, per-port connection state and a popped element). What happens after
 * load when a port's host connection differs from the source's is the build's revision:
 * seed bug A.
 */
export interface VserImage {
  m: Machine;
  s: VserState;
}

function fail(msg: string, key: string): never {
  throw new LoadError(`virtio-serial: ${msg}`, key);
}

/** Each queue's last_avail_idx, checked against the ring in guest RAM (virtio_load). */
const queues = custom<VserImage, MigCtx>('queues', {
  save(w, { s }) {
    w.be32(NUM_QUEUES);
    for (const q of s.queues) w.be16(q.lastAvailIdx);
  },
  load(r, { m, s }, ctx) {
    const n = r.be32();
    if (n !== NUM_QUEUES) fail(`${n} queues in the stream, the device has ${NUM_QUEUES}`, 'queue-count');
    const rings = m.rings(s.dev).rings;
    for (let q = 0; q < NUM_QUEUES; q++) {
      const last = r.be16();
      const ring = rings[q];
      if (!ring) {
        if (last !== 0)
          fail(`VQ ${q} is not set up but last_avail_idx is 0x${last.toString(16)}`, 'queue-index');
        continue;
      }
      const avail = u16(ring.availIdx - last);
      const inuse = u16(last - ring.usedIdx);
      if (avail > ring.num) {
        const msg = `VQ ${q} size 0x${ring.num.toString(16)} Guest index inconsistent with Host index`;
        if (ctx.rev.virtioGuestIndexCheck === 'fail-load') fail(msg, 'queue-index');
        // virtio_error: the device is broken until the guest resets it; the queue's indices
        // are zeroed and the load goes on.
        ctx.hazards.push({
          dev: s.dev,
          key: 'guest-index',
          message: `virtio_load: ${msg}: virtio_error marks the device broken (needs reset), the port stops moving data`,
        });
        s.queues[q]!.lastAvailIdx = last;
        s.queues[q]!.inuse = 0;
        continue;
      }
      if (inuse > ring.num)
        fail(`VQ ${q} size 0x${ring.num.toString(16)} < last_avail_idx - used_idx`, 'queue-index');
      s.queues[q]!.lastAvailIdx = last;
      s.queues[q]!.inuse = inuse;
    }
  },
});

/**
 * QEMU saves the port's own host_connected; the proposed fix saves what a post-load record
 * still pending says the guest was told, so a paused destination migrated on passes it on.
 */
function savedHostConnected(s: VserState, p: VserState['ports'][number], ctx: MigCtx): boolean {
  if (ctx.rev.virtioSerialSaveHostConnected === 'post-load-record' && s.postLoad) {
    const i = s.postLoad.ids.indexOf(p.id);
    if (i >= 0) return s.postLoad.hostConnected[i]!;
  }
  return p.hostConnected;
}

/** virtio_serial_save_device / virtio_serial_load_device + fetch_active_ports_list. */
const device = custom<VserImage, MigCtx>('device', {
  save(w, { s }, ctx) {
    w.be16(s.cols);
    w.be16(s.rows);
    w.be32(MAX_PORTS);
    w.be32(s.portsMap);
    w.be32(s.ports.length);
    for (const p of s.ports) {
      w.be32(p.id);
      w.u8(p.guestConnected ? 1 : 0);
      w.u8(savedHostConnected(s, p, ctx) ? 1 : 0);
      w.be32(p.elem ? 1 : 0);
      if (p.elem) {
        w.be32(0); // iov_idx: one buffer per element
        w.be64(p.elem.offset);
        w.be32(p.elem.id);
      }
    }
  },
  load(r, { m, s }, ctx, versionId) {
    s.cols = r.be16();
    s.rows = r.be16();
    r.be32(); // max_nr_ports: ignored on load today
    const map = r.be32();
    if (map !== s.portsMap)
      fail(
        `ports_map 0x${map.toString(16)} differs from the local 0x${s.portsMap.toString(16)}`,
        'ports-map',
      );
    const n = r.be32();
    if (n > MAX_PORTS) fail(`${n} active ports, at most ${MAX_PORTS}`, 'port-count');
    const ids: number[] = [];
    const hostConnected: boolean[] = [];
    for (let i = 0; i < n; i++) {
      const id = r.be32();
      const port = findPort(s, id) ?? fail(`unknown port id ${id}`, 'unknown-port');
      if (ids.includes(id)) fail(`port id ${id} twice in the stream`, 'duplicate-port');
      port.guestConnected = bool(r);
      ids.push(id);
      hostConnected.push(bool(r));
      if (versionId < 3) continue;
      port.elem = null;
      if (r.be32() === 0) continue;
      if (r.be32() !== 0) fail(`port ${id}: iov_idx out of range`, 'elem');
      const offset = r.be64();
      const desc = r.be32();
      const q = inQueueOf(id) + 1;
      const ring = m.rings(s.dev).rings[q];
      if (!ring || desc >= ring.num || !(offset >= 0 && offset <= ring.bufLen[desc]!))
        fail(`port ${id}: popped element out of range`, 'elem');
      // It must be one of the queue's in-flight descriptors (popped, not yet pushed back).
      const { lastAvailIdx, inuse } = s.queues[q]!;
      let inFlight = false;
      for (let k = 1; k <= inuse; k++)
        if (ring.availRing[u16(lastAvailIdx - k) % ring.num] === desc) inFlight = true;
      if (!inFlight) fail(`port ${id}: popped element ${desc} is not in flight`, 'elem');
      port.elem = { id: desc, offset };
      // virtio_serial_throttle_port(port, false): the flush bottom half runs on the next
      // main-loop pass, even while the VM is paused or still loading.
      port.throttled = true;
      m.chardevs.scheduleFlush(s.dev, id);
    }
    afterLoad(m, s, ctx, ids, hostConnected);
  },
});

/** qemu_get_byte into a C bool: any nonzero byte is true. */
const bool = (r: StreamReader): boolean => r.u8() !== 0;

/**
 * The source's host_connected is only recorded. Before 31abe21f it was dropped: the guest is
 * never told of a difference. 31abe21f (QEMU <= 1.2) told the guest at once, inside load: a
 * notify, an interrupt raised while the destination loads. 80dcfb8532 arms a vm_clock timer
 * at 1 ns instead, which fires on the first pass after vm_start.
 */
function afterLoad(m: Machine, s: VserState, ctx: MigCtx, ids: number[], hostConnected: boolean[]): void {
  if (ctx.rev.virtioSerialPortOpen === 'never') return;
  if (ctx.rev.virtioSerialPortOpen === 'in-load') {
    for (let i = 0; i < ids.length; i++) {
      const port = findPort(s, ids[i]!)!;
      if (port.hostConnected !== hostConnected[i]) {
        sendControlEvent(s, m, m.rings(s.dev), port.id, Ctrl.PORT_OPEN, port.hostConnected ? 1 : 0);
      }
    }
    return;
  }
  s.postLoad = { ids, hostConnected };
  m.timerMod(s.timerSlot, 1);
}

export const virtioConsoleSection: VmSection<VserImage, MigCtx> = {
  name: 'virtio-console',
  version: 3,
  minVersion: 3,
  fields: [
    {
      // virtio-pci transport: the device's INTx level (irq_state), loaded raw.
      name: 'irq_state',
      type: 'bool',
      get: (o) => o.m.irq.pci.irqState[o.s.dev] === 1,
      set: (o, v) => {
        o.m.irq.pci.irqState[o.s.dev] = v ? 1 : 0;
      },
    },
    {
      name: 'msix',
      type: { buffer: 2 * MSIX_ENTRIES },
      get: (o) => {
        const base = o.s.dev * MSIX_ENTRIES;
        const { masked, pending } = o.m.irq.msix;
        return Uint8Array.of(
          ...masked.subarray(base, base + MSIX_ENTRIES),
          ...pending.subarray(base, base + MSIX_ENTRIES),
        );
      },
      set: (o, v) => {
        const bytes = v as Uint8Array;
        const base = o.s.dev * MSIX_ENTRIES;
        for (let e = 0; e < MSIX_ENTRIES; e++) {
          o.m.irq.msix.masked[base + e] = bytes[e]! ? 1 : 0;
          o.m.irq.msix.pending[base + e] = bytes[MSIX_ENTRIES + e]! ? 1 : 0;
        }
      },
    },
    fieldAt('s.status', 'u8'),
    // VMSTATE_UINT8: any ISR loads; INTx follows bit 0.
    fieldAt('s.isr', 'u8'),
    queues,
    device,
  ],
  subsections: [],
  postLoad: ({ m, s }) => {
    const level = m.irq.pci.irqState[s.dev]!;
    // The INTx level travels raw; it must agree with the bus count loaded before it (QEMU
    // would hit pci_change_irq_level's assert) and an MSI-X device never asserts INTx.
    if (level && (s.msix || m.irq.pci.pirqCount[s.pirq]! < 1)) {
      return {
        message: `virtio-serial: INTx irq_state 1 that the PCI bus does not count`,
        key: 'pci-irq-count',
      };
    }
    // virtio_load ends with virtio_notify_vector(NO_VECTOR): INTx follows the loaded ISR.
    if (!s.msix) m.setIrq(s.dev, s.isr & 1);
    return null;
  },
};
