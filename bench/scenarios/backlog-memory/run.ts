import { currentGtidPosition } from '../../../src/capture/server-check.js';
import type { MysqlConnection } from '../../../src/mysql/connection.js';
import { serverInfo } from '../../../src/mysql/introspect.js';
import { startSandbox, type Sandbox } from '../../../src/sandbox/index.js';
import { loadProfile, Pipeline, saveCapturePosition } from '../../support/bench-env.js';
import { waitUntil, type DaemonProc } from '../../support/daemon-proc.js';
import { tableChecksum } from '../../support/db.js';
import {
  MIXED_COLUMNS,
  mixedTableDdl,
  writeMixed,
  type MixProfile,
} from '../../support/mixed-workload.js';
import { sumOf, type PromSample } from '../../support/prom.js';
import { formatInt } from '../../support/stats.js';
import { lineChart } from '../../support/svg.js';
import {
  round,
  scaled,
  type Scenario,
  type ScenarioContext,
  type ScenarioResult,
} from '../../support/scenario.js';

const TABLE = 'orders';

interface Load {
  backlogs: number[];
  rowsPerTransaction: number;
  mix: MixProfile['mix'];
  seed: number;
  targetRssMb: number;
}

interface Measurement {
  rows: number;
  writeMs: number;
  /** Daemons spawned → a's capture acknowledged every row. */
  captureMs: number;
  /** Daemons spawned → b applied every row. */
  drainMs: number;
  rowsPerSec: number;
  peakRssMb: { a: number; b: number };
  /** Largest V8 heap (total) and external memory seen in the daemons' metrics while draining, MiB. */
  peakHeapMb: { a: { total: number; external: number }; b: { total: number; external: number } };
  rss: { a: [number, number][]; b: [number, number][] };
  check: string;
}

function thin(points: [number, number][]): [number, number][] {
  const step = Math.max(1, Math.ceil(points.length / 300));
  return points.filter((_, i) => i % step === 0 || i === points.length - 1);
}

function sizeLabel(n: number): string {
  return n >= 1_000_000 ? `${round(n / 1_000_000, 2)}M` : `${round(n / 1000, 1)}k`;
}

