/**
 * Validated configuration + region name → the runtime options of one daemon.
 * This is where shared blocks and region overrides are merged and where
 * defaults that depend on the region (client id, key prefixes, state
 * directory) are derived, so no stage of the daemon has to look at the file's
 * shape or know which fields fall back to which.
 */
import { join, resolve } from 'node:path';

import { ConfigError } from '../core/errors.js';
import type { Secret } from '../core/secret.js';
import type { SaslOptions, TlsOptions } from '../core/tls.js';
import {
  CONFIG_DEFAULTS,
  TABLE_PATTERN,
  type RegionConfig,
  type ValidatedConfig,
} from './schema.js';
import type { GovernanceOptions } from '../governance/policy.js';
import { compileGovernance } from './compile-governance.js';
import { formatKeyPath } from './key-path.js';
import { compilePassword, compileSasl, compileTls, readRsaPublicKey } from './tls.js';

/** The region's own MySQL primary. The password stays wrapped until handed to the driver. */
export interface MysqlOptions {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** From `password` or read from `passwordFile`. */
  readonly password: Secret;
  readonly database?: string | undefined;
  /** TLS with certificates already read; absent for a plain connection. */
  readonly tls?: TlsOptions | undefined;
  /**
   * The server's RSA public key (PEM) from `serverPublicKeyFile`, for the
   * first caching_sha2_password login over a plain connection; absent: the
   * client asks the server for it.
   */
  readonly serverPublicKey?: string | undefined;
}

/** The Kafka cluster this region's daemon connects to. */
export interface KafkaOptions {
  readonly brokers: readonly string[];
  /** Shared by all regions; topic names are `<topicPrefix>.<sourceRegion>.<schema>.<table>`. */
  readonly topicPrefix: string;
  readonly clientId: string;
  /** Partitions and replication factor of topics the replicator creates. */
  readonly topics: { readonly partitions: number; readonly replicationFactor: number | undefined };
  /** TLS to the brokers; absent for plaintext. */
  readonly tls?: TlsOptions | undefined;
  /** SASL authentication; absent when the brokers need none. */
  readonly sasl?: SaslOptions | undefined;
}

/** Apply stage tuning, units in the names. */
export interface ApplyOptions {
  readonly batchMaxEvents: number;
  readonly partitionsConcurrently: number;
  readonly maxClockSkewMs: number;
  readonly conflictSampleRate: number;
  readonly conflictRetentionMs: number;
  readonly tombstoneHorizonMs: number;
  readonly purgeIntervalMs: number;
  /** While anything is held for schema skew: how often the local schema is re-read and held partitions retried. */
  readonly holdRecheckIntervalMs: number;
  /** How often new change topics of `schema.*` pipelines are looked for. */
  readonly topicDiscoveryIntervalMs: number;
}

/** How the replicator follows schema changes made region by region. */
export interface SchemaChangeOptions {
  /**
   * The applier adds a column an event names and this region lacks (nullable,
   * the source's type); capture sends column types with every event for it.
   */
  readonly autoAddColumns: boolean;
}

/** Capture stage tuning, units in the names. */
export interface CaptureOptions {
  /** server_id the binlog reader presents to MySQL. */
  readonly serverId: number;
  readonly maxInFlightBytes: number;
  readonly batchMaxMessages: number;
  readonly lingerMs: number;
  readonly compression: 'none' | 'gzip';
  /** Envelope version of published changes (v2: several rows per message). */
  readonly envelope: 1 | 2;
  readonly checkpointIntervalMs: number;
  /** Period of the schema drift check (triggers, version columns); 0 when off. */
  readonly schemaCheckIntervalMs: number;
  /** The capture lease (with a Redis store): TTL and renewal period. */
  readonly lease: { readonly ttlMs: number; readonly renewIntervalMs: number };
}

/**
 * Where checkpoints and leases live. Redis keys start with `keyPrefix`, which
 * already contains the region (the pipeline name is appended by the store),
 * so regions may share one Redis.
 */
export type CheckpointStoreOptions =
  | {
      readonly kind: 'redis';
      readonly url: Secret;
      readonly keyPrefix: string;
      /** Certificates for a `rediss://` url; the system CAs when absent. */
      readonly tls?: TlsOptions | undefined;
      /** What to do about a Redis that can lose checkpoints: log (`warn`), also not ready (`fatal`), or not check. */
      readonly durability: 'warn' | 'fatal' | 'ignore';
    }
  | { readonly kind: 'file'; readonly dir: string };

