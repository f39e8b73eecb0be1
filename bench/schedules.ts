import { builtinRegistry } from '../src/model/migration/builds.js';
import type { Schedule } from '../src/model/schedule/types.js';
import { validateSchedule } from '../src/model/schedule/validate.js';

/**
 * Benchmark workloads: long schedules that keep one kind of device busy. Built as JSON and
 * validated like any user schedule.
 */
const text = (i: number): string => `line ${i}: the quick brown fox jumps over the lazy dog\n`;

function schedule(doc: object): Schedule {
  return validateSchedule({ format: 'migfuzz.schedule', version: 1, seed: 1, ...doc }, builtinRegistry());
}

const SIDE_92 = (backends: object) => ({ build: 'qemu-9.2', backends });

/** Console traffic both ways through a 16550 with its FIFO. */
export function uartHeavy(n = 2000): Schedule {
  const steps: object[] = [
    { at: 10_000, do: 'guest.uart.config', dev: 'serial0', fifo: true, trigger: 8, ier: 5 },
  ];
  for (let i = 0; i < n; i++) {
    steps.push({ at: 100_000 + i * 50_000, do: 'guest.uart.write', dev: 'serial0', data: text(i) });
    steps.push({
      at: 120_000 + i * 50_000,
      do: 'host.uart.send',
      dev: 'serial0',
      data: text(i).slice(0, 12),
    });
  }
  return schedule({
    machine: 'pc-i440fx-9.2',
    src: SIDE_92({ serial0: 'open' }),
    dst: SIDE_92({ serial0: 'open' }),
    devices: { serial0: { kind: 'isa-serial', irq: 4 } },
    steps,
    horizon: 200_000 + n * 50_000,
  });
}

/** Agent-style request/response traffic on two virtio-serial ports. */
export function virtioHeavy(n = 2000): Schedule {
  const steps: object[] = [
    { at: 10_000, do: 'guest.vport.open', dev: 'vser0', port: 1 },
    { at: 10_000, do: 'guest.vport.open', dev: 'vser0', port: 2 },
  ];
  for (let i = 0; i < n; i++) {
    const port = 1 + (i % 2);
    steps.push({ at: 100_000 + i * 50_000, do: 'host.vport.send', dev: 'vser0', port, data: text(i) });
    steps.push({ at: 125_000 + i * 50_000, do: 'guest.vport.write', dev: 'vser0', port, data: text(i) });
  }
  return schedule({
    machine: 'pc-i440fx-9.2',
    src: SIDE_92({ 'vser0.port1': 'socket', 'vser0.port2': 'socket' }),
    dst: SIDE_92({ 'vser0.port1': 'socket', 'vser0.port2': 'socket' }),
    devices: {
      vser0: {
        kind: 'virtio-serial',
        irq: 'intx',
        ports: [{ id: 1 }, { id: 2, name: 'org.qemu.guest_agent.0' }],
      },
    },
    steps,
    horizon: 200_000 + n * 50_000,
  });
}

/** Both devices busy while the VM migrates back and forth every 2 ms. */
export function migrationHeavy(n = 1000): Schedule {
  const steps: object[] = [{ at: 10_000, do: 'guest.vport.open', dev: 'vser0', port: 1 }];
  for (let i = 0; i < n; i++) {
    const t = 100_000 + i * 100_000;
    steps.push({ at: t, do: 'guest.uart.write', dev: 'serial0', data: text(i) });
    steps.push({ at: t + 10_000, do: 'host.vport.send', dev: 'vser0', port: 1, data: text(i) });
    steps.push({ at: t + 20_000, do: 'host.uart.send', dev: 'serial0', data: 'ok\n' });
    if (i % 20 === 19) steps.push({ at: t + 50_000, do: 'migrate', downtime: 20_000 });
  }
  const backends = { serial0: 'open', 'vser0.port1': 'socket' };
  return schedule({
    machine: 'pc-i440fx-9.2',
    src: SIDE_92(backends),
    dst: SIDE_92(backends),
    devices: {
      serial0: { kind: 'isa-serial', irq: 4 },
      vser0: { kind: 'virtio-serial', irq: 'intx', ports: [{ id: 1 }] },
    },
    steps,
    horizon: 200_000 + n * 100_000,
  });
}
