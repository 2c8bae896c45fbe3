import { startSandbox, type Sandbox } from '../../../src/sandbox/index.js';
import type { MysqlConnection } from '../../../src/mysql/connection.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadProfile, Pipeline } from '../../support/bench-env.js';
import { restartNotes, type DaemonProc } from '../../support/daemon-proc.js';
import {
  histogramQuantile,
  installLagObserver,
  lagSeries,
  lagStats,
  liveTableDdl,
  MetricsRecorder,
  OBS_SCHEMA,
  PacedWriter,
  pairs,
  readLag,
  serverNowUs,
  waitDrained,
  type LagRow,
  type LagStats,
} from '../../support/live.js';
import { formatInt } from '../../support/stats.js';
import { lineChart } from '../../support/svg.js';
import {
  round,
  type Scenario,
  type ScenarioContext,
  type ScenarioResult,
} from '../../support/scenario.js';

const REGIONS = ['a', 'b', 'c'];
const SCHEMA = 'benchlag';
const TABLE = 'events';
const LABEL = `${SCHEMA}.${TABLE}`;

interface Load {
  ratesRowsPerSec: number[];
  warmupSeconds: number;
  measureSeconds: number;
  updateShare: number;
  lagSampleEvery: number;
  tickMs: number;
  prewarmSeconds: number;
  targetRate: number;
  targetP99Ms: number;
}

interface Phase {
  offeredRowsPerSec: number;
  achievedRowsPerSec: number;
  windowSeconds: number;
  rowsWritten: number;
  writerBehindMaxMs: number;
  lagMs: Record<string, LagStats>;
  worstP99Ms: number;
  allPairs: LagStats;
  drainedMs: number;
  undrained: string;
  cpuMsPer1kRows: number;
  cpuPercent: Record<string, number>;
  rssMb: Record<string, number>;
  applyBatchP99Ms: number;
  lagSeries: Record<string, [number, number][]>;
  appliedSeries: Record<string, [number, number][]>;
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
    const pipeline = await Pipeline.create(context, sandbox, 'lag');
    for (const region of REGIONS) {
      const c = await pipeline.connect(region);
      connections.set(region, c);
      await c.query(`CREATE DATABASE ${SCHEMA}`);
      await c.query(liveTableDdl(SCHEMA, TABLE));
      await pipeline.prepare(region);
      await installLagObserver(c, SCHEMA, TABLE, load.lagSampleEvery);
    }
    for (const region of REGIONS) {
      const d = pipeline.daemon(region);
      daemons.set(region, d);
      // One after the other: concurrent starts race on creating each other's topics.
      await d.startAndWait();
    }
    log('3 daemons running');
    recorder = new MetricsRecorder(daemons);
    recorder.start();
    const conn = (r: string): MysqlConnection => connections.get(r) as MysqlConnection;

