import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scheduleToJson } from '../../src/model/schedule/to-json.js';
import { decodeTrace } from '../../src/replay/trace.js';
import { BIN, buildCli, ROOT } from '../replay/helpers.js';
import { realQemuGate } from './gate.js';

/**
 * Issue 11 on a real QEMU (Debian's qemu-system-x86, TCG) with a real Linux guest built on
 * first use. Skipped, with the reason printed, where QEMU or apt-get is missing, unless
 * MIGFUZZ_REQUIRE_REAL=1 (CI sets it, so CI never skips these).
 */

const { skip, missing } = realQemuGate('the real-QEMU tests');

const tmp = mkdtempSync(join(tmpdir(), 'migfuzz-real-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Confirmed {
  code: number | null;
  json: {
    agree: boolean;
    ran: boolean;
    model: { signature: string }[];
    real: { signature: string; evidence: string[] }[];
    untranslatable: { step: number; reason: string }[];
    ports: { dev: string; port: number; guest?: { host: number }; qemu?: { host: boolean } }[];
    channels: Record<
      string,
      { hostSent: number; guestRead: number; guestWrote: number; hostReceived: number; delivered: boolean }
    >;
    qemu: { version: string; machine: string };
  };
  stderr: string;
}

function confirm(file: string, ...extra: string[]): Promise<Confirmed> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, 'confirm', file, '--json', ...extra], { cwd: ROOT });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => {
      out += d;
    });
    p.stderr.on('data', (d) => {
      err += d;
    });
    p.on('exit', (code) => resolve({ code, json: out ? JSON.parse(out) : null, stderr: err }));
  });
}

