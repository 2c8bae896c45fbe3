import type { Hotspot } from '../support/cpu-profile.js';
import { formatInt, summarise, type Summary } from '../support/stats.js';
import type { Variant } from './settings.js';

export const TARGET_ROWS_PER_SEC = 30_000;
export const TARGET_RAW_RATIO = 0.5;

/** One measurement, as written to the JSON. */
export interface RunRecord {
  kind: 'capture' | 'raw';
  /** The capture variant; null for the raw reader. */
  variant: string | null;
  round: number;
  warmup: boolean;
  rows: number;
  elapsedMs: number;
  /** Capture only: the part of `elapsedMs` spent in `Daemon.start()`. */
  startMs: number | null;
  rowsPerSec: number;
  /** Rows per CPU-second of the bench process: throughput per core, less sensitive to busy neighbours. */
  rowsPerCpuSec: number;
  /** Capture only: messages that reached the topic. */
  kafkaMessages: number | null;
  /** CPU ms over the measured interval: `bench` (this process), `kafka`, `mariadb`, `other`. */
  cpuMs: Record<string, number>;
}

export interface ProfileSummary {
  file: string;
  owners: Hotspot[];
  functions: Hotspot[];
}

/** Share of one core used while the runs lasted, in %. */
export interface CpuShare {
  bench: number;
  kafka: number;
  mariadb: number;
  other: number;
}

export interface BenchSummary {
  unit: 'rows/s';
  capture: Record<string, Summary>;
  raw: Summary;
  /** Rows per CPU-second of the bench process (the daemon, or the bare reader). */
  perCpuSecond: { capture: Record<string, Summary>; raw: Summary };
  cpuPercent: { capture: Record<string, CpuShare>; raw: CpuShare };
  /** The variant the ratio and the targets use: the default codec when measured. */
  primaryVariant: string;
  captureOverRaw: number;
  gzipOverNone: number | null;
  targets: {
    captureRowsPerSec: { target: number; actual: number; pass: boolean };
    captureOverRaw: { target: number; actual: number; pass: boolean };
  };
}

function cpuShare(runs: readonly RunRecord[]): CpuShare {
  const elapsed = Math.max(
    1,
    runs.reduce((t, r) => t + r.elapsedMs, 0),
  );
  const share = (name: string): number =>
    Math.round((runs.reduce((t, r) => t + (r.cpuMs[name] ?? 0), 0) / elapsed) * 100);
  return {
    bench: share('bench'),
    kafka: share('kafka'),
    mariadb: share('mariadb'),
    other: share('other'),
  };
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

export function summariseRuns(
  records: readonly RunRecord[],
  variants: readonly Variant[],
  primaryVariant: string,
): BenchSummary {
  const measured = records.filter((r) => !r.warmup);
  const of = (kind: RunRecord['kind'], variant: string | null): RunRecord[] =>
    measured.filter((r) => r.kind === kind && r.variant === variant);
  const capture: Record<string, Summary> = {};
  const capturePerCpu: Record<string, Summary> = {};
  const captureCpu: Record<string, CpuShare> = {};
  for (const { name } of variants) {
    const runs = of('capture', name);
    capture[name] = summarise(runs.map((r) => r.rowsPerSec));
    capturePerCpu[name] = summarise(runs.map((r) => r.rowsPerCpuSec));
    captureCpu[name] = cpuShare(runs);
  }
  const rawRuns = of('raw', null);
  const raw = summarise(rawRuns.map((r) => r.rowsPerSec));
  const primaryRate = capture[primaryVariant]?.median ?? Number.NaN;
  const ratio = primaryRate / raw.median;
  const gzip = capture.gzip;
  const none = capture.none;
  return {
    unit: 'rows/s',
    capture,
    raw,
    perCpuSecond: { capture: capturePerCpu, raw: summarise(rawRuns.map((r) => r.rowsPerCpuSec)) },
    cpuPercent: { capture: captureCpu, raw: cpuShare(rawRuns) },
    primaryVariant,
    captureOverRaw: round3(ratio),
    gzipOverNone:
      gzip !== undefined && none !== undefined ? round3(gzip.median / none.median) : null,
    targets: {
      captureRowsPerSec: {
        target: TARGET_ROWS_PER_SEC,
        actual: Math.round(primaryRate),
        pass: primaryRate >= TARGET_ROWS_PER_SEC,
      },
      captureOverRaw: {
        target: TARGET_RAW_RATIO,
        actual: round3(ratio),
        pass: ratio >= TARGET_RAW_RATIO,
      },
    },
  };
}

/** The human-readable table, ratios, targets and profile hotspots. */
export function formatReport(
  summary: BenchSummary,
  headline: string,
  variants: readonly Variant[],
  profiles: Readonly<Record<string, ProfileSummary>>,
): string {
  const header = [
    'measurement',
    'rows/s (median)',
    'min',
    'max',
    'CPU% bench',
    'kafka',
    'mariadb',
    'other',
    'rows/CPU-s',
  ];
  const row = (label: string, s: Summary, cpu: CpuShare, perCpu: Summary): string[] => [
    label,
    formatInt(s.median),
    formatInt(s.min),
    formatInt(s.max),
    `${cpu.bench}`,
    `${cpu.kafka}`,
    `${cpu.mariadb}`,
    `${cpu.other}`,
    formatInt(perCpu.median),
  ];
  const table: string[][] = [header];
  for (const { name, captureYaml } of variants) {
    table.push(
      row(
        `capture ${name} {${captureYaml}}`,
        summary.capture[name] as Summary,
        summary.cpuPercent.capture[name] as CpuShare,
        summary.perCpuSecond.capture[name] as Summary,
      ),
    );
  }
  table.push(row('raw zongji read', summary.raw, summary.cpuPercent.raw, summary.perCpuSecond.raw));
  const widths = header.map((_, i) => Math.max(...table.map((cells) => (cells[i] ?? '').length)));
  const lines = ['', headline, ''];
  for (const cells of table)
    lines.push(
      cells
        .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
        .join('  '),
    );
  lines.push('');
  lines.push(
    'CPU% = share of one core while the runs lasted (bench = the daemon or the bare reader; other = the rest of the machine).',
  );
  lines.push(
    `capture ${summary.primaryVariant} / raw read: ${(summary.captureOverRaw * 100).toFixed(1)} %`,
  );
  if (summary.gzipOverNone !== null)
    lines.push(`capture gzip / none: ${(summary.gzipOverNone * 100).toFixed(1)} %`);
  const { captureRowsPerSec, captureOverRaw } = summary.targets;
  lines.push(
    `target capture ≥ ${formatInt(captureRowsPerSec.target)} rows/s: ${captureRowsPerSec.pass ? 'PASS' : 'MISS'}; ` +
      `target capture ≥ ${captureOverRaw.target * 100} % of raw: ${captureOverRaw.pass ? 'PASS' : 'MISS'}`,
  );
  for (const [name, p] of Object.entries(profiles)) {
    lines.push('', `CPU profile, capture ${name}: ${p.file}`, '  self time by owner:');
    for (const h of p.owners.slice(0, 10))
      lines.push(`    ${`${h.selfPercent.toFixed(1)} %`.padStart(7)}  ${h.name}`);
    lines.push('  top functions:');
    for (const h of p.functions.slice(0, 15))
      lines.push(`    ${`${h.selfPercent.toFixed(1)} %`.padStart(7)}  ${h.name}`);
  }
  return lines.join('\n');
}
