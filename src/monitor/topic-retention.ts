/**
 * Whether Kafka keeps changes long enough (issue 12): at start the daemon
 * reads `retention.ms` of every region's change topics and the brokers'
 * `offsets.retention.minutes`, and warns once when they are shorter than the
 * tombstone horizon promises.
 *
 * The rule. `apply.tombstoneHorizonHours` is sized for the longest outage a
 * region must survive (plus its catch-up): a change replayed after the
 * tombstone it must lose to was purged could bring a deleted row back. Kafka
 * must still hold the changes of such an outage, so a change topic's
 * retention must be at least the horizon; with less, a region down longer
 * than the retention misses changes outright (and needs a re-snapshot) well
 * before the horizon is reached. Size-based retention (`retention.bytes`)
 * can cut it shorter at any time. Committed consumer offsets expire
 * `offsets.retention.minutes` after a group's last member left: a region
 * whose daemons are all down longer than that restarts from the earliest
 * retained change. That is safe (every apply is a join) but replays the
 * whole topic.
 *
 * {@link judgeRetention} is the pure decision; {@link checkTopicRetention}
 * reads the settings and logs.
 */
import kafkajs, { type Admin, type Kafka } from 'kafkajs';

import type { RuntimeOptions } from '../config/compile.js';
import type { Logger } from '../core/logger.js';

// kafkajs is CommonJS: Node's ESM loader does not see this export by name (only the default export).
const { ConfigResourceTypes } = kafkajs;

/** The retention settings of one change topic, as the broker reports them. */
export interface TopicRetention {
  readonly topic: string;
  /** `retention.ms`; -1 keeps messages forever. */
  readonly retentionMs: number;
  /** `retention.bytes` per partition; -1 for no size limit. */
  readonly retentionBytes: number;
  /** `cleanup.policy`, e.g. `delete` or `compact,delete`. */
  readonly cleanupPolicy: string;
}

export interface RetentionFinding {
  readonly kind: 'retention_below_horizon' | 'retention_by_size' | 'offsets_expire_first';
  readonly topics: readonly string[];
  /** One line naming the topics, the setting, what is needed and what happens otherwise. */
  readonly message: string;
}

const HOUR_MS = 3_600_000;
/** How long `stop()` lets a running check finish before cutting it off. */
const STOP_WAIT_MS = 2_000;
/** Topics named in one log line; the rest are counted. */
const MAX_NAMED_TOPICS = 5;

function hours(ms: number): string {
  const value = ms / HOUR_MS;
  return `${Number.isInteger(value) ? value : value.toFixed(1)} h`;
}

function topicList(topics: readonly string[]): string {
  const named = topics.slice(0, MAX_NAMED_TOPICS).join(', ');
  return topics.length > MAX_NAMED_TOPICS
    ? `${named} (+${topics.length - MAX_NAMED_TOPICS} more)`
    : named;
}

function groupBy<T>(items: readonly T[], key: (item: T) => number): Map<number, T[]> {
  const groups = new Map<number, T[]>();
  for (const item of items) {
    const k = key(item);
    groups.set(k, [...(groups.get(k) ?? []), item]);
  }
  return groups;
}

/**
 * What is wrong with the topics' retention for a tombstone horizon of
 * `tombstoneHorizonMs`, and with offsets that expire after
 * `offsetsRetentionMs` (undefined when unreadable). Topics that are not
 * deleted by time (`cleanup.policy` without `delete`) are left out.
 */
export function judgeRetention(input: {
  readonly topics: readonly TopicRetention[];
  readonly tombstoneHorizonMs: number;
  readonly offsetsRetentionMs: number | undefined;
}): RetentionFinding[] {
  const { tombstoneHorizonMs, offsetsRetentionMs } = input;
  const deleting = input.topics.filter((t) => t.cleanupPolicy.split(',').includes('delete'));
  const findings: RetentionFinding[] = [];
  const short = deleting.filter((t) => t.retentionMs >= 0 && t.retentionMs < tombstoneHorizonMs);
  for (const [retentionMs, group] of [...groupBy(short, (t) => t.retentionMs)].sort(
    ([a], [b]) => a - b,
  )) {
    const topics = group.map((t) => t.topic).sort();
    findings.push({
      kind: 'retention_below_horizon',
      topics,
      message:
        `Kafka topics ${topicList(topics)} keep changes ${hours(retentionMs)} (retention.ms=${retentionMs}), ` +
        `less than apply.tombstoneHorizonHours (${hours(tombstoneHorizonMs)}): a region down longer than ` +
        `${hours(retentionMs)} misses changes and needs a re-snapshot; set retention.ms to at least ${tombstoneHorizonMs}`,
    });
  }
  const bySize = deleting
    .filter((t) => t.retentionBytes >= 0)
    .map((t) => t.topic)
    .sort();
  if (bySize.length > 0) {
    findings.push({
      kind: 'retention_by_size',
      topics: bySize,
      message:
        `Kafka topics ${topicList(bySize)} have retention.bytes set: a burst of writes can delete changes ` +
        `sooner than retention.ms, before a lagging or stopped region applied them; set retention.bytes=-1`,
    });
  }
  if (offsetsRetentionMs !== undefined && deleting.length > 0) {
    const longest = Math.max(
      ...deleting.map((t) => (t.retentionMs < 0 ? Number.POSITIVE_INFINITY : t.retentionMs)),
    );
    if (offsetsRetentionMs < longest) {
      const kept = Number.isFinite(longest) ? hours(longest) : 'forever (retention.ms=-1)';
      findings.push({
        kind: 'offsets_expire_first',
        topics: deleting.map((t) => t.topic).sort(),
        message:
          `the brokers' offsets.retention.minutes (${hours(offsetsRetentionMs)}) is shorter than the change topics' ` +
          `retention (${kept}): if every daemon of a region is down longer than ${hours(offsetsRetentionMs)}, its ` +
          'consumer group loses its offsets and restarts from the earliest retained change: safe (every apply is a ' +
          `join) but it replays everything; set offsets.retention.minutes to at least the topic retention`,
      });
    }
  }
  return findings;
}

