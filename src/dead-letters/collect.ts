import type { Kafka } from 'kafkajs';
import { describeKafka } from '../bus/kafka.js';
import { deadLetterTopic } from '../capture/capture-stage.js';
import type { RuntimeOptions } from '../config/compile.js';
import { matchesDeadLetter, type DeadLetterFilter } from './filter.js';
import { readTopicsToEnd } from './reader.js';
import { decodeDeadLetter, type DeadLetter, type DeadLetterStage } from './record.js';

export interface CollectOptions {
  /** A Kafka client for a region's cluster (regions may use different clusters). */
  readonly kafkaOf: (options: RuntimeOptions) => Kafka;
  readonly timeoutMs: number;
  readonly onGroupLeft: (groupId: string, error: Error) => void;
}

export interface CollectResult {
  /** The selected dead letters, oldest first. */
  readonly letters: DeadLetter[];
  /** Dead-letter topics that do not exist: nothing was ever parked there. */
  readonly missing: string[];
}

/**
 * Reads the dead-letter topics of the selected regions and stages, each
 * from its region's Kafka cluster, and keeps the dead letters the filter
 * selects. Undecodable records are kept (as such), never dropped.
 */
export async function collectDeadLetters(
  regions: readonly RuntimeOptions[],
  allRegions: readonly string[],
  filter: DeadLetterFilter,
  options: CollectOptions,
): Promise<CollectResult> {
  const letters: DeadLetter[] = [];
  const missing: string[] = [];
  for (const region of regions) {
    const prefix = region.kafka.topicPrefix;
    const topics = new Map<string, DeadLetterStage>(
      filter.stages
        .map((stage) => [deadLetterTopic(prefix, stage, region.region), stage] as const)
        .filter(([topic]) => filter.topic === undefined || topic === filter.topic),
    );
    if (topics.size === 0) continue;
    const read = await readTopicsToEnd(options.kafkaOf(region), [...topics.keys()], {
      topicPrefix: prefix,
      description: describeKafka(region.kafka),
      timeoutMs: options.timeoutMs,
      onGroupLeft: options.onGroupLeft,
    });
    missing.push(...read.missing);
    for (const raw of read.messages) {
      const letter = decodeDeadLetter(raw, {
        stage: topics.get(raw.topic) as DeadLetterStage,
        region: region.region,
        topicPrefix: prefix,
        regions: allRegions,
      });
      if (matchesDeadLetter(filter, letter)) letters.push(letter);
    }
  }
  letters.sort(
    (a, b) =>
      a.timestampMs - b.timestampMs ||
      a.topic.localeCompare(b.topic) ||
      a.partition - b.partition ||
      Number(BigInt(a.offset) - BigInt(b.offset)),
  );
  return { letters, missing };
}
