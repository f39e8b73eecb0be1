import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Cursor, StreamFormatError } from '../../src/stream/cursor.js';
import { type DecodedStream, decodeStream, type Section } from '../../src/stream/decode.js';
import {
  decodeVirtioConsole,
  ELEMENT_OLD_SIZE,
  type VirtioConsoleState,
} from '../../src/stream/virtio-console.js';
import { type DescDevice, walkDesc } from '../../src/stream/vmdesc.js';
import { PORT_BLOCK, realStream } from './fixtures.js';

/** The real QEMU 7.2 streams of test/fixtures/streams, decoded whole. */

const paused = realStream('qemu72-paused');
const fifo = realStream('qemu72-fifo');

const section = (d: DecodedStream, idstr: string): Section => d.sections.find((s) => s.idstr === idstr)!;
const serialOf = (d: DecodedStream) => {
  const b = section(d, 'serial').body;
  if (b.kind !== 'serial') throw new Error('not decoded as serial');
  return b.serial;
};
const virtioOf = (d: DecodedStream): VirtioConsoleState => {
  const b = section(d, '0000:00:02.0/virtio-console').body;
  if (b.kind !== 'virtio-console') throw new Error('not decoded as virtio-console');
  return b.virtio;
};

describe('a real stream saved with -S (reset devices)', () => {
  const d = decodeStream(paused);

  it('has the header, the configuration and every section up to EOF and the JSON description', () => {
    expect(d.version).toBe(3);
    expect(d.configuration.machineType).toBe('pc-i440fx-7.2');
    const full = d.sections.filter((s) => s.type === 'full');
    // One FULL section per device the JSON description lists, in the same order.
    expect(full.map((s) => s.idstr)).toContain('serial');
    expect(d.vmdesc?.devices).toBe(full.length);
    expect(full.every((s) => s.body.kind !== 'ram' && s.footer !== null)).toBe(true);
    expect(d.eofOffset).toBe(d.vmdesc!.offset - 1);
    expect(d.vmdesc!.offset + 5 + d.vmdesc!.length).toBe(paused.length);
  });

  it('walks RAM by its flags: a START record announcing the blocks, PARTs, an empty END', () => {
    const ram = d.sections.filter((s) => s.idstr === 'ram');
    expect(ram[0]!.type).toBe('start');
    expect(ram.at(-1)!.type).toBe('end');
    const pcRam = d.ram.blocks.find((b) => b.name === 'pc.ram')!;
    expect(pcRam.length).toBe(64 << 20);
    // Nothing ran: all 16384 pages of guest RAM are zero pages; the BIOS ROM has data.
    expect(pcRam.zeroPages).toBe(16384);
    expect(pcRam.pages).toBe(0);
    expect(d.ram.blocks.find((b) => b.name === 'pc.bios')!.pages).toBeGreaterThan(0);
    const first = ram[0]!.body;
    expect(first.kind === 'ram' && first.ram.totalBytes).toBe(d.ram.blocks.reduce((n, b) => n + b.length, 0));
  });

  it('decodes the serial section with the model descriptions: serial_reset values, no subsection', () => {
    const s = serialOf(d);
    expect(s.fields).toEqual({
      divider: 12,
      rbr: 0,
      ier: 0,
      iir: 1,
      lcr: 0,
      mcr: 8,
      lsr: 0x60,
      msr: 0xb0,
      scr: 0,
      fcr_vmstate: 0,
    });
    expect(s.subsections).toEqual([]);
  });

  it('decodes the virtio-console section in its real layout', () => {
    const v = virtioOf(d);
    expect(v.pci).toMatchObject({ version_id: 2, vendor_id: 0x1af4, device_id: 0x1003 });
    expect(v.msix?.vectors).toBe(2);
    expect(v.status).toBe(0);
    // 2 control queues + 31 ports × 2 (max_nr_ports 31 plus port 0).
    expect(v.queues).toHaveLength(64);
    expect(v.queues.slice(0, 4).map((q) => q.num)).toEqual([128, 128, 32, 32]);
    expect(v.serial).toEqual({
      cols: 0,
      rows: 0,
      max_nr_ports: 31,
      ports_map: [0b11],
      // The client connected while the VM was in prelaunch: the open event waits for vm_start.
      ports: [{ id: 1, guest_connected: 0, host_connected: 0, elem_popped: 0 }],
    });
    expect(v.subsections.map((s) => s.name)).toEqual([
      'virtio/64bit_features',
      'virtio/virtqueues',
      'virtio/extra_state',
    ]);
    expect(v.subsections[2]!.subsections!.map((s) => s.name)).toEqual(['virtio_pci/modern_state']);
  });

  it('parses every other device with the JSON description', () => {
    const timer = section(d, 'timer').body;
    expect(timer.kind === 'described' && Object.keys(timer.desc.fields)).toEqual([
      'cpu_ticks_offset',
      'unused',
      'cpu_clock_offset',
    ]);
    const gs = section(d, 'globalstate').body;
    expect(gs.kind === 'described' && gs.desc.fields.size).toBe(10); // "prelaunch" and its NUL
    expect(gs.kind === 'described' && gs.desc.fields.runstate).toMatch(/^707265(6c61756e6368)00/);
  });
});

