import { describe, expect, it } from 'vitest';
import { loadDeviceSection, saveDeviceSection } from '../../src/model/migration/vm.js';
import { decodeStream } from '../../src/stream/decode.js';
import { fixtureMachine, realStream } from './fixtures.js';

/**
 * The sections QEMU 7.2 really wrote (test/fixtures/streams) load into the model's devices
 * and save back byte for byte: the model's section descriptions are QEMU's layout.
 */

/**
 * A qemu-7.2 machine with the fixtures' devices (COM1, a virtio-serial-pci, port 1), the
 * port's backend connected or not: QEMU saves the port's own host_connected.
 */

function section(bytes: Uint8Array, idstr: string) {
  const s = decodeStream(bytes).sections.find((x) => x.type === 'full' && x.idstr === idstr)!;
  return { ...s, bytes: bytes.subarray(s.bodyOffset, s.bodyOffset + s.bodyLength) };
}

describe('real QEMU 7.2 serial sections', () => {
  it.each(['qemu72-paused', 'qemu72-fifo'] as const)(
    '%s: loads into the model and saves back byte-identical',
    (name) => {
      const real = section(realStream(name), 'serial');
      const m = fixtureMachine();
      expect(loadDeviceSection(m, 0, real.version, real.bytes)).toEqual([]);
      const saved = saveDeviceSection(m, 0);
      expect(saved.idstr).toBe('serial');
      expect(saved.instanceId).toBe(real.instance);
      expect(saved.version).toBe(real.version);
      expect(Buffer.from(saved.body).equals(Buffer.from(real.bytes))).toBe(true);
    },
  );

  it('the fifo fixture really carries its four subsections and the received byte', () => {
    const real = section(realStream('qemu72-fifo'), 'serial');
    const m = fixtureMachine();
    loadDeviceSection(m, 0, real.version, real.bytes);
    const d = m.devices[0]!;
    if (d.kind !== 'uart') throw new Error('device 0 is not a UART');
    expect(d.s.tsrRetry).toBe(1);
    expect(d.s.recvFifo.num).toBe(1);
    expect(d.s.recvFifo.data[d.s.recvFifo.head]).toBe('h'.charCodeAt(0));
    expect(d.s.xmitFifo.num).toBeGreaterThan(0);
  });
});

describe('real QEMU 7.2 virtio-console sections', () => {
  // QEMU saves the port's own host_connected: the paused fixture's port was not announced yet
  // (0), the fifo one's was (1); the model's port backend is set to match.
  it.each([
    ['qemu72-paused', 'none'],
    ['qemu72-fifo', 'socket'],
  ] as const)('%s: loads into the model and saves back byte-identical', (name, port) => {
    const real = section(realStream(name), '0000:00:02.0/virtio-console');
    const m = fixtureMachine(port);
    expect(loadDeviceSection(m, 1, real.version, real.bytes)).toEqual([]);
    const saved = saveDeviceSection(m, 1);
    expect(saved.version).toBe(real.version);
    expect(saved.body.length).toBe(real.bytes.length);
    expect(Buffer.from(saved.body).equals(Buffer.from(real.bytes))).toBe(true);
  });

  it('the model takes what it models from the real section: status, ISR, MSI-X masks, the port', () => {
    const real = section(realStream('qemu72-fifo'), '0000:00:02.0/virtio-console');
    const m = fixtureMachine();
    loadDeviceSection(m, 1, real.version, real.bytes);
    const d = m.devices[1]!;
    if (d.kind !== 'vser') throw new Error('device 1 is not virtio-serial');
    expect(d.s.status).toBe(0);
    expect([...m.irq.msix.masked.subarray(2, 4)]).toEqual([1, 1]);
    expect(d.s.transport?.queues.map((q) => q.num).slice(0, 4)).toEqual([128, 128, 32, 32]);
    expect(d.s.postLoad).toEqual({ ids: [1], hostConnected: [true] });
  });

  it('a model-made device writes the idstr and layout QEMU 7.2 reads: PCI, MSI-X, 64 queues, the port block', () => {
    const m = fixtureMachine();
    const saved = saveDeviceSection(m, 1);
    expect(saved.idstr).toBe('0000:00:04.0/virtio-console');
    const real = section(realStream('qemu72-paused'), '0000:00:02.0/virtio-console');
    // Everything but the virtio/* subsections (a model-made device has none) is as QEMU 7.2
    // at realize writes it, for the same device and port.
    expect(Buffer.from(saved.body).equals(Buffer.from(real.bytes.subarray(0, saved.body.length)))).toBe(true);
  });
});

