import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin } from 'kafkajs';
import { topicName } from '../../../src/bus/envelope.js';
import { createKafka } from '../../../src/bus/kafka.js';
import { currentGtidPosition } from '../../../src/capture/server-check.js';
import { serverInfo } from '../../../src/mysql/introspect.js';
import { startSandbox, type Sandbox } from '../../../src/sandbox/index.js';
import { freePorts } from '../../../src/sandbox/ports.js';
import type { ManagedProcess } from '../../../src/sandbox/processes.js';
import { loadProfile, Pipeline, saveCapturePosition } from '../../support/bench-env.js';
import {
  connectLog,
  connectProcess,
  debeziumClasspath,
  DEBEZIUM_VERSION,
  primeSource,
  renderProperties,
} from '../../support/debezium.js';
import { highWatermark } from '../../support/kafka.js';
import { mixedTableDdl, writeMixed, type MixProfile } from '../../support/mixed-workload.js';
import { ProcSampler } from '../../support/proc.js';
import { sumOf } from '../../support/prom.js';
import { median, formatInt } from '../../support/stats.js';
import { barChart, lineChart } from '../../support/svg.js';
import {
  round,
  scaled,
  type Scenario,
  type ScenarioContext,
  type ScenarioResult,
} from '../../support/scenario.js';

const SCHEMA = 'benchcap';
const TABLE = 'orders';
const DBZ_PREFIX = 'dbz';
const PARTITIONS = 3;
const TARGET_RATIO = 1.5;

interface Load extends MixProfile {
  rounds: number;
}

interface Measurement {
  contender: 'ours' | 'debezium';
  round: number;
  rows: number;
  /** Process spawn → N-th row acknowledged by Kafka. */
  totalMs: number;
  /** First message acknowledged → N-th: the streaming rate, without process start-up. */
  drainMs: number;
  drainRowsPerSec: number;
  totalRowsPerSec: number;
  peakRssMb: number;
  cpuMs: number;
  cpuMsPer1kRows: number;
  messages: number;
  /** Acknowledged rows over time (s since the first one) for the plot. */
  progress: [number, number][];
}

/**
 * Polls `acknowledged` until it reaches `rows`: the same completion rule for
 * both contenders, rows acknowledged by Kafka under acks=all. Debezium's are
 * its topic's new messages (one per row; a message is in the high watermark
 * only once every in-sync replica has it). Ours are the daemon's
 * `cdc_events_captured_total`, which moves only on that acknowledgement:
 * envelope v2 packs many rows into one message, so messages undercount.
 */
async function follow(
  acknowledged: () => Promise<number>,
  what: string,
  rows: number,
  spawnedAt: number,
  check: () => void,
): Promise<{ totalMs: number; drainMs: number; messages: number; progress: [number, number][] }> {
  let firstAt: number | undefined;
  let seen = 0;
  let progressAt = performance.now();
  const progress: [number, number][] = [];
  for (;;) {
    check();
    const now = await acknowledged();
    const t = performance.now();
    if (now > 0 && firstAt === undefined) firstAt = t;
    if (firstAt !== undefined) progress.push([round((t - firstAt) / 1000, 2), now]);
    if (now >= rows) {
      return { totalMs: t - spawnedAt, drainMs: t - (firstAt ?? t), messages: now, progress };
    }
    if (now > seen) {
      seen = now;
      progressAt = t;
    } else if (t - progressAt > 180_000) {
      throw new Error(`${what}: ${seen} of ${rows} rows, none for 180 s`);
    }
    await sleep(50);
  }
}