    const phases: Phase[] = [];
    // Unmeasured first: JIT, connection pools and the consumer groups settle before any figure is taken.
    {
      const c = await pipeline.connect('a');
      const w = new PacedWriter(c, {
        region: 'a',
        regionIndex: 20,
        schema: SCHEMA,
        table: TABLE,
        rate: load.ratesRowsPerSec[0] ?? 1000,
        keys: { kind: 'own', updateShare: load.updateShare },
        seed: 999,
        tickMs: load.tickMs,
      });
      log(
        `pre-warm: ${load.prewarmSeconds} s at ${formatInt(load.ratesRowsPerSec[0] ?? 1000)} rows/s from a (not measured)`,
      );
      w.start();
      await sleep(load.prewarmSeconds * 1000);
      await w.stop();
      await c.end();
      await waitDrained(daemons, LABEL, 120_000);
    }
    for (const rate of load.ratesRowsPerSec) {
      for (const r of REGIONS) await conn(r).query(`TRUNCATE TABLE ${OBS_SCHEMA}.lag`);
      const writers = await Promise.all(
        REGIONS.map(async (region, i) => {
          const c = await pipeline.connect(region);
          return {
            c,
            w: new PacedWriter(c, {
              region,
              regionIndex: i + phases.length * 3,
              schema: SCHEMA,
              table: TABLE,
              rate: rate / REGIONS.length,
              keys: { kind: 'own', updateShare: load.updateShare },
              seed: 1000 + i,
              tickMs: load.tickMs,
            }),
          };
        }),
      );
      log(`${formatInt(rate)} rows/s offered: ${warmup} s warm-up, ${window} s measured`);
      for (const { w } of writers) w.start();
      await sleep(warmup * 1000);
      const fromUs = await serverNowUs(conn('a'));
      const fromS = recorder.elapsedS;
      const rows0 = writers.reduce((t, { w }) => t + w.rows, 0);
      const cpu0 = new Map([...daemons].map(([r, d]) => [r, d.sampler?.sample()?.cpuMs ?? 0]));
      const t0 = performance.now();
      await sleep(window * 1000);
      const rows1 = writers.reduce((t, { w }) => t + w.rows, 0);
      const elapsed = (performance.now() - t0) / 1000;
      const cpu1 = new Map([...daemons].map(([r, d]) => [r, d.sampler?.sample()?.cpuMs ?? 0]));
      const toUs = await serverNowUs(conn('a'));
      const toS = recorder.elapsedS;
      const behind = Math.max(...writers.map(({ w }) => w.behindMaxMs));
      for (const { w } of writers) await w.stop();
      for (const { c } of writers) await c.end();
      const drained = await waitDrained(daemons, LABEL, 180_000);
      const metricsNow = await recorder.scrape();
      const lagRows = new Map<string, LagRow[]>();
      for (const target of REGIONS) {
        for (const row of await readLag(conn(target), fromUs, toUs)) {
          const key = `${row.origin}→${target}`;
          let list = lagRows.get(key);
          if (list === undefined) lagRows.set(key, (list = []));
          list.push(row);
        }
      }
      const lagMs: Record<string, LagStats> = {};
      const series: Record<string, [number, number][]> = {};
      const applied: Record<string, [number, number][]> = {};
      for (const p of pairs(REGIONS)) {
        const key = `${p.source}→${p.target}`;
        const list = lagRows.get(key) ?? [];
        lagMs[key] = lagStats(list.map((l) => l.lagMs));
        series[key] = lagSeries(list, fromUs);
        applied[key] = recorder.appliedRate(p, LABEL, fromS, toS);
      }
      const all = lagStats([...lagRows.values()].flat().map((l) => l.lagMs));
      const rowsInWindow = rows1 - rows0;
      const cpuTotal = [...daemons.keys()].reduce(
        (t, r) => t + ((cpu1.get(r) ?? 0) - (cpu0.get(r) ?? 0)),
        0,
      );
      const phase: Phase = {
        offeredRowsPerSec: rate,
        achievedRowsPerSec: Math.round(rowsInWindow / elapsed),
        windowSeconds: round(elapsed, 1),
        rowsWritten: rowsInWindow,
        writerBehindMaxMs: Math.round(behind),
        lagMs,
        worstP99Ms: Math.max(...Object.values(lagMs).map((s) => s.p99)),
        allPairs: all,
        drainedMs: Math.round(drained.drainedMs),
        undrained: drained.missing,
        cpuMsPer1kRows: round((cpuTotal * 1000) / Math.max(1, rowsInWindow), 1),
        cpuPercent: Object.fromEntries(
          [...daemons.keys()].map((r) => [
            r,
            Math.round((((cpu1.get(r) ?? 0) - (cpu0.get(r) ?? 0)) / (elapsed * 1000)) * 100),
          ]),
        ),
        rssMb: Object.fromEntries(
          [...daemons].map(([r, d]) => [r, Math.round(d.sampler?.peakRssMb ?? 0)]),
        ),
        applyBatchP99Ms: round(
          Math.max(
            ...REGIONS.map((r) =>
              histogramQuantile(metricsNow.get(r) ?? [], 'cdc_apply_batch_duration_seconds', 0.99),
            ),
          ),
          1,
        ),
        lagSeries: series,
        appliedSeries: applied,
      };
      phases.push(phase);
      log(
        `${formatInt(rate)} rows/s offered, ${formatInt(phase.achievedRowsPerSec)} achieved: lag p50 ${all.p50} / p95 ${all.p95} / p99 ${all.p99} ms (worst pair p99 ${phase.worstP99Ms} ms), ` +
          `CPU ${phase.cpuMsPer1kRows} ms per 1k rows, drained ${phase.drainedMs} ms${drained.missing === '' ? '' : ` NOT drained: ${drained.missing}`}`,
      );
    }

