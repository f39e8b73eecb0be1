import { builtinRegistry } from '../../src/model/migration/builds.js';
import { parseSchedule } from '../../src/model/schedule/validate.js';

/**
 * The hostile serial states of the real-QEMU experiment (HOSTILE-STREAM in the reference
 * notes), each as a schedule whose migration has a hostile source: the guest's 8250 driver
 * programs the UART as Linux does for a console tty (FIFO on, trigger 8, IER RDI|RLSI, 8N1 at
 * 115200), then the source sends the doctored fields.
 */
export const HOSTILE_CASES = {
  'recv-head': { 'recv_fifo.head': 0x7ffffff0, 'recv_fifo.num': 16, lsr: 0x61 },
  'recv-num': { 'recv_fifo.head': 0, 'recv_fifo.num': 0xffffffff, lsr: 0x61 },
  'xmit-head': { 'xmit_fifo.head': 0x7ffffff0, 'xmit_fifo.num': 16 },
  'xmit-num': { 'xmit_fifo.head': 0, 'xmit_fifo.num': 17 },
  'tsr-temt': { tsr_retry: 0xffffffff },
} as const;
export type HostileCase = keyof typeof HOSTILE_CASES;

export function hostileScheduleJson(c: HostileCase, build = 'qemu-7.2', machine = 'pc-i440fx-7.2'): string {
  return JSON.stringify({
    format: 'migfuzz.schedule',
    version: 1,
    seed: 1,
    machine,
    src: { build, backends: {} },
    dst: { build, backends: {} },
    devices: { uart0: { kind: 'isa-serial', irq: 4 } },
    steps: [
      {
        at: 100_000,
        do: 'guest.uart.config',
        dev: 'uart0',
        fifo: true,
        trigger: 8,
        ier: 5,
        lcr: 3,
        divider: 1,
      },
      { at: 1_000_000, do: 'migrate', hostile: { uart0: HOSTILE_CASES[c] } },
    ],
    horizon: 5_000_000,
  });
}

export const hostileSchedule = (c: HostileCase) => parseSchedule(hostileScheduleJson(c), builtinRegistry());
