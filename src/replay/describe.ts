/**
 * Executed events in words: kind names, device and register names from the datasheets
 * (16550 THR/IER/IIR/LSR..., virtio-pci QUEUE_NOTIFY/STATUS/ISR), control messages, run
 * states and migration phases. Used by `show` and by `replay`'s divergence report.
 */

import {
  EV_NAMES,
  Ev,
  MIG_PHASE_NAMES,
  MigPhase,
  RUN_STATE_NAMES,
  streamDev,
  streamPort,
  streamToGuest,
} from '../model/events.js';
import type { BuildRegistry } from '../model/migration/builds.js';
import type { DeviceSpec, Schedule } from '../model/schedule/types.js';
import { Ier, Iir, Lcr, Lsr, Reg } from '../model/uart16550/regs.js';
import { CTRL_NAMES, Status, VirtioPci } from '../model/virtio-serial/state.js';
import { type Finding, ORACLE_NAMES } from '../oracles/types.js';
import type { EventLog, EventRow } from './event-log.js';

export interface EventView {
  index: number;
  atNs: number;
  /** The event kind's name (events.ts `Ev`). */
  kind: string;
  vm: number;
  /** What `dev` designates: a device name, `gsi N`, a byte stream, a timer slot, or `-`. */
  device: string;
  a: number;
  b: number;
  /** The event in words. */
  text: string;
}

const UART_READ = ['RBR', 'IER', 'IIR', 'LCR', 'MCR', 'LSR', 'MSR', 'SCR'];
const UART_WRITE = ['THR', 'IER', 'FCR', 'LCR', 'MCR', 'LSR', 'MSR', 'SCR'];
const UART_BACKEND = ['open', 'hung-up', 'closed', 'slow'];
const VIRTIO_REGS: Record<number, string> = {
  [VirtioPci.QUEUE_NOTIFY]: 'QUEUE_NOTIFY',
  [VirtioPci.STATUS]: 'STATUS',
  [VirtioPci.ISR]: 'ISR',
};

const IER_BITS: readonly [number, string][] = [
  [Ier.RDI, 'RDI'],
  [Ier.THRI, 'THRI'],
  [Ier.RLSI, 'RLSI'],
  [Ier.MSI, 'MSI'],
];
const LSR_BITS: readonly [number, string][] = [
  [Lsr.DR, 'DR'],
  [Lsr.OE, 'OE'],
  [Lsr.PE, 'PE'],
  [Lsr.FE, 'FE'],
  [Lsr.BI, 'BI'],
  [Lsr.THRE, 'THRE'],
  [Lsr.TEMT, 'TEMT'],
  [Lsr.ERR, 'ERR'],
];
const STATUS_BITS: readonly [number, string][] = [
  [Status.ACKNOWLEDGE, 'ACKNOWLEDGE'],
  [Status.DRIVER, 'DRIVER'],
  [Status.DRIVER_OK, 'DRIVER_OK'],
  [Status.FEATURES_OK, 'FEATURES_OK'],
];

export const hex = (v: number): string => `0x${(v >>> 0).toString(16).padStart(2, '0')}`;

function bits(v: number, table: readonly [number, string][]): string {
  const names = table.filter(([bit]) => (v & bit) !== 0).map(([, name]) => name);
  return names.length > 0 ? ` (${names.join('|')})` : '';
}

function iirText(v: number): string {
  if (v & Iir.NO_INT) return ' (no interrupt)';
  const id = v & (Iir.ID_MASK | 0x08);
  const name =
    id === Iir.CTI
      ? 'CTI'
      : id === Iir.RLSI
        ? 'RLSI'
        : id === Iir.RDI
          ? 'RDI'
          : id === Iir.THRI
            ? 'THRI'
            : id === Iir.MSI
              ? 'MSI'
              : hex(id);
  return ` (${name}${(v & Iir.FIFO_ENABLED) === Iir.FIFO_ENABLED ? ', FIFO' : ''})`;
}

function charText(byte: number): string {
  return byte >= 0x20 && byte < 0x7f ? ` '${String.fromCharCode(byte)}'` : '';
}

/** Host ns as milliseconds with every nanosecond digit: `15.300000 ms`. */
export function formatMs(ns: number): string {
  const ms = Math.floor(ns / 1e6);
  return `${ms}.${String(ns - ms * 1e6).padStart(6, '0')} ms`;
}

/**
 * Describes the events of one log in order. Register names depend on state (offsets 0 and 1
 * are DLL/DLM while LCR.DLAB is set), which the describer follows from the guest's LCR
 * writes; asking for an earlier event than the last one rescans from the start.
 */
export class Describer {
  private readonly devices: [string, DeviceSpec][];
  private readonly lcr = new Map<number, number>();
  private pos = 0;

  /**
   * `registry` names vmstate subsections (by each side's build); without it they show as
   * numbers. `findings` (the run's verdict) give a failed migration its reason.
   */
  constructor(
    private readonly schedule: Schedule,
    private readonly log: EventLog,
    private readonly registry?: BuildRegistry,
    private readonly findings: readonly Finding[] = [],
  ) {
    this.devices = Object.entries(schedule.devices);
  }

