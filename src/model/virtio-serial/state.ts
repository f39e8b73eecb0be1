import { makeVqDevice, makeVrings, type VqDevice, type Vring } from './virtqueue.js';

/** Control message events (linux/virtio_console.h). */
export const Ctrl = {
  DEVICE_READY: 0,
  PORT_ADD: 1,
  PORT_REMOVE: 2,
  PORT_READY: 3,
  CONSOLE_PORT: 4,
  RESIZE: 5,
  PORT_OPEN: 6,
  PORT_NAME: 7,
} as const;
export const CTRL_NAMES = [
  'DEVICE_READY',
  'PORT_ADD',
  'PORT_REMOVE',
  'PORT_READY',
  'CONSOLE_PORT',
  'RESIZE',
  'PORT_OPEN',
  'PORT_NAME',
];
export const CTRL_MSG_LEN = 8;

/** Legacy virtio-pci register offsets the guest touches. */
export const VirtioPci = {
  QUEUE_NOTIFY: 16,
  STATUS: 18,
  ISR: 19,
} as const;
export const Status = { ACKNOWLEDGE: 1, DRIVER: 2, DRIVER_OK: 4, FEATURES_OK: 8 } as const;

/** max_nr_ports default: ports 0..30, ports_map is one u32 word. */
export const MAX_PORTS = 31;
export const NUM_QUEUES = 2 * (MAX_PORTS + 1);
export const CONTROL_QUEUE_SIZE = 32;
/** Port queues: QEMU creates 128 entries; the guest posts a bounded number of buffers. */
export const PORT_QUEUE_SIZE = 128;
export const CONTROL_BUF_SIZE = 128;

/** Queue index of a port's receive (host→guest) queue; +1 is its transmit queue. */
export const inQueueOf = (port: number): number => (port === 0 ? 0 : 2 * port + 2);
export const C_IVQ = 2;
export const C_OVQ = 3;
/** The port whose in or out queue `q` is; -1 for the control queues. */
export const portOfQueue = (q: number): number => (q < 2 ? 0 : q < 4 ? -1 : (q >> 1) - 1);

/** A popped, partly written guest→host element (throttled port): descriptor and offset. */
export interface PoppedElem {
  id: number;
  offset: number;
}

export interface PortState {
  id: number;
  name: string;
  console: boolean;
  guestConnected: boolean;
  hostConnected: boolean;
  throttled: boolean;
  elem: PoppedElem | null;
}

/** virtio_serial_post_load: the source's host_connected per port, until the timer fires. */
export interface PostLoad {
  ids: number[];
  hostConnected: boolean[];
}

/**
 * What virtio_save carries that the model does not interpret: the PCI config space and the
 * other INTx pins, the MSI-X table's addresses and data, the queues' sizes, ring addresses and
 * vectors, the device config, each popped element's raw VirtQueueElementOld and the virtio/*
 * subsections. Kept as a loaded section had it, so the device saves it back byte for byte;
 * null on a device the model made (virtio-section.ts then writes QEMU 7.2's values at realize).
 */
export interface VirtioTransport {
  pciVersion: number;
  pciConfig: Uint8Array;
  /** irq_state of INTB..INTD (INTA is the model's INTx level). */
  irqStateBcd: number[];
  /** MSI-X table entries (16 bytes each); each entry's mask bit is the model's. */
  msixTable: Uint8Array;
  /** The PBA byte's bits above the model's vectors. */
  pbaHigh: number;
  configVector: number;
  queueSel: number;
  guestFeaturesLo: number;
  config: Uint8Array;
  /** Each queue's size, ring address (vring.desc, a guest address: its two be32 halves) and vector. */
  queues: { num: number; descHi: number; descLo: number; vector: number }[];
  /** A popped element's VirtQueueElementOld, by port id. */
  elements: Record<number, Uint8Array>;
  subsections: Uint8Array;
}

export interface VserState {
  /** Config: device index, PIRQ for INTx, interrupt mode. */
  dev: number;
  pirq: number;
  msix: boolean;
  /** virtio common state. */
  status: number;
  isr: number;
  queues: VqDevice[];
  /** Device config and ports. */
  cols: number;
  rows: number;
  portsMap: number;
  ports: PortState[];
  postLoad: PostLoad | null;
  transport: VirtioTransport | null;
}

/** Guest memory of one virtio-serial device: its rings (null: the queue is not set up). */
export interface VserMem {
  rings: (Vring | null)[];
}

export interface PortConfig {
  id: number;
  name?: string;
  console?: boolean;
}

/** One record per queue (a plain loop: Array.from over an array-like is slow per machine). */
function makeQueues(): VqDevice[] {
  const queues: VqDevice[] = [];
  for (let q = 0; q < NUM_QUEUES; q++) queues.push(makeVqDevice());
  return queues;
}

export function makeVser(dev: number, pirq: number, msix: boolean, ports: PortConfig[]): VserState {
  let portsMap = 1; // bit 0 always reserved (mark_port_added(vser, 0) at realize)
  for (const p of ports) portsMap |= 1 << p.id;
  return {
    dev,
    pirq,
    msix,
    status: 0,
    isr: 0,
    queues: makeQueues(),
    cols: 0,
    rows: 0,
    portsMap: portsMap >>> 0,
    ports: ports.map((p) => ({
      id: p.id,
      name: p.name ?? '',
      console: p.console ?? false,
      guestConnected: false,
      hostConnected: false,
      throttled: false,
      elem: null,
    })),
    postLoad: null,
    transport: null,
  };
}

/**
 * The guest's rings for the device: control queues and one in/out pair per port. Port 0
 * exists in the queue layout even without a port 0 device; its rings are set up too.
 */
export function makeVserMem(ports: PortConfig[], portBufSize: number): VserMem {
  // Plain loops: every machine with a virtio-serial device makes its rings.
  const queues = [C_IVQ, C_OVQ];
  const sizes: [number, number][] = [
    [CONTROL_QUEUE_SIZE, CONTROL_BUF_SIZE],
    [CONTROL_QUEUE_SIZE, CONTROL_BUF_SIZE],
  ];
  for (const p of ports) {
    queues.push(inQueueOf(p.id), inQueueOf(p.id) + 1);
    sizes.push([PORT_QUEUE_SIZE, portBufSize], [PORT_QUEUE_SIZE, portBufSize]);
  }
  const made = makeVrings(sizes);
  const rings: (Vring | null)[] = [];
  for (let q = 0; q < NUM_QUEUES; q++) rings.push(null);
  for (let i = 0; i < queues.length; i++) rings[queues[i]!] = made[i]!;
  return { rings };
}

export function findPort(s: VserState, id: number): PortState | undefined {
  for (const p of s.ports) if (p.id === id) return p;
  return undefined;
}
