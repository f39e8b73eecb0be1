import type { Build, BuildRegistry } from '../model/migration/builds.js';
import {
  CONNECTED_AT_REALIZE,
  type Schedule,
  type SideSpec,
  type Step,
  type VportBackendState,
} from '../model/schedule/types.js';

/**
 * Translation of a schedule into what happens on real QEMU processes (README, "Confirming a
 * finding on a real QEMU"). Pure: `run.ts` carries the plan out. A step that a real QEMU and
 * a real Linux guest cannot express is listed with its reason, never dropped silently.
 */

/** The builds a QEMU binary of today can stand for: the model's modern revisions. */
export const REAL_BUILDS = ['qemu-9.2', 'qemu-7.2'] as const;

export interface RealSerial {
  name: string;
  /** isa-serial `index`: 0 = COM1 (0x3f8, IRQ 4, ttyS0), 1 = COM2 (0x2f8, IRQ 3, ttyS1). */
  index: 0 | 1;
}

export interface RealPort {
  id: number;
  name?: string;
  console: boolean;
}

export interface RealVser {
  name: string;
  /** PCI slot (fixed, so the guest finds each device's ports by address). */
  slot: number;
  msix: boolean;
  ports: RealPort[];
}

/** How a port's chardev is made on a VM of a side (see `portChardev`). */
export type PortChardev = 'server' | 'client';

export type Action =
  | { kind: 'guest'; args: string[] }
  | { kind: 'uart-send'; dev: string; data: Uint8Array }
  | { kind: 'uart-backend'; dev: string; state: string }
  | { kind: 'vport-connect' | 'vport-disconnect'; dev: string; port: number }
  | { kind: 'vport-send'; dev: string; port: number; data: Uint8Array }
  | { kind: 'migrate'; downtimeNs: number; autostart: boolean }
  | { kind: 'stop' | 'cont' };

export interface PlannedStep {
  step: number;
  at: number;
  action: Action;
}

export interface Untranslatable {
  step: number;
  reason: string;
}

export interface Plan {
  serial?: RealSerial;
  /** The agent's own serial line: the COM port the UART under test does not use. */
  agentIndex: 0 | 1;
  vsers: RealVser[];
  steps: PlannedStep[];
  untranslatable: Untranslatable[];
  /** False when no step can run on a real QEMU (a side's build has no real binary). */
  runnable: boolean;
  horizon: number;
}

/** Standard termios speeds: a divider of 115200 / speed is expressible with stty. */
const SPEEDS = [115200, 57600, 38400, 19200, 9600, 4800, 2400, 1800, 1200, 600, 300, 150, 110, 75, 50];

/** A build a real binary stands for: one of REAL_BUILDS, or a build file's copy of one. */
export function realBuild(b: Build | undefined, registry: BuildRegistry): boolean {
  if (!b) return false;
  return REAL_BUILDS.some((name) => {
    const real = registry.get(name);
    return real !== undefined && JSON.stringify(real.revisions) === JSON.stringify(b.revisions);
  });
}

/**
 * A port backend `socket` (or `socket-client`) is connected from QEMU's start: a client-mode
 * chardev (`server=off`) that connects to a listener migfuzz holds. Every other port gets a
 * listening chardev (`server=on,wait=off`) whose client migfuzz connects on host.vport.connect.
 * On a real QEMU the two differ across a paused re-migration (reverse / reverse-client).
 */
export function portChardev(side: SideSpec, dev: string, port: number): PortChardev {
  const b = side.backends[`${dev}.port${port}`] as VportBackendState | undefined;
  return b !== undefined && CONNECTED_AT_REALIZE.includes(b) ? 'client' : 'server';
}

