import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CoverageSink } from '../../src/fuzz/coverage.js';
import { builtinRegistry } from '../../src/model/migration/builds.js';
import { StateFeature, StatePhase } from '../../src/model/migration/save-state.js';
import { validateSchedule } from '../../src/model/schedule/validate.js';
import { judge } from '../../src/oracles/verdict.js';

/**
 * Save-time state coverage (model/migration/save-state.ts): at each migrate instant and after
 * each load, the state a migration can break reaches the coverage map, so a schedule that
 * stops the source in a rare state is kept. The probe only reads: runs are the same with it.
 */

const builds = builtinRegistry();
const witness = (id: string) =>
  validateSchedule(
    JSON.parse(readFileSync(new URL(`../../bench/power/witnesses/${id}.json`, import.meta.url), 'utf8')),
    builds,
  );

type Seen = Map<string, number>;
/** Features of each phase as `phase:dev:feature` → value (the last one seen). */
function probe(s: ReturnType<typeof witness>): Seen {
  const seen: Seen = new Map();
  judge(s, { builds, state: { state: (phase, dev, f, v) => seen.set(`${phase}:${dev}:${f}`, v) } });
  return seen;
}
const at = (seen: Seen, phase: number, dev: number, feature: number): number | undefined =>
  seen.get(`${phase}:${dev}:${feature}`);

describe('save-time state', () => {
  it('a port throttled at the migrate instant holds a half-written element, on both sides', () => {
    // 10 bytes still in the socket, then 300: the 4th element is written 54 of 64 bytes.
    const seen = probe(witness('vser-elem-rewound'));
    for (const phase of [StatePhase.SAVED, StatePhase.LOADED]) {
      expect(at(seen, phase, 0, StateFeature.PORT_THROTTLED)).toBe((1 << 8) | 1);
      // 3: more than half of the element written.
      expect(at(seen, phase, 0, StateFeature.PORT_ELEM_OFFSET)).toBe((1 << 8) | 3);
      // guest and host connected
      expect(at(seen, phase, 0, StateFeature.PORT_CONNECTED)).toBe((1 << 8) | 3);
    }
    // The socket is full at save (256 bytes: bucket 9); the destination's is new and empty.
    expect(at(seen, StatePhase.SAVED, 0, StateFeature.PORT_BACKEND_BUFFERED)).toBe((1 << 8) | 9);
    expect(at(seen, StatePhase.LOADED, 0, StateFeature.PORT_BACKEND_BUFFERED)).toBe(1 << 8);
  });

  it('a byte waiting in the TSR on a hung-up backend, and the run state on each side', () => {
    const seen = probe(witness('serial-tsr-dropped'));
    expect(at(seen, StatePhase.SAVED, 0, StateFeature.UART_TSR_BUSY)).toBe(1);
    expect(at(seen, StatePhase.SAVED, 0, StateFeature.UART_TSR_RETRY)).toBe(1);
    expect(at(seen, StatePhase.SAVED, -1, StateFeature.RUN_STATE)).toBe(3); // finish-migrate
    expect(at(seen, StatePhase.LOADED, -1, StateFeature.RUN_STATE)).toBe(2); // inmigrate
  });

  it('received bytes below the trigger with the character timeout armed', () => {
    const seen = probe(witness('serial-rx-timeout-dropped'));
    expect(at(seen, StatePhase.SAVED, 0, StateFeature.UART_RX_FIFO)).toBe(1); // below the trigger
    expect(at(seen, StatePhase.SAVED, 0, StateFeature.UART_FIFO_TIMEOUT_ARMED)).toBe(1);
    expect(at(seen, StatePhase.SAVED, 0, StateFeature.UART_FCR)).toBe(1 | (8 << 1));
  });

  it('a vector pending in the LAPIC at the migrate instant', () => {
    const seen = probe(witness('lapic-irr-dropped'));
    expect(at(seen, StatePhase.SAVED, -1, StateFeature.LAPIC_IRR)).toBe(1);
    expect(at(seen, StatePhase.SAVED, -1, StateFeature.CPU_DISPATCH_PENDING)).toBe(1);
  });

  it('a masked level line: the guest disabled the interrupt and one came', () => {
    const seen = probe(witness('vser-isr-dropped'));
    expect(at(seen, StatePhase.SAVED, 0, StateFeature.GUEST_IRQ_OFF)).toBe(3);
    expect(at(seen, StatePhase.SAVED, 0, StateFeature.VSER_ISR)).toBe(1);
    expect(at(seen, StatePhase.SAVED, 0, StateFeature.PCI_INTX)).toBe(1);
  });

  it('reaches the coverage map: a throttled save covers points an unthrottled one does not', () => {
    const throttled = witness('vser-elem-rewound');
    // The same writes after the socket drained: nothing is throttled at the migrate instant.
    const drained = structuredClone(throttled);
    drained.steps = drained.steps.map((x) => (x.do === 'migrate' ? { ...x, at: 5_000_000 } : x));
    const points = (s: typeof throttled): Set<number> => {
      const cov = new CoverageSink();
      judge(s, { builds, sink: cov, nearMiss: cov, state: cov });
      return new Set(cov.touched);
    };
    const a = points(throttled);
    const b = points(drained);
    expect([...a].filter((i) => !b.has(i)).length).toBeGreaterThan(0);
  });

  it('changes nothing in the run: the same findings and events with and without it', () => {
    for (const id of ['vser-elem-rewound', 'serial-tsr-dropped', 'lapic-irr-dropped']) {
      const s = witness(id);
      const plain = judge(s, { builds });
      const probed = judge(s, { builds, state: { state() {} } });
      expect(probed.events).toBe(plain.events);
      expect(probed.findings).toEqual(plain.findings);
    }
  });
});
