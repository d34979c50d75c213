/**
 * A loss-curve plot as a standalone SVG, drawn from a training log: training
 * loss per step (thin line), validation loss where measured (dots joined),
 * log-free linear axes with round tick values. No library: a few <path>s.
 */
import type { LogEntry } from './trainer.js';

export interface PlotOptions {
  title: string;
  width?: number;
  height?: number;
  /** A horizontal reference line, e.g. a target loss. */
  reference?: { value: number; label: string };
}

function niceStep(span: number, ticks: number): number {
  const raw = span / ticks;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / mag;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function lossCurveSvg(log: readonly LogEntry[], opts: PlotOptions): string {
  const W = opts.width ?? 800;
  const H = opts.height ?? 480;
  const m = { l: 64, r: 24, t: 40, b: 48 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const steps = log.map((e) => e.step);
  const values = log.flatMap((e) => (e.valLoss !== undefined ? [e.loss, e.valLoss] : [e.loss])).filter(Number.isFinite);
  if (opts.reference) values.push(opts.reference.value);
  const x0 = 0;
  const x1 = Math.max(1, ...steps);
  // the first steps' loss (ln vocab) would flatten the rest: clip the axis at the 2nd percentile of the top
  const sorted = [...values].sort((a, b) => a - b);
  const lo = sorted.length ? sorted[0] : 0;
  const hi = sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.98))] : 1;
  const ys = niceStep(Math.max(hi - lo, 1e-3), 6);
  const y0 = Math.floor(lo / ys) * ys;
  const y1 = Math.max(Math.ceil(hi / ys) * ys, y0 + ys);
  const px = (s: number) => m.l + ((s - x0) / (x1 - x0)) * pw;
  const py = (v: number) => m.t + ph - ((Math.min(Math.max(v, y0), y1) - y0) / (y1 - y0)) * ph;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(opts.title)}</text>`);
  for (let v = y0; v <= y1 + ys / 2; v += ys) {
    const y = py(v).toFixed(1);
    out.push(`<line x1="${m.l}" y1="${y}" x2="${m.l + pw}" y2="${y}" stroke="#ddd"/>`);
    out.push(`<text x="${m.l - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${Number(v.toPrecision(6))}</text>`);
  }
  const xs = niceStep(x1 - x0, 8);
  for (let s = 0; s <= x1; s += xs) {
    const x = px(s).toFixed(1);
    out.push(`<line x1="${x}" y1="${m.t}" x2="${x}" y2="${m.t + ph}" stroke="#eee"/>`);
    out.push(`<text x="${x}" y="${m.t + ph + 16}" text-anchor="middle">${s}</text>`);
  }
  out.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${m.l + pw / 2}" y="${H - 10}" text-anchor="middle">step</text>`);
  out.push(`<text transform="translate(16 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">cross-entropy (nats/token)</text>`);
  if (opts.reference) {
    const y = py(opts.reference.value).toFixed(1);
    out.push(`<line x1="${m.l}" y1="${y}" x2="${m.l + pw}" y2="${y}" stroke="#2a2" stroke-dasharray="6 4"/>`);
    out.push(`<text x="${m.l + pw - 4}" y="${Number(y) - 5}" text-anchor="end" fill="#2a2">${esc(opts.reference.label)}</text>`);
  }
  const line = (pts: [number, number][]) => pts.map(([s, v], i) => `${i ? 'L' : 'M'}${px(s).toFixed(1)} ${py(v).toFixed(1)}`).join('');
  const train = log.filter((e) => Number.isFinite(e.loss)).map((e) => [e.step, e.loss] as [number, number]);
  if (train.length) out.push(`<path d="${line(train)}" fill="none" stroke="#4a7fd4" stroke-width="1"/>`);
  const val = log.filter((e) => e.valLoss !== undefined && Number.isFinite(e.valLoss)).map((e) => [e.step, e.valLoss as number] as [number, number]);
  if (val.length) {
    out.push(`<path d="${line(val)}" fill="none" stroke="#d4503a" stroke-width="2"/>`);
    for (const [s, v] of val) out.push(`<circle cx="${px(s).toFixed(1)}" cy="${py(v).toFixed(1)}" r="3" fill="#d4503a"/>`);
  }
  const lx = m.l + 12;
  out.push(`<line x1="${lx}" y1="${m.t + 14}" x2="${lx + 24}" y2="${m.t + 14}" stroke="#4a7fd4"/><text x="${lx + 30}" y="${m.t + 18}">training loss</text>`);
  out.push(`<line x1="${lx}" y1="${m.t + 32}" x2="${lx + 24}" y2="${m.t + 32}" stroke="#d4503a" stroke-width="2"/><text x="${lx + 30}" y="${m.t + 36}">validation loss (test split)</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** One line of a seriesPlotSvg: points joined in the order given, each marked. */
export interface PlotSeries {
  label: string;
  points: readonly { x: number; y: number }[];
  dashed?: boolean;
}

const PALETTE = ['#d4503a', '#4a7fd4', '#2a9d4a', '#b07a1a', '#8a4ac0', '#1aa0a0', '#c04a8a', '#555555'];

/** Tick values of a log axis from lo to hi: 1, 2, 5 × 10^k (every power of ten when the span is wide). */
function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  const wide = hi / lo > 1000;
  for (let k = Math.floor(Math.log10(lo)); k <= Math.ceil(Math.log10(hi)); k++) {
    for (const f of wide ? [1] : [1, 2, 5]) {
      const v = f * Math.pow(10, k);
      if (v >= lo * 0.999 && v <= hi * 1.001) ticks.push(v);
    }
  }
  return ticks;
}

/**
 * Several labelled lines of (x, y) points on shared axes (x linear with
 * round ticks; y linear or, with `logY`, logarithmic), with a legend: e.g.
 * perplexity against blob size for each pruning kind (lmflash prune --sweep).
 */
export function seriesPlotSvg(series: readonly PlotSeries[], opts: PlotOptions & { xLabel: string; yLabel: string; logY?: boolean }): string {
  const W = opts.width ?? 800;
  const H = opts.height ?? 480;
  const m = { l: 64, r: 24, t: 40, b: 48 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const pts = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!opts.logY || p.y > 0));
  const xsAll = pts.map((p) => p.x);
  const ysAll = pts.map((p) => p.y);
  if (opts.reference) ysAll.push(opts.reference.value);
  const xmin = xsAll.length ? Math.min(...xsAll) : 0;
  const xmax = xsAll.length ? Math.max(...xsAll) : 1;
  const xs = niceStep(Math.max(xmax - xmin, 1e-9), 8);
  const x0 = Math.floor(xmin / xs) * xs;
  const x1 = Math.max(Math.ceil(xmax / xs) * xs, x0 + xs);
  let y0: number;
  let y1: number;
  let yTicks: number[];
  const ymin = ysAll.length ? Math.min(...ysAll) : 1;
  const ymax = ysAll.length ? Math.max(...ysAll) : 2;
  if (opts.logY) {
    y0 = Math.pow(10, Math.floor(Math.log10(ymin) * 10) / 10);
    y1 = Math.max(Math.pow(10, Math.ceil(Math.log10(ymax) * 10) / 10), y0 * 1.5);
    yTicks = logTicks(y0, y1);
  } else {
    const ys = niceStep(Math.max(ymax - ymin, 1e-9), 6);
    y0 = Math.floor(ymin / ys) * ys;
    y1 = Math.max(Math.ceil(ymax / ys) * ys, y0 + ys);
    yTicks = [];
    for (let v = y0; v <= y1 + ys / 2; v += ys) yTicks.push(v);
  }
  const px = (x: number) => m.l + ((x - x0) / (x1 - x0)) * pw;
  const py = (v: number) => (opts.logY ? m.t + ph - (Math.log(v / y0) / Math.log(y1 / y0)) * ph : m.t + ph - ((v - y0) / (y1 - y0)) * ph);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(opts.title)}</text>`);
  for (const v of yTicks) {
    const y = py(v).toFixed(1);
    out.push(`<line x1="${m.l}" y1="${y}" x2="${m.l + pw}" y2="${y}" stroke="#ddd"/>`);
    out.push(`<text x="${m.l - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${Number(v.toPrecision(6))}</text>`);
  }
  for (let x = x0; x <= x1 + xs / 2; x += xs) {
    const sx = px(x).toFixed(1);
    out.push(`<line x1="${sx}" y1="${m.t}" x2="${sx}" y2="${m.t + ph}" stroke="#eee"/>`);
    out.push(`<text x="${sx}" y="${m.t + ph + 16}" text-anchor="middle">${Number(x.toPrecision(6))}</text>`);
  }
  out.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${m.l + pw / 2}" y="${H - 10}" text-anchor="middle">${esc(opts.xLabel)}</text>`);
  out.push(`<text transform="translate(16 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">${esc(opts.yLabel)}</text>`);
  if (opts.reference) {
    const y = py(opts.reference.value).toFixed(1);
    out.push(`<line x1="${m.l}" y1="${y}" x2="${m.l + pw}" y2="${y}" stroke="#2a2" stroke-dasharray="6 4"/>`);
    out.push(`<text x="${m.l + pw - 4}" y="${Number(y) - 5}" text-anchor="end" fill="#2a2">${esc(opts.reference.label)}</text>`);
  }
  series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    const ok = s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!opts.logY || p.y > 0));
    if (ok.length === 0) return;
    const d = ok.map((p, k) => `${k ? 'L' : 'M'}${px(p.x).toFixed(1)} ${py(p.y).toFixed(1)}`).join('');
    out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    for (const p of ok) out.push(`<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="3" fill="${color}"/>`);
    // legend in the top right corner: with perplexity against size, the big-and-bad corner stays empty
    const ly = m.t + 14 + 18 * i;
    const lx = m.l + pw - 12 - 36 - 6.5 * Math.max(...series.map((t) => t.label.length));
    out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 24}" y2="${ly}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/><text x="${lx + 30}" y="${ly + 4}">${esc(s.label)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
