import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeStream } from '../../src/stream/decode.js';
import { fixturePath } from './fixtures.js';
import { Qemu, realQemu, waitFor } from './qemu.js';

/**
 * A fresh stream from the installed QEMU (the command line of test/fixtures/streams/README.md,
 * with the fixture's boot sector), decoded and checked against what QEMU itself reports over
 * QMP/HMP (`info qtree`, `x-query-virtio-status`, `x-query-virtio-queue-status`).
 */

const gate = realQemu();
if (!gate.run) console.log(`real-QEMU stream test skipped: ${gate.reason}`);

describe.skipIf(!gate.run)('a fresh stream from the installed QEMU', () => {
  const dir = mkdtempSync(join(tmpdir(), 'migfuzz-qemu-'));
  const clients: Socket[] = [];
  let qemu: Qemu | null = null;
  afterAll(async () => {
    for (const c of clients) c.destroy();
    await qemu?.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  it('stream show --json agrees with QEMU on the virtio-serial device and its port', async () => {
    // A floppy image holding the boot sector that fills both UART FIFOs.
    const floppy = Buffer.alloc(1474560);
    readFileSync(fixturePath('streams/fifo-boot.img')).copy(floppy);
    writeFileSync(join(dir, 'boot.img'), floppy);
    const sock = (n: string): string => join(dir, `${n}.sock`);
    qemu = new Qemu([
      ...['-M', 'pc-i440fx-7.2', '-accel', 'tcg', '-m', '64', '-nodefaults', '-display', 'none'],
      ...['-qmp', `unix:${sock('qmp')},server=on,wait=off`],
      ...['-chardev', `socket,id=com1,path=${sock('com1')},server=on,wait=off`, '-serial', 'chardev:com1'],
      ...['-device', 'virtio-serial-pci,id=vser0'],
      ...['-chardev', `socket,id=port1,path=${sock('port1')},server=on,wait=off`],
      ...['-device', 'virtserialport,id=port0,bus=vser0.0,nr=1,name=test.0,chardev=port1'],
      ...['-drive', `file=${join(dir, 'boot.img')},format=raw,if=floppy`, '-boot', 'a'],
    ]);
    await qemu.connect(sock('qmp'));
    for (const n of ['com1', 'port1']) {
      await waitFor(sock(n), 10_000);
      clients.push(createConnection(sock(n)));
    }
    await new Promise((r) => setTimeout(r, 3000)); // SeaBIOS, then the boot sector runs
    await qemu.cmd('stop');
    const out = join(dir, 'stream.bin');
    await qemu.cmd('migrate', { uri: `exec:cat > ${out}` });
    for (let i = 0; i < 200; i++) {
      const st = (await qemu.cmd('query-migrate')) as { status?: string };
      if (st.status === 'completed') break;
      if (st.status === 'failed') throw new Error('migration to file failed');
      await new Promise((r) => setTimeout(r, 50));
    }
    const qtree = await qemu.hmp('info qtree');
    const path = '/machine/peripheral/vser0/virtio-backend';
    const status = (await qemu.cmd('x-query-virtio-status', { path })) as Record<string, unknown>;
    const q2 = (await qemu.cmd('x-query-virtio-queue-status', { path, queue: 2 })) as Record<string, number>;
    await qemu.kill();

    const d = JSON.parse(
      JSON.stringify(decodeStream(readFileSync(out)), (_k, v) => (typeof v === 'bigint' ? String(v) : v)),
    );
    const vs = d.sections.find((s: { idstr: string }) => s.idstr === '0000:00:02.0/virtio-console').body
      .virtio;
    const serial = d.sections.find((s: { idstr: string }) => s.idstr === 'serial').body.serial;
    const num = (re: RegExp): number => Number(qtree.match(re)![1]);

    // info qtree
    expect(qtree).toContain(`pci id ${vs.pci.vendor_id.toString(16)}:${vs.pci.device_id.toString(16)}`);
    const bar0 = Number.parseInt(vs.pci.config.slice(32, 40).match(/../g)!.reverse().join(''), 16) & ~3;
    expect(qtree).toContain(`bar 0: i/o at 0x${bar0.toString(16)} `);
    expect(num(/vectors = (\d+)/)).toBe(vs.msix.vectors);
    expect(num(/max_ports = (\d+)/)).toBe(vs.serial.max_nr_ports);
    expect(num(/nr = (\d+)/)).toBe(vs.serial.ports[0].id);
    const [, guest, host] = qtree.match(/port 1, guest (on|off), host (on|off)/)!;
    expect(vs.serial.ports[0]).toMatchObject({
      guest_connected: guest === 'on' ? 1 : 0,
      host_connected: host === 'on' ? 1 : 0,
    });
    expect(host).toBe('on');
    // x-query-virtio-status and x-query-virtio-queue-status
    expect(vs.isr).toBe(status.isr);
    expect(vs.queue_sel).toBe(status['queue-sel']);
    expect(vs.queues).toHaveLength(status['num-vqs'] as number);
    const sub = (name: string) => vs.subsections.find((s: { name: string }) => s.name === name);
    expect(sub('virtio/disabled')?.fields.disabled ?? false).toBe(status.disabled);
    expect(sub('virtio/started')?.fields.started ?? false).toBe(status.started);
    expect(vs.queues[2]).toMatchObject({ num: q2['vring-num'], last_avail_idx: q2['last-avail-idx'] });
    // The boot sector's own register writes.
    expect(serial.fields).toMatchObject({ lcr: 3, mcr: 0x0b, fcr_vmstate: 1 });
  }, 60_000);
});
