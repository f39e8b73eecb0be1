/**
 * A newc ("070701") cpio archive writer, the format the Linux kernel unpacks as an initramfs
 * (Documentation/driver-api/early-userspace/buffer-format.rst): a 110-byte ASCII header per
 * entry, the name NUL-terminated and padded to 4 bytes, the data padded to 4 bytes, and a
 * closing `TRAILER!!!` entry. Written here so that building the guest needs no cpio binary.
 */

export interface CpioEntry {
  /** Path inside the archive, without a leading slash (`bin/busybox`). */
  name: string;
  /** 'dir', 'file' or 'symlink' (data is the link target). */
  type: 'dir' | 'file' | 'symlink';
  /** Permission bits (e.g. 0o755). */
  mode: number;
  data?: Uint8Array;
}

const TYPE_BITS = { dir: 0o040000, file: 0o100000, symlink: 0o120000 } as const;

const hex8 = (n: number): string => n.toString(16).padStart(8, '0');
const pad4 = (n: number): number => (4 - (n % 4)) % 4;

export function cpioArchive(entries: readonly CpioEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  const enc = new TextEncoder();
  let ino = 1;
  const push = (name: string, mode: number, data: Uint8Array, nlink: number): void => {
    const nameBytes = enc.encode(`${name}\0`);
    const header = `070701${[ino++, mode, 0, 0, nlink, 0, data.length, 0, 0, 0, 0, nameBytes.length, 0]
      .map(hex8)
      .join('')}`;
    parts.push(enc.encode(header), nameBytes, new Uint8Array(pad4(110 + nameBytes.length)));
    parts.push(data, new Uint8Array(pad4(data.length)));
  };
  for (const e of entries) {
    const data = e.data ?? new Uint8Array(0);
    push(
      e.name,
      TYPE_BITS[e.type] | (e.mode & 0o7777),
      e.type === 'dir' ? new Uint8Array(0) : data,
      e.type === 'dir' ? 2 : 1,
    );
  }
  push('TRAILER!!!', 0, new Uint8Array(0), 1);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
