import type { Kafka, Producer } from 'kafkajs';
import type { AuditPublisher } from '../capture/audit-trail.js';
import type mysql from 'mysql2/promise';
import {
  ENVELOPE_VERSION,
  encodeEvent,
  messageKey,
  topicName,
  type ChangeEvent,
} from '../bus/envelope.js';
import { compressionType, createChangeProducer, ensureTopicsWith } from '../bus/kafka.js';
import { captureDeadLetterItem } from '../capture/capture-stage.js';
import { GovernedPublishing, governedLayoutOf } from '../capture/governed-publishing.js';
import { CapturePublisher } from '../capture/publisher.js';
import { policyForTable, type GovernancePolicy } from '../governance/policy.js';
import type { RuntimeOptions } from '../config/compile.js';
import { tableMatches } from '../config/compile.js';
import { CdcError, ConfigError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { connectMysql, describeMysql, type MysqlConnection } from '../mysql/connection.js';
import { describeTable, resolveTables } from '../mysql/introspect.js';
import type { DaemonMetrics } from '../monitor/metrics.js';
import type { CheckpointStore } from '../state/store.js';
import {
  decodeSnapshotState,
  encodeSnapshotState,
  planStart,
  snapshotCheckpointKey,
  type SnapshotState,
} from './checkpoint.js';
import type { KeyValues } from './key-range.js';
import { Pacer } from './pacer.js';
import type { ProgressView } from './progress.js';
import { columnTypesOf, readRange, tableShape, type TableShape } from './rows.js';

/**
 * `snapshot`: publishes the current content of a region's tables into its
 * change stream as `op=r` events, each with the row's effective version.
 *
 * Why no watermarks (unlike DBLog / Debezium's incremental snapshots): those
 * interleave snapshot chunks with the log so that a chunk row never
 * overwrites a newer change from the log, because their consumers apply in
 * arrival order. Here every apply is a join on the row version (DESIGN.md
 * §2): a row read by the snapshot carries the version it had when read, and
 * any write after the read has a larger version (the HLC rule in the
 * triggers), including deletes (their tombstones). Whatever order the two
 * reach a region in, the newer one stays. So chunks are plain consistent
 * reads, concurrent with everything, and no coordination with capture is
 * needed.
 */

export interface SnapshotRunOptions {
  /** The source region's options: its MySQL, its topics, its checkpoint store. */
  options: RuntimeOptions;
  /** `schema.table` names to snapshot; every configured table when empty. */
  tables: readonly string[];
  chunkSize: number;
  /** Chunks per second at most; 0 = as fast as Kafka takes them. */
  chunksPerSecond: number;
  /** Start over even when an unfinished snapshot could resume. */
  restart: boolean;
  store: CheckpointStore;
  kafka: Kafka;
  metrics: DaemonMetrics;
  progress: ProgressView;
  logger: Logger;
  /** Aborting stops after the chunk being read; what was read is sent and checkpointed. */
  signal?: AbortSignal;
}

export interface TableSnapshotResult {
  table: string;
  /** Rows published by this process. */
  rows: number;
  /** Rows published by this snapshot, including earlier interrupted runs it resumed. */
  totalRows: number;
  resumedAfter: KeyValues | null;
  /** Why it started where it did (`unfinished snapshot`, `--restart`, ...). */
  startReason: string;
  /** Rows whose stored version could not be decoded (logged each, not published). */
  skipped: number;
  /**
   * Governed tables only: rows this region holds masked (their originals
   * are the plain regions' to publish), and rows parked in the capture dead
   * letters instead of published (`governance_refused`, logged).
   */
  governed?: { policy: string; heldMasked: number; refused: number };
  completed: boolean;
  seconds: number;
}

export interface SnapshotResult {
  region: string;
  tables: TableSnapshotResult[];
  interrupted: boolean;
  rows: number;
  seconds: number;
}

/**
 * The tables to work on: the configured ones, or the `filter` names, each of
 * which must be configured (ConfigError otherwise) and exist.
 */
export async function selectTables(
  connection: MysqlConnection,
  options: RuntimeOptions,
  filter: readonly string[],
  where: string,
): Promise<TableShape[]> {
  const patterns = options.pipelines.flatMap((p) => p.tables);
  const problems: string[] = [];
  for (const name of filter) {
    const [schema, table, ...rest] = name.split('.');
    if (schema === undefined || table === undefined || rest.length > 0 || !schema || !table) {
      problems.push(`--tables: ${JSON.stringify(name)} is not schema.table`);
    } else if (!patterns.some((p) => tableMatches(p, schema, table))) {
      problems.push(`--tables: ${name} is not in any pipeline of the configuration`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const found = await resolveTables(connection, patterns);
  const wanted =
    filter.length === 0 ? found : found.filter((t) => filter.includes(`${t.schema}.${t.table}`));
  const missing = filter.filter((name) => !wanted.some((t) => `${t.schema}.${t.table}` === name));
  if (missing.length > 0) {
    throw new CdcError(`${where}: table(s) not found: ${missing.join(', ')}`, {
      code: 'TABLE_MISSING',
    });
  }
  const shapes: TableShape[] = [];
  for (const t of wanted) {
    const info = await describeTable(connection, t.schema, t.table);
    if (info !== undefined) shapes.push(tableShape(info, where));
  }
  return shapes;
}

/** InnoDB's estimate of a table's rows (for the ETA only; it can be off by half). */
export async function estimateRows(
  connection: MysqlConnection,
  shape: TableShape,
): Promise<number> {
  const [rows] = await connection.query<mysql.RowDataPacket[]>(
    'SELECT TABLE_ROWS AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?',
    [shape.schema, shape.table],
  );
  return Number(rows[0]?.n ?? 0);
}

export async function runSnapshot(run: SnapshotRunOptions): Promise<SnapshotResult> {
  const { options } = run;
  const started = Date.now();
  const where = `region ${options.region} (${describeMysql(options.mysql)})`;
  const connection = await connectMysql(options.mysql);
  const result: SnapshotResult = {
    region: options.region,
    tables: [],
    interrupted: false,
    rows: 0,
    seconds: 0,
  };
  let producer: Producer | undefined;
  try {
    const shapes = await selectTables(connection, options, run.tables, where);
    const topics = shapes.map((s) =>
      topicName(options.kafka.topicPrefix, options.region, s.schema, s.table),
    );
    await ensureTopicsWith(run.kafka, topics, options.kafka.topics);
    producer = createChangeProducer(run.kafka);
    await producer.connect();
    const pacer = new Pacer(run.chunksPerSecond);
    for (const shape of shapes) {
      if (run.signal?.aborted === true) break;
      const table = await snapshotTable(run, connection, producer, pacer, shape);
      result.tables.push(table);
      result.rows += table.rows;
      if (!table.completed) break;
    }
    result.interrupted = run.signal?.aborted === true;
  } finally {
    await producer?.disconnect().catch(() => undefined); // a send failure is already what is thrown
    await connection.end().catch(() => undefined);
  }
  result.seconds = (Date.now() - started) / 1000;
  return result;
}

async function snapshotTable(
  run: SnapshotRunOptions,
  connection: MysqlConnection,
  producer: Producer,
  pacer: Pacer,
  shape: TableShape,
): Promise<TableSnapshotResult> {
  const { options, logger, metrics, progress, store } = run;
  const region = options.region;
  const started = Date.now();
  const key = snapshotCheckpointKey(shape.schema, shape.table);
  const savedCheckpoint = await store.load(key);
  const saved =
    savedCheckpoint === undefined ? undefined : decodeSnapshotState(savedCheckpoint.position, key);
  const keyNames = shape.keyColumns.map((c) => c.name);
  const plan = planStart(saved, keyNames, run.restart, started);
  const state: SnapshotState = plan.state;
  const resumedAfter = plan.resumed ? state.after : null;
  const baseRows = state.rows;
  const topic = topicName(options.kafka.topicPrefix, region, shape.schema, shape.table);
  logger.info(
    { table: shape.name, resumedAfter, rowsBefore: baseRows, reason: plan.reason },
    plan.resumed ? 'snapshot of table resumes' : 'snapshot of table starts',
  );
  progress.add(shape.name, shape.name, await estimateRows(connection, shape), baseRows);

  let acknowledged = 0;
  let failure: CdcError | undefined;
  let resumeReading: (() => void) | undefined;
  let paused = false;
  const publisher = new CapturePublisher({
    producer,
    store,
    checkpointKey: key,
    maxInFlightBytes: options.capture.maxInFlightBytes,
    batchMaxMessages: options.capture.batchMaxMessages,
    lingerMs: options.capture.lingerMs,
    compression: compressionType(options.capture.compression),
    // Often enough that a crash replays little; each save is one small write.
    checkpointIntervalMs: 500,
    logger,
    onBackpressure: (isPaused) => {
      paused = isPaused;
      if (!isPaused) resumeReading?.();
    },
    onAcknowledged: (counts) => {
      const n = [...counts.values()].reduce((sum, c) => sum + c.n, 0);
      acknowledged += n;
      metrics.snapshotRowsTotal.inc({ region, table: shape.name }, n);
      progress.update(shape.name, baseRows + acknowledged);
    },
    onInFlightBytes: () => undefined,
    ensureTopics: async (topics) => {
      await ensureTopicsWith(run.kafka, topics, options.kafka.topics);
    },
    onFatal: (error) => {
      failure = error;
      resumeReading?.();
    },
  });

  let skipped = 0;
  let published = 0;
  let done = false;
  const policy =
    options.governance === undefined
      ? undefined
      : policyForTable(options.governance, shape.schema, shape.table);
  const governed = policy === undefined ? undefined : governedSnapshot(run, policy);
  // Masks and eviction notices depend on the columns' types, as capture reads them from the binlog.
  const columnTypes = columnTypesOf(shape);
  try {
    while (!done && failure === undefined && run.signal?.aborted !== true) {
      await pacer.take();
      while (paused && failure === undefined) {
        await new Promise<void>((resolve) => (resumeReading = resolve));
        resumeReading = undefined;
      }
      if (failure !== undefined) break;
      const rows = await readRange(connection, shape, region, state.after, null, run.chunkSize);
      const readAtMs = Date.now();
      const publishedBefore = published;
      for (const row of rows) {
        if (row.version === null) {
          skipped += 1;
          logger.error(
            { table: shape.name, pk: row.pk, err: row.versionError },
            'row skipped: its stored version cannot be read (fix _cdc_ver, then snapshot again)',
          );
          continue;
        }
        const event: ChangeEvent = {
          v: ENVELOPE_VERSION,
          op: 'r',
          region,
          db: shape.schema,
          table: shape.table,
          pk: row.pk,
          before: null,
          after: row.image,
          hlc: row.version.hlc,
          origin: row.version.origin,
          vv: row.version.vv,
          gtid: null,
          commitTs: readAtMs,
        };
        const key = messageKey(shape.schema, shape.table, row.pk);
        if (governed !== undefined) {
          // The same path capture takes (src/capture/governed-publishing.ts): zone and masked topics, notices, audit.
          const outcome = governed.publishing.publish(
            publisher,
            governed.policy,
            { ...event, types: columnTypes },
            event,
            key,
          );
          if (outcome.kind === 'held-masked') governed.heldMasked += 1;
          else if (outcome.kind === 'refused') governed.refused += 1;
          else published += 1;
          continue;
        }
        enqueueSnapshotRow(publisher, topic, key, event, true);
        published += 1;
      }
      const last = rows[rows.length - 1];
      if (last !== undefined) state.after = last.key;
      state.rows += published - publishedBefore;
      done = rows.length < run.chunkSize;
      state.done = done;
      // Saved only once Kafka acknowledged every row before it.
      publisher.enqueue({ kind: 'commit', position: encodeSnapshotState(state) });
    }
    await publisher.drain();
  } catch (err) {
    publisher.abort();
    throw err;
  }
  if (failure !== undefined) throw failure;
  const seconds = (Date.now() - started) / 1000;
  if (done) progress.finish(shape.name, state.rows);
  logger.info(
    { table: shape.name, rows: published, totalRows: state.rows, skipped, seconds, done },
    done ? 'snapshot of table complete' : 'snapshot of table interrupted; run again to resume',
  );
  return {
    table: shape.name,
    rows: published,
    totalRows: state.rows,
    resumedAfter,
    startReason: plan.reason,
    skipped,
    ...(governed === undefined
      ? {}
      : {
          governed: {
            policy: governed.policy.name,
            heldMasked: governed.heldMasked,
            refused: governed.refused,
          },
        }),
    completed: done,
    seconds,
  };
}

/** A snapshot row as a v1 message (snapshots stay v1: appliers read both envelopes). */
function enqueueSnapshotRow(
  sink: AuditPublisher,
  topic: string,
  key: string,
  event: ChangeEvent,
  counted: boolean,
): void {
  sink.enqueue({
    kind: 'message',
    topic,
    key,
    value: encodeEvent(event),
    table: `${event.db}.${event.table}`,
    op: event.op,
    commitTs: event.commitTs,
    ...(counted ? {} : { counted: false }),
  });
}

/**
 * The governed publishing path for a snapshot of a table under `policy`:
 * what capture does with a change, so a snapshot (and a bootstrap) never
 * copies a governed row where it may not go (docs/GOVERNANCE.md,
 * "Snapshot, bootstrap and repair").
 */
function governedSnapshot(
  run: SnapshotRunOptions,
  policy: GovernancePolicy,
): {
  publishing: GovernedPublishing;
  policy: GovernancePolicy;
  heldMasked: number;
  refused: number;
} {
  const { options, metrics, logger } = run;
  const publishing = new GovernedPublishing({
    ...governedLayoutOf(options),
    metrics,
    logger,
    enqueueChange: enqueueSnapshotRow,
    deadLetter: (sink, refusal) => {
      metrics.deadLetterTotal.inc({ stage: 'capture', reason: refusal.reason });
      logger.error(
        { reason: refusal.reason, detail: refusal.detail },
        'snapshot row parked in the dead-letter topic',
      );
      sink.enqueue(captureDeadLetterItem(options.kafka.topicPrefix, options.region, refusal));
    },
  });
  return { publishing, policy, heldMasked: 0, refused: 0 };
}
