import type { BuildRegistry } from '../model/migration/builds.js';
import { type DeviceSection, saveDeviceSection } from '../model/migration/vm.js';
import type { Schedule } from '../model/schedule/types.js';
import { World } from '../model/world.js';
import { StreamFormatError } from './cursor.js';
import { decodeStream, type Section } from './decode.js';

/**
 * `stream craft`: a model finding made into a real stream. The trace's run is replayed; the
 * device section its destination loaded and flagged (an unsafe-load, or a load the model
 * refused) is taken as the source saved it, and written over the same section of a real QEMU
 * stream. Everything else in the real stream stays byte for byte as it was (checked), so a
 * real destination started like the base's source meets exactly the model's device state.
 * Serial sections only: the model's serial section is QEMU's isa-serial layout, its
 * virtio-console section is not QEMU's yet.
 */

/** What cannot be crafted, in one line (exit 3). */
export class CraftError extends Error {
  override readonly name = 'CraftError';
}

export interface CraftTarget {
  /** The schedule's device whose section is written. */
  device: string;
  /** How the model's destination took it. */
  outcome: 'unsafe-load' | 'refused';
  key: string;
  message: string;
  /** Which migration of the run (0 = the first). */
  migration: number;
}

/** The flagged device section of a schedule's run, as its source saved it. */
export function flaggedSection(
  schedule: Schedule,
  builds: BuildRegistry,
): { target: CraftTarget; section: DeviceSection } {
  const saved: DeviceSection[][] = [];
  const failuresBefore: number[] = [];
  // The tamper hook sees each stream as the source saves it (the source is still the active VM).
  const world: World = new World(schedule, {
    builds,
    tamper: (stream, n) => {
      const src = world.vms[world.active]!;
      saved[n] = src.devices.map((_, dev) => saveDeviceSection(src, dev, world.sourceHostile));
      failuresBefore[n] = world.failures.length;
      return stream;
    },
  });
  const end = world.run();
  let target: CraftTarget | null = null;
  if (end.kind === 'unsafe-load') {
    target = { ...end, outcome: 'unsafe-load', migration: saved.length - 1 };
  } else {
    const k = world.failures.findIndex((f) => f.device !== null);
    const f = world.failures[k];
    if (f) {
      let n = 0;
      while (n + 1 < failuresBefore.length && failuresBefore[n + 1]! <= k) n++;
      target = { device: f.device!, outcome: 'refused', key: f.key, message: f.message, migration: n };
    }
  }
  if (!target)
    throw new CraftError(
      `its run ends with ${end.kind === 'horizon' ? 'no finding' : `a ${end.kind}`} and no refused device section: there is no flagged device state to craft`,
    );
  const dev = world.deviceNames.indexOf(target.device);
  const section = saved[target.migration]![dev]!;
  if (section.idstr !== 'serial')
    throw new CraftError(
      `the flagged device ${target.device} saves a '${section.idstr}' section; only serial sections are in QEMU's layout in the model`,
    );
  return { target, section };
}

export interface Crafted {
  bytes: Uint8Array;
  /** The replaced section of the base: its header offset, body offset and old body length. */
  offset: number;
  bodyOffset: number;
  oldLength: number;
  newLength: number;
}

function decode(bytes: Uint8Array, what: string) {
  try {
    return decodeStream(bytes);
  } catch (e) {
    if (e instanceof StreamFormatError) throw new CraftError(`${what}: ${e.message}`);
    throw e;
  }
}

const sameHeader = (a: Section, b: Section): boolean =>
  a.type === b.type &&
  a.sectionId === b.sectionId &&
  a.idstr === b.idstr &&
  a.instance === b.instance &&
  a.version === b.version;

/**
 * The base stream with one full section's body replaced. Checked on the result: it decodes,
 * it has the same sections in the same order with the same headers, every other section's
 * body has the same length and bytes, and the new body decodes to exactly the bytes written.
 */
export function spliceSection(base: Uint8Array, section: DeviceSection): Crafted {
  const d = decode(base, 'the base stream');
  const i = d.sections.findIndex(
    (s) => s.type === 'full' && s.idstr === section.idstr && s.instance === section.instanceId,
  );
  const s = d.sections[i];
  if (!s)
    throw new CraftError(`the base stream has no '${section.idstr}' instance ${section.instanceId} section`);
  if (s.version !== section.version)
    throw new CraftError(
      `the base stream's '${s.idstr}' section is version ${s.version}, the model's is ${section.version}`,
    );
  const bytes = new Uint8Array(base.length - s.bodyLength + section.body.length);
  bytes.set(base.subarray(0, s.bodyOffset));
  bytes.set(section.body, s.bodyOffset);
  bytes.set(base.subarray(s.bodyOffset + s.bodyLength), s.bodyOffset + section.body.length);
  const o = decode(bytes, 'the crafted stream');
  const delta = section.body.length - s.bodyLength;
  const same =
    o.sections.length === d.sections.length &&
    o.sections.every((x, j) => {
      const y = d.sections[j]!;
      if (!sameHeader(x, y)) return false;
      if (j === i) return x.bodyLength === section.body.length;
      const shift = j > i ? delta : 0;
      return (
        x.bodyOffset === y.bodyOffset + shift &&
        x.bodyLength === y.bodyLength &&
        Buffer.compare(
          bytes.subarray(x.bodyOffset, x.bodyOffset + x.bodyLength),
          base.subarray(y.bodyOffset, y.bodyOffset + y.bodyLength),
        ) === 0
      );
    });
  const written = o.sections[i];
  if (
    !same ||
    !written ||
    Buffer.compare(
      bytes.subarray(written.bodyOffset, written.bodyOffset + written.bodyLength),
      section.body,
    ) !== 0
  )
    throw new CraftError(`the crafted stream does not decode back to the base with one section replaced`);
  return {
    bytes,
    offset: s.offset,
    bodyOffset: s.bodyOffset,
    oldLength: s.bodyLength,
    newLength: section.body.length,
  };
}
