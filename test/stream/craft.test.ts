import { describe, expect, it } from 'vitest';
import { builtinRegistry } from '../../src/model/migration/builds.js';
import { parseSchedule } from '../../src/model/schedule/validate.js';
import { judge } from '../../src/oracles/verdict.js';
import { CraftError, flaggedSection, spliceSection } from '../../src/stream/craft.js';
import { decodeStream } from '../../src/stream/decode.js';
import { realStream } from './fixtures.js';
import { HOSTILE_CASES, type HostileCase, hostileSchedule, hostileScheduleJson } from './hostile.js';

const builds = builtinRegistry();

describe('a hostile source in a schedule', () => {
  it.each([
    ['recv-head', 'unsafe-load', 'recv-fifo-head'],
    ['recv-num', 'unsafe-load', 'recv-fifo-num'],
    ['xmit-head', 'unsafe-load', 'xmit-fifo-head'],
    ['xmit-num', 'unsafe-load', 'xmit-fifo-num'],
    ['tsr-temt', 'migration-failed', 'tsr-empty'],
  ] as const)('%s: the model flags it (%s, %s)', (c, oracle, key) => {
    const v = judge(hostileSchedule(c), { builds });
    expect(v.findings.map((f) => f.signature)).toContain(`${oracle}:uart0:${key}`);
  });

  it('the honest run of the same schedule has no finding', () => {
    const s = hostileSchedule('recv-head');
    const honest = {
      ...s,
      steps: s.steps.map((x) => (x.do === 'migrate' ? { ...x, hostile: undefined } : x)),
    };
    expect(judge(honest, { builds }).findings).toEqual([]);
  });
});

describe('stream craft onto a real QEMU 7.2 stream', () => {
  const base = realStream('qemu72-fifo');
  const serialOf = (bytes: Uint8Array) => {
    const s = decodeStream(bytes).sections.find((x) => x.type === 'full' && x.idstr === 'serial')!;
    return s.body.kind === 'serial' ? s.body.serial : null;
  };

  it.each(Object.keys(HOSTILE_CASES) as HostileCase[])(
    '%s: only the serial section changes, to the hostile fields',
    (c) => {
      const { target, section } = flaggedSection(hostileSchedule(c), builds);
      expect(target.device).toBe('uart0');
      expect(target.outcome).toBe(c === 'tsr-temt' ? 'refused' : 'unsafe-load');
      const out = spliceSection(base, section);
      const { bodyOffset, oldLength, newLength } = out;
      expect(
        Buffer.from(out.bytes.subarray(0, bodyOffset)).equals(Buffer.from(base.subarray(0, bodyOffset))),
      ).toBe(true);
      expect(
        Buffer.from(out.bytes.subarray(bodyOffset + newLength)).equals(
          Buffer.from(base.subarray(bodyOffset + oldLength)),
        ),
      ).toBe(true);
      const serial = serialOf(out.bytes)!;
      const subs = Object.fromEntries(serial.subsections.map((x) => [x.name, x.fields]));
      for (const [name, value] of Object.entries(HOSTILE_CASES[c])) {
        if (name === 'lsr') expect(serial.fields.lsr).toBe(value);
        else if (name === 'tsr_retry') expect(subs['serial/tsr']!.tsr_retry).toBe(value);
        else expect(subs[`serial/${name.split('.')[0]}`]![name]).toBe(value);
      }
      // The guest's programming as the model has it: FIFO on, trigger 8, IER RDI|RLSI.
      expect(serial.fields).toMatchObject({ ier: 5, lcr: 3, divider: 1, fcr_vmstate: 0x81 });
    },
  );

  it('a run without a flagged device state cannot be crafted; a base without the section is refused', () => {
    const s = hostileSchedule('recv-head');
    const honest = {
      ...s,
      steps: s.steps.map((x) => (x.do === 'migrate' ? { ...x, hostile: undefined } : x)),
    };
    expect(() => flaggedSection(honest, builds)).toThrow(CraftError);
    const { section } = flaggedSection(s, builds);
    expect(() => spliceSection(base, { ...section, instanceId: 3 })).toThrow(
      /no 'serial' instance 3 section/,
    );
    expect(() => spliceSection(base.subarray(0, 100), section)).toThrow(CraftError);
  });
});

describe('the hostile field of a migrate step', () => {
  const withHostile = (hostile: unknown) => {
    const doc = JSON.parse(hostileScheduleJson('recv-head'));
    doc.steps[1].hostile = hostile;
    return () => parseSchedule(JSON.stringify(doc), builds);
  };
  it('names isa-serial devices and QEMU serial fields, each in its range', () => {
    expect(withHostile({ uart9: { lsr: 1 } })).toThrow(/steps\[1\]\.hostile\.uart9: no device "uart9"/);
    expect(withHostile({ uart0: { recv_fifo_head: 1 } })).toThrow(
      /hostile\.uart0\.recv_fifo_head: not a serial field a hostile source can set \(did you mean "recv_fifo\.head"\?\)/,
    );
    expect(withHostile({ uart0: { lsr: 256 } })).toThrow(
      /hostile\.uart0\.lsr: expected an integer in \[0, 255\], got 256/,
    );
    expect(withHostile({ uart0: { fcr_vmstate: 1 } })).toThrow(/not a serial field/);
    expect(withHostile({ uart0: { 'xmit_fifo.num': 0xffffffff, poll_msl: -1 } })().steps[1]).toMatchObject({
      hostile: { uart0: { 'xmit_fifo.num': 0xffffffff, poll_msl: -1 } },
    });
  });
});