/** The address of `/metrics`, `/healthz` and `/readyz`. */
export interface MetricsOptions {
  readonly host: string;
  /** 0 asks the OS for a free port. */
  readonly port: number;
  /**
   * Where `status` reads this daemon's metrics: the configured url, else
   * derived from host and port; undefined when the port is chosen at start (0).
   */
  readonly url: string | undefined;
}

/** Heartbeats, lag threshold and anomaly detection. */
export interface MonitorOptions {
  readonly heartbeatIntervalMs: number;
  readonly lagThresholdSeconds: number;
  readonly sampleIntervalMs: number;
  readonly anomalyDetection: boolean;
}

/** A table selector: `table` is `'*'` for every table of the schema. */
export interface TablePattern {
  readonly schema: string;
  readonly table: string;
}

/** How a pipeline resolves concurrent writes to the same row. */
export type ConflictOptions =
  | { readonly strategy: 'lww' }
  /** `priority` ranks every region, highest first. */
  | { readonly strategy: 'region-priority'; readonly priority: readonly string[] };

/** One pipeline: the tables it replicates and how their conflicts are resolved. */
export interface PipelineOptions {
  readonly name: string;
  readonly tables: readonly TablePattern[];
  readonly conflict: ConflictOptions;
  /** Debezium-compatible change topics of this pipeline, when configured. */
  readonly output?: DebeziumOutputOptions;
}

/** `pipelines[].output` with format `debezium` (docs/DEBEZIUM.md). */
export interface DebeziumOutputOptions {
  readonly format: 'debezium';
  readonly topicPrefix: string;
  readonly schemas: boolean;
  readonly tombstones: boolean;
  readonly decimalHandling: 'precise' | 'string';
}

/** Everything one daemon needs to run for one region. */
export interface RuntimeOptions {
  readonly region: string;
  /** Every other region: the sources this daemon applies changes from. */
  readonly peers: readonly string[];
  readonly mysql: MysqlOptions;
  readonly kafka: KafkaOptions;
  readonly checkpointStore: CheckpointStoreOptions;
  readonly metrics: MetricsOptions;
  readonly pipelines: readonly PipelineOptions[];
  readonly capture: CaptureOptions;
  readonly apply: ApplyOptions;
  readonly schema: SchemaChangeOptions;
  readonly monitor: MonitorOptions;
  /** Where every other region's daemon serves its metrics (the lag diagnosis reads their capture lag). */
  readonly peerMetricsUrls: Readonly<Record<string, string>>;
  /** Schema of the replicator's own tables in this region's database. */
  readonly internalSchema: string;
  /**
   * The `governance:` section (docs/GOVERNANCE.md): capture routes and masks
   * the rows of governed tables, apply re-checks them. Absent: no policies.
   */
  readonly governance?: GovernanceOptions | undefined;
}

/** Options of {@link compileRegion} that do not come from the file itself. */
export interface CompileOptions {
  /**
   * Directory that a relative `stateDir` is resolved against, normally the
   * configuration file's directory. When omitted, a relative `stateDir` stays
   * relative (to the daemon's working directory).
   */
  readonly baseDir?: string;
}

/**
 * Compiles the options of the daemon serving `region`.
 *
 * @throws ConfigError when the configuration has no such region; the message
 *   lists the regions it does have.
 */
