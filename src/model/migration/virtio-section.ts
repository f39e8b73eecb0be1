import { MSIX_ENTRIES } from '../irqchip.js';
import type { Machine } from '../machine.js';
import { sendControlEvent, VserTimer } from '../virtio-serial/device.js';
import {
  C_OVQ,
  CONTROL_QUEUE_SIZE,
  Ctrl,
  findPort,
  inQueueOf,
  MAX_PORTS,
  NUM_QUEUES,
  PORT_QUEUE_SIZE,
  type VirtioTransport,
  type VserState,
} from '../virtio-serial/state.js';
import { u16 } from '../virtio-serial/virtqueue.js';
import type { MigCtx } from './context.js';
import { LoadError, type StreamReader } from './stream.js';
import { custom, fieldAt, type PostLoadResult, type VmSection } from './vmstate.js';

/**
 * The virtio-serial-pci section as QEMU writes it: idstr "0000:00:SS.0/virtio-console" (the
 * PCI address, qdev_get_dev_path), version 3. Its body is virtio_save (hw/virtio/virtio.c):
 * the transport's config (virtio_pci_save_config: the PCIDevice, msix_save's table and
 * pending bits, config_vector), the virtio common state (status, ISR, queue_sel, guest
 * features, the device config), each queue (size, ring address, last_avail_idx, MSI-X
 * vector), the device's own block (virtio_serial_save_device: config, ports_map, per port
 * the connection state and a popped element as qemu_put_virtqueue_element writes it), then
 * the vmstate_virtio subsections. What the model does not interpret travels in the device's
 * VirtioTransport record. What happens after load when a port's host connection differs
 * from the source's is the build's revision: seed bug A.
 *
 * Builds: QEMU 7.2's layout, checked against a real 7.2 stream (test/fixtures/streams). The
 * older virtio_save, read in QEMU's history, writes the same fields in the same order: 1.x's
 * (vdev->binding->save_config, then status, isr, queue_sel, guest_features, config_len and
 * config, the queue count, each queue's vring.num, `pa` and last_avail_idx, then
 * binding->save_queue; virtio_serial_save called it under register_savevm "virtio-console"),
 * and 2.x's (the same through the virtio bus: k->save_config, vring.desc, k->save_queue).
 * 1.x's popped element was its VirtQueueElement, whose layout VirtQueueElementOld keeps, and
 * 1.x had no vmstate_virtio subsections. Not checked on a stream of those releases: that a
 * 1.x or 2.x QEMU's PCIDevice and MSI-X state have the same size as 7.2's, and when each
 * virtio/* subsection first appeared. Every modelled build writes the layout above; a device
 * the model made writes no subsection (it holds no guest features or ring addresses to put
 * there).
 */
export interface VserImage {
  m: Machine;
  s: VserState;
}

function fail(msg: string, key: string): never {
  throw new LoadError(`virtio-serial: ${msg}`, key);
}

/** VIRTIO_NO_VECTOR. */
const NO_VECTOR = 0xffff;
/** VIRTIO_QUEUE_MAX: the queue count bound and the virtio/* arrays' length. */
const VIRTIO_QUEUE_MAX = 1024;
const PCI_CONFIG_SPACE_SIZE = 256;
const MSIX_ENTRY_SIZE = 16;
/** PCI_MSIX_ENTRY_VECTOR_CTRL's mask bit, in each entry's last dword. */
const MSIX_CTRL = 12;
/** sizeof(struct virtio_console_config): cols, rows, max_nr_ports, emerg_wr. */
const CONSOLE_CONFIG_SIZE = 12;
/**
 * sizeof(VirtQueueElementOld) on a 64-bit host: index, out_num, in_num (padded to 16),
 * in_addr[1024], out_addr[1024], in_sg[1024], out_sg[1024] (struct iovec: base, len).
 */