describe("the virtio-console loader refuses what QEMU 7.2's refuses", () => {
  /** The model-made section (MSI-X) with `edit` applied; the load's LoadError. */
  const refused = (edit: (b: Uint8Array, v: DataView) => void) => {
    const body = saveDeviceSection(fixtureMachine(), 1).body.slice();
    edit(body, new DataView(body.buffer));
    try {
      loadDeviceSection(fixtureMachine(), 1, 3, body);
    } catch (e) {
      return e as Error & { key: string };
    }
    throw new Error('the load succeeded');
  };
  // PCIDevice: version_id 4, config 256, irq_state 16; MSI-X table 32, PBA 1, config_vector 2;
  // status, ISR, queue_sel 2, features 4, config_len 4 + 12; the queue count 4, 64 × 16.
  const CONFIG_VECTOR = 4 + 256 + 16 + 32 + 1;
  const QUEUE_SEL = CONFIG_VECTOR + 2 + 2;
  const QUEUES = QUEUE_SEL + 2 + 4 + 4 + 12;
  const PORT_BLOCK = QUEUES + 4 + 64 * 16;

  it('a PCIDevice version_id above 2 (VMSTATE_INT32_POSITIVE_LE)', () => {
    expect(refused((_, v) => v.setInt32(0, 3)).message).toBe(
      'virtio-serial: Invalid value 3 expecting positive value <= 2',
    );
  });
  it('an MSI-X vector the device does not have (msix_vector_use)', () => {
    expect(refused((_, v) => v.setUint16(CONFIG_VECTOR, 2)).key).toBe('msix-vector');
    expect(refused((_, v) => v.setUint16(QUEUES + 4 + 14, 7)).message).toMatch(
      /queue 0 vector 7 is not one of the 2/,
    );
  });
  it('queue_sel at VIRTIO_QUEUE_MAX or above, a queue count above it', () => {
    expect(refused((_, v) => v.setUint16(QUEUE_SEL, 1024)).key).toBe('queue-sel');
    expect(refused((_, v) => v.setUint32(QUEUES, 1025)).message).toBe(
      'virtio-serial: Invalid number of virtqueues: 0x401',
    );
  });
  it('max_nr_ports above the local one', () => {
    expect(refused((_, v) => v.setUint32(PORT_BLOCK + 4, 32)).message).toMatch(
      /max_nr_ports 32 above the local 31/,
    );
  });
  it('a popped element with more buffers than VirtQueueElementOld holds (QEMU asserts)', () => {
    const body = saveDeviceSection(fixtureMachine(), 1).body;
    // The port block's head is 16 bytes; port 1: id, guest_connected, host_connected, then
    // elem_popped, iov_idx, iov_offset and the element (index, out_num 2000, in_num 0).
    const popped = PORT_BLOCK + 16 + 6;
    const elem = new Uint8Array(4 + 8 + 49168);
    new DataView(elem.buffer).setUint32(12 + 4, 2000, true);
    const doctored = new Uint8Array(body.length + elem.length);
    doctored.set(body.subarray(0, popped));
    new DataView(doctored.buffer).setUint32(popped, 1);
    doctored.set(elem, popped + 4);
    doctored.set(body.subarray(popped + 4), popped + 4 + elem.length);
    expect(() => loadDeviceSection(fixtureMachine(), 1, 3, doctored)).toThrow(
      'virtio-serial: port 1: popped element with 2000 out / 0 in buffers (QEMU asserts)',
    );
  });
  it('an unknown virtio subsection', () => {
    const body = saveDeviceSection(fixtureMachine(), 1).body;
    const sub = Uint8Array.of(5, 10, ...new TextEncoder().encode('virtio/xyz'), 0, 0, 0, 1);
    const both = new Uint8Array(body.length + sub.length);
    both.set(body);
    both.set(sub, body.length);
    expect(() => loadDeviceSection(fixtureMachine(), 1, 3, both)).toThrow(
      "virtio-serial: unknown subsection 'virtio/xyz'",
    );
  });
});
