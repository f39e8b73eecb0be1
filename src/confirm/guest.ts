import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { AGENT_INIT } from './agent.js';
import { type CpioEntry, cpioArchive } from './cpio.js';

/**
 * The test guest of a real-QEMU confirmation: Debian's cloud kernel and busybox-static,
 * fetched with `apt-get download` and unpacked with `dpkg-deb -x` (nothing is installed on
 * the host), and an initramfs written here whose /init is the agent (agent.ts). Built once
 * into a cache directory and reused.
 */

export interface GuestImage {
  kernel: string;
  initrd: string;
  /** The kernel release, e.g. `6.1.0-56-cloud-amd64`. */
  release: string;
}

/** No usable guest (or QEMU): the command exits 6 with this one line. */
export class RealEnvError extends Error {
  override readonly name = 'RealEnvError';
}

/** Loaded in this order by /init: the Debian cloud kernel has them as modules, without modules.dep. */
const MODULES = [
  'drivers/virtio/virtio_ring',
  'drivers/virtio/virtio',
  'drivers/virtio/virtio_pci_modern_dev',
  'drivers/virtio/virtio_pci_legacy_dev',
  'drivers/virtio/virtio_pci',
  'drivers/char/virtio_console',
];

/** Bumped whenever the image's contents change, so a cached older image is rebuilt. */
const IMAGE_VERSION = 1;

function defaultGuestDir(): string {
  const cache = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(cache, 'migfuzz', 'guest');
}

function run(cmd: string, args: string[], cwd?: string): string {
  try {
    return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { code?: string; stderr?: string; message: string };
    if (err.code === 'ENOENT')
      throw new RealEnvError(`${cmd} not found: the guest is built with Debian's apt-get and dpkg-deb`);
    const why =
      (err.stderr ?? err.message)
        .trim()
        .split('\n')
        .filter((l) => !l.startsWith('W:'))
        .pop() ?? '';
    throw new RealEnvError(`${cmd} ${args.join(' ')} failed: ${why}`);
  }
}

function kernelPackage(): string {
  const deps = run('apt-cache', ['depends', 'linux-image-cloud-amd64']);
  const m = /Depends: (linux-image-\d\S*)/.exec(deps);
  if (!m) throw new RealEnvError('apt-cache knows no linux-image-cloud-amd64: run apt-get update');
  return m[1]!;
}

/** The .deb files, downloaded into `debs` unless already there. */
function fetchDebs(debs: string): string[] {
  mkdirSync(debs, { recursive: true });
  const have = (prefix: string) => readdirSync(debs).find((f) => f.startsWith(prefix) && f.endsWith('.deb'));
  if (!have('linux-image-') || !have('busybox-static_')) {
    run('apt-get', ['download', kernelPackage(), 'busybox-static'], debs);
  }
  const files = [have('linux-image-'), have('busybox-static_')];
  if (files.some((f) => f === undefined)) throw new RealEnvError(`apt-get download left no .deb in ${debs}`);
  return files.map((f) => join(debs, f!));
}

/** Builds (or finds in `dir`) the guest image. */
export function ensureGuest(dir: string = defaultGuestDir()): GuestImage {
  const stamp = join(dir, 'image.json');
  if (existsSync(stamp)) {
    try {
      const img = JSON.parse(readFileSync(stamp, 'utf8')) as GuestImage & { version: number };
      if (img.version === IMAGE_VERSION && existsSync(img.kernel) && existsSync(img.initrd)) return img;
    } catch {
      // A damaged stamp: build again.
    }
  }
  mkdirSync(dir, { recursive: true });
  const debs = fetchDebs(join(dir, 'debs'));
  const x = mkdtempSync(join(tmpdir(), 'migfuzz-guest-'));
  try {
    for (const d of debs) run('dpkg-deb', ['-x', d, x]);
    const release = readdirSync(join(x, 'lib/modules'))[0];
    if (!release) throw new RealEnvError('the kernel package has no lib/modules');
    const entries: CpioEntry[] = ['bin', 'dev', 'proc', 'sys', 'run', 'lib', 'lib/modules'].map((name) => ({
      name,
      type: 'dir',
      mode: 0o755,
    }));
    entries.push({
      name: 'bin/busybox',
      type: 'file',
      mode: 0o755,
      data: readFileSync(join(x, 'bin/busybox')),
    });
    entries.push({ name: 'init', type: 'file', mode: 0o755, data: new TextEncoder().encode(AGENT_INIT) });
    for (const m of MODULES) {
      const ko = join(x, 'lib/modules', release, 'kernel', `${m}.ko`);
      if (!existsSync(ko)) throw new RealEnvError(`the kernel ${release} has no module ${m}.ko`);
      entries.push({
        name: `lib/modules/${m.split('/').pop()}.ko`,
        type: 'file',
        mode: 0o644,
        data: readFileSync(ko),
      });
    }
    const kernel = join(dir, 'vmlinuz');
    const initrd = join(dir, 'initramfs.cpio.gz');
    writeAtomic(kernel, readFileSync(join(x, 'boot', `vmlinuz-${release}`)));
    writeAtomic(initrd, gzipSync(cpioArchive(entries)));
    const img = { kernel, initrd, release };
    writeAtomic(stamp, new TextEncoder().encode(`${JSON.stringify({ ...img, version: IMAGE_VERSION })}\n`));
    return img;
  } finally {
    rmSync(x, { recursive: true, force: true });
  }
}

function writeAtomic(file: string, data: Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, file);
}
