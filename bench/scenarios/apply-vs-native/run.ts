import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin } from 'kafkajs';
import mysql from 'mysql2/promise';
import { applyGroupId } from '../../../src/apply/apply-stage.js';
import { createKafka } from '../../../src/bus/kafka.js';
import { currentGtidPosition } from '../../../src/capture/server-check.js';
import type { MysqlConnection } from '../../../src/mysql/connection.js';
import { serverInfo } from '../../../src/mysql/introspect.js';
import {
  connectionOptions,
  requirePrograms,
  startSandbox,
  type Sandbox,
  type SandboxService,
} from '../../../src/sandbox/index.js';
import { LocalMariaDb } from '../../../src/sandbox/local/mariadb.js';
import { freePorts } from '../../../src/sandbox/ports.js';
import { loadProfile, Pipeline, saveCapturePosition } from '../../support/bench-env.js';
import { writeCatchup, type CatchupProfile } from '../../support/catchup-workload.js';
import { type DaemonProc, waitUntil } from '../../support/daemon-proc.js';
import { DEBEZIUM_VERSION } from '../../support/debezium.js';
import { gtidSeq, queryValue, tableChecksum } from '../../support/db.js';
import {
  MIXED_COLUMNS,
  mixedTableDdl,
  writeMixed,
  type MixProfile,
} from '../../support/mixed-workload.js';
import { adaptivePollMs, cpuMsOf } from '../../support/proc.js';
import { sumOf } from '../../support/prom.js';
import { formatInt, median } from '../../support/stats.js';
import { barChart, lineChart } from '../../support/svg.js';
import {
  round,
  scaled,
  type Scenario,
  type ScenarioContext,
  type ScenarioResult,
  type Table,
  type TargetResult,
} from '../../support/scenario.js';
import { DebeziumSink, type FeedResult, type SinkSettings } from './debezium-sink.js';

const SCHEMA = 'benchapply';
const OURS = 'cdc-replicator';
/** Ours measured as the Debezium sink is: the changes in Kafka beforehand, the applying daemon alone. */
const OURS_APPLY = 'cdc-replicator, apply only (changes in Kafka beforehand)';

interface NativeVariant {
  name: string;
  threads: number;
  mode: 'conservative' | 'optimistic' | 'aggressive' | 'minimal' | 'none';
  /** Run on the replica started with --log-slave-updates (it binlogs what it applies). */
  logSlaveUpdates?: boolean;
}

type WorkloadKey = 'benchMix' | 'catchUp';

interface Load {
  rounds: number;
  benchMix: MixProfile & { table: string };
  catchUp: CatchupProfile & { table: string };
  native: NativeVariant[];
  /** The native variant the headline ratio is against. */
  reference: string;
  rawUpsert: { batchRows: number };
  /** Runs per round of each native variant and of the raw upsert (short runs, noisy alone). */
  repeats: { native: number; rawUpsert: number };
  /** The Debezium JDBC sink contender (partitions: those of ours, the kafka.topics default). */
  debeziumJdbcSink: Omit<SinkSettings, 'partitions'>;
  targets: {
    vsNative: number;
    vsNativeMoonshot: number;
    vsRawUpsert: number;
    vsDebeziumJdbcSink: number;
  };
}

/** CPU ms of each process group over a contender's run (start → last row applied). */
interface CpuMs {
  /** Our two daemons (a + b), the bench process (raw upsert) or the Connect JVM (Debezium sink); absent for native. */
  client?: number;
  /** The Connect JVM's CPU from spawn to the sink's first row (not in `client`). */
  startupConnect?: number;
  daemonA?: number;
  daemonB?: number;
  /** Our daemons' CPU from spawn to their first backlog row (not in `client`). */
  startupA?: number;
  startupB?: number;
  /** mariadbd of region a (binlog dump to the capture or the replica's IO thread). */
  mariadbSource?: number;
  /** mariadbd written to: b, the replica, or the log_slave_updates replica. */
  mariadbTarget: number;
  kafka?: number;
}

interface Measurement {
  workload: WorkloadKey;
  contender: string;
  round: number;
  /** Rows this contender wrote: the row changes of the backlog, or the final rows for the raw upsert. */
  rows: number;
  /** Start (daemons spawned / START SLAVE / first batch sent) → every row applied. */
  totalMs: number;
  /** First row applied → every row applied. */
  drainMs: number;
  rowsPerSec: number;
  totalRowsPerSec: number;
  /** Share of the backlog applied over time, s since the first applied row. */
  progress: [number, number][];
  check: string;
  cpuMs: CpuMs;
  peakRssMb?: { a: number; b: number };
}

interface Backlog {
  key: WorkloadKey;
  label: string;
  table: string;
  /** Row changes in the binlog. */
  rows: number;
  transactions: number;
  written: unknown;
  startPosition: string;
  endPosition: string;
  startSeq: number;
  endSeq: number;
  reference: { rows: number; crc: string };
  /** a's rows after the workload, as arrays in MIXED_COLUMNS order (for the raw upsert). */
  finalRows: unknown[][];
}

function thin(points: [number, number][]): [number, number][] {
  const step = Math.max(1, Math.ceil(points.length / 200));
  return points.filter((_, i) => i % step === 0 || i === points.length - 1);
}

const pidsOf = (service: SandboxService | undefined): number[] => service?.pids() ?? [];

function rawName(batchRows: number): string {
  return `raw upsert (mysql2, ${batchRows} rows/stmt)`;
}

function workloadName(key: WorkloadKey): string {
  return key === 'benchMix' ? 'bench mix' : 'catch-up mix';
}

const SINK_SCHEMA = 'benchsink';
const PARTITIONS = 3;

