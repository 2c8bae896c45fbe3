import { setTimeout as sleep } from 'node:timers/promises';
import type { Connection as CoreConnection } from 'mysql2';
import mysql from 'mysql2/promise';
import type { Consumer, EachBatchPayload, Kafka, KafkaMessage, Producer } from 'kafkajs';
import { ensureTopicsWith } from '../bus/kafka.js';
import { Murmur2Partitioner } from '../bus/partitioner.js';
import type { PipelineOptions, RuntimeOptions } from '../config/compile.js';
import { CdcError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { classifyError } from '../core/retriable.js';
import { retryRetriable } from '../core/retry.js';
import { deadLetterTopic } from '../capture/capture-stage.js';
import { clientOptions } from '../mysql/connection.js';
import { qualifiedName } from '../mysql/identifiers.js';
import { INTERNAL_TABLES } from '../mysql/internal-tables.js';
import type { TableInfo } from '../mysql/introspect.js';
import type { DaemonMetrics } from '../monitor/metrics.js';
import {
  decodeApplyEvent,
  RejectedEvent,
  type ApplyEvent,
  type RejectReason,
} from './apply-event.js';
import {
  APPLIER_SESSION_STATEMENTS,
  buildRoutes,
  loadLocalTables,
  strategyOf,
  validateEvents,
  type TopicRoute,
} from './apply-target.js';
import { applyChunk, type ChunkResult } from './batch-applier.js';

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
 * and never block their partition.
 */
export class ApplyStage {
  #state: ApplyState = 'idle';
  #pool: mysql.Pool | undefined;
  #consumer: Consumer | undefined;
  #producer: Producer | undefined;
  readonly #routes = new Map<string, TopicRoute>();
  readonly #tables = new Map<string, TableInfo>();
  #purgeTimer: NodeJS.Timeout | undefined;
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
    });

    const local = await this.#pool.getConnection();
    try {
      for (const [key, info] of await loadLocalTables(local, options)) this.#tables.set(key, info);
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
    const consumer = kafka.consumer({
      groupId: applyGroupId(prefix, options.region),
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
        keepGoing: () => this.#state === 'starting' && Date.now() < subscribeDeadline,
        onRetry: (error, delayMs) =>
          logger.info({ err: error.message, retryInMs: delayMs }, 'subscribe retried'),
      },
    );
    consumer.on(consumer.events.CRASH, (event) => {
      const error = classifyError(event.payload.error, 'Kafka consumer');
      if (!event.payload.restart) this.#fail(error);
    });
    await consumer.run({
      autoCommit: true,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: options.apply.partitionsConcurrently,
      eachBatch: (payload) => this.#eachBatch(payload),
    });
    this.#purgeTimer = setInterval(() => void this.#purge(), options.apply.purgeIntervalMs);
    this.#purgeTimer.unref();
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
    try {
      await this.#consumer?.disconnect();
      await this.#producer?.disconnect();
      this.deps.logger.info('apply stopped: offsets of applied batches committed');
    } finally {
      await this.#pool?.end();
      if (this.#state === 'draining') this.#state = 'stopped';
    }
  }

  /** Stops fetching new messages (a test hook and an operator's brake); `resume()` continues. */
  pause(): void {
    const topics = [...this.#routes.keys()].map((topic) => ({ topic }));
    this.#consumer?.pause(topics);
  }

  resume(): void {
    const topics = [...this.#routes.keys()].map((topic) => ({ topic }));
    this.#consumer?.resume(topics);
  }

  async #eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    const route = this.#routes.get(batch.topic);
    const chunkSize = this.deps.options.apply.batchMaxEvents;
    for (let start = 0; start < batch.messages.length; start += chunkSize) {
      if (!payload.isRunning() || payload.isStale()) return;
      const messages = batch.messages.slice(start, start + chunkSize);
      try {
        await this.#process(batch.topic, batch.partition, route, messages);
      } catch (err) {
        // Stopping mid-chunk: leave its offsets unresolved (they are consumed
        // again after a restart) and return normally, so kafkajs does not
        // treat it as a crash and restart the consumer.
        if (err instanceof CdcError && err.code === 'APPLY_STOPPING') return;
        throw err;
      }
      const last = messages[messages.length - 1];
      if (last !== undefined) payload.resolveOffset(last.offset);
      await payload.heartbeat();
    }
    await payload.commitOffsetsIfNecessary();
  }

  async #process(
    topic: string,
    partition: number,
    route: TopicRoute | undefined,
    messages: KafkaMessage[],
  ): Promise<void> {
    if (route === undefined) {
      for (const message of messages)
        await this.#deadLetter(
          topic,
          partition,
          message,
          new RejectedEvent('table_not_in_pipeline', `topic ${topic} is not subscribed`),
        );
      return;
    }
    if (route.heartbeat) {
      this.#heartbeats(route, messages);
      return;
    }
    const events: ApplyEvent[] = [];
    const origins = new Map<ApplyEvent, KafkaMessage>();
    for (const message of messages) {
      try {
        for (const event of this.#validate(route, decodeApplyEvent(message.value, route))) {
          events.push(event);
          origins.set(event, message);
        }
      } catch (err) {
        await this.#deadLetter(topic, partition, message, err);
      }
    }
    if (events.length === 0) return;
    await this.#applyWithRetry(topic, partition, route, events, origins);
  }

  /** Identifiers come from untrusted events: checked against the configuration and the local schema. */
  #validate(route: TopicRoute, events: ApplyEvent[]): ApplyEvent[] {
    return validateEvents(route, this.#tables.get(`${route.db}.${route.table}`), events);
  }

  async #applyWithRetry(
    topic: string,
    partition: number,
    route: TopicRoute,
    events: ApplyEvent[],
    origins: Map<ApplyEvent, KafkaMessage>,
  ): Promise<void> {
    const { options, logger } = this.deps;
    let delay = RETRY_INITIAL_MS;
    for (let attempt = 1; ; attempt += 1) {
      this.#assertRunning();
      try {
        const startedMs = performance.now();
        const result = await this.#applyOnce(topic, partition, route, events);
        this.#record(route, events, result, (performance.now() - startedMs) / 1000);
        return;
      } catch (err) {
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
            origins.get(event) ?? null,
            new RejectedEvent(
              duplicateKey ? 'constraint_violation' : 'apply_failed',
              error.message,
              err,
            ),
          );
          return;
        }
        // Find the event at fault: apply one at a time (order kept).
        for (const event of events)
          await this.#applyWithRetry(topic, partition, route, [event], origins);
        return;
      }
    }
  }

  async #applyOnce(
    topic: string,
    partition: number,
    route: TopicRoute,
    events: ApplyEvent[],
  ): Promise<ChunkResult> {
    const pool = this.#pool as mysql.Pool;
    const table = this.#tables.get(`${route.db}.${route.table}`) as TableInfo;
    const { strategy, name } = strategyOf(route.pipeline as PipelineOptions);
    const connection = await pool.getConnection();
    try {
      return await applyChunk(connection, events, {
        region: this.deps.options.region,
        internalSchema: this.deps.options.internalSchema,
        applierId: `${this.deps.options.region}/${topic}/${partition}`,
        sourceRegion: route.sourceRegion,
        table,
        strategy,
        strategyName: name,
        recordConflict: () => Math.random() < this.deps.options.apply.conflictSampleRate,
      });
    } finally {
      connection.release();
    }
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
    message: KafkaMessage | null,
    err: unknown,
  ): Promise<void> {
    const { options, metrics, logger } = this.deps;
    const reason: RejectReason = err instanceof RejectedEvent ? err.reason : 'apply_failed';
    const detail = err instanceof Error ? err.message : String(err);
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
        key: message?.key?.toString('utf8') ?? null,
      },
      value: message?.value?.toString('base64') ?? null,
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
