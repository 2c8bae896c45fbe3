import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin } from 'kafkajs';

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