  /** Event i of the log. */
  view(i: number): EventView {
    return this.describe(this.log.row(i));
  }

  /** `row` as the event at its index in this log's run (the state before that index). */
  describe(row: EventRow): EventView {
    this.advanceTo(row.index);
    return {
      index: row.index,
      atNs: row.at,
      kind: EV_NAMES[row.kind] ?? `kind ${row.kind}`,
      vm: row.vm,
      device: this.target(row),
      a: row.a,
      b: row.b,
      text: this.text(row),
    };
  }

  deviceName(dev: number): string {
    return this.devices[dev]?.[0] ?? (dev < 0 ? '-' : `dev ${dev}`);
  }

  deviceKind(dev: number): DeviceSpec['kind'] | undefined {
    return this.devices[dev]?.[1].kind;
  }

  streamName(stream: number): string {
    const dev = streamDev(stream);
    const name = this.deviceName(dev);
    const dir = streamToGuest(stream) ? '→guest' : '→host';
    return this.deviceKind(dev) === 'virtio-serial'
      ? `${name}.port${streamPort(stream)} ${dir}`
      : `${name} ${dir}`;
  }

  private advanceTo(i: number): void {
    if (i < this.pos) {
      this.lcr.clear();
      this.pos = 0;
    }
    const log = this.log;
    for (; this.pos < i && this.pos < log.length; this.pos++) {
      const p = this.pos;
      if (
        log.kind[p] === Ev.REG_WRITE &&
        log.a[p] === Reg.LCR &&
        this.deviceKind(log.dev[p]!) === 'isa-serial'
      ) {
        this.lcr.set(log.vm[p]! * 64 + log.dev[p]!, log.b[p]!);
      }
    }
  }

  private target(e: EventRow): string {
    switch (e.kind) {
      case Ev.PIN:
      case Ev.REMOTE_IRR:
      case Ev.IOAPIC_DELIVER:
        return `gsi ${e.dev}`;
      case Ev.BYTE_ACCEPT:
      case Ev.BYTE_DELIVER:
      case Ev.BYTE_DISCARD:
        return this.streamName(e.dev);
      case Ev.TIMER:
        return `timer ${e.dev}`;
      case Ev.STEP:
      case Ev.EOI:
      case Ev.RUN_STATE:
      case Ev.MIGRATION:
        return '-';
      default:
        return this.deviceName(e.dev);
    }
  }

  /** The register at `offset` of device `dev` for a read or a write. */
  registerName(vm: number, dev: number, offset: number, write: boolean): string {
    const kind = this.deviceKind(dev);
    if (kind === 'isa-serial') {
      const dlab = ((this.lcr.get(vm * 64 + dev) ?? 0) & Lcr.DLAB) !== 0;
      if (dlab && offset <= 1) return offset === 0 ? 'DLL' : 'DLM';
      return (write ? UART_WRITE : UART_READ)[offset] ?? `reg ${offset}`;
    }
    if (kind === 'virtio-serial') return VIRTIO_REGS[offset] ?? `reg ${offset}`;
    return `reg ${offset}`;
  }

  private registerText(e: EventRow, write: boolean): string {
    const reg = this.registerName(e.vm, e.dev, e.a, write);
    let detail = '';
    if (reg === 'IER') detail = bits(e.b, IER_BITS);
    else if (reg === 'IIR') detail = iirText(e.b);
    else if (reg === 'LSR') detail = bits(e.b, LSR_BITS);
    else if (reg === 'LCR') detail = e.b & Lcr.DLAB ? ' (DLAB)' : '';
    else if (reg === 'STATUS') detail = bits(e.b, STATUS_BITS);
    else if (reg === 'QUEUE_NOTIFY') detail = ` (queue ${e.b})`;
    else if (reg === 'RBR' || reg === 'THR') detail = charText(e.b);
    return write ? `write ${reg} ← ${hex(e.b)}${detail}` : `read ${reg} → ${hex(e.b)}${detail}`;
  }

  private stepText(index: number): string {
    const s = this.schedule.steps[index];
    if (!s) return `step ${index}`;
    const parts = [`step ${index}: ${s.do}`];
    if ('dev' in s) parts.push(s.dev);
    if ('port' in s) parts.push(`port ${s.port}`);
    if ('data' in s) parts.push(`${s.data.length} bytes`);
    if ('state' in s) parts.push(s.state);
    if (s.do === 'migrate') parts.push(`downtime ${s.downtime} ns${s.autostart ? '' : ', no autostart'}`);
    if (s.do === 'migrate' && s.hostile)
      for (const [dev, fields] of Object.entries(s.hostile))
        parts.push(
          `hostile source: ${dev} ${Object.entries(fields)
            .map(([k, v]) => `${k}=0x${(v >>> 0).toString(16)}`)
            .join(' ')}`,
        );
    return parts.join(' ');
  }

