#!/usr/bin/env node
// Restores the lock file entries of other platforms' optional packages (a biome or
// msgpackr-extract binary for darwin, win32, musl...). `npm install` leaves them out when the
// registry it talks to does not serve them, and `npm ci` then refuses the lock file ("Missing:
// ... from lock file"). Run after any `npm install` that rewrites package-lock.json:
//   node tools/complete-lockfile.mjs
import { readFileSync, renameSync, writeFileSync } from 'node:fs';

const file = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(file, 'utf8'));
const PLATFORM = /-(android|darwin|linux|win32|freebsd|openbsd|sunos|aix|netbsd)-(arm64|x64|arm|ia32|riscv64|ppc64|s390x)(?:-(musl|gnu|msvc|gnueabihf))?$/;
const added = [];
for (const node of Object.values(lock.packages)) {
  for (const [dep, version] of Object.entries(node.optionalDependencies ?? {})) {
    const key = `node_modules/${dep}`;
    if (lock.packages[key]) continue;
    const entry = { version, ...(node.dev ? { dev: true } : {}), optional: true };
    const m = PLATFORM.exec(dep);
    if (m) {
      entry.os = [m[1]];
      entry.cpu = [m[2]];
      if (m[3] === 'musl') entry.libc = ['musl'];
    }
    lock.packages[key] = entry;
    added.push(dep);
  }
}
const [root, ...rest] = Object.entries(lock.packages);
lock.packages = Object.fromEntries([root, ...rest.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))]);
writeFileSync(`${file.pathname}.tmp`, `${JSON.stringify(lock, null, 2)}\n`);
renameSync(`${file.pathname}.tmp`, file.pathname);
console.log(added.length > 0 ? `added ${added.join(', ')}` : 'nothing missing');