describe('a real stream with bytes in both FIFOs', () => {
  const d = decodeStream(fifo);

  it('carries the serial subsections the guest state needs, decoded field by field', () => {
    const s = serialOf(d);
    expect(s.fields).toMatchObject({ lcr: 3, mcr: 0x0b, fcr_vmstate: 1, lsr: 0x01 });
    const subs = Object.fromEntries(s.subsections.map((x) => [x.name, x.fields]));
    expect(Object.keys(subs)).toEqual([
      'serial/tsr',
      'serial/recv_fifo',
      'serial/xmit_fifo',
      'serial/timeout_ipending',
    ]);
    expect(subs['serial/tsr']).toEqual({ tsr_retry: 1, thr: 0x50, tsr: 0x47 });
    // The boot sector writes 'A'..'P'; the socket took 'A'..'G' (tsr), 9 bytes wait.
    expect(subs['serial/xmit_fifo']).toEqual({
      'xmit_fifo.data': '4142434445464748494a4b4c4d4e4f50',
      'xmit_fifo.head': 7,
      'xmit_fifo.num': 9,
    });
    expect(subs['serial/recv_fifo']).toMatchObject({ 'recv_fifo.head': 0, 'recv_fifo.num': 1 });
    expect(subs['serial/recv_fifo']!['recv_fifo.data']).toMatch(/^68/); // 'h' of "hello"
    expect(subs['serial/timeout_ipending']).toEqual({ timeout_ipending: 1 });
  });

  it('the model descriptions and QEMU JSON description read the same serial values', () => {
    const s = section(d, 'serial');
    const json = JSON.parse(Buffer.from(fifo.subarray(d.vmdesc!.offset + 5)).toString()) as {
      devices: DescDevice[];
    };
    const desc = json.devices.find((x) => x.name === 'serial')!;
    const c = new Cursor(fifo, s.bodyOffset);
    const walked = walkDesc(c, desc, 'serial');
    expect(c.pos).toBe(s.bodyOffset + s.bodyLength);
    const state = walked.fields.state as Record<string, unknown>;
    const model = serialOf(d);
    for (const [k, v] of Object.entries(model.fields)) expect(state[k]).toBe(v);
    const tsr = state['serial/tsr'] as Record<string, unknown>;
    expect(tsr).toEqual(model.subsections[0]!.fields);
  });
});