export function planConfirm(s: Schedule, registry: BuildRegistry): Plan {
  const untranslatable: Untranslatable[] = [];
  const steps: PlannedStep[] = [];
  let serial: RealSerial | undefined;
  const vsers: RealVser[] = [];
  const badDevices = new Map<string, string>();
  for (const [name, d] of Object.entries(s.devices)) {
    if (d.kind === 'isa-serial') {
      if (serial)
        badDevices.set(name, `a second isa-serial (${name}): the real guest has one UART under test`);
      else if (d.irq !== 4 && d.irq !== 3)
        badDevices.set(
          name,
          `${name} on IRQ ${d.irq}: only COM1 (IRQ 4) and COM2 (IRQ 3) are probed by Linux`,
        );
      else serial = { name, index: d.irq === 4 ? 0 : 1 };
    } else {
      vsers.push({
        name,
        slot: 4 + vsers.length,
        msix: d.irq === 'msix',
        ports: d.ports.map((p) => ({
          id: p.id,
          console: p.console === true,
          ...(p.name ? { name: p.name } : {}),
        })),
      });
    }
  }
  // Which VM runs each step: sides alternate with every migrate (src, dst, src, ...).
  let side: 'src' | 'dst' = 'src';
  let runnable = true;
  const sideReason = (sd: 'src' | 'dst'): string | undefined => {
    const name = s[sd].build;
    return realBuild(registry.get(name), registry)
      ? undefined
      : `build ${name} (${sd}) has no real binary: a QEMU of today stands only for ${REAL_BUILDS.join(', ')}`;
  };
  for (const sd of ['src', 'dst'] as const) if (sideReason(sd)) runnable = false;
  s.steps.forEach((step, i) => {
    const why =
      sideReason(side) ?? (step.do === 'migrate' ? sideReason(side === 'src' ? 'dst' : 'src') : undefined);
    if (step.do === 'migrate') side = side === 'src' ? 'dst' : 'src';
    const dev = 'dev' in step ? step.dev : undefined;
    const reason = why ?? (dev !== undefined ? badDevices.get(dev) : undefined);
    const t: Translation = reason !== undefined ? { reason } : translate(step, vsers);
    if (t.reason !== undefined) untranslatable.push({ step: i, reason: t.reason });
    if (t.action) steps.push({ step: i, at: step.at, action: t.action });
  });
  return {
    ...(serial ? { serial } : {}),
    agentIndex: serial?.index === 0 ? 1 : 0,
    vsers,
    steps,
    untranslatable,
    runnable,
    horizon: s.horizon,
  };
}

type Translation = { action: Action; reason?: string } | { action?: undefined; reason: string };

function translate(step: Step, vsers: RealVser[]): Translation {
  const slotOf = (dev: string): string =>
    (vsers.find((v) => v.name === dev)?.slot ?? 0).toString(16).padStart(2, '0');
  switch (step.do) {
    case 'guest.uart.config':
      return uartConfig(step);
    case 'guest.uart.write':
      return { action: { kind: 'guest', args: ['uart-write', hex(step.data)] } };
    case 'guest.vport.open':
    case 'guest.vport.close':
      return {
        action: {
          kind: 'guest',
          args: [
            step.do === 'guest.vport.open' ? 'vport-open' : 'vport-close',
            slotOf(step.dev),
            `${step.port}`,
          ],
        },
      };
    case 'guest.vport.write':
      return {
        action: { kind: 'guest', args: ['vport-write', slotOf(step.dev), `${step.port}`, hex(step.data)] },
      };
    case 'host.uart.send':
      return { action: { kind: 'uart-send', dev: step.dev, data: step.data } };
    case 'host.uart.backend':
      return { action: { kind: 'uart-backend', dev: step.dev, state: step.state } };
    case 'host.vport.connect':
    case 'host.vport.disconnect':
      return {
        action: {
          kind: step.do === 'host.vport.connect' ? 'vport-connect' : 'vport-disconnect',
          dev: step.dev,
          port: step.port,
        },
      };
    case 'host.vport.send':
      return { action: { kind: 'vport-send', dev: step.dev, port: step.port, data: step.data } };
    case 'migrate':
      return { action: { kind: 'migrate', downtimeNs: step.downtime, autostart: step.autostart } };
    case 'vm.stop':
    case 'vm.cont':
      return { action: { kind: step.do === 'vm.stop' ? 'stop' : 'cont' } };
    case 'guest.irq.mask':
    case 'guest.irq.unmask':
      return {
        reason: `${step.do}: Linux gives user space no way to mask a device's line at the IOAPIC or its MSI-X vector`,
      };
  }
}

function uartConfig(step: Extract<Step, { do: 'guest.uart.config' }>): Translation {
  const args: string[] = [];
  const skipped: string[] = [];
  if (step.divider !== undefined) {
    const speed = step.divider > 0 ? 115200 / step.divider : 0;
    if (SPEEDS.includes(speed)) args.push(`${speed}`);
    else
      skipped.push(
        `divider ${step.divider} (${speed ? `${speed.toFixed(1)} baud is no termios speed` : 'no speed'})`,
      );
  }
  if (step.lcr !== undefined) {
    args.push(
      `cs${5 + (step.lcr & 3)}`,
      step.lcr & 4 ? 'cstopb' : '-cstopb',
      step.lcr & 8 ? 'parenb' : '-parenb',
    );
    if (step.lcr & 8) args.push(step.lcr & 0x10 ? '-parodd' : 'parodd');
    if (step.lcr & 0x20) skipped.push('stick parity (LCR bit 5)');
    if (step.lcr & 0x40) skipped.push('break (LCR bit 6)');
  }
  if (step.trigger !== undefined) args.push(`trig=${step.trigger}`);
  if (step.fifo === false) skipped.push('fifo off (the 8250 driver enables the FIFO of a 16550A)');
  if (step.ier !== undefined) skipped.push(`ier ${step.ier} (the 8250 driver owns IER)`);
  const action: Action = { kind: 'guest', args: ['uart-config', ...args] };
  return skipped.length === 0
    ? { action }
    : { action, reason: `guest.uart.config applied without ${skipped.join(', ')}` };
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
