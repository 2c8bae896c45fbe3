/**
 * Shared parts of the live scenarios (e2e-lag, conflicts): the observed
 * table, the lag observers, paced writers, metric recording and draining.
 *
 * How lag is measured: every write stores its source time in the row
 * (`written_us`, the source server's clock at the statement, in µs). The row
 * image carries it through capture, Kafka and apply unchanged. In each
 * region, an AFTER INSERT / AFTER UPDATE trigger on the table records, for
 * rows written by the applier (`@cdc_applier` is set on apply sessions only)
 * and a sample of keys, `SYSDATE(6)` at the moment the applier wrote the row
 * together with its `written_us`. All servers run on this machine, so both
 * stamps come from one clock. The trigger fires inside the apply
 * transaction, so the row becomes visible at most one apply transaction
 * later (its commit); that time is reported next to the lag (apply batch
 * duration from the daemons' histogram).
 */
import type mysql from 'mysql2/promise';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MysqlConnection } from '../../src/mysql/connection.js';
import { seededRandom } from '../../test/support/random.js';
import type { DaemonProc } from './daemon-proc.js';
import { noteText } from './mixed-workload.js';
import { sumOf, type PromSample } from './prom.js';
import { pct, round } from './scenario.js';

export const OBS_SCHEMA = 'bench_obs';
export const LIVE_COLUMNS = 'id, origin, written_us, account_id, quantity, status, note';

export function liveTableDdl(schema: string, table: string): string {
  return `CREATE TABLE \`${schema}\`.\`${table}\` (
  id BIGINT NOT NULL PRIMARY KEY,
  origin VARCHAR(16) NOT NULL,
  written_us BIGINT NOT NULL,
  account_id INT NOT NULL,
  quantity INT NOT NULL,
  status TINYINT NOT NULL,
  note VARCHAR(150) CHARACTER SET utf8mb4 NOT NULL
)`;
}

const NOW_US = 'CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)';

/** The lag log and its triggers in one region (after `prepare`, which owns the other triggers). */
export async function installLagObserver(
  connection: MysqlConnection,
  schema: string,
  table: string,
  sampleEvery: number,
): Promise<void> {
  await connection.query(`CREATE DATABASE IF NOT EXISTS ${OBS_SCHEMA}`);
  await connection.query(
    `CREATE TABLE IF NOT EXISTS ${OBS_SCHEMA}.lag (
       seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
       origin VARCHAR(16) NOT NULL,
       row_id BIGINT NOT NULL,
       written_us BIGINT NOT NULL,
       applied_us BIGINT NOT NULL
     )`,
  );
  for (const [suffix, event] of [
    ['ai', 'INSERT'],
    ['au', 'UPDATE'],
  ] as const) {
    await connection.query(
      `CREATE TRIGGER \`${schema}\`.bench_lag_${suffix} AFTER ${event} ON \`${schema}\`.\`${table}\` FOR EACH ROW
       IF @cdc_applier IS NOT NULL AND NEW.id % ${sampleEvery} = 0 THEN
         INSERT INTO ${OBS_SCHEMA}.lag (origin, row_id, written_us, applied_us)
         VALUES (NEW.origin, NEW.id, NEW.written_us, CAST(UNIX_TIMESTAMP(SYSDATE(6)) * 1000000 AS SIGNED));
       END IF`,
    );
  }
}

export interface LagRow {
  origin: string;
  writtenUs: number;
  lagMs: number;
}

/** Lag samples recorded in a region for rows written in [fromUs, toUs). */
export async function readLag(
  connection: MysqlConnection,
  fromUs: number,
  toUs: number,
): Promise<LagRow[]> {
  const [rows] = await connection.query<mysql.RowDataPacket[]>(
    `SELECT origin, written_us AS w, applied_us - written_us AS d FROM ${OBS_SCHEMA}.lag WHERE written_us >= ? AND written_us < ?`,
    [fromUs, toUs],
  );
  return rows.map((r) => ({
    origin: String(r.origin),
    writtenUs: Number(r.w),
    lagMs: Number(r.d) / 1000,
  }));
}

export async function serverNowUs(connection: MysqlConnection): Promise<number> {
  const [rows] = await connection.query<mysql.RowDataPacket[]>(`SELECT ${NOW_US} AS now`);
  return Number(rows[0]?.now ?? 0);
}

