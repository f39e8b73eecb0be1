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

/** A qemu-7.2 destination with the fixtures' devices (COM1, virtio-serial-pci at 00:02.0, port 1). */
function machine() {
  const s = parseSchedule(
    JSON.stringify({
      format: 'migfuzz.schedule',
      version: 1,
      seed: 1,
      machine: 'pc-i440fx-7.2',
      src: { build: 'qemu-7.2', backends: {} },
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
