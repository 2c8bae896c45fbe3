/**
 * The records the stages park in `<prefix>._dlq.<stage>.<region>`, decoded
 * from their Kafka messages. The formats are the ones the writers produce:
 * the apply stage's `#deadLetter` (the original message's location, key and
 * base64 value) and capture's `dead-letter` output (the binlog row that could
 * not be encoded). A record that matches neither is kept as `undecodable`
 * with what is wrong with it, never dropped and never fatal.
 */

/** The stages that park dead letters. */
export const DEAD_LETTER_STAGES = ['capture', 'apply'] as const;
export type DeadLetterStage = (typeof DEAD_LETTER_STAGES)[number];

/** A dead-letter message as read from Kafka, before decoding. */
export interface RawDeadLetter {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  /** When the message was parked (Kafka timestamp), ms since the epoch. */
  readonly timestampMs: number;
  readonly value: Buffer | null;
}

/** Which dead-letter topic a message came from, and what the deployment looks like. */
export interface DeadLetterContext {
  readonly stage: DeadLetterStage;
  /** The region whose daemon parked it (the topic's region). */
  readonly region: string;
  readonly topicPrefix: string;
  /** Every configured region: a source topic's region is one of them. */
  readonly regions: readonly string[];
}

interface Common {
  /** Where the dead letter itself sits. */
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly timestampMs: number;
  readonly stage: DeadLetterStage;
  readonly region: string;
}

/** An event the apply stage could not apply, with the original Kafka message. */
export interface ApplyDeadLetter extends Common {
  readonly kind: 'apply';
  readonly reason: string;
  readonly error: string;
  /** Where the original change message was consumed from. */
  readonly source: {
    readonly topic: string;
    readonly partition: number;
    readonly offset: string | null;
    readonly key: string | null;
  };
  /** The region that published the original message, from its topic; undefined for a foreign topic. */
  readonly sourceRegion: string | undefined;
  /** `schema.table` of the original message's topic; undefined for a foreign topic. */
  readonly table: string | undefined;
  /** The original message's bytes; null when it had none. */
  readonly value: Buffer | null;
}

/** A binlog row capture could not turn into a change event: there is no event to replay. */
export interface CaptureDeadLetter extends Common {
  readonly kind: 'capture';
  readonly reason: string;
  readonly error: string;
  /** What capture recorded: schema, table, op, gtid and the raw row as far as it could be written. */
  readonly source: Readonly<Record<string, unknown>>;
  readonly table: string | undefined;
}

/** A message in a dead-letter topic that is not a record any stage writes. */
export interface UndecodableDeadLetter extends Common {
  readonly kind: 'undecodable';
  /** What is wrong with it. */
  readonly problem: string;
  /** The start of its value as text, for a person to look at. */
  readonly excerpt: string | null;
}

export type DeadLetter = ApplyDeadLetter | CaptureDeadLetter | UndecodableDeadLetter;

const EXCERPT_CHARS = 200;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * `<prefix>.<region>.<schema>.<table>` → its region and `schema.table`, for
 * the configured regions; also the governed topics
 * `<prefix>-zone-<zone>.…` and `<prefix>-masked-<region>.…`
 * (docs/GOVERNANCE.md, "Topic layout").
 */
export function sourceOfTopic(
  topicPrefix: string,
  regions: readonly string[],
  topic: string,
): { region: string; table: string } | undefined {
  let head = `${topicPrefix}.`;
  if (!topic.startsWith(head)) {
    // Zone and region names have no dots: the audience ends at the first one.
    const governed = /^-(?:zone|masked)-[^.]+\./.exec(topic.slice(topicPrefix.length));
    if (!topic.startsWith(topicPrefix) || governed === null) return undefined;
    head = `${topicPrefix}${governed[0]}`;
  }
  const rest = topic.slice(head.length);
  // Longest first, so a region named `eu` never claims a topic of `eu.west`.
  const region = [...regions]
    .sort((a, b) => b.length - a.length)
    .find((r) => rest.startsWith(`${r}.`));
  if (region === undefined) return undefined;
  const table = rest.slice(region.length + 1);
  return table.includes('.') ? { region, table } : undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

class Undecodable extends Error {}

function field<T>(
  record: Record<string, unknown>,
  name: string,
  check: (v: unknown) => v is T,
  what: string,
): T {
  const value = record[name];
  if (!check(value)) throw new Undecodable(`${name} is not ${what}`);
  return value;
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isNonEmptyString = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
const isStringOrNull = (v: unknown): v is string | null => v === null || typeof v === 'string';
const isPartition = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** Decodes one dead-letter message; anything unexpected yields an `undecodable` entry. */
export function decodeDeadLetter(raw: RawDeadLetter, context: DeadLetterContext): DeadLetter {
  const common: Common = {
    topic: raw.topic,
    partition: raw.partition,
    offset: raw.offset,
    timestampMs: raw.timestampMs,
    stage: context.stage,
    region: context.region,
  };
  const text = raw.value?.toString('utf8') ?? null;
  try {
    if (text === null) throw new Undecodable('the message has no value');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new Undecodable(`not JSON (${(err as Error).message})`);
    }
    if (!isObject(parsed)) throw new Undecodable('not a JSON object');
    const stage = field(parsed, 'stage', isString, 'a string');
    if (stage !== context.stage)
      throw new Undecodable(`stage is ${JSON.stringify(stage)} in a ${context.stage} topic`);
    const region = field(parsed, 'region', isString, 'a string');
    if (region !== context.region)
      throw new Undecodable(
        `region is ${JSON.stringify(region)} in the topic of region ${context.region}`,
      );
    const reason = field(parsed, 'reason', isNonEmptyString, 'a non-empty string');
    const error = field(parsed, 'error', isString, 'a string');
    const source = field(parsed, 'source', isObject, 'an object');
    if (context.stage === 'capture') {
      const schema = source['schema'];
      const table = source['table'];
      return {
        ...common,
        kind: 'capture',
        reason,
        error,
        source,
        table: isString(schema) && isString(table) ? `${schema}.${table}` : undefined,
      };
    }
    const topic = field(source, 'topic', isNonEmptyString, 'a topic name');
    const partition = field(source, 'partition', isPartition, 'a partition number');
    const offset = field(source, 'offset', isStringOrNull, 'an offset');
    const key = field(source, 'key', isStringOrNull, 'a string or null');
    const value = field(parsed, 'value', isStringOrNull, 'base64 text or null');
    if (value !== null && !BASE64.test(value)) throw new Undecodable('value is not base64');
    const origin = sourceOfTopic(context.topicPrefix, context.regions, topic);
    return {
      ...common,
      kind: 'apply',
      reason,
      error,
      source: { topic, partition, offset, key },
      sourceRegion: origin?.region,
      table: origin?.table,
      value: value === null ? null : Buffer.from(value, 'base64'),
    };
  } catch (err) {
    if (!(err instanceof Undecodable)) throw err;
    return {
      ...common,
      kind: 'undecodable',
      problem: err.message,
      excerpt: text === null ? null : text.slice(0, EXCERPT_CHARS),
    };
  }
}