describe.skipIf(skip)('migfuzz confirm on a real QEMU', () => {
  beforeAll(() => {
    expect(missing, `MIGFUZZ_REQUIRE_REAL=1 but ${missing.join(', ')} missing`).toEqual([]);
    buildCli();
  }, 120_000);

  it('confirms the qemu-9.2 paused re-migration finding, quoting the guest', async () => {
    const r = await confirm('corpus/regressions/qemu-9.2-paused-remigration.mpk');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(1);
    expect(r.json.qemu.version).toMatch(/^\d+\.\d+/);
    expect(r.json.model.map((f) => f.signature)).toEqual([
      'stale-guest-view:vser0:host-connected-unsent-at-save',
    ]);
    const [real] = r.json.real;
    expect(r.json.real).toHaveLength(1);
    expect(real!.signature).toBe('stale-guest-view:vser0:host-connected-unsent-at-save');
    // The guest's own line: it believes the host is connected; QEMU says off.
    expect(real!.evidence.some((e) => /^guest \(gen 2\): MFZ \d+ port 04:3 host=1 /.test(e))).toBe(true);
    expect(real!.evidence.some((e) => /info qtree: port 3, guest off, host off/.test(e))).toBe(true);
    expect(r.json.agree).toBe(true);
  }, 120_000);

  it('confirms the other direction: a connected host the guest believes disconnected', async () => {
    // Ports connected at realize (client-mode chardevs) on every QEMU; the source's client
    // hangs up before the paused re-migration (REPORT.md, scenario reverse-client).
    const r = await confirm('test/confirm/schedules/paused-remigration-reverse.json');
    expect(r.code).toBe(1);
    expect(r.json.real.map((f) => f.signature)).toEqual([
      'stale-guest-view:vser0:host-connected-unsent-at-save',
    ]);
    expect(r.json.ports).toEqual([
      { dev: 'vser0', port: 3, guest: { host: 0, guest: 0 }, qemu: { host: true, guest: false } },
    ]);
    expect(r.json.agree).toBe(true);
  }, 120_000);

  it('the control (the middle destination runs first) is clean on both', async () => {
    const r = await confirm('test/confirm/schedules/paused-remigration-control.json');
    expect(r.code).toBe(0);
    expect(r.json.model).toEqual([]);
    expect(r.json.real).toEqual([]);
    expect(r.json.ports).toEqual([
      { dev: 'vser0', port: 3, guest: { host: 0, guest: 0 }, qemu: { host: false, guest: false } },
    ]);
    expect(r.json.agree).toBe(true);
  }, 120_000);

  it('a UART + virtio-serial ping-pong across two migrations delivers every byte', async () => {
    const keep = join(tmp, 'keep');
    const r = await confirm('test/confirm/schedules/ping-pong.json', '--keep', keep);
    expect(r.code).toBe(0);
    expect(r.json.real).toEqual([]);
    expect(r.json.agree).toBe(true);
    const bytes = 3 * 'ping-uart-1'.length;
    for (const key of ['serial0', 'vser0.port1']) {
      expect(r.json.channels[key]).toEqual({
        hostSent: bytes,
        guestRead: bytes,
        guestWrote: bytes,
        hostReceived: bytes,
        delivered: true,
      });
    }
    // --keep holds each QEMU's log (with its trace events), the agent's serial output, and
    // each migration stream as it passed (QEMU's own format: QEVM magic, version 3).
    expect(readdirSync(keep).sort()).toEqual([
      'gen0.agent.log',
      'gen0.stderr',
      'gen1.agent.log',
      'gen1.stderr',
      'gen1.stream',
      'gen2.agent.log',
      'gen2.stderr',
      'gen2.stream',
    ]);
    const stream = readFileSync(join(keep, 'gen1.stream'));
    expect(stream.subarray(0, 8).toString('hex')).toBe('5145564d00000003');
    expect(readFileSync(join(keep, 'gen0.agent.log'), 'latin1')).toMatch(/MFZ ready /);
  }, 120_000);

  it("lists a historical build's steps as untranslatable and runs nothing", async () => {
    const r = await confirm('corpus/seeds/bug-a-virtio-serial.json');
    expect(r.code).toBe(0);
    expect(r.json.ran).toBe(false);
    expect(r.json.untranslatable.length).toBeGreaterThan(0);
    expect(r.json.untranslatable[0]!.reason).toMatch(/build qemu-1\.2 \(src\) has no real binary/);
  }, 60_000);

  it('fuzz --confirm confirms the paused re-migration signature in its findings table', async () => {
    const out = join(tmp, 'campaign');
    // Starting from the regression seed's schedule, the campaign meets the signature at once.
    const corpus = join(tmp, 'corpus');
    mkdirSync(corpus);
    const seed = decodeTrace(readFileSync(join(ROOT, 'corpus/regressions/qemu-9.2-paused-remigration.mpk')));
    writeFileSync(join(corpus, 'paused.json'), JSON.stringify(scheduleToJson(seed.schedule)));
    const r = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const p = spawn(
        process.execPath,
        [
          BIN,
          'fuzz',
          '--builds',
          'qemu-9.2',
          '--execs',
          '300',
          '--seed',
          '3',
          '--corpus',
          corpus,
          '--confirm',
          '--json',
          '--out',
          out,
        ],
        { cwd: ROOT },
      );
      let stdout = '';
      p.stdout.on('data', (d) => {
        stdout += d;
      });
      p.on('exit', (code) => resolve({ code, stdout }));
    });
    expect(r.code).toBe(1);
    const sig = 'stale-guest-view:vser0:host-connected-unsent-at-save';
    // The summary's findings carry the real QEMU's verdict (the table shows it after the shrink note).
    const summary = JSON.parse(r.stdout) as { findings: { signature: string; real?: string }[] };
    expect(summary.findings.find((f) => f.signature === sig)?.real).toBe('confirmed');
    const saved = JSON.parse(readFileSync(join(out, 'crashes', sig, 'confirm.json'), 'utf8'));
    expect(saved.verdict).toBe('confirmed');
    expect(JSON.parse(readFileSync(join(out, 'fuzzer_stats.json'), 'utf8')).real_qemu).toEqual({
      [sig]: 'confirmed',
    });
  }, 180_000);

  it('a SIGINT during a confirmation leaves no QEMU behind', async () => {
    const p = spawn(
      process.execPath,
      [BIN, 'confirm', 'corpus/regressions/qemu-9.2-paused-remigration.mpk'],
      { cwd: ROOT },
    );
    let err = '';
    const pids: number[] = [];
    await new Promise<void>((resolve) => {
      p.stderr.on('data', (d) => {
        err += d;
        for (const m of err.matchAll(/pid (\d+)/g)) if (!pids.includes(Number(m[1]))) pids.push(Number(m[1]));
        // Two QEMUs up: the source and a paused destination.
        if (pids.length >= 2) resolve();
      });
    });
    p.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => p.on('exit', (c) => resolve(c)));
    expect(code).toBe(130);
    // SIGKILL was sent before the exit; give the kernel a moment to tear the processes down.
    for (let i = 0; i < 40 && pids.some(alive); i++) await new Promise((r) => setTimeout(r, 50));
    for (const pid of pids) expect(alive(pid), `QEMU pid ${pid} outlived the command`).toBe(false);
  }, 120_000);
});

/** A live process (a zombie waiting for its reaper is dead). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
