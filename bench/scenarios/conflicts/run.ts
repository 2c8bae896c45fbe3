import { setTimeout as sleep } from 'node:timers/promises';
import type { MysqlConnection } from '../../../src/mysql/connection.js';
import { startSandbox, type Sandbox } from '../../../src/sandbox/index.js';
import { loadProfile, Pipeline } from '../../support/bench-env.js';
import { restartNotes, type DaemonProc } from '../../support/daemon-proc.js';
import { tableChecksum } from '../../support/db.js';
import {
  installLagObserver,
  lagSeries,
  lagStats,
  LIVE_COLUMNS,
  liveTableDdl,
  MetricsRecorder,
  PacedWriter,
  pairs,
  readLag,
  serverNowUs,
  waitDrained,
  type LagRow,
  type LagStats,
} from '../../support/live.js';
import { noteText } from '../../support/mixed-workload.js';
import { sumBy, type PromSample } from '../../support/prom.js';
import { formatInt } from '../../support/stats.js';
import { lineChart } from '../../support/svg.js';
import {
  round,
  type Scenario,
  type ScenarioContext,
  type ScenarioResult,
} from '../../support/scenario.js';
import { seededRandom } from '../../../test/support/random.js';

const REGIONS = ['a', 'b', 'c'];
const SCHEMA = 'benchconf';
const TABLE = 'hot';
const LABEL = `${SCHEMA}.${TABLE}`;

interface Load {
  rateRowsPerSec: number;
  hotKeys: number;
  warmupSeconds: number;
  measureSeconds: number;
  lagSampleEvery: number;
  tickMs: number;
}

/** Applied events by result, and conflicts, summed over every region. */
function totals(metrics: ReadonlyMap<string, PromSample[]>): {
  byResult: Record<string, number>;
  conflicts: Record<string, number>;
} {
  const byResult: Record<string, number> = {};
  const conflicts: Record<string, number> = {};
  for (const samples of metrics.values()) {
    for (const [k, v] of Object.entries(
      sumBy(samples, 'cdc_events_applied_total', 'result', { table: LABEL }),
    ))
      byResult[k] = (byResult[k] ?? 0) + v;
    for (const [k, v] of Object.entries(
      sumBy(samples, 'cdc_conflicts_total', 'resolution', { table: LABEL }),
    ))
      conflicts[k] = (conflicts[k] ?? 0) + v;
  }
  return { byResult, conflicts };
}

function minus(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(a).map(([k, v]) => [k, v - (b[k] ?? 0)]));
}

