/**
 * The state of every region pair, read from every region daemon's
 * `/metrics`: what `cdc-replicator status` prints and what `demo` refreshes
 * every second. Rates come from two scrapes a short interval apart.
 */
import { setTimeout as sleep } from 'node:timers/promises';

import { scrape, sumOf, valueOf, type Exposition, type Sample } from './prometheus-text.js';

export interface RegionEndpoint {
  readonly region: string;
  /** Base URL of the daemon's metrics server, e.g. `http://127.0.0.1:9464`. */
  readonly url: string;
}

export type PairHealth = 'ok' | 'lagging' | 'unreachable' | 'no-data';

export interface PairStatus {
  readonly source: string;
  readonly target: string;
  readonly health: PairHealth;
  /** End-to-end lag reported by the target daemon; undefined when unknown. */
  readonly lagSeconds: number | undefined;
  /** Changes from the source applied in the target per second (all outcomes). */
  readonly eventsPerSecond: number | undefined;
  /** Changes that were concurrent writes (won or lost) per second. */
  readonly conflictsPerSecond: number | undefined;
  /** Dead letters of the target's apply stage plus the source's capture stage, since they started. */
  readonly deadLetters: number | undefined;
  /** The target's anomaly detector flags this pair. */
  readonly anomaly: boolean;
  /** The target's counters at the (second) scrape, for callers that compute their own rates. */
  readonly appliedTotal?: number;
  readonly conflictsTotal?: number;
  /** Why the pair is not ok, in words. */
  readonly detail?: string;
}

export interface StatusReport {
  readonly takenAt: string;
  readonly lagThresholdSeconds: number;
  readonly regions: readonly { region: string; url: string; reachable: boolean; error?: string }[];
  readonly pairs: readonly PairStatus[];
  /** True when every pair is ok. */
  readonly healthy: boolean;
}

export type Scrape =
  { ok: true; exposition: Exposition; atMs: number } | { ok: false; error: string };

async function scrapeAll(endpoints: readonly RegionEndpoint[]): Promise<Map<string, Scrape>> {
  const results = await Promise.all(
    endpoints.map(async (endpoint): Promise<[string, Scrape]> => {
      try {
        const exposition = await scrape(endpoint.url);
        return [endpoint.region, { ok: true, exposition, atMs: Date.now() }];
      } catch (err) {
        return [endpoint.region, { ok: false, error: (err as Error).message }];
      }
    }),
  );
  return new Map(results);
}

/** Scrapes every daemon twice, `intervalMs` apart, and builds the report. */
export async function collectStatus(
  endpoints: readonly RegionEndpoint[],
  options: { intervalMs: number; lagThresholdSeconds: number },
): Promise<StatusReport> {
  const first = await scrapeAll(endpoints);
  if (options.intervalMs > 0) await sleep(options.intervalMs);
  const second = await scrapeAll(endpoints);
  return buildStatus(endpoints, first, second, options.lagThresholdSeconds);
}

/** One round of scrapes: lags and counters, no rates. */
export async function snapshotStatus(
  endpoints: readonly RegionEndpoint[],
  lagThresholdSeconds: number,
): Promise<StatusReport> {
  return buildStatus(endpoints, new Map(), await scrapeAll(endpoints), lagThresholdSeconds);
}

/** The report from two rounds of scrapes (pure, for tests). */
export function buildStatus(
  endpoints: readonly RegionEndpoint[],
  first: ReadonlyMap<string, Scrape>,
  second: ReadonlyMap<string, Scrape>,
  lagThresholdSeconds: number,
): StatusReport {
  const pairs: PairStatus[] = [];
  for (const target of endpoints) {
    for (const source of endpoints) {
      if (source.region === target.region) continue;
      pairs.push(pairStatus(source.region, target.region, first, second, lagThresholdSeconds));
    }
  }
  return {
    takenAt: new Date().toISOString(),
    lagThresholdSeconds,
    regions: endpoints.map((e) => {
      const s = second.get(e.region);
      return s?.ok === true
        ? { region: e.region, url: e.url, reachable: true }
        : {
            region: e.region,
            url: e.url,
            reachable: false,
            error: s?.ok === false ? s.error : 'not scraped',
          };
    }),
    pairs,
    healthy: pairs.every((p) => p.health === 'ok'),
  };
}

