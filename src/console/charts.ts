import { scaleBand, scaleLinear, scaleUtc } from 'd3-scale';
import { html, type SafeHtml } from './html.ts';

/**
 * Charts drawn on the server as SVG: no script, nothing to load, readable without JavaScript
 * and under the console's strict Content-Security-Policy (presentation attributes and
 * classes only, no inline styles). Each chart comes with its numbers as a table, which is
 * also what a screen reader is pointed to. d3-scale picks the ticks.
 */

const WIDTH = 640;
const HEIGHT = 220;
const MARGIN = { top: 12, right: 12, bottom: 36, left: 48 };

export interface Series {
  name: string;
  /** CSS class giving the fill (see console.css): `s-allowed`, `s-denied`, `s-other`. */
  className: string;
}

export interface TimeBucket {
  start: Date;
  values: readonly number[];
}

let chartCounter = 0;
const nextId = () => `chart-${++chartCounter}`;

const formatCount = (n: number) => n.toLocaleString('en-US');

/** Time label for a tick: hours and minutes within a day, the date past it. */
function timeLabel(at: Date, spanMs: number): string {
  const iso = at.toISOString();
  return spanMs <= 36 * 3600_000 ? `${iso.slice(11, 16)}` : `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;
}

/** Stacked bars over time, one bar per bucket of `bucketMs`, with its table. */
export function timeChart(input: {
  title: string;
  series: readonly Series[];
  buckets: readonly TimeBucket[];
  from: Date;
  to: Date;
  bucketMs: number;
}): SafeHtml {
  const id = nextId();
  const { series, buckets } = input;
  const x = scaleUtc()
    .domain([input.from, input.to])
    .range([MARGIN.left, WIDTH - MARGIN.right]);
  const totals = buckets.map((b) => b.values.reduce((s, v) => s + v, 0));
  const y = scaleLinear()
    .domain([0, Math.max(1, ...totals)])
    .nice()
    .range([HEIGHT - MARGIN.bottom, MARGIN.top]);
  const span = input.to.getTime() - input.from.getTime();
  const barWidth = Math.max(1, x(new Date(input.from.getTime() + input.bucketMs)) - x(input.from) - 1);
  const bars = buckets.flatMap((b) => {
    let base = 0;
    return b.values.map((v, i) => {
      if (v === 0) return html``;
      const top = y(base + v);
      const height = y(base) - top;
      base += v;
      return html`<rect class="${series[i]?.className ?? ''}" x="${x(b.start).toFixed(1)}" y="${top.toFixed(1)}" width="${barWidth.toFixed(1)}" height="${height.toFixed(1)}"><title>${timeLabel(b.start, span)} ${series[i]?.name ?? ''}: ${formatCount(v)}</title></rect>`;
    });
  });
  // A tick whose label would run past the plot's right edge is left out.
  const xTicks = x
    .ticks(6)
    .filter((t) => x(t) <= WIDTH - MARGIN.right - 16)
    .map(
      (t) =>
        html`<g transform="translate(${x(t).toFixed(1)},${HEIGHT - MARGIN.bottom})"><line y2="5"></line><text y="18" text-anchor="middle">${timeLabel(t, span)}</text></g>`,
    );
  return chartFrame({
    id,
    title: input.title,
    series,
    body: html`${yAxis(y)}<g class="axis">${xTicks}<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${HEIGHT - MARGIN.bottom}" y2="${HEIGHT - MARGIN.bottom}"></line></g><g>${bars}</g>`,
    table: html`<table><caption>${input.title}</caption><thead><tr><th scope="col">from (UTC)</th>${series.map((s) => html`<th scope="col">${s.name}</th>`)}</tr></thead><tbody>${
      buckets.length === 0
        ? html`<tr><td colspan="${series.length + 1}">nothing in this period</td></tr>`
        : buckets.map(
            (b) =>
              html`<tr><th scope="row">${b.start.toISOString().slice(0, 16).replace('T', ' ')}</th>${b.values.map((v) => html`<td>${formatCount(v)}</td>`)}</tr>`,
          )
    }</tbody></table>`,
  });
}

/** Horizontal-axis categories (resources, paths), one bar each, with its table. */
export function barChart(input: {
  title: string;
  unit: string;
  bars: readonly { label: string; value: number }[];
}): SafeHtml {
  const id = nextId();
  const x = scaleBand()
    .domain(input.bars.map((b) => b.label))
    .range([MARGIN.left, WIDTH - MARGIN.right])
    .padding(0.2);
  const y = scaleLinear()
    .domain([0, Math.max(1, ...input.bars.map((b) => b.value))])
    .nice()
    .range([HEIGHT - MARGIN.bottom, MARGIN.top]);
  // A lone bar stays a bar, not a slab across the chart.
  const width = Math.min(x.bandwidth(), 72);
  const left = (label: string) => (x(label) ?? 0) + (x.bandwidth() - width) / 2;
  const bars = input.bars.map(
    (b) =>
      html`<rect class="s-allowed" x="${left(b.label).toFixed(1)}" y="${y(b.value).toFixed(1)}" width="${width.toFixed(1)}" height="${(y(0) - y(b.value)).toFixed(1)}"><title>${b.label}: ${formatCount(b.value)} ${input.unit}</title></rect><text class="bar-label" x="${((x(b.label) ?? 0) + x.bandwidth() / 2).toFixed(1)}" y="${HEIGHT - MARGIN.bottom + 18}" text-anchor="middle">${b.label.length > 18 ? `${b.label.slice(0, 17)}…` : b.label}</text>`,
  );
  return chartFrame({
    id,
    title: input.title,
    series: [],
    body: html`${yAxis(y)}<g class="axis"><line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${HEIGHT - MARGIN.bottom}" y2="${HEIGHT - MARGIN.bottom}"></line></g><g>${bars}</g>`,
    table: html`<table><caption>${input.title}</caption><thead><tr><th scope="col">name</th><th scope="col">${input.unit}</th></tr></thead><tbody>${
      input.bars.length === 0
        ? html`<tr><td colspan="2">none</td></tr>`
        : input.bars.map(
            (b) => html`<tr><th scope="row">${b.label}</th><td>${formatCount(b.value)}</td></tr>`,
          )
    }</tbody></table>`,
  });
}

function yAxis(y: ReturnType<typeof scaleLinear<number, number>>): SafeHtml {
  const ticks = y.ticks(5).filter((t) => Number.isInteger(t));
  return html`<g class="axis">${ticks.map(
    (t) =>
      html`<g transform="translate(${MARGIN.left},${y(t).toFixed(1)})"><line x2="-5"></line><line class="grid" x2="${WIDTH - MARGIN.left - MARGIN.right}"></line><text x="-8" dy="0.32em" text-anchor="end">${formatCount(t)}</text></g>`,
  )}</g>`;
}

function chartFrame(input: {
  id: string;
  title: string;
  series: readonly Series[];
  body: SafeHtml;
  table: SafeHtml;
}): SafeHtml {
  const legend =
    input.series.length > 1
      ? html`<ul class="legend">${input.series.map((s) => html`<li><svg width="12" height="12" aria-hidden="true"><rect class="${s.className}" width="12" height="12"></rect></svg> ${s.name}</li>`)}</ul>`
      : html``;
  return html`<figure class="chart" aria-labelledby="${input.id}-title">
<figcaption id="${input.id}-title">${input.title}</figcaption>${legend}
<svg viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-labelledby="${input.id}-title" aria-describedby="${input.id}-table" class="chart-svg">${input.body}</svg>
<details id="${input.id}-table"><summary>The numbers (table)</summary>${input.table}</details>
</figure>`;
}
