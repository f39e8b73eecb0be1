import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { builtinRegistry } from '../../src/model/migration/builds.js';
import { parseSchedule } from '../../src/model/schedule/validate.js';
import { World } from '../../src/model/world.js';

/** A committed fixture's path (test/fixtures/...). */
export const fixturePath = (rel: string): string =>
  fileURLToPath(new URL(`../fixtures/${rel}`, import.meta.url));

/** A real QEMU 7.2 stream from test/fixtures/streams (see its README), gunzipped. */
export function realStream(name: 'qemu72-paused' | 'qemu72-fifo'): Uint8Array {
  return new Uint8Array(gunzipSync(readFileSync(fixturePath(`streams/${name}.bin.gz`))));
}

/**
 * Where virtio_serial_save_device starts in the fixtures' virtio-console section body: after
 * PCI (276 bytes), MSI-X (35), the common state and config (24), the queue count (4) and 64
 * queues (16 bytes each). Its head (cols, rows, max_nr_ports, ports_map, nr_active_ports) is
 * 16 bytes; then each port: id (4), guest_connected, host_connected, elem_popped (4).
 */
export const PORT_BLOCK = 1363;

/**
 * A model VM (qemu-7.2) with the committed streams' devices: a 16550 and a virtio-serial with
 * one port, whose backend is not yet announced by default (as on a paused QEMU).
 */
export function fixtureMachine(port: 'socket' | 'none' = 'none') {
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
    builtinRegistry(),
  );
  return new World(s, { builds: builtinRegistry() }).vms[0]!;
}
