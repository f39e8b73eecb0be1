/**
 * One self-contained HTML file: the page's data as JSON, the charting library and the page's
 * own script inline. A Content-Security-Policy of `default-src 'none'` makes the browser
 * refuse any request the page might make: it opens from disk, offline, and fetches nothing.
 */

import type { CampaignReport } from './campaign.js';
import { pageMain } from './client.js';
import type { TracePage } from './trace-page.js';

/** What the page draws: a campaign (its pages are its findings'), or one trace's page. */
export type PageData = { kind: 'campaign'; campaign: CampaignReport } | { kind: 'trace'; page: TracePage };

/** The embedded library's files (read by the command line from its npm package). */
export interface Assets {
  /** uPlot's IIFE build (defines the global `uPlot`). */
  uplotJs: string;
  uplotCss: string;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON that cannot end its <script> element or break a JavaScript string. */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/** A library's code inside <script>: `</script` cannot occur in it unescaped. */
function scriptText(code: string): string {
  return code.replace(/<\/(script)/gi, '<\\/$1');
}

const CSS = `
:root { color-scheme: light; --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --accent: #0969da; --bad: #cf222e; --bg2: #f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, sans-serif; color: var(--fg); margin: 0; padding: 16px 24px 48px; }
h1 { font-size: 20px; margin: 0 0 8px; } h2 { font-size: 16px; margin: 24px 0 8px; }
a { color: var(--accent); } a:focus-visible, button:focus-visible, select:focus-visible, input:focus-visible, [tabindex]:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12.5px; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--bg2); position: sticky; top: 0; }
dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; } dl.summary dt { color: var(--muted); }
.finding { border-left: 4px solid var(--bad); background: #fff5f5; padding: 8px 12px; margin: 8px 0; }
.finding .sig { color: var(--muted); }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: 12px; }
.chart { border: 1px solid var(--line); padding: 4px; }
.controls { display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: center; margin: 8px 0; }
.timeline-wrap { max-height: 480px; overflow: auto; border: 1px solid var(--line); }
tr.finding-row td { background: #ffebe9; font-weight: 600; }
tr.gap td { color: var(--muted); font-style: italic; }
tr.at-cursor td { background: #ddf4ff; }
.wave { border: 1px solid var(--line); position: relative; }
.wave:focus-within { border-color: var(--accent); }
.finding-marker { position: absolute; top: 0; bottom: 0; width: 0; border-left: 2px dashed var(--bad); pointer-events: none; }
.finding-marker span { position: absolute; top: 0; left: 3px; background: var(--bad); color: #fff; font-size: 11px; padding: 0 4px; white-space: nowrap; }
.finding-marker.flip span { left: auto; right: 3px; }
.wave-cursor { position: absolute; top: 0; bottom: 0; width: 0; border-left: 1px solid var(--accent); pointer-events: none; }
.help { color: var(--muted); font-size: 12.5px; }
.known { color: var(--muted); } .new { color: var(--bad); font-weight: 600; }
`;

/** The whole page. */
export function renderHtml(title: string, data: PageData, assets: Assets): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>${escapeHtml(title)}</title>
<style>${assets.uplotCss}</style>
<style>${CSS}</style>
</head>
<body>
<noscript>This report draws its tables and charts with JavaScript, which is off.</noscript>
<main id="app" aria-live="polite"></main>
<script id="migfuzz-data" type="application/json">${scriptJson(data)}</script>
<script>${scriptText(assets.uplotJs)}</script>
<script>(${pageMain.toString()})();</script>
</body>
</html>
`;
}
