import { randomBytes } from 'node:crypto';
import type { Admin, Consumer, Kafka } from 'kafkajs';
import { CdcError } from '../core/errors.js';
import { classifyError } from '../core/retriable.js';
import type { RawDeadLetter } from './record.js';

export interface ReadToEndOptions {
  /** Topic prefix of the deployment; the throwaway consumer group is named under it. */
  readonly topicPrefix: string;
  /** How the cluster is named in errors (`describeKafka`). */
  readonly description: string;
  /** Gives up when the messages up to the end offsets have not all arrived by then. */
  readonly timeoutMs: number;
  /** Told when the throwaway group could not be deleted (it expires by itself). */
  readonly onGroupLeft: (groupId: string, error: Error) => void;
  /** What the throwaway group is named after, under the prefix: `_dlq-reader` unless told. */
  readonly groupName?: string;
}

export interface ReadToEndResult {
  /** Every message below the end offsets taken at the start, by topic, partition and offset. */
  readonly messages: RawDeadLetter[];
  /** Requested topics that do not exist (nothing was ever parked there). */
  readonly missing: string[];
}

/** A consumer group of its own per run, so reading never moves any daemon's offsets. */
export function readerGroupId(topicPrefix: string, name = '_dlq-reader'): string {
  return `${topicPrefix}.${name}.${randomBytes(6).toString('hex')}`;
}

/**
 * Reads whole topics once: their end offsets (high watermarks) are fetched
 * first, then a throwaway consumer group reads from the beginning until every
 * partition reached its end, and the group is deleted afterwards. Messages
 * parked while reading are left for the next run.
 */
export async function readTopicsToEnd(
  kafka: Kafka,
  topics: readonly string[],
  options: ReadToEndOptions,
): Promise<ReadToEndResult> {
  const admin = kafka.admin();
  await admin.connect();
  const groupId = readerGroupId(options.topicPrefix, options.groupName);
  let consumer: Consumer | undefined;
  try {
    const existing = new Set(await admin.listTopics());
    const present = topics.filter((t) => existing.has(t));
    const missing = topics.filter((t) => !existing.has(t));
    const ends = await endOffsets(admin, present, options.description);
    if (ends.size === 0) return { messages: [], missing };
    consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 250, sessionTimeout: 10_000 });
    const messages = await consume(consumer, [...new Set([...ends.keys()].map(topicOf))], ends, {
      ...options,
      what: `reading ${present.join(', ')} from ${options.description}`,
    });
    messages.sort(
      (a, b) =>
        a.topic.localeCompare(b.topic) ||
        a.partition - b.partition ||
        compareOffsets(a.offset, b.offset),
    );
    return { messages, missing };
  } finally {
    try {
      await consumer?.disconnect();
      if (consumer !== undefined) await admin.deleteGroups([groupId]);
    } catch (err) {
      options.onGroupLeft(groupId, err as Error);
    }
    await admin.disconnect();
  }
}

function partitionId(topic: string, partition: number): string {
  return `${topic}/${partition}`;
}

function topicOf(id: string): string {
  return id.slice(0, id.lastIndexOf('/'));
}

function compareOffsets(a: string, b: string): number {
  const d = BigInt(a) - BigInt(b);
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}

/** End offset per non-empty partition (`topic/partition` → high watermark). */
async function endOffsets(
  admin: Admin,
  topics: readonly string[],
  description: string,
): Promise<Map<string, bigint>> {
  const ends = new Map<string, bigint>();
  for (const topic of topics) {
    let offsets;
    try {
      offsets = await admin.fetchTopicOffsets(topic);
    } catch (err) {
      throw classifyError(err, `${description}: fetching the end offsets of ${topic}`);
    }
    for (const p of offsets) {
      if (BigInt(p.high) > BigInt(p.low)) ends.set(partitionId(topic, p.partition), BigInt(p.high));
    }
  }
  return ends;
}

async function consume(
  consumer: Consumer,
  topics: readonly string[],
  ends: ReadonlyMap<string, bigint>,
  options: ReadToEndOptions & { what: string },
): Promise<RawDeadLetter[]> {
  // Keyed by position: a rebalance may deliver a batch again.
  const messages = new Map<string, RawDeadLetter>();
  const reached = new Set<string>();
  await consumer.connect();
  await consumer.subscribe({ topics: [...topics], fromBeginning: true });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      const behind = [...ends.keys()].filter((id) => !reached.has(id));
      reject(
        new CdcError(
          `${options.what}: ${behind.join(', ')} did not reach their end offsets within ${options.timeoutMs} ms`,
          { retriable: true, code: 'DLQ_READ_TIMEOUT' },
        ),
      );
    }, options.timeoutMs);
    const finish = (error?: CdcError): void => {
      clearTimeout(timer);
      if (error === undefined) resolve();
      else reject(error);
    };
    consumer.on(consumer.events.CRASH, (event) => {
      if (!event.payload.restart) finish(classifyError(event.payload.error, options.what));
    });
    consumer
      .run({
        autoCommit: false,
        eachBatch: ({ batch }) => {
          const id = partitionId(batch.topic, batch.partition);
          const end = ends.get(id);
          if (end === undefined) return Promise.resolve();
          for (const m of batch.messages) {
            if (BigInt(m.offset) >= end) break;
            messages.set(`${id}@${m.offset}`, {
              topic: batch.topic,
              partition: batch.partition,
              offset: m.offset,
              timestampMs: Number(m.timestamp),
              value: m.value,
            });
          }
          if (!batch.isEmpty() && BigInt(batch.lastOffset()) >= end - 1n) reached.add(id);
          if (reached.size === ends.size) finish();
          return Promise.resolve();
        },
      })
      .catch((err: unknown) => finish(classifyError(err, options.what)));
  });
  return [...messages.values()];
}
