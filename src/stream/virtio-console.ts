import { type Cursor, hex } from './cursor.js';
import { type DecodedSubsection, nextNameHasPrefix, subsectionHeader, type Value } from './vmdesc.js';

/**
 * The virtio-serial-pci section ("<pci addr>/virtio-console", version 3) in QEMU 7.2's real
 * layout. Its only vmstate field is VMSTATE_VIRTIO_DEVICE, i.e. virtio_save
 * (hw/virtio/virtio.c): the transport's config (virtio_pci_save_config: PCIDevice, MSI-X
 * table and pending bits, config_vector), the virtio common state, each set-up queue, the
 * device's own block (virtio_serial_save_device, hw/char/virtio-serial-bus.c), then the
 * vmstate_virtio subsections.
 */

/** VIRTIO_QUEUE_MAX: the arrays the virtio/* subsections carry are always this long. */
const VIRTIO_QUEUE_MAX = 1024;
const VIRTQUEUE_MAX_SIZE = 1024;
/** sizeof(VirtQueueElementOld) on a 64-bit host: index, in_num, out_num (padded), 2×1024 addrs, 2×1024 iovecs. */
export const ELEMENT_OLD_SIZE = 16 + 2 * 8 * VIRTQUEUE_MAX_SIZE + 2 * 16 * VIRTQUEUE_MAX_SIZE;
const PCI_CAP_ID_MSIX = 0x11;
const PCI_CONFIG_SPACE_SIZE = 256;

export interface VirtioPort {
  id: number;
  guest_connected: number;
  host_connected: number;
  elem_popped: number;
  elem?: { iov_idx: number; iov_offset: bigint | number; index: number; in_num: number; out_num: number };
}

export interface VirtioConsoleState {
  pci: {
    version_id: number;
    vendor_id: number;
    device_id: number;
    command: number;
    config: string;
    irq_state: number[];
  };
  msix: { vectors: number; table: { addr: string; data: number; masked: boolean }[]; pba: string } | null;
  config_vector: number | null;
  status: number;
  isr: number;
  queue_sel: number;
  guest_features_lo: number;
  config: string;
  queues: { index: number; num: number; desc: string; last_avail_idx: number; vector: number | null }[];
  serial: {
    cols: number;
    rows: number;
    max_nr_ports: number;
    ports_map: number[];
    ports: VirtioPort[];
  };
  subsections: DecodedSubsection[];
}

const le16 = (b: Uint8Array, at: number): number => b[at]! | (b[at + 1]! << 8);
const le32 = (b: Uint8Array, at: number): number => (le16(b, at) | (le16(b, at + 2) << 16)) >>> 0;
const hex64 = (v: bigint): string => `0x${v.toString(16)}`;

/** The MSI-X table size from the capability list in config space, or 0 without MSI-X. */
function msixVectors(config: Uint8Array): number {
  const PCI_STATUS_CAP_LIST = 0x10;
  if (!(config[0x06]! & PCI_STATUS_CAP_LIST)) return 0;
  let at = config[0x34]! & 0xfc;
  // A capability list is at most 48 entries long; a loop in a hostile one ends here.
  for (let n = 0; n < 48 && at >= 0x40 && at < PCI_CONFIG_SPACE_SIZE - 4; n++) {
    if (config[at] === PCI_CAP_ID_MSIX) return (le16(config, at + 2) & 0x7ff) + 1;
    at = config[at + 1]! & 0xfc;
  }
  return 0;
}

function decodePci(c: Cursor): VirtioConsoleState['pci'] {
  const version_id = c.be32('PCIDevice version_id');
  const config = c.bytes(PCI_CONFIG_SPACE_SIZE, 'PCI config space');
  const irq_state = [0, 1, 2, 3].map(() => c.be32('PCI irq_state') | 0);
  return {
    version_id,
    vendor_id: le16(config, 0),
    device_id: le16(config, 2),
    command: le16(config, 4),
    config: hex(config),
    irq_state,
  };
}

