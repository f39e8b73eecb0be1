/** The bounds of a schedule (docs/schedule.md): what a hand-written or generated one may hold. */

export const MAX_HORIZON_NS = 10_000_000_000;
export const MAX_STEPS = 10_000;
export const MAX_DEVICES = 8;
export const MAX_PORTS = 30;
export const MAX_DATA_BYTES = 4096;
export const MAX_DOWNTIME_NS = 1_000_000_000;
