import { describe, expect, it } from 'vitest';
import { builtinRegistry } from '../../src/model/migration/builds.js';
import { loadDeviceSection, saveDeviceSection } from '../../src/model/migration/vm.js';
import { parseSchedule } from '../../src/model/schedule/validate.js';
import { World } from '../../src/model/world.js';
import { decodeStream } from '../../src/stream/decode.js';
import { realStream } from './fixtures.js';

/**
 * The sections QEMU 7.2 really wrote (test/fixtures/streams) load into the model's devices
 * and save back byte for byte: the model's section descriptions are QEMU's layout.
 */

const builds = builtinRegistry();

/**
 * A qemu-7.2 machine with the fixtures' devices (COM1, a virtio-serial-pci, port 1), the
 * port's backend connected or not: QEMU saves the port's own host_connected.
 */
function machine(port: 'socket' | 'none' = 'none') {
  const s = parseSchedule(
    JSON.stringify({
      format: 'migfuzz.schedule',
      version: 1,
      seed: 1,
      machine: 'pc-i440fx-7.2',
      src: { build: 'qemu-7.2', backends: { 'vser0.port1': port } },
      dst: { build: 'qemu-7.2', backends: {} },
      devices: {
        serial0: { kind: 'isa-serial', irq: 4 },
        vser0: { kind: 'virtio-serial', irq: 'msix', ports: [{ id: 1, name: 'test.0' }] },
      },
      steps: [],
      horizon: 1_000_000,
    }),
    builds,
  );
  return new World(s, { builds }).vms[0]!;
}

function section(bytes: Uint8Array, idstr: string) {
  const s = decodeStream(bytes).sections.find((x) => x.type === 'full' && x.idstr === idstr)!;
  return { ...s, bytes: bytes.subarray(s.bodyOffset, s.bodyOffset + s.bodyLength) };
}

describe('real QEMU 7.2 serial sections', () => {
  it.each(['qemu72-paused', 'qemu72-fifo'] as const)(
    '%s: loads into the model and saves back byte-identical',
    (name) => {
      const real = section(realStream(name), 'serial');
      const m = machine();
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
    const m = machine();
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
    const m = machine(port);
    expect(loadDeviceSection(m, 1, real.version, real.bytes)).toEqual([]);
    const saved = saveDeviceSection(m, 1);
    expect(saved.version).toBe(real.version);
    expect(saved.body.length).toBe(real.bytes.length);
    expect(Buffer.from(saved.body).equals(Buffer.from(real.bytes))).toBe(true);
  });

  it('the model takes what it models from the real section: status, ISR, MSI-X masks, the port', () => {
    const real = section(realStream('qemu72-fifo'), '0000:00:02.0/virtio-console');
    const m = machine();
    loadDeviceSection(m, 1, real.version, real.bytes);
    const d = m.devices[1]!;
    if (d.kind !== 'vser') throw new Error('device 1 is not virtio-serial');
    expect(d.s.status).toBe(0);
    expect([...m.irq.msix.masked.subarray(2, 4)]).toEqual([1, 1]);
    expect(d.s.transport?.queues.map((q) => q.num).slice(0, 4)).toEqual([128, 128, 32, 32]);
    expect(d.s.postLoad).toEqual({ ids: [1], hostConnected: [true] });
  });

  it('a model-made device writes the idstr and layout QEMU 7.2 reads: PCI, MSI-X, 64 queues, the port block', () => {
    const m = machine();
    const saved = saveDeviceSection(m, 1);
    expect(saved.idstr).toBe('0000:00:04.0/virtio-console');
    const real = section(realStream('qemu72-paused'), '0000:00:02.0/virtio-console');
    // Everything but the virtio/* subsections (a model-made device has none) is as QEMU 7.2
    // at realize writes it, for the same device and port.
    expect(Buffer.from(saved.body).equals(Buffer.from(real.bytes.subarray(0, saved.body.length)))).toBe(true);
  });
});
