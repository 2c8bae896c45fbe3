import { setTimeout as sleep } from 'node:timers/promises';
import type { CompressionTypes, Producer, TopicMessages } from 'kafkajs';
import { CdcError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { classifyError } from '../core/retriable.js';
import { retryRetriable } from '../core/retry.js';
import type { CheckpointStore } from '../state/store.js';
import { encodeRows, type PackedRow } from '../bus/envelope.js';
import { murmur2 } from '../bus/partitioner.js';
import { encodeAuditBatches } from '../governance/audit.js';

/** One Kafka message waiting to be sent, or a transaction boundary between them. */
export type PublishItem =
  | {
      kind: 'message';
      topic: string;
      key: string;
      /** null: a tombstone (Debezium's output emits one after each delete). */
      value: Buffer | null;
      table: string;
      op: string;
      commitTs: number;
      /**
       * false for a copy of a change in another format (the Debezium
       * output): sent and acknowledged with the rest, but not counted again
       * in `cdc_events_captured_total`.
       */
      counted?: boolean;
    }
  | {
      /** A change for an envelope-v2 message: joined with others of its partition at send time. */
      kind: 'row';
      topic: string;
      /** The row's {@link messageKey}: it picks the partition, as a v1 message's key would. */
      key: string;
      row: PackedRow;
      table: string;
      op: string;
      commitTs: number;
      /**
       * false for another copy of a change already counted (a governed
       * row's masked copies): sent like the rest, counted once in
       * `cdc_events_captured_total`.
       */
      counted?: boolean;
    }
  | {
      /**
       * An audit record (src/capture/audit-trail.ts): joined with the other
       * records of its partition into one audit batch message at send time
       * (`encodeAuditBatches`), as `row` items are joined into v2 messages.
       * Sent and acknowledged with the items around it, never counted in
       * `cdc_events_captured_total`. A publisher without `partitionCounts`
       * sends each as a one-record message instead (readers read both).
       */
      kind: 'audit';
      topic: string;
      /** `auditMessageKey`: it picks the partition, as the one-record message's key did. */
      key: string;
      /** The record, encoded (`encodeAuditRecord`). */
      record: Buffer;
      commitTs: number;
    }
  | { kind: 'commit'; position: string };

/** The items the publisher joins per topic partition at send time. */
type JoinedItem = Extract<PublishItem, { kind: 'row' | 'audit' }>;

export interface PublisherOptions {
  producer: Producer;
  store: CheckpointStore;
  checkpointKey: string;
  maxInFlightBytes: number;
  batchMaxMessages: number;
  /**
   * Upper bound of one produce request's record bytes. The broker rejects a
   * partition's record batch above its `message.max.bytes` (1 MiB by
   * default) with MESSAGE_TOO_LARGE, which is not retriable: without this
   * bound, a burst of rows of a few KiB fills `batchMaxMessages` past it and
   * capture stops for good. A single larger message is still sent alone.
   */
  batchMaxBytes?: number;
  lingerMs: number;
  compression: CompressionTypes;
  checkpointIntervalMs: number;
  logger: Logger;
  /** Called with true when the budget is exhausted (stop reading) and false when it has room again. */
  onBackpressure: (paused: boolean) => void;
  /** Called after each acknowledged batch with per-(table, op) counts and the newest commit time. */
  onAcknowledged: (
    counts: ReadonlyMap<string, { table: string; op: string; n: number }>,
    newestCommitTs: number,
  ) => void;
  onInFlightBytes: (bytes: number) => void;
  /** Creates topics that do not exist yet (a table added under `schema.*` gets its topic on first use). */
  ensureTopics: (topics: readonly string[]) => Promise<void>;
  /**
   * The partition count of each topic (asked once per topic, for `row` and
   * `audit` items: their partition is chosen here, as the producer's
   * murmur2 partitioner would for their key, so one message can hold many).
   */
  partitionCounts?: (topics: readonly string[]) => Promise<ReadonlyMap<string, number>>;
  /** Upper bound of one v2 message's rows (or one audit batch's records), in bytes of JSON. */
  maxMessageBytes?: number;
  /** A non-retriable failure: capture must stop. */
  onFatal: (error: CdcError) => void;
}

/**
 * Default of {@link PublisherOptions.batchMaxBytes}: the Java producer's
 * `max.request.size`, kept under the broker's default `message.max.bytes`
 * (1 048 588) with room for record-batch headers.
 */
export const DEFAULT_BATCH_MAX_BYTES = 1_000_000;
/** Record framing in Kafka's v2 format (length, attributes, deltas, key/value lengths, headers), at most. */
const RECORD_OVERHEAD_BYTES = 32;
/** Default of {@link PublisherOptions.maxMessageBytes}: a quarter of a request, so a batch spreads over partitions. */
export const DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024;

const RETRY_INITIAL_MS = 200;
const RETRY_MAX_MS = 5_000;

/**
 * Sends captured changes to Kafka in order, one batch in flight at a time,
 * and moves the checkpoint only over what Kafka has acknowledged (DESIGN.md
 * §6). Memory is bounded by `maxInFlightBytes`: above it the owner pauses the
 * binlog reader, below half of it reading resumes. A failed send is retried
 * with backoff for as long as the error is retriable (Kafka down means
 * capture waits); per-key order is kept because nothing later is sent first.
 */
export class CapturePublisher {
  readonly #queue: PublishItem[] = [];
  #head = 0;
  #inFlightBytes = 0;
  #pausedSource = false;
  #wake: (() => void) | undefined;
  #stopping = false;
  #failed: CdcError | undefined;
  #ackedPosition: string | undefined;
  #savedPosition: string | undefined;
  #lastSaveMs = 0;
  readonly #knownTopics = new Set<string>();
  readonly #partitionCounts = new Map<string, number>();
  readonly #done: Promise<void>;

  constructor(private readonly options: PublisherOptions) {
    this.#done = this.#pump();
  }

  /** Bytes accepted but not yet acknowledged. */
  get inFlightBytes(): number {
    return this.#inFlightBytes;
  }

  /** The newest position whose changes Kafka has acknowledged. */
  get acknowledgedPosition(): string | undefined {
    return this.#ackedPosition;
  }

  enqueue(item: PublishItem): void {
    if (this.#failed !== undefined) return;
    this.#queue.push(item);
    if (item.kind !== 'commit') {
      this.#inFlightBytes += itemBytes(item);
      if (!this.#pausedSource && this.#inFlightBytes >= this.options.maxInFlightBytes) {
        this.#pausedSource = true;
        this.options.onBackpressure(true);
      }
    }
    this.#wake?.();
  }

  /**
   * Sends everything queued, saves the final checkpoint and stops. Resolves
   * when done; rejects with the failure if publishing failed.
   */
  async drain(): Promise<void> {
    this.#stopping = true;
    this.#wake?.();
    await this.#done;
    if (this.#failed !== undefined) throw this.#failed;
  }

  /** Stops at once; whatever was not acknowledged is replayed from the checkpoint on restart. */
  abort(): void {
    this.#failed ??= new CdcError('publisher aborted', { code: 'ABORTED' });
    this.#wake?.();
  }

  #pending(): number {
    return this.#queue.length - this.#head;
  }

  async #pump(): Promise<void> {
    try {
      for (;;) {
        if (this.#failed !== undefined) return;
        if (this.#pending() === 0) {
          await this.#maybeCheckpoint(this.#stopping);
          // Changes enqueued while the save was awaited found no waiter to
          // wake: look again before sleeping, or a reader paused by a full
          // budget would wait for a wake-up that never comes.
          if (this.#pending() > 0) continue;
          if (this.#stopping) return;
          // Idle: wait for work, or for the interval when a position still awaits its save.
          const unsaved = this.#ackedPosition !== this.#savedPosition;
          let timer: NodeJS.Timeout | undefined;
          await new Promise<void>((resolve) => {
            this.#wake = resolve;
            if (unsaved) timer = setTimeout(resolve, this.options.checkpointIntervalMs);
          });
          clearTimeout(timer);
          this.#wake = undefined;
          continue;
        }
        if (
          !this.#stopping &&
          this.#pending() < this.options.batchMaxMessages &&
          this.options.lingerMs > 0
        ) {
          // Let a burst accumulate so batches are full; a lone change waits at most lingerMs.
          await sleep(this.options.lingerMs);
        }
        await this.#sendNextBatch();
        await this.#maybeCheckpoint(false);
      }
    } catch (err) {
      const error = classifyError(err, 'publishing to Kafka');
      this.#failed = error;
      this.options.onFatal(error);
    }
  }

  async #sendNextBatch(): Promise<void> {
    const byTopic = new Map<string, TopicMessages>();
    // Rows and audit records, per topic in queue order: joined per partition below.
    const joinedByTopic = new Map<string, JoinedItem[]>();
    const counts = new Map<string, { table: string; op: string; n: number }>();
    const maxRequestBytes = this.options.batchMaxBytes ?? DEFAULT_BATCH_MAX_BYTES;
    let messages = 0;
    let bytes = 0;
    let requestBytes = 0;
    let position: string | undefined;
    let newestCommitTs = 0;
    let end = this.#head;
    while (end < this.#queue.length && messages < this.options.batchMaxMessages) {
      const item = this.#queue[end] as PublishItem;
      if (item.kind === 'commit') {
        end += 1;
        position = item.position;
        continue;
      }
      const size = itemBytes(item);
      const recordBytes = size + RECORD_OVERHEAD_BYTES;
      if (messages > 0 && requestBytes + recordBytes > maxRequestBytes) break;
      end += 1;
      requestBytes += recordBytes;
      messages += 1;
      bytes += size;
      newestCommitTs = Math.max(newestCommitTs, item.commitTs);
      if (item.kind === 'row' || (item.kind === 'audit' && this.options.partitionCounts)) {
        const joined = joinedByTopic.get(item.topic);
        if (joined === undefined) joinedByTopic.set(item.topic, [item]);
        else joined.push(item);
        if (item.kind === 'audit' || item.counted === false) continue;
      } else {
        let topic = byTopic.get(item.topic);
        if (topic === undefined) {
          topic = { topic: item.topic, messages: [] };
          byTopic.set(item.topic, topic);
        }
        if (item.kind === 'audit') {
          // A publisher without partition counts (a snapshot's) cannot join records per
          // partition: each goes as a one-record message, which every reader reads too.
          topic.messages.push({ key: item.key, value: item.record });
          continue;
        }
        topic.messages.push({ key: item.key, value: item.value });
        if (item.counted === false) continue;
      }
      const countKey = `${item.table}\u0000${item.op}`;
      const count = counts.get(countKey);
      if (count === undefined) counts.set(countKey, { table: item.table, op: item.op, n: 1 });
      else count.n += 1;
    }
    if (messages > 0) {
      const topics = new Set([...byTopic.keys(), ...joinedByTopic.keys()]);
      const fresh = [...topics].filter((topic) => !this.#knownTopics.has(topic));
      if (fresh.length > 0) {
        await this.#withRetry('creating topics', () => this.options.ensureTopics(fresh));
        for (const topic of fresh) this.#knownTopics.add(topic);
      }
      await this.#packJoined(joinedByTopic, byTopic);
      // One sendBatch for everything taken, so audit records travel with the data they describe.
      await this.#sendWithRetry([...byTopic.values()], messages);
    }
    // Only now is everything up to `end` durable in Kafka.
    this.#head = end;
    if (this.#head > 4096 && this.#head * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#head);
      this.#head = 0;
    }
    this.#inFlightBytes -= bytes;
    this.options.onInFlightBytes(this.#inFlightBytes);
    if (position !== undefined) this.#ackedPosition = position;
    if (messages > 0) this.options.onAcknowledged(counts, newestCommitTs);
    if (this.#pausedSource && this.#inFlightBytes <= this.options.maxInFlightBytes / 2) {
      this.#pausedSource = false;
      this.options.onBackpressure(false);
    }
  }

  /**
   * Turns the batch's rows into v2 messages and its audit records into
   * audit batches: per topic, each item goes to the partition its key
   * hashes to ({@link partitionOf}: murmur2, as the producer's partitioner
   * and every v1 producer place that key), and the items of one partition,
   * in order, become as few messages as their kinds, shapes and size allow
   * ({@link joinPartition}). The messages join the batch's other topics in
   * the one sendBatch, so no record is sent apart from its data.
   */
  async #packJoined(
    joinedByTopic: ReadonlyMap<string, JoinedItem[]>,
    byTopic: Map<string, TopicMessages>,
  ): Promise<void> {
    if (joinedByTopic.size === 0) return;
    const unknown = [...joinedByTopic.keys()].filter((t) => !this.#partitionCounts.has(t));
    if (unknown.length > 0) {
      const lookup = this.options.partitionCounts;
      if (lookup === undefined)
        throw new CdcError('the publisher needs partitionCounts for envelope v2 rows', {
          code: 'INTERNAL',
        });
      await this.#withRetry('reading partition counts', async () => {
        for (const [topic, n] of await lookup(unknown)) this.#partitionCounts.set(topic, n);
      });
    }
    const maxMessageBytes = this.options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    for (const [topic, items] of joinedByTopic) {
      const partitions = this.#partitionCounts.get(topic);
      if (partitions === undefined || partitions < 1)
        throw new CdcError(`no partition count for topic ${topic}`, { code: 'KAFKA_TOPIC' });
      let entry = byTopic.get(topic);
      if (entry === undefined) {
        entry = { topic, messages: [] };
        byTopic.set(topic, entry);
      }
      for (const [partition, list] of groupByPartition(items, partitions))
        for (const { key, value } of joinPartition(list, maxMessageBytes))
          entry.messages.push({ partition, key, value });
    }
  }

  #sendWithRetry(topicMessages: TopicMessages[], messages: number): Promise<void> {
    return this.#withRetry(`sending ${messages} changes to Kafka`, async () => {
      await this.options.producer.sendBatch({
        topicMessages,
        acks: -1,
        compression: this.options.compression,
      });
    });
  }

  #withRetry(what: string, operation: () => Promise<void>): Promise<void> {
    return retryRetriable(
      async (attempt) => {
        if (this.#failed !== undefined) throw this.#failed;
        await operation();
        if (attempt > 1)
          this.options.logger.info({ attempt }, 'Kafka answers again; capture continues');
      },
      {
        what,
        initialDelayMs: RETRY_INITIAL_MS,
        maxDelayMs: RETRY_MAX_MS,
        onRetry: (error, delay, attempt) =>
          this.options.logger.warn(
            { attempt, retryInMs: delay, err: error.message },
            'Kafka unavailable; capture waits (reading is paused once the in-flight budget is full)',
          ),
      },
    );
  }

  async #maybeCheckpoint(force: boolean): Promise<void> {
    const position = this.#ackedPosition;
    if (position === undefined || position === this.#savedPosition) return;
    const now = Date.now();
    if (!force && now - this.#lastSaveMs < this.options.checkpointIntervalMs) return;
    await retryRetriable(
      () => this.options.store.save(this.options.checkpointKey, { position, savedAtMs: now }),
      {
        what: 'saving the capture checkpoint',
        initialDelayMs: RETRY_INITIAL_MS,
        maxDelayMs: RETRY_MAX_MS,
        keepGoing: () => this.#failed === undefined,
        onRetry: (error, delay) =>
          this.options.logger.warn(
            { err: error.message, retryInMs: delay },
            'checkpoint store unavailable; retrying',
          ),
      },
    );
    this.#savedPosition = position;
    this.#lastSaveMs = now;
  }
}

function itemBytes(item: Exclude<PublishItem, { kind: 'commit' }>): number {
  switch (item.kind) {
    case 'row':
      return item.row.bytes.length + item.key.length;
    case 'audit':
      return item.record.length + item.key.length;
    case 'message':
      return (item.value?.length ?? 0) + item.key.length;
  }
}

/** The partition of `key` among `partitions`: murmur2, as kafkajs's default partitioner and Java's place a keyed message. */
export function partitionOf(key: string, partitions: number): number {
  return (murmur2(Buffer.from(key)) & 0x7fffffff) % partitions;
}

/** `items` (of one topic) by the partition of their key, each partition's items in their order. */
export function groupByPartition<T extends { readonly key: string }>(
  items: readonly T[],
  partitions: number,
): Map<number, T[]> {
  const byPartition = new Map<number, T[]>();
  for (const item of items) {
    const partition = partitionOf(item.key, partitions);
    const list = byPartition.get(partition);
    if (list === undefined) byPartition.set(partition, [item]);
    else list.push(item);
  }
  return byPartition;
}

/**
 * The messages of one topic partition's joined items, in order: each run of
 * `row` items becomes v2 messages (`encodeRows`: a new message where the
 * table or its shape changes), each run of `audit` items audit batches
 * (`encodeAuditBatches`); each message at most `maxMessageBytes` of joined
 * JSON (a single larger item goes alone). A message's key is its first
 * item's key: tools that look at keys see a real one, and it hashes to this
 * partition.
 */
export function joinPartition(
  items: readonly JoinedItem[],
  maxMessageBytes: number,
): { key: string; value: Buffer; items: number }[] {
  const out: { key: string; value: Buffer; items: number }[] = [];
  let start = 0;
  while (start < items.length) {
    const kind = (items[start] as JoinedItem).kind;
    let end = start + 1;
    while (end < items.length && (items[end] as JoinedItem).kind === kind) end += 1;
    const run = items.slice(start, end);
    const encoded =
      kind === 'row'
        ? encodeRows(
            run.map((i) => (i as Extract<JoinedItem, { kind: 'row' }>).row),
            maxMessageBytes,
          ).map(({ value, rows }) => ({ value, n: rows }))
        : encodeAuditBatches(
            run.map((i) => (i as Extract<JoinedItem, { kind: 'audit' }>).record),
            maxMessageBytes,
          ).map(({ value, records }) => ({ value, n: records }));
    let first = start;
    for (const { value, n } of encoded) {
      out.push({ key: (items[first] as JoinedItem).key, value, items: n });
      first += n;
    }
    start = end;
  }
  return out;
}
