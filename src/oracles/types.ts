import type { World } from '../model/world.js';

/** Oracle names are part of the contract (docs/oracles.md): never rename. */
export const ORACLE_NAMES = [
  'lost-interrupt',
  'stuck-irq-line',
  'stale-guest-view',
  'data-loss',
  'data-corruption',
  'migration-failed',
  'model-assert',
  'hang',
  'unsafe-load',
  'starved-data',
] as const;
export type OracleName = (typeof ORACLE_NAMES)[number];

export interface Finding {
  oracle: OracleName;
  /** The schedule's device name, or null when the cause is not one device's. */
  device: string | null;
  /** Host ns at which the oracle fired. */
  at: number;
  message: string;
  /** oracle:device:key — stable across times and seeds, for deduplication. */
  signature: string;
}

export interface OracleParams {
  /** How long (vm ns, while the VM runs and the interrupt is unmasked) a device may wait. */
  deadlineNs: number;
  /** How long a state must have held before the end-of-run checks judge it. */
  settleNs: number;
}

export const DEFAULT_ORACLE_PARAMS: OracleParams = { deadlineNs: 10_000_000, settleNs: 10_000_000 };

/**
 * An oracle watches the executed events of one run (only the kinds it names) and may query
 * the world; `finish` runs the end-of-run checks. Findings go through `report`.
 */
export interface Oracle {
  readonly kinds: readonly number[];
  onEvent(at: number, kind: number, vm: number, dev: number, a: number, b: number): void;
  finish(): void;
}

export type Report = (f: Omit<Finding, 'signature'>, key: string) => void;

/**
 * Receives near-misses: an oracle's condition held for half its deadline (coverage counts
 * them, so the campaign keeps schedules that come close). `key` is small and oracle-defined.
 */
export interface NearMissSink {
  nearMiss(oracle: OracleName, key: number): void;
}

export interface OracleContext {
  world: World;
  params: OracleParams;
  report: Report;
  nearMiss: NearMissSink['nearMiss'];
}

export function signatureOf(oracle: OracleName, device: string | null, key: string): string {
  return `${oracle}:${device ?? '-'}:${key}`;
}
