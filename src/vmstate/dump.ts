/**
 * The model's device sections in the JSON format of QEMU's `-dump-vmstate`
 * (dump_vmstate_json in migration/savevm.c): one entry per device type with its
 * VMStateDescription (name, version_id, minimum_version_id, Fields, Subsections), and
 * `vmschkmachine` naming the machine type. It is derived from the same section
 * descriptions the model saves and loads with; only the way QEMU nests them is added here
 * (QEMU_SHAPE), so a dump can be compared with a real QEMU's by `vmstate diff`.
 */
import { fail } from '../model/assert.js';
import type { Build, MachineType } from '../model/migration/builds.js';
import { qemuFieldName } from '../model/migration/hostile.js';
import { serialSection, serialStateSection } from '../model/migration/serial-section.js';
import { virtioConsoleSection } from '../model/migration/virtio-section.js';
import type { ScalarType, VmField, VmSection, VmSubsection } from '../model/migration/vmstate.js';

export interface DumpField {
  field: string;
  version_id: number;
  field_exists: boolean;
  num?: number;
  size: number;
  Description?: DumpDesc;
}

export interface DumpDesc {
  name: string;
  version_id: number;
  minimum_version_id: number;
  Fields?: DumpField[];
  Subsections?: DumpDesc[];
}

export interface DumpDevice {
  Name: string;
  version_id: number;
  minimum_version_id: number;
  Description: DumpDesc;
}

export type VmstateDump = Record<string, DumpDevice | { Name: string }>;

/**
 * QEMU's `vmstate_fifo8` (util/fifo8.c) as it dumps: VMSTATE_FIFO8 is a struct field of
 * version 1 whose `data` is a VMSTATE_VBUFFER_UINT32 (size 0: computed when saved).
 * sizeof(Fifo8) is 24 on a 64-bit host.
 */
const FIFO8: DumpField = {
  field: '',
  version_id: 1,
  field_exists: false,
  size: 24,
  Description: {
    name: 'Fifo8',
    version_id: 1,
    minimum_version_id: 1,
    Fields: [
      { field: 'data', version_id: 1, field_exists: false, size: 0 },
      { field: 'head', version_id: 0, field_exists: false, size: 4 },
      { field: 'num', version_id: 0, field_exists: false, size: 4 },
    ],
  },
};

/**
 * How QEMU nests each modelled section. serial: the device type is `isa-serial`, whose
 * vmstate_isa_serial holds one VMSTATE_STRUCT(state, ..., vmstate_serial) of
 * sizeof(SerialState) (656 bytes in 7.2 on x86-64); the receive and transmit FIFOs are Fifo8
 * structs. virtio-console: `virtio-serial-device`, whose only field is the opaque
 * VMSTATE_VIRTIO_DEVICE (virtio_save writes everything the model's section holds).
 */
const QEMU_SHAPE = {
  serial: {
    device: 'isa-serial',
    wrapper: { field: 'state', size: 656 },
    structs: { recv_fifo: FIFO8, xmit_fifo: FIFO8 },
  },
  virtio: { device: 'virtio-serial-device', opaque: 'virtio' },
} as const;

function scalarSize(t: ScalarType): number {
  if (typeof t === 'object') return t.buffer;
  return { u8: 1, bool: 1, u16: 2, u32: 4, i32: 4, i64: 8 }[t];
}

/** The model's flat fields, with dotted ones (`recv_fifo.head`) folded into their QEMU struct. */
function dumpFields(
  fields: readonly VmField<unknown, unknown>[],
  structs: Record<string, DumpField>,
): DumpField[] {
  const out: DumpField[] = [];
  for (const f of fields) {
    const name = qemuFieldName(f.name);
    const dot = name.indexOf('.');
    if (dot >= 0) {
      const struct = name.slice(0, dot);
      const shape = structs[struct];
      if (!shape) fail(`vmstate dump: no QEMU struct for field ${f.name}`);
      if (!out.some((x) => x.field === struct)) out.push({ ...shape, field: struct });
      continue;
    }
    if (typeof f.type === 'object' && 'custom' in f.type)
      fail(`vmstate dump: field ${f.name} has no fixed layout`);
    out.push({ field: name, version_id: f.since ?? 0, field_exists: false, size: scalarSize(f.type) });
  }
  return out;
}

function dumpSubsection(s: VmSubsection<unknown, unknown>, structs: Record<string, DumpField>): DumpDesc {
  return {
    name: s.name,
    version_id: s.version,
    minimum_version_id: s.minVersion ?? s.version,
    Fields: dumpFields(s.fields, structs),
  };
}

/** A VMStateDescription; `Subsections` only when it has some (as QEMU prints it). */
function dumpDesc(
  s: VmSection<unknown, unknown>,
  fields: DumpField[],
  structs: Record<string, DumpField>,
): DumpDesc {
  const d: DumpDesc = {
    name: s.name,
    version_id: s.version,
    minimum_version_id: s.minVersion,
    Fields: fields,
  };
  if (s.subsections.length > 0) d.Subsections = s.subsections.map((x) => dumpSubsection(x, structs));
  return d;
}

function serialDevice(build: Build): DumpDevice {
  const isa = serialSection(build.revisions) as unknown as VmSection<unknown, unknown>;
  const s = serialStateSection(build.revisions) as unknown as VmSection<unknown, unknown>;
  const shape = QEMU_SHAPE.serial;
  const inner = dumpDesc(s, dumpFields(s.fields, shape.structs), shape.structs);
  return {
    Name: shape.device,
    version_id: isa.version,
    minimum_version_id: isa.minVersion,
    Description: {
      name: isa.name,
      version_id: isa.version,
      minimum_version_id: isa.minVersion,
      Fields: [
        {
          field: shape.wrapper.field,
          version_id: 0,
          field_exists: false,
          size: shape.wrapper.size,
          Description: inner,
        },
      ],
    },
  };
}

function virtioDevice(): DumpDevice {
  const s = virtioConsoleSection as unknown as VmSection<unknown, unknown>;
  const shape = QEMU_SHAPE.virtio;
  // The section's idstr carries the PCI address in QEMU; the description is "virtio-console".
  // Everything, the virtio/* subsections included, is inside the one opaque field.
  const Description: DumpDesc = {
    name: s.name.slice(s.name.lastIndexOf('/') + 1),
    version_id: s.version,
    minimum_version_id: s.minVersion,
    Fields: [{ field: shape.opaque, version_id: 0, field_exists: false, size: 0 }],
  };
  return { Name: shape.device, version_id: s.version, minimum_version_id: s.minVersion, Description };
}

/** The dump of a build on one of its machine types. */
export function vmstateDump(build: Build, machine: MachineType): VmstateDump {
  return {
    vmschkmachine: { Name: machine.name },
    [QEMU_SHAPE.serial.device]: serialDevice(build),
    [QEMU_SHAPE.virtio.device]: virtioDevice(),
  };
}
