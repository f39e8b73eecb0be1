import { execFileSync } from 'node:child_process';

/**
 * Whether the tests that run the real QEMU and build the test guest can run here: they need
 * QEMU, apt-get and dpkg-deb. Without them they are skipped, with the reason printed, unless
 * MIGFUZZ_REQUIRE_REAL=1 (CI sets it), where the missing tools fail the first test instead.
 */
export function realQemuGate(what: string): { skip: boolean; missing: string[] } {
  const has = (cmd: string): boolean => {
    try {
      execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'pipe' });
      return true;
    } catch {
      return false;
    }
  };
  const missing = ['qemu-system-x86_64', 'apt-get', 'dpkg-deb'].filter((c) => !has(c));
  const skip = missing.length > 0 && process.env.MIGFUZZ_REQUIRE_REAL !== '1';
  if (skip) {
    console.log(`skipping ${what}: ${missing.join(', ')} not installed (apt-get install qemu-system-x86)`);
  }
  return { skip, missing };
}
