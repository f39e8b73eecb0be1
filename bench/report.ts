import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runRecorded } from '../src/cli/replay-commands.js';
import { readAssets, readCampaign } from '../src/cli/report-command.js';
import { builtinRegistry } from '../src/model/migration/builds.js';
import { parseSchedule } from '../src/model/schedule/validate.js';
import { renderHtml } from '../src/report/html.js';
import { CHROMIUM, launch } from './chromium.js';
import type { Row } from './row.js';

/**
 * The HTML report of a large campaign: how long `report` takes to write it and how long it
 * takes to open in headless Chromium (from navigation until its four progress charts and
 * the findings table are drawn, by the page's own clock; goal < 2 s). The campaign directory is synthesised in the
 * shape the campaign writes (fuzz-command.ts): plot_data.csv with one row per execution —
 * 200,000 rows, far more than a real 200,000-execution campaign's one row a second — a
 * fuzzer_stats.json, and both seed bugs saved under crashes/ with their traces.
 */

const GROUP = 'HTML report';
const builds = builtinRegistry();
const SEEDS = new URL('../../corpus/seeds/', import.meta.url);
const readSeed = (name: string): string => readFileSync(new URL(`${name}.json`, SEEDS), 'utf8');

function synthesise(dir: string, executions: number): void {
  const rows: string[] = ['# relative_time_s,execs,execs_per_sec,corpus_size,coverage,findings'];
  for (let i = 1; i <= executions; i++) {
    const t = i / 3500;
    const rate = 3500 + Math.round(400 * Math.sin(i / 5000));
    rows.push(
      `${t.toFixed(1)},${i},${rate},${Math.min(4096, Math.floor(i / 40))},${Math.floor(60 * Math.log2(1 + i))},${i < 30 ? 0 : 2}`,
    );
  }
  writeFileSync(join(dir, 'plot_data.csv'), `${rows.join('\n')}\n`);
  writeFileSync(
    join(dir, 'fuzzer_stats.json'),
    JSON.stringify({ execs: executions, workers: 1, findings: { 'stuck-irq-line:vser0:remote-irr': 900 } }),
  );
  for (const [seed, sig] of [
    ['bug-a-virtio-serial', 'stuck-irq-line:vser0:remote-irr'],
    ['bug-b-serial', 'migration-failed:serial0:tsr-not-empty'],
  ] as const) {
    const d = join(dir, 'crashes', sig);
    mkdirSync(d, { recursive: true });
    const s = parseSchedule(readSeed(seed), builds);
    runRecorded(s, builds, join(d, 'shrunk.mpk'));
    writeFileSync(
      join(d, 'finding.json'),
      JSON.stringify({
        signature: sig,
        oracle: sig.split(':')[0],
        device: sig.split(':')[1],
        seen_ms: 12,
        first_exec: 3,
        builds: `${s.src.build}→${s.dst.build}`,
      }),
    );
  }
}

export async function reportBench(quick: boolean): Promise<Row[]> {
  const executions = quick ? 20_000 : 200_000;
  const label = `${executions.toLocaleString('en-US')}-execution campaign, ${executions.toLocaleString('en-US')} plot rows`;
  const tmp = mkdtempSync(join(tmpdir(), 'migfuzz-report-bench-'));
  try {
    const dir = join(tmp, 'campaign');
    mkdirSync(dir);
    synthesise(dir, executions);
    const file = join(tmp, 'report.html');
    const t0 = performance.now();
    const report = readCampaign(dir, new Map());
    writeFileSync(file, renderHtml(report.title, { kind: 'campaign', campaign: report }, readAssets()));
    const writeS = (performance.now() - t0) / 1000;
    const rows: Row[] = [
      { group: GROUP, figure: `write the report (${label})`, value: writeS, unit: 's', goal: '' },
      { group: GROUP, figure: 'report file size', value: statSync(file).size / 1e6, unit: 'MB', goal: '' },
    ];
    if (!CHROMIUM) {
      console.warn('warning: no Chromium installed: the report is not opened in a browser');
      return rows;
    }
    const browser = await launch(join(tmp, 'shots'));
    try {
      const times: number[] = [];
      for (let i = 0; i < (quick ? 1 : 5); i++) {
        const { page, problems } = await browser.open(file);
        // The page's own clock: from the start of its navigation until everything is drawn.
        const drawnMs = await page
          .waitForFunction(() =>
            document.querySelectorAll('figure .uplot canvas').length === 4 &&
            document.getElementById('findings')
              ? performance.now()
              : false,
          )
          .then((h) => h.jsonValue() as Promise<number>);
        times.push(drawnMs / 1000);
        if (problems.length > 0)
          console.warn(`warning: the report page had problems: ${problems.join('; ')}`);
        await page.close();
      }
      times.sort((x, y) => x - y);
      rows.push({
        group: GROUP,
        figure: `open in headless Chromium until drawn (${label}; median of ${times.length})`,
        value: times[times.length >> 1]!,
        unit: 's',
        goal: '< 2',
      });
    } finally {
      await browser.close();
    }
    return rows;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