  private text(e: EventRow): string {
    const ctrl = (): string => {
      const event = e.b >>> 16;
      // DEVICE_READY and the like carry VIRTIO_CONSOLE_BAD_ID (0xffffffff) as their port id.
      const port = e.a === 0xffff_ffff ? 'no port' : `port ${e.a}`;
      return `${port} ${CTRL_NAMES[event] ?? `event ${event}`} ${e.b & 0xffff}`;
    };
    switch (e.kind) {
      case Ev.STEP:
        return this.stepText(e.a);
      case Ev.TIMER:
        return `timer slot ${e.dev} fired`;
      case Ev.DEV_IRQ:
        return `interrupt line ${e.a ? 'raised' : 'lowered'}`;
      case Ev.PIN:
        return `IOAPIC pin ${e.dev} level ${e.a}`;
      case Ev.REMOTE_IRR:
        return `IOAPIC pin ${e.dev} Remote-IRR ${e.a ? 'set' : 'cleared'}`;
      case Ev.IOAPIC_DELIVER:
        return `IOAPIC pin ${e.dev} delivered vector ${hex(e.a)}`;
      case Ev.MSI:
        return `MSI-X vector ${hex(e.a)} ${e.b ? 'sent' : 'held pending (masked)'}`;
      case Ev.HANDLER:
        return `guest handler ran (vector ${hex(e.a)})`;
      case Ev.EOI:
        return `EOI vector ${hex(e.a)}`;
      case Ev.REG_READ:
        return this.registerText(e, false);
      case Ev.REG_WRITE:
        return this.registerText(e, true);
      case Ev.CTRL_TO_GUEST:
        return `control → guest: ${ctrl()}`;
      case Ev.CTRL_DROPPED:
        return `control → guest DROPPED (no guest buffer): ${ctrl()}`;
      case Ev.CTRL_TO_HOST:
        return `control → host: ${ctrl()}`;
      case Ev.RUN_STATE:
        return `run state → ${RUN_STATE_NAMES[e.a] ?? e.a}`;
      case Ev.MIGRATION:
        return `migration: ${this.phaseText(e)}`;
      case Ev.BYTE_ACCEPT:
        return `byte accepted ${hex(e.a)}${charText(e.a)}`;
      case Ev.BYTE_DELIVER:
        return `byte delivered ${hex(e.a)}${charText(e.a)}`;
      case Ev.BYTE_DISCARD:
        return `byte discarded ${hex(e.a)}${charText(e.a)} (position ${e.b})`;
      case Ev.BACKEND:
        return this.deviceKind(e.dev) === 'isa-serial'
          ? `backend ${UART_BACKEND[e.b] ?? e.b}`
          : `backend port ${e.a} ${e.b ? 'connected' : 'disconnected'}`;
      case Ev.HOST_CONNECTED:
        return `port ${e.a} host_connected = ${e.b}`;
      case Ev.GUEST_VIEW:
        return `guest sees port ${e.a} host ${e.b ? 'connected' : 'disconnected'}`;
      case Ev.IRQ_MASK:
        return `guest ${e.a ? 'masked' : 'unmasked'} the interrupt`;
      case Ev.FINDING:
        return `oracle ${ORACLE_NAMES[e.a] ?? e.a} fired`;
      case Ev.PHANTOM_READ:
        return `phantom read: RBR of an empty FIFO with DR set (${hex(e.a)})`;
      case Ev.FAULT:
        return `injected fault (${hex(e.a)})`;
      case Ev.SUBSECTION:
        return `vmstate subsection ${this.subsectionName(e.vm, e.a)} ${e.b ? 'loaded' : 'sent'}`;
      default:
        return `a=${e.a} b=${e.b}`;
    }
  }

  /** VM 0 runs the schedule's src build, VM 1 its dst build (world.ts makeMachine). */
  private subsectionName(vm: number, index: number): string {
    const side = vm === 1 ? this.schedule.dst : this.schedule.src;
    return this.registry?.get(side.build)?.revisions.serialSubsections[index] ?? `#${index}`;
  }

  private phaseText(e: EventRow): string {
    const name = MIG_PHASE_NAMES[e.a] ?? `phase ${e.a}`;
    switch (e.a) {
      case MigPhase.SAVED:
        return `${name} (stream of ${e.b} bytes)`;
      case MigPhase.LAPIC_PUSH:
        return `${name} (${e.b} vector${e.b === 1 ? '' : 's'} lost)`;
      case MigPhase.FAILED: {
        // The verdict keeps one finding per signature: a later failure of the same kind has
        // none at its own time.
        const f = this.findings.find((x) => x.oracle === 'migration-failed' && x.at === e.at);
        return `${name}: ${f ? f.message : 'the destination rejected the stream'}`;
      }
      default:
        return name;
    }
  }
}

/** One event as a line: index, time, vm, target, kind, words. */
export function eventLine(v: EventView): string {
  const vm = v.vm < 0 ? '-  ' : `vm${v.vm}`;
  return `${`#${v.index}`.padStart(7)}  ${formatMs(v.atNs).padStart(16)}  ${vm}  ${v.device.padEnd(18)}  ${v.kind.padEnd(14)}  ${v.text}`;
}