async function run(context: ScenarioContext): Promise<ScenarioResult> {
  const load = loadProfile<Load>(context);
  const profile: MixProfile = { ...load, rows: scaled(load.rows, context.scale, 10_000) };
  const rounds = context.scale < 0.5 ? 1 : load.rounds;
  const N = profile.rows;
  const { log } = context;
  let sandbox: Sandbox | undefined;
  const processes: ManagedProcess[] = [];
  let admin: Admin | undefined;
  try {
    const classpathPromise = debeziumClasspath(log);
    sandbox = await startSandbox({ regions: ['a'], kafka: true, redis: false, log });
    const pipeline = await Pipeline.create(context, sandbox, 'cvd');
    const options = pipeline.options('a');
    const connection = await pipeline.connect('a');
    const info = await serverInfo(connection);
    await connection.query(`CREATE DATABASE ${SCHEMA}`);
    await connection.query(mixedTableDdl(SCHEMA, TABLE));
    await pipeline.prepare('a');

    admin = createKafka(options.kafka, context.logger).admin();
    await admin.connect();
    const dbzTopic = `${DBZ_PREFIX}.${SCHEMA}.${TABLE}`;
    // Same partition count as our topics (kafka.topics.partitions default).
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        { topic: dbzTopic, numPartitions: PARTITIONS, replicationFactor: 1 },
        { topic: `__debezium-heartbeat.${DBZ_PREFIX}`, numPartitions: 1, replicationFactor: 1 },
      ],
    });
    const classpath = await classpathPromise;

    // Prime Debezium before the workload: schema history and an offset at the current binlog position.
    const dbzDir = join(context.workDir, 'debezium');
    const [restPort] = await freePorts(1);
    const values = (label: string): Record<string, string> => ({
      BROKER: sandbox?.kafka?.brokers[0] ?? '',
      REST_PORT: String(restPort),
      OFFSETS_FILE: join(dbzDir, `${label}.offsets`),
      MYSQL_PORT: String(sandbox?.mysql[0]?.port ?? 0),
      SERVER_ID: '5401',
      TOPIC_PREFIX: DBZ_PREFIX,
      SCHEMA,
      TABLE,
      HISTORY_FILE: join(dbzDir, `${label}.history`),
      OFFSET_FLUSH_MS: '1000',
      SCHEMAS_ENABLE: 'false',
    });
    const workerTemplate = readFileSync(join(context.scenarioDir, 'worker.properties'), 'utf8');
    const connectorTemplate = readFileSync(
      join(context.scenarioDir, 'connector.properties'),
      'utf8',
    );
    const connect = (label: string): ManagedProcess => {
      const p = connectProcess({
        dir: dbzDir,
        classpath,
        workerProperties: renderProperties(workerTemplate, values(label)),
        connectorProperties: renderProperties(connectorTemplate, values(label)),
        heapMb: 2048,
        label,
      });
      processes.push(p);
      return p;
    };
    log(`priming Debezium ${DEBEZIUM_VERSION} (schema and binlog position before the workload)`);
    const primedOffsets = join(dbzDir, 'prime.offsets');
    await primeSource(connect('prime'), primedOffsets, connectLog(dbzDir, 'prime'));

    const startPosition = await currentGtidPosition(connection, info);
    log(`writing ${formatInt(N)} row changes (capture stopped) after GTID ${startPosition}`);
    const written = await writeMixed(connection, SCHEMA, TABLE, profile);
    log(
      `workload: ${written.inserts} inserts, ${written.updates} updates, ${written.deletes} deletes in ${written.transactions} transactions, ${formatInt((N * 1000) / written.elapsedMs)} rows/s`,
    );
    await connection.end();

    const ourTopic = topicName(pipeline.env.BENCH_TOPIC_PREFIX as string, 'a', SCHEMA, TABLE);
    const measurements: Measurement[] = [];
    const measureOurs = async (r: number): Promise<void> => {
      await saveCapturePosition(pipeline, 'a', startPosition);
      const before = existsTopic(await admin?.listTopics(), ourTopic)
        ? await highWatermark(admin as Admin, ourTopic)
        : 0;
      const daemon = pipeline.daemon('a', `ours-${r}`);
      daemon.start();
      // The daemon creates its topics at start; wait for it before polling offsets.
      while (!existsTopic(await admin?.listTopics(), ourTopic)) {
        daemon.check();
        await sleep(50);
      }
      const f = await follow(
        async () =>
          sumOf((await daemon.tryMetrics()) ?? [], 'cdc_events_captured_total', {
            table: `${SCHEMA}.${TABLE}`,
          }),
        ourTopic,
        N,
        daemon.spawnedAt,
        () => daemon.check(),
      );
      const messages = (await highWatermark(admin as Admin, ourTopic)) - before;
      const metrics = await daemon.metrics();
      const captured = sumOf(metrics, 'cdc_events_captured_total', { table: `${SCHEMA}.${TABLE}` });
      const sample = daemon.sampler?.sample();
      const peak = daemon.sampler?.peakRssMb ?? 0;
      const cpuMs = sample?.cpuMs ?? 0;
      await daemon.stop();
      if (captured < N) throw new Error(`our capture counted ${captured} rows, expected ${N}`);
      measurements.push(record('ours', r, N, { ...f, messages }, peak, cpuMs));
      log(
        `ours #${r}: ${formatInt((N * 1000) / f.drainMs)} rows/s streaming, ${Math.round(f.totalMs)} ms from spawn, peak RSS ${Math.round(peak)} MiB`,
      );
    };
    const measureDebezium = async (r: number): Promise<void> => {
      const label = `run-${r}`;
      copyFileSync(primedOffsets, join(dbzDir, `${label}.offsets`));
      copyFileSync(join(dbzDir, 'prime.history'), join(dbzDir, `${label}.history`));
      const before = await highWatermark(admin as Admin, dbzTopic);
      const p = connect(label);
      const spawnedAt = performance.now();
      p.start();
      const sampler = new ProcSampler(() => p.pid);
      const f = await follow(
        async () => (await highWatermark(admin as Admin, dbzTopic)) - before,
        dbzTopic,
        N,
        spawnedAt,
        () => {
          if (!p.running) throw new Error(`Kafka Connect exited; see ${connectLog(dbzDir, label)}`);
        },
      );
      const sample = sampler.sample();
      const peak = sampler.peakRssMb;
      await p.stop(60_000);
      sampler.stop();
      measurements.push(record('debezium', r, N, f, peak, sample?.cpuMs ?? 0));
      log(
        `debezium #${r}: ${formatInt((N * 1000) / f.drainMs)} rows/s streaming, ${Math.round(f.totalMs)} ms from spawn, peak RSS ${Math.round(peak)} MiB`,
      );
    };
    for (let r = 1; r <= rounds; r += 1) {
      // Alternate who goes first, so a busy neighbour does not always hit the same contender.
      if (r % 2 === 1) {
        await measureOurs(r);
        await measureDebezium(r);
      } else {
        await measureDebezium(r);
        await measureOurs(r);
      }
    }

    const of = (c: Measurement['contender']): Measurement[] =>
      measurements.filter((m) => m.contender === c);
    const med = (c: Measurement['contender'], f: (m: Measurement) => number): number =>
      median(of(c).map(f));
    const oursRate = med('ours', (m) => m.drainRowsPerSec);
    const dbzRate = med('debezium', (m) => m.drainRowsPerSec);
    const ratio = oursRate / dbzRate;
    const row = (c: Measurement['contender'], name: string): string[] => [
      name,
      formatInt(med(c, (m) => m.drainRowsPerSec)),
      formatInt(med(c, (m) => m.totalRowsPerSec)),
      formatInt(med(c, (m) => m.totalMs)),
      formatInt(med(c, (m) => m.peakRssMb)),
      formatInt(med(c, (m) => m.cpuMsPer1kRows)),
      of(c)
        .map((m) => formatInt(m.drainRowsPerSec))
        .join(', '),
    ];
    const last = (c: Measurement['contender']): Measurement | undefined => of(c)[of(c).length - 1];
    return {
      configuration: {
        rows: N,
        workload: profile,
        rounds,
        partitions: PARTITIONS,
        debezium: {
          version: DEBEZIUM_VERSION,
          connectRuntime: 'Kafka Connect standalone, same Kafka release as the broker',
          jvm: '-Xmx2048m, default collector',
          worker: workerTemplate,
          connector: connectorTemplate,
        },
        ours: pipeline.yaml,
        mariadb: info.version,
      },
      figures: {
        workloadWrite: written,
        measurements,
        medianRowsPerSec: { ours: oursRate, debezium: dbzRate },
        ratio: round(ratio, 3),
      },
      tables: [
        {
          title: `Capture of ${formatInt(N)} row changes (${profile.mix.insert * 100}/${profile.mix.update * 100}/${profile.mix.delete * 100} % insert/update/delete, ~200-byte rows) into Kafka, median of ${rounds} round(s)`,
          header: [
            'contender',
            'rows/s streaming',
            'rows/s incl. start-up',
            'ms from spawn',
            'peak RSS MiB',
            'CPU ms / 1k rows',
            'rounds (rows/s)',
          ],
          rows: [
            row('ours', 'cdc-replicator capture'),
            row('debezium', `Debezium ${DEBEZIUM_VERSION} (Connect standalone)`),
          ],
          note: `ours / Debezium = **${ratio.toFixed(2)}×** (streaming rows/s). Streaming = first row acknowledged → N-th acknowledged (Debezium: topic high watermarks, one message per row; ours: cdc_events_captured_total, envelope v2; polled every 50 ms); start-up (node vs JVM + Connect) is in the "incl. start-up" column.`,
        },
      ],
      plots: [
        {
          name: 'progress',
          title: 'rows acknowledged in Kafka',
          svg: lineChart({
            title: `Rows acknowledged in Kafka after the first one (${formatInt(N)} row backlog)`,
            xLabel: 's since first acknowledged message',
            yLabel: 'rows acknowledged',
            series: [
              { name: 'cdc-replicator', points: last('ours')?.progress ?? [] },
              { name: 'Debezium', points: last('debezium')?.progress ?? [] },
            ],
          }),
        },
        {
          name: 'rate',
          title: 'capture rows/s',
          svg: barChart({
            title: 'Capture to Kafka, rows/s (median, streaming)',
            unit: 'rows/s',
            bars: [
              { label: 'cdc-replicator capture', value: oursRate },
              { label: `Debezium ${DEBEZIUM_VERSION}`, value: dbzRate },
            ],
          }),
        },
      ],
      targets: [
        {
          name: 'capture ≥ 1.5× Debezium rows/s',
          target: `≥ ${TARGET_RATIO}×`,
          actual: `${ratio.toFixed(2)}× (${formatInt(oursRate)} vs ${formatInt(dbzRate)} rows/s)`,
          pass: ratio >= TARGET_RATIO,
        },
      ],
      notes: [
        `Both read the same binlog from the same GTID position (Debezium from the offset its priming start stored just before the workload, snapshot.mode=no_data; ours from a saved checkpoint), write JSON without schemas, with acks=all and an idempotent producer, no compression, into ${PARTITIONS}-partition topics.`,
        `Peak RSS is the kernel's VmHWM of the process (the JVM may use up to -Xmx2048m heap).`,
      ],
    };
  } finally {
    await Promise.allSettled(processes.map((p) => p.stop(30_000)));
    await admin?.disconnect().catch(() => undefined);
    await sandbox?.stop();
  }
}