async function run(context: ScenarioContext): Promise<ScenarioResult> {
  const load = loadProfile<Load>(context);
  const mixProfile: MixProfile = {
    ...load.benchMix,
    rows: scaled(load.benchMix.rows, context.scale, 10_000),
  };
  const catchProfile: CatchupProfile = {
    ...load.catchUp,
    rows: scaled(load.catchUp.rows, context.scale, 10_000),
  };
  const rounds = context.scale < 0.5 ? 1 : load.rounds;
  const RAW = rawName(load.rawUpsert.batchRows);
  const REFERENCE = `native ${load.reference}`;
  const sinkSettings: SinkSettings = { ...load.debeziumJdbcSink, partitions: PARTITIONS };
  const SINK = `Debezium JDBC sink ${DEBEZIUM_VERSION} (upsert, batch ${sinkSettings.batchSize}, ${sinkSettings.tasks} tasks)`;
  const { log } = context;
  // Resolving the Debezium jars may take minutes on the first run: under way while the services start.
  const classpaths = DebeziumSink.classpaths(log).then(
    (c) => c,
    (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
  );
  let admin: Admin | undefined;
  let sink: DebeziumSink | undefined;
  /** Why the Debezium sink contender could not run at all, when it could not. */
  let sinkUnavailable: string | undefined;
  const feeds: (FeedResult & { workload: WorkloadKey })[] = [];
  const failedFeeds: string[] = [];
  let sandbox: Sandbox | undefined;
  let lsuServer: LocalMariaDb | undefined;
  const daemons: DaemonProc[] = [];
  const connections: MysqlConnection[] = [];
  try {
    sandbox = await startSandbox({
      regions: ['a', 'b', 'replica'],
      kafka: true,
      redis: false,
      log,
    });
    const sb = sandbox;
    // log_slave_updates is not dynamic, so the replica that binlogs what it applies is a server of its own.
    const [lsuPort] = await freePorts(1);
    lsuServer = new LocalMariaDb({
      region: 'replica-lsu',
      dir: join(context.workDir, 'mariadb-replica-lsu'),
      port: lsuPort as number,
      serverId: 201,
      gtidDomainId: 9,
      bufferPoolMb: 128,
      programs: requirePrograms(['mariadbd', 'mariadbInstallDb']),
      extraArgs: ['--log-slave-updates'],
    });
    await lsuServer.start();
    const lsu = lsuServer;

    const base = await Pipeline.create(context, sb, 'avn-setup');
    admin = createKafka(base.options('a').kafka, context.logger).admin();
    await admin.connect();
    const ourAdmin = admin;
    const connA = await base.connect('a');
    const connB = await base.connect('b');
    const endpointA = sb.mysql[0];
    const replicaEndpoint = sb.mysql[2];
    if (replicaEndpoint === undefined || endpointA === undefined)
      throw new Error('sandbox without 3 servers');
    const connR = await mysql.createConnection(connectionOptions(replicaEndpoint));
    const connL = await mysql.createConnection(connectionOptions(lsu.endpoint));
    // The raw upsert reads a's final rows as a plain Node program would: numbers, DATETIME as text.
    const connFetch = await mysql.createConnection({
      ...connectionOptions(endpointA),
      dateStrings: true,
    });
    connections.push(connA, connB, connR, connL, connFetch);
    const replicas: Record<'plain' | 'lsu', { conn: MysqlConnection; pids: () => number[] }> = {
      plain: { conn: connR, pids: () => pidsOf(sb.services.mysql[2]) },
      lsu: { conn: connL, pids: () => lsu.pids() },
    };
    for (const [name, conn, want] of [
      ['replica', connR, '0'],
      ['replica-lsu', connL, '1'],
    ] as const) {
      const got = await queryValue(conn, 'SELECT @@GLOBAL.log_slave_updates');
      if (got !== want) throw new Error(`${name}: log_slave_updates is ${got}, expected ${want}`);
    }
    const info = await serverInfo(connA);
    const tables = [load.benchMix.table, load.catchUp.table];
    for (const c of [connA, connB]) {
      await c.query(`CREATE DATABASE ${SCHEMA}`);
      for (const t of tables) await c.query(mixedTableDdl(SCHEMA, t));
    }
    await base.prepare('a');
    await base.prepare('b');
    // The replicas get a's tables exactly as prepared (with the invisible version columns), so a's row events fit them.
    for (const conn of [connR, connL]) {
      await conn.query('SET SESSION sql_log_bin = 0');
      await conn.query(`CREATE DATABASE ${SCHEMA}`);
      await conn.query(`USE ${SCHEMA}`);
      for (const t of tables) {
        const [created] = await connA.query<mysql.RowDataPacket[]>(
          `SHOW CREATE TABLE ${SCHEMA}.${t}`,
        );
        await conn.query(String(created[0]?.['Create Table']));
      }
      await conn.query(`SET GLOBAL replicate_do_db = '${SCHEMA}'`);
      await conn.query('SET SESSION sql_log_bin = 1');
    }
    // The Debezium JDBC sink's target: plain copies of the tables (no version columns) on replica-lsu
    // (binlog on, like b), in a schema of their own; replicate_do_db keeps native replication out of it.
    await connL.query('SET SESSION sql_log_bin = 0');
    await connL.query(`CREATE DATABASE ${SINK_SCHEMA}`);
    for (const t of tables) await connL.query(mixedTableDdl(SINK_SCHEMA, t));
    await connL.query('SET SESSION sql_log_bin = 1');
    const domain = endpointA.gtidDomainId;
    const aPids = (): number[] => pidsOf(sb.services.mysql[0]);
    const bPids = (): number[] => pidsOf(sb.services.mysql[1]);
    const kafkaPids = (): number[] => pidsOf(sb.services.kafka);

    const writeBacklog = async (key: WorkloadKey): Promise<Backlog> => {
      const table = key === 'benchMix' ? load.benchMix.table : load.catchUp.table;
      const startPosition = await currentGtidPosition(connA, info);
      let rows: number;
      let transactions: number;
      let written: unknown;
      let label: string;
      if (key === 'benchMix') {
        log(
          `bench mix: writing ${formatInt(mixProfile.rows)} row changes in a (nothing replicating)`,
        );
        const w = await writeMixed(connA, SCHEMA, table, mixProfile);
        ({ rows, transactions } = w);
        written = w;
        const m = mixProfile.mix;
        label = `bench mix (${Math.round(m.insert * 100)}/${Math.round(m.update * 100)}/${Math.round(m.delete * 100)} % insert/update/delete, ${mixProfile.rowsPerTransaction} changes per transaction)`;
      } else {
        log(
          `catch-up mix: writing ${formatInt(catchProfile.rows)} row changes in a (nothing replicating)`,
        );
        const w = await writeCatchup(connA, SCHEMA, table, catchProfile);
        ({ rows, transactions } = w);
        written = w;
        const share = (n: number): number => Math.round((n * 100) / w.rows);
        label =
          `catch-up mix (${share(w.byKind.insert)} % in ${catchProfile.insertRowsPerStatement}-row INSERTs, ` +
          `${share(w.byKind.singleUpdate)} % single-row UPDATEs in ${catchProfile.updatesPerTransaction}-row transactions, ` +
          `${share(w.byKind.rangeUpdate)} % range UPDATEs, ${share(w.byKind.delete)} % IN-list DELETEs)`;
      }
      const endPosition = await currentGtidPosition(connA, info);
      const reference = await tableChecksum(connA, `${SCHEMA}.${table}`, MIXED_COLUMNS);
      const [fetched] = await connFetch.query<mysql.RowDataPacket[]>({
        sql: `SELECT ${MIXED_COLUMNS} FROM ${SCHEMA}.${table} ORDER BY id`,
        rowsAsArray: true,
      });
      const backlog: Backlog = {
        key,
        label,
        table,
        rows,
        transactions,
        written,
        startPosition,
        endPosition,
        startSeq: gtidSeq(startPosition, domain),
        endSeq: gtidSeq(endPosition, domain),
        reference,
        finalRows: fetched as unknown as unknown[][],
      };
      log(
        `${key}: ${formatInt(rows)} changes in ${formatInt(transactions)} transactions, GTID ${backlog.startSeq}..${backlog.endSeq}, ${formatInt(reference.rows)} rows remain in a`,
      );
      return backlog;
    };

    const measurements: Measurement[] = [];
    const checkOf = async (
      conn: MysqlConnection,
      w: Backlog,
      where: string,
      schema = SCHEMA,
    ): Promise<string> => {
      const got = await tableChecksum(conn, `${schema}.${w.table}`, MIXED_COLUMNS);
      return got.rows === w.reference.rows && got.crc === w.reference.crc
        ? 'ok'
        : `${where} differs: ${got.rows} rows crc ${got.crc} vs ${w.reference.rows} crc ${w.reference.crc}`;
    };
    const record = (m: Omit<Measurement, 'rowsPerSec' | 'totalRowsPerSec'>, extra = ''): void => {
      // A Debezium sink run that did not converge has no time: 0 rows/s, left out of the figures.
      const untimed = m.contender === SINK && m.check !== 'ok';
      const full: Measurement = {
        ...m,
        rowsPerSec: untimed ? 0 : Math.round((m.rows * 1000) / Math.max(1, m.drainMs)),
        totalRowsPerSec: untimed ? 0 : Math.round((m.rows * 1000) / Math.max(1, m.totalMs)),
      };
      measurements.push(full);
      const timing = untimed
        ? 'did not converge, not timed'
        : `${formatInt(full.rowsPerSec)} rows/s (${formatInt(m.totalMs)} ms incl. start)`;
      log(`${m.workload} ${m.contender} #${m.round}: ${timing}, check ${m.check}${extra}`);
    };

    const measureNative = async (w: Backlog, variant: NativeVariant, r: number): Promise<void> => {
      const replica = replicas[variant.logSlaveUpdates === true ? 'lsu' : 'plain'];
      const connRep = replica.conn;
      await connRep.query('STOP SLAVE').catch(() => undefined);
      await connRep.query(`SET GLOBAL slave_parallel_threads = ${variant.threads}`);
      await connRep.query(`SET GLOBAL slave_parallel_mode = '${variant.mode}'`);
      await connRep.query('SET SESSION sql_log_bin = 0');
      await connRep.query(`TRUNCATE TABLE ${SCHEMA}.${w.table}`);
      await connRep.query('SET SESSION sql_log_bin = 1');
      // A binlog holding a later GTID of a's domain (a previous round) would refuse the older start position.
      if (variant.logSlaveUpdates === true) await connRep.query('RESET MASTER');
      await connRep.query(`SET GLOBAL gtid_slave_pos = '${w.startPosition}'`);
      await connRep.query(
        `CHANGE MASTER TO MASTER_HOST = '${endpointA.host}', MASTER_PORT = ${endpointA.port}, MASTER_USER = '${endpointA.user}', MASTER_PASSWORD = '${endpointA.password}', MASTER_USE_GTID = slave_pos`,
      );
      const cpu0 = { source: cpuMsOf(aPids()), target: cpuMsOf(replica.pids()) };
      const started = performance.now();
      await connRep.query('START SLAVE');
      let firstAt: number | undefined;
      const progress: [number, number][] = [];
      let lastSeq = w.startSeq;
      let lastProgressAt = started;
      for (;;) {
        const seq = gtidSeq(await queryValue(connRep, 'SELECT @@GLOBAL.gtid_slave_pos'), domain);
        const now = performance.now();
        if (seq > w.startSeq && firstAt === undefined) firstAt = now;
        if (firstAt !== undefined)
          progress.push([
            round((now - firstAt) / 1000, 2),
            round(Math.min(1, (seq - w.startSeq) / (w.endSeq - w.startSeq)) * 100, 1),
          ]);
        if (seq >= w.endSeq) break;
        if (seq > lastSeq) {
          lastSeq = seq;
          lastProgressAt = now;
        } else if (now - lastProgressAt > 120_000) {
          const [status] = await connRep.query<mysql.RowDataPacket[]>('SHOW SLAVE STATUS');
          throw new Error(
            `native replication stalled at ${seq}: ${String(status[0]?.Last_SQL_Error)} ${String(status[0]?.Last_IO_Error)}`,
          );
        }
        await sleep(adaptivePollMs(now - started, 20));
      }
      const done = performance.now();
      const cpuMs: CpuMs = {
        mariadbSource: Math.round(cpuMsOf(aPids()) - cpu0.source),
        mariadbTarget: Math.round(cpuMsOf(replica.pids()) - cpu0.target),
      };
      await connRep.query('STOP SLAVE');
      record({
        workload: w.key,
        contender: `native ${variant.name}`,
        round: r,
        rows: w.rows,
        totalMs: Math.round(done - started),
        drainMs: Math.round(done - (firstAt ?? started)),
        progress: thin(progress),
        check: await checkOf(connRep, w, 'replica'),
        cpuMs,
      });
    };

    const measureOurs = async (w: Backlog, r: number): Promise<void> => {
      // Own topic prefix, state and consumer group per round: b starts from nothing, a from the backlog's start.
      const pipeline = await Pipeline.create(context, sb, `avn-${w.key}-r${r}`);
      await emptyTarget(pipeline, w);
      await saveCapturePosition(pipeline, 'a', w.startPosition);
      const a = pipeline.daemon('a');
      const b = pipeline.daemon('b');
      daemons.push(a, b);
      const started = performance.now();
      a.start();
      b.start();
      let firstAt: number | undefined;
      const progress: [number, number][] = [];
      const label = `${SCHEMA}.${w.table}`;
      // CPU from each process's first unit of backlog work: a, Kafka and MariaDB a from a's first
      // captured row, b and MariaDB b from b's first applied row; the daemons' start-up before that
      // (node, modules, connections, topics) is reported apart.
      let fromCapture: { a: number; kafka: number; source: number } | undefined;
      let fromApply: { b: number; target: number } | undefined;
      const cpuOf = (d: DaemonProc): number => d.sampler?.sample()?.cpuMs ?? 0;
      await waitUntil(
        async () => {
          if (fromCapture === undefined) {
            const ma = await a.tryMetrics();
            if (ma !== undefined && sumOf(ma, 'cdc_events_captured_total', { table: label }) > 0)
              fromCapture = { a: cpuOf(a), kafka: cpuMsOf(kafkaPids()), source: cpuMsOf(aPids()) };
          }
          const metrics = await b.tryMetrics();
          if (metrics === undefined) return 0;
          const applied = sumOf(metrics, 'cdc_events_applied_total', {
            source_region: 'a',
            table: label,
          });
          const now = performance.now();
          if (applied > 0 && fromApply === undefined)
            fromApply = { b: cpuOf(b), target: cpuMsOf(bPids()) };
          if (applied > 0 && firstAt === undefined) firstAt = now;
          if (firstAt !== undefined)
            progress.push([round((now - firstAt) / 1000, 2), round((applied / w.rows) * 100, 1)]);
          return applied;
        },
        w.rows,
        'apply in b',
        { pollMs: (elapsed) => adaptivePollMs(elapsed, 50), check: () => (a.check(), b.check()) },
      );
      const done = performance.now();
      const endA = cpuOf(a);
      const endB = cpuOf(b);
      // Both are set once b has applied anything; a captured before b could apply.
      const c0 = fromCapture ?? { a: 0, kafka: cpuMsOf(kafkaPids()), source: cpuMsOf(aPids()) };
      const b0 = fromApply ?? { b: 0, target: cpuMsOf(bPids()) };
      const daemonA = endA - c0.a;
      const daemonB = endB - b0.b;
      const cpuMs: CpuMs = {
        client: Math.round(daemonA + daemonB),
        daemonA: Math.round(daemonA),
        daemonB: Math.round(daemonB),
        startupA: Math.round(c0.a),
        startupB: Math.round(b0.b),
        mariadbSource: Math.round(cpuMsOf(aPids()) - c0.source),
        mariadbTarget: Math.round(cpuMsOf(bPids()) - b0.target),
        kafka: Math.round(cpuMsOf(kafkaPids()) - c0.kafka),
      };
      const peakRssMb = {
        a: Math.round(a.sampler?.peakRssMb ?? 0),
        b: Math.round(b.sampler?.peakRssMb ?? 0),
      };
      await Promise.all([a.stop(), b.stop()]);
      record(
        {
          workload: w.key,
          contender: OURS,
          round: r,
          rows: w.rows,
          totalMs: Math.round(done - started),
          drainMs: Math.round(done - (firstAt ?? started)),
          progress: thin(progress),
          check: await checkOf(connB, w, 'b'),
          cpuMs,
          peakRssMb,
        },
        `, peak RSS a ${peakRssMb.a} / b ${peakRssMb.b} MiB`,
      );
      await measureApplyOnly(pipeline, w, r);
    };

    /**
     * Ours like the Debezium sink is measured: the changes already in Kafka (a's capture just put
     * them there, in the run before), b's daemon alone applies them into its emptied table. The
     * group's committed offsets are deleted, so b reads the topics from their first event again.
     */
    const measureApplyOnly = async (pipeline: Pipeline, w: Backlog, r: number): Promise<void> => {
      await emptyTarget(pipeline, w);
      await ourAdmin.deleteGroups([applyGroupId(pipeline.options('b').kafka.topicPrefix, 'b')]);
      const b = pipeline.daemon('b', 'b-apply-only');
      daemons.push(b);
      const started = performance.now();
      b.start();
      let firstAt: number | undefined;
      let from: { b: number; target: number; kafka: number } | undefined;
      const progress: [number, number][] = [];
      const label = `${SCHEMA}.${w.table}`;
      const cpuOf = (d: DaemonProc): number => d.sampler?.sample()?.cpuMs ?? 0;
      await waitUntil(
        async () => {
          const metrics = await b.tryMetrics();
          if (metrics === undefined) return 0;
          const applied = sumOf(metrics, 'cdc_events_applied_total', {
            source_region: 'a',
            table: label,
          });
          const now = performance.now();
          if (applied > 0 && from === undefined)
            from = { b: cpuOf(b), target: cpuMsOf(bPids()), kafka: cpuMsOf(kafkaPids()) };
          if (applied > 0 && firstAt === undefined) firstAt = now;
          if (firstAt !== undefined)
            progress.push([round((now - firstAt) / 1000, 2), round((applied / w.rows) * 100, 1)]);
          return applied;
        },
        w.rows,
        'apply-only in b',
        { pollMs: (elapsed) => adaptivePollMs(elapsed, 50), check: () => b.check() },
      );
      const done = performance.now();
      const end = cpuOf(b);
      const b0 = from ?? { b: 0, target: cpuMsOf(bPids()), kafka: cpuMsOf(kafkaPids()) };
      const peakRssMb = { a: 0, b: Math.round(b.sampler?.peakRssMb ?? 0) };
      await b.stop();
      record(
        {
          workload: w.key,
          contender: OURS_APPLY,
          round: r,
          rows: w.rows,
          totalMs: Math.round(done - started),
          drainMs: Math.round(done - (firstAt ?? started)),
          progress: thin(progress),
          check: await checkOf(connB, w, 'b'),
          cpuMs: {
            client: Math.round(end - b0.b),
            daemonB: Math.round(end - b0.b),
            startupB: Math.round(b0.b),
            mariadbTarget: Math.round(cpuMsOf(bPids()) - b0.target),
            kafka: Math.round(cpuMsOf(kafkaPids()) - b0.kafka),
          },
          peakRssMb,
        },
        `, peak RSS b ${peakRssMb.b} MiB`,
      );
    };

    /** b's table and the internal tables a run writes, emptied: b applies the backlog from nothing. */
    const emptyTarget = async (pipeline: Pipeline, w: Backlog): Promise<void> => {
      await connB.query(`TRUNCATE TABLE ${SCHEMA}.${w.table}`);
      const internal = pipeline.options('b').internalSchema;
      await connB.query(`TRUNCATE TABLE \`${internal}\`.\`_cdc_tombstones\``);
      await connB.query(`TRUNCATE TABLE \`${internal}\`.\`_cdc_conflicts\``);
    };

    const columns = MIXED_COLUMNS.split(',').map((c) => c.trim());
    const upsertSql =
      `INSERT INTO ${SCHEMA}.%TABLE% (${columns.join(', ')}) VALUES ? ON DUPLICATE KEY UPDATE ` +
      columns
        .filter((c) => c !== 'id')
        .map((c) => `${c} = VALUES(${c})`)
        .join(', ');
    const measureRaw = async (w: Backlog, r: number): Promise<void> => {
      // Into the log_slave_updates replica's copy of the table: the same kind of server, binlog on.
      await connL.query('STOP SLAVE').catch(() => undefined);
      await connL.query('RESET MASTER');
      await connL.query('SET SESSION sql_log_bin = 0');
      await connL.query(`TRUNCATE TABLE ${SCHEMA}.${w.table}`);
      await connL.query('SET SESSION sql_log_bin = 1');
      const sql = upsertSql.replace('%TABLE%', w.table);
      const batch = load.rawUpsert.batchRows;
      const cpu0 = { target: cpuMsOf(lsu.pids()), client: process.cpuUsage() };
      const started = performance.now();
      const progress: [number, number][] = [];
      for (let i = 0; i < w.finalRows.length; i += batch) {
        await connL.query(sql, [w.finalRows.slice(i, i + batch)]);
        const written = Math.min(w.finalRows.length, i + batch);
        progress.push([
          round((performance.now() - started) / 1000, 2),
          round((written / w.finalRows.length) * 100, 1),
        ]);
      }
      const done = performance.now();
      const client = process.cpuUsage(cpu0.client);
      const cpuMs: CpuMs = {
        client: Math.round((client.user + client.system) / 1000),
        mariadbTarget: Math.round(cpuMsOf(lsu.pids()) - cpu0.target),
      };
      record({
        workload: w.key,
        contender: RAW,
        round: r,
        rows: w.finalRows.length,
        totalMs: Math.round(done - started),
        drainMs: Math.round(done - started),
        progress: thin(progress),
        check: await checkOf(connL, w, 'raw upsert target'),
        cpuMs,
      });
    };

    const measureSink = async (w: Backlog, r: number): Promise<void> => {
      if (sink === undefined) return;
      const run = await sink.measure(w.table);
      record({
        workload: w.key,
        contender: SINK,
        round: r,
        rows: w.rows,
        totalMs: run.startMs + run.drainMs,
        drainMs: run.drainMs,
        progress: thin(run.progress),
        check: run.check,
        cpuMs: {
          client: run.connectCpuMs,
          startupConnect: run.connectStartupCpuMs,
          mariadbTarget: run.targetCpuMs,
        },
      });
    };

    const backlogs: Backlog[] = [];
    // The Debezium side: topics created and the source connector primed before the first workload.
    try {
      const resolved = await classpaths;
      if (resolved instanceof Error) throw resolved;
      const [restPort] = await freePorts(1);
      sink = await DebeziumSink.prepare({
        workDir: context.workDir,
        root: context.root,
        scenarioDir: context.scenarioDir,
        broker: sb.kafka?.brokers[0] ?? '',
        restPort: restPort as number,
        sourcePort: endpointA.port,
        schema: SCHEMA,
        tables,
        admin: ourAdmin,
        settings: sinkSettings,
        classpaths: resolved,
        log,
        target: {
          port: lsu.endpoint.port,
          schema: SINK_SCHEMA,
          empty: async (table) => {
            await connL.query('SET SESSION sql_log_bin = 0');
            await connL.query(`TRUNCATE TABLE ${SINK_SCHEMA}.${table}`);
            await connL.query('SET SESSION sql_log_bin = 1');
          },
          hasRows: async (table) =>
            (await queryValue(connL, `SELECT EXISTS (SELECT 1 FROM ${SINK_SCHEMA}.${table})`)) ===
            '1',
          check: async (table) => {
            const w = backlogs.find((b) => b.table === table);
            if (w === undefined) throw new Error(`no backlog for ${table}`);
            return checkOf(connL, w, 'Debezium sink target', SINK_SCHEMA);
          },
          cpuMs: () => cpuMsOf(lsu.pids()),
        },
      });
    } catch (err) {
      if (!(err instanceof Error)) throw err;
      sinkUnavailable = err.message;
      log(`Debezium JDBC sink contender not run: ${err.message}`);
    }
    // One workload after the other: a's binlog past a workload's end must not feed its measurements.
    for (const key of ['benchMix', 'catchUp'] as const) {
      const w = await writeBacklog(key);
      backlogs.push(w);
      // The Debezium sink's input: the source connector puts the workload's change events into Kafka
      // once (not a contender, not timed in any ratio); every sink run then reads that topic.
      let sinkFed = false;
      if (sink !== undefined) {
        try {
          const feed = await sink.feed(w.table, w.rows);
          feeds.push({ workload: key, ...feed });
          sinkFed = true;
          log(
            `${key}: Debezium source put ${formatInt(feed.messages)} change events into ${sink.topic(w.table)} in ${formatInt(feed.ms)} ms (untimed feed of the sink)`,
          );
        } catch (err) {
          if (!(err instanceof Error)) throw err;
          feeds.push({ workload: key, table: w.table, messages: 0, ms: 0, connectCpuMs: 0 });
          log(`${key}: Debezium source feed failed, no sink runs: ${err.message}`);
          failedFeeds.push(`${workloadName(key)}: ${err.message}`);
        }
      }
      // Native and raw runs last well under a second at --quick scale, so each is repeated
      // (`repeats`, back to back) and the median of all its runs is the figure.
      const times = <T>(n: number, f: T): T[] => Array.from({ length: Math.max(1, n) }, () => f);
      const steps: ((r: number) => Promise<void>)[] = [
        (r) => measureOurs(w, r),
        ...load.native.flatMap((v) =>
          times(load.repeats.native, (r: number) => measureNative(w, v, r)),
        ),
        ...times(load.repeats.rawUpsert, (r: number) => measureRaw(w, r)),
        ...(sinkFed ? [(r: number) => measureSink(w, r)] : []),
      ];
      for (let r = 1; r <= rounds; r += 1)
        for (const step of r % 2 === 1 ? steps : [...steps].reverse()) await step(r);
      // The workload's rows are not needed any more; the next one is written after.
      w.finalRows = [];
    }

    // ---- report ----
    const of = (key: WorkloadKey, c: string): Measurement[] =>
      measurements.filter((m) => m.workload === key && m.contender === c);
    // A Debezium sink run that did not converge is a failure, not a time: its figures leave it out.
    const timed = (key: WorkloadKey, c: string): Measurement[] =>
      of(key, c).filter((m) => c !== SINK || m.check === 'ok');
    const med = (key: WorkloadKey, c: string, f: (m: Measurement) => number): number =>
      median(timed(key, c).map(f));
    const rate = (key: WorkloadKey, c: string): number => med(key, c, (m) => m.rowsPerSec);
    const perRowUs = (
      key: WorkloadKey,
      c: string,
      f: (cpu: CpuMs) => number | undefined,
    ): string => {
      const values = timed(key, c)
        .map((m) => {
          const v = f(m.cpuMs);
          return v === undefined ? undefined : (v * 1000) / m.rows;
        })
        .filter((v): v is number => v !== undefined);
      return values.length === 0 ? '–' : median(values).toFixed(1);
    };
    const contenders = [...new Set(measurements.map((m) => m.contender))];
    const plainNatives = load.native.filter((v) => v.logSlaveUpdates !== true);
    const ratios = backlogs.map((w) => {
      const ours = rate(w.key, OURS);
      const bestPlain = plainNatives
        .map((v) => `native ${v.name}`)
        .reduce((b, c) => (rate(w.key, c) > rate(w.key, b) ? c : b));
      return {
        workload: w.key,
        ours,
        reference: rate(w.key, REFERENCE),
        raw: rate(w.key, RAW),
        bestPlain,
        bestPlainRate: rate(w.key, bestPlain),
        vsReference: ours / rate(w.key, REFERENCE),
        vsRaw: ours / rate(w.key, RAW),
        vsBestPlain: ours / rate(w.key, bestPlain),
        rawVsReference: rate(w.key, RAW) / rate(w.key, REFERENCE),
        /** NaN when the sink did not run or never converged on this workload. */
        sink: rate(w.key, SINK),
        vsSink: ours / rate(w.key, SINK),
        /** Like for like with the sink: both read changes put into Kafka beforehand. NaN if either is missing. */
        applyOnly: rate(w.key, OURS_APPLY),
        applyOnlyVsSink: rate(w.key, OURS_APPLY) / rate(w.key, SINK),
      };
    });
    const failedChecks = measurements.filter((m) => m.check !== 'ok');
    const lastOf = (key: WorkloadKey, c: string): Measurement | undefined => of(key, c).pop();
    const x = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(3)}×` : 'n/a');
    const sinkStatus = (key: WorkloadKey): string =>
      sinkUnavailable !== undefined
        ? 'not run'
        : of(key, SINK).length === 0
          ? 'not run (no feed)'
          : 'did not converge';

    const workloadTables: Table[] = backlogs.map((w) => ({
      title: `${workloadName(w.key)}: catch-up on ${formatInt(w.rows)} row changes (${formatInt(w.transactions)} transactions, ${formatInt(w.reference.rows)} final rows) from region a, median of ${rounds} round(s) (native: ${load.repeats.native} runs per round, raw upsert: ${load.repeats.rawUpsert})`,
      header: [
        'contender',
        'rows/s (first → last row applied)',
        'rows/s incl. start',
        'ms incl. start',
        'ours ÷ this',
        'daemons (a + b) / client / Connect JVM CPU µs per row',
        'MariaDB CPU µs per row (source + target)',
        'Kafka CPU µs per row',
        'check',
      ],
      rows: contenders.map((c) => [
        c,
        formatInt(rate(w.key, c)),
        formatInt(med(w.key, c, (m) => m.totalRowsPerSec)),
        formatInt(med(w.key, c, (m) => m.totalMs)),
        x(rate(w.key, OURS) / rate(w.key, c)),
        c === OURS
          ? `${perRowUs(w.key, c, (cpu) => cpu.client)} (${perRowUs(w.key, c, (cpu) => cpu.daemonA)} + ${perRowUs(w.key, c, (cpu) => cpu.daemonB)})`
          : perRowUs(w.key, c, (cpu) => cpu.client),
        `${perRowUs(w.key, c, (cpu) => (cpu.mariadbSource ?? 0) + cpu.mariadbTarget)} (${perRowUs(w.key, c, (cpu) => cpu.mariadbSource)} + ${perRowUs(w.key, c, (cpu) => cpu.mariadbTarget)})`,
        perRowUs(w.key, c, (cpu) => cpu.kafka),
        of(w.key, c).every((m) => m.check === 'ok') ? 'ok' : 'FAIL',
      ]),
      note:
        `Workload: ${w.label}. Ours = a's daemon (capture) and b's daemon (apply) as processes, started on the backlog; ` +
        `${OURS_APPLY} = right after, b's table emptied and its consumer group deleted, b's daemon alone applies the changes a put into Kafka (as the Debezium sink is fed); ` +
        `native = a replica server replicating from a with GTID (CHANGE MASTER TO ... MASTER_USE_GTID = slave_pos) from the same position, after START SLAVE; ` +
        `${RAW} = a's ${formatInt(w.reference.rows)} final rows written by the bench process into the log_slave_updates replica's empty copy of the table (binlog on), its rows/s counts final rows. ` +
        `${SINK} = the same change events, put into Kafka beforehand by the Debezium MariaDB source connector (untimed), applied by the Debezium JDBC sink in Kafka Connect standalone into an empty plain copy of the table on the log_slave_updates replica (binlog on); its client CPU is the Connect JVM's. ` +
        `CPU per row = CPU time over the contender's run ÷ the rows it wrote (ours and the sink: without start-up, see below).`,
    }));
    const ratioTable: Table = {
      title: 'Ratios (all measured in this run)',
      header: [
        'workload',
        `ours ÷ ${REFERENCE}`,
        'ours ÷ raw upsert ceiling',
        'ours ÷ best native without log_slave_updates',
        `raw upsert ÷ ${REFERENCE}`,
        'ours ÷ Debezium JDBC sink',
        'ours, apply only ÷ Debezium JDBC sink (both fed from Kafka)',
      ],
      rows: ratios.map((q) => [
        workloadName(q.workload),
        `**${x(q.vsReference)}** (${formatInt(q.ours)} vs ${formatInt(q.reference)} rows/s)`,
        `**${x(q.vsRaw)}** (vs ${formatInt(q.raw)} rows/s)`,
        `${x(q.vsBestPlain)} (${q.bestPlain}, ${formatInt(q.bestPlainRate)} rows/s)`,
        x(q.rawVsReference),
        Number.isFinite(q.vsSink)
          ? `**${x(q.vsSink)}** (vs ${formatInt(q.sink)} rows/s)`
          : `n/a (sink ${sinkStatus(q.workload)})`,
        Number.isFinite(q.applyOnlyVsSink)
          ? `**${x(q.applyOnlyVsSink)}** (${formatInt(q.applyOnly)} vs ${formatInt(q.sink)} rows/s)`
          : `n/a (sink ${sinkStatus(q.workload)})`,
      ]),
      note: 'Headline: ours ÷ native replication to a replica that binlogs what it applies (log_slave_updates=ON, slave_parallel_threads=4, optimistic), as our target region must. The raw upsert ceiling is what a plain Node writer gets from the same server for the same final rows. The Debezium JDBC sink applies the same change events with upserts and deletes, without any conflict resolution. "Ours" includes capture (a\'s daemon on the same two cores) while the sink\'s input was put into Kafka beforehand, untimed; "ours, apply only" is measured as the sink is: b\'s daemon alone applies the changes a\'s capture put into Kafka in the run before.',
    };
    const catchUpRatio = ratios.find((q) => q.workload === 'catchUp');
    const t = load.targets;
    const targets: TargetResult[] =
      catchUpRatio === undefined
        ? []
        : [
            {
              name: `catch-up mix: apply ≥ ${t.vsNative}× native replication (${load.reference})`,
              target: `≥ ${t.vsNative}× (moonshot ${t.vsNativeMoonshot}×)`,
              actual: `${x(catchUpRatio.vsReference)} (${formatInt(catchUpRatio.ours)} vs ${formatInt(catchUpRatio.reference)} rows/s)`,
              pass:
                catchUpRatio.vsReference >= t.vsNative &&
                of('catchUp', OURS).every((m) => m.check === 'ok'),
            },
            {
              name: `catch-up mix: apply ≥ ${t.vsRawUpsert}× the raw multi-row upsert of the final rows`,
              target: `≥ ${t.vsRawUpsert}×`,
              actual: `${x(catchUpRatio.vsRaw)} (${formatInt(catchUpRatio.ours)} vs ${formatInt(catchUpRatio.raw)} rows/s)`,
              pass:
                catchUpRatio.vsRaw >= t.vsRawUpsert &&
                of('catchUp', OURS).every((m) => m.check === 'ok'),
            },
            {
              name: `catch-up mix: apply (resolving conflicts) ≥ ${t.vsDebeziumJdbcSink}× the Debezium JDBC sink (upsert, deletes), both fed from Kafka`,
              target: `≥ ${t.vsDebeziumJdbcSink}×`,
              actual: Number.isFinite(catchUpRatio.applyOnlyVsSink)
                ? `${x(catchUpRatio.applyOnlyVsSink)} (${formatInt(catchUpRatio.applyOnly)} vs ${formatInt(catchUpRatio.sink)} rows/s; with capture running too: ${x(catchUpRatio.vsSink)})`
                : `n/a: the sink ${sinkStatus('catchUp')}`,
              pass:
                Number.isFinite(catchUpRatio.applyOnlyVsSink) &&
                catchUpRatio.applyOnlyVsSink >= t.vsDebeziumJdbcSink &&
                of('catchUp', OURS_APPLY).every((m) => m.check === 'ok'),
            },
          ];
    return {
      configuration: {
        rounds,
        benchMix: mixProfile,
        catchUp: catchProfile,
        native: load.native,
        reference: load.reference,
        rawUpsert: load.rawUpsert,
        repeats: load.repeats,
        debeziumJdbcSink: {
          version: DEBEZIUM_VERSION,
          ...sinkSettings,
          connectRuntime: 'Kafka Connect standalone, same Kafka release as the broker',
          connector: readFileSync(
            join(context.scenarioDir, 'debezium-jdbc-sink.properties'),
            'utf8',
          ),
          source:
            'capture-vs-debezium/connector.properties and worker.properties, JSON with schemas',
        },
        ours: base.yaml,
        mariadb: info.version,
      },
      figures: {
        backlogs: backlogs.map(({ finalRows: _rows, ...rest }) => rest),
        measurements,
        ratios,
        debeziumFeeds: feeds,
        debeziumUnavailable: sinkUnavailable,
      },
      tables: [ratioTable, ...workloadTables],
      plots: [
        ...backlogs.map((w) => ({
          name: w.key === 'benchMix' ? 'progress' : 'progress-catchup',
          title: `${workloadName(w.key)}: backlog applied over time`,
          svg: lineChart({
            title: `${workloadName(w.key)}: share of the ${formatInt(w.rows)}-change backlog applied, from the first applied row`,
            xLabel: 's',
            yLabel: '% applied',
            series: contenders.map((c) => ({ name: c, points: lastOf(w.key, c)?.progress ?? [] })),
          }),
        })),
        ...backlogs.map((w) => ({
          name: w.key === 'benchMix' ? 'rate' : 'rate-catchup',
          title: `${workloadName(w.key)}: rows/s`,
          svg: barChart({
            title: `${workloadName(w.key)}: apply catch-up, rows/s (median)`,
            unit: 'rows/s',
            bars: contenders
              .map((c) => ({ label: c, value: rate(w.key, c) }))
              .filter((b) => Number.isFinite(b.value)),
          }),
        })),
      ],
      targets,
      notes: [
        'Ours and native start from the GTID position just before the backlog and apply the same binlog (the Debezium sink: the change events its source connector read from that binlog); every result (the raw upsert and the sink included) is checked against a: row count and CRC of every visible column.',
        'Our path does more work per row by design: capture to Kafka, then a conflict-checking apply (version join against the current row, version columns and apply marker written in the same transaction). MariaDB replication replays row events without any of that.',
        `CPU: /proc utime+stime of each process, read when the contender's work begins and when its last row is applied. Ours: daemon a, Kafka and MariaDB a (source) from a's first captured row, daemon b and MariaDB b (target; it also serves b's own binlog to b's daemon) from b's first applied row (Kafka: the whole broker process, its background work included); each daemon's start-up before that (node, modules, connections, topics) is left out: median ${formatInt(median(measurements.filter((m) => m.contender === OURS).map((m) => m.cpuMs.startupA ?? 0)))} / ${formatInt(median(measurements.filter((m) => m.contender === OURS).map((m) => m.cpuMs.startupB ?? 0)))} ms for a / b. Native: MariaDB a (binlog dump) and the replica, from START SLAVE. Raw upsert: the bench process (formatting the statements included) and the target server.`,
        "The observer polls b's metrics (ours), the replica's gtid_slave_pos (native) or the Debezium sink's committed offsets every elapsed/100 ms, at least every 50 / 20 ms and at most every 250 ms: the end is seen within about 1 % of the run.",
        `Debezium JDBC sink: io.debezium:debezium-connector-jdbc ${DEBEZIUM_VERSION} (the release of capture-vs-debezium's source connector) in Kafka Connect standalone, insert.mode=upsert, delete.enabled=true, primary.key.mode=record_key, batch.size ${sinkSettings.batchSize} with max.poll.records raised to match, ${sinkSettings.tasks} tasks (one per partition), a new consumer group per run. Its input, the workload's change events as JSON with schemas (one per row change), is written once per workload by the Debezium MariaDB source connector from a's binlog (untimed: ${feeds.map((f) => `${workloadName(f.workload)} ${formatInt(f.messages)} events in ${formatInt(f.ms)} ms`).join(', ')}). Time: Connect spawned (incl. start) or its first row in the target table (rows/s) → the target table equal to a's; the end is seen from the sink's committed consumer offsets (committed every 100 ms, polled like the others), then confirmed by count + CRC. CPU: the Connect JVM and the target server from the first row; the JVM's start-up is left out: median ${formatInt(median(measurements.filter((m) => m.contender === SINK).map((m) => m.cpuMs.startupConnect ?? 0)))} ms. A run that does not converge is reported as failed and left out of the figures.`,
        ...(sinkUnavailable === undefined
          ? []
          : [`Debezium JDBC sink not run: ${sinkUnavailable}`]),
        ...failedFeeds.map((f) => `Debezium source feed failed (no sink runs): ${f}`),
        ...failedChecks.map(
          (m) => `check failed (${m.workload} ${m.contender} #${m.round}): ${m.check}`,
        ),
      ],
    };
  } finally {
    await Promise.allSettled(daemons.map((d) => d.stop()));
    await sink?.stop();
    await admin?.disconnect().catch(() => undefined);
    await Promise.allSettled(connections.map((c) => c.end()));
    await lsuServer?.stop().catch(() => undefined);
    await sandbox?.stop();
  }
}

export const applyVsNative: Scenario = {
  name: 'apply-vs-native',
  title:
    'apply into a second region: cdc-replicator vs MariaDB GTID replication (log_slave_updates and parallel variants) and a raw multi-row upsert, on two workloads',
  run,
};