export interface LagStats {
  samples: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export function lagStats(values: readonly number[]): LagStats {
  return {
    samples: values.length,
    p50: round(pct(values, 50), 1),
    p95: round(pct(values, 95), 1),
    p99: round(pct(values, 99), 1),
    // A loop, not Math.max(...values): a 10k rows/s run has more samples than the call stack takes arguments.
    max: round(
      values.length === 0 ? Number.NaN : values.reduce((m, v) => (v > m ? v : m), -Infinity),
      1,
    ),
  };
}

/** p99 lag per 1 s bucket of write time, for the lag-over-time plot. */
export function lagSeries(
  rows: readonly LagRow[],
  fromUs: number,
  quantile = 99,
): [number, number][] {
  const buckets = new Map<number, number[]>();
  for (const r of rows) {
    const s = Math.floor((r.writtenUs - fromUs) / 1_000_000);
    let list = buckets.get(s);
    if (list === undefined) buckets.set(s, (list = []));
    list.push(r.lagMs);
  }
  return [...buckets.entries()]
    .sort((x, y) => x[0] - y[0])
    .map(([s, v]) => [s + 0.5, round(pct(v, quantile), 1)]);
}

export interface WriterOptions {
  region: string;
  regionIndex: number;
  schema: string;
  table: string;
  /** Rows per second this writer offers. */
  rate: number;
  /** Own keys (inserts of new ids + updates of recent own ones), or updates of shared hot keys. */
  keys: { kind: 'own'; updateShare: number } | { kind: 'hot'; count: number };
  seed: number;
  tickMs?: number;
}

/**
 * Writes at a steady rate: every tick, one transaction with the rows that
 * are due by the schedule. A writer that falls behind catches up with larger
 * transactions (at most 200 ms worth at once) and the achieved rate says so.
 */
export class PacedWriter {
  rows = 0;
  transactions = 0;
  behindMaxMs = 0;
  /** Transactions retried after a deadlock with the applier. */
  retries = 0;
  #stop = false;
  #done: Promise<void> | undefined;
  #nextId: number;
  readonly #next: () => number;
  readonly #recent: number[] = [];

  constructor(
    private readonly connection: MysqlConnection,
    private readonly options: WriterOptions,
  ) {
    this.#nextId = (options.regionIndex + 1) * 1_000_000_000 + 1;
    this.#next = seededRandom(options.seed);
  }

  start(): void {
    // Kept as a promise (not left unhandled): a failed writer fails the scenario at stop().
    this.#done = this.#loop();
    this.#done.catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#done;
  }

  #rowValues(id: number): string {
    const n = this.#next;
    return `(${id},'${this.options.region}',${NOW_US},${Math.floor(n() * 1_000_000)},${1 + Math.floor(n() * 100)},${Math.floor(n() * 8)},'${noteText(n, 130)}')`;
  }

