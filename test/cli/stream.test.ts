import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { realStream } from '../stream/fixtures.js';
import { hostileScheduleJson } from '../stream/hostile.js';
import { captureCli } from './capture.js';

/** `migfuzz stream show FILE [--json]` on the committed real QEMU 7.2 streams. */

const run = captureCli();
const tmp = mkdtempSync(join(tmpdir(), 'migfuzz-stream-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const file = (name: string, bytes: Uint8Array): string => {
  const f = join(tmp, name);
  writeFileSync(f, bytes);
  return f;
};
const FIFO = file('fifo.bin', realStream('qemu72-fifo'));
const cli = (argv: string[]): number => main(argv) as number;

describe('stream show', () => {
  it('prints the header, RAM, every section and the modelled devices field by field', () => {
    const r = run(cli, ['stream', 'show', FIFO]);
    expect(r.code).toBe(0);
    const text = r.out.join('\n');
    expect(r.out[0]).toMatch(/QEMU migration stream version 3, 767942 bytes/);
    expect(text).toContain('configuration @8: machine type pc-i440fx-7.2');
    expect(text).toMatch(/pc\.ram: 67108864 bytes, \d+ pages, \d+ zero pages/);
    expect(text).toMatch(/full section 22 serial #0 v3: 158 bytes, footer @\d+/);
    expect(text).toContain('divider=12 rbr=0 ier=0 iir=193 lcr=3 mcr=11 lsr=1 msr=176 scr=0 fcr_vmstate=1');
    expect(text).toMatch(
      /subsection serial\/xmit_fifo v1 @\d+: xmit_fifo\.data=41424344.* xmit_fifo\.head=7 xmit_fifo\.num=9/,
    );
    expect(text).toContain('port 1: guest_connected 0 host_connected 1');
    expect(text).toMatch(/subsection virtio_pci\/modern_state v1/);
    expect(text).toMatch(/JSON description @\d+: 100571 bytes, 32 devices/);
  });

  it('--json prints one object with every section', () => {
    const r = run(cli, ['stream', 'show', FIFO, '--json']);
    expect(r.code).toBe(0);
    expect(r.out).toHaveLength(1);
    const j = JSON.parse(r.out[0]!);
    expect(j.configuration.machineType).toBe('pc-i440fx-7.2');
    const serial = j.sections.find((s: { idstr: string }) => s.idstr === 'serial');
    expect(serial.body.serial.subsections[0]).toMatchObject({ name: 'serial/tsr', fields: { tsr_retry: 1 } });
  });

  it('a truncated or foreign file: one line with the offset, exit 3', () => {
    const bytes = realStream('qemu72-paused');
    const cut = file('cut.bin', bytes.subarray(0, 354000));
    const r = run(cli, ['stream', 'show', cut]);
    expect(r.code).toBe(3);
    expect(r.err).toEqual([
      expect.stringMatching(/^migfuzz: .*cut\.bin: offset \d+ \(0x[0-9a-f]+\): truncated: /),
    ]);
    const junk = run(cli, [
      'stream',
      'show',
      file('junk.bin', new TextEncoder().encode('{"not": "a stream"}')),
    ]);
    expect(junk.code).toBe(3);
    expect(junk.err).toEqual([expect.stringMatching(/offset 0 \(0x0\): not a QEMU migration stream/)]);
    expect(run(cli, ['stream', 'show', join(tmp, 'missing.bin')]).code).toBe(3);
  });

  it('usage errors exit 2', () => {
    expect(run(cli, ['stream']).code).toBe(2);
    expect(run(cli, ['stream', 'show']).code).toBe(2);
    expect(run(cli, ['stream', 'list', FIFO]).code).toBe(2);
  });
});

describe('stream craft', () => {
  const schedule = file('recv-head.json', new TextEncoder().encode(hostileScheduleJson('recv-head')));
  const honest = file(
    'honest.json',
    new TextEncoder().encode(hostileScheduleJson('recv-head').replace(/,"hostile":\{[^}]*\}\}/, '')),
  );

  it("writes the finding's serial section into the base; stream show notes the stale description", () => {
    const out = join(tmp, 'hostile.bin');
    const r = run(cli, ['stream', 'craft', schedule, '--base', FIFO, '--out', out, '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out[0]!);
    expect(j.finding).toMatchObject({
      device: 'uart0',
      outcome: 'unsafe-load',
      key: 'recv-fifo-head',
      migration: 0,
    });
    expect(j.section).toEqual({ idstr: 'serial', instance: 0, version: 3 });
    expect(j.oldLength).toBe(158);
    const shown = run(cli, ['stream', 'show', out]).out.join('\n');
    expect(shown).toMatch(
      /serial #0 v3: \d+ bytes \(the JSON description says 158: rewritten after QEMU saved it\)/,
    );
    expect(shown).toMatch(/recv_fifo\.head=2147483632 recv_fifo\.num=16/);
  });

  it('a run with nothing flagged is exit 3 with one line; missing flags are a usage error', () => {
    const r = run(cli, ['stream', 'craft', honest, '--base', FIFO, '--out', join(tmp, 'x.bin')]);
    expect(r.code).toBe(3);
    expect(r.err.join('\n')).toMatch(
      /honest\.json: its run ends with no finding and no refused device section/,
    );
    expect(run(cli, ['stream', 'craft', schedule, '--out', join(tmp, 'x.bin')]).code).toBe(2);
  });
});