function pairStatus(
  source: string,
  target: string,
  first: ReadonlyMap<string, Scrape>,
  second: ReadonlyMap<string, Scrape>,
  threshold: number,
): PairStatus {
  const now = second.get(target);
  if (now === undefined || !now.ok) {
    return {
      source,
      target,
      health: 'unreachable',
      lagSeconds: undefined,
      eventsPerSecond: undefined,
      conflictsPerSecond: undefined,
      deadLetters: undefined,
      anomaly: false,
      detail: `daemon of ${target} ${now?.ok === false ? now.error : 'not scraped'}`,
    };
  }
  const pair = { source_region: source, target_region: target };
  const samples = now.exposition.samples;
  const lagSeconds = valueOf(samples, 'cdc_replication_lag_seconds', pair);
  const before = first.get(target);
  let eventsPerSecond: number | undefined;
  let conflictsPerSecond: number | undefined;
  if (before?.ok === true && now.atMs > before.atMs) {
    const seconds = (now.atMs - before.atMs) / 1000;
    const delta = (name: (s: readonly Sample[]) => number): number =>
      Math.max(0, name(samples) - name(before.exposition.samples)) / seconds;
    eventsPerSecond = delta((s) => sumOf(s, 'cdc_events_applied_total', pair));
    conflictsPerSecond = delta(
      (s) =>
        sumOf(s, 'cdc_events_applied_total', { ...pair, result: 'conflict_won' }) +
        sumOf(s, 'cdc_events_applied_total', { ...pair, result: 'conflict_lost' }),
    );
  }
  const sourceScrape = second.get(source);
  const deadLetters =
    sumOf(samples, 'cdc_dead_letter_total', { stage: 'apply' }) +
    (sourceScrape?.ok === true
      ? sumOf(sourceScrape.exposition.samples, 'cdc_dead_letter_total', { stage: 'capture' })
      : 0);
  const anomaly = valueOf(samples, 'cdc_lag_anomaly', pair) === 1;
  const appliedTotal = sumOf(samples, 'cdc_events_applied_total', pair);
  const conflictsTotal =
    sumOf(samples, 'cdc_events_applied_total', { ...pair, result: 'conflict_won' }) +
    sumOf(samples, 'cdc_events_applied_total', { ...pair, result: 'conflict_lost' });
  const base = {
    source,
    target,
    lagSeconds,
    eventsPerSecond,
    conflictsPerSecond,
    deadLetters,
    anomaly,
    appliedTotal,
    conflictsTotal,
  };
  if (lagSeconds === undefined)
    return {
      ...base,
      health: 'no-data',
      detail: `daemon of ${target} reports no lag for ${source} (is its apply stage running?)`,
    };
  if (lagSeconds > threshold)
    return {
      ...base,
      health: 'lagging',
      detail: `lag ${lagSeconds.toFixed(1)} s is over the ${threshold} s threshold`,
    };
  return { ...base, health: 'ok' };
}

/** A fixed-width table, one row per pair, for terminals and logs. */
export function renderStatusTable(report: StatusReport): string {
  const header = ['SOURCE', 'TARGET', 'LAG', 'EVENTS/S', 'CONFLICTS/S', 'DEAD LETTERS', 'STATUS'];
  const rows = report.pairs.map((p) => [
    p.source,
    p.target,
    p.lagSeconds === undefined ? '-' : `${p.lagSeconds.toFixed(3)} s`,
    p.eventsPerSecond === undefined ? '-' : p.eventsPerSecond.toFixed(1),
    p.conflictsPerSecond === undefined ? '-' : p.conflictsPerSecond.toFixed(1),
    p.deadLetters === undefined ? '-' : String(p.deadLetters),
    p.health === 'ok'
      ? p.anomaly
        ? 'ok (anomaly)'
        : 'ok'
      : `${p.health.toUpperCase()}${p.detail === undefined ? '' : `: ${p.detail}`}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  const unreachable = report.regions.filter((r) => !r.reachable);
  return (
    [
      line(header),
      ...rows.map(line),
      ...unreachable.map((r) => `region ${r.region} (${r.url}): ${r.error ?? 'unreachable'}`),
      `lag threshold ${report.lagThresholdSeconds} s: ${report.healthy ? 'all pairs ok' : 'NOT all pairs ok'}`,
    ].join('\n') + '\n'
  );
}