const VIRTQUEUE_MAX_SIZE = 1024;
const ELEMENT_OLD_SIZE = 16 + 2 * 8 * VIRTQUEUE_MAX_SIZE + 2 * 16 * VIRTQUEUE_MAX_SIZE;
const ELEM_OUT_SG = 16 + 16 * VIRTQUEUE_MAX_SIZE + 16 * VIRTQUEUE_MAX_SIZE;

/** The slot of the first virtio-serial-pci (then one per device), as confirm starts them. */
export const FIRST_VSER_SLOT = 4;

/** The section's idstr for a device at `slot` (bus 0, function 0). */
export const virtioIdstr = (slot: number): string =>
  `0000:00:${slot.toString(16).padStart(2, '0')}.0/virtio-console`;

/**
 * PCI config space of a virtio-serial-pci in QEMU 7.2 at realize (pc-i440fx-7.2, before the
 * firmware runs), saved with `-S` and `migrate "exec:cat > FILE"`: with the default 2 MSI-X
 * vectors, and with vectors=0 (no MSI-X capability; the capability pointer differs).
 */
const CONFIG_7_2 = {
  msix: 'f41a0310000010000000800700000000010000000000000000000000000000000c0000000000000000000000f41a030000000000980000000000000000010000090010010400000000000000001000000940100304000000001000000010000009501004040000000020000000100000096014020400000000300000001000000400000009701405000000000000000000000000000000001184010001000000010800000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000',
  intx: 'f41a0310000010000000800700000000010000000000000000000000000000000c0000000000000000000000f41a030000000000840000000000000000010000090010010400000000000000001000000940100304000000001000000010000009501004040000000020000000100000096014020400000000300000001000000400000009701405000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000',
} as const;

const fromHex = (h: string): Uint8Array => Uint8Array.from(h.match(/../g)!, (b) => Number.parseInt(b, 16));

/**
 * What a device the model made saves for the parts it does not model: QEMU 7.2 at realize.
 * Its arrays are shared and read-only: a load replaces them (it never writes into one), so a
 * load can start from this record without allocating them again.
 */
function realizeTransport(msix: boolean): VirtioTransport {
  return {
    pciVersion: 2,
    pciConfig: fromHex(msix ? CONFIG_7_2.msix : CONFIG_7_2.intx),
    irqStateBcd: [0, 0, 0],
    msixTable: new Uint8Array(msix ? MSIX_ENTRIES * MSIX_ENTRY_SIZE : 0),
    pbaHigh: 0,
    configVector: NO_VECTOR,
    queueSel: 0,
    guestFeaturesLo: 0,
    config: new Uint8Array(CONSOLE_CONFIG_SIZE),
    // virtio_serial_device_realize: control queues of 32 entries, port queues of 128.
    queues: Array.from({ length: NUM_QUEUES }, (_, q) => ({
      num: q === C_OVQ - 1 || q === C_OVQ ? CONTROL_QUEUE_SIZE : PORT_QUEUE_SIZE,
      descHi: 0,
      descLo: 0,
      vector: NO_VECTOR,
    })),
    elements: {},
    subsections: new Uint8Array(0),
  };
}

/** Read-only: a save never changes the device. */
const AT_REALIZE = { msix: realizeTransport(true), intx: realizeTransport(false) };

/** What the device saves for the parts the model does not model. */
export const transportOf = (s: VserState): VirtioTransport =>
  s.transport ?? AT_REALIZE[s.msix ? 'msix' : 'intx'];

/**
 * The transport record a load fills in (a new one, which the device keeps): the realize-time
 * values, whose arrays the load replaces, and its own table of popped elements, which it fills.
 */
function loading(s: VserState): VirtioTransport {
  const t: VirtioTransport = { ...AT_REALIZE[s.msix ? 'msix' : 'intx'], elements: {} };
  s.transport = t;
  return t;
}

