import { isIP, connect as netConnect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect as tlsConnect } from 'node:tls';
import {
  CompressionTypes,
  Kafka,
  logLevel,
  type Admin,
  type AdminConfig,
  type Consumer,
  type ConsumerConfig,
  type ISocketFactory,
  type KafkaConfig,
  type LogEntry,
  type Producer,
  type ProducerConfig,
} from 'kafkajs';
import type { KafkaOptions } from '../config/compile.js';
import { ConnectBackoff } from './connect-backoff.js';
import { Murmur2Partitioner } from './partitioner.js';
import { CdcError } from '../core/errors.js';
import { classifyError } from '../core/retriable.js';
import type { Logger } from '../core/logger.js';
import { kafkaSaslOptions, nodeTlsOptions } from '../core/tls.js';

/** kafkajs log levels → pino methods. kafkajs' own console logger is never used. */
function kafkaLogCreator(logger: Logger) {
  return () =>
    ({ level, log }: LogEntry): void => {
      const { message, ...extra } = log;
      const fields = { component: 'kafkajs', ...extra };
      if (level === logLevel.ERROR) logger.error(fields, message);
      else if (level === logLevel.WARN) logger.warn(fields, message);
      else if (level === logLevel.INFO)
        logger.debug(fields, message); // chatty connection notices
      else logger.trace(fields, message);
    };
}

/** A cluster as errors name it: brokers and security, never the password. */
export function describeKafka(options: Pick<KafkaOptions, 'brokers' | 'tls' | 'sasl'>): string {
  const security = [
    ...(options.tls === undefined ? [] : ['TLS']),
    ...(options.sasl === undefined
      ? []
      : [`SASL ${options.sasl.mechanism} as ${options.sasl.username}`]),
  ];
  return `Kafka ${options.brokers.join(',')}${security.length === 0 ? '' : ` (${security.join(', ')})`}`;
}

/**
 * kafkajs' errors do not say which cluster refused: a failed login reads
 * "SASL PLAIN authentication failed: ..." with no broker or user, and a TLS
 * failure carries its broker only in a field. Clients from this Kafka name
 * the cluster when connect() fails, which is where a wrong password, CA or
 * address shows (the caller's retry loop still sees the same verdict).
 */
class NamedKafka extends Kafka {
  readonly #description: string;

  constructor(config: KafkaConfig, description: string) {
    super(config);
    this.#description = description;
  }

  override producer(config?: ProducerConfig): Producer {
    return this.#named(super.producer(config), 'producer');
  }

  override consumer(config: ConsumerConfig): Consumer {
    return this.#named(super.consumer(config), 'consumer');
  }

  override admin(config?: AdminConfig): Admin {
    return this.#named(super.admin(config), 'admin client');
  }

  #named<T extends { connect: () => Promise<void> }>(client: T, kind: string): T {
    const connect = client.connect.bind(client);
    client.connect = async () => {
      try {
        await connect();
      } catch (err) {
        throw classifyError(err, `${this.#description}: connecting the ${kind}`);
      }
    };
    return client;
  }
}

/**
 * Pacing of new connections to a broker that stopped answering (see
 * {@link ConnectBackoff}): the first probe 500 ms after the failure, then
 * doubling to one every 5 s. The cap is also the most that catching up
 * waits once the broker is back, beyond the client's own retry delay.
 */
export const CONNECT_BACKOFF = { initialMs: 500, maxMs: 5_000 } as const;

/** kafkajs' retry settings of every client: its retriers nest, so each stays short; the pacing of connections is {@link CONNECT_BACKOFF}'s. */
const CLIENT_RETRY = { initialRetryTime: 300, maxRetryTime: 5_000 } as const;

/**
 * kafkajs' own socket factory (plain or TLS, keep-alive) with every
 * connection paced by `backoff`: an attempt it holds back fails at once, as
 * a connection error kafkajs retries, without touching the network.
 */
function pacedSocketFactory(backoff: ConnectBackoff): ISocketFactory {
  return ({ host, port, ssl, onConnect }) => {
    const broker = `${host}:${port}`;
    const ticket = backoff.begin(broker);
    if (!ticket.go)
      throw new Error(
        `${broker} did not answer the last connection; not retried for ${ticket.waitMs} ms (backing off)`,
      );
    let socket: Socket;
    try {
      // kafkajs passes `ssl` only when TLS is configured (its own factory tests it the same way).
      socket = ssl
        ? tlsConnect({ host, port, ...(isIP(host) ? {} : { servername: host }), ...ssl }, onConnect)
        : netConnect({ host, port }, onConnect);
    } catch (err) {
      backoff.failed(ticket);
      throw err;
    }
    socket.setKeepAlive(true, 60_000);
    let answered = false;
    socket.once('data', () => {
      answered = true;
      backoff.answered(ticket);
    });
    socket.once('close', () => {
      if (!answered) backoff.failed(ticket);
    });
    return socket;
  };
}

/**
 * A kafkajs client for the region's cluster, logging through the daemon's
 * logger. Its producers, consumers and admin clients share one
 * {@link ConnectBackoff}, so however many of them retry, a dead broker sees
 * at most about one connection per {@link CONNECT_BACKOFF} cap.
 */