function decodeMsix(c: Cursor, n: number): VirtioConsoleState['msix'] {
  if (n === 0) return null;
  const table = c.bytes(16 * n, 'MSI-X table');
  const pba = c.bytes(Math.ceil(n / 8), 'MSI-X pending bits');
  const entries = [];
  for (let e = 0; e < n; e++) {
    const at = 16 * e;
    const addr = (BigInt(le32(table, at + 4)) << 32n) | BigInt(le32(table, at));
    entries.push({ addr: hex64(addr), data: le32(table, at + 8), masked: (le32(table, at + 12) & 1) === 1 });
  }
  return { vectors: n, table: entries, pba: hex(pba) };
}

/** qemu_put_virtqueue_element: a raw, host-endian VirtQueueElementOld (x86-64 host). */
function decodeElement(c: Cursor, id: number): VirtioPort['elem'] {
  const iov_idx = c.be32('iov_idx');
  const off = c.be64('iov_offset');
  const raw = c.bytes(ELEMENT_OLD_SIZE, `port ${id} popped element`);
  const iov_offset = off <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(off) : off;
  // VirtQueueElementOld: index, out_num, in_num (in that order).
  return { iov_idx, iov_offset, index: le32(raw, 0), out_num: le32(raw, 4), in_num: le32(raw, 8) };
}

function decodeSerialDevice(c: Cursor): VirtioConsoleState['serial'] {
  const cols = c.be16('cols');
  const rows = c.be16('rows');
  const max_nr_ports = c.be32('max_nr_ports');
  // DIV_ROUND_UP(max_nr_ports, 32) words: bounded by the bytes left before the loop.
  const words = Math.ceil(max_nr_ports / 32);
  if (words * 4 > c.remaining)
    c.fail(`max_nr_ports ${max_nr_ports} needs more ports_map words than the stream has`);
  const ports_map: number[] = [];
  for (let i = 0; i < words; i++) ports_map.push(c.be32('ports_map'));
  const at = c.pos;
  const n = c.be32('nr_active_ports');
  // Each port takes at least 10 bytes: a count beyond that cannot be real.
  if (n * 10 > c.remaining) c.fail(`nr_active_ports ${n} does not fit in the ${c.remaining} bytes left`, at);
  const ports: VirtioPort[] = [];
  for (let i = 0; i < n; i++) {
    const id = c.be32('port id');
    const port: VirtioPort = {
      id,
      guest_connected: c.u8('guest_connected'),
      host_connected: c.u8('host_connected'),
      elem_popped: c.be32('elem_popped'),
    };
    if (port.elem_popped) port.elem = decodeElement(c, id);
    ports.push(port);
  }
  return { cols, rows, max_nr_ports, ports_map, ports };
}

/** Fixed-size element arrays of the vmstate_virtio subsections, shown for the set-up queues only. */
function queueArray(c: Cursor, size: number, shown: number, read: (c: Cursor) => Value): Value[] {
  const out: Value[] = [];
  const start = c.pos;
  for (let i = 0; i < shown; i++) {
    c.pos = start + i * size;
    out.push(read(c));
  }
  c.pos = start + VIRTIO_QUEUE_MAX * size;
  return out;
}

