import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, type MockInstance, vi } from 'vitest';
import { main } from '../../src/cli/main.js';

/** `migfuzz confirm`'s input handling, without a QEMU: exit 2 usage, 3 invalid input, 6 no usable QEMU. */

const SEED = fileURLToPath(
  new URL('../../corpus/regressions/qemu-9.2-paused-remigration.mpk', import.meta.url),
);
let err: MockInstance<typeof console.error>;
beforeEach(() => {
  vi.spyOn(console, 'log').mockImplementation(() => {});
  err = vi.spyOn(console, 'error').mockImplementation(() => {});
});
afterEach(() => vi.restoreAllMocks());

describe('confirm', () => {
  it('needs one FILE (exit 2)', async () => {
    expect(await main(['confirm'])).toBe(2);
    expect(err.mock.calls[0]![0]).toMatch(/^migfuzz: confirm needs exactly one FILE/);
  });

  it('an unreadable schedule is invalid input (exit 3), one line', async () => {
    expect(await main(['confirm', '/nonexistent/schedule.json'])).toBe(3);
    expect(err.mock.calls).toHaveLength(1);
    expect(err.mock.calls[0]![0]).toMatch(/^migfuzz: \/nonexistent\/schedule\.json: cannot read/);
  });

  it('no usable QEMU is exit 6, with one line saying how to get one', async () => {
    expect(await main(['confirm', SEED, '--qemu', '/nonexistent/qemu-system-x86_64'])).toBe(6);
    expect(err.mock.calls).toEqual([
      [
        'migfuzz: confirm: /nonexistent/qemu-system-x86_64 not found: install QEMU (apt-get install qemu-system-x86) or name one with --qemu PATH',
      ],
    ]);
  });

  it('fuzz: --qemu goes with --confirm', async () => {
    expect(await main(['fuzz', '--qemu', 'x', '--execs', '1'])).toBe(2);
    expect(err.mock.calls[0]![0]).toMatch(/^migfuzz: --qemu goes with --confirm/);
  });
});
