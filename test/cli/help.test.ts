import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, type MockInstance, vi } from 'vitest';
import { flagName, helpText, usageLine } from '../../src/cli/flags.js';
import { COMMANDS, main } from '../../src/cli/main.js';
import { ROOT } from '../replay/helpers.js';
import { STACK } from './capture.js';

/**
 * The command line a user expects (issue 16): `--help` and `help COMMAND` on every command,
 * generated from its flag table; `--version`; a usage error is its line plus that command's
 * usage, an input error its line only; did-you-mean for commands and flags; completion.
 */

const tmp = mkdtempSync(join(tmpdir(), 'migfuzz-help-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const CLEAN = join(ROOT, 'corpus', 'seeds', 'uart-echo.json');

let log: MockInstance<(...args: unknown[]) => void>;
let err: MockInstance<(...args: unknown[]) => void>;
let written: string[];
beforeEach(() => {
  log = vi.spyOn(console, 'log').mockImplementation(() => {}) as unknown as typeof log;
  err = vi.spyOn(console, 'error').mockImplementation(() => {}) as unknown as typeof err;
  written = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
    written.push(String(s));
    return true;
  });
});
afterEach(() => {
  vi.restoreAllMocks();
});

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string[] }> {
  log.mockClear();
  err.mockClear();
  written = [];
  const code = await main(argv);
  const out = [...log.mock.calls.map((a) => a.map(String).join(' ')), ...written].join('\n');
  const errLines = err.mock.calls.flatMap((a) => a.map(String).join(' ').split('\n'));
  expect(out).not.toMatch(STACK);
  expect(errLines.join('\n')).not.toMatch(STACK);
  return { code, out, err: errLines };
}

describe('help', () => {
  it.each(COMMANDS.map((c) => [c.spec.name]))(
    '%s --help: usage, every flag with its default, an example',
    async (name) => {
      const spec = COMMANDS.find((c) => c.spec.name === name)!.spec;
      const r = await cli([...name.split(' '), '--help']);
      expect(r.code).toBe(0);
      expect(r.err).toEqual([]);
      expect(r.out.split('\n')[0]).toBe(usageLine(spec));
      for (const [key, flag] of Object.entries(spec.flags)) {
        const row = r.out.split('\n').find((l) => l.startsWith(`  ${flagName(key)}`));
        expect(row, key).toBeDefined();
        expect(row).toContain(flag.help);
        if (flag.shown !== undefined) expect(row).toContain(`(default: ${flag.shown})`);
      }
      expect(r.out).toMatch(/^examples?:\n {2}\S/m);
      // `help COMMAND` says the same.
      expect((await cli(['help', ...name.split(' ')])).out).toBe(r.out);
    },
  );

  it('fuzz --help shows the defaults and the status line legend', async () => {
    const { out } = await cli(['fuzz', '--help']);
    expect(out).toMatch(/^ {2}--workers N +.*\(default: 1\)$/m);
    expect(out).toMatch(/^ {2}--out DIR +.*\(default: out\)$/m);
    expect(out).toMatch(/^ {2}--event-budget N +.*\(default: 2000000\)$/m);
    expect(out).toContain('status line: "#N cov: C corp: Q exec/s: R finds: F (K known)"');
  });

  it('help and --help with no command list every command', async () => {
    const r = await cli(['help']);
    expect(r.code).toBe(0);
    for (const c of COMMANDS) expect(r.out).toContain(`  ${c.spec.name} `);
    expect((await cli(['--help'])).out).toBe(r.out);
  });

  it('help corpus lists its subcommands', async () => {
    expect((await cli(['help', 'corpus'])).out).toBe(
      'usage: migfuzz corpus add TRACE [--name NAME] [--force] [--dir DIR]\nusage: migfuzz corpus check [DIR] [--json]\nusage: migfuzz corpus merge OUT_DIR... [--into DIR] [--builds FILE] [--json]',
    );
  });

  it('--version prints the package version', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = await cli(['--version']);
    expect(r).toMatchObject({ code: 0, out: `migfuzz ${pkg.version}`, err: [] });
  });

  it('helpText renders what the table says', () => {
    const spec = COMMANDS.find((c) => c.spec.name === 'shrink')!.spec;
    expect(usageLine(spec)).toBe('usage: migfuzz shrink TRACE [--out OUT.mpk] [--signature SIG] [--json]');
    expect(helpText(spec)).toMatch(/^ {2}--out OUT\.mpk, -o +where to write the shrunk trace$/m);
  });
});

