import { Kafka, logLevel, type Admin } from 'kafkajs';
import { decodeEnvelope, type ChangeEvent } from '../../src/bus/envelope.js';
import { deadLetterTopic } from '../../src/capture/capture-stage.js';
import type { Sandbox } from '../../src/sandbox/index.js';

export interface ReadMessage {
  topic: string;
  partition: number;
  offset: string;
  key: string;
  value: string;
}

/**
 * Reads topics from the beginning until `until` says enough (or the timeout
 * passes, which fails with what was read so far).
 */
export async function readTopics(
  brokers: readonly string[],
  topics: readonly string[],
  until: (messages: readonly ReadMessage[]) => boolean,
  timeoutMs = 60_000,
): Promise<ReadMessage[]> {
  const kafka = new Kafka({
    clientId: 'test-reader',
    brokers: [...brokers],
    logLevel: logLevel.NOTHING,
  });
  const consumer = kafka.consumer({
    groupId: `test-reader-${Date.now()}-${Math.random().toString(36).slice(2)}`,
    // Large fetches: tests read tens of thousands of messages.
    maxBytesPerPartition: 8 * 1024 * 1024,
    maxBytes: 32 * 1024 * 1024,
  });
  const messages: ReadMessage[] = [];
  await consumer.connect();
  try {
    for (const topic of topics) await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `timed out after ${timeoutMs} ms with ${messages.length} messages read from ${topics.join(', ')}`,
            ),
          ),
        timeoutMs,
      );
      if (until(messages)) {
        clearTimeout(timer);
        resolve();
        return;
      }
      void consumer.run({
        eachBatch: ({ batch }) => {
          for (const m of batch.messages) {
            const value = m.value?.toString() ?? '';
            // One entry per change: a v2 message's rows each become a v1-shaped event.
            for (const row of expandRows(value))
              messages.push({
                topic: batch.topic,
                partition: batch.partition,
                offset: m.offset,
                key: m.key?.toString() ?? '',
                value: row,
              });
          }
          if (until(messages)) {
            clearTimeout(timer);
            resolve();
          }
          return Promise.resolve();
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return messages;
}

/** A message's changes as v1 JSON texts: itself, or each row of an envelope-v2 message. */
function expandRows(value: string): string[] {
  if (!value.startsWith('{"v":2,')) return [value];
  return decodeEnvelope(value).map((event) => JSON.stringify(event));
}

/** Change events of the messages, in read order. */
export function changeEvents(messages: readonly ReadMessage[]): ChangeEvent[] {
  return messages.map((m) => JSON.parse(m.value) as ChangeEvent);
}

function adminClient(brokers: readonly string[]): Kafka {
  return new Kafka({ clientId: 'test-admin', brokers: [...brokers], logLevel: logLevel.NOTHING });
}

/**
 * Changes in a topic: every message read to the end, counting each row of
 * an envelope-v2 message (values are not kept: topics may hold millions).
 */
export async function topicRowCount(brokers: readonly string[], topic: string): Promise<number> {
  const admin = adminClient(brokers).admin();
  const ends = new Map<number, number>();
  await admin.connect();
  try {
    for (const p of await admin.fetchTopicOffsets(topic))
      if (Number(p.high) > Number(p.low)) ends.set(p.partition, Number(p.high));
  } finally {
    await admin.disconnect();
  }
  if (ends.size === 0) return 0;
  const consumer = adminClient(brokers).consumer({
    groupId: `test-counter-${Date.now()}-${Math.random().toString(36).slice(2)}`,
    maxBytesPerPartition: 8 * 1024 * 1024,
    maxBytes: 32 * 1024 * 1024,
  });
  let rows = 0;
  const reached = new Set<number>();
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve) => {
      void consumer.run({
        eachBatch: ({ batch }) => {
          for (const m of batch.messages) {
            const value = m.value?.toString() ?? '';
            rows += value.startsWith('{"v":2,')
              ? (JSON.parse(value) as { rows: unknown[] }).rows.length
              : 1;
            if (Number(m.offset) >= (ends.get(batch.partition) ?? 0) - 1)
              reached.add(batch.partition);
          }
          if (reached.size === ends.size) resolve();
          return Promise.resolve();
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return rows;
}

/** Messages in a topic (sum over partitions of high watermark minus low watermark). */
export async function topicMessageCount(
  brokers: readonly string[],
  topic: string,
): Promise<number> {
  const admin = adminClient(brokers).admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0);
  } finally {
    await admin.disconnect();
  }
}

/**
 * Reads every message the topics hold right now, partition by partition in
 * offset order (the order within a partition is what consumers rely on).
 */
export async function readTopicsToEnd(
  brokers: readonly string[],
  topics: readonly string[],
  timeoutMs = 120_000,
): Promise<ReadMessage[]> {
  const admin = adminClient(brokers).admin();
  const ends = new Map<string, number>();
  await admin.connect();
  try {
    for (const topic of topics) {
      for (const p of await admin.fetchTopicOffsets(topic)) {
        if (Number(p.high) > Number(p.low)) ends.set(`${topic}/${p.partition}`, Number(p.high));
      }
    }
  } finally {
    await admin.disconnect();
  }
  const reached = new Set<string>();
  let scanned = 0;
  const messages = await readTopics(
    brokers,
    topics,
    (read) => {
      for (; scanned < read.length; scanned += 1) {
        const m = read[scanned] as ReadMessage;
        const id = `${m.topic}/${m.partition}`;
        const end = ends.get(id);
        if (end !== undefined && Number(m.offset) >= end - 1) reached.add(id);
      }
      return reached.size === ends.size;
    },
    timeoutMs,
  );
  return messages
    .filter((m) => {
      const end = ends.get(`${m.topic}/${m.partition}`);
      return end !== undefined && Number(m.offset) < end;
    })
    .sort(
      (a, b) =>
        a.topic.localeCompare(b.topic) ||
        a.partition - b.partition ||
        Number(a.offset) - Number(b.offset),
    );
}

/** Messages in the regions' dead-letter topics (capture and apply), by topic; empty ones left out. */
export async function deadLetterCounts(
  sandbox: Sandbox,
  regions: readonly string[],
  prefix = 'cdc',
): Promise<Record<string, number>> {
  const kafka = new Kafka({ brokers: sandbox.kafka!.brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const counts: Record<string, number> = {};
    for (const region of regions) {
      for (const stage of ['capture', 'apply']) {
        const topic = deadLetterTopic(prefix, stage, region);
        if (!existing.has(topic)) continue;
        const total = (await admin.fetchTopicOffsets(topic)).reduce(
          (n, p) => n + Number(p.high),
          0,
        );
        if (total > 0) counts[topic] = total;
      }
    }
    return counts;
  } finally {
    await admin.disconnect();
  }
}

/**
 * The partitions of `topics` whose messages the consumer group has not all
 * committed yet (`topic[partition] at committed of end`); empty partitions
 * have nothing to commit. Empty when the group has applied everything the
 * topics held when asked.
 */
export async function groupBehind(
  admin: Admin,
  groupId: string,
  topics: readonly string[],
): Promise<string[]> {
  const lagging: string[] = [];
  for (const topic of topics) {
    const ends = await admin.fetchTopicOffsets(topic);
    const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
    for (const end of ends) {
      const at = Number(
        committed?.partitions.find((p) => p.partition === end.partition)?.offset ?? -1,
      );
      if (Number(end.high) > Number(end.low) && at < Number(end.high))
        lagging.push(`${topic}[${end.partition}] at ${at} of ${end.high}`);
    }
  }
  return lagging;
}
