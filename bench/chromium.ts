import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type BrowserContext, chromium, type Page } from 'playwright-core';

/**
 * A real browser for the page tests (test/report) and the report benchmark: the system's
 * Chromium (Debian's `chromium` package), driven by playwright-core, which downloads nothing.
 * Where none is installed the tests skip with a printed reason, unless MIGFUZZ_REQUIRE_REAL=1
 * (CI) makes them fail.
 */

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];
export const CHROMIUM = process.env.MIGFUZZ_CHROMIUM ?? CANDIDATES.find((p) => existsSync(p));
export const REQUIRE_REAL = process.env.MIGFUZZ_REQUIRE_REAL === '1';

/** Headless, offline and forgetful: nothing from an earlier run or from the network. */
const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
];

export interface OpenedPage {
  page: Page;
  /** Console errors, page errors, failed or non-file requests, in order. */
  problems: string[];
}

export interface Browser {
  open(file: string): Promise<OpenedPage>;
  /** A screenshot of the whole page, or of one element. */
  shot(page: Page, name: string, selector?: string): Promise<string>;
  close(): Promise<void>;
}

/** Launches the browser; screenshots go to `shotDir`. */
export async function launch(shotDir: string): Promise<Browser> {
  if (!CHROMIUM) throw new Error('no Chromium installed');
  const profile = mkdtempSync(join(tmpdir(), 'migfuzz-chromium-'));
  // launchPersistentContext passes a fresh --user-data-dir (playwright refuses it in args).
  const ctx: BrowserContext = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 1400, height: 900 },
  });
  mkdirSync(shotDir, { recursive: true });
  return {
    async open(file) {
      const page = await ctx.newPage();
      const problems: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
      });
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
      page.on('request', (r) => {
        if (!r.url().startsWith('file:')) problems.push(`request to the network: ${r.url()}`);
      });
      await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
      return { page, problems };
    },
    async shot(page, name, selector) {
      const path = join(shotDir, `${name}.png`);
      if (selector) await page.locator(selector).screenshot({ path });
      else await page.screenshot({ path, fullPage: true });
      return path;
    },
    async close() {
      await ctx.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