function existsTopic(topics: string[] | undefined, topic: string): boolean {
  return topics?.includes(topic) ?? false;
}

function record(
  contender: Measurement['contender'],
  r: number,
  rows: number,
  f: { totalMs: number; drainMs: number; messages: number; progress: [number, number][] },
  peakRssMb: number,
  cpuMs: number,
): Measurement {
  // Thin the progress curve to about 200 points.
  const step = Math.max(1, Math.ceil(f.progress.length / 200));
  return {
    contender,
    round: r,
    rows,
    totalMs: Math.round(f.totalMs),
    drainMs: Math.round(f.drainMs),
    drainRowsPerSec: Math.round((rows * 1000) / Math.max(1, f.drainMs)),
    totalRowsPerSec: Math.round((rows * 1000) / f.totalMs),
    peakRssMb: Math.round(peakRssMb),
    cpuMs: Math.round(cpuMs),
    cpuMsPer1kRows: round((cpuMs * 1000) / rows, 1),
    messages: f.messages,
    progress: f.progress.filter((_, i) => i % step === 0 || i === f.progress.length - 1),
  };
}

export const captureVsDebezium: Scenario = {
  name: 'capture-vs-debezium',
  title:
    'capture into Kafka: cdc-replicator vs Debezium (MariaDB connector, Kafka Connect standalone)',
  run,
};
