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
