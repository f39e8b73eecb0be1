/// <reference lib="dom" />
/**
 * The pages' script, run in the browser: html.ts embeds `pageMain`'s source in the file, so
 * it uses nothing from outside its own body but the DOM and the embedded uPlot. It draws the
 * campaign view (progress charts, findings table) and each finding's view (verdict,
 * waveforms, timeline), chosen by the URL's hash (`#finding-N`).
 *
 * Everything works from the keyboard: links, buttons and filters are ordinary controls, and
 * the waveform takes keys when focused (help text on the page).
 */

import type UPlot from 'uplot';
import type { CampaignReport, Instance } from './campaign.js';
import type { PageData } from './html.js';
import type { PageFinding, PageRow, TracePage } from './trace-page.js';

declare const uPlot: typeof UPlot;

export function pageMain(): void {
  const data = JSON.parse(document.getElementById('migfuzz-data')!.textContent!) as PageData;
  const app = document.getElementById('app')!;
  let charts: UPlot[] = [];

  type Child = Node | string | null;
  function h(tag: string, attrs: Record<string, string> = {}, ...children: Child[]): HTMLElement {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    for (const c of children) if (c !== null) e.append(c);
    return e;
  }
  /** A table with a header row; `body` is its tbody's rows, or the tbody itself. */
  const table = (id: string, headers: string[], body: HTMLElement | HTMLElement[]): HTMLElement =>
    h(
      'table',
      { id },
      h('thead', {}, h('tr', {}, ...headers.map((x) => h('th', { scope: 'col' }, x)))),
      Array.isArray(body) ? h('tbody', {}, ...body) : body,
    );
  const ms = (ns: number): string => `${(ns / 1e6).toFixed(3)} ms`;
  const COLORS = ['#0969da', '#cf222e', '#1a7f37', '#8250df', '#bc4c00', '#0a7a87', '#6e7781'];
  const width = (e: HTMLElement): number => Math.max(360, e.clientWidth - 12);

  function route(): void {
    for (const c of charts) c.destroy();
    charts = [];
    app.replaceChildren();
    if (data.kind === 'trace') {
      renderTrace(data.page, null);
      return;
    }
    const m = /^#finding-(\d+)$/.exec(location.hash);
    const page = m ? data.campaign.pages[Number(m[1])] : undefined;
    if (page) renderTrace(page, '#');
    else renderCampaign(data.campaign);
    window.scrollTo(0, 0);
  }

  // -------------------------------------------------------------------------------------
  // The campaign

  function renderCampaign(c: CampaignReport): void {
    document.title = c.title;
    app.append(h('h1', {}, c.title));
    const stat = (i: Instance, key: string): string => {
      const v = i.stats?.[key];
      if (v === undefined || v === null) return '–';
      return Array.isArray(v) ? v.join(', ') : typeof v === 'number' ? v.toLocaleString('en-US') : String(v);
    };
    const head = [
      'instance',
      'executions',
      'execs/s',
      'run time (s)',
      'coverage',
      'queue',
      'workers',
      'builds',
      'plot',
    ];
    const stats = table(
      'instances',
      head,
      c.instances.map((i) =>
        h(
          'tr',
          {},
          h('td', {}, i.name),
          h('td', {}, stat(i, 'execs')),
          h('td', {}, stat(i, 'execs_per_sec')),
          h('td', {}, typeof i.stats?.run_time_s === 'number' ? i.stats.run_time_s.toFixed(1) : '–'),
          h('td', {}, stat(i, 'coverage')),
          h('td', {}, stat(i, 'corpus_size')),
          h('td', {}, stat(i, 'workers')),
          h('td', {}, stat(i, 'builds')),
          h(
            'td',
            {},
            i.plot.time.length < i.rows
              ? `${i.plot.time.length} of ${i.rows} rows drawn (downsampled)`
              : `${i.rows} rows`,
          ),
        ),
      ),
    );
    app.append(h('h2', {}, 'Progress'), stats);
    const grid = h('div', { class: 'charts' });
    app.append(grid);
    const columns: [keyof Instance['plot'], string][] = [
      ['execs_per_sec', 'Executions per second'],
      ['coverage', 'Coverage (points reached)'],
      ['corpus_size', 'Queue size (entries)'],
      ['findings', 'Findings (distinct signatures)'],
    ];
    for (const [col, title] of columns) {
      const box = h('figure', { class: 'chart', 'data-column': col, 'aria-label': title });
      grid.append(box);
      const tables = c.instances.map((i) => [i.plot.time, i.plot[col]] as UPlot.AlignedData);
      const joined = tables.length === 1 ? tables[0]! : uPlot.join(tables);
      charts.push(
        new uPlot(
          {
            title,
            width: width(box),
            height: 220,
            scales: { x: { time: false } },
            series: [
              { label: 'time (s)' },
              ...c.instances.map((i, k) => ({
                label: i.name === '.' ? c.dir : i.name,
                stroke: COLORS[k % COLORS.length]!,
                width: 1.5,
                spanGaps: true,
                points: { show: false },
              })),
            ],
            axes: [{ label: 'campaign time (s)' }, { size: 60 }],
          },
          joined,
          box,
        ),
      );
    }

    app.append(h('h2', {}, `Findings (${c.findings.length})`));
    if (c.findings.length === 0) {
      app.append(h('p', { id: 'no-findings' }, 'No finding was saved in this campaign.'));
      return;
    }
    const cols = [
      'signature',
      'known or new',
      'oracle',
      'builds',
      'first seen',
      'count',
      'shrunk steps',
      'real QEMU',
      'reproduce',
    ];
    app.append(
      h(
        'div',
        { class: 'timeline-wrap' },
        table(
          'findings',
          cols,
          c.findings.map((f) =>
            h(
              'tr',
              {},
              h(
                'td',
                { class: 'mono' },
                f.page === null ? f.signature : h('a', { href: `#finding-${f.page}` }, f.signature),
              ),
              h('td', { class: f.known ? 'known' : 'new' }, f.known ? `known (${f.known})` : 'new'),
              h('td', {}, f.oracle),
              h('td', {}, f.builds),
              h(
                'td',
                {},
                f.firstSeenS === null
                  ? '–'
                  : `${f.firstSeenS.toFixed(2)} s${f.firstExec === null ? '' : ` (exec ${f.firstExec})`}`,
              ),
              h('td', {}, f.count === null ? '–' : String(f.count)),
              h('td', {}, f.shrunkSteps === null ? '–' : String(f.shrunkSteps)),
              h('td', { class: 'confirm' }, f.confirm ?? 'not run'),
              h('td', {}, h('code', {}, f.reproduce)),
            ),
          ),
        ),
      ),
    );
  }

  // -------------------------------------------------------------------------------------
  // A finding's page

  function renderTrace(p: TracePage, back: string | null): void {
    document.title = p.title;
    if (back !== null) app.append(h('p', {}, h('a', { href: back, id: 'back' }, '← the campaign')));
    app.append(h('h1', {}, p.title));
    app.append(
      h(
        'dl',
        { class: 'summary' },
        ...p.summary.flatMap((s) => [h('dt', {}, s.label), h('dd', { class: 'mono' }, s.value)]),
      ),
    );
    app.append(
      h(
        'h2',
        {},
        p.findings.length === 0 ? 'Verdict: no finding' : `Verdict: ${p.findings.length} finding(s)`,
      ),
    );
    for (const f of p.findings) {
      app.append(
        h(
          'section',
          { class: 'finding', 'data-oracle': f.oracle },
          h('strong', {}, `${f.oracle} on ${f.device ?? '–'} at ${f.at}`),
          h('p', {}, f.message),
          h('p', { class: 'explanation' }, f.explanation),
          h('div', { class: 'sig mono' }, `signature ${f.signature}`),
        ),
      );
    }
    app.append(h('p', {}, 'Reproduce: ', h('code', { id: 'reproduce' }, p.reproduce)));
    const cursor = renderWaves(p);
    renderTimeline(p, cursor);
  }

  /** The waveform view; returns a function that moves its cursor to a host time. */
  function renderWaves(p: TracePage): (ns: number) => void {
    const lanes = p.lanes;
    const count = lanes.length;
    const endMs = p.endNs / 1e6;
    const findings = [...p.findings].sort((x, y) => x.atNs - y.atNs);
    app.append(h('h2', {}, 'Waveforms'));
    const help = h(
      'p',
      { class: 'help', id: 'wave-help' },
      'Focus the waveform (Tab) and use: + / − zoom around the cursor, ← / → move the cursor to the previous / next change, Shift+← / → pan, f / F next / previous finding, 0 show the whole run. With a mouse: drag to zoom, double-click to zoom out.',
    );
    const range = h('span', { id: 'wave-range', class: 'mono' });
    const button = (label: string, action: () => void): HTMLElement => {
      const b = h('button', { type: 'button' }, label);
      b.addEventListener('click', action);
      return b;
    };
    const controls = h('div', { class: 'controls' });
    const box = h('div', {
      class: 'wave',
      id: 'wave',
      tabindex: '0',
      role: 'img',
      'aria-label': `Waveforms of ${count} signals over ${ms(p.endNs)}; the table below gives their values at the cursor`,
      'aria-describedby': 'wave-help',
    });
    app.append(help, controls, box);

    // The lanes on one x axis: every change and pulse time, and the end of the run.
    const xsNs = [...new Set([...lanes.flatMap((l) => [...l.times, ...l.pulses]), p.endNs])].sort(
      (a, b) => a - b,
    );
    const valueAt = (l: TracePage['lanes'][number], ns: number): number | null => {
      let lo = 0;
      let hi = l.times.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (l.times[mid]! <= ns) lo = mid + 1;
        else hi = mid;
      }
      return lo === 0 ? null : l.values[lo - 1]!;
    };
    const base = (k: number): number => count - 1 - k;
    // Bits are uPlot's stepped lines; the other lanes are buses drawn by drawBuses (no line).
    const series: (number | null)[][] = lanes.map((l, k) => {
      if (l.style !== 'bit') return xsNs.map(() => null);
      const out: (number | null)[] = [];
      let j = 0;
      let v: number | null = null;
      for (const x of xsNs) {
        while (j < l.times.length && l.times[j]! <= x) v = l.values[j++]!;
        out.push(v === null ? null : base(k) + (v === 0 ? 0.2 : 0.8));
      }
      return out;
    });
    const text = (k: number, v: number | null): string => {
      const l = lanes[k]!;
      if (v === null) return '–';
      if (l.style === 'enum') return l.labels?.[v] ?? String(v);
      if (l.style === 'vector') return v === 0 ? 'none' : `0x${v.toString(16).padStart(2, '0')}`;
      return String(v);
    };
    const color = (k: number): string => {
      const style = lanes[k]!.style;
      return style === 'bit'
        ? '#1a7f37'
        : style === 'count'
          ? '#8250df'
          : style === 'vector'
            ? '#bc4c00'
            : '#0969da';
    };

    let cursorNs = findings[0]?.atNs ?? 0;
    const markers = findings.map((f, i) => {
      // Labels of findings at one instant are stacked, not drawn over each other.
      const label = h(
        'span',
        { style: `top: ${16 * findings.filter((g, j) => j < i && g.atNs === f.atNs).length}px` },
        f.oracle,
      );
      const m = h('div', { class: 'finding-marker', 'data-at': String(f.atNs) }, label);
      m.title = `${f.oracle} at ${f.at}`;
      return m;
    });
    const cursorLine = h('div', { class: 'wave-cursor', id: 'wave-cursor' });

    const place = (u: UPlot): void => {
      const w = u.over.clientWidth;
      const put = (e: HTMLElement, ns: number): void => {
        const x = u.valToPos(ns / 1e6, 'x');
        e.style.left = `${x}px`;
        e.style.display = x >= -1 && x <= w + 1 ? '' : 'none';
        // A label near the right edge goes on the marker's left.
        e.classList.toggle('flip', x > w - 140);
      };
      markers.forEach((m, i) => {
        put(m, findings[i]!.atNs);
      });
      put(cursorLine, cursorNs);
      const min = u.scales.x!.min ?? 0;
      const max = u.scales.x!.max ?? endMs;
      range.textContent = `showing ${min.toFixed(6)} – ${max.toFixed(6)} ms of 0 – ${endMs.toFixed(6)} ms; cursor at ${ms(cursorNs)}`;
      range.dataset.min = String(min);
      range.dataset.max = String(max);
    };

    const fills: Record<string, string> = { enum: '#ddf4ff', count: '#fbefff', vector: '#fff1e5' };
    /**
     * Enums, counts and vectors as buses (a band per value, its value written in it, as
     * waveform viewers draw them); pulses as ticks on any lane.
     */
    const drawBuses = (u: UPlot): void => {
      const ctx = u.ctx;
      const { left, top, width: bw, height: bh } = u.bbox;
      const dpr = window.devicePixelRatio || 1;
      ctx.save();
      ctx.beginPath();
      ctx.rect(left, top, bw, bh);
      ctx.clip();
      ctx.font = `${11 * dpr}px ui-monospace, monospace`;
      ctx.textBaseline = 'middle';
      ctx.textAlign = 'left';
      ctx.lineWidth = 1.5 * dpr;
      lanes.forEach((l, k) => {
        const yTop = u.valToPos(base(k) + 0.8, 'y', true);
        const yBot = u.valToPos(base(k) + 0.2, 'y', true);
        const yMid = (yTop + yBot) / 2;
        ctx.strokeStyle = color(k);
        for (const t of l.pulses) {
          const x = u.valToPos(t / 1e6, 'x', true);
          ctx.beginPath();
          ctx.moveTo(x, u.valToPos(base(k) + 0.05, 'y', true));
          ctx.lineTo(x, u.valToPos(base(k) + 0.95, 'y', true));
          ctx.stroke();
        }
        if (l.style === 'bit') return;
        l.times.forEach((t, j) => {
          const xa = u.valToPos(t / 1e6, 'x', true);
          const xb = u.valToPos((l.times[j + 1] ?? p.endNs) / 1e6, 'x', true);
          if (xb < left || xa > left + bw) return;
          const v = l.values[j]!;
          const slant = Math.min(3 * dpr, (xb - xa) / 2);
          ctx.beginPath();
          ctx.moveTo(xa, yMid);
          ctx.lineTo(xa + slant, yTop);
          ctx.lineTo(xb - slant, yTop);
          ctx.lineTo(xb, yMid);
          ctx.lineTo(xb - slant, yBot);
          ctx.lineTo(xa + slant, yBot);
          ctx.closePath();
          ctx.fillStyle =
            v === null ? '#eaeef2' : v === 0 && l.style !== 'enum' ? '#ffffff' : fills[l.style]!;
          ctx.fill();
          ctx.stroke();
          const label = text(k, v);
          const x = Math.max(xa, left) + slant + 3 * dpr;
          if (Math.min(xb, left + bw) - x > ctx.measureText(label).width + 2 * dpr) {
            ctx.fillStyle = '#1b1f24';
            ctx.fillText(label, x, yMid);
          }
        });
      });
      ctx.restore();
    };

    const u = new uPlot(
      {
        width: width(box),
        height: 26 * count + 60,
        legend: { show: false },
        scales: { x: { time: false, range: (_u, min, max) => [min, max] }, y: { range: [0, count] } },
        cursor: { y: false, points: { show: false }, drag: { x: true, y: false } },
        series: [
          { label: 'host time (ms)' },
          ...lanes.map((l, k) => ({
            label: l.name,
            stroke: color(k),
            width: 1.5,
            paths: uPlot.paths.stepped!({ align: 1 }),
            points: { show: false },
          })),
        ],
        axes: [
          { label: 'host time (ms)' },
          {
            size: 250,
            splits: () => lanes.map((_, k) => base(k) + 0.5),
            values: (_u, splits) => splits.map((s) => lanes[count - 1 - Math.floor(s)]?.name ?? ''),
            grid: { show: false },
            ticks: { show: false },
          },
        ],
        hooks: { draw: [drawBuses], setScale: [(uu) => place(uu)], ready: [(uu) => place(uu)] },
      },
      [xsNs.map((ns) => ns / 1e6), ...series] as UPlot.AlignedData,
      box,
    );
    charts.push(u);
    for (const m of markers) u.over.append(m);
    u.over.append(cursorLine);

    const view = (min: number, max: number): void => {
      const span = Math.min(endMs, Math.max(1e-6, max - min));
      let lo = Math.max(0, min);
      if (lo + span > endMs) lo = endMs - span;
      u.setScale('x', { min: lo, max: lo + span });
    };
    const current = (): [number, number] => [u.scales.x!.min ?? 0, u.scales.x!.max ?? endMs];
    const zoom = (factor: number): void => {
      const [min, max] = current();
      const c = Math.min(max, Math.max(min, cursorNs / 1e6));
      view(c - (c - min) * factor, c + (max - c) * factor);
    };
    const pan = (fraction: number): void => {
      const [min, max] = current();
      view(min + (max - min) * fraction, max + (max - min) * fraction);
    };

    // The values at the cursor, as a table (what a screen reader or a test reads).
    const values = h('tbody', {});
    const moveCursor = (ns: number): void => {
      cursorNs = Math.max(0, Math.min(p.endNs, ns));
      const [min, max] = current();
      if (cursorNs / 1e6 < min || cursorNs / 1e6 > max) {
        const half = (max - min) / 2;
        view(cursorNs / 1e6 - half, cursorNs / 1e6 + half);
      }
      place(u);
      values.replaceChildren(
        ...lanes.map((l, k) =>
          h(
            'tr',
            { 'data-signal': l.name },
            h('td', { class: 'mono' }, l.name),
            h('td', {}, l.title),
            h(
              'td',
              { class: 'value mono' },
              text(k, valueAt(l, cursorNs)) +
                (l.pulses.includes(cursorNs) ? ' (pulsed at this instant)' : ''),
            ),
          ),
        ),
      );
      const at = document.getElementById('values-at');
      if (at) at.textContent = ms(cursorNs);
      for (const tr of Array.from(document.querySelectorAll<HTMLElement>('#timeline tr[data-at]')))
        tr.classList.toggle('at-cursor', Number(tr.dataset.at) === cursorNs);
    };
    const findingAfter = (dir: 1 | -1): PageFinding | undefined =>
      dir === 1
        ? (findings.find((f) => f.atNs > cursorNs) ?? findings[0])
        : ([...findings].reverse().find((f) => f.atNs < cursorNs) ?? findings.at(-1));
    const step = (dir: 1 | -1): void => {
      const next = dir === 1 ? xsNs.find((x) => x > cursorNs) : [...xsNs].reverse().find((x) => x < cursorNs);
      if (next !== undefined) moveCursor(next);
    };
    const goFinding = (dir: 1 | -1): void => {
      const f = findingAfter(dir);
      if (f) moveCursor(f.atNs);
    };

    controls.append(
      button('Zoom in (+)', () => zoom(0.5)),
      button('Zoom out (−)', () => zoom(2)),
      button('Whole run (0)', () => view(0, endMs)),
      ...(findings.length > 0
        ? [
            button('Previous finding (F)', () => goFinding(-1)),
            button('Next finding (f)', () => goFinding(1)),
          ]
        : []),
      range,
    );
    box.addEventListener('keydown', (e) => {
      const keys: Record<string, () => void> = {
        '+': () => zoom(0.5),
        '=': () => zoom(0.5),
        '-': () => zoom(2),
        '0': () => view(0, endMs),
        Home: () => view(0, endMs),
        f: () => goFinding(1),
        F: () => goFinding(-1),
        ArrowRight: () => (e.shiftKey ? pan(0.25) : step(1)),
        ArrowLeft: () => (e.shiftKey ? pan(-0.25) : step(-1)),
      };
      const action = keys[e.key];
      if (!action) return;
      e.preventDefault();
      action();
    });
    u.over.addEventListener('click', (e) => moveCursor(Math.round(u.posToVal(e.offsetX, 'x') * 1e6)));

    app.append(
      h('h2', {}, 'Values at the cursor (', h('span', { id: 'values-at' }), ')'),
      h('div', { class: 'timeline-wrap' }, table('wave-values', ['signal', 'meaning', 'value'], values)),
    );
    moveCursor(cursorNs);
    return moveCursor;
  }

  function renderTimeline(p: TracePage, moveCursor: (ns: number) => void): void {
    app.append(h('h2', {}, 'Timeline'));
    if (p.windowed) app.append(h('p', { class: 'help' }, `Windowed: ${p.windowed}.`));
    const events = p.rows.filter((r): r is PageRow => typeof r !== 'number');
    const controls = h('div', { class: 'controls', role: 'search' });
    app.append(controls);
    const choices = (id: string, label: string, options: [string, string][]): HTMLSelectElement => {
      const s = h(
        'select',
        { id },
        ...[['', 'all'] as [string, string], ...options].map(([v, t]) => h('option', { value: v }, t)),
      ) as HTMLSelectElement;
      controls.append(h('label', {}, `${label} `, s));
      return s;
    };
    const unique = (xs: string[]): string[] => [...new Set(xs)].sort();
    const vm = choices(
      'filter-vm',
      'VM',
      unique(events.map((r) => String(r[2]))).map((v) => [v, v === '-1' ? 'none' : `vm${v}`]),
    );
    const device = choices(
      'filter-device',
      'device',
      unique(events.map((r) => r[3])).map((d) => [d, d]),
    );
    const kind = choices(
      'filter-kind',
      'event kind',
      unique(events.map((r) => r[4])).map((k) => [k, k]),
    );
    const search = h('input', {
      id: 'filter-search',
      type: 'search',
      placeholder: 'search the events',
    }) as HTMLInputElement;
    controls.append(h('label', {}, 'search ', search));
    const shown = h('span', { id: 'timeline-count', 'aria-live': 'polite' });
    controls.append(shown);

    const body = h('tbody', {});
    app.append(
      h(
        'div',
        { class: 'timeline-wrap' },
        table('timeline', ['#', 'host time', 'vm', 'target', 'kind', 'event'], body),
      ),
    );
    const findings = [...p.findings].sort((x, y) => x.atNs - y.atNs);
    const findingRow = (f: PageFinding): HTMLElement =>
      h(
        'tr',
        { class: 'finding-row' },
        h('td', {}, '▶'),
        h('td', { class: 'mono' }, f.at),
        h('td', {}, ''),
        h('td', {}, f.device ?? '–'),
        h('td', {}, 'FINDING'),
        h('td', {}, `${f.oracle}: ${f.message}`),
      );
    const LIMIT = 5000;
    const render = (): void => {
      const q = search.value.trim().toLowerCase();
      const filtered = vm.value !== '' || device.value !== '' || kind.value !== '' || q !== '';
      const out: HTMLElement[] = [];
      let f = 0;
      let matched = 0;
      for (const r of p.rows) {
        if (typeof r === 'number') {
          if (!filtered) out.push(h('tr', { class: 'gap' }, h('td', { colspan: '6' }, `… ${r} events …`)));
          continue;
        }
        while (f < findings.length && findings[f]!.atNs < r[1]) out.push(findingRow(findings[f++]!));
        const ok =
          (vm.value === '' || String(r[2]) === vm.value) &&
          (device.value === '' || r[3] === device.value) &&
          (kind.value === '' || r[4] === kind.value) &&
          (q === '' || r.join(' ').toLowerCase().includes(q));
        if (!ok) continue;
        matched++;
        if (matched > LIMIT) continue;
        const tr = h(
          'tr',
          { 'data-at': String(r[1]), 'data-kind': r[4] },
          h('td', { class: 'mono' }, `#${r[0]}`),
          h('td', { class: 'mono' }, ms(r[1])),
          h('td', {}, r[2] < 0 ? '–' : `vm${r[2]}`),
          h('td', { class: 'mono' }, r[3]),
          h('td', { class: 'mono' }, r[4]),
          h('td', {}, r[5]),
        );
        tr.addEventListener('click', () => moveCursor(r[1]));
        out.push(tr);
      }
      while (f < findings.length) out.push(findingRow(findings[f++]!));
      body.replaceChildren(...out);
      shown.textContent = `${Math.min(matched, LIMIT)} of ${events.length} events shown${matched > LIMIT ? ` (the first ${LIMIT} of ${matched} matches: narrow the filters)` : ''}`;
    };
    for (const control of [vm, device, kind]) control.addEventListener('change', render);
    search.addEventListener('input', render);
    render();
  }

  window.addEventListener('hashchange', route);
  route();
}
