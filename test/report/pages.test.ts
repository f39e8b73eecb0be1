import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type FuzzIo, runFuzz } from '../../src/cli/fuzz-command.js';
import { fuzzSettings } from '../../src/cli/fuzz-settings.js';
import { main } from '../../src/cli/main.js';
import { ROOT, seedPath } from '../replay/helpers.js';

/** Screenshots go here (gitignored). */
const SHOT_DIR = join(ROOT, 'test-output', 'report');

import { type Browser, CHROMIUM, launch, REQUIRE_REAL } from '../../bench/chromium.js';

/**
 * The pages in a real browser (headless Chromium): `report` on a real short campaign and
 * `show --html` on both seed bugs' traces recorded with `run --trace`. Each page must open
 * without a console error or a failed request, draw its charts and waveforms with the
 * findings marked in view, filter its timeline and zoom; screenshots go to test-output/report/.
 */

const tmp = mkdtempSync(join(tmpdir(), 'migfuzz-pages-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
/** Runs a command in-process (in beforeAll: no per-test console capture), quietly. */
function run(argv: string[]): { code: number; out: string[] } {
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  const err = vi.spyOn(console, 'error').mockImplementation(() => {});
  try {
    const code = main(argv) as number;
    return { code, out: [...log.mock.calls, ...err.mock.calls].map((c) => c.join(' ')) };
  } finally {
    log.mockRestore();
    err.mockRestore();
  }
}

/** A real short campaign (its first inputs are the seeds, so it finds both seed bugs), with a
 * clock that advances 20 ms per reading: a plot row every 50 readings. */
async function shortCampaign(out: string): Promise<void> {
  let t = 1_700_000_000_000;
  const io: FuzzIo = {
    now: () => {
      t += 20;
      return t;
    },
    isTty: false,
    write: () => {},
    onStop: () => {},
    readText: (f) => readFileSync(f, 'utf8'),
  };
  const st = fuzzSettings(
    ['--execs', '40', '--seed', '5', '--corpus', join(ROOT, 'corpus', 'seeds'), '--out', out],
    io.readText,
    0,
  );
  expect(await runFuzz(st, io)).toBe(1);
}

const text = async (page: Page, selector: string): Promise<string> =>
  (await page.locator(selector).first().textContent()) ?? '';
const signal = (page: Page, name: string): Promise<string> =>
  text(page, `#wave-values tr[data-signal="${name}"] td.value`);
const shownRows = (page: Page): Promise<number> => page.locator('#timeline tbody tr[data-at]').count();
const range = async (page: Page): Promise<[number, number]> => {
  const r = page.locator('#wave-range');
  return [Number(await r.getAttribute('data-min')), Number(await r.getAttribute('data-max'))];
};

/** The finding markers displayed, each checked to lie inside the waveform's plot area. */
async function markersInView(page: Page): Promise<number> {
  const over = await page.locator('#wave .u-over').boundingBox();
  const markers = page.locator('#wave .finding-marker');
  let shown = 0;
  for (let i = 0; i < (await markers.count()); i++) {
    const box = await markers.nth(i).boundingBox();
    if (box === null) continue; // outside the zoomed range: hidden
    shown++;
    expect(box.x).toBeGreaterThanOrEqual(over!.x - 1);
    expect(box.x).toBeLessThanOrEqual(over!.x + over!.width + 1);
  }
  return shown;
}

const reason = CHROMIUM ? null : 'no Chromium installed (/usr/bin/chromium): the browser tests are skipped';
if (reason && !REQUIRE_REAL) console.log(`test/report/pages.test.ts: ${reason}`);

describe.runIf(CHROMIUM !== undefined || REQUIRE_REAL)('the HTML pages in headless Chromium', () => {
  let browser: Browser;
  const pages: Record<string, string> = {};

  beforeAll(async () => {
    if (!CHROMIUM) throw new Error(`MIGFUZZ_REQUIRE_REAL=1 and ${reason}`);
    for (const [name, seed] of [
      ['bug-a', 'bug-a-virtio-serial'],
      ['bug-b', 'bug-b-serial'],
    ]) {
      const trace = join(tmp, `${name}.mpk`);
      expect(run(['run', seedPath(seed!), '--trace', trace]).code).toBe(1);
      pages[name!] = join(tmp, `${name}.html`);
      const r = run(['show', trace, '--html', pages[name!]!]);
      expect(r.code).toBe(0);
      expect(r.out[0]).toContain(`wrote ${pages[name!]}`);
    }
    const campaign = join(tmp, 'campaign');
    await shortCampaign(campaign);
    pages.campaign = join(tmp, 'report.html');
    expect(run(['report', campaign, '-o', pages.campaign]).code).toBe(0);
    browser = await launch(SHOT_DIR);
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
  });

  it('report: progress charts, the findings table, and each finding page, without errors', async () => {
    const { page, problems } = await browser.open(pages.campaign!);
    for (const col of ['execs_per_sec', 'coverage', 'corpus_size', 'findings'])
      expect(await page.locator(`figure[data-column="${col}"] .uplot canvas`).count()).toBe(1);
    const rows = page.locator('#findings tbody tr');
    expect(await rows.count()).toBeGreaterThanOrEqual(2);
    // Both seed bugs are in the corpus: known, with their reproduce commands.
    for (const sig of ['stuck-irq-line:vser0:remote-irr', 'migration-failed:serial0:tsr-not-empty']) {
      const cells = await rows.filter({ hasText: sig }).locator('td').allTextContents();
      expect(cells[1]).toMatch(/^known \(bug-[ab]/);
      expect(cells.at(-1)).toMatch(/^npx migfuzz replay .*shrunk\.mpk$/);
    }
    expect(await page.locator('#findings td.confirm').allTextContents()).toEqual(
      Array(await rows.count()).fill('not run'),
    );
    await browser.shot(page, 'campaign');

    // A finding's page, from the keyboard: focus its link and press Enter.
    await page.locator('#findings a', { hasText: 'stuck-irq-line:vser0:remote-irr' }).focus();
    await page.keyboard.press('Enter');
    await page.locator('#wave canvas').first().waitFor();
    expect(await text(page, 'h1')).toContain('stuck-irq-line:vser0:remote-irr');
    expect(await markersInView(page)).toBeGreaterThanOrEqual(1);
    await browser.shot(page, 'campaign-finding');
    await page.locator('#back').click();
    await page.locator('#findings').waitFor();
    expect(problems).toEqual([]);
  });

  it('bug A: the INTx line stays high with Remote-IRR set after the migration, marked at the finding', async () => {
    const { page, problems } = await browser.open(pages['bug-a']!);
    expect(await page.locator('#wave canvas').count()).toBeGreaterThan(0);
    expect(await text(page, '.finding[data-oracle="stuck-irq-line"] .explanation')).toContain('Remote-IRR');
    expect(await markersInView(page)).toBe(3);
    // The cursor starts at the first finding (15.3 ms), after the migration completed at 5.3 ms.
    expect(await text(page, '#values-at')).toBe('15.300 ms');
    expect(await signal(page, 'vm1.migration')).toBe('completed');
    expect(await signal(page, 'vm1.run_state')).toBe('running');
    expect(await signal(page, 'vm1.vser0.irq')).toBe('1');
    expect(await signal(page, 'vm1.ioapic.gsi11')).toBe('1');
    expect(await signal(page, 'vm1.ioapic.gsi11_rirr')).toBe('1');
    expect(await signal(page, 'vm1.lapic.isr')).toBe('none');
    expect(await signal(page, 'vm0.run_state')).toBe('postmigrate');
    await browser.shot(page, 'bug-a');
    await browser.shot(page, 'bug-a-waves', '#wave');

    // Zoom from the keyboard: around the cursor, the finding stays in view.
    const whole = await range(page);
    await page.locator('#wave').focus();
    await page.keyboard.press('+');
    await page.keyboard.press('+');
    const zoomed = await range(page);
    expect(zoomed[1] - zoomed[0]).toBeCloseTo((whole[1] - whole[0]) / 4, 6);
    expect(zoomed[0]).toBeLessThanOrEqual(15.3);
    expect(zoomed[1]).toBeGreaterThanOrEqual(15.3);
    expect(await markersInView(page)).toBe(2); // the two findings at 15.3 ms; the third is at 50 ms
    // Back to the migration: the cursor walks the changes, the view follows.
    for (let i = 0; i < 8 && (await text(page, '#values-at')) !== '5.300 ms'; i++)
      await page.keyboard.press('ArrowLeft');
    expect(await text(page, '#values-at')).toBe('5.300 ms');
    expect(await signal(page, 'vm1.lapic.irr')).toBe('none (pulsed at this instant)');
    await browser.shot(page, 'bug-a-zoomed');
    await page.keyboard.press('0');
    expect(await range(page)).toEqual(whole);

    // Filters and search change the rows shown.
    const all = await shownRows(page);
    await page.selectOption('#filter-vm', '1');
    const vm1 = await shownRows(page);
    expect(vm1).toBeGreaterThan(0);
    expect(vm1).toBeLessThan(all);
    expect(await page.locator('#timeline tbody tr[data-at] td:nth-child(3)').allTextContents()).toEqual(
      Array(vm1).fill('vm1'),
    );
    await page.selectOption('#filter-kind', 'REMOTE_IRR');
    expect(await shownRows(page)).toBe(1);
    await page.selectOption('#filter-vm', '');
    await page.selectOption('#filter-kind', '');
    await page.fill('#filter-search', 'lapic-push');
    expect(await shownRows(page)).toBe(1);
    expect(await text(page, '#timeline tbody tr[data-at]')).toContain('1 vector lost');
    expect(await text(page, '#timeline-count')).toBe(`1 of ${all} events shown`);
    await page.fill('#filter-search', '');
    expect(await shownRows(page)).toBe(all);
    expect(problems).toEqual([]);
  });

  it('bug B: the failed load and the bytes the UART holds in its TSR and FIFO', async () => {
    const { page, problems } = await browser.open(pages['bug-b']!);
    expect(await markersInView(page)).toBe(1);
    expect(await text(page, '#values-at')).toBe('4.300 ms');
    expect(await signal(page, 'vm1.migration')).toBe('failed');
    expect(await signal(page, 'vm1.run_state')).toBe('shutdown');
    expect(await signal(page, 'vm0.run_state')).toBe('running');
    const held = page.locator('#wave-values tr[data-signal="bytes.serial0_to_host"] td');
    expect(await held.allTextContents()).toEqual([
      'bytes.serial0_to_host',
      'bytes held by serial0 →host (transmit FIFO / THR and TSR)',
      '9',
    ]);
    expect(await signal(page, 'vm0.serial0.backend')).toBe('hung-up');
    const finding = await text(page, '.finding[data-oracle="migration-failed"]');
    expect(finding).toContain('tsr not empty');
    expect(finding).toContain('refused the migration stream');
    await browser.shot(page, 'bug-b');
    const shot = await browser.shot(page, 'bug-b-waves', '#wave');
    expect(shot.startsWith(SHOT_DIR)).toBe(true);
    expect(statSync(shot).size).toBeGreaterThan(10_000);
    expect(problems).toEqual([]);
  });
});