describe('errors', () => {
  it('a usage error prints its line, then that command usage (not the whole list)', async () => {
    const r = await cli(['run', CLEAN, '--jsno']);
    expect(r.code).toBe(2);
    expect(r.err).toEqual([
      'migfuzz: unknown option "--jsno" (did you mean "--json"?)',
      'usage: migfuzz run FILE [--trace OUT.mpk] [--json] [--builds FILE] [--from-stream STREAM]',
      '(migfuzz run --help for more)',
    ]);
  });

  it('an unknown command suggests the closest', async () => {
    const r = await cli(['shrnk', 'a.mpk']);
    expect(r.code).toBe(2);
    expect(r.err[0]).toBe('migfuzz: unknown command "shrnk" (did you mean "shrink"?)');
  });

  it('an input error prints its line only', async () => {
    const missing = join(tmp, 'missing.json');
    const r = await cli(['run', missing]);
    expect(r).toMatchObject({ code: 3, err: [`migfuzz: ${missing}: cannot read (no such file)`] });
  });

  it('list flags are trimmed: --builds "qemu-9.2, qemu-2.3" is two builds', async () => {
    const out = join(tmp, 'trim');
    const r = await cli([
      'fuzz',
      '--execs',
      '5',
      '--seed',
      '1',
      '--builds',
      'qemu-9.2, qemu-2.3',
      '--out',
      out,
      '--json',
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).builds).toEqual(['qemu-9.2', 'qemu-2.3']);
  });

  it('--builds suggests the closest build', async () => {
    const r = await cli(['fuzz', '--builds', 'qemu-9.2,rhel74']);
    expect(r.code).toBe(2);
    expect(r.err[0]).toMatch(
      /^migfuzz: --builds: unknown build "rhel74" \(did you mean "rhel-7.4"\?\) \(known: /,
    );
  });

  it('build pairs without a machine type in common are named, not skipped silently', async () => {
    const out = join(tmp, 'pairs');
    const argv = ['fuzz', '--execs', '5', '--seed', '1', '--builds', 'qemu-1.2,qemu-9.2', '--out', out];
    const text = await cli(argv);
    expect(text.out).toContain(
      'migfuzz: not migrating between builds without a machine type in common: qemu-1.2 with qemu-9.2\n',
    );
    const json = await cli([...argv, '--fresh', '--json']);
    expect(JSON.parse(json.out).skippedPairs).toEqual(['qemu-1.2↔qemu-9.2']);
  });

  interface Doc {
    src: { build: string };
    dst: { build: string };
    steps: { do: string; dev: string }[];
  }
  let fileNo = 0;
  const schedule = (edit: (d: Doc) => void): string => {
    const doc = JSON.parse(readFileSync(CLEAN, 'utf8')) as Doc;
    edit(doc);
    const file = join(tmp, `s${fileNo++}.json`);
    writeFileSync(file, JSON.stringify(doc));
    return file;
  };

  it('a schedule whose builds share no machine type says so, without listing them all', async () => {
    const file = schedule((d) => {
      d.src.build = 'qemu-1.2';
    });
    const r = await cli(['run', file]);
    expect(r).toMatchObject({
      code: 3,
      err: [
        `migfuzz: ${file}: machine: qemu-1.2 and qemu-9.2 have no machine type in common: no migration between them`,
      ],
    });
  });

  it('an unknown step kind or device suggests the closest', async () => {
    const step = schedule((d) => {
      d.steps[1]!.do = 'guest.uart.wrte';
    });
    expect((await cli(['run', step])).err).toEqual([
      `migfuzz: ${step}: steps[1]: unknown step "guest.uart.wrte" (did you mean "guest.uart.write"?)`,
    ]);
    const dev = schedule((d) => {
      d.steps[1]!.dev = 'serail0';
    });
    expect((await cli(['run', dev])).err).toEqual([
      `migfuzz: ${dev}: steps[1].dev: no device "serail0" (did you mean "serial0"?) (devices: serial0)`,
    ]);
  });

  it('an unknown build of a schedule suggests --builds', async () => {
    const file = schedule((d) => {
      d.src.build = 'my-build';
      d.dst.build = 'my-build';
    });
    expect((await cli(['run', file])).err).toEqual([
      `migfuzz: ${file}: src.build: unknown build "my-build": is it from a build file? give it with --builds FILE`,
    ]);
  });
});

describe('completion', () => {
  const script = async (shell: string): Promise<string> => {
    const r = await cli(['completion', shell]);
    expect(r.code).toBe(0);
    return r.out;
  };
  /** What bash completes for the words typed so far. */
  function complete(text: string, words: string[]): string[] {
    const file = join(tmp, 'completion.bash');
    mkdirSync(tmp, { recursive: true });
    execFileSync('bash', ['-c', `cat > ${file}`], { input: text });
    const cmd = `source ${file}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _migfuzz; printf '%s\\n' "\${COMPREPLY[@]}"`;
    return execFileSync('bash', ['-c', cmd], { encoding: 'utf8' }).split('\n').filter(Boolean).sort();
  }

  it('bash completes commands, subcommands, flags and shells', async () => {
    const text = await script('bash');
    expect(complete(text, ['migfuzz', 'sh'])).toEqual(['show', 'shrink']);
    expect(complete(text, ['migfuzz', 'corpus', 'c'])).toEqual(['check']);
    expect(complete(text, ['migfuzz', 'fuzz', '--wo'])).toEqual(['--workers']);
    expect(complete(text, ['migfuzz', 'corpus', 'add', 'x.mpk', '--f'])).toEqual(['--force']);
    expect(complete(text, ['migfuzz', 'completion', 'z'])).toEqual(['zsh']);
  });

  it('zsh loads the same function through bashcompinit', async () => {
    const text = await script('zsh');
    expect(text.split('\n')[0]).toBe('#compdef migfuzz');
    expect(text).toContain('autoload -U +X bashcompinit && bashcompinit');
    expect(text).toContain('complete -o filenames -F _migfuzz migfuzz');
  });

  it('an unknown shell is a usage error', async () => {
    expect((await cli(['completion', 'fish'])).code).toBe(2);
  });
});