function numberSetting(value: string | undefined, fallback: number): number {
  if (value === undefined || !/^-?[0-9]+$/.test(value)) return fallback;
  return Number(value);
}

/**
 * The change topics of every region (`<prefix>.<region>.…`, and the governed
 * `<prefix>-zone-<zone>.<region>.…` and `<prefix>-masked-<r>.<region>.…`),
 * not dead letters or internal topics.
 */
export function changeTopicsOf(
  topics: readonly string[],
  topicPrefix: string,
  regions: readonly string[],
): string[] {
  return topics.filter((t) => {
    if (!t.startsWith(topicPrefix)) return false;
    // Zone and region names have no dots: a governed audience ends at the first one.
    const audience = /^-(?:zone|masked)-[^.]+/.exec(t.slice(topicPrefix.length))?.[0] ?? '';
    const head = `${topicPrefix}${audience}.`;
    return regions.some((r) => t.startsWith(`${head}${r}.`));
  });
}

async function readTopics(admin: Admin, names: readonly string[]): Promise<TopicRetention[]> {
  const { resources } = await admin.describeConfigs({
    includeSynonyms: false,
    resources: names.map((name) => ({
      type: ConfigResourceTypes.TOPIC,
      name,
      configNames: ['retention.ms', 'retention.bytes', 'cleanup.policy'],
    })),
  });
  return resources
    .filter((r) => r.errorCode === 0)
    .map((r) => {
      const value = (name: string): string | undefined =>
        r.configEntries.find((e) => e.configName === name)?.configValue;
      return {
        topic: r.resourceName,
        retentionMs: numberSetting(value('retention.ms'), -1),
        retentionBytes: numberSetting(value('retention.bytes'), -1),
        cleanupPolicy: value('cleanup.policy') ?? 'delete',
      };
    });
}

/** `offsets.retention.minutes` of one broker in ms, or undefined when not readable (ACLs). */
async function readOffsetsRetentionMs(admin: Admin): Promise<number | undefined> {
  const cluster = await admin.describeCluster();
  const broker = cluster.brokers[0]?.nodeId;
  if (broker === undefined) return undefined;
  const { resources } = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [
      {
        type: ConfigResourceTypes.BROKER,
        name: String(broker),
        configNames: ['offsets.retention.minutes'],
      },
    ],
  });
  const value = resources[0]?.configEntries.find(
    (e) => e.configName === 'offsets.retention.minutes',
  )?.configValue;
  const minutes = numberSetting(value, -1);
  return minutes < 0 ? undefined : minutes * 60_000;
}

export interface TopicRetentionCheckDeps {
  readonly kafka: Kafka;
  readonly options: Pick<RuntimeOptions, 'region' | 'peers' | 'kafka' | 'apply'>;
  readonly logger: Logger;
}

/** A running check; `stop()` lets it finish for up to 2 s, then cuts it off. Safe to call twice. */
export interface TopicRetentionCheck {
  readonly done: Promise<RetentionFinding[]>;
  stop(): Promise<void>;
}

/**
 * Reads the retention of the change topics of every region and the brokers'
 * offsets retention, and logs one warning per finding. Never rejects: a
 * setting that cannot be read (ACLs, Kafka away) is logged and skipped.
 */
export function checkTopicRetention(deps: TopicRetentionCheckDeps): TopicRetentionCheck {
  const { kafka, options, logger } = deps;
  const admin = kafka.admin();
  let stopped = false;
  const done = (async (): Promise<RetentionFinding[]> => {
    try {
      await admin.connect();
      const names = changeTopicsOf(await admin.listTopics(), options.kafka.topicPrefix, [
        options.region,
        ...options.peers,
      ]);
      if (names.length === 0 || stopped) return [];
      const topics = await readTopics(admin, names);
      let offsetsRetentionMs: number | undefined;
      try {
        offsetsRetentionMs = await readOffsetsRetentionMs(admin);
      } catch (err) {
        logger.debug(
          { err: (err as Error).message },
          'cannot read the brokers offsets.retention.minutes; not checked',
        );
      }
      const findings = judgeRetention({
        topics,
        tombstoneHorizonMs: options.apply.tombstoneHorizonMs,
        offsetsRetentionMs,
      });
      for (const finding of findings)
        logger.warn({ check: finding.kind, topics: finding.topics.length }, finding.message);
      return findings;
    } catch (err) {
      if (!stopped)
        logger.warn(
          { err: (err as Error).message },
          'cannot read the retention of the change topics; not checked',
        );
      return [];
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  })();
  return {
    done,
    async stop() {
      stopped = true;
      // A check is done in well under a second: let it finish rather than cut a request off
      // (kafkajs logs those as connection errors), unless Kafka is slow to answer.
      let timer: NodeJS.Timeout | undefined;
      const finished = await Promise.race([
        done.then(() => true),
        new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), STOP_WAIT_MS))),
      ]);
      clearTimeout(timer);
      if (!finished) await admin.disconnect().catch(() => undefined);
    },
  };
}
