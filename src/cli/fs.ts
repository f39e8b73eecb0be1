/**
 * The CLI's file-system helpers: one-line reasons for I/O errors, mkdir -p that cannot hang,
 * and atomic writes (every file migfuzz writes is all-or-nothing).
 */

import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { dirname, resolve } from 'node:path';
import { InputError } from './exit-codes.js';

/** A file-system error in a few words, for one-line messages. */
export function ioReason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EISDIR') return 'is a directory';
  if (code === 'ENOTDIR') return 'a path component is not a directory';
  if (code === 'EEXIST') return 'a file is in the way';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'ENOSPC') return 'no space left on the device';
  if (code === 'EROFS') return 'read-only file system';
  return code ?? (e instanceof Error ? e.message : 'error');
}

/**
 * mkdir -p. Node's own recursive mkdir never returns for a path under /proc (each component
 * fails with ENOENT and it retries), so the missing components are made one by one.
 */
export function makeDirs(dir: string): void {
  const missing: string[] = [];
  for (let d = resolve(dir); !existsSync(d) && dirname(d) !== d; d = dirname(d)) missing.push(d);
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  // A file in the way: mkdir says so (EEXIST).
  if (!statSync(dir).isDirectory()) mkdirSync(dir);
}

/**
 * Writes `data` to `file` atomically: a temporary file in the same directory, flushed, then
 * renamed over `file`; on any failure the temporary file is removed and `file` is untouched.
 * `durable: false` skips the fsync: the rename still makes the write all-or-nothing for a
 * killed process, only a power loss could lose it (for the campaign's frequent small files).
 */
export function writeFileAtomic(
  file: string,
  data: string | Uint8Array | readonly Uint8Array[],
  { durable = true }: { durable?: boolean } = {},
): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const parts =
    typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w');
    for (const bytes of parts) {
      for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
    }
    if (durable) fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // already failing: the write error is the one to report
      }
    }
    try {
      unlinkSync(tmp);
    } catch {
      // never created, or already gone
    }
    throw new InputError(`${file}: cannot write (${ioReason(e)})`);
  }
}