async function run(context: ScenarioContext): Promise<ScenarioResult> {
  const load = loadProfile<Load>(context);
  const warmup = Math.max(2, Math.round(load.warmupSeconds * Math.min(1, context.scale * 4)));
  const window = Math.max(6, Math.round(load.measureSeconds * Math.min(1, context.scale * 2)));
  const { log } = context;
  let sandbox: Sandbox | undefined;
  const daemons = new Map<string, DaemonProc>();
  const connections = new Map<string, MysqlConnection>();
  let recorder: MetricsRecorder | undefined;
  try {
    sandbox = await startSandbox({ regions: REGIONS, kafka: true, redis: false, log });
    const pipeline = await Pipeline.create(context, sandbox, 'conf');
    for (const region of REGIONS) {
      const c = await pipeline.connect(region);
      connections.set(region, c);
      await c.query(`CREATE DATABASE ${SCHEMA}`);
      await c.query(liveTableDdl(SCHEMA, TABLE));
      await pipeline.prepare(region);
      await installLagObserver(c, SCHEMA, TABLE, load.lagSampleEvery);
    }
    const conn = (r: string): MysqlConnection => connections.get(r) as MysqlConnection;
    for (const region of REGIONS) {
      const d = pipeline.daemon(region);
      daemons.set(region, d);
      // One after the other: concurrent starts race on creating each other's topics.
      await d.startAndWait();
    }
    // The hot keys exist everywhere before the contest starts: written in a, replicated.
    const next = seededRandom(5);
    const values: string[] = [];
    for (let id = 1; id <= load.hotKeys; id += 1)
      values.push(
        `(${id},'a',CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED),${id},0,0,'${noteText(next, 130)}')`,
      );
    await conn('a').query(
      `INSERT INTO ${SCHEMA}.${TABLE} (${LIVE_COLUMNS}) VALUES ${values.join(',')}`,
    );
    const seeded = await waitDrained(daemons, LABEL, 120_000);
    if (seeded.missing !== '') throw new Error(`hot keys did not replicate: ${seeded.missing}`);
    log(
      `${load.hotKeys} hot keys in all 3 regions; ${formatInt(load.rateRowsPerSec)} rows/s offered: ${warmup} s warm-up, ${window} s measured`,
    );
    recorder = new MetricsRecorder(daemons);
    recorder.start();
    const before = totals(await recorder.scrape());
    for (const r of REGIONS) await conn(r).query('TRUNCATE TABLE bench_obs.lag');

    const writers = await Promise.all(
      REGIONS.map(async (region, i) => {
        const c = await pipeline.connect(region);
        return {
          c,
          w: new PacedWriter(c, {
            region,
            regionIndex: i,
            schema: SCHEMA,
            table: TABLE,
            rate: load.rateRowsPerSec / REGIONS.length,
            keys: { kind: 'hot', count: load.hotKeys },
            seed: 2000 + i,
            tickMs: load.tickMs,
          }),
        };
      }),
    );
    for (const { w } of writers) w.start();
    const writeStarted = performance.now();
    await sleep(warmup * 1000);
    const fromUs = await serverNowUs(conn('a'));
    const fromS = recorder.elapsedS;
    const rows0 = writers.reduce((t, { w }) => t + w.rows, 0);
    const t0 = performance.now();
    await sleep(window * 1000);
    const rows1 = writers.reduce((t, { w }) => t + w.rows, 0);
    const elapsed = (performance.now() - t0) / 1000;
    const toUs = await serverNowUs(conn('a'));
    const toS = recorder.elapsedS;
    for (const { w } of writers) await w.stop();
    const writeSeconds = (performance.now() - writeStarted) / 1000;
    const rowsTotal = writers.reduce((t, { w }) => t + w.rows, 0);
    for (const { c } of writers) await c.end();
    const drained = await waitDrained(daemons, LABEL, 180_000);
    const after = totals(await recorder.scrape());
    const applied = minus(after.byResult, before.byResult);
    const conflicts = minus(after.conflicts, before.conflicts);
    const appliedTotal = Object.values(applied).reduce((t, v) => t + v, 0);
    const conflictTotal = Object.values(conflicts).reduce((t, v) => t + v, 0);

    // Convergence: every region holds the same rows (all visible columns).
    const sums = new Map<string, { rows: number; crc: string }>();
    for (const r of REGIONS)
      sums.set(r, await tableChecksum(conn(r), `${SCHEMA}.${TABLE}`, LIVE_COLUMNS));
    const distinct = new Set([...sums.values()].map((s) => `${s.rows}:${s.crc}`));
    const converged = distinct.size === 1 && drained.missing === '';

    const lagRows = new Map<string, LagRow[]>();
    for (const target of REGIONS)
      for (const row of await readLag(conn(target), fromUs, toUs)) {
        const key = `${row.origin}→${target}`;
        let list = lagRows.get(key);
        if (list === undefined) lagRows.set(key, (list = []));
        list.push(row);
      }
    const pairKeys = pairs(REGIONS).map((p) => `${p.source}→${p.target}`);
    const lag: Record<string, LagStats> = Object.fromEntries(
      pairKeys.map((k) => [k, lagStats((lagRows.get(k) ?? []).map((l) => l.lagMs))]),
    );
    const all = lagStats([...lagRows.values()].flat().map((l) => l.lagMs));
    const achieved = Math.round((rows1 - rows0) / elapsed);
    const conflictRate = conflictTotal / Math.max(1, appliedTotal);
    log(
      `achieved ${formatInt(achieved)} rows/s; ${formatInt(appliedTotal)} events applied, ${formatInt(conflictTotal)} conflicts (${(conflictRate * 100).toFixed(1)} %); lag p99 ${all.p99} ms; ${converged ? 'converged' : 'NOT converged'}`,
    );
    const rssMb = Object.fromEntries(
      [...daemons].map(([r, d]) => [r, Math.round(d.sampler?.peakRssMb ?? 0)]),
    );
    return {
      configuration: {
        regions: REGIONS,
        warmupSeconds: warmup,
        measureSeconds: window,
        load,
        pipeline: pipeline.yaml,
      },
      figures: {
        offeredRowsPerSec: load.rateRowsPerSec,
        achievedRowsPerSec: achieved,
        rowsWritten: rowsTotal,
        writeSeconds: round(writeSeconds, 1),
        appliedByResult: applied,
        conflictsByResolution: conflicts,
        conflictRate: round(conflictRate, 4),
        appliedPerSecond: round(appliedTotal / writeSeconds, 0),
        lagMs: lag,
        lagAllPairs: all,
        drainedMs: Math.round(drained.drainedMs),
        undrained: drained.missing,
        checksums: Object.fromEntries(sums),
        converged,
        rssMb,
      },
      tables: [
        {
          title: `3 regions updating the same ${formatInt(load.hotKeys)} hot keys, ${formatInt(load.rateRowsPerSec)} rows/s offered in total`,
          header: [
            'achieved rows/s',
            'events applied/s',
            'applied',
            'stale',
            'conflict won',
            'conflict lost',
            'conflicts',
            'conflict rate',
            'lag p50 / p95 / p99 ms',
            'drain after stop ms',
            'converged',
          ],
          rows: [
            [
              formatInt(achieved),
              formatInt(appliedTotal / writeSeconds),
              formatInt(applied.applied ?? 0),
              formatInt(applied.stale ?? 0),
              formatInt(applied.conflict_won ?? 0),
              formatInt(applied.conflict_lost ?? 0),
              formatInt(conflictTotal),
              `${(conflictRate * 100).toFixed(1)} %`,
              `${all.p50} / ${all.p95} / ${all.p99}`,
              formatInt(drained.drainedMs),
              converged ? 'yes (checksums equal)' : 'NO',
            ],
          ],
          note:
            'Events applied = every remote change a region received (results summed over the 3 regions); conflict rate = cdc_conflicts_total / events applied. ' +
            'Lag is measured only for rows the applier wrote (a losing or stale version writes nothing). Converged = after the writers stopped and every region applied everything the others captured, ' +
            `row count and CRC of every visible column are equal in all regions (${[...sums].map(([r, s]) => `${r}: ${s.rows} rows, crc ${s.crc}`).join('; ')}).`,
        },
        {
          title: 'p99 lag per region pair (ms)',
          header: pairKeys,
          rows: [pairKeys.map((k) => String(lag[k]?.p99 ?? ''))],
        },
      ],
      plots: [
        {
          name: 'lag',
          title: 'lag',
          svg: lineChart({
            title: `p99 lag per second of writes, hot keys, ${formatInt(load.rateRowsPerSec)} rows/s offered`,
            xLabel: 's into the measured window',
            yLabel: 'p99 lag (ms)',
            series: pairKeys.map((k) => ({
              name: k,
              points: lagSeries(lagRows.get(k) ?? [], fromUs),
            })),
          }),
        },
        {
          name: 'throughput',
          title: 'throughput',
          svg: lineChart({
            title: 'Remote events applied per second per pair (all results), hot keys',
            xLabel: 's into the measured window',
            yLabel: 'events/s',
            series: pairs(REGIONS).map((p) => ({
              name: `${p.source}→${p.target}`,
              points: recorder?.appliedRate(p, LABEL, fromS, toS) ?? [],
            })),
          }),
        },
      ],
      targets: [
        {
          name: 'conflicting writers converge',
          target: 'equal checksums',
          actual: converged
            ? `equal in 3 regions (${formatInt(conflictTotal)} conflicts resolved)`
            : `differ: ${[...sums].map(([r, s]) => `${r} ${s.rows}/${s.crc}`).join(', ')} ${drained.missing}`,
          pass: converged,
        },
      ],
      notes: restartNotes(daemons.values()).concat(
        achieved < 0.95 * load.rateRowsPerSec
          ? [
              `the writers achieved ${formatInt(achieved)} of ${formatInt(load.rateRowsPerSec)} rows/s offered`,
            ]
          : [],
      ),
    };
  } finally {
    recorder?.stop();
    await Promise.allSettled([...daemons.values()].map((d) => d.stop()));
    await Promise.allSettled([...connections.values()].map((c) => c.end()));
    await sandbox?.stop();
  }
}

export const conflicts: Scenario = {
  name: 'conflicts',
  title: '3 regions writing the same hot keys: throughput, conflict rate, lag, convergence',
  run,
};
