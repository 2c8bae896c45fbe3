import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin, Kafka } from 'kafkajs';
import { decodeEnvelope } from '../../src/bus/envelope.js';

/**
 * Sum of a topic's partitions' high watermarks (a message is below the high
 * watermark once acknowledged); retried while a new topic's leaders settle.
 */
export async function highWatermark(admin: Admin, topic: string): Promise<number> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      const offsets = await admin.fetchTopicOffsets(topic);
      return offsets.reduce((total, p) => total + Number(p.high), 0);
    } catch (err) {
      // kafkajs marks NOT_LEADER_FOR_PARTITION and kin as retriable.
      if ((err as { retriable?: unknown }).retriable !== true || attempt >= 40) throw err;
      await sleep(250);
    }
  }
}

/** Each partition's high watermark. */
export async function partitionHighs(admin: Admin, topic: string): Promise<Map<number, bigint>> {
  await highWatermark(admin, topic); // waits for the leaders
  const offsets = await admin.fetchTopicOffsets(topic);
  return new Map(offsets.map((p) => [p.partition, BigInt(p.high)]));
}

/**
 * Row changes in a topic between two sets of per-partition offsets, read
 * back and decoded (v1: one per message, v2: the rows of each message): the
 * check that what a counter reports as acknowledged is really in Kafka.
 */
export async function rowsBetween(
  kafka: Kafka,
  topic: string,
  from: ReadonlyMap<number, bigint>,
  to: ReadonlyMap<number, bigint>,
): Promise<number> {
  const pending = new Set([...to].filter(([p, end]) => end > (from.get(p) ?? 0n)).map(([p]) => p));
  if (pending.size === 0) return 0;
  const consumer = kafka.consumer({ groupId: `bench-count-${process.pid}-${Date.now()}` });
  let rows = 0;
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [topic] });
    const done = new Promise<void>((resolve, reject) => {
      consumer
        .run({
          autoCommit: false,
          eachBatch: ({ batch }) => {
            const end = to.get(batch.partition) ?? 0n;
            for (const message of batch.messages) {
              if (BigInt(message.offset) >= end) break;
              if (message.value !== null) rows += decodeEnvelope(message.value).length;
            }
            if (BigInt(batch.lastOffset()) + 1n >= end) pending.delete(batch.partition);
            if (pending.size === 0) resolve();
            return Promise.resolve();
          },
        })
        .catch(reject);
    });
    for (const [partition, offset] of from)
      consumer.seek({ topic, partition, offset: offset.toString() });
    await done;
  } finally {
    await consumer.disconnect();
  }
  return rows;
}