  async #transaction(count: number): Promise<void> {
    const { schema, table, keys, region } = this.options;
    const target = `\`${schema}\`.\`${table}\``;
    const statements: string[] = [];
    if (keys.kind === 'own') {
      const updates = Math.min(this.#recent.length, Math.round(count * keys.updateShare));
      const inserts = count - updates;
      if (inserts > 0) {
        const values: string[] = [];
        for (let i = 0; i < inserts; i += 1) {
          values.push(this.#rowValues(this.#nextId));
          this.#recent.push(this.#nextId);
          this.#nextId += 1;
        }
        if (this.#recent.length > 10_000) this.#recent.splice(0, this.#recent.length - 10_000);
        statements.push(`INSERT INTO ${target} (${LIVE_COLUMNS}) VALUES ${values.join(',')}`);
      }
      if (updates > 0) {
        const ids = new Set<number>();
        while (ids.size < updates)
          ids.add(this.#recent[Math.floor(this.#next() * this.#recent.length)] as number);
        statements.push(
          `UPDATE ${target} SET quantity = quantity + 1, written_us = ${NOW_US}, origin = '${region}' WHERE id IN (${[...ids].join(',')})`,
        );
      }
    } else {
      const ids = new Set<number>();
      const wanted = Math.min(count, keys.count);
      while (ids.size < wanted) ids.add(1 + Math.floor(this.#next() * keys.count));
      // Each region writes its own values into the same keys: concurrent versions to resolve.
      statements.push(
        `UPDATE ${target} SET quantity = FLOOR(RAND() * 1000000), written_us = ${NOW_US}, origin = '${region}', note = '${noteText(this.#next, 130)}' WHERE id IN (${[...ids].sort((x, y) => x - y).join(',')})`,
      );
    }
    // Like any application sharing rows with a concurrent writer (here the applier), retry deadlocks.
    for (let attempt = 1; ; attempt += 1) {
      try {
        if (statements.length === 1) await this.connection.query(statements[0] as string);
        else {
          await this.connection.query('BEGIN');
          for (const sql of statements) await this.connection.query(sql);
          await this.connection.query('COMMIT');
        }
        break;
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (statements.length > 1) await this.connection.query('ROLLBACK').catch(() => undefined);
        if ((code !== 'ER_LOCK_DEADLOCK' && code !== 'ER_LOCK_WAIT_TIMEOUT') || attempt >= 20)
          throw err;
        this.retries += 1;
      }
    }
    this.transactions += 1;
    this.rows += count;
  }

  async #loop(): Promise<void> {
    const tick = this.options.tickMs ?? 20;
    const started = performance.now();
    const cap = Math.max(1, Math.round(this.options.rate * 0.2));
    while (!this.#stop) {
      const due =
        Math.floor(((performance.now() - started) / 1000) * this.options.rate) - this.rows;
      if (due > 0) {
        this.behindMaxMs = Math.max(this.behindMaxMs, (due / this.options.rate) * 1000 - tick);
        await this.#transaction(Math.min(due, cap));
      }
      await sleep(tick);
    }
  }
}

/** Rows the writer produced between two reads of `rows`. */
export interface Pair {
  source: string;
  target: string;
}

export function pairs(regions: readonly string[]): Pair[] {
  return regions.flatMap((s) =>
    regions.filter((t) => t !== s).map((t) => ({ source: s, target: t })),
  );
}

/** Scrapes every daemon each second: applied events per pair, conflicts, for the over-time plots. */
export class MetricsRecorder {
  readonly samples: { t: number; byRegion: Map<string, PromSample[]> }[] = [];
  #timer: NodeJS.Timeout | undefined;
  readonly #startedAt = performance.now();
  #busy = false;

  constructor(private readonly daemons: ReadonlyMap<string, DaemonProc>) {}

  start(intervalMs = 1000): void {
    void this.scrape();
    this.#timer = setInterval(() => void this.scrape(), intervalMs);
  }

  async scrape(): Promise<Map<string, PromSample[]>> {
    const byRegion = new Map<string, PromSample[]>();
    for (const [region, daemon] of this.daemons)
      byRegion.set(region, (await daemon.tryMetrics()) ?? []);
    if (!this.#busy) {
      this.#busy = true;
      this.samples.push({ t: (performance.now() - this.#startedAt) / 1000, byRegion });
      this.#busy = false;
    }
    return byRegion;
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
  }

  /** Applied events/s of a pair over time (per scrape interval), t relative to `fromS`. */
  appliedRate(pair: Pair, table: string, fromS: number, toS: number): [number, number][] {
    const out: [number, number][] = [];
    let prev: { t: number; v: number } | undefined;
    for (const s of this.samples) {
      const v = sumOf(s.byRegion.get(pair.target) ?? [], 'cdc_events_applied_total', {
        source_region: pair.source,
        table,
      });
      if (prev !== undefined && s.t >= fromS && s.t <= toS && s.t > prev.t)
        out.push([round(s.t - fromS, 1), Math.round((v - prev.v) / (s.t - prev.t))]);
      prev = { t: s.t, v };
    }
    return out;
  }

  get elapsedS(): number {
    return (performance.now() - this.#startedAt) / 1000;
  }
}

/**
 * Waits until every region has applied (any result) every event the other
 * regions captured for `table`: the pipeline is drained.
 */
export async function waitDrained(
  daemons: ReadonlyMap<string, DaemonProc>,
  table: string,
  timeoutMs: number,
): Promise<{ drainedMs: number; missing: string }> {
  const started = performance.now();
  const regions = [...daemons.keys()];
  for (;;) {
    const metrics = new Map<string, PromSample[]>();
    for (const [region, d] of daemons) {
      d.check();
      metrics.set(region, (await d.tryMetrics()) ?? []);
    }
    const gaps: string[] = [];
    for (const { source, target } of pairs(regions)) {
      const captured = sumOf(metrics.get(source) ?? [], 'cdc_events_captured_total', {
        region: source,
        table,
      });
      const applied = sumOf(metrics.get(target) ?? [], 'cdc_events_applied_total', {
        source_region: source,
        table,
      });
      if (applied < captured) gaps.push(`${source}→${target} ${captured - applied}`);
    }
    if (gaps.length === 0) return { drainedMs: performance.now() - started, missing: '' };
    if (performance.now() - started > timeoutMs)
      return { drainedMs: performance.now() - started, missing: gaps.join(', ') };
    await sleep(200);
  }
}

/** p99 of the daemons' apply batch duration histogram (ms), from bucket counts. */
export function histogramQuantile(samples: readonly PromSample[], name: string, q: number): number {
  const buckets = new Map<number, number>();
  for (const s of samples) {
    if (s.name !== `${name}_bucket`) continue;
    const le = s.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(s.labels.le);
    buckets.set(le, (buckets.get(le) ?? 0) + s.value);
  }
  const sorted = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
  const total = sorted[sorted.length - 1]?.[1] ?? 0;
  if (total === 0) return Number.NaN;
  for (const [le, count] of sorted) if (count >= q * total) return le * 1000;
  return Number.NaN;
}
