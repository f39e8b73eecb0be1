import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LoadError } from '../../src/model/migration/stream.js';
import { type DeviceSection, loadDeviceSection, saveDeviceSection } from '../../src/model/migration/vm.js';
import { spliceSection } from '../../src/stream/craft.js';
import { fixtureMachine, realStream } from './fixtures.js';
import { Qemu, realQemu } from './qemu.js';

/**
 * The other direction: a real QEMU 7.2 reads the model's sections. The paused fixture (a VM
 * that never ran, test/fixtures/streams) gets the model's own serial and virtio-console
 * sections of the same devices, and a destination started with the fixture's command line
 * loads it. A doctored INTA irq_state is refused by both with the same words.
 */

const gate = realQemu();
if (!gate.run) console.log(`real-QEMU load test skipped: ${gate.reason}`);

const VSER_IDSTR = '0000:00:02.0/virtio-console';

/** The model's sections in the fixture's stream (the virtio one under the fixture's PCI address). */
function withModelSections(edit?: (vser: DeviceSection) => void): Uint8Array {
  const m = fixtureMachine();
  const serial = saveDeviceSection(m, 0);
  const vser = { ...saveDeviceSection(m, 1), idstr: VSER_IDSTR };
  edit?.(vser);
  return spliceSection(spliceSection(realStream('qemu72-paused'), serial).bytes, vser).bytes;
}

describe.skipIf(!gate.run)("a real QEMU 7.2 reads the model's sections", () => {
  const dir = mkdtempSync(join(tmpdir(), 'migfuzz-qemu-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  let runs = 0;

  /** A destination with the fixture's command line, loading `bytes`; its fate after the load. */
  async function load(bytes: Uint8Array): Promise<{ status: string; stderr: string; qtree: string }> {
    const run = runs++;
    const file = join(dir, `in${run}.bin`);
    writeFileSync(file, bytes);
    const sock = (n: string): string => join(dir, `${n}${run}.sock`);
    const q = new Qemu([
      ...['-M', 'pc-i440fx-7.2', '-accel', 'tcg', '-m', '64', '-nodefaults', '-display', 'none'],
      ...['-qmp', `unix:${sock('qmp')},server=on,wait=off`],
      ...['-chardev', `socket,id=com1,path=${sock('com1')},server=on,wait=off`, '-serial', 'chardev:com1'],
      ...['-device', 'virtio-serial-pci,id=vser0'],
      ...['-chardev', `socket,id=port1,path=${sock('port1')},server=on,wait=off`],
      ...['-device', 'virtserialport,id=port0,bus=vser0.0,nr=1,name=test.0,chardev=port1'],
      ...['-S', '-incoming', 'defer'],
    ]);
    // A destination that refuses the stream exits mid-command: its reply never comes.
    const exited = new Promise<null>((r) => q.proc.once('exit', () => r(null)));
    const ask = (c: string, a?: Record<string, unknown>) => {
      const reply = q.cmd(c, a);
      reply.catch(() => {}); // a reply lost to the exit must not surface later
      return Promise.race([reply, exited]);
    };
    try {
      await q.connect(sock('qmp'));
      await ask('migrate-incoming', { uri: `exec:cat ${file}` });
      for (let i = 0; i < 200; i++) {
        const st = (await ask('query-migrate')) as { status?: string } | null;
        if (st === null) return { status: 'exited', stderr: q.stderr, qtree: '' };
        if (st.status === 'completed') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const st = (await ask('query-status')) as { status: string } | null;
      if (st === null) return { status: 'exited', stderr: q.stderr, qtree: '' };
      return { status: st.status, stderr: q.stderr, qtree: await q.hmp('info qtree') };
    } finally {
      await q.kill();
    }
  }

  // The fixture's source never ran: its globalstate says prelaunch, which the destination takes.
  it('loads them: the destination is in the source run state with the port present', async () => {
    const r = await load(withModelSections());
    expect(r.stderr).toBe('');
    expect(r.status).toBe('prelaunch');
    expect(r.qtree).toMatch(/port 1, guest off, host off/);
  }, 60_000);

  it('refuses an INTA irq_state of 2 as the model does: "irq state 2: must be 0 or 1."', async () => {
    const doctor = (v: DeviceSection) => {
      // The PCIDevice's version_id (4 bytes) and config space (256), then INTA's be32.
      v.body = v.body.slice();
      v.body[4 + 256 + 3] = 2;
    };
    const r = await load(withModelSections(doctor));
    expect(r.status).toBe('exited');
    expect(r.stderr).toContain('irq state 2: must be 0 or 1.');
    const m = fixtureMachine();
    const v = { ...saveDeviceSection(m, 1) };
    doctor(v);
    expect(() => loadDeviceSection(fixtureMachine(), 1, 3, v.body)).toThrow(LoadError);
    expect(() => loadDeviceSection(fixtureMachine(), 1, 3, v.body)).toThrow('irq state 2: must be 0 or 1.');
  }, 60_000);
});