export function createKafka(options: KafkaOptions, logger: Logger): Kafka {
  return new NamedKafka(
    {
      clientId: options.clientId,
      brokers: [...options.brokers],
      logLevel: logLevel.WARN,
      logCreator: kafkaLogCreator(logger),
      connectionTimeout: 5_000,
      requestTimeout: 30_000,
      retry: { ...CLIENT_RETRY, retries: 10 },
      socketFactory: pacedSocketFactory(new ConnectBackoff(CONNECT_BACKOFF)),
      ...(options.tls === undefined ? {} : { ssl: nodeTlsOptions(options.tls) }),
      ...(options.sasl === undefined ? {} : { sasl: kafkaSaslOptions(options.sasl) }),
    },
    describeKafka(options),
  );
}

/**
 * Compression codec of produced batches. `none` is the default because
 * bench/capture measured it: on this 2-core class of machine gzip costs more
 * CPU in the capture process than it saves on a loopback or LAN link, and the
 * other codecs need native add-ons. Operators on slow cross-region links can
 * choose gzip.
 */
export function compressionType(codec: 'none' | 'gzip'): CompressionTypes {
  return codec === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None;
}

/** How long {@link ensureTopics} waits for freshly created topics to appear in the broker's metadata. */
const ENSURE_TOPICS_ATTEMPTS = 20;
const ENSURE_TOPICS_RETRY_MS = 250;

/** Settings of internal topics that differ from change topics' (e.g. a compacted one-partition log). */
export interface TopicOverrides {
  readonly partitions?: number;
  /** Topic-level configuration, e.g. `{ 'cleanup.policy': 'compact' }`. */
  readonly configEntries?: Readonly<Record<string, string>>;
}

/** Throws a retriable error unless every partition of every topic has a leader. */
async function requireLeaders(admin: Admin, topics: readonly string[]): Promise<void> {
  const { topics: metadata } = await admin.fetchTopicMetadata({ topics: [...new Set(topics)] });
  const leaderless = metadata
    .filter((t) => t.partitions.length === 0 || t.partitions.some((p) => p.leader < 0))
    .map((t) => t.name);
  if (leaderless.length > 0)
    throw new CdcError(`Kafka topics without a partition leader yet: ${leaderless.join(', ')}`, {
      retriable: true,
      code: 'KAFKA_NO_LEADER',
    });
}

/**
 * Creates the topics that do not exist yet. Existing topics are left as they
 * are (their partition count decides key placement and must not change).
 * Returns only when every topic, new or not, has a leader for each partition.
 *
 * Retriable failures are retried for a few seconds: a KRaft broker answers
 * the metadata request that follows CreateTopics with
 * UNKNOWN_TOPIC_OR_PARTITION until the new topics reach its metadata cache,
 * and kafkajs' `waitForLeaders` only waits out LEADER_NOT_AVAILABLE.
 */
export async function ensureTopics(
  admin: Admin,
  topics: readonly string[],
  settings: KafkaOptions['topics'],
  overrides: TopicOverrides = {},
): Promise<string[]> {
  let requested: string[] = [];
  for (let attempt = 1; ; attempt += 1) {
    try {
      const existing = new Set(await admin.listTopics());
      const missing = [...new Set(topics)].filter((topic) => !existing.has(topic));
      if (missing.length === 0) {
        // Listed is not usable yet: a topic another daemon created a moment ago may
        // have no leader, and a consumer subscribing to it would fail at once.
        await requireLeaders(admin, topics);
        return requested;
      }
      requested = missing;
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((topic) => ({
          topic,
          numPartitions: overrides.partitions ?? settings.partitions,
          // -1 asks the broker for its default.replication.factor.
          replicationFactor: settings.replicationFactor ?? -1,
          ...(overrides.configEntries === undefined
            ? {}
            : {
                configEntries: Object.entries(overrides.configEntries).map(([name, value]) => ({
                  name,
                  value,
                })),
              }),
        })),
      });
      await requireLeaders(admin, topics);
      return missing;
    } catch (err) {
      const error = classifyError(err, `creating Kafka topics ${topics.join(', ')}`);
      if (!error.retriable || attempt >= ENSURE_TOPICS_ATTEMPTS) throw error;
      await sleep(ENSURE_TOPICS_RETRY_MS);
    }
  }
}

/** The partition count of each topic, from the brokers' metadata. */
export async function partitionCountsWith(
  kafka: Kafka,
  topics: readonly string[],
): Promise<Map<string, number>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const metadata = await admin.fetchTopicMetadata({ topics: [...topics] });
    return new Map(metadata.topics.map((t) => [t.name, t.partitions.length]));
  } finally {
    await admin.disconnect();
  }
}

/**
 * Creates the topics that do not exist yet (see {@link ensureTopics}) with a
 * short-lived admin client: for callers that need no admin otherwise.
 */
export async function ensureTopicsWith(
  kafka: Kafka,
  topics: readonly string[],
  settings: KafkaOptions['topics'],
  overrides: TopicOverrides = {},
): Promise<string[]> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return await ensureTopics(admin, topics, settings, overrides);
  } finally {
    await admin.disconnect();
  }
}

/**
 * The producer of change events (capture, snapshot, verify's repair): idempotent
 * with one request in flight, so per-partition order holds across retries;
 * murmur2 on the key, as the Java client, so a row's key maps to the same
 * partition from any producer; topics are never auto-created.
 */
export function createChangeProducer(kafka: Kafka): Producer {
  return kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: Murmur2Partitioner,
    // An idempotent producer keeps retrying (kafkajs warns that a limit may break its
    // guarantees); the callers' own loops log and back off on top.
    retry: { ...CLIENT_RETRY, retries: Number.MAX_SAFE_INTEGER },
  });
}
