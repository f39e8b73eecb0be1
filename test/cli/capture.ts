import { afterEach, beforeEach, expect, type MockInstance, vi } from 'vitest';

/** A V8 stack frame line: "    at fn (file:line:col)". */
export const STACK = /^\s+at .+:\d+:\d+\)?$/m;

export interface CliResult {
  code: number;
  out: string[];
  err: string[];
}

const lines = (spy: MockInstance<(...args: unknown[]) => void>): string[] =>
  spy.mock.calls.flatMap((args) => args.map(String).join(' ').split('\n'));

/**
 * Captures console.log/console.error around each test (call at the top of a test file) and
 * returns a runner for a command function: its exit code and printed lines, which must never
 * hold a stack trace.
 */
export function captureCli(): (cmd: (argv: string[]) => number, argv: string[]) => CliResult {
  let log: MockInstance<(...args: unknown[]) => void>;
  let err: MockInstance<(...args: unknown[]) => void>;
  beforeEach(() => {
    log = vi.spyOn(console, 'log').mockImplementation(() => {}) as unknown as typeof log;
    err = vi.spyOn(console, 'error').mockImplementation(() => {}) as unknown as typeof err;
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });
  return (cmd, argv) => {
    log.mockClear();
    err.mockClear();
    const r = { code: cmd(argv), out: lines(log), err: lines(err) };
    expect(r.out.join('\n')).not.toMatch(STACK);
    expect(r.err.join('\n')).not.toMatch(STACK);
    return r;
  };
}