async function run(context: ScenarioContext): Promise<ScenarioResult> {
  const load = loadProfile<Load>(context);
  const sizes = load.backlogs.map((n) => scaled(n, context.scale, 20_000));
  const { log } = context;
  let sandbox: Sandbox | undefined;
  const daemons: DaemonProc[] = [];
  const connections: MysqlConnection[] = [];
  try {
    sandbox = await startSandbox({ regions: ['a', 'b'], kafka: true, redis: false, log });
    const measurements: Measurement[] = [];
    let mariadb = '';
    for (const N of sizes) {
      const schema = `bl_${sizeLabel(N).replace('.', '_')}`.toLowerCase();
      const label = `${schema}.${TABLE}`;
      const pipeline = await Pipeline.create(
        context,
        sandbox,
        `bl${sizeLabel(N).replace('.', '')}`,
        { BENCH_TABLE: label },
      );
      const connA = await pipeline.connect('a');
      const connB = await pipeline.connect('b');
      connections.push(connA, connB);
      const info = await serverInfo(connA);
      mariadb = info.version;
      for (const c of [connA, connB]) {
        await c.query(`CREATE DATABASE ${schema}`);
        await c.query(mixedTableDdl(schema, TABLE));
      }
      await pipeline.prepare('a');
      await pipeline.prepare('b');
      const start = await currentGtidPosition(connA, info);
      log(`${sizeLabel(N)}: writing the backlog in a (daemons stopped)`);
      const written = await writeMixed(
        connA,
        schema,
        TABLE,
        { rows: N, rowsPerTransaction: load.rowsPerTransaction, mix: load.mix, seed: load.seed },
        (rows) => log(`${sizeLabel(N)}: ${formatInt(rows)} rows written`),
      );
      await saveCapturePosition(pipeline, 'a', start);
      const a = pipeline.daemon('a');
      const b = pipeline.daemon('b');
      daemons.push(a, b);
      const started = performance.now();
      a.start();
      b.start();
      let captureMs = 0;
      let lastLog = performance.now();
      // What the RSS is made of, from the daemons' own default metrics: the V8 heap and the memory outside it.
      const heap = { a: { total: 0, external: 0 }, b: { total: 0, external: 0 } };
      const heapOf = (
        m: PromSample[] | undefined,
        into: { total: number; external: number },
      ): void => {
        into.total = Math.max(into.total, sumOf(m ?? [], 'nodejs_heap_size_total_bytes') / 1048576);
        into.external = Math.max(
          into.external,
          sumOf(m ?? [], 'nodejs_external_memory_bytes') / 1048576,
        );
      };
      await waitUntil(
        async () => {
          const [ma, mb] = await Promise.all([a.tryMetrics(), b.tryMetrics()]);
          heapOf(ma, heap.a);
          heapOf(mb, heap.b);
          const captured = sumOf(ma ?? [], 'cdc_events_captured_total', { table: label });
          const applied = sumOf(mb ?? [], 'cdc_events_applied_total', {
            source_region: 'a',
            table: label,
          });
          if (captureMs === 0 && captured >= N) captureMs = performance.now() - started;
          if (performance.now() - lastLog > 15_000) {
            lastLog = performance.now();
            log(
              `${sizeLabel(N)}: captured ${formatInt(captured)}, applied ${formatInt(applied)}; RSS a ${Math.round(a.sampler?.points.at(-1)?.rssMb ?? 0)} MiB, b ${Math.round(b.sampler?.points.at(-1)?.rssMb ?? 0)} MiB`,
            );
          }
          return applied;
        },
        N,
        `apply of the ${sizeLabel(N)} backlog`,
        { pollMs: 250, check: () => (a.check(), b.check()) },
      );
      const drainMs = performance.now() - started;
      a.sampler?.sample();
      b.sampler?.sample();
      const peakRssMb = {
        a: Math.round(a.sampler?.peakRssMb ?? 0),
        b: Math.round(b.sampler?.peakRssMb ?? 0),
      };
      await Promise.all([a.stop(), b.stop()]);
      const ref = await tableChecksum(connA, label, MIXED_COLUMNS);
      const got = await tableChecksum(connB, label, MIXED_COLUMNS);
      const check =
        ref.rows === got.rows && ref.crc === got.crc
          ? 'ok'
          : `b differs from a: ${got.rows}/${got.crc} vs ${ref.rows}/${ref.crc}`;
      const rss = (d: DaemonProc): [number, number][] =>
        thin((d.sampler?.points ?? []).map((p) => [p.t, p.rssMb]));
      measurements.push({
        rows: N,
        writeMs: Math.round(written.elapsedMs),
        captureMs: Math.round(captureMs),
        drainMs: Math.round(drainMs),
        rowsPerSec: Math.round((N * 1000) / drainMs),
        peakRssMb,
        peakHeapMb: {
          a: { total: Math.round(heap.a.total), external: Math.round(heap.a.external) },
          b: { total: Math.round(heap.b.total), external: Math.round(heap.b.external) },
        },
        rss: { a: rss(a), b: rss(b) },
        check,
      });
      log(
        `${sizeLabel(N)}: drained in ${formatInt(drainMs)} ms (capture ${formatInt(captureMs)} ms), peak RSS a ${peakRssMb.a} MiB / b ${peakRssMb.b} MiB, check ${check}`,
      );
      await connA.query(`DROP DATABASE ${schema}`); // frees the disk of the bigger backlog's run
      await connB.query(`DROP DATABASE ${schema}`);
    }
    const peak = Math.max(...measurements.flatMap((m) => [m.peakRssMb.a, m.peakRssMb.b]));
    const small = measurements[0];
    const big = measurements[measurements.length - 1];
    const growth =
      small === undefined || big === undefined
        ? Number.NaN
        : Math.max(big.peakRssMb.a, big.peakRssMb.b) /
          Math.max(small.peakRssMb.a, small.peakRssMb.b);
    return {
      configuration: {
        sizes,
        load,
        pipeline: "(see pipeline.yaml; BENCH_TABLE = the size's table)",
        mariadb,
      },
      figures: { measurements, peakRssMb: peak, growth: round(growth, 3) },
      tables: [
        {
          title:
            'Capture and apply of a backlog (a → Kafka → b), daemons as processes started on the full backlog',
          header: [
            'backlog rows',
            'write ms',
            'capture done ms',
            'drained (applied in b) ms',
            'rows/s',
            'peak RSS a (capture) MiB',
            'peak RSS b (apply) MiB',
            'peak V8 heap a / b MiB',
            'check',
          ],
          rows: measurements.map((m) => [
            formatInt(m.rows),
            formatInt(m.writeMs),
            formatInt(m.captureMs),
            formatInt(m.drainMs),
            formatInt(m.rowsPerSec),
            String(m.peakRssMb.a),
            String(m.peakRssMb.b),
            `${m.peakHeapMb.a.total} / ${m.peakHeapMb.b.total}`,
            m.check,
          ]),
          note: `Peak RSS = the kernel's VmHWM of each daemon process. Largest / smallest backlog peak = ${growth.toFixed(2)}×.`,
        },
      ],
      plots: [
        {
          name: 'rss',
          title: 'RSS over time',
          svg: lineChart({
            title: 'Daemon RSS while draining the backlog',
            xLabel: 's since the daemons started',
            yLabel: 'RSS (MiB)',
            series: measurements.flatMap((m) => [
              { name: `${sizeLabel(m.rows)} a (capture)`, points: m.rss.a },
              { name: `${sizeLabel(m.rows)} b (apply)`, points: m.rss.b },
            ]),
            marks: [{ y: load.targetRssMb, label: `target ${load.targetRssMb} MiB` }],
          }),
        },
      ],
      targets: [
        {
          name: `daemon RSS < ${load.targetRssMb} MiB whatever the backlog`,
          target: `< ${load.targetRssMb} MiB, not growing`,
          actual: `peak ${peak} MiB; ${sizeLabel(big?.rows ?? 0)} / ${sizeLabel(small?.rows ?? 0)} = ${growth.toFixed(2)}×`,
          pass:
            peak < load.targetRssMb && growth < 1.25 && measurements.every((m) => m.check === 'ok'),
        },
      ],
      notes: measurements
        .filter((m) => m.check !== 'ok')
        .map((m) => `check failed for ${formatInt(m.rows)} rows: ${m.check}`),
    };
  } finally {
    await Promise.allSettled(daemons.map((d) => d.stop()));
    await Promise.allSettled(connections.map((c) => c.end()));
    await sandbox?.stop();
  }
}

export const backlogMemory: Scenario = {
  name: 'backlog-memory',
  title: 'daemon memory and drain time on a 500k and a 2M row backlog',
  run,
};
