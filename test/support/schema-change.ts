import { Kafka, logLevel } from 'kafkajs';
import { deadLetterTopic } from '../../src/capture/capture-stage.js';
import type { Daemon } from '../../src/daemon/daemon.js';
import type { Sandbox } from '../../src/sandbox/index.js';

/**
 * Helpers for schema-change tests: a region's application writes and its
 * DDL take turns (as one application connection would), and what an
 * operator checks at the end: nothing held, no dead letter.
 */

/** One at a time per region: a DDL never races the statement an application built for the old schema. */
export class RegionLock {
  #tail: Promise<void> = Promise.resolve();

  run<T>(body: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(body);
    this.#tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

/** Partitions a daemon holds for schema skew right now (`cdc_apply_held`), by `table reason`. */
export async function heldNow(daemon: Daemon): Promise<Record<string, number>> {
  const metric = await daemon.metrics.applyHeld.get();
  const held: Record<string, number> = {};
  for (const v of metric.values)
    if (v.value > 0) held[`${String(v.labels.table)} ${String(v.labels.reason)}`] = v.value;
  return held;
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