const le32 = (b: Uint8Array, at: number): number =>
  (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;

/**
 * virtio_pci_save_config: pci_device_save (vmstate_pci_device v2: version_id, the config
 * space, irq_state per pin), then msix_save and config_vector when MSI-X is present.
 */
const pciConfig = custom<VserImage, MigCtx>('pci', {
  save(w, { m, s }) {
    const t = transportOf(s);
    w.i32(t.pciVersion);
    w.bytes(t.pciConfig);
    w.be32(m.irq.pci.irqState[s.dev]!);
    for (const v of t.irqStateBcd) w.be32(v);
    if (!s.msix) return;
    const base = s.dev * MSIX_ENTRIES;
    const table = t.msixTable.slice();
    let pba = t.pbaHigh;
    for (let e = 0; e < MSIX_ENTRIES; e++) {
      const at = e * MSIX_ENTRY_SIZE + MSIX_CTRL;
      table[at] = (table[at]! & ~1) | m.irq.msix.masked[base + e]!;
      pba |= m.irq.msix.pending[base + e]! << e;
    }
    w.bytes(table);
    w.u8(pba);
    w.be16(t.configVector);
  },
  load(r, { m, s }) {
    const t = loading(s);
    // VMSTATE_INT32_POSITIVE_LE(version_id): at most the local version.
    const version = r.i32();
    if (version < 0 || version > 2)
      fail(`Invalid value ${version} expecting positive value <= 2`, 'pci-version');
    t.pciVersion = version;
    // get_pci_config_device compares the read-only bits with the local device's ("Bad config
    // data"); the model has no config space of its own and keeps the bytes as they came.
    t.pciConfig = r.bytes(PCI_CONFIG_SPACE_SIZE).slice();
    // get_pci_irq_state: every pin's level must be 0 or 1.
    const pins = [0, 1, 2, 3].map(() => r.i32());
    const bad = pins.find((v) => v !== 0 && v !== 1);
    if (bad !== undefined) fail(`irq state ${bad}: must be 0 or 1.`, 'pci-irq-state');
    m.irq.pci.irqState[s.dev] = pins[0]!;
    t.irqStateBcd = pins.slice(1);
    if (!s.msix) return;
    // msix_load: the table and the pending bits as they came; the model keeps each vector's
    // mask and pending bit.
    const table = r.bytes(MSIX_ENTRIES * MSIX_ENTRY_SIZE).slice();
    const pba = r.u8();
    const base = s.dev * MSIX_ENTRIES;
    for (let e = 0; e < MSIX_ENTRIES; e++) {
      m.irq.msix.masked[base + e] = table[e * MSIX_ENTRY_SIZE + MSIX_CTRL]! & 1;
      m.irq.msix.pending[base + e] = (pba >> e) & 1;
    }
    t.msixTable = table;
    t.pbaHigh = pba & ~((1 << MSIX_ENTRIES) - 1);
    t.configVector = vector(r.be16(), 'config_vector');
  },
});

/** virtio_pci_load_config/_queue: a vector other than NO_VECTOR must exist (msix_vector_use). */
function vector(v: number, what: string): number {
  if (v !== NO_VECTOR && v >= MSIX_ENTRIES)
    fail(`${what} ${v} is not one of the ${MSIX_ENTRIES} MSI-X vectors`, 'msix-vector');
  return v;
}

/** virtio_save's common state after status and ISR: queue_sel, guest features, the device config. */
const common = custom<VserImage, MigCtx>('common', {
  save(w, { s }) {
    const t = transportOf(s);
    w.be16(t.queueSel);
    w.be32(t.guestFeaturesLo);
    w.be32(t.config.length);
    w.bytes(t.config);
  },
  load(r, { s }, ctx) {
    const t = s.transport!;
    t.queueSel = r.be16();
    if (t.queueSel >= VIRTIO_QUEUE_MAX) {
      if (ctx.rev.virtioQueueSelCheck === 'fail-load')
        fail(`queue_sel ${t.queueSel} out of range`, 'queue-sel');
      // Before CVE-2013-6399's check the value stays, and the guest's next queue register
      // access (VIRTIO_PCI_QUEUE_PFN, QUEUE_NUM) indexes vdev->vq[] with it.
      ctx.hazards.push({
        dev: s.dev,
        key: 'queue-sel',
        message: `virtio_load kept queue_sel ${t.queueSel}, past vdev->vq[]: the guest's next VIRTIO_PCI_QUEUE_PFN write lands outside the array (CVE-2013-6399)`,
      });
    }
    t.guestFeaturesLo = r.be32();
    // Any length loads: QEMU reads what fits its config and skips the rest.
    t.config = r.bytes(r.be32()).slice();
  },
});
/**
 * The queues: their count (those with a size, from 0), then each one's size, ring address,
 * last_avail_idx and (MSI-X) vector. last_avail_idx is checked against the ring in guest RAM
 * (virtio_load).
 */
const queues = custom<VserImage, MigCtx>('queues', {
  save(w, { s }) {
    const t = transportOf(s);
    w.be32(t.queues.length);
    for (let q = 0; q < t.queues.length; q++) {
      const tq = t.queues[q]!;
      w.be32(tq.num);
      w.be32(tq.descHi);
      w.be32(tq.descLo);
      w.be16(s.queues[q]!.lastAvailIdx);
      if (s.msix) w.be16(tq.vector);
    }
  },
  load(r, { m, s }, ctx) {
    const t = s.transport!;
    const n = r.be32();
    if (n > VIRTIO_QUEUE_MAX) fail(`Invalid number of virtqueues: 0x${n.toString(16)}`, 'queue-count');
    // QEMU loads any count up to the maximum; the model's device has exactly its own.
    if (n !== NUM_QUEUES) fail(`${n} queues in the stream, the device has ${NUM_QUEUES}`, 'queue-count');
    const rings = m.rings(s.dev).rings;
    t.queues = [];
    for (let q = 0; q < NUM_QUEUES; q++) {
      const num = r.be32();
      const descHi = r.be32();
      const descLo = r.be32();
      const last = r.be16();
      const vec = s.msix ? vector(r.be16(), `queue ${q} vector`) : NO_VECTOR;
      t.queues.push({ num, descHi, descLo, vector: vec });
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

/**
 * qemu_put_virtqueue_element's VirtQueueElementOld (host-endian, x86-64) for the model's
 * element: one guest-to-host buffer (out_num 1) whose length the ring gives. A loaded one is
 * written back as it came; the model knows no guest addresses, so its own has out_addr 0.
 */
function elementBytes(m: Machine, s: VserState, port: number, elem: { id: number }): Uint8Array {
  const loaded = s.transport?.elements[port];
  if (loaded && le32(loaded, 0) === elem.id) return loaded;
  const raw = new Uint8Array(ELEMENT_OLD_SIZE);
  const v = new DataView(raw.buffer);
  v.setUint32(0, elem.id, true);
  v.setUint32(4, 1, true); // out_num
  const ring = m.rings(s.dev).rings[inQueueOf(port) + 1];
  v.setBigUint64(ELEM_OUT_SG + 8, BigInt(ring ? ring.bufLen[elem.id]! : 0), true);
  return raw;
}

/** virtio_serial_save_device / virtio_serial_load_device + fetch_active_ports_list. */
const device = custom<VserImage, MigCtx>('device', {
  save(w, { m, s }, ctx) {
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
        w.bytes(elementBytes(m, s, p.id, p.elem));
      }
    }
  },
  load(r, { m, s }, ctx, versionId) {
    const t = s.transport!;
    s.cols = r.be16();
    s.rows = r.be16();
    // More ports than the destination's max_nr_ports fail; each ports_map word must match.
    const max = r.be32();
    if (max > MAX_PORTS) fail(`max_nr_ports ${max} above the local ${MAX_PORTS}`, 'ports-map');
    for (let i = 0; i < Math.ceil(max / 32); i++) {
      const map = r.be32();
      if (map !== s.portsMap)
        fail(
          `ports_map 0x${map.toString(16)} differs from the local 0x${s.portsMap.toString(16)}`,
          'ports-map',
        );
    }
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
      const raw = r.bytes(ELEMENT_OLD_SIZE).slice();
      const outNum = le32(raw, 4);
      const inNum = le32(raw, 8);
      // qemu_get_virtqueue_element asserts both counts fit the arrays: QEMU aborts mid-load.
      if (outNum > VIRTQUEUE_MAX_SIZE || inNum > VIRTQUEUE_MAX_SIZE)
        fail(`port ${id}: popped element with ${outNum} out / ${inNum} in buffers (QEMU asserts)`, 'elem');
      if (outNum !== 1 || inNum !== 0) fail(`port ${id}: popped element is not one outgoing buffer`, 'elem');
      const desc = le32(raw, 0);
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
      t.elements[id] = raw;
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
  m.timerMod(s.dev, VserTimer.POST_LOAD, 1);
}

/**
 * vmstate_virtio's subsections (and virtio_pci's inside virtio/extra_state), kept as they
 * came: their names and body sizes in QEMU 7.2, so the list's end is found. A name QEMU 7.2
 * does not know fails the load (vmstate_subsection_load: -ENOENT).
 */
const SUBSECTION_SIZES: Record<string, number> = {
  'virtio/device_endian': 1,
  'virtio/64bit_features': 8,
  'virtio/virtqueues': 16 * VIRTIO_QUEUE_MAX,
  'virtio/ringsize': 4 * VIRTIO_QUEUE_MAX,
  'virtio/packed_virtqueues': 10 * VIRTIO_QUEUE_MAX,
  'virtio/broken': 1,
  'virtio/started': 1,
  'virtio/disabled': 1,
  'virtio/extra_state': 0,
  'virtio_pci/modern_state': 16 + 28 * VIRTIO_QUEUE_MAX,
};

const QEMU_VM_SUBSECTION = 0x05;

/** Skips the subsections of `prefix` (a name outside it ends the list, as in QEMU). */
function skipSubsections(r: StreamReader, prefix: string): void {
  while (r.peek() === QEMU_VM_SUBSECTION) {
    const at = r.offset;
    r.u8();
    const name = r.str8();
    if (!name.startsWith(prefix)) {
      r.rewind(at);
      return;
    }
    const size = SUBSECTION_SIZES[name];
    if (size === undefined)
      throw new LoadError(`virtio-serial: unknown subsection '${name}'`, 'unknown-subsection');
    const version = r.be32();
    if (version !== 1)
      throw new LoadError(`${name}: incoming version_id ${version} is not 1`, 'unknown-subsection');
    r.bytes(size);
    if (name === 'virtio/extra_state') skipSubsections(r, 'virtio_pci/');
  }
}

const subsections = custom<VserImage, MigCtx>('subsections', {
  save(w, { s }) {
    w.bytes(transportOf(s).subsections);
  },
  load(r, { s }) {
    const start = r.offset;
    skipSubsections(r, 'virtio/');
    s.transport!.subsections = r.since(start).slice();
  },
});

const sections = new Map<number, VmSection<VserImage, MigCtx>>();

/** The section of the virtio-serial-pci at `slot`. */
export function virtioConsoleSection(slot: number): VmSection<VserImage, MigCtx> {
  let section = sections.get(slot);
  if (!section) {
    section = {
      name: virtioIdstr(slot),
      version: 3,
      minVersion: 3,
      fields: [
        pciConfig,
        fieldAt('s.status', 'u8'),
        fieldAt('s.isr', 'u8'),
        common,
        queues,
        device,
        subsections,
      ],
      subsections: [],
      postLoad,
    };
    sections.set(slot, section);
  }
  return section;
}

function postLoad({ m, s }: VserImage): PostLoadResult {
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
}
