/**
 * The capture position kept where the data went (DESIGN §6): a compacted,
 * one-partition Kafka topic per region, `<prefix>._positions.<region>`,
 * written after every checkpoint of acknowledged changes. The checkpoint
 * store (Redis or a file) keeps a fast copy and the lease; when it loses its
 * keys (a Redis without persistence restarts, a FLUSHALL, eviction, a new URL
 * or key prefix, a deleted file), the position is read back from here
 * instead of being guessed. Operator decisions about a lost position are
 * recorded in the same topic as audit records.
 */
import { randomUUID } from 'node:crypto';
import type { Admin, Kafka, Producer } from 'kafkajs';
import type { KafkaOptions } from '../config/compile.js';
import { CdcError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { classifyError } from '../core/retriable.js';
import type { Checkpoint } from '../state/store.js';
import { ensureTopics } from '../bus/kafka.js';

/** `<prefix>._positions.<region>` (region names cannot start with `_`, so it never names a change topic). */
export function positionTopic(prefix: string, region: string): string {
  return `${prefix}._positions.${region}`;
}

/** Message key of the position record; compaction keeps the newest one. */
const POSITION_KEY = 'capture';
/** Audit records get a key each, so compaction keeps every one of them. */
const AUDIT_KEY_PREFIX = 'audit:';
const RECORD_VERSION = 1;
/** How long reading the topic back may take before the start is retried. */
const READ_TIMEOUT_MS = 30_000;

/**
 * Compaction only runs on closed segments: small segments keep what a
 * restart reads back small (a few thousand records at most) whatever the
 * checkpoint rate.
 */
const TOPIC_CONFIG = {
  'cleanup.policy': 'compact',
  'segment.ms': String(10 * 60_000),
  'segment.bytes': String(1024 * 1024),
  'min.cleanable.dirty.ratio': '0.1',
} as const;

interface PositionRecord {
  v: number;
  kind: 'position';
  region: string;
  position: string;
  savedAtMs: number;
}

/** What an operator decided about a lost position, kept for auditors. */
export interface PositionAudit {
  /** e.g. `accept-gap`, `resume-from-gtid`, `replay-from-oldest-binlog`. */
  action: string;
  /** The position capture starts from because of it. */
  position: string;
  detail: string;
}

export interface PositionLogDeps {
  kafka: Kafka;
  prefix: string;
  region: string;
  topics: KafkaOptions['topics'];
  logger: Logger;
}

export class KafkaPositionLog {
  readonly topic: string;

  constructor(private readonly deps: PositionLogDeps) {
    this.topic = positionTopic(deps.prefix, deps.region);
  }

  /** Creates the compacted topic if it does not exist yet. */
  async ensureTopic(admin: Admin): Promise<void> {
    const created = await ensureTopics(admin, [this.topic], this.deps.topics, {
      partitions: 1,
      configEntries: TOPIC_CONFIG,
    });
    if (created.length > 0)
      this.deps.logger.info({ topic: this.topic }, 'created the capture position topic');
  }

  /** Appends a position; resolves once Kafka acknowledged it (acks=all). */
  async append(producer: Producer, checkpoint: Checkpoint): Promise<void> {
    const record: PositionRecord = {
      v: RECORD_VERSION,
      kind: 'position',
      region: this.deps.region,
      position: checkpoint.position,
      savedAtMs: checkpoint.savedAtMs,
    };
    await producer.send({
      topic: this.topic,
      acks: -1,
      messages: [{ key: POSITION_KEY, value: JSON.stringify(record) }],
    });
  }

  /** Appends an audit record of an operator's decision. */
  async audit(producer: Producer, audit: PositionAudit): Promise<void> {
    const atMs = Date.now();
    await producer.send({
      topic: this.topic,
      acks: -1,
      messages: [
        {
          key: `${AUDIT_KEY_PREFIX}${atMs}:${randomUUID()}`,
          value: JSON.stringify({
            v: RECORD_VERSION,
            kind: 'audit',
            region: this.deps.region,
            atMs,
            ...audit,
          }),
        },
      ],
    });
  }

  /**
   * The newest position record, or undefined when the topic holds none.
   * Reads the (compacted, small) partition from its start to the high
   * watermark taken first, with a throwaway consumer group.
   */
  async readLatest(admin: Admin): Promise<Checkpoint | undefined> {
    const [partition] = await admin.fetchTopicOffsets(this.topic);
    if (partition === undefined) return undefined;
    const high = BigInt(partition.high);
    if (high <= BigInt(partition.low)) return undefined;
    const last = high - 1n;
    const groupId = `${this.topic}.reader.${randomUUID()}`;
    const consumer = this.deps.kafka.consumer({
      groupId,
      maxWaitTimeInMs: 200,
      retry: { retries: 3 },
    });
    await consumer.connect();
    try {
      await consumer.subscribe({ topics: [this.topic], fromBeginning: true });
      return await new Promise<Checkpoint | undefined>((resolve, reject) => {
        let newest: Checkpoint | undefined;
        const timer = setTimeout(
          () =>
            reject(
              new CdcError(
                `reading ${this.topic} up to offset ${last} took over ${READ_TIMEOUT_MS} ms`,
                {
                  retriable: true,
                  code: 'POSITION_READ_TIMEOUT',
                },
              ),
            ),
          READ_TIMEOUT_MS,
        );
        consumer
          .run({
            autoCommit: false,
            eachMessage: async ({ message }) => {
              if (message.key?.toString() === POSITION_KEY && message.value !== null) {
                const decoded = decodePositionRecord(message.value, this.deps.region);
                if (decoded === undefined)
                  this.deps.logger.warn(
                    { topic: this.topic, offset: message.offset },
                    'capture position topic holds a record that is not a position; skipped',
                  );
                else newest = decoded;
              }
              if (BigInt(message.offset) >= last) {
                clearTimeout(timer);
                resolve(newest);
              }
              return Promise.resolve();
            },
          })
          .catch((err: unknown) => {
            clearTimeout(timer);
            reject(classifyError(err, `reading ${this.topic}`));
          });
      });
    } finally {
      await consumer.disconnect();
      await admin
        .deleteGroups([groupId])
        .catch((err: unknown) =>
          this.deps.logger.debug(
            { groupId, err: (err as Error).message },
            'throwaway consumer group not deleted (the broker expires it)',
          ),
        );
    }
  }
}

function decodePositionRecord(value: Buffer, region: string): Checkpoint | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const record = parsed as Partial<PositionRecord>;
  if (record.kind !== 'position' || record.region !== region) return undefined;
  if (typeof record.position !== 'string' || typeof record.savedAtMs !== 'number') return undefined;
  return { position: record.position, savedAtMs: record.savedAtMs };
}

/**
 * The region's change topics (`<prefix>.<region>.*`, heartbeats included)
 * that ever held an event: a high watermark above 0 stays even after
 * retention deleted the records. Any such topic means capture ran before.
 */
export async function regionTopicsWithEvents(
  admin: Admin,
  prefix: string,
  region: string,
): Promise<string[]> {
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${prefix}.${region}.`));
  const withEvents: string[] = [];
  for (const topic of topics.sort()) {
    const partitions = await admin.fetchTopicOffsets(topic);
    if (partitions.some((p) => BigInt(p.high) > 0n)) withEvents.push(topic);
  }
  return withEvents;
}
