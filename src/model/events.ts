/**
 * The executed-event vocabulary. Every scheduler event, line change, register access, control
 * message, run-state change, migration phase and byte movement is emitted as
 * (kind, vm, dev, a, b) at the current host time. Oracles judge runs from this stream and
 * traces record it, so the list is append-only: never renumber, only add (a trace format
 * version bump goes with every addition).
 */
export const Ev = {
  /** A schedule step ran. a = step index. */
  STEP: 1,
  /** A vm_clock timer fired. dev = timer slot. */
  TIMER: 2,
  /** A device's interrupt output changed. dev = device, a = level. */
  DEV_IRQ: 3,
  /** An interrupt-controller input pin changed. dev = GSI, a = level. */
  PIN: 4,
  /** Remote-IRR of a level IOAPIC pin changed. dev = GSI, a = value. */
  REMOTE_IRR: 5,
  /** The IOAPIC delivered a vector to the local APIC. dev = GSI, a = vector. */
  IOAPIC_DELIVER: 6,
  /** An MSI-X message. dev = device, a = vector, b = 1 sent / 0 held pending (masked). */
  MSI: 7,
  /** The guest ran its interrupt handler for a device. dev = device, a = vector. */
  HANDLER: 8,
  /** The guest ended an interrupt. a = vector. */
  EOI: 9,
  /** A guest register read. dev = device, a = register offset, b = value read. */
  REG_READ: 10,
  /** A guest register write. dev = device, a = register offset, b = value written. */
  REG_WRITE: 11,
  /** Host→guest control message placed in a guest buffer. dev, a = port id, b = event<<16 | value. */
  CTRL_TO_GUEST: 12,
  /** Host→guest control message dropped: no guest buffer. dev, a = port id, b = event<<16 | value. */
  CTRL_DROPPED: 13,
  /** Guest→host control message handled by the device. dev, a = port id, b = event<<16 | value. */
  CTRL_TO_HOST: 14,
  /** A VM's run state changed. a = RunState. */
  RUN_STATE: 15,
  /** A migration phase. a = MigPhase, b = phase argument. */
  MIGRATION: 16,
  /** A byte entered the devices' custody. dev = stream id, a = byte. */
  BYTE_ACCEPT: 17,
  /** A byte reached its destination (the guest or the backend). dev = stream id, a = byte. */
  BYTE_DELIVER: 18,
  /** A byte dropped as documented. dev = stream id, a = byte, b = position from the oldest held. */
  BYTE_DISCARD: 19,
  /** A backend changed state. dev = device, a = port (0 for a UART), b = state code. */
  BACKEND: 20,
  /** The device's host_connected of a port changed. dev, a = port id, b = value. */
  HOST_CONNECTED: 21,
  /** The guest driver's view of a port's host connection changed. dev, a = port id, b = value. */
  GUEST_VIEW: 22,
  /** The guest masked or unmasked a device interrupt. dev, a = 1 masked / 0 unmasked. */
  IRQ_MASK: 23,
  /** An oracle fired. dev = device (-1 none), a = oracle index. */
  FINDING: 24,
  /** The guest read a byte that was never sent: RBR of an empty FIFO with DR set. dev, a = byte. */
  PHANTOM_READ: 25,
  /** A fault was injected on purpose (tests, oracle self-checks). a = vector or byte. */
  FAULT: 26,
  /** A vmstate subsection was sent (b = 0) or loaded (b = 1). dev = device, a = its index in the build's list. */
  SUBSECTION: 27,
} as const;
export type Ev = (typeof Ev)[keyof typeof Ev];

export const EV_NAMES: readonly string[] = (() => {
  const names: string[] = [];
  for (const [name, code] of Object.entries(Ev)) names[code] = name;
  return names;
})();

/** Receives every executed event. `at` is host ns. */
export interface EventSink {
  event(at: number, kind: number, vm: number, dev: number, a: number, b: number): void;
}

/**
 * Receives the device state at each migrate instant and after each load, as bucketed
 * features (migration/save-state.ts): phase 0 the saved source, 1 the loaded destination;
 * dev -1 for the board (run state, timers, interrupt controllers). Not an event: nothing is
 * recorded in traces and the run is the same with or without it.
 */
export interface StateSink {
  state(phase: number, dev: number, feature: number, value: number): void;
}

/** Run states (QEMU RunState, the ones a migration goes through). */
export const RunState = {
  RUNNING: 0,
  PAUSED: 1,
  INMIGRATE: 2,
  FINISH_MIGRATE: 3,
  POSTMIGRATE: 4,
  SHUTDOWN: 5,
  /** Not started: the destination VM before a migration creates it. */
  ABSENT: 6,
} as const;
export type RunState = (typeof RunState)[keyof typeof RunState];
export const RUN_STATE_NAMES = [
  'running',
  'paused',
  'inmigrate',
  'finish-migrate',
  'postmigrate',
  'shutdown',
  'absent',
];

export const MigPhase = {
  /** Source stopped, sections saved. b = stream length in bytes. */
  SAVED: 0,
  /** Destination created inmigrate. */
  DST_CREATED: 1,
  /** Destination loaded every section. */
  LOADED: 2,
  /** End-of-load LAPIC push (pre-2017 builds): pending deliveries overwritten. b = vectors lost. */
  LAPIC_PUSH: 3,
  /** The destination rejected the stream; the source resumes. */
  FAILED: 4,
  /** The guest now runs on the destination. */
  COMPLETED: 5,
  /**
   * The destination read every section but the stream's end has not arrived: the incoming
   * coroutine yields and the main loop runs once before the load ends.
   */
  STREAM_WAIT: 6,
} as const;
export const MIG_PHASE_NAMES = [
  'saved',
  'dst-created',
  'loaded',
  'lapic-push',
  'failed',
  'completed',
  'stream-wait',
];

/** A byte stream of a device: UART streams use port 0. */
export function streamId(dev: number, port: number, toGuest: boolean): number {
  return dev * 64 + port * 2 + (toGuest ? 1 : 0);
}
export const streamDev = (s: number): number => s >> 6;
export const streamPort = (s: number): number => (s >> 1) & 31;
export const streamToGuest = (s: number): boolean => (s & 1) === 1;