export function compileRegion(
  config: ValidatedConfig,
  region: string,
  options: CompileOptions = {},
): RuntimeOptions {
  const names = Object.keys(config.regions);
  const own = Object.hasOwn(config.regions, region) ? config.regions[region] : undefined;
  if (own === undefined) {
    throw new ConfigError([
      `region ${JSON.stringify(region)} is not defined in the configuration (regions: ${names.join(', ')})`,
    ]);
  }
  const governance = compileGovernance(config);
  return {
    region,
    peers: names.filter((name) => name !== region),
    mysql: compileMysql(own, region, options),
    kafka: {
      brokers: own.kafka?.brokers ?? config.kafka.brokers,
      topicPrefix: config.kafka.topicPrefix,
      clientId: own.kafka?.clientId ?? config.kafka.clientId ?? `cdc-replicator-${region}`,
      topics: {
        partitions: config.kafka.topics.partitions,
        replicationFactor: config.kafka.topics.replicationFactor,
      },
      ...compileKafkaSecurity(config, own, region, options),
    },
    capture: {
      serverId: config.capture.serverId ?? derivedServerId(region),
      maxInFlightBytes: config.capture.maxInFlightBytes,
      batchMaxMessages: config.capture.batchMaxMessages,
      lingerMs: config.capture.lingerMs,
      envelope: config.capture.envelope,
      compression: config.capture.compression,
      checkpointIntervalMs: config.capture.checkpointIntervalMs,
      schemaCheckIntervalMs: config.capture.schemaCheckIntervalMs,
      lease: {
        ttlMs: config.capture.lease.ttlMs,
        renewIntervalMs:
          config.capture.lease.renewIntervalMs ?? Math.floor(config.capture.lease.ttlMs / 3),
      },
    },
    apply: {
      batchMaxEvents: config.apply.batchMaxEvents,
      partitionsConcurrently: config.apply.partitionsConcurrently,
      maxClockSkewMs: config.apply.maxClockSkewMs,
      conflictSampleRate: config.apply.conflictSampleRate,
      conflictRetentionMs: config.apply.conflictRetentionHours * 3_600_000,
      tombstoneHorizonMs: config.apply.tombstoneHorizonHours * 3_600_000,
      purgeIntervalMs: config.apply.purgeIntervalMs,
      holdRecheckIntervalMs: config.apply.holdRecheckIntervalMs,
      topicDiscoveryIntervalMs: config.apply.topicDiscoveryIntervalMs,
    },
    schema: { autoAddColumns: config.schema.autoAddColumns },
    internalSchema: config.internalSchema,
    checkpointStore: compileCheckpointStore(config, region, options),
    metrics: compileMetrics(config, own),
    peerMetricsUrls: Object.fromEntries(
      names.flatMap((name) => {
        const url = compileMetrics(config, config.regions[name] as RegionConfig).url;
        return name === region || url === undefined ? [] : [[name, url]];
      }),
    ),
    monitor: {
      heartbeatIntervalMs: config.monitor.heartbeatIntervalMs,
      lagThresholdSeconds: config.monitor.lagThresholdSeconds,
      sampleIntervalMs: config.monitor.sampleIntervalMs,
      anomalyDetection: config.monitor.anomaly.enabled,
    },
    pipelines: config.pipelines.map((pipeline) => ({
      name: pipeline.name,
      tables: pipeline.tables.map(parseTablePattern),
      conflict:
        pipeline.conflict.strategy === 'region-priority'
          ? { strategy: 'region-priority', priority: pipeline.conflict.priority ?? [] }
          : { strategy: 'lww' },
      ...(pipeline.output === undefined ? {} : { output: { ...pipeline.output } }),
    })),
    ...(governance === undefined ? {} : { governance }),
  };
}

/**
 * A stable server_id for the region's binlog reader, in a range real servers
 * rarely use (4 000 000 000 and up), so two daemons of one region present
 * the same id: MySQL then keeps only one dump connection alive, which is
 * what a standby takeover wants.
 */
function derivedServerId(region: string): number {
  let hash = 0;
  for (const char of region) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return 4_000_000_000 + (hash % 294_967_295);
}

function compileMetrics(config: ValidatedConfig, own: RegionConfig): MetricsOptions {
  const host = own.metrics?.host ?? config.metrics.host;
  const port = own.metrics?.port ?? config.metrics.port;
  // A wildcard listen address is not an address to connect to; the daemon is then reachable locally.
  const reachable = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  const url =
    own.metrics?.url ??
    (port === 0
      ? undefined
      : `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`);
  return { host, port, url: url?.replace(/\/+$/, '') };
}

/** Compiles every region, in file order. Used by `validate` to prove each daemon could start. */
export function compileAllRegions(
  config: ValidatedConfig,
  options: CompileOptions = {},
): RuntimeOptions[] {
  return Object.keys(config.regions).map((region) => compileRegion(config, region, options));
}

function compileCheckpointStore(
  config: ValidatedConfig,
  region: string,
  options: CompileOptions,
): CheckpointStoreOptions {
  const override = config.regions[region]?.redis;
  const url = override?.url ?? config.redis?.url;
  if (url !== undefined) {
    const prefix = override?.keyPrefix ?? config.redis?.keyPrefix ?? CONFIG_DEFAULTS.redisKeyPrefix;
    const [tlsPath, tls] =
      override?.tls !== undefined
        ? [['regions', region, 'redis', 'tls'], override.tls]
        : [['redis', 'tls'], config.redis?.tls];
    if (tls !== undefined && !url.reveal().startsWith('rediss:')) {
      throw new ConfigError([
        `${formatKeyPath(tlsPath)}: TLS needs a rediss:// url (the url in use starts with redis://)`,
      ]);
    }
    return {
      kind: 'redis',
      url,
      keyPrefix: `${prefix}:${region}:`,
      durability:
        override?.durability ?? config.redis?.durability ?? CONFIG_DEFAULTS.redisDurability,
      ...(tls === undefined ? {} : { tls: compileTls(tlsPath, tls, options.baseDir) }),
    };
  }
  // One directory per region, so daemons sharing a machine and a stateDir never share files.
  const dir =
    options.baseDir === undefined
      ? join(config.stateDir, region)
      : resolve(options.baseDir, config.stateDir, region);
  return { kind: 'file', dir };
}

