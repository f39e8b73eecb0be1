import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/cli/args.js';
import { readTraceFile, runRecorded } from '../../src/cli/replay-commands.js';
import { cmdReport, cmdShowHtml, readCampaign } from '../../src/cli/report-command.js';
import type { Trace } from '../../src/replay/format.js';
import {
  CampaignInputError,
  downsample,
  MAX_PLOT_POINTS,
  type Plot,
  parsePlot,
} from '../../src/report/campaign.js';
import { scriptJson } from '../../src/report/html.js';
import { tracePage } from '../../src/report/trace-page.js';
import { captureCli } from '../cli/capture.js';
import { builds, longUartSchedule, seedSchedule, seedTrace } from '../replay/helpers.js';

/**
 * The report's data without a browser: plot_data.csv parsing and downsampling, a campaign
 * directory with synced instances, findings and a real-QEMU verdict, the pages' data, and
 * the commands' usage and input errors.
 */

const tmp = mkdtempSync(join(tmpdir(), 'migfuzz-report-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const cli = captureCli();
const HEADER = '# relative_time_s,execs,execs_per_sec,corpus_size,coverage,findings\n';

/** A plot of `n` rows, one per execution; execs/s wobbles, with one stall and one spike. */
function bigPlot(n: number): string {
  const rows: string[] = [];
  for (let i = 0; i < n; i++) {
    const rate = i === 17_777 ? 5 : i === 43_456 ? 9999 : 3000 + ((i * 7919) % 600);
    rows.push(
      `${(i / 10).toFixed(1)},${i + 1},${rate},${Math.floor(i / 100)},${Math.floor(Math.sqrt(i))},${i >= 50 ? 2 : 0}`,
    );
  }
  return `${HEADER}${rows.join('\n')}\n`;
}

describe('plot_data.csv', () => {
  it("parses the campaign writer's rows and skips the header", () => {
    const p = parsePlot(`${HEADER}1.0,100,100,5,40,0\n2.0,300,150,9,55,1\n`, 'p.csv');
    expect(p.time).toEqual([1, 2]);
    expect(p.execs).toEqual([100, 300]);
    expect(p.execs_per_sec).toEqual([100, 150]);
    expect(p.corpus_size).toEqual([5, 9]);
    expect(p.coverage).toEqual([40, 55]);
    expect(p.findings).toEqual([0, 1]);
  });

  it('refuses a malformed row with its line number', () => {
    expect(() => parsePlot(`${HEADER}1.0,100,100,5,40,0\n2.0,abc,1,1,1,1\n`, 'out/plot_data.csv')).toThrow(
      new CampaignInputError(
        'out/plot_data.csv line 3: expected relative_time_s and five whole numbers (execs,execs_per_sec,corpus_size,coverage,findings), separated by commas',
      ),
    );
  });

  it('downsamples 60,000 rows to at most MAX_PLOT_POINTS, keeping the extremes and the counters exact', () => {
    const full = parsePlot(bigPlot(60_000), 'big.csv');
    const d = downsample(full);
    expect(d.time.length).toBeLessThanOrEqual(MAX_PLOT_POINTS);
    expect(d.time.length).toBeGreaterThan(MAX_PLOT_POINTS / 2);
    // Rows are real rows, in order, first and last kept.
    expect(d.time[0]).toBe(full.time[0]);
    expect(d.execs.at(-1)).toBe(60_000);
    for (let i = 1; i < d.time.length; i++) expect(d.execs[i]).toBeGreaterThan(d.execs[i - 1]!);
    // The stall and the spike of execs/s stay visible.
    expect(Math.min(...d.execs_per_sec)).toBe(5);
    expect(Math.max(...d.execs_per_sec)).toBe(9999);
    // A counter at a kept row is the counter of that row.
    const at = (p: Plot, execs: number): number => p.coverage[p.execs.indexOf(execs)]!;
    for (const e of d.execs.slice(0, 50)) expect(at(d, e)).toBe(at(full, e));
  });

  it('leaves a small plot as it is', () => {
    const p = parsePlot(`${HEADER}1.0,100,100,5,40,0\n`, 'p.csv');
    expect(downsample(p)).toBe(p);
  });
});

/** A finding directory as the campaign writes it (fuzz-command.ts OutDir.saveFinding). */
function saveFinding(dir: string, sig: string, seenMs: number, extra: Record<string, string> = {}): void {
  const d = join(dir, 'crashes', sig);
  mkdirSync(d, { recursive: true });
  const s = seedSchedule(sig.startsWith('migration-failed') ? 'bug-b-serial' : 'bug-a-virtio-serial');
  runRecorded(s, builds, join(d, 'shrunk.mpk'));
  writeFileSync(join(d, 'shrunk.json'), JSON.stringify({ steps: [{}, {}, {}] }));
  writeFileSync(
    join(d, 'finding.json'),
    JSON.stringify({
      seed: 1,
      first_exec: 7,
      seen_ms: seenMs,
      signature: sig,
      oracle: sig.split(':')[0],
      device: 'vser0',
      message: 'm',
      builds: 'qemu-1.2→qemu-1.2',
    }),
  );
  for (const [name, text] of Object.entries(extra)) writeFileSync(join(d, name), text);
}

function instance(dir: string, findings: Record<string, number>): void {
  mkdirSync(join(dir, 'queue'), { recursive: true });
  writeFileSync(join(dir, 'plot_data.csv'), `${HEADER}1.0,100,100,5,40,1\n2.0,300,150,9,55,1\n`);
  writeFileSync(join(dir, 'fuzzer_stats.json'), JSON.stringify({ execs: 300, workers: 1, findings }));
}

describe('a campaign directory', () => {
  const SIG = 'stuck-irq-line:vser0:remote-irr';
  const out = join(tmp, 'synced');
  instance(join(out, 'main'), { [SIG]: 10 });
  instance(join(out, 'sec1'), { [SIG]: 5 });
  saveFinding(join(out, 'main'), SIG, 4000);
  saveFinding(join(out, 'sec1'), SIG, 1500, {
    'confirm.json': JSON.stringify({ signature: SIG, verdict: 'confirmed', qemu: 'qemu-system-x86_64 7.2' }),
  });
  saveFinding(join(out, 'sec1'), 'migration-failed:serial0:tsr-not-empty', 2500);
  // An incomplete finding directory (no finding.json yet) is not a finding.
  mkdirSync(join(out, 'sec1', 'crashes', 'half-written'));

  it('shows synced instances together and merges a finding seen by several', () => {
    const r = readCampaign(out, new Map([[SIG, 'bug-a.mpk']]));
    expect(r.instances.map((i) => i.name)).toEqual(['main', 'sec1']);
    expect(r.findings.map((f) => f.signature)).toEqual([SIG, 'migration-failed:serial0:tsr-not-empty']);
    const [a, b] = r.findings;
    expect(a).toMatchObject({
      known: 'bug-a.mpk',
      instances: ['main', 'sec1'],
      count: 15,
      firstSeenS: 1.5,
      firstExec: 7,
      shrunkSteps: 3,
      confirm: 'confirmed',
      page: 0,
    });
    expect(a!.reproduce).toBe(`npx migfuzz replay ${join(out, 'main', 'crashes', SIG, 'shrunk.mpk')}`);
    expect(b).toMatchObject({ known: null, count: null, confirm: null, page: 1 });
    expect(r.pages[0]!.findings.map((f) => f.signature)).toContain(SIG);
  });

  it('report writes one file and says so; bad input is one line and exit 3', () => {
    const html = join(tmp, 'r.html');
    const ok = cli(cmdReport, [out, '-o', html, '--known', join(tmp, 'none')]);
    expect(ok.code).toBe(3);
    expect(ok.err).toEqual([`migfuzz: ${join(tmp, 'none')}: no such directory of regression seeds`]);
    const r = cli(cmdReport, [out, '-o', html]);
    expect(r.code).toBe(0);
    expect(r.out).toEqual([`${out}: wrote ${html} (2 instance(s), 4 plot rows, 2 finding(s))`]);
    const page = readFileSync(html, 'utf8');
    expect(page).toContain("default-src 'none'");
    expect(page).not.toMatch(/<(link|img|iframe)\b|<script [^>]*src=/i);

    const missing = cli(cmdReport, [join(tmp, 'nowhere')]);
    expect(missing).toMatchObject({
      code: 3,
      err: [`migfuzz: ${join(tmp, 'nowhere')}: no such campaign directory`],
    });
    const empty = join(tmp, 'empty');
    mkdirSync(empty);
    expect(cli(cmdReport, [empty]).err[0]).toContain('not a campaign directory');
    const bad = join(tmp, 'bad');
    mkdirSync(bad);
    writeFileSync(join(bad, 'plot_data.csv'), `${HEADER}1.0,1,1,1,1\n`);
    expect(cli(cmdReport, [bad]).err).toEqual([
      `migfuzz: ${join(bad, 'plot_data.csv')} line 2: expected relative_time_s and five whole numbers (execs,execs_per_sec,corpus_size,coverage,findings), separated by commas`,
    ]);
    writeFileSync(join(bad, 'plot_data.csv'), HEADER);
    writeFileSync(join(bad, 'fuzzer_stats.json'), '{');
    expect(cli(cmdReport, [bad]).err).toEqual([`migfuzz: ${join(bad, 'fuzzer_stats.json')}: not valid JSON`]);
    const unwritable = cli(cmdReport, [out, '-o', join(tmp, 'no', 'dir', 'r.html')]);
    expect(unwritable.code).toBe(3);
    expect(unwritable.err[0]).toContain('cannot write (no such file)');
  });

  it('usage errors', () => {
    expect(() => cmdReport([])).toThrow(new UsageError('report needs exactly one OUT_DIR'));
    expect(() => cmdReport([out, '--bogus'])).toThrow(UsageError);
    expect(() => cmdShowHtml(['a.mpk', '--html', 'a.html', '--vcd', 'a.vcd'])).toThrow(
      new UsageError('give --vcd or --html, not both'),
    );
    expect(() => cmdShowHtml(['a.mpk', '--html'])).toThrow(new UsageError('--html needs a value'));
  });
});

describe('a trace page', () => {
  it('windows a long trace around its findings like show, and --all keeps every event', () => {
    const t = seedTrace('bug-a-virtio-serial');
    const whole = tracePage(t, { file: 'a.mpk', reproduce: 'npx migfuzz replay a.mpk' });
    expect(whole.windowed).toBeNull();
    expect(whole.rows).toHaveLength(t.eventCount);
    expect(whole.findings.map((f) => f.explanation.length > 40)).toEqual([true, true, true]);

    const long = runRecordedTrace();
    const windowed = tracePage(long, { file: 'l.mpk', reproduce: '' });
    const gaps = windowed.rows.filter((r) => typeof r === 'number') as number[];
    const events = windowed.rows.length - gaps.length;
    expect(events + gaps.reduce((x, y) => x + y, 0)).toBe(long.eventCount);
    expect(windowed.windowed).toContain('--all shows every event');
    expect(tracePage(long, { file: 'l.mpk', reproduce: '', all: true }).rows).toHaveLength(long.eventCount);
  });

  it('a bad trace is one line and exit 3', () => {
    const f = join(tmp, 'bad.mpk');
    writeFileSync(f, 'not msgpack');
    const r = cli(cmdShowHtml, [f, '--html', join(tmp, 'bad.html')]);
    expect(r.code).toBe(3);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).toMatch(new RegExp(`^migfuzz: ${f}: `));
  });

  it('embedded data cannot close its script element', () => {
    const json = scriptJson({ message: '</script><script>alert(1)</script>\u2028' });
    expect(json).not.toContain('<');
    expect(JSON.parse(json)).toEqual({ message: '</script><script>alert(1)</script>\u2028' });
  });
});

/** A trace longer than `show` prints whole. */
function runRecordedTrace(): Trace {
  const file = join(tmp, 'long.mpk');
  runRecorded(longUartSchedule(), builds, file);
  return readTraceFile(file);
}
