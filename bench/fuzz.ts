import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Campaign } from '../src/fuzz/campaign.js';
import { BUILTIN_BUILDS, builtinRegistry } from '../src/model/migration/builds.js';

/**
 * Campaign figures: executions per second on 1 and 2 workers (the real `migfuzz fuzz`, from
 * an empty corpus), and executions and seconds until each seed bug's signature is found.
 */
interface Row {
  figure: string;
  value: number;
  unit: string;
  goal: string;
}

export const SEED_BUGS = {
  A: 'stuck-irq-line:vser0:remote-irr',
  B: 'migration-failed:serial0:tsr-not-empty',
} as const;

const BIN = fileURLToPath(new URL('../src/cli/bin.js', import.meta.url));

/** Runs the CLI campaign and reads its final fuzzer_stats.json. */
function campaignRate(workers: number, seconds: number): number {
  const dir = mkdtempSync(join(tmpdir(), 'migfuzz-bench-'));
  const empty = join(dir, 'corpus');
  execFileSync('mkdir', ['-p', empty]);
  try {
    const args = [
      'fuzz',
      '--time',
      `${seconds}s`,
      '--workers',
      String(workers),
      '--seed',
      '1',
      '--corpus',
      empty,
    ];
    args.push('--out', join(dir, 'out'), '--builds', 'qemu-9.2');
    try {
      execFileSync(process.execPath, [BIN, ...args], { stdio: 'ignore' });
    } catch {
      // exit 1 means findings; the rate is what is measured here
    }
    const stats = JSON.parse(readFileSync(join(dir, 'out', 'fuzzer_stats.json'), 'utf8')) as {
      execs_per_sec: number;
    };
    return stats.execs_per_sec;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Executions and seconds until each seed bug, over campaign seeds 1..n from no corpus. */
function timeToBugs(seeds: number, maxExecs: number): Row[] {
  const builds = builtinRegistry();
  const allowed = BUILTIN_BUILDS.map((b) => b.name);
  const execs: Record<string, number[]> = { A: [], B: [] };
  const secs: Record<string, number[]> = { A: [], B: [] };
  for (let seed = 1; seed <= seeds; seed++) {
    const c = new Campaign({ seed, builds, allowed });
    const t0 = performance.now();
    const found: Record<string, boolean> = {};
    while (c.execs < maxExecs && !(found.A && found.B)) {
      for (const f of c.step().newFindings) {
        for (const bug of ['A', 'B'] as const) {
          if (f.signature === SEED_BUGS[bug] && !found[bug]) {
            found[bug] = true;
            execs[bug]!.push(c.execs);
            secs[bug]!.push((performance.now() - t0) / 1000);
          }
        }
      }
    }
    for (const bug of ['A', 'B'] as const) {
      if (!found[bug]) {
        execs[bug]!.push(Number.POSITIVE_INFINITY);
        secs[bug]!.push(Number.POSITIVE_INFINITY);
      }
    }
  }
  const rows: Row[] = [];
  for (const bug of ['A', 'B'] as const) {
    const e = execs[bug]!;
    const s = secs[bug]!;
    rows.push(
      {
        figure: `bug ${bug}: executions to first find (median of ${seeds} seeds)`,
        value: median(e),
        unit: 'execs',
        goal: '',
      },
      {
        figure: `bug ${bug}: executions to first find (worst)`,
        value: Math.max(...e),
        unit: 'execs',
        goal: '',
      },
      { figure: `bug ${bug}: seconds to first find (median)`, value: median(s), unit: 's', goal: '< 1' },
      { figure: `bug ${bug}: seconds to first find (worst)`, value: Math.max(...s), unit: 's', goal: '' },
    );
  }
  return rows;
}

export function fuzzBench(quick: boolean): Row[] {
  const seconds = quick ? 2 : 10;
  const one = campaignRate(1, seconds);
  const two = campaignRate(2, seconds);
  return [
    {
      figure: 'campaign executions/s, 1 worker (qemu-9.2, empty corpus)',
      value: one,
      unit: 'execs/s',
      goal: '>= 5,000',
    },
    { figure: 'campaign executions/s, 2 workers', value: two, unit: 'execs/s', goal: '' },
    { figure: 'scaling, 2 workers / 1', value: two / one, unit: '×', goal: '>= 1.8' },
    ...timeToBugs(quick ? 3 : 10, 20_000),
  ];
}