/** Each known subsection of vmstate_virtio (and virtio_pci's, nested in extra_state). */
function subsectionFields(c: Cursor, name: string, nq: number, where: number): Record<string, Value> {
  switch (name) {
    case 'virtio/device_endian':
      return { device_endian: c.u8() };
    case 'virtio/64bit_features':
      return { guest_features: hex64(c.be64()) };
    case 'virtio/virtqueues':
      c.need(16 * VIRTIO_QUEUE_MAX, name);
      return {
        vring: queueArray(c, 16, nq, (r) => ({ avail: hex64(r.be64()), used: hex64(r.be64()) })),
      };
    case 'virtio/ringsize':
      c.need(4 * VIRTIO_QUEUE_MAX, name);
      return { num_default: queueArray(c, 4, nq, (r) => r.be32()) };
    case 'virtio/packed_virtqueues':
      c.need(10 * VIRTIO_QUEUE_MAX, name);
      return {
        vq: queueArray(c, 10, nq, (r) => ({
          last_avail_idx: r.be16(),
          last_avail_wrap_counter: r.u8() !== 0,
          used_idx: r.be16(),
          used_wrap_counter: r.u8() !== 0,
          inuse: r.be32(),
        })),
      };
    case 'virtio/broken':
      return { broken: c.u8() !== 0 };
    case 'virtio/started':
      return { started: c.u8() !== 0 };
    case 'virtio/disabled':
      return { disabled: c.u8() !== 0 };
    case 'virtio/extra_state':
      // virtio_pci_save_extra_state: vmstate_virtio_pci (no fields), its subsections follow.
      return {};
    case 'virtio_pci/modern_state': {
      const fields: Record<string, Value> = {
        dfselect: c.be32(),
        gfselect: c.be32(),
        guest_features: [c.be32(), c.be32()],
      };
      // vmstate_virtio_pci_modern_queue_state: num, 1 unused byte, enabled, desc/avail/used[2].
      c.need(28 * VIRTIO_QUEUE_MAX, name);
      fields.vqs = queueArray(c, 28, nq, (r) => {
        const num = r.be16();
        r.u8();
        const enabled = r.u8() !== 0;
        // VMSTATE_UINT32_ARRAY(desc, 2): the low word first (virtio_pci_common_write).
        const pair = (): string => {
          const lo = BigInt(r.be32());
          return hex64((BigInt(r.be32()) << 32n) | lo);
        };
        return { num, enabled, desc: pair(), avail: pair(), used: pair() };
      });
      return fields;
    }
    default:
      c.fail(`unknown virtio subsection ${name}`, where);
  }
}

/** Subsections of `prefix` (vmstate_subsection_load: a name outside the prefix ends the list). */
function decodeSubsections(c: Cursor, prefix: string, nq: number): DecodedSubsection[] {
  const out: DecodedSubsection[] = [];
  while (c.peek() === 0x05 && nextNameHasPrefix(c, prefix)) {
    const h = subsectionHeader(c);
    const fields = subsectionFields(c, h.name, nq, h.offset);
    const nested = h.name === 'virtio/extra_state' ? decodeSubsections(c, 'virtio_pci/', nq) : [];
    out.push({ ...h, fields, ...(nested.length ? { subsections: nested } : {}) });
  }
  return out;
}

/** The body of a virtio-console section (between its header and its footer). */
export function decodeVirtioConsole(c: Cursor): VirtioConsoleState {
  const pci = decodePci(c);
  const vectors = msixVectors(c.buf.subarray(c.pos - 16 - PCI_CONFIG_SPACE_SIZE, c.pos - 16));
  const msix = decodeMsix(c, vectors);
  const config_vector = msix ? c.be16('config_vector') : null;
  const status = c.u8('status');
  const isr = c.u8('isr');
  const queue_sel = c.be16('queue_sel');
  const guest_features_lo = c.be32('guest_features');
  const config = hex(c.bytes(c.be32('config_len'), 'config'));
  const at = c.pos;
  const nq = c.be32('queue count');
  if (nq > VIRTIO_QUEUE_MAX) c.fail(`${nq} queues, at most ${VIRTIO_QUEUE_MAX}`, at);
  const queues: VirtioConsoleState['queues'] = [];
  for (let index = 0; index < nq; index++) {
    queues.push({
      index,
      num: c.be32('vring.num'),
      desc: hex64(c.be64('vring.desc')),
      last_avail_idx: c.be16('last_avail_idx'),
      vector: msix ? c.be16('queue vector') : null,
    });
  }
  const serial = decodeSerialDevice(c);
  const subsections = decodeSubsections(c, 'virtio/', nq);
  return {
    pci,
    msix,
    config_vector,
    status,
    isr,
    queue_sel,
    guest_features_lo,
    config,
    queues,
    serial,
    subsections,
  };
}
