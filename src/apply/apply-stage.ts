import { setTimeout as sleep } from 'node:timers/promises';
import type { Connection as CoreConnection } from 'mysql2';
import mysql from 'mysql2/promise';
import type { Admin, Consumer, EachBatchPayload, Kafka, KafkaMessage, Producer } from 'kafkajs';
import { ensureTopicsWith } from '../bus/kafka.js';
import { Murmur2Partitioner } from '../bus/partitioner.js';
import type { PipelineOptions, RuntimeOptions } from '../config/compile.js';
import { CdcError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { classifyError } from '../core/retriable.js';
import { retryRetriable } from '../core/retry.js';
import { deadLetterTopic } from '../capture/capture-stage.js';
import { clientOptions } from '../mysql/connection.js';
import { dialectOf } from '../mysql/dialect.js';
import { qualifiedName } from '../mysql/identifiers.js';
import { INTERNAL_TABLES } from '../mysql/internal-tables.js';
import { serverInfo } from '../mysql/introspect.js';
import { messageKey, singleRowMessage } from '../bus/envelope.js';
import { OneShotGovernedPublishing, governedLayoutOf } from '../capture/governed-publishing.js';
import { policyForTable } from '../governance/policy.js';
import type { DaemonMetrics } from '../monitor/metrics.js';
import {
  decodeApplyMessage,
  type DecodedRow,
  RejectedEvent,
  type ApplyEvent,
  type RejectReason,
} from './apply-event.js';
import {
  APPLIER_SESSION_STATEMENTS,
  buildRoutes,
  describeApplyTable,
  eventToLocal,
  loadLocalTables,
  routeForTopic,
  strategyOf,
  validateEvents,
  type ApplyTable,
  type TopicRoute,
} from './apply-target.js';
import { ColumnAdder } from './auto-add-columns.js';
import { recheckGovernance, withholdsValue } from './governance-check.js';
import { LocalTableChanged, type ChunkContext, type ChunkResult } from './batch-applier.js';
import type { EditPublication } from './edit-request.js';
import { applyEvents } from './eviction.js';
import {
  isSchemaSkewError,
  SchemaSkew,
  skewFromMysqlError,
  type HoldReason,
} from './schema-skew.js';

export type ApplyState = 'idle' | 'starting' | 'running' | 'draining' | 'stopped' | 'failed';

export interface ApplyStageDeps {
  options: RuntimeOptions;
  kafka: Kafka;
  metrics: DaemonMetrics;
  logger: Logger;
}

const RETRY_INITIAL_MS = 50;
const RETRY_MAX_MS = 5_000;
/** A chunk that keeps failing with retriable errors is split to find the event at fault. */
const RETRIES_BEFORE_ISOLATING = 5;

/** Per source region: events applied and a moving average of apply-transaction time. */
export interface SourceActivity {
  events: number;
  batchSecondsEwma: number;
}

/** A partition held for schema skew: where, why, and since when. */
interface Hold {
  readonly topic: string;
  readonly partition: number;
  readonly source: string;
  readonly table: string;
  reason: HoldReason;
  what: string;
  readonly sinceMs: number;
}

/** Where a chunk stopped: the message (index in the chunk) whose event the local schema does not allow yet. */
interface Held {
  readonly index: number;
  readonly skew: SchemaSkew;
}

const SKIP_REPLICATION_STATEMENT = 'SET SESSION skip_replication = 1';

/**
 * The applier's statement formatting: mysql2's own, except that a statement
 * sent without values is sent as it is. mysql2 scans every statement for
 * placeholders, even one without values, and a chunk's statements are built
 * with their values as literals and run to hundreds of KiB (the scan was
 * a tenth of the applier's CPU). Called by mysql2 with the connection as
 * `this` and its time zone.
 */
function applierQueryFormat(
  this: { config?: { stringifyObjects?: boolean } },
  sql: string,
  values: unknown,
  timezone?: string,
): string {
  if (values === undefined || values === null || (Array.isArray(values) && values.length === 0))
    return sql;
  return (
    mysql.format as (sql: string, values: unknown, stringify?: boolean, tz?: string) => string
  )(sql, values, this.config?.stringifyObjects, timezone);
}

/** The message an event came from, and its index in the chunk. */
interface Origin {
  readonly message: KafkaMessage;
  readonly index: number;
  /** The row of a v2 message (undefined: the message is one event). */
  readonly row?: number | undefined;
}

function holdKey(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

/** The consumer group shared by every applier of one region. */
export function applyGroupId(topicPrefix: string, region: string): string {
  return `${topicPrefix}.apply.${region}`;
}

/**
 * The apply stage: consumes every other region's change topics with one
 * consumer group per target region, applies each partition's events in
 * per-table chunks, one MySQL transaction each, and commits Kafka offsets
 * only after MySQL committed. Events that cannot be applied go to the
 * dead-letter topic with the reason and the original message, are counted,
 * and never block their partition. Events that are only early (schema skew,
 * DESIGN.md §6a) hold their partition instead: it is paused at the first such
 * event, the table's description is re-read while anything is held, and the
 * partition resumes by itself once the local schema allows the event.
 */
export class ApplyStage {
  #state: ApplyState = 'idle';
  #skipRefusalLogged = false;
  /** Whether chunks list their keys as a table value constructor (the server has them). */
  #valuesList = false;
  #pool: mysql.Pool | undefined;
  #consumer: Consumer | undefined;
  #producer: Producer | undefined;
  readonly #routes = new Map<string, TopicRoute>();
  readonly #tables = new Map<string, ApplyTable>();
  /** When each table's description was last read (ms), so a run of early events re-reads it once. */
  readonly #describedAtMs = new Map<string, number>();
  readonly #holds = new Map<string, Hold>();
  #purgeTimer: NodeJS.Timeout | undefined;
  #holdTimer: NodeJS.Timeout | undefined;
  #rechecking = false;
  #discoveryTimer: NodeJS.Timeout | undefined;
  /** `schema.autoAddColumns`: adds the columns held events wait for. */
  #columnAdder: ColumnAdder | undefined;
  #discovery: Promise<void> | undefined;
  #admin: Admin | undefined;
  /** Set by `pause()`: the recheck then leaves paused partitions alone. */
  #pausedByOperator = false;
  #failure: ((error: CdcError) => void) | undefined;
  readonly failed: Promise<CdcError>;
  /** Newest heartbeat hlc (µs) per source region, for the lag gauge. */
  readonly #lastHeartbeat = new Map<string, number>();
  /**
   * Source time (µs) up to which each source region is known to be applied:
   * the newest heartbeat or applied change, clamped to local time so a source
   * whose clock runs ahead cannot hide lag.
   */
  readonly #progress = new Map<string, number>();
  readonly #bySource = new Map<string, SourceActivity>();
  #startedAtMs = 0;

  constructor(private readonly deps: ApplyStageDeps) {
    this.failed = new Promise((resolve) => (this.#failure = resolve));
  }

  get state(): ApplyState {
    return this.#state;
  }

  /** Newest heartbeat time (µs since the epoch) applied from each source region. */
  get heartbeats(): ReadonlyMap<string, number> {
    return this.#lastHeartbeat;
  }

  /** Source time (µs since the epoch) up to which each source region has been applied here. */
  get progress(): ReadonlyMap<string, number> {
    return this.#progress;
  }

  /** When the stage started consuming (ms since the epoch); lag from a silent source counts from here. */
  get startedAtMs(): number {
    return this.#startedAtMs;
  }

  /** Events applied and apply-transaction timing per source region, for throughput and diagnosis. */
  activity(source: string): Readonly<SourceActivity> {
    return this.#bySource.get(source) ?? { events: 0, batchSecondsEwma: 0 };
  }

  /** The consumer group of this region's appliers and the topics it reads. */
  get consumerGroup(): { groupId: string; topics: readonly { topic: string; source: string }[] } {
    const { options } = this.deps;
    return {
      groupId: applyGroupId(options.kafka.topicPrefix, options.region),
      topics: [...this.#routes].map(([topic, route]) => ({ topic, source: route.sourceRegion })),
    };
  }

  async start(): Promise<void> {
    if (this.#state !== 'idle') throw new Error(`apply cannot start from state ${this.#state}`);
    this.#state = 'starting';
    const { options, kafka, logger } = this.deps;
    this.#pool = mysql.createPool({
      ...clientOptions(options.mysql),
      connectionLimit: options.apply.partitionsConcurrently + 2,
      queryFormat: applierQueryFormat,
      // A chunk's statements go as a few multi-statement queries (applyChunk): fewer round trips.
      multipleStatements: true,
    });
    // Every applier session gets the applier settings.
    // (Statements queue on the connection before any caller's query runs.)
    this.#pool.on('connection', (connection) => {
      // mysql2 hands this event the callback-style connection, whatever its typings say.
      const core = connection as unknown as CoreConnection;
      const onError = (err: Error | null): void => {
        if (err !== null) logger.error({ err: err.message }, 'applier session setup failed');
      };
      for (const statement of APPLIER_SESSION_STATEMENTS) core.query(statement, onError);
      // MariaDB: mark the applier's transactions so this region's capture is never sent them
      // (see BinlogSource's skipMarkedTransactions). MySQL has no such variable (1193);
      // without the privilege (1227) the apply marker alone keeps them out.
      core.query(SKIP_REPLICATION_STATEMENT, (err: Error | null) => {
        const errno = (err as { errno?: number } | null)?.errno;
        if (err === null || errno === 1193 || this.#skipRefusalLogged) return;
        this.#skipRefusalLogged = true;
        logger.warn(
          { err: err.message },
          "applier sessions cannot set skip_replication: this region's capture reads the applier's transactions and drops them by their marker (slower, still correct)",
        );
      });
    });

    const local = await this.#pool.getConnection();
    try {
      for (const [key, info] of await loadLocalTables(local, options)) this.#tables.set(key, info);
      this.#valuesList = dialectOf(await serverInfo(local)).tableValueConstructor;
    } finally {
      local.release();
    }

    const prefix = options.kafka.topicPrefix;
    for (const [topic, route] of buildRoutes(options, this.#tables)) this.#routes.set(topic, route);
    // Peers may not have started yet: create their topics with the shared settings so subscribing works now.
    await ensureTopicsWith(
      kafka,
      [...this.#routes.keys(), deadLetterTopic(prefix, 'apply', options.region)],
      options.kafka.topics,
    );

    this.#producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Murmur2Partitioner,
    });
    await this.#producer.connect();
    await this.#startConsumer();
    this.#purgeTimer = setInterval(() => void this.#purge(), options.apply.purgeIntervalMs);
    this.#purgeTimer.unref();
    this.#holdTimer = setInterval(
      () => void this.#recheckHolds(),
      options.apply.holdRecheckIntervalMs,
    );
    this.#holdTimer.unref();
    if (options.schema.autoAddColumns)
      this.#columnAdder = new ColumnAdder({
        options,
        metrics: this.deps.metrics,
        logger,
        onAdded: (schema, table) => void this.schemaChanged(schema, table),
      });
    if (options.pipelines.some((p) => p.tables.some((t) => t.table === '*'))) {
      this.#discoveryTimer = setInterval(() => {
        this.#discovery ??= this.#discoverTopics().finally(() => (this.#discovery = undefined));
      }, options.apply.topicDiscoveryIntervalMs);
      this.#discoveryTimer.unref();
    }
    this.#state = 'running';
    this.#startedAtMs = Date.now();
    logger.info({ topics: this.#routes.size, sources: options.peers }, 'apply running');
  }

  /** Stops fetching; in-flight batches finish and their offsets are committed. */
  async stop(): Promise<void> {
    if (this.#state === 'idle' || this.#state === 'stopped') {
      this.#state = 'stopped';
      return;
    }
    this.#state = 'draining';
    clearInterval(this.#purgeTimer);
    clearInterval(this.#holdTimer);
    clearInterval(this.#discoveryTimer);
    try {
      await this.#discovery;
      await this.#columnAdder?.stop();
      await this.#admin?.disconnect();
      await this.#consumer?.disconnect();
      await this.#producer?.disconnect();
      this.deps.logger.info('apply stopped: offsets of applied batches committed');
    } finally {
      await this.#pool?.end();
      if (this.#state === 'draining') this.#state = 'stopped';
    }
  }

  /**
   * One consumer of the region's group over every routed topic. kafkajs
   * cannot add topics to a running consumer, so a new topic means a new
   * consumer (`#discoverTopics`); committed offsets make that safe, and a
   * topic the group never read starts from its first event.
   */
  async #startConsumer(): Promise<void> {
    const { options, kafka, logger } = this.deps;
    const consumer = kafka.consumer({
      groupId: applyGroupId(options.kafka.topicPrefix, options.region),
      // A killed daemon's partitions move to its successor after this long.
      sessionTimeout: 10_000,
      heartbeatInterval: 1_000,
      // Fetched messages stay in memory, decoded, until their partition's batch is applied:
      // 1 MiB per partition (about 5,000 events) keeps several chunks queued per
      // partition, and a 4 MiB cap per fetch bounds what all partitions hold at once.
      maxBytesPerPartition: 1024 * 1024,
      maxBytes: 4 * 1024 * 1024,
      // kafkajs sleeps this long when every partition is paused, and a resumed applier
      // waits it out; fetches still return as soon as data arrives.
      maxWaitTimeInMs: 500,
    });
    this.#consumer = consumer;
    await consumer.connect();
    // The consumer keeps its own metadata cache, which may not know a topic another
    // region's daemon created a moment ago: such a subscribe fails retriably.
    const subscribeDeadline = Date.now() + 60_000;
    await retryRetriable(
      () => consumer.subscribe({ topics: [...this.#routes.keys()], fromBeginning: true }),
      {
        what: `subscribing to ${this.#routes.size} source topics`,
        initialDelayMs: 200,
        maxDelayMs: 2000,
        keepGoing: () =>
          (this.#state === 'starting' || this.#state === 'running') &&
          Date.now() < subscribeDeadline,
        onRetry: (error, delayMs) =>
          logger.info({ err: error.message, retryInMs: delayMs }, 'subscribe retried'),
      },
    );
    consumer.on(consumer.events.CRASH, (event) => {
      const error = classifyError(event.payload.error, 'Kafka consumer');
      if (!event.payload.restart && consumer === this.#consumer) this.#fail(error);
    });
    // Holds of partitions now assigned elsewhere are that daemon's to report.
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      const assigned = event.payload.memberAssignment;
      for (const [key, hold] of this.#holds)
        if (!(assigned[hold.topic] ?? []).includes(hold.partition))
          this.#endHold(key, 'reassigned');
    });
    await consumer.run({
      autoCommit: true,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: options.apply.partitionsConcurrently,
      eachBatch: (payload) => this.#eachBatch(payload),
    });
  }

  /**
   * What `/readyz` reports while events are held: one line per source table,
   * e.g. `app.users from us-east held 14 s: column tier missing here`.
   */
  readiness(): string[] {
    const oldest = new Map<string, Hold>();
    for (const hold of this.#holds.values()) {
      const key = `${hold.table} from ${hold.source}`;
      const seen = oldest.get(key);
      if (seen === undefined || hold.sinceMs < seen.sinceMs) oldest.set(key, hold);
    }
    const nowMs = Date.now();
    return [...oldest].map(
      ([key, hold]) => `${key} held ${Math.round((nowMs - hold.sinceMs) / 1000)} s: ${hold.what}`,
    );
  }

  /**
   * Tells the applier that a local table's schema changed (a local DDL, as
   * capture saw it in the binlog): its description is read again and its
   * held partitions retried. Does nothing unless running.
   */
  async schemaChanged(schema: string, table: string): Promise<void> {
    if (this.#state !== 'running') return;
    await this.#describe(schema, table, false);
    const name = `${schema}.${table}`;
    if (this.#state !== 'running' || this.#pausedByOperator) return;
    for (const hold of this.#holds.values())
      if (hold.table === name)
        this.#consumer?.resume([{ topic: hold.topic, partitions: [hold.partition] }]);
  }

  /** Stops fetching new messages (a test hook and an operator's brake); `resume()` continues. */
  pause(): void {
    this.#pausedByOperator = true;
    const topics = [...this.#routes.keys()].map((topic) => ({ topic }));
    this.#consumer?.pause(topics);
  }

  resume(): void {
    this.#pausedByOperator = false;
    const topics = [...this.#routes.keys()].map((topic) => ({ topic }));
    this.#consumer?.resume(topics);
  }

  async #eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    const route = this.#routes.get(batch.topic);
    const key = holdKey(batch.topic, batch.partition);
    const chunkSize = this.deps.options.apply.batchMaxEvents;
    for (let start = 0; start < batch.messages.length; start += chunkSize) {
      if (!payload.isRunning() || payload.isStale()) return;
      const messages = batch.messages.slice(start, start + chunkSize);
      let held: Held | undefined;
      try {
        held = await this.#process(batch.topic, batch.partition, route, messages);
      } catch (err) {
        // Stopping mid-chunk: leave its offsets unresolved (they are consumed
        // again after a restart) and return normally, so kafkajs does not
        // treat it as a crash and restart the consumer.
        if (err instanceof CdcError && err.code === 'APPLY_STOPPING') return;
        throw err;
      }
      if (held !== undefined && route !== undefined) {
        // Everything before the early event is applied; it and everything after
        // it wait (per-key order intact): the next fetch starts at it, once
        // the recheck resumes the partition.
        const before = messages[held.index - 1];
        if (before !== undefined) payload.resolveOffset(before.offset);
        if (start + held.index > 0) this.#endHold(key, 'applied');
        this.#startHold(batch.topic, batch.partition, route, held.skew);
        // Asked again at every retry of the hold; the adder runs one ALTER per table at a time.
        if (held.skew.columns !== undefined)
          this.#columnAdder?.add(route.db, route.table, held.skew.columns);
        payload.pause();
        await payload.commitOffsetsIfNecessary();
        return;
      }
      const last = messages[messages.length - 1];
      if (last !== undefined) payload.resolveOffset(last.offset);
      this.#endHold(key, 'applied');
      await payload.heartbeat();
    }
    await payload.commitOffsetsIfNecessary();
  }

  /**
   * Applies a chunk in order: runs of valid events in one transaction each,
   * an event invalid in itself to the dead letter, and, at the first event
   * the local schema does not allow yet, stops and says where.
   */
  async #process(
    topic: string,
    partition: number,
    route: TopicRoute | undefined,
    messages: KafkaMessage[],
  ): Promise<Held | undefined> {
    if (route === undefined) {
      for (const message of messages)
        await this.#deadLetter(
          topic,
          partition,
          { message, index: 0 },
          new RejectedEvent('table_not_in_pipeline', `topic ${topic} is not subscribed`),
        );
      return undefined;
    }
    if (route.heartbeat) {
      this.#heartbeats(route, messages);
      return undefined;
    }
    let run: ApplyEvent[] = [];
    const origins = new Map<ApplyEvent, Origin>();
    const flush = async (): Promise<Held | undefined> => {
      if (run.length === 0) return undefined;
      const events = run;
      run = [];
      return this.#applyWithRetry(topic, partition, route, events, origins);
    };
    for (const [index, message] of messages.entries()) {
      let rows: DecodedRow[];
      try {
        rows = await this.#check(route, message);
      } catch (err) {
        // What came before is applied first, so nothing after a held event goes anywhere.
        const held = await flush();
        if (held !== undefined) return held;
        if (err instanceof SchemaSkew) return { index, skew: err };
        await this.#deadLetter(topic, partition, { message, index }, err);
        continue;
      }
      const several = rows.length > 1;
      for (const decoded of rows) {
        const origin: Origin = { message, index, row: several ? decoded.row : undefined };
        if ('error' in decoded) {
          // One bad row of a v2 message: parked alone, in order, and the others go on.
          const held = await flush();
          if (held !== undefined) return held;
          await this.#deadLetter(topic, partition, origin, decoded.error);
          continue;
        }
        for (const event of decoded.events) {
          run.push(event);
          origins.set(event, origin);
        }
        // A v2 message holds many rows: chunks are bounded in events, not messages
        // (a later hold in this message re-applies its first rows: the join is idempotent).
        if (run.length >= this.deps.options.apply.batchMaxEvents) {
          const held = await flush();
          if (held !== undefined) return held;
        }
      }
    }
    return flush();
  }

  /**
   * Decodes and validates one message. When it names something the local
   * schema lacks, the table's description is read again first (at most once
   * per recheck interval): the local DDL may have run since it was read.
   * Rows are validated together: they share their table and columns.
   */
  async #check(route: TopicRoute, message: KafkaMessage): Promise<DecodedRow[]> {
    // Governance first: a row this region may not hold goes no further (docs/GOVERNANCE.md).
    const rows = recheckGovernance(
      this.deps.options,
      route,
      decodeApplyMessage(message.value, route),
    );
    const validate = (): DecodedRow[] => {
      const valid = rows.flatMap((r) => ('error' in r ? [] : r.events));
      if (valid.length === 0) return rows;
      const local = this.#validate(route, valid);
      let next = 0;
      return rows.map((r) => {
        if ('error' in r) return r;
        const events = local.slice(next, next + r.events.length);
        next += r.events.length;
        return { row: r.row, events };
      });
    };
    try {
      return validate();
    } catch (err) {
      if (!(err instanceof SchemaSkew) || !(await this.#describe(route.db, route.table, true)))
        throw err;
      return validate();
    }
  }

  #validate(route: TopicRoute, events: ApplyEvent[]): ApplyEvent[] {
    return validateEvents(route, this.#tables.get(`${route.db}.${route.table}`), events);
  }

  /**
   * Reads a table's description again. With `rateLimited`, not when it was
   * read less than a recheck interval ago. True when it was read.
   */
  async #describe(schema: string, table: string, rateLimited: boolean): Promise<boolean> {
    const key = `${schema}.${table}`;
    const nowMs = Date.now();
    const lastMs = this.#describedAtMs.get(key) ?? 0;
    if (rateLimited && nowMs - lastMs < this.deps.options.apply.holdRecheckIntervalMs) return false;
    this.#describedAtMs.set(key, nowMs);
    const pool = this.#pool;
    if (pool === undefined) return false;
    try {
      const connection = await pool.getConnection();
      try {
        const info = await describeApplyTable(
          connection,
          schema,
          table,
          this.deps.options.internalSchema,
        );
        if (info === undefined) this.#tables.delete(key);
        else this.#tables.set(key, info);
      } finally {
        connection.release();
      }
      return true;
    } catch (err) {
      this.deps.logger.warn(
        { err: (err as Error).message, table: key },
        'reading the local table description failed; will retry',
      );
      return false;
    }
  }

  async #applyWithRetry(
    topic: string,
    partition: number,
    route: TopicRoute,
    events: ApplyEvent[],
    origins: Map<ApplyEvent, Origin>,
  ): Promise<Held | undefined> {
    const { options, logger } = this.deps;
    let delay = RETRY_INITIAL_MS;
    const indexOf = (event: ApplyEvent): number => origins.get(event)?.index ?? 0;
    for (let attempt = 1; ; attempt += 1) {
      this.#assertRunning();
      try {
        const startedMs = performance.now();
        const result = await this.#applyOnce(topic, partition, route, events);
        this.#record(route, events, result, (performance.now() - startedMs) / 1000);
        return undefined;
      } catch (err) {
        if (err instanceof SchemaSkew)
          return { index: indexOf(events[0] as ApplyEvent), skew: err };
        if (err instanceof LocalTableChanged && attempt < RETRIES_BEFORE_ISOLATING) {
          await this.#describe(route.db, route.table, false);
          continue;
        }
        if (isSchemaSkewError(err)) {
          // The local schema changed under the applier (1054, 1146) or a value does not
          // fit its column (strict mode): read the table again, retry once, then find the event.
          await this.#describe(route.db, route.table, false);
          if (events.length > 1 && attempt < 2) continue;
          if (events.length > 1)
            return this.#applyOneByOne(topic, partition, route, events, origins);
          const [event] = events as [ApplyEvent];
          let skew: SchemaSkew | undefined;
          try {
            this.#validate(route, [event]);
          } catch (checkErr) {
            if (!(checkErr instanceof SchemaSkew)) {
              await this.#deadLetter(topic, partition, origins.get(event), checkErr);
              return undefined;
            }
            skew = checkErr;
          }
          // A description that changed may let it through now: one more try before holding.
          if (skew === undefined && attempt < 2) continue;
          return {
            index: indexOf(event),
            skew: skew ?? skewFromMysqlError(err, `${route.db}.${route.table}`),
          };
        }
        const error = classifyError(
          err,
          `applying ${events.length} events to ${route.db}.${route.table} in region ${options.region}`,
        );
        const duplicateKey = (err as { errno?: unknown }).errno === 1062;
        if ((error.retriable || duplicateKey) && attempt < RETRIES_BEFORE_ISOLATING) {
          logger.debug({ attempt, err: error.message }, 'apply chunk retried');
          await sleep(delay + Math.random() * delay);
          delay = Math.min(delay * 2, RETRY_MAX_MS);
          continue;
        }
        if (error.retriable && !duplicateKey && events.length === 1) {
          // The database is unavailable, not the event at fault: keep waiting, never drop.
          logger.warn({ err: error.message, retryInMs: delay }, 'apply waits for MySQL');
          await sleep(delay);
          delay = Math.min(delay * 2, RETRY_MAX_MS);
          continue;
        }
        if (events.length === 1) {
          const [event] = events as [ApplyEvent];
          await this.#deadLetter(
            topic,
            partition,
            origins.get(event),
            new RejectedEvent(
              duplicateKey ? 'constraint_violation' : 'apply_failed',
              error.message,
              err,
            ),
          );
          return undefined;
        }
        return this.#applyOneByOne(topic, partition, route, events, origins);
      }
    }
  }

  /** Finds the event at fault: applies one at a time, in order, up to the first held one. */
  async #applyOneByOne(
    topic: string,
    partition: number,
    route: TopicRoute,
    events: ApplyEvent[],
    origins: Map<ApplyEvent, Origin>,
  ): Promise<Held | undefined> {
    for (const event of events) {
      const held = await this.#applyWithRetry(topic, partition, route, [event], origins);
      if (held !== undefined) return held;
    }
    return undefined;
  }

  async #applyOnce(
    topic: string,
    partition: number,
    route: TopicRoute,
    events: ApplyEvent[],
  ): Promise<ChunkResult> {
    const pool = this.#pool as mysql.Pool;
    const table = this.#tables.get(`${route.db}.${route.table}`);
    if (table === undefined)
      throw new SchemaSkew('table_missing', `table ${route.db}.${route.table} missing here`);
    const { strategy, name } = strategyOf(route.pipeline as PipelineOptions);
    // Mapped again with the current description: a retry after a local DROP or
    // RENAME COLUMN (1054) must not resend a column this region no longer has.
    const local = events.map((event) => eventToLocal(table, event));
    const context: ChunkContext = {
      region: this.deps.options.region,
      internalSchema: this.deps.options.internalSchema,
      applierId: `${this.deps.options.region}/${topic}/${partition}`,
      sourceRegion: route.sourceRegion,
      table,
      strategy,
      strategyName: name,
      valuesList: this.#valuesList,
      recordConflict: () => Math.random() < this.deps.options.apply.conflictSampleRate,
      publishEdit: (publication) => this.#publishEdit(publication),
    };
    const connection = await pool.getConnection();
    try {
      return await applyEvents(connection, local, context);
    } finally {
      connection.release();
    }
  }

  /**
   * Publishes what this region wrote executing an edit request
   * (src/apply/edit-request.ts), through its governed path as capture
   * would publish a write of it: masked copies, notices, audit records. The
   * applier's own writes never reach capture, hence this.
   *
   * @throws when the path refuses it: the request is then retried, and dead
   *   lettered as `apply_failed` if that persists.
   */
  async #publishEdit(publication: EditPublication): Promise<void> {
    const { options, logger } = this.deps;
    const { change } = publication;
    const governance = options.governance;
    const policy =
      governance === undefined ? undefined : policyForTable(governance, change.db, change.table);
    if (governance === undefined || policy === undefined)
      throw new CdcError(
        `an edit request for ${change.db}.${change.table}, which no policy governs here`,
        {
          code: 'APPLY_EDIT_UNGOVERNED',
        },
      );
    const oneShot = new OneShotGovernedPublishing({ ...governedLayoutOf(options), logger });
    const sent =
      publication.kind === 'row'
        ? oneShot.publishing.publish(
            oneShot.sink,
            policy,
            change,
            change,
            messageKey(change.db, change.table, change.pk),
          ).kind === 'published'
        : oneShot.publishing.evict(oneShot.sink, policy, change, publication.regions);
    const refusal = oneShot.refused();
    if (!sent || refusal !== undefined)
      throw new CdcError(
        `the result of an edit request for ${change.db}.${change.table} cannot be published: ${refusal ?? 'refused'}`,
        { code: 'APPLY_EDIT_UNPUBLISHED' },
      );
    await oneShot.send(this.#producer as Producer);
  }

  #record(
    route: TopicRoute,
    events: readonly ApplyEvent[],
    result: ChunkResult,
    seconds: number,
  ): void {
    const { options, metrics, logger } = this.deps;
    const pair = { source_region: route.sourceRegion, target_region: options.region };
    metrics.applyBatchEvents.observe(pair, events.length);
    metrics.applyBatchDurationSeconds.observe(pair, seconds);
    const activity = this.#bySource.get(route.sourceRegion) ?? { events: 0, batchSecondsEwma: 0 };
    activity.events += events.length;
    activity.batchSecondsEwma =
      activity.batchSecondsEwma === 0 ? seconds : activity.batchSecondsEwma * 0.9 + seconds * 0.1;
    this.#bySource.set(route.sourceRegion, activity);
    const labels = {
      source_region: route.sourceRegion,
      target_region: options.region,
      table: `${route.db}.${route.table}`,
    };
    for (const [outcome, n] of result.outcomes)
      metrics.eventsAppliedTotal.inc({ ...labels, result: outcome }, n);
    for (const conflict of result.conflicts) {
      metrics.conflictsTotal.inc({
        table: labels.table,
        resolution: conflict.winner === 'incoming' ? 'incoming_won' : 'local_won',
      });
    }
    if (result.conflicts.length > 0) {
      logger.info(
        { table: labels.table, source: route.sourceRegion, conflicts: result.conflicts.length },
        'concurrent writes resolved',
      );
    }
    const nowMs = Date.now();
    const nowMicros = nowMs * 1000;
    let maxSkewMicros = 0;
    let newestMicros = 0;
    for (const event of events) {
      if (event.commitTs > 0)
        metrics.applyLatencySeconds.observe(
          { source_region: route.sourceRegion, target_region: options.region },
          Math.max(0, nowMs - event.commitTs) / 1000,
        );
      maxSkewMicros = Math.max(maxSkewMicros, event.version.hlc - nowMicros);
      newestMicros = Math.max(newestMicros, event.version.hlc);
    }
    this.#advance(route.sourceRegion, newestMicros, nowMicros);
    metrics.clockSkewSeconds.set(
      { source_region: route.sourceRegion },
      Math.max(0, maxSkewMicros) / 1e6,
    );
    if (maxSkewMicros > options.apply.maxClockSkewMs * 1000) {
      logger.warn(
        {
          source: route.sourceRegion,
          aheadMs: Math.round(maxSkewMicros / 1000),
          maxClockSkewMs: options.apply.maxClockSkewMs,
        },
        'incoming versions are ahead of the local clock; applied anyway (convergence first) — check NTP on both regions',
      );
    }
  }

  #heartbeats(route: TopicRoute, messages: KafkaMessage[]): void {
    for (const message of messages) {
      try {
        const event = JSON.parse(message.value?.toString('utf8') ?? 'null') as {
          hlc?: unknown;
          region?: unknown;
        };
        if (typeof event.hlc === 'number' && event.region === route.sourceRegion) {
          const previous = this.#lastHeartbeat.get(route.sourceRegion) ?? 0;
          if (event.hlc > previous) this.#lastHeartbeat.set(route.sourceRegion, event.hlc);
          this.#advance(route.sourceRegion, event.hlc, Date.now() * 1000);
        }
      } catch (err) {
        this.deps.logger.warn(
          { err: (err as Error).message, source: route.sourceRegion },
          'undecodable heartbeat ignored',
        );
      }
    }
  }

  #advance(source: string, sourceMicros: number, nowMicros: number): void {
    const reached = Math.min(sourceMicros, nowMicros);
    if (reached > (this.#progress.get(source) ?? 0)) this.#progress.set(source, reached);
  }

  async #deadLetter(
    topic: string,
    partition: number,
    origin: Origin | undefined,
    err: unknown,
  ): Promise<void> {
    const message = origin?.message;
    const { options, metrics, logger } = this.deps;
    const reason: RejectReason = err instanceof RejectedEvent ? err.reason : 'apply_failed';
    // A governed row this region may not hold (or that was refused before its residency
    // was checked) is parked without its value, key or detail: only where to find it.
    const withheld = withholdsValue(options, this.#routes.get(topic), reason);
    // A row of a v2 message is parked alone: replaying it replays nothing else.
    const value = withheld
      ? null
      : origin?.row === undefined || message?.value == null
        ? message?.value
        : singleRowMessage(message.value, origin.row);
    const detail =
      withheld && reason !== 'governance_refused'
        ? `${reason} (detail withheld: a governed table's event refused before its residency was checked)`
        : err instanceof Error
          ? err.message
          : String(err);
    metrics.deadLetterTotal.inc({ stage: 'apply', reason });
    logger.error(
      { reason, topic, partition, offset: message?.offset, detail },
      'event parked in the dead-letter topic',
    );
    const record = {
      stage: 'apply',
      region: options.region,
      reason,
      error: detail,
      source: {
        topic,
        partition,
        offset: message?.offset ?? null,
        key: withheld ? null : (message?.key?.toString('utf8') ?? null),
        ...(withheld ? { row: origin?.row ?? null } : {}),
      },
      value: value?.toString('base64') ?? null,
    };
    let delay = RETRY_INITIAL_MS;
    for (;;) {
      this.#assertRunning();
      try {
        await (this.#producer as Producer).send({
          topic: deadLetterTopic(options.kafka.topicPrefix, 'apply', options.region),
          acks: -1,
          messages: [{ key: reason, value: JSON.stringify(record) }],
        });
        return;
      } catch (sendErr) {
        // The offset is not resolved until the dead letter is stored: nothing is lost.
        logger.warn({ err: (sendErr as Error).message }, 'dead-letter topic unavailable; retrying');
        await sleep(delay);
        delay = Math.min(delay * 2, RETRY_MAX_MS);
      }
    }
  }

  #startHold(topic: string, partition: number, route: TopicRoute, skew: SchemaSkew): void {
    const key = holdKey(topic, partition);
    const table = `${route.db}.${route.table}`;
    const hold = this.#holds.get(key);
    if (hold !== undefined) {
      hold.reason = skew.holdReason;
      hold.what = skew.what;
    } else {
      this.#holds.set(key, {
        topic,
        partition,
        source: route.sourceRegion,
        table,
        reason: skew.holdReason,
        what: skew.what,
        sinceMs: Date.now(),
      });
      this.deps.logger.warn(
        { table, source: route.sourceRegion, partition, reason: skew.holdReason, what: skew.what },
        `events of ${table} from ${route.sourceRegion} held: ${skew.what}; they apply once the local schema allows them`,
      );
    }
    this.#publishHolds();
  }

  #endHold(key: string, why: 'applied' | 'reassigned'): void {
    const hold = this.#holds.get(key);
    if (hold === undefined) return;
    this.#holds.delete(key);
    const heldMs = Date.now() - hold.sinceMs;
    this.deps.logger.info(
      { table: hold.table, source: hold.source, partition: hold.partition, heldMs, why },
      why === 'applied'
        ? `hold of ${hold.table} from ${hold.source} ended after ${Math.round(heldMs / 1000)} s: held events applied`
        : `hold of ${hold.table} from ${hold.source} ended: partition assigned to another applier`,
    );
    this.#publishHolds();
  }

  /** `cdc_apply_held`: held partitions per source region, table and reason. */
  #publishHolds(): void {
    const gauge = this.deps.metrics.applyHeld;
    const counts = new Map<
      string,
      { source_region: string; table: string; reason: string; n: number }
    >();
    for (const hold of this.#holds.values()) {
      const id = `${hold.source}\u0000${hold.table}\u0000${hold.reason}`;
      const entry = counts.get(id) ?? {
        source_region: hold.source,
        table: hold.table,
        reason: hold.reason,
        n: 0,
      };
      entry.n += 1;
      counts.set(id, entry);
    }
    gauge.reset();
    for (const { n, ...labels } of counts.values()) gauge.set(labels, n);
  }

  /** While anything is held: read the held tables again and retry their partitions. */
  async #recheckHolds(): Promise<void> {
    const consumer = this.#consumer;
    if (this.#state !== 'running' || this.#rechecking || consumer === undefined) return;
    if (this.#holds.size === 0 && consumer.paused().length === 0) return;
    this.#rechecking = true;
    try {
      const tables = new Set<string>();
      for (const hold of this.#holds.values()) {
        const route = this.#routes.get(hold.topic);
        if (route !== undefined && !tables.has(hold.table)) {
          tables.add(hold.table);
          await this.#describe(route.db, route.table, false);
        }
      }
      // Every paused partition, not only the held ones: one held before a rebalance
      // may still be paused in kafkajs without a hold here.
      if (!this.#pausedByOperator) consumer.resume(consumer.paused());
    } finally {
      this.#rechecking = false;
    }
  }

  /**
   * `schema.*` pipelines: a table created in another region gets a topic
   * there; when one appears, the consumer is restarted with it (read from its
   * first event). A table this region lacks yet is held like any early event.
   */
  async #discoverTopics(): Promise<void> {
    if (this.#state !== 'running') return;
    const { options, kafka, logger } = this.deps;
    try {
      if (this.#admin === undefined) {
        const admin = kafka.admin();
        await admin.connect();
        this.#admin = admin;
      }
      const added: string[] = [];
      for (const topic of await this.#admin.listTopics()) {
        if (this.#routes.has(topic)) continue;
        const route = routeForTopic(options, topic);
        if (route === undefined) continue;
        this.#routes.set(topic, route);
        added.push(topic);
      }
      if (added.length === 0 || this.#state !== 'running') return;
      logger.info(
        { topics: added },
        'new change topics: the appliers restart their consumer to read them from their first event',
      );
      await this.#consumer?.disconnect();
    } catch (err) {
      logger.warn(
        { err: (err as Error).message },
        'looking for new change topics failed; will retry',
      );
      return;
    }
    if (this.#state !== 'running') return;
    try {
      await this.#startConsumer();
    } catch (err) {
      this.#fail(classifyError(err, 'restarting the apply consumer with new topics'));
    }
  }

  /** Deletes tombstones and conflict records past their horizons, a bounded slice at a time. */
  async #purge(): Promise<void> {
    const { options, logger } = this.deps;
    const pool = this.#pool;
    if (pool === undefined || this.#state !== 'running') return;
    try {
      const horizonMicros = (Date.now() - options.apply.tombstoneHorizonMs) * 1000;
      await pool.query(
        `DELETE FROM ${qualifiedName(options.internalSchema, INTERNAL_TABLES.tombstones)} WHERE hlc < ? LIMIT 10000`,
        [horizonMicros],
      );
      await pool.query(
        `DELETE FROM ${qualifiedName(options.internalSchema, INTERNAL_TABLES.conflicts)} WHERE detected_at < NOW(6) - INTERVAL ? SECOND LIMIT 10000`,
        [Math.floor(options.apply.conflictRetentionMs / 1000)],
      );
    } catch (err) {
      logger.warn(
        { err: (err as Error).message },
        'purge of tombstones/conflicts failed; will retry',
      );
    }
  }

  /**
   * Retry loops give up when the stage stops: the batch's offsets stay
   * unresolved, so its events are consumed again after the restart.
   */
  #assertRunning(): void {
    if (this.#state !== 'running') {
      throw new CdcError(
        `apply is ${this.#state}; the batch will be consumed again after a restart`,
        {
          code: 'APPLY_STOPPING',
        },
      );
    }
  }

  #fail(error: CdcError): void {
    if (this.#state === 'failed') return;
    this.#state = 'failed';
    this.deps.logger.error({ err: error.message }, 'apply stopped');
    this.#failure?.(error);
  }
}
