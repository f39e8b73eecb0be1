import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The version in migfuzz's package.json. This file runs from src/cli (tests) and from
 * dist/src/cli (the package), so the package's root is found by walking up to the first
 * package.json named migfuzz.
 */
export function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'migfuzz' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // no package.json here: go up
    }
    const up = dirname(dir);
    if (up === dir) return 'unknown';
    dir = up;
  }
}