function compileMysql(own: RegionConfig, region: string, options: CompileOptions): MysqlOptions {
  const path = ['regions', region, 'mysql'];
  const { host, port, user, database, tls, serverPublicKeyFile } = own.mysql;
  if (tls?.servername !== undefined) {
    throw new ConfigError([
      `${formatKeyPath([...path, 'tls', 'servername'])}: not supported for MySQL: the driver checks the certificate against host, so set host to the name in the certificate`,
    ]);
  }
  return {
    host,
    port,
    user,
    password: compilePassword(path, own.mysql, options.baseDir),
    ...(database === undefined ? {} : { database }),
    ...(tls === undefined ? {} : { tls: compileTls([...path, 'tls'], tls, options.baseDir) }),
    ...(serverPublicKeyFile === undefined
      ? {}
      : {
          serverPublicKey: readRsaPublicKey(
            [...path, 'serverPublicKeyFile'],
            serverPublicKeyFile,
            options.baseDir,
          ),
        }),
  };
}

/** TLS and SASL of the region's Kafka: a region's own block replaces the shared one. */
function compileKafkaSecurity(
  config: ValidatedConfig,
  own: RegionConfig,
  region: string,
  options: CompileOptions,
): Pick<KafkaOptions, 'tls' | 'sasl'> {
  const result: { tls?: TlsOptions; sasl?: SaslOptions } = {};
  if (own.kafka?.tls !== undefined) {
    result.tls = compileTls(['regions', region, 'kafka', 'tls'], own.kafka.tls, options.baseDir);
  } else if (config.kafka.tls !== undefined) {
    result.tls = compileTls(['kafka', 'tls'], config.kafka.tls, options.baseDir);
  }
  if (own.kafka?.sasl !== undefined) {
    result.sasl = compileSasl(
      ['regions', region, 'kafka', 'sasl'],
      own.kafka.sasl,
      options.baseDir,
    );
  } else if (config.kafka.sasl !== undefined) {
    result.sasl = compileSasl(['kafka', 'sasl'], config.kafka.sasl, options.baseDir);
  }
  return result;
}

/**
 * Splits a validated `schema.table` / `schema.*` string.
 *
 * @throws ConfigError for a string that is not a table pattern (only possible
 *   when called with unvalidated input).
 */
export function parseTablePattern(pattern: string): TablePattern {
  const match = TABLE_PATTERN.exec(pattern);
  const schema = match?.[1];
  const table = match?.[2];
  if (schema === undefined || table === undefined) {
    throw new ConfigError([`${JSON.stringify(pattern)} is not schema.table`]);
  }
  return { schema, table };
}

/**
 * Helper tables of online schema-change tools: gh-ost's ghost, changelog and
 * old tables (`_<t>_gho`, `_<t>_ghc`, `_<t>_del`, also with a timestamp
 * before `_del`) and pt-online-schema-change's new and old tables
 * (`_<t>_new`, `_<t>_old`, with more leading `_` when the name was taken).
 * They hold a copy of a replicated table during the change; replicating them
 * would copy every row to every region twice and leave stray tables there.
 */
const SCHEMA_CHANGE_HELPER = /^_.+_(?:gho|ghc|del|new|old)$/;

/** True for a helper table of gh-ost or pt-online-schema-change, which `schema.*` never selects. */
export function isSchemaChangeHelperTable(table: string): boolean {
  return SCHEMA_CHANGE_HELPER.test(table);
}

/**
 * True when the pattern selects `schema.table`. Names compare exactly, as
 * MySQL does on Linux. `schema.*` leaves out the helper tables of online
 * schema-change tools ({@link isSchemaChangeHelperTable}); a table named
 * explicitly is selected whatever its name.
 */
export function tableMatches(pattern: TablePattern, schema: string, table: string): boolean {
  if (pattern.schema !== schema) return false;
  return pattern.table === '*' ? !isSchemaChangeHelperTable(table) : pattern.table === table;
}
