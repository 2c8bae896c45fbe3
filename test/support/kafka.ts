import { Kafka, logLevel } from 'kafkajs';
import type { ChangeEvent } from '../../src/bus/envelope.js';

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
            messages.push({
              topic: batch.topic,
              partition: batch.partition,
              offset: m.offset,
              key: m.key?.toString() ?? '',
              value: m.value?.toString() ?? '',
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

/** Change events of the messages, in read order. */
export function changeEvents(messages: readonly ReadMessage[]): ChangeEvent[] {
  return messages.map((m) => JSON.parse(m.value) as ChangeEvent);
}
