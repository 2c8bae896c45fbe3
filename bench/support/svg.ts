/**
 * Minimal SVG line charts for the bench report: a few series over a shared x
 * axis, with ticks, labels and a legend. Hand-written because the report
 * needs nothing more and a plotting dependency would not earn its place.
 */

export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
  /** Horizontal reference lines, e.g. a target. */
  marks?: readonly { y: number; label: string }[];
  width?: number;
  height?: number;
}

const COLORS = [
  '#1f77b4',
  '#d62728',
  '#2ca02c',
  '#ff7f0e',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#17becf',
  '#7f7f7f',
];

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** About five round tick values covering [0, max]. */
function ticks(max: number): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / 5;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = 0; v <= max + step * 0.001; v += step) out.push(Math.round(v * 1e6) / 1e6);
  if ((out[out.length - 1] ?? 0) < max) out.push(Math.round(out.length * step * 1e6) / 1e6);
  return out;
}

function fmt(v: number): string {
  if (Math.abs(v) >= 10_000) return `${Math.round(v / 1000)}k`;
  if (Math.abs(v) >= 1000) return `${Math.round(v / 100) / 10}k`;
  return String(Math.round(v * 100) / 100);
}

export function lineChart(options: ChartOptions): string {
  const width = options.width ?? 760;
  const height = options.height ?? 340;
  const left = 64;
  const right = 170;
  const top = 36;
  const bottom = 44;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const all = options.series.flatMap((s) => s.points);
  const xMax = Math.max(1e-9, ...all.map((p) => p[0]));
  const yMax = Math.max(1e-9, ...all.map((p) => p[1]), ...(options.marks ?? []).map((m) => m.y));
  const xTicks = ticks(xMax);
  const yTicks = ticks(yMax);
  const xTop = xTicks[xTicks.length - 1] as number;
  const yTop = yTicks[yTicks.length - 1] as number;
  const x = (v: number): number => left + (v / xTop) * plotW;
  const y = (v: number): number => top + plotH - (v / yTop) * plotH;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2 - right / 2}" y="20" text-anchor="middle" font-size="14">${esc(options.title)}</text>`,
  ];
  for (const t of yTicks)
    parts.push(
      `<line x1="${left}" x2="${left + plotW}" y1="${y(t)}" y2="${y(t)}" stroke="#e5e5e5"/>`,
      `<text x="${left - 6}" y="${y(t) + 4}" text-anchor="end">${fmt(t)}</text>`,
    );
  for (const t of xTicks)
    parts.push(
      `<line x1="${x(t)}" x2="${x(t)}" y1="${top + plotH}" y2="${top + plotH + 4}" stroke="#333"/>`,
      `<text x="${x(t)}" y="${top + plotH + 16}" text-anchor="middle">${fmt(t)}</text>`,
    );
  parts.push(
    `<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`,
    `<text x="${left + plotW / 2}" y="${height - 8}" text-anchor="middle">${esc(options.xLabel)}</text>`,
    `<text transform="translate(14 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(options.yLabel)}</text>`,
  );
  for (const mark of options.marks ?? [])
    parts.push(
      `<line x1="${left}" x2="${left + plotW}" y1="${y(mark.y)}" y2="${y(mark.y)}" stroke="#000" stroke-dasharray="5 4"/>`,
      `<text x="${left + plotW - 4}" y="${y(mark.y) - 4}" text-anchor="end">${esc(mark.label)}</text>`,
    );
  options.series.forEach((series, i) => {
    const color = COLORS[i % COLORS.length] as string;
    if (series.points.length > 0) {
      const d = series.points
        .map((p, j) => `${j === 0 ? 'M' : 'L'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`)
        .join(' ');
      parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.6"/>`);
    }
    const ly = top + 8 + i * 16;
    parts.push(
      `<line x1="${left + plotW + 12}" x2="${left + plotW + 30}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"/>`,
      `<text x="${left + plotW + 35}" y="${ly + 4}">${esc(series.name)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

export interface Bar {
  label: string;
  value: number;
}

/** Horizontal bars, one per label (e.g. rows/s of each contender). */
export function barChart(options: {
  title: string;
  unit: string;
  bars: readonly Bar[];
  width?: number;
}): string {
  const width = options.width ?? 760;
  const rowH = 26;
  const left = 230;
  const top = 36;
  const height = top + options.bars.length * rowH + 20;
  const max = Math.max(1e-9, ...options.bars.map((b) => b.value));
  const plotW = width - left - 110;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14">${esc(options.title)}</text>`,
  ];
  options.bars.forEach((bar, i) => {
    const y = top + i * rowH;
    const w = (bar.value / max) * plotW;
    parts.push(
      `<text x="${left - 8}" y="${y + 16}" text-anchor="end">${esc(bar.label)}</text>`,
      `<rect x="${left}" y="${y + 4}" width="${w.toFixed(1)}" height="${rowH - 8}" fill="${COLORS[i % COLORS.length] as string}"/>`,
      `<text x="${left + w + 6}" y="${y + 16}">${esc(fmt(bar.value))} ${esc(options.unit)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