    const target = phases.find((p) => p.offeredRowsPerSec === load.targetRate);
    const kLabel = (n: number): string => `${n / 1000}k`;
    const pairKeys = pairs(REGIONS).map((p) => `${p.source}→${p.target}`);
    return {
      configuration: {
        regions: REGIONS,
        warmupSeconds: warmup,
        measureSeconds: window,
        load,
        pipeline: pipeline.yaml,
        method:
          'row carries written_us (source NOW(6)); AFTER INSERT/UPDATE triggers in each region record SYSDATE(6) for rows the applier writes (@cdc_applier set), sampled id % lagSampleEvery = 0',
      },
      figures: { phases },
      tables: [
        {
          title:
            'End-to-end lag, 3 regions (writes spread evenly, own keys per region), all 6 region pairs',
          header: [
            'offered rows/s',
            'achieved rows/s',
            'lag p50 ms',
            'p95 ms',
            'p99 ms',
            'worst pair p99 ms',
            'max ms',
            'samples',
            'daemon CPU ms / 1k rows',
            'daemon CPU % (a/b/c)',
            'peak RSS MiB (a/b/c)',
            'apply batch p99 ms',
          ],
          rows: phases.map((p) => [
            formatInt(p.offeredRowsPerSec),
            formatInt(p.achievedRowsPerSec),
            String(p.allPairs.p50),
            String(p.allPairs.p95),
            String(p.allPairs.p99),
            String(p.worstP99Ms),
            String(p.allPairs.max),
            formatInt(p.allPairs.samples),
            String(p.cpuMsPer1kRows),
            REGIONS.map((r) => p.cpuPercent[r]).join(' / '),
            REGIONS.map((r) => p.rssMb[r]).join(' / '),
            String(p.applyBatchP99Ms),
          ]),
          note:
            'Lag = applier wrote the row in the target − the source statement started (both from the one machine clock), for a sample of rows (id % ' +
            `${load.lagSampleEvery} = 0). The row becomes visible at its apply transaction's commit, at most "apply batch p99" later. CPU = user+system time of the three daemon processes over the measured window, per 1,000 rows written (each row is captured once and applied twice).`,
        },
        {
          title: 'p99 lag per region pair (ms)',
          header: ['offered rows/s', ...pairKeys],
          rows: phases.map((p) => [
            formatInt(p.offeredRowsPerSec),
            ...pairKeys.map((k) => String(p.lagMs[k]?.p99 ?? '')),
          ]),
        },
      ],
      plots: phases.flatMap((p) => [
        {
          name: `lag-${kLabel(p.offeredRowsPerSec)}`,
          title: `lag ${kLabel(p.offeredRowsPerSec)}`,
          svg: lineChart({
            title: `p99 lag per second of writes, ${formatInt(p.offeredRowsPerSec)} rows/s offered (${formatInt(p.achievedRowsPerSec)} achieved)`,
            xLabel: 's into the measured window',
            yLabel: 'p99 lag (ms)',
            series: pairKeys.map((k) => ({ name: k, points: p.lagSeries[k] ?? [] })),
            marks: [{ y: load.targetP99Ms, label: `target ${load.targetP99Ms} ms` }],
          }),
        },
        {
          name: `throughput-${kLabel(p.offeredRowsPerSec)}`,
          title: `throughput ${kLabel(p.offeredRowsPerSec)}`,
          svg: lineChart({
            title: `Rows applied per second per pair, ${formatInt(p.offeredRowsPerSec)} rows/s offered`,
            xLabel: 's into the measured window',
            yLabel: 'rows/s applied',
            series: pairKeys.map((k) => ({ name: k, points: p.appliedSeries[k] ?? [] })),
          }),
        },
      ]),
      targets: [
        {
          name: `p99 lag < ${load.targetP99Ms} ms at ${formatInt(load.targetRate)} rows/s, 3 regions`,
          target: `< ${load.targetP99Ms} ms`,
          actual:
            target === undefined
              ? 'not measured'
              : `${target.allPairs.p99} ms over all pairs (worst pair ${target.worstP99Ms} ms), ${formatInt(target.achievedRowsPerSec)} rows/s achieved`,
          pass:
            target !== undefined &&
            target.allPairs.p99 < load.targetP99Ms &&
            target.achievedRowsPerSec >= 0.95 * load.targetRate,
        },
      ],
      notes: restartNotes(daemons.values()).concat(
        phases
          .filter((p) => p.achievedRowsPerSec < 0.95 * p.offeredRowsPerSec || p.undrained !== '')
          .map(
            (p) =>
              `${formatInt(p.offeredRowsPerSec)} rows/s offered: the writers achieved ${formatInt(p.achievedRowsPerSec)} rows/s (behind by up to ${p.writerBehindMaxMs} ms)` +
              (p.undrained === '' ? '' : `; not drained within 180 s: ${p.undrained}`),
          ),
      ),
    };
  } finally {
    recorder?.stop();
    await Promise.allSettled([...daemons.values()].map((d) => d.stop()));
    await Promise.allSettled([...connections.values()].map((c) => c.end()));
    await sandbox?.stop();
  }
}

export const e2eLag: Scenario = {
  name: 'e2e-lag',
  title: 'end-to-end lag with 3 regions at steady write rates (1k, 5k, 10k rows/s)',
  run,
};
