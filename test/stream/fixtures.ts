import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

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
