import { describe, expect, it } from 'vitest';
import { DECODERS, robustnessCases } from '../bench/robustness.js';
import { parseArgs, UsageError } from '../src/cli/args.js';

/**
 * Issue 7: every decoder (schedules, traces, migration streams, build files, CLI flags) under
 * a fixed-seed sample of hostile input (bench/robustness.ts, which `npm run bench --
 * --robustness` runs at 100,000 cases per decoder): each case is accepted or ends in the
 * decoder's typed error with a one-line message; no other exception, no polluted prototype,
 * no case that hangs (slower than 10 s here; the bench holds each case to 1 s).
 */

const CASES = 1000;
const HANG_MS = 10_000;

describe('decoders under hostile input', () => {
  for (const [i, decoder] of DECODERS.entries()) {
    it(`${decoder}: ${CASES} generated cases, no failure`, () => {
      const r = robustnessCases(decoder, CASES, 0x7ab0 + i, HANG_MS);
      expect(r.cases).toBe(CASES);
      expect(r.firstFailure).toBeNull();
      expect(r.failures).toBe(0);
      // The sample exercises the rejections, not only valid input.
      expect(r.rejected).toBeGreaterThan(CASES / 10);
    });
  }

  it('an unknown option holding a line break gives a one-line UsageError', () => {
    expect(() => parseArgs(['--a\nb'], [], [])).toThrow(UsageError);
    expect(() => parseArgs(['--a\nb'], [], [])).toThrow(/^[^\n\r\u2028\u2029]*$/);
  });
});
