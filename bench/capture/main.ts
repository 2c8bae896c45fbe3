/**
 * bench/capture: how fast the capture stage moves rows from the binlog to
 * acknowledged in Kafka, and how fast a bare zongji reads the same binlog
 * (the reader's ceiling), on services started by the project's launcher.
 *
 * Method: a backlog of N rows is written first, while no capture runs. Each
 * capture measurement then starts a daemon from a checkpoint saved just
 * before the backlog and times `start()` → N rows acknowledged; each raw
 * measurement replays the same backlog with a bare zongji. Neither depends
 * on how fast MariaDB accepts writes, and both read identical bytes.
 *
 *   npm run bench:capture -- --rows 300000 --runs 3 [--cpu-prof]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { topicName } from '../../src/bus/envelope.js';
import { createKafka, ensureTopics } from '../../src/bus/kafka.js';
import { deadLetterTopic } from '../../src/capture/capture-stage.js';
import { currentGtidPosition } from '../../src/capture/server-check.js';
import type { RuntimeOptions } from '../../src/config/compile.js';
import { createLogger } from '../../src/core/logger.js';
import { connectMysql } from '../../src/mysql/connection.js';
import { INTERNAL_TABLES } from '../../src/mysql/internal-tables.js';
import { serverInfo } from '../../src/mysql/introspect.js';
import { applyPrepare, planPrepare } from '../../src/prepare/prepare.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { KAFKA_VERSION } from '../../src/sandbox/local/kafka-jars.js';
import { sandboxRegionOptions } from '../../test/support/config.js';
import { hotspots, SectionProfiler } from '../support/cpu-profile.js';
import { CpuMeter, machineInfo, packageVersion } from '../support/machine.js';
import { fileTimestamp, gitRevision, repoRoot } from '../support/repo.js';
import { formatInt } from '../support/stats.js';
import { captureRun } from './capture-run.js';
import { rawRead } from './raw-reader.js';
import { formatReport, summariseRuns, type ProfileSummary, type RunRecord } from './report.js';
import { parseSettings, USAGE, type Variant } from './settings.js';
import { binlogBytes, tableDdl, writeBacklog } from '../support/workload.js';

// Benchmarks run on local processes unless told otherwise: the docker
// sandbox (chosen automatically where an engine and images are present)
// adds container overhead and would make runs incomparable.
process.env['CDC_SANDBOX'] ??= 'local';

const REGION = 'bench';
const SCHEMA = 'bench_capture';
const TABLE = 'orders';
const TOPIC_PREFIX = 'bench';

function perCpuSecond(rows: number, cpuMs: Record<string, number>): number {
  return Math.round((rows * 1000) / Math.max(1, cpuMs.bench ?? 0));
}

const log = (message: string): void => console.error(`[bench:capture] ${message}`);

async function main(): Promise<void> {
  const root = repoRoot();
  const config = parseSettings(root);
  if (config === undefined) {
    console.log(USAGE);
    return;
  }
  const startedAt = new Date();
  const machine = machineInfo();
  const logger = createLogger({
    level: process.env.CDC_LOG_LEVEL ?? 'warn',
    destination: process.stderr,
    base: { bench: 'capture' },
  });
  log(
    `${config.rows} rows, INSERTs of ${config.batchRows}, ${config.runs} rounds (+${config.warmup} warm-up), variants ${config.variants.map((v) => `${v.name} {${v.captureYaml}}`).join(', ')}`,
  );

  let sandbox: Sandbox | undefined;
  try {
    sandbox = await startSandbox({ regions: [REGION], kafka: true, redis: false, log });
    const services = sandbox.services;
    const meter = (): CpuMeter =>
      new CpuMeter({
        kafka: () => services.kafka?.pids() ?? [],
        mariadb: () => services.mysql[0]?.pids() ?? [],
      });
    const sandboxDir = sandbox.dir;
    const tableLabel = `${SCHEMA}.${TABLE}`;
    const regionOptions = (captureYaml: string | undefined, run: string): RuntimeOptions =>
      sandboxRegionOptions(sandbox as Sandbox, REGION, {
        tables: [tableLabel],
        topicPrefix: TOPIC_PREFIX,
        // A fresh state directory per run: each run starts from the checkpoint it is given.
        stateDir: join(sandboxDir, 'bench-state', run),
        ...(captureYaml === undefined ? {} : { extraYaml: `capture: { ${captureYaml} }` }),
      }).options;
    // Defaults only: the setup, and the reference for which variant is the default one.
    const base = regionOptions(undefined, 'setup');

    // Table, prepare, backlog.
    const connection = await connectMysql(base.mysql);
    let startPosition: string;
    let endPosition: string;
    let mariadbVersion: string;
    let backlog: Awaited<ReturnType<typeof writeBacklog>>;
    let binlogBytesWritten: number;
    try {
      const info = await serverInfo(connection);
      mariadbVersion = info.version;
      await connection.query(`CREATE DATABASE \`${SCHEMA}\``);
      await connection.query(tableDdl(SCHEMA, TABLE));
      await applyPrepare(connection, await planPrepare(connection, base, base.internalSchema));
      startPosition = await currentGtidPosition(connection, info);
      const bytesBefore = await binlogBytes(connection);
      log(`writing the backlog (capture not running) from GTID ${startPosition}`);
      backlog = await writeBacklog(connection, SCHEMA, TABLE, config.rows, config.batchRows);
      binlogBytesWritten = (await binlogBytes(connection)) - bytesBefore;
      endPosition = await currentGtidPosition(connection, info);
      log(
        `backlog: ${config.rows} rows in ${backlog.transactions} transactions, ${(binlogBytesWritten / 1024 / 1024).toFixed(1)} MiB of binlog, written at ${formatInt((config.rows * 1000) / backlog.elapsedMs)} rows/s`,
      );
    } finally {
      await connection.end();
    }

    const kafka = createKafka(base.kafka, logger);
    const admin = kafka.admin();
    await admin.connect();
    const records: RunRecord[] = [];
    let rowsEventBytesPerRow = Number.NaN;
    const profiles: Record<string, ProfileSummary> = {};
    try {
      // The topics capture publishes to exist before the first run, so no run pays for creating them.
      const topic = topicName(TOPIC_PREFIX, REGION, SCHEMA, TABLE);
      await ensureTopics(
        admin,
        [
          topic,
          topicName(TOPIC_PREFIX, REGION, base.internalSchema, INTERNAL_TABLES.heartbeat),
          deadLetterTopic(TOPIC_PREFIX, 'capture', REGION),
        ],
        base.kafka.topics,
      );
      // What capture-stage.ts asks zongji to decode: the pipeline's tables and the internal ones it reads.
      const includeSchema: Record<string, string[]> = {
        [SCHEMA]: [TABLE],
        [base.internalSchema]: [
          INTERNAL_TABLES.tombstones,
          INTERNAL_TABLES.applyMarker,
          INTERNAL_TABLES.heartbeat,
        ],
      };

      let runId = 0;
      const measureCapture = async (
        variant: Variant,
        round: number,
        warmup: boolean,
        profileFile?: string,
      ): Promise<void> => {
        runId += 1;
        const profiler = profileFile === undefined ? undefined : new SectionProfiler();
        const result = await captureRun({
          options: regionOptions(variant.captureYaml, `run-${runId}`),
          logger,
          startPosition,
          tableLabel,
          topic,
          rows: config.rows,
          admin,
          kafka,
          meter,
          stallTimeoutMs: 60_000,
          ...(profiler !== undefined && profileFile !== undefined
            ? {
                around: {
                  before: () => profiler.start(),
                  after: async () => {
                    const spots = hotspots(await profiler.stop(profileFile), root);
                    profiles[variant.name] = {
                      file: profileFile,
                      owners: spots.owners.slice(0, 15),
                      functions: spots.functions.slice(0, 25),
                    };
                  },
                },
              }
            : {}),
        });
        const rowsPerSec = (result.rows * 1000) / result.elapsedMs;
        log(
          `${profiler !== undefined ? 'profiled ' : warmup ? 'warm-up ' : ''}capture ${variant.name}: ${formatInt(rowsPerSec)} rows/s (${Math.round(result.elapsedMs)} ms, start ${Math.round(result.startMs)} ms, other CPU ${Math.round(((result.cpuMs.other ?? 0) / result.elapsedMs) * 100)} %)`,
        );
        if (profiler !== undefined) return;
        records.push({
          kind: 'capture',
          variant: variant.name,
          round,
          warmup,
          rows: result.rows,
          elapsedMs: Math.round(result.elapsedMs),
          startMs: Math.round(result.startMs),
          rowsPerSec: Math.round(rowsPerSec),
          rowsPerCpuSec: perCpuSecond(result.rows, result.cpuMs),
          kafkaMessages: result.kafkaMessages,
          cpuMs: result.cpuMs,
        });
      };
      const measureRaw = async (round: number, warmup: boolean): Promise<void> => {
        const cpu = meter();
        const result = await rawRead({
          mysql: base.mysql,
          // Not capture's own id: MariaDB drops an older dump connection that reuses a server_id.
          serverId: base.capture.serverId - 1,
          gtidSet: startPosition,
          includeSchema,
          schema: SCHEMA,
          table: TABLE,
          rows: config.rows,
          timeoutMs: 600_000,
        });
        const cpuMs = cpu.read();
        rowsEventBytesPerRow = Math.round(result.rowsEventBytes / result.rows);
        const rowsPerSec = (result.rows * 1000) / result.elapsedMs;
        log(
          `${warmup ? 'warm-up ' : ''}raw zongji: ${formatInt(rowsPerSec)} rows/s (${Math.round(result.elapsedMs)} ms, other CPU ${Math.round(((cpuMs.other ?? 0) / result.elapsedMs) * 100)} %)`,
        );
        records.push({
          kind: 'raw',
          variant: null,
          round,
          warmup,
          rows: result.rows,
          elapsedMs: Math.round(result.elapsedMs),
          startMs: null,
          rowsPerSec: Math.round(rowsPerSec),
          rowsPerCpuSec: perCpuSecond(result.rows, cpuMs),
          kafkaMessages: null,
          cpuMs,
        });
      };

      for (let round = 0; round < config.warmup + config.runs; round += 1) {
        const warmup = round < config.warmup;
        // Alternate the order so no variant always runs first.
        const order = round % 2 === 0 ? config.variants : [...config.variants].reverse();
        for (const variant of order) await measureCapture(variant, round, warmup);
        await measureRaw(round, warmup);
      }

      if (config.cpuProfile) {
        mkdirSync(config.outDir, { recursive: true });
        for (const variant of config.variants) {
          const file = join(
            config.outDir,
            `capture-${fileTimestamp(startedAt)}-${variant.name}.cpuprofile`,
          );
          await measureCapture(variant, -1, false, file);
        }
      }
    } finally {
      await admin.disconnect();
    }

    // The default codec's variant is what the targets are about, when it was measured.
    const defaultCodec = config.variants.find((v) => v.name === base.capture.compression);
    const primary = defaultCodec?.name ?? config.variants[0]?.name ?? 'none';
    const summary = summariseRuns(records, config.variants, primary);
    const headline =
      `capture bench: ${formatInt(config.rows)} rows of ${rowsEventBytesPerRow} B in rows events ` +
      `(${Math.round(binlogBytesWritten / config.rows)} B/row of binlog with MariaDB's annotations), ` +
      `${config.runs} rounds + ${config.warmup} warm-up, median; ` +
      `${machine.nproc} cores, node ${machine.node}, MariaDB ${mariadbVersion}, Kafka ${KAFKA_VERSION}`;
    console.log(formatReport(summary, headline, config.variants, profiles));

    const result = {
      benchmark: 'capture',
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      git: gitRevision(root),
      machine: {
        ...machine,
        mariadb: mariadbVersion,
        kafka: KAFKA_VERSION,
        zongji: packageVersion(root, '@vlasky/zongji'),
        kafkajs: packageVersion(root, 'kafkajs'),
      },
      configuration: {
        rows: config.rows,
        insertBatchRows: config.batchRows,
        runs: config.runs,
        warmup: config.warmup,
        variants: config.variants,
        table: tableDdl(SCHEMA, TABLE).replace(/\s+/g, ' '),
        topicPartitions: base.kafka.topics.partitions,
        /** The defaults each variant's capture block starts from. */
        captureDefaults: base.capture,
        method:
          'backlog written with capture stopped; capture = Daemon.start() from a checkpoint before the backlog until cdc_events_captured_total reaches rows; raw = bare zongji (same options as BinlogSource) from the same GTID until it decoded rows',
      },
      backlog: {
        startPosition,
        endPosition,
        transactions: backlog.transactions,
        binlogBytes: binlogBytesWritten,
        binlogBytesPerRow: Math.round(binlogBytesWritten / config.rows),
        /** Rows events only: the binlog also holds MariaDB's annotate events (the INSERT text), which readers are not sent. */
        rowsEventBytesPerRow,
        writeMs: Math.round(backlog.elapsedMs),
        writeRowsPerSec: Math.round((config.rows * 1000) / backlog.elapsedMs),
      },
      runs: records,
      summary,
      profiles,
    };
    mkdirSync(config.outDir, { recursive: true });
    const file = join(config.outDir, `capture-${fileTimestamp(startedAt)}.json`);
    writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`\nresults: ${file}`);
  } finally {
    await sandbox?.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exit(1);
  },
);
