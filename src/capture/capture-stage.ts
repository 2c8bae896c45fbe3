import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin, Kafka, Producer } from 'kafkajs';
import {
  compressionType,
  createChangeProducer,
  ensureTopics,
  ensureTopicsWith,
  partitionCountsWith,
} from '../bus/kafka.js';
import { encodeEvent, messageKey, packRow, topicName, type ChangeEvent } from '../bus/envelope.js';
import { policyForTable } from '../governance/policy.js';
import { governedTopicName, policyAudiences } from '../governance/topics.js';
import type { RuntimeOptions } from '../config/compile.js';
import { tableMatches } from '../config/compile.js';
import { CdcError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { classifyError } from '../core/retriable.js';
import { retryRetriable } from '../core/retry.js';
import { connectMysql, describeMysql, type MysqlConnection } from '../mysql/connection.js';
import { INTERNAL_TABLES, isInternalTable } from '../mysql/internal-tables.js';
import { serverInfo, type ServerInfo } from '../mysql/introspect.js';
import type { DaemonMetrics } from '../monitor/metrics.js';
import { planPrepare } from '../prepare/prepare.js';
import { ddlTouches } from './ddl-statement.js';
import { SchemaRepair, applyRepairSteps } from './schema-repair.js';
import { LEASE_LOST } from '../state/lease.js';
import { redactRedisUrl } from '../state/redis-url.js';
import type { Checkpoint, CheckpointStore, FenceToken } from '../state/store.js';
import { TransactionAssembler, type CaptureOutput } from './assembler.js';
import { BinlogSource } from './binlog-source.js';
import { ZONGJI_VERSION_CHECKED, zongjiVersionMismatch } from './binlog-temporal.js';
import { CapturePublisher, type PublishItem } from './publisher.js';
import type { AuditPublisher } from './audit-trail.js';
import { GovernedPublishing, governedLayoutOf } from './governed-publishing.js';
import { DebeziumOutput } from './debezium-output.js';
import type { BinlogCoordinates } from './source-events.js';
import { KafkaPositionLog, regionTopicsWithEvents } from './position-log.js';
import {
  checkBinlogSettings,
  currentGtidPosition,
  oldestGtidPosition,
  purgedGtidsNeeded,
} from './server-check.js';
import {
  LOST_POSITION_FLAGS,
  decideStartPosition,
  positionLostError,
  positionPurgedError,
  type LostPositionChoice,
} from './start-position.js';

/** Key of the capture checkpoint in the region's namespace of the store. */
export const CAPTURE_CHECKPOINT_KEY = 'capture';

export type CaptureState = 'idle' | 'starting' | 'running' | 'draining' | 'stopped' | 'failed';

export interface CaptureStageDeps {
  options: RuntimeOptions;
  store: CheckpointStore;
  kafka: Kafka;
  metrics: DaemonMetrics;
  logger: Logger;
  /** Set when capture runs under a lease (several daemons per region); absent for a lone daemon. */
  fence?: CaptureFence;
  /**
   * The operator's choice for a start without any saved position (`run
   * --resume-from-gtid`, `--replay-from-oldest-binlog`, `--accept-gap`).
   * Never used while a position exists.
   */
  lostPosition?: LostPositionChoice | undefined;
  /**
   * Called for each replicated table that DDL seen in this region's binlog
   * created, altered or renamed into place, once that DDL has committed: the
   * daemon tells the apply stage, so a partition held for a column or table
   * this region lacked resumes right after the local ALTER instead of at the
   * next periodic recheck. Must not block (it runs in the binlog handler).
   */
  onLocalSchemaChange?: ((schema: string, table: string) => void) | undefined;
}

/**
 * The lease capture runs under: checkpoint saves carry its fencing token, and
 * nothing is sent to Kafka once `held()` turns false, so a daemon that lost
 * its lease (e.g. paused past the TTL) stops publishing even before it
 * learns so from Redis.
 */
export interface CaptureFence {
  readonly token: FenceToken;
  readonly held: () => boolean;
}

/** Dead letters of a stage: `<prefix>._dlq.<stage>.<region>` (region names cannot start with `_`). */
export function deadLetterTopic(prefix: string, stage: string, region: string): string {
  return `${prefix}._dlq.${stage}.${region}`;
}

/**
 * A capture dead letter of `region` as a publisher item: the reason, the
 * error and the change's coordinates (its key, never its row). Capture,
 * snapshot and repair park what they cannot publish through this.
 */
export function captureDeadLetterItem(
  prefix: string,
  region: string,
  letter: { reason: string; detail: string; source: unknown },
): PublishItem {
  return {
    kind: 'message',
    topic: deadLetterTopic(prefix, 'capture', region),
    key: letter.reason,
    value: Buffer.from(
      JSON.stringify({
        stage: 'capture',
        region,
        reason: letter.reason,
        error: letter.detail,
        source: letter.source,
      }),
    ),
    table: 'dead-letter',
    op: 'dlq',
    commitTs: Date.now(),
  };
}

const RECONNECT_INITIAL_MS = 500;
/** Internal tables a version added after regions were prepared: the daemon creates them at start. */
const DAEMON_CREATED_INTERNAL_TABLES: ReadonlySet<string> = new Set([
  INTERNAL_TABLES.columnHistory,
]);
const MAX_REMEMBERED_COORDINATES = 200_000;
const RECONNECT_MAX_MS = 30_000;
/**
 * How long a TRUNCATE of a replicated table keeps `/readyz` failing: long
 * enough to be noticed and acted on, short enough that an acknowledged one
 * does not page forever (a restart of the daemon also clears it; the
 * counter `cdc_capture_ddl_total{kind="truncate"}` stays).
 */
export const TRUNCATE_NOTICE_MS = 3_600_000;

/**
 * The capture stage for one region: binlog → change events → Kafka, with the
 * checkpoint saved only over what Kafka acknowledged. It checks the server
 * before streaming, refuses to start on an unprepared database, resumes from
 * its checkpoint (or, the very first time, from the end of the binlog), and
 * reconnects with backoff when the binlog connection drops.
 */
export class CaptureStage {
  #state: CaptureState = 'idle';
  #producer: Producer | undefined;
  #publisher: CapturePublisher | undefined;
  /** Debezium-compatible topics of pipelines with an `output` (docs/DEBEZIUM.md). */
  #debezium: DebeziumOutput | undefined;
  #source: BinlogSource | undefined;
  #assembler: TransactionAssembler | undefined;
  /** Position of the last transaction handed to the publisher: where a reconnect resumes. */
  #resumePosition = '';
  /** MariaDB: the dump connection asks the server to leave out transactions marked skip_replication (the applier's). */
  #mariadb = false;
  #includeSchema: Record<string, string[] | true> = {};
  #primaryKeys = new Map<string, string[]>();
  #reconnectDelayMs = RECONNECT_INITIAL_MS;
  /**
   * Binlog coordinates of transactions handed to the publisher, by GTID
   * position, oldest first: the acknowledged one gives the position lag.
   */
  readonly #coordinates = new Map<string, BinlogCoordinates>();
  /** Per schema, per table: its topic and label (`#namesOf`). */
  readonly #names = new Map<string, Map<string, { topic: string; label: string }>>();
  #acknowledgedCommitTs = 0;
  #reconnecting: Promise<void> | undefined;
  #failure: ((error: CdcError) => void) | undefined;
  /** The store as capture uses it: fenced with the lease's token when there is one. */
  readonly #checkpoints: CheckpointStore;
  /** The durable copy of the position, in Kafka. */
  readonly #positionLog: KafkaPositionLog;
  /** Self-repair of replicated tables after DDL, and the periodic drift check. */
  readonly #repair: SchemaRepair;
  /** Governed rows no region may hold, by table: when last logged and how many since. */
  #governed: GovernedPublishing | undefined;
  /** TRUNCATEs of replicated tables (not replicated), by table: binlog time, for `/readyz`. */
  readonly #truncations = new Map<string, number>();
  /** Resolves with the error that stopped capture for good. */
  readonly failed: Promise<CdcError>;

  constructor(private readonly deps: CaptureStageDeps) {
    this.failed = new Promise((resolve) => (this.#failure = resolve));
    this.#checkpoints = deps.fence === undefined ? deps.store : fencedStore(deps.store, deps.fence);
    this.#positionLog = new KafkaPositionLog({
      kafka: deps.kafka,
      prefix: deps.options.kafka.topicPrefix,
      region: deps.options.region,
      topics: deps.options.kafka.topics,
      logger: deps.logger,
    });
    this.#repair = new SchemaRepair({
      options: deps.options,
      metrics: deps.metrics,
      logger: deps.logger,
      isReplicated: (schema, table) => this.#isReplicated(schema, table),
      // Apply maps a dropped or renamed column only once it is recorded: tell it again then.
      onColumnsRecorded: (schema, table) => deps.onLocalSchemaChange?.(schema, table),
    });
  }

  get state(): CaptureState {
    return this.#state;
  }

  /**
   * How far Kafka has acknowledged: the binlog coordinates of the newest
   * acknowledged transaction (when the reader knew them) and its commit time.
   */
  acknowledgedProgress(): { coordinates: BinlogCoordinates | undefined; commitTs: number } {
    const position = this.#publisher?.acknowledgedPosition;
    const coordinates = position === undefined ? undefined : this.#coordinates.get(position);
    if (coordinates !== undefined) {
      // Older entries are behind the acknowledged one for good.
      for (const key of this.#coordinates.keys()) {
        if (key === position) break;
        this.#coordinates.delete(key);
      }
    }
    return { coordinates, commitTs: this.#acknowledgedCommitTs };
  }

  async start(): Promise<void> {
    if (this.#state !== 'idle') throw new Error(`capture cannot start from state ${this.#state}`);
    this.#state = 'starting';
    const { options, kafka, logger } = this.deps;
    const where = `region ${options.region} (${describeMysql(options.mysql)})`;

    const connection = await connectMysql(options.mysql);
    let startPosition: string;
    try {
      const info = await serverInfo(connection);
      this.#mariadb = info.flavor === 'mariadb';
      await checkBinlogSettings(connection, info, where);
      if (options.pipelines.some((p) => p.output !== undefined)) {
        const [rows] = await connection.query('SELECT @@server_id AS id');
        const serverId = Number((rows as { id: number | string }[])[0]?.id ?? 0);
        this.#debezium = DebeziumOutput.create(options.pipelines, info.flavor, serverId);
        logger.info(
          { topicPrefixes: this.#debezium?.topicPrefixes },
          'Debezium-compatible change topics enabled',
        );
      }
      // Tables without a primary key, a missing configured table or an old server are
      // refused by planPrepare itself; the internal schema is set up only by prepare.
      const plan = await planPrepare(connection, options, options.internalSchema);
      // Tables added to the internal schema by a later version (the column history)
      // are created here, so an upgrade needs no new prepare run; anything else missing
      // there means the region was never prepared.
      const internal = plan.steps.filter(
        (s) => s.kind === 'internal' && !DAEMON_CREATED_INTERNAL_TABLES.has(s.internalTable ?? ''),
      );
      if (internal.length > 0) {
        throw new CdcError(
          `${where}: prepare has not been run (the internal schema is missing or incomplete: ` +
            `${internal.map((s) => s.description).join('; ')}). ` +
            `Run: cdc-replicator prepare --config <file> --region ${options.region}`,
          { code: 'NOT_PREPARED' },
        );
      }
      // Version columns and triggers are repaired here, as capture does after DDL.
      await applyRepairSteps(connection, plan.steps, this.deps, 'start');
      for (const table of plan.tables)
        this.#primaryKeys.set(`${table.schema}.${table.table}`, table.primaryKey);
      this.#includeSchema = this.#schemaFilter();
      const topics = [
        ...plan.tables.map((t) =>
          topicName(options.kafka.topicPrefix, options.region, t.schema, t.table),
        ),
        topicName(
          options.kafka.topicPrefix,
          options.region,
          options.internalSchema,
          INTERNAL_TABLES.heartbeat,
        ),
        deadLetterTopic(options.kafka.topicPrefix, 'capture', options.region),
        // Debezium-compatible topics of the tables known now (later ones on first use).
        ...plan.tables.flatMap((t) => this.#debezium?.topicsOf(t.schema, t.table) ?? []),
        // Zone and masked topics of governed tables (docs/GOVERNANCE.md, "Topic layout").
        ...plan.tables.flatMap((t) => this.#governedTopics(t.schema, t.table)),
        // The audit trail of governed changes (docs/GOVERNANCE.md, "Audit trail").
        ...(options.governance === undefined ? [] : [this.#governedPublishing().audit.topic]),
      ];
      await this.#whileStartingRetry('creating Kafka topics', () =>
        this.#withAdmin(async (admin) => {
          const created = await ensureTopics(admin, topics, options.kafka.topics);
          if (created.length > 0) logger.info({ topics: created }, 'created Kafka topics');
          await this.#positionLog.ensureTopic(admin);
        }),
      );
      this.#producer = createChangeProducer(kafka);
      const producer = this.#producer;
      await this.#whileStartingRetry('connecting the Kafka producer', () => producer.connect());
      startPosition = await this.#resolveStartPosition(connection, info, where);
    } finally {
      await connection.end();
    }

    if (zongjiVersionMismatch !== undefined)
      logger.warn(
        { zongji: zongjiVersionMismatch, checked: ZONGJI_VERSION_CHECKED },
        'zongji is not the version capture was checked against: it formats DATETIME and TIMESTAMP values itself (correct, slower)',
      );
    this.#publisher = this.#createPublisher(this.#producer);
    this.#resumePosition = startPosition;
    await this.#openSource();
    this.#state = 'running';
    this.#repair.start();
  }

  /**
   * Why this region is not in a state to be trusted, for `/readyz`:
   * TRUNCATEs of replicated tables in the last hour (other regions keep the
   * rows) and tables the self-repair cannot fix.
   */
  readiness(): string[] {
    const now = Date.now();
    const reasons: string[] = [];
    for (const [table, atMs] of this.#truncations) {
      if (now - atMs >= TRUNCATE_NOTICE_MS) {
        this.#truncations.delete(table);
        continue;
      }
      reasons.push(
        `${table} was truncated in ${this.deps.options.region} at ${new Date(atMs).toISOString()}: ` +
          'TRUNCATE is not replicated and other regions keep the rows (see docs/OPERATIONS.md, Schema changes)',
      );
    }
    return [...reasons, ...this.#repair.readiness()];
  }

  /** A short-lived admin client (start only). */
  async #withAdmin(operation: (admin: Admin) => Promise<void>): Promise<void> {
    const admin = this.deps.kafka.admin();
    await admin.connect();
    try {
      await operation(admin);
    } finally {
      await admin.disconnect();
    }
  }

  /** The producer as capture may use it: refusing to send once a lease is lost. */
  #sendingProducer(): Producer {
    const producer = this.#producer;
    if (producer === undefined) throw new Error('capture producer used before start');
    return this.deps.fence === undefined ? producer : fencedProducer(producer, this.deps.fence);
  }

  /**
   * Checkpoints as the publisher saves them: into the Kafka position topic
   * (the durable copy, where the data went) and into the checkpoint store
   * (the fast copy that also carries the lease's fencing token).
   */
  #durableCheckpoints(): CheckpointStore {
    const store = this.#checkpoints;
    return {
      load: (key) => store.load(key),
      save: async (key, checkpoint) => {
        await this.#positionLog.append(this.#sendingProducer(), checkpoint);
        await store.save(key, checkpoint);
      },
      close: () => store.close(),
    };
  }

  /**
   * Where capture starts: the saved position furthest ahead of the store's
   * and Kafka's copies; on a true first start, the end of the binlog; with
   * no position but a region whose topics hold events, the operator's
   * choice, or a fatal error that lists the choices (DESIGN §6).
   */
  async #resolveStartPosition(
    connection: MysqlConnection,
    info: ServerInfo,
    where: string,
  ): Promise<string> {
    const { options, logger, metrics, lostPosition } = this.deps;
    const region = options.region;
    const stored = await this.#checkpoints.load(CAPTURE_CHECKPOINT_KEY);
    let logged: Checkpoint | undefined;
    let topicsWithEvents: string[] = [];
    await this.#whileStartingRetry('reading the capture position kept in Kafka', () =>
      this.#withAdmin(async (admin) => {
        logged = await this.#positionLog.readLatest(admin);
        topicsWithEvents =
          stored === undefined && logged === undefined
            ? await regionTopicsWithEvents(admin, options.kafka.topicPrefix, region)
            : [];
      }),
    );
    const decision = decideStartPosition({
      stored,
      logged,
      topicsWithEvents,
      choice: lostPosition,
    });
    const producer = this.#sendingProducer();
    switch (decision.kind) {
      case 'resume': {
        const { checkpoint } = decision;
        // MySQL can tell before streaming whether the saved position still
        // needs purged transactions (MariaDB's dump request fails instead):
        // never resume past them silently; only the operator may skip them.
        const purged = await purgedGtidsNeeded(connection, info, checkpoint.position);
        if (purged !== undefined) {
          if (lostPosition !== undefined && lostPosition.kind !== 'resume-from-gtid') {
            logger.warn(
              { position: checkpoint.position, missing: purged.missing },
              'the saved capture position needs purged transactions; using the operator’s choice',
            );
            return this.#operatorStart(connection, info, where, lostPosition, 'purged');
          }
          throw positionPurgedError({
            where,
            position: checkpoint.position,
            missing: purged.missing,
            purged: purged.purged,
          });
        }
        if (lostPosition !== undefined)
          logger.info(
            { option: LOST_POSITION_FLAGS[lostPosition.kind] },
            'a saved capture position exists: the lost-position option is not used',
          );
        if (decision.from === 'kafka') {
          logger.warn(
            {
              position: checkpoint.position,
              storePosition: stored?.position,
              topic: this.#positionLog.topic,
            },
            stored === undefined
              ? 'the checkpoint store has no capture position (it lost its keys); resuming from the position kept in Kafka'
              : 'the checkpoint store is behind the position kept in Kafka; resuming from the one in Kafka',
          );
        } else {
          logger.info({ position: checkpoint.position }, 'capture resumes from its checkpoint');
        }
        // Restore the store's copy; under a lease, record the new token at once so that
        // a former holder that wakes up is refused even before this one's first save.
        if (decision.storeBehind || this.deps.fence !== undefined)
          await this.#checkpoints.save(CAPTURE_CHECKPOINT_KEY, checkpoint);
        // A daemon upgraded from a version without the position topic fills it at once.
        if (logged === undefined) await this.#positionLog.append(producer, checkpoint);
        metrics.captureStartsTotal.inc({ region, from: decision.from });
        return checkpoint.position;
      }
      case 'first-start': {
        // Recorded at once, so a crash before the first change cannot move the start later.
        const position = await currentGtidPosition(connection, info);
        await this.#durableCheckpoints().save(CAPTURE_CHECKPOINT_KEY, {
          position,
          savedAtMs: Date.now(),
        });
        logger.info(
          { position },
          "first start (no saved position anywhere, no events in this region's topics): capture starts at the current end of the binlog",
        );
        metrics.captureStartsTotal.inc({ region, from: 'first-start' });
        return position;
      }
      case 'operator':
        return this.#operatorStart(connection, info, where, decision.choice, 'lost');
      case 'lost':
        throw positionLostError({
          where,
          region,
          storeDescription: describeStore(options.checkpointStore),
          positionTopic: this.#positionLog.topic,
          topicsWithEvents: decision.topicsWithEvents,
          currentPosition: await currentGtidPosition(connection, info),
          oldestPosition: await oldestGtidPosition(connection, info),
        });
    }
  }

  /**
   * Starts where the operator said (`run --resume-from-gtid`,
   * `--replay-from-oldest-binlog`, `--accept-gap`), with an audit record:
   * after the saved position was lost, or (the last two) when the server
   * purged transactions the saved position still needed.
   */
  async #operatorStart(
    connection: MysqlConnection,
    info: ServerInfo,
    where: string,
    choice: LostPositionChoice,
    why: 'lost' | 'purged',
  ): Promise<string> {
    const { options, logger, metrics } = this.deps;
    const region = options.region;
    const producer = this.#sendingProducer();
    const after =
      why === 'lost'
        ? 'after the saved position was lost'
        : 'after the server purged binlogs the saved position still needed';
    let position: string;
    let detail: string;
    if (choice.kind === 'resume-from-gtid') {
      const mysqlSet = choice.position.includes(':');
      if (mysqlSet !== (info.flavor === 'mysql'))
        throw new CdcError(
          `${where}: --resume-from-gtid '${choice.position}' is a ${mysqlSet ? 'MySQL GTID set' : 'MariaDB GTID position'}, ` +
            `but the server is ${info.flavor === 'mysql' ? 'MySQL' : 'MariaDB'}`,
          { code: 'CAPTURE_POSITION_INVALID' },
        );
      position = choice.position;
      detail = `operator resumed capture from a given GTID position ${after}`;
    } else if (choice.kind === 'replay-from-oldest-binlog') {
      position = await oldestGtidPosition(connection, info);
      detail = `operator chose to replay from the oldest binlog on the server ${after}`;
    } else {
      position = await currentGtidPosition(connection, info);
      detail = `operator accepted a gap ${after}: capture starts at the current end of the binlog, and changes since the last saved position are not replicated`;
    }
    logger.warn({ audit: choice.kind, position, topic: this.#positionLog.topic }, detail);
    await this.#positionLog.audit(producer, { action: choice.kind, position, detail });
    await this.#durableCheckpoints().save(CAPTURE_CHECKPOINT_KEY, {
      position,
      savedAtMs: Date.now(),
    });
    metrics.captureStartsTotal.inc({ region, from: choice.kind });
    return position;
  }

  /**
   * Kafka being unreachable at start is waited out (with backoff, logged),
   * as it is while running: a daemon that starts before its broker must not
   * crash-loop. Anything not retriable, or a stop, ends the wait.
   */
  #whileStartingRetry(what: string, operation: () => Promise<void>): Promise<void> {
    return retryRetriable(operation, {
      what,
      initialDelayMs: RECONNECT_INITIAL_MS,
      maxDelayMs: RECONNECT_MAX_MS,
      keepGoing: () => this.#state === 'starting',
      onRetry: (error, delay) =>
        this.deps.logger.warn(
          { err: error.message, retryInMs: delay },
          'Kafka unavailable at start; waiting',
        ),
    });
  }

  /**
   * Stops at once without sending or saving anything more: for a lost lease,
   * where another daemon now captures and publishing on would only race it.
   * Whatever was not acknowledged is the new holder's to replay.
   */
  async abort(): Promise<void> {
    if (this.#state === 'stopped' || this.#state === 'idle' || this.#state === 'failed') {
      this.#state = this.#state === 'idle' ? 'stopped' : this.#state;
      return;
    }
    this.#state = 'stopped';
    this.#source?.stop();
    this.#publisher?.abort();
    await this.#repair.stop();
    await this.#producer?.disconnect();
  }

  /** Stops reading, sends what was captured, saves the checkpoint. */
  async stop(): Promise<void> {
    if (this.#state === 'stopped' || this.#state === 'idle') {
      this.#state = 'stopped';
      return;
    }
    this.#state = 'draining';
    this.#source?.stop();
    try {
      await this.#repair.stop();
      await this.#publisher?.drain();
    } finally {
      await this.#producer?.disconnect();
      this.#state = this.#state === 'draining' ? 'stopped' : this.#state;
    }
  }

  #createPublisher(producer: Producer): CapturePublisher {
    const { options, kafka, metrics, logger, fence } = this.deps;
    const region = options.region;
    return new CapturePublisher({
      producer: fence === undefined ? producer : fencedProducer(producer, fence),
      store: this.#durableCheckpoints(),
      checkpointKey: CAPTURE_CHECKPOINT_KEY,
      maxInFlightBytes: options.capture.maxInFlightBytes,
      batchMaxMessages: options.capture.batchMaxMessages,
      lingerMs: options.capture.lingerMs,
      compression: compressionType(options.capture.compression),
      checkpointIntervalMs: options.capture.checkpointIntervalMs,
      logger,
      onBackpressure: (paused) => {
        if (paused) this.#source?.pause();
        else this.#source?.resume();
        logger.debug({ paused }, 'capture backpressure');
      },
      onInFlightBytes: (bytes) => metrics.captureInFlightBytes.set({ region }, bytes),
      onAcknowledged: (counts, newestCommitTs) => {
        for (const { table, op, n } of counts.values())
          metrics.eventsCapturedTotal.inc({ region, table, op }, n);
        this.#acknowledgedCommitTs = Math.max(this.#acknowledgedCommitTs, newestCommitTs);
        if (newestCommitTs > 0)
          metrics.captureLagSeconds.set(
            { region },
            Math.max(0, (Date.now() - newestCommitTs) / 1000),
          );
      },
      ensureTopics: async (topics) => {
        await ensureTopicsWith(kafka, topics, options.kafka.topics);
      },
      partitionCounts: (topics) => partitionCountsWith(kafka, topics),
      onFatal: (error) => this.#fail(error),
    });
  }

  /** zongji decodes only the configured schemas' rows plus the internal tables capture reads. */
  #schemaFilter(): Record<string, string[] | true> {
    const { options } = this.deps;
    const filter: Record<string, string[] | true> = {};
    for (const pattern of options.pipelines.flatMap((p) => p.tables)) {
      const current = filter[pattern.schema];
      if (pattern.table === '*' || current === true) filter[pattern.schema] = true;
      else filter[pattern.schema] = [...(current ?? []), pattern.table];
    }
    const internal = [
      INTERNAL_TABLES.tombstones,
      INTERNAL_TABLES.applyMarker,
      INTERNAL_TABLES.heartbeat,
    ];
    const existing = filter[options.internalSchema];
    filter[options.internalSchema] = existing === true ? true : [...(existing ?? []), ...internal];
    return filter;
  }

  #isReplicated(schema: string, table: string): boolean {
    if (isInternalTable(table)) return false;
    return this.deps.options.pipelines.some((p) =>
      p.tables.some((t) => tableMatches(t, schema, table)),
    );
  }

  async #openSource(): Promise<void> {
    const { options } = this.deps;
    this.#assembler = new TransactionAssembler({
      region: options.region,
      internalSchema: options.internalSchema,
      isReplicated: (schema, table) => this.#isReplicated(schema, table),
    });
    const source = new BinlogSource({
      mysql: options.mysql,
      serverId: options.capture.serverId,
      gtidSet: this.#resumePosition,
      includeSchema: this.#includeSchema,
      primaryKeys: this.#primaryKeys,
      // Appliers with schema.autoAddColumns add a missing column with the source's type;
      // the Debezium output maps values by type.
      // Masks of governed tables depend on the column's type (docs/GOVERNANCE.md, "Masks").
      columnTypes:
        options.schema.autoAddColumns ||
        this.#debezium !== undefined ||
        (options.governance?.policies.length ?? 0) > 0,
      skipMarkedTransactions: this.#mariadb,
      onSkipRefused: (err) =>
        this.deps.logger.warn(
          { err: err.message },
          "the binlog connection cannot set skip_replication: the applier's own transactions are read and dropped by their marker (slower, still correct)",
        ),
      onEvent: (event) => {
        if ((event.kind === 'commit' || event.kind === 'ddl') && event.coordinates !== undefined)
          this.#rememberCoordinates(event.position, event.coordinates);
        if (event.kind === 'rows' && event.columnTypes !== undefined)
          this.#debezium?.noteTypes(event.schema, event.table, event.columnTypes);
        for (const output of this.#assembler?.push(event) ?? []) this.#handle(output);
        if (event.kind === 'commit' || event.kind === 'ddl')
          this.#debezium?.transactionEnded(event.coordinates);
      },
      onError: (error) => this.#onSourceError(error),
    });
    this.#source = source;
    await source.start();
    if ((this.#publisher?.inFlightBytes ?? 0) >= options.capture.maxInFlightBytes) source.pause();
  }

  #rememberCoordinates(position: string, coordinates: BinlogCoordinates): void {
    this.#coordinates.set(position, coordinates);
    // Bounded even if nobody asks: the in-flight budget holds far fewer transactions than this.
    if (this.#coordinates.size > MAX_REMEMBERED_COORDINATES) {
      const oldest = this.#coordinates.keys().next();
      if (oldest.done !== true) this.#coordinates.delete(oldest.value);
    }
  }

  #handle(output: CaptureOutput): void {
    const { options, metrics, logger } = this.deps;
    const publisher = this.#publisher;
    if (publisher === undefined) return;
    const region = options.region;
    switch (output.kind) {
      case 'change': {
        const event = output.event;
        const debezium = this.#debezium;
        let replicated = event;
        if (!options.schema.autoAddColumns && event.types !== undefined) {
          // The types were read for the Debezium output or the masks only: the replication envelope stays as it was.
          replicated = { ...event };
          delete replicated.types;
        }
        const key = messageKey(event.db, event.table, event.pk);
        const policy =
          options.governance === undefined
            ? undefined
            : policyForTable(options.governance, event.db, event.table);
        if (policy !== undefined)
          this.#governedPublishing().publish(publisher, policy, event, replicated, key);
        else
          this.#enqueueChange(
            publisher,
            this.#namesOf(event.db, event.table).topic,
            key,
            replicated,
            true,
          );
        if (debezium !== undefined) this.#publishDebezium(debezium, publisher, event);
        return;
      }
      case 'commit':
        this.#resumePosition = output.position;
        publisher.enqueue({ kind: 'commit', position: output.position });
        return;
      case 'dead-letter': {
        metrics.deadLetterTotal.inc({ stage: 'capture', reason: output.reason });
        logger.error(
          { reason: output.reason, detail: output.detail },
          'captured row parked in the dead-letter topic',
        );
        publisher.enqueue(captureDeadLetterItem(options.kafka.topicPrefix, region, output));
        return;
      }
      case 'ddl':
        this.#ddl(output);
        return;
      case 'applier-transaction':
        metrics.captureApplierTransactionsTotal.inc({ region });
        return;
      case 'warning':
        metrics.captureWarningsTotal.inc({ region, reason: output.reason });
        logger.warn({ reason: output.reason }, output.message);
        return;
    }
  }

  /**
   * A table's topic and its `db.table` label, built once per table: every
   * queued row holds both until Kafka acknowledges it, so strings built per
   * row were promoted out of V8's young generation with the row (about a
   * sixth of what capture promoted per row).
   */
  #namesOf(db: string, table: string): { topic: string; label: string } {
    let byTable = this.#names.get(db);
    if (byTable === undefined) {
      byTable = new Map<string, { topic: string; label: string }>();
      this.#names.set(db, byTable);
    }
    let names = byTable.get(table);
    if (names === undefined) {
      const { options } = this.deps;
      names = {
        topic: topicName(options.kafka.topicPrefix, options.region, db, table),
        label: `${db}.${table}`,
      };
      byTable.set(table, names);
    }
    return names;
  }

  /**
   * One change for one topic, in the configured envelope: a v2 row joined
   * with others of its partition at send time, or a v1 message.
   * Heartbeats stay v1: appliers read them apart from changes, a few per
   * second. Every copy of a change (governed tables) goes through here, so
   * both envelopes route alike.
   */
  #enqueueChange(
    publisher: AuditPublisher,
    topic: string,
    key: string,
    event: ChangeEvent,
    counted: boolean,
  ): void {
    const { options } = this.deps;
    const table = this.#namesOf(event.db, event.table).label;
    if (options.capture.envelope === 2 && event.db !== options.internalSchema)
      publisher.enqueue({
        kind: 'row',
        topic,
        key,
        row: packRow(event),
        table,
        op: event.op,
        commitTs: event.commitTs,
        ...(counted ? {} : { counted: false }),
      });
    else
      publisher.enqueue({
        kind: 'message',
        topic,
        key,
        value: encodeEvent(event),
        table,
        op: event.op,
        commitTs: event.commitTs,
        ...(counted ? {} : { counted: false }),
      });
  }

  /** The governed publishing path (docs/GOVERNANCE.md, "Capture and apply"), for a configuration with policies. */
  #governedPublishing(): GovernedPublishing {
    const { options, metrics, logger } = this.deps;
    this.#governed ??= new GovernedPublishing({
      ...governedLayoutOf(options),
      metrics,
      logger,
      enqueueChange: (sink, topic, key, event, counted) =>
        this.#enqueueChange(sink, topic, key, event, counted),
      deadLetter: (_sink, refusal) => this.#handle({ kind: 'dead-letter', ...refusal }),
    });
    return this.#governed;
  }

  /** The zone and masked topics this region may publish rows of `schema.table` to (none for an ungoverned table). */
  #governedTopics(schema: string, table: string): string[] {
    const { options } = this.deps;
    const governance = options.governance;
    const policy = governance === undefined ? undefined : policyForTable(governance, schema, table);
    if (policy === undefined || governance === undefined) return [];
    return policyAudiences(policy, governance.regions)
      .filter((a) => a.kind !== 'all' && !(a.kind === 'masked' && a.region === options.region))
      .map((a) => governedTopicName(options.kafka.topicPrefix, a, options.region, schema, table));
  }

  /**
   * The same change in Debezium's envelope, queued right behind its
   * replication message: both go out in the same acknowledged batches, and
   * the checkpoint moves past the transaction only once both are in Kafka.
   * A value that cannot be mapped parks the Debezium copy in the capture
   * dead-letter topic (the replication message is unaffected).
   */
  #publishDebezium(
    debezium: DebeziumOutput,
    publisher: CapturePublisher,
    event: ChangeEvent,
  ): void {
    let messages;
    try {
      messages = debezium.messages(event, Date.now());
    } catch (err) {
      this.#handle({
        kind: 'dead-letter',
        reason: 'debezium_mapping',
        detail: err instanceof Error ? err.message : String(err),
        source: { db: event.db, table: event.table, pk: event.pk, gtid: event.gtid, op: event.op },
      });
      return;
    }
    for (const message of messages) {
      publisher.enqueue({
        kind: 'message',
        topic: message.topic,
        key: message.key,
        value: message.value === null ? null : Buffer.from(message.value),
        table: `${event.db}.${event.table}`,
        op: event.op,
        commitTs: event.commitTs,
        counted: false,
      });
    }
  }

  /**
   * DDL is not replicated (each region runs its own); capture repairs what
   * it broke on replicated tables, off this handler, and refuses TRUNCATE
   * loudly: counted, logged and on `/readyz`.
   */
  #ddl(output: Extract<CaptureOutput, { kind: 'ddl' }>): void {
    const { options, metrics, logger } = this.deps;
    const region = options.region;
    const touches = ddlTouches(output.statement, output.schema);
    const truncated = touches.truncated.filter((t) => this.#isReplicated(t.schema, t.table));
    metrics.captureDdlTotal.inc({ region, kind: truncated.length > 0 ? 'truncate' : 'ddl' });
    const statement = output.statement.slice(0, 200);
    for (const table of truncated) {
      const name = `${table.schema}.${table.table}`;
      const atMs = output.timestampMs > 0 ? output.timestampMs : Date.now();
      if (Date.now() - atMs < TRUNCATE_NOTICE_MS) this.#truncations.set(name, atMs);
      logger.error(
        { table: name, statement },
        `TRUNCATE of ${name} is not replicated: other regions keep their rows. ` +
          'Delete them there (or run verify --repair from this region, or re-snapshot); see docs/OPERATIONS.md',
      );
    }
    if (truncated.length === 0)
      logger.info({ schema: output.schema, statement }, 'DDL seen in the binlog (not replicated)');
    if (touches.columns.length > 0)
      this.#repair.columnsChanged(
        touches.columns,
        output.timestampMs > 0 ? output.timestampMs : Date.now(),
      );
    for (const table of touches.changed) this.#repair.tableChanged(table);
    for (const schema of touches.triggerSchemas) this.#repair.triggersChanged(schema);
    const notify = this.deps.onLocalSchemaChange;
    if (notify !== undefined)
      for (const table of touches.changed)
        if (this.#isReplicated(table.schema, table.table)) notify(table.schema, table.table);
  }

  #onSourceError(error: CdcError): void {
    const { options, metrics, logger } = this.deps;
    if (this.#state === 'draining' || this.#state === 'stopped' || this.#state === 'failed') return;
    if (!error.retriable) {
      this.#fail(error);
      return;
    }
    if (this.#reconnecting !== undefined) return;
    metrics.captureReconnectsTotal.inc({ region: options.region });
    this.#reconnecting = (async () => {
      for (;;) {
        const delay = this.#reconnectDelayMs;
        this.#reconnectDelayMs = Math.min(delay * 2, RECONNECT_MAX_MS);
        logger.warn(
          { err: error.message, retryInMs: delay, position: this.#resumePosition },
          'binlog connection lost; reconnecting',
        );
        await sleep(delay);
        if (this.#state !== 'running') return;
        try {
          await this.#openSource();
          this.#reconnectDelayMs = RECONNECT_INITIAL_MS;
          logger.info({ position: this.#resumePosition }, 'binlog connection re-established');
          return;
        } catch (err) {
          const classified = classifyError(err, 'reconnecting to the binlog');
          if (!classified.retriable) {
            this.#fail(classified);
            return;
          }
        }
      }
    })().finally(() => (this.#reconnecting = undefined));
  }

  #fail(error: CdcError): void {
    if (this.#state === 'failed') return;
    this.#state = 'failed';
    this.#source?.stop();
    this.#publisher?.abort();
    void this.#repair.stop();
    this.deps.logger.error({ err: error.message, code: error.code }, 'capture stopped');
    this.#failure?.(error);
  }
}

function leaseLost(what: string): CdcError {
  return new CdcError(`capture lease no longer held: not ${what}`, {
    retriable: false,
    code: LEASE_LOST,
  });
}

/** The store with every save carrying the lease's token, and no save once the lease is gone. */
function fencedStore(store: CheckpointStore, fence: CaptureFence): CheckpointStore {
  return {
    load: (key) => store.load(key),
    save: (key: string, checkpoint: Checkpoint) => {
      if (!fence.held()) return Promise.reject(leaseLost('saving the checkpoint'));
      return store.save(key, checkpoint, fence.token);
    },
    close: () => store.close(),
  };
}

/** The producer, refusing to send once the lease is gone. */
function fencedProducer(producer: Producer, fence: CaptureFence): Producer {
  return {
    ...producer,
    sendBatch: (batch) => {
      if (!fence.held()) return Promise.reject(leaseLost('publishing'));
      return producer.sendBatch(batch);
    },
    send: (record) => {
      if (!fence.held()) return Promise.reject(leaseLost('publishing'));
      return producer.send(record);
    },
  };
}

/** The checkpoint store as an operator knows it (never a password). */
function describeStore(store: RuntimeOptions['checkpointStore']): string {
  return store.kind === 'redis'
    ? `Redis ${redactRedisUrl(store.url.reveal())}, key prefix '${store.keyPrefix}'`
    : `file store ${store.dir}`;
}
