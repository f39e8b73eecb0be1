import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, buildCli, ROOT } from '../replay/helpers.js';
import { type HostileCase, hostileScheduleJson } from '../stream/hostile.js';
import { realQemuGate } from './gate.js';

/**
 * Hostile-stream proofs on a real QEMU 7.2 (Debian's, TCG) with the test guest: a model
 * finding (a schedule whose migration has a hostile source, recorded as a trace) is written
 * into a real stream of the guest (`stream base`, `stream craft`) and loaded into a real
 * destination (`confirm --stream`). The outcomes are those of the reference experiment
 * (HOSTILE-STREAM in the reference notes). Skipped, with the reason printed, where QEMU or
 * apt-get is missing, unless MIGFUZZ_REQUIRE_REAL=1.
 */

const { skip, missing } = realQemuGate('the hostile-stream proofs');

const tmp = mkdtempSync(join(tmpdir(), 'migfuzz-proof-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function cli(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd: ROOT });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => {
      out += d;
    });
    p.stderr.on('data', (d) => {
      err += d;
    });
    p.on('exit', (code) => resolve({ code, out, err }));
  });
}

interface Proof {
  fate: string;
  loaded: boolean;
  signal?: string;
  exitStatus?: number;
  error: string[];
  rbrReads: number;
  evidence: string[];
}

/** The finding's trace, crafted onto the base, proved on the real destination. */
async function prove(c: HostileCase): Promise<{ finding: { key: string; message: string }; proof: Proof }> {
  const schedule = join(tmp, `${c}.json`);
  writeFileSync(schedule, hostileScheduleJson(c));
  const trace = join(tmp, `${c}.mpk`);
  expect((await cli('run', schedule, '--trace', trace)).code).toBe(1);
  const out = join(tmp, `${c}.bin`);
  const craft = await cli('stream', 'craft', trace, '--base', join(tmp, 'base.bin'), '--out', out, '--json');
  expect(craft.err).toBe('');
  expect(craft.code).toBe(0);
  const r = await cli('confirm', '--stream', out, '--watch', '4', '--json');
  expect(r.code).toBe(1);
  return { finding: JSON.parse(craft.out).finding, proof: JSON.parse(r.out) };
}

describe.skipIf(skip)('hostile streams proved on a real QEMU 7.2', () => {
  beforeAll(async () => {
    expect(missing, `MIGFUZZ_REQUIRE_REAL=1 but ${missing.join(', ')} missing`).toEqual([]);
    buildCli();
    writeFileSync(join(tmp, 'devices.json'), hostileScheduleJson('recv-head'));
    const base = await cli('stream', 'base', join(tmp, 'devices.json'), '--out', join(tmp, 'base.bin'));
    expect(base.code, base.err).toBe(0);
  }, 240_000);

  it('the base stream itself runs as it should (the control)', async () => {
    const r = await cli('confirm', '--stream', join(tmp, 'base.bin'), '--watch', '4', '--json');
    expect(r.code).toBe(0);
    const p: Proof = JSON.parse(r.out);
    expect(p.fate).toBe('running');
    expect(p.evidence.some((e) => /^the agent answers \(MFZ \d+ ok \S+\)$/.test(e))).toBe(true);
    expect(p.rbrReads).toBeLessThan(10_000);
  }, 120_000);

  it('recv_fifo.head = 0x7ffffff0: accepted, then SIGSEGV once the guest reads RBR', async () => {
    const { finding, proof } = await prove('recv-head');
    expect(finding.key).toBe('recv-fifo-head');
    expect(proof).toMatchObject({ fate: 'crashed', loaded: true, signal: 'SIGSEGV' });
    expect(proof.rbrReads).toBeGreaterThan(0);
  }, 120_000);

  it('xmit_fifo.head = 0x7ffffff0: accepted, then SIGSEGV on the first THR write', async () => {
    const { finding, proof } = await prove('xmit-head');
    expect(finding.key).toBe('xmit-fifo-head');
    expect(proof).toMatchObject({ fate: 'crashed', loaded: true, signal: 'SIGSEGV' });
  }, 120_000);

  it("xmit_fifo.num = 17: accepted, then SIGABRT on fifo8_push's assert", async () => {
    const { finding, proof } = await prove('xmit-num');
    expect(finding.key).toBe('xmit-fifo-num');
    expect(proof).toMatchObject({ fate: 'crashed', loaded: true, signal: 'SIGABRT' });
    expect(proof.error.join('\n')).toContain("fifo8_push: Assertion `fifo->num < fifo->capacity' failed.");
  }, 120_000);

  it('recv_fifo.num = 0xffffffff: accepted, QEMU runs on, the guest is stuck in an RBR read storm', async () => {
    const { finding, proof } = await prove('recv-num');
    expect(finding.key).toBe('recv-fifo-num');
    expect(proof).toMatchObject({ fate: 'corrupted', loaded: true });
    expect(proof.rbrReads).toBeGreaterThan(10_000);
    expect(proof.evidence).toContain('the agent does not answer: the guest is stuck');
  }, 120_000);

  it("tsr_retry with LSR.TEMT set: refused, with QEMU's exact message, which the model's finding quotes", async () => {
    const { finding, proof } = await prove('tsr-temt');
    expect(finding.key).toBe('tsr-empty');
    expect(proof).toMatchObject({ fate: 'refused', loaded: false, exitStatus: 1 });
    const qemu = 'qemu-system-x86_64: inconsistent state in serial device (tsr empty, tsr_retry=-1';
    expect(proof.error).toContain(qemu);
    expect(proof.error).toContain('qemu-system-x86_64: load of migration failed: Operation not permitted');
    expect(finding.message.startsWith(qemu.slice('qemu-system-x86_64: '.length))).toBe(true);
  }, 120_000);

  it('stream craft changed only the serial section of the base', () => {
    const base = readFileSync(join(tmp, 'base.bin'));
    const crafted = readFileSync(join(tmp, 'recv-head.bin'));
    const at = crafted.findIndex((_, i) => crafted[i] !== base[i]);
    // The first difference lies in the serial #0 body, and the tails match from its footer on.
    expect(crafted.subarray(0, at).equals(base.subarray(0, at))).toBe(true);
    const tail = base.length - at - 11;
    expect(crafted.subarray(crafted.length - tail).equals(base.subarray(base.length - tail))).toBe(true);
  });
});
