/**
 * Every exit code of the command line, in one place (docs/cli.md lists them for users). A
 * finding is 1 and a diverged replay 4, so scripts can tell "found something" from "could not
 * run": 2 is a usage error, 3 an input file that cannot be used, 70 (sysexits EX_SOFTWARE) a
 * bug of migfuzz itself.
 */
export const Exit = {
  OK: 0,
  FOUND: 1,
  USAGE: 2,
  INPUT: 3,
  DIVERGED: 4,
  /** `confirm`: no usable QEMU or guest, or the real run broke. */
  NO_REAL_QEMU: 6,
  INTERNAL: 70,
} as const;

/**
 * An input file (schedule, trace, build file, directory) that cannot be used: exit 3 with
 * `migfuzz: <message>` and nothing else. The message says what is wrong and where.
 */
export class InputError extends Error {
  override readonly name = 'InputError';
}
