import { isControl } from '../util/text.js';
import type { DeviceSpec, Schedule, SideSpec, Step } from './types.js';

const utf8Encoder = new TextEncoder();

/**
 * The schedule as a plain JSON-able object in the shape of docs/schedule.md; validateSchedule of it
 * gives back an equal Schedule. `data` is a string when that string reads well and encodes
 * to the very same bytes, else an array of byte values.
 */
export function scheduleToJson(s: Schedule): object {
  return {
    format: s.format,
    version: s.version,
    seed: s.seed,
    machine: s.machine,
    src: sideToJson(s.src),
    dst: sideToJson(s.dst),
    devices: Object.fromEntries(Object.entries(s.devices).map(([name, d]) => [name, deviceToJson(d)])),
    steps: s.steps.map(stepToJson),
    horizon: s.horizon,
  };
}

function sideToJson(side: SideSpec): object {
  return { build: side.build, backends: { ...side.backends } };
}

function deviceToJson(d: DeviceSpec): object {
  if (d.kind === 'isa-serial')
    return { kind: d.kind, irq: d.irq, ...(d.guestOpen ? {} : { guestOpen: false }) };
  return { kind: d.kind, irq: d.irq, ports: d.ports.map((p) => ({ ...p })) };
}

function stepToJson(step: Step): object {
  const out: Record<string, unknown> = { ...step };
  if ('data' in step) out.data = dataToJson(step.data);
  return out;
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/** Controls other than tab/newline/CR would make a string unreadable in a file. */
function isUnprintable(text: string): boolean {
  for (const c of text) {
    const code = c.codePointAt(0) ?? 0;
    if (isControl(code) && c !== '\t' && c !== '\n' && c !== '\r') return true;
  }
  return false;
}

export function dataToJson(bytes: Uint8Array): string | number[] {
  let text: string;
  try {
    text = utf8Decoder.decode(bytes);
  } catch {
    return Array.from(bytes);
  }
  if (isUnprintable(text) || !sameBytes(utf8Encoder.encode(text), bytes)) return Array.from(bytes);
  return text;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