describe('a popped element in the port block', () => {
  it('is iov_idx, iov_offset and a raw host-endian VirtQueueElementOld (qemu_put_virtqueue_element)', () => {
    const d = decodeStream(fifo);
    const v = section(d, '0000:00:02.0/virtio-console');
    const body = fifo.subarray(v.bodyOffset, v.bodyOffset + v.bodyLength);
    const popped = PORT_BLOCK + 16 + 6; // the one port's elem_popped
    const elem = new Uint8Array(4 + 8 + ELEMENT_OLD_SIZE);
    const view = new DataView(elem.buffer);
    view.setUint32(0, 0); // iov_idx
    view.setBigUint64(4, 7n); // iov_offset
    view.setUint32(12, 5, true); // index
    view.setUint32(16, 1, true); // out_num (VirtQueueElementOld: index, out_num, in_num)
    view.setUint32(20, 0, true); // in_num
    const doctored = new Uint8Array(body.length + elem.length);
    doctored.set(body.subarray(0, popped + 4));
    new DataView(doctored.buffer).setUint32(popped, 1);
    doctored.set(elem, popped + 4);
    doctored.set(body.subarray(popped + 4), popped + 4 + elem.length);
    const c = new Cursor(doctored);
    const out = decodeVirtioConsole(c);
    expect(c.pos).toBe(doctored.length);
    expect(out.serial.ports[0]).toMatchObject({
      id: 1,
      elem_popped: 1,
      elem: { iov_idx: 0, iov_offset: 7, index: 5, in_num: 0, out_num: 1 },
    });
    const shape = (subs: VirtioConsoleState['subsections']) => subs.map((x) => [x.name, x.fields]);
    expect(shape(out.subsections)).toEqual(shape(virtioOf(d).subsections));
  });
});

describe('a stream without its JSON description', () => {
  it('still decodes: other devices are opaque up to their footer, ours field by field', () => {
    const whole = decodeStream(fifo);
    const d = decodeStream(fifo.subarray(0, whole.eofOffset + 1));
    expect(d.vmdesc).toBeNull();
    expect(d.sections.map((s) => [s.offset, s.footer])).toEqual(
      whole.sections.map((s) => [s.offset, s.footer]),
    );
    expect(section(d, 'timer').body.kind).toBe('opaque');
    expect(serialOf(d)).toEqual(serialOf(whole));
    expect(virtioOf(d)).toEqual(virtioOf(whole));
  });
});

describe('bad input: one StreamFormatError naming the offset', () => {
  const expectFormatError = (bytes: Uint8Array): StreamFormatError => {
    try {
      decodeStream(bytes);
    } catch (e) {
      expect(e).toBeInstanceOf(StreamFormatError);
      return e as StreamFormatError;
    }
    throw new Error('decoded');
  };

  it('every truncation fails at or before its end', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: paused.length - 1 }), (n) => {
        const e = expectFormatError(paused.subarray(0, n));
        expect(e.offset).toBeLessThanOrEqual(n);
        expect(e.message).toMatch(/^offset \d+ \(0x[0-9a-f]+\): /);
      }),
      { seed: 13, numRuns: 60 },
    );
  });

  it('corrupt bytes decode or fail with a StreamFormatError, never anything else', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: fifo.length - 1 }), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        (edits) => {
          const b = fifo.slice();
          for (const [at, v] of edits) b[at] = v;
          try {
            decodeStream(b);
          } catch (e) {
            expect(e).toBeInstanceOf(StreamFormatError);
          }
        },
      ),
      { seed: 13, numRuns: 40 },
    );
  });

  it('a hostile port count or ports_map size is refused without allocating', () => {
    const d = decodeStream(paused);
    const v = section(d, '0000:00:02.0/virtio-console');
    const body = paused.slice();
    const dev = v.bodyOffset + PORT_BLOCK;
    new DataView(body.buffer).setUint32(dev + 4, 0xffffffff); // max_nr_ports
    expect(expectFormatError(body).message).toMatch(/max_nr_ports 4294967295/);
    const body2 = paused.slice();
    new DataView(body2.buffer).setUint32(dev + 12, 0xfffffff0); // nr_active_ports
    expect(expectFormatError(body2).message).toMatch(/nr_active_ports 4294967280 does not fit/);
  });

  it('a wrong magic, a wrong footer, an unknown section type', () => {
    expect(expectFormatError(Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8)).message).toMatch(
      /not a QEMU migration stream/,
    );
    const d = decodeStream(paused);
    const serial = section(d, 'serial');
    const b = paused.slice();
    b[serial.footer! + 4]! ^= 1;
    expect(expectFormatError(b).message).toMatch(/section footer for serial says/);
    const b2 = paused.slice();
    b2[serial.offset] = 0x09;
    expect(expectFormatError(b2).offset).toBe(serial.offset);
  });
});
