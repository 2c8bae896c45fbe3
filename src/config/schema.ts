/**
 * The configuration file's schema: the single source of truth for what a
 * `cdc-replicator` YAML file may contain, its defaults, the TypeScript types of
 * the file (`ConfigInput`) and of the validated result (`ValidatedConfig`), and
 * the published JSON Schema (see `json-schema.ts`). Rules that relate fields
 * to each other live in `validate.ts`, which runs them next to this schema.
 */
import { z } from 'zod';

import { Secret } from '../core/secret.js';

/** Values the file may leave out. Compile-time fallbacks reuse them so there is one place to change. */
export const CONFIG_DEFAULTS = {
  mysqlPort: 3306,
  topicPrefix: 'cdc',
  redisKeyPrefix: 'cdc',
  redisDurability: 'warn',
  stateDir: '.cdc-state',
  metricsPort: 9464,
  metricsHost: '0.0.0.0',
  conflictStrategy: 'lww',
  internalSchema: '_cdc',
  topicPartitions: 3,
  // One batch is in flight at a time, so a larger budget buys memory, not speed (measured: 16 MiB
  // peaks at ~320 MiB RSS on a 1M-row transaction, 64 MiB at ~500 MiB, same throughput; the
  // backlog-memory bench drains as fast with 8 MiB). 2 MiB cut capture's peak RSS by ~45 MiB at the
  // same speed (bench/README.md, fifth session); reverted while test/integration/schema/drop-rename.test.ts's
  // RENAME COLUMN roll-out stalled with it, which it later did at 8 MiB too: a flake of its own.
  captureMaxInFlightBytes: 8 * 1024 * 1024,
  captureBatchMaxMessages: 2000,
  captureLingerMs: 5,
  captureEnvelope: 2 as 1 | 2,
  /** Measured by bench/capture: see the comment in src/bus/kafka.ts. */
  captureCompression: 'none',
  captureCheckpointIntervalMs: 500,
  /** A standby takes over within this long after the capture holder dies. */
  captureLeaseTtlMs: 10_000,
  /** How often capture checks the replicated tables for drift (missing triggers or version columns). */
  captureSchemaCheckIntervalMs: 30_000,
  applyBatchMaxEvents: 1000,
  applyPartitionsConcurrently: 3,
  applyMaxClockSkewMs: 5000,
  applyConflictRetentionHours: 168,
  /** Kafka's default retention is 7 days; tombstones must outlive any event still in flight. */
  applyTombstoneHorizonHours: 168,
  applyPurgeIntervalMs: 60_000,
  heartbeatIntervalMs: 1000,
  /** /readyz fails and `status` exits non-zero above this end-to-end lag. */
  lagThresholdSeconds: 30,
  monitorSampleIntervalMs: 1000,
} as const;

/**
 * Region and pipeline names end up in Kafka topic names, Redis keys, metric
 * labels and file names, so they are restricted to characters safe in all four.
 */
export const NAME_PATTERN = /^[a-z][a-z0-9_-]*$/;
const NAME_MAX_LENGTH = 48;

/**
 * `schema.table` or `schema.*`. Only unquoted-identifier characters without `$`,
 * because table names become part of Kafka topic names, which do not allow `$`.
 */
export const TABLE_PATTERN = /^([A-Za-z0-9_]+)\.([A-Za-z0-9_]+|\*)$/;

/** Tables with this prefix are the replicator's own bookkeeping and are never replicated. */
export const INTERNAL_TABLE_PREFIX = '_cdc_';

/** Kafka topic names allow only these characters. */
const TOPIC_PREFIX_PATTERN = /^[A-Za-z0-9._-]+$/;

/** `host:port`, where host is a name, an IPv4 address or a bracketed IPv6 address. */
const BROKER_PATTERN = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})$/;

function nameSchema(what: 'region' | 'pipeline') {
  const message = `${what} names must start with a lowercase letter and use only a-z, 0-9, "_" and "-" (at most ${NAME_MAX_LENGTH} characters)`;
  return z
    .string()
    .regex(NAME_PATTERN, { error: message, abort: true })
    .max(NAME_MAX_LENGTH, { error: message });
}

/** A region name as it may appear as a key of `regions` or in a priority list. */
export const regionNameSchema = nameSchema('region');
/** A pipeline name. */
export const pipelineNameSchema = nameSchema('pipeline');

/**
 * A TCP port. A string of digits is accepted too, because `${PORT}` expands to
 * text and the file should not need a different syntax for numbers from the
 * environment. The messages never repeat the value: the same schema shape is
 * used next to secrets.
 */
function portSchema(min: 0 | 1) {
  const message =
    min === 0
      ? 'must be a port number 0-65535 (0 picks a free port)'
      : 'must be a port number 1-65535';
  const asNumber = z
    .int({ error: message })
    .min(min, { error: message })
    .max(65535, { error: message });
  return z
    .union(
      [
        asNumber,
        z
          .string()
          .regex(/^[0-9]+$/, { error: message })
          .transform(Number)
          .pipe(asNumber),
      ],
      { error: message },
    )
    .meta({ description: 'A port number; a decimal string (e.g. from ${PORT}) is accepted too.' });
}

function nonEmptyString(what: string) {
  return z.string().min(1, { error: `${what} must not be empty` });
}

/**
 * A string that must never be echoed: wrapped in {@link Secret} after
 * validation. Its messages name the expected type only, never the value.
 */
function secretString() {
  return z.string().transform((value) => new Secret(value));
}

function isRedisUrl(value: string): boolean {
  if (!URL.canParse(value)) return false;
  const { protocol, hostname } = new URL(value);
  return (protocol === 'redis:' || protocol === 'rediss:') && hostname.length > 0;
}

/** The redis URL may carry a password, so it is checked without echoing it and kept as a Secret. */
const redisUrlSchema = z
  .string()
  .refine(isRedisUrl, { error: 'must be a redis:// or rediss:// URL with a host' })
  .transform((value) => new Secret(value))
  .meta({ description: 'redis:// or rediss:// URL; may carry a password, which is never logged.' });

const brokerSchema = z
  .string()
  .regex(BROKER_PATTERN, {
    error: (issue) => `${JSON.stringify(issue.input)} is not host:port`,
    abort: true,
  })
  .refine((value) => Number(BROKER_PATTERN.exec(value)?.[1]) <= 65535, {
    error: (issue) => `${JSON.stringify(issue.input)} has a port above 65535`,
  });

const brokersSchema = z.array(brokerSchema).min(1, { error: 'must list at least one broker' });

const topicPrefixSchema = z
  .string()
  .regex(TOPIC_PREFIX_PATTERN, {
    error: 'topicPrefix may only contain letters, digits, ".", "_" and "-"',
  })
  .max(100, { error: 'topicPrefix must be at most 100 characters' });

const redisKeyPrefixSchema = z.string().regex(/^[A-Za-z0-9._:-]+$/, {
  error: 'keyPrefix may only contain letters, digits, ".", "_", ":" and "-"',
});

const metricsHostSchema = nonEmptyString('host');

/** One entry of a pipeline's `tables`: `schema.table` or `schema.*`. */
export const tablePatternSchema = z
  .string()
  .regex(TABLE_PATTERN, {
    error: (issue) => `${JSON.stringify(issue.input)} is not schema.table`,
    abort: true,
  })
  .refine((value) => !(value.split('.')[1] ?? '').startsWith(INTERNAL_TABLE_PREFIX), {
    error: (issue) =>
      `${JSON.stringify(issue.input)} is an internal table (${INTERNAL_TABLE_PREFIX}*) and is never replicated`,
  });

/**
 * TLS of a client connection. Certificates are named by file (read when the
 * daemon's options are compiled, relative to the configuration file), so no
 * key material sits in the YAML. An empty block `{}` means TLS with the
 * system's trusted CAs.
 */
export const tlsSchema = z
  .strictObject({
    caFile: nonEmptyString('caFile').optional().meta({
      description:
        "PEM file of the CA(s) that signed the server's certificate; system CAs when absent.",
    }),
    certFile: nonEmptyString('certFile').optional().meta({
      description: 'PEM client certificate, for servers that require one (needs keyFile).',
    }),
    keyFile: nonEmptyString('keyFile').optional().meta({
      description: 'PEM private key of certFile; its content is never logged.',
    }),
    rejectUnauthorized: z.boolean().default(true).meta({
      description:
        'Refuse servers whose certificate does not verify against the CAs and name. Turn off only for tests: it allows a man in the middle.',
    }),
    servername: nonEmptyString('servername').optional().meta({
      description:
        "Name the server's certificate must carry (and SNI), when it differs from the host connected to.",
    }),
  })
  .superRefine((tls, ctx) => {
    if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [tls.certFile === undefined ? 'certFile' : 'keyFile'],
        message: 'certFile and keyFile go together: a client certificate needs its key',
      });
    }
  })
  .meta({ description: 'TLS for this connection; certificates by file name.' });

/**
 * A password given inline (`password`, usually `${VAR}`) or as a file
 * (`passwordFile`, e.g. a mounted secret), exactly one of the two.
 */
function exactlyOnePassword(
  value: { password?: unknown; passwordFile?: unknown },
  ctx: z.RefinementCtx,
): void {
  if (value.password !== undefined && value.passwordFile !== undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['passwordFile'],
      message: 'give either password or passwordFile, not both',
    });
  } else if (value.password === undefined && value.passwordFile === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['password'],
      message: 'password or passwordFile is required',
    });
  }
}

const passwordFileSchema = nonEmptyString('passwordFile').meta({
  description:
    'File holding the password (one trailing newline is ignored), instead of password; read at start, never logged.',
});

/** The connection to the region's own MySQL primary. Only regions have one. */
export const mysqlSchema = z
  .strictObject({
    host: nonEmptyString('host'),
    // prefault, not default: the JSON Schema keeps a prefault for a transforming schema.
    port: portSchema(1).prefault(CONFIG_DEFAULTS.mysqlPort),
    user: nonEmptyString('user'),
    password: secretString()
      .meta({
        description: 'May be empty. Write "${VAR}" to keep it out of the file; it is never logged.',
      })
      .optional(),
    passwordFile: passwordFileSchema.optional(),
    database: nonEmptyString('database').optional(),
    tls: tlsSchema.optional(),
    serverPublicKeyFile: nonEmptyString('serverPublicKeyFile')
      .optional()
      .meta({
        description:
          "PEM file of the server's RSA public key (MySQL 8 caching_sha2_password / sha256_password, e.g. the server's public_key.pem). " +
          'Without tls, the first login of such a user sends the password encrypted with this key; without this key the client asks the server for it, which a man in the middle could answer. Not needed with tls.',
      }),
  })
  .superRefine(exactlyOnePassword)
  .meta({ description: "The region's own MySQL primary (binlog source and apply target)." });

/** SASL authentication to Kafka. */
export const saslSchema = z
  .strictObject({
    mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512'], {
      error: 'mechanism must be "plain", "scram-sha-256" or "scram-sha-512"',
    }),
    username: nonEmptyString('username'),
    password: secretString()
      .meta({ description: 'Write "${VAR}" to keep it out of the file; it is never logged.' })
      .optional(),
    passwordFile: passwordFileSchema.optional(),
  })
  .superRefine(exactlyOnePassword)
  .meta({
    description:
      'SASL authentication to the brokers (use with tls: PLAIN sends the password as is).',
  });

/** The top-level Kafka block, shared by every region unless a region overrides parts of it. */
/** How the replicator creates the topics it publishes to when they are missing. */
export const topicsSchema = z
  .strictObject({
    partitions: z.number().int().min(1).max(10_000).default(CONFIG_DEFAULTS.topicPartitions),
    replicationFactor: z.number().int().min(1).max(32).optional().meta({
      description: "Replicas per partition; the broker's default.replication.factor when absent.",
    }),
  })
  .meta({ description: 'Settings of topics the replicator creates.' });

export const kafkaSchema = z
  .strictObject({
    brokers: brokersSchema,
    topicPrefix: topicPrefixSchema.default(CONFIG_DEFAULTS.topicPrefix),
    clientId: nonEmptyString('clientId').optional(),
    topics: topicsSchema.prefault({}),
    tls: tlsSchema.optional(),
    sasl: saslSchema.optional(),
  })
  .meta({
    description: 'Kafka, shared by every region unless a region overrides brokers or clientId.',
  });

/**
 * A region's partial Kafka override (e.g. its own cluster). `topicPrefix` is
 * deliberately absent: topic names must be computed identically by every
 * region, or appliers would subscribe to topics nobody writes.
 */
export const regionKafkaSchema = z
  .strictObject({
    brokers: brokersSchema.optional(),
    clientId: nonEmptyString('clientId').optional(),
    tls: tlsSchema.optional().meta({ description: "This region's Kafka TLS; replaces kafka.tls." }),
    sasl: saslSchema
      .optional()
      .meta({ description: "This region's Kafka credentials; replace kafka.sasl." }),
    topicPrefix: z
      .never({
        error: 'topicPrefix must be the same for every region: set it in the top-level kafka block',
      })
      .optional(),
  })
  .meta({
    description:
      "This region's own Kafka brokers or client id; topicPrefix is shared and cannot be overridden.",
  });

/** Tuning of the capture stage (binlog → Kafka). */
export const captureSchema = z
  .strictObject({
    serverId: z.number().int().min(1).max(4_294_967_295).optional().meta({
      description:
        'server_id the binlog reader presents to MySQL; must differ from every server and replica. Derived from the region name when absent.',
    }),
    maxInFlightBytes: z
      .number()
      .int()
      .min(1024 * 1024)
      .default(CONFIG_DEFAULTS.captureMaxInFlightBytes)
      .meta({
        description:
          'Bytes of captured changes not yet acknowledged by Kafka; reading the binlog pauses when reached.',
      }),
    batchMaxMessages: z
      .number()
      .int()
      .min(1)
      .max(100_000)
      .default(CONFIG_DEFAULTS.captureBatchMaxMessages),
    lingerMs: z.number().int().min(0).max(10_000).default(CONFIG_DEFAULTS.captureLingerMs),
    compression: z.enum(['none', 'gzip']).default(CONFIG_DEFAULTS.captureCompression),
    envelope: z
      .union([z.literal(1), z.literal(2)])
      .default(CONFIG_DEFAULTS.captureEnvelope)
      .meta({
        description:
          'Envelope version of published changes: 2 packs the rows of one table and partition into one message with positional columns (docs/ARCHITECTURE.md, "Envelope v2"); 1 is one JSON object per row. Appliers read both. While a fleet is upgraded from a release that reads only v1, keep 1 until every region runs this one.',
      }),
    checkpointIntervalMs: z
      .number()
      .int()
      .min(0)
      .max(600_000)
      .default(CONFIG_DEFAULTS.captureCheckpointIntervalMs),
    schemaCheckIntervalMs: z
      .number()
      .int()
      .min(0)
      .max(3_600_000)
      .default(CONFIG_DEFAULTS.captureSchemaCheckIntervalMs)
      .meta({
        description:
          'How often capture checks that every replicated table still has its triggers and version columns, and repairs what is missing (changes made without DDL in the binlog, e.g. with sql_log_bin=0). DDL seen in the binlog is repaired at once either way. 0 turns the periodic check off.',
      }),
    lease: z
      .strictObject({
        ttlMs: z
          .number()
          .int()
          .min(500)
          .max(600_000)
          .default(CONFIG_DEFAULTS.captureLeaseTtlMs)
          .meta({
            description:
              'Lifetime of the capture lease in Redis: a standby takes over within this long after the holder dies.',
          }),
        renewIntervalMs: z.number().int().min(50).optional().meta({
          description: 'How often the holder renews; a third of ttlMs when absent, at most half.',
        }),
      })
      .superRefine((lease, ctx) => {
        if (lease.renewIntervalMs !== undefined && lease.renewIntervalMs * 2 > lease.ttlMs) {
          ctx.addIssue({
            code: 'custom',
            path: ['renewIntervalMs'],
            message: `must be at most half of ttlMs (${lease.ttlMs}), so one late renewal does not lose the lease`,
          });
        }
      })
      .prefault({})
      .meta({
        description:
          'Several daemons may serve a region: one captures under this Redis lease, the others stand by. Needs the redis block.',
      }),
  })
  .meta({ description: 'Capture stage tuning.' });

/** Tuning of the apply stage (Kafka → local MySQL). */
export const applySchema = z
  .strictObject({
    batchMaxEvents: z
      .number()
      .int()
      .min(1)
      .max(50_000)
      .default(CONFIG_DEFAULTS.applyBatchMaxEvents),
    partitionsConcurrently: z
      .number()
      .int()
      .min(1)
      .max(64)
      .default(CONFIG_DEFAULTS.applyPartitionsConcurrently),
    maxClockSkewMs: z.number().int().min(0).default(CONFIG_DEFAULTS.applyMaxClockSkewMs).meta({
      description:
        'Incoming versions further ahead of local time are still applied, but counted and logged.',
    }),
    conflictSampleRate: z.number().min(0).max(1).default(1).meta({
      description: 'Share of concurrent conflicts recorded in _cdc_conflicts (all are counted).',
    }),
    conflictRetentionHours: z.number().min(0).default(CONFIG_DEFAULTS.applyConflictRetentionHours),
    tombstoneHorizonHours: z
      .number()
      .positive()
      .default(CONFIG_DEFAULTS.applyTombstoneHorizonHours)
      .meta({
        description:
          'Tombstones older than this are purged. Must exceed the longest replication delay, i.e. Kafka retention.',
      }),
    purgeIntervalMs: z.number().int().min(1000).default(CONFIG_DEFAULTS.applyPurgeIntervalMs),
    holdRecheckIntervalMs: z.number().int().min(100).default(1000).meta({
      description:
        'While events are held for schema skew (a column, table or wider type this region lacks yet), how often the local schema is read again and the held partitions retried.',
    }),
    topicDiscoveryIntervalMs: z.number().int().min(500).default(5000).meta({
      description:
        'How often the appliers look for new change topics of `schema.*` pipelines (a table created in another region); new topics are read from their first event.',
    }),
  })
  .meta({ description: 'Apply stage tuning.' });

/** How the replicator follows schema changes made region by region (DESIGN.md §6a). */
export const schemaChangesSchema = z
  .strictObject({
    autoAddColumns: z.boolean().default(false).meta({
      description:
        "When an event names a column this region does not have yet, the applier adds it itself (nullable, with the source column's type, ALGORITHM=INSTANT where the server allows it) instead of holding the table until an operator runs the ALTER here. Capture then also sends each column's type with every event. Off by default: a region's schema changes only by its own DDL.",
    }),
  })
  .meta({ description: 'Schema changes while replicating.' });

/** What the daemon does about a Redis that can lose checkpoint keys (checked at start, then every minute). */
const redisDurabilitySchema = z.enum(['warn', 'fatal', 'ignore'], {
  error: 'durability must be "warn", "fatal" or "ignore"',
});
const redisDurabilityDescription =
  'A Redis that can lose checkpoints (no AOF or RDB persistence, an allkeys-* eviction policy, checkpoint keys with a TTL): warn logs it; fatal also keeps /readyz failing, naming the problem, until fixed; ignore skips the check.';

/** The top-level Redis block. Without it, checkpoints go to a local file store under `stateDir`. */
export const redisSchema = z
  .strictObject({
    url: redisUrlSchema,
    keyPrefix: redisKeyPrefixSchema.default(CONFIG_DEFAULTS.redisKeyPrefix),
    tls: tlsSchema.optional().meta({
      description: 'Certificates for a rediss:// url (a rediss:// url alone uses the system CAs).',
    }),
    durability: redisDurabilitySchema
      .default(CONFIG_DEFAULTS.redisDurability)
      .meta({ description: redisDurabilityDescription }),
  })
  .meta({
    description:
      'Redis for checkpoints and leases. Without it, a local file store under stateDir is used.',
  });

/** A region's partial Redis override. */
export const regionRedisSchema = z
  .strictObject({
    url: redisUrlSchema.optional(),
    keyPrefix: redisKeyPrefixSchema.optional(),
    tls: tlsSchema.optional().meta({ description: "This region's Redis TLS; replaces redis.tls." }),
    durability: redisDurabilitySchema
      .optional()
      .meta({ description: `This region's redis.durability. ${redisDurabilityDescription}` }),
  })
  .meta({ description: "This region's own Redis url or key prefix." });

/** Where `/metrics`, `/healthz` and `/readyz` are served. */
export const metricsSchema = z
  .strictObject({
    port: portSchema(0).prefault(CONFIG_DEFAULTS.metricsPort),
    host: metricsHostSchema.default(CONFIG_DEFAULTS.metricsHost),
  })
  .meta({ description: 'Address of /metrics, /healthz and /readyz.' });

/** A region's partial metrics override, e.g. `{ port: 9465 }` when daemons share a machine. */
export const regionMetricsSchema = z
  .strictObject({
    port: portSchema(0).optional(),
    host: metricsHostSchema.optional(),
    url: z
      .url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })
      .optional()
      .meta({
        description:
          "Where `cdc-replicator status` reaches this region's daemon (e.g. behind a load balancer); http://<host>:<port> when absent.",
      }),
  })
  .meta({
    description: "This region's metrics address, e.g. { port: 9465 } when daemons share a machine.",
  });

/** Heartbeats, lag thresholds and the lag anomaly detector (DESIGN.md §7). */
export const monitorSchema = z
  .strictObject({
    heartbeatIntervalMs: z
      .number()
      .int()
      .min(50)
      .max(60_000)
      .default(CONFIG_DEFAULTS.heartbeatIntervalMs)
      .meta({ description: 'How often the daemon writes its heartbeat row.' }),
    lagThresholdSeconds: z.number().positive().default(CONFIG_DEFAULTS.lagThresholdSeconds).meta({
      description:
        'End-to-end lag above which /readyz fails and `status` exits non-zero, per region pair.',
    }),
    sampleIntervalMs: z
      .number()
      .int()
      .min(100)
      .max(60_000)
      .default(CONFIG_DEFAULTS.monitorSampleIntervalMs)
      .meta({
        description: 'How often lag, consumer lag, capture position and dependencies are sampled.',
      }),
    anomaly: z
      .strictObject({
        enabled: z.boolean().default(true),
      })
      .prefault({})
      .meta({
        description:
          'Flags lag or throughput that departs from its own recent normal (cdc_lag_anomaly).',
      }),
  })
  .meta({ description: 'Heartbeats, lag threshold and anomaly detection.' });

/** One region: its MySQL primary and optional overrides of the shared blocks. */
export const regionSchema = z
  .strictObject({
    mysql: mysqlSchema,
    kafka: regionKafkaSchema.optional(),
    redis: regionRedisSchema.optional(),
    metrics: regionMetricsSchema.optional(),
  })
  .meta({
    description:
      'One region: its MySQL primary and optional overrides of kafka, redis and metrics.',
  });

/** Regions by name; names must be safe in topic names, Redis keys and labels. At least one. */
export const regionsSchema = z
  .record(regionNameSchema, regionSchema)
  .refine((regions) => Object.keys(regions).length > 0, {
    error: 'at least one region is required',
  })
  .meta({
    description:
      'Every region, by name. The daemon serves the one chosen with --region (or CDC_REGION).',
    minProperties: 1,
  });

/**
 * How concurrent writes to the same row are resolved. `lww` keeps the larger
 * `(hlc, origin)`; `region-priority` lets the earlier region in `priority` win
 * and needs every region ranked, so no pair of regions is left undecided.
 */
export const conflictSchema = z
  .strictObject({
    strategy: z
      .enum(['lww', 'region-priority'], {
        error: 'strategy must be "lww" or "region-priority"',
      })
      .default(CONFIG_DEFAULTS.conflictStrategy),
    priority: z
      .array(regionNameSchema)
      .min(1, { error: 'priority must list at least one region' })
      .optional(),
  })
  .superRefine((conflict, ctx) => {
    if (conflict.strategy === 'lww' && conflict.priority !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['priority'],
        message: 'priority is only allowed with strategy "region-priority"',
      });
    }
    if (conflict.strategy === 'region-priority' && conflict.priority === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['priority'],
        message: 'strategy "region-priority" needs a priority list of regions, highest first',
      });
    }
    const seen = new Set<string>();
    conflict.priority?.forEach((region, index) => {
      if (seen.has(region)) {
        ctx.addIssue({
          code: 'custom',
          path: ['priority', index],
          message: `region ${JSON.stringify(region)} is listed twice`,
        });
      }
      seen.add(region);
    });
  });

/**
 * An extra output of a pipeline's captured changes, next to the replication
 * topics: `debezium` publishes each change in Debezium's JSON envelope to
 * `<topicPrefix>.<db>.<table>` (docs/DEBEZIUM.md), for Kafka Connect sinks,
 * Flink CDC's `debezium-json` format, ksqlDB and other Debezium consumers.
 */
export const outputSchema = z
  .strictObject({
    format: z.literal('debezium', { error: 'format must be "debezium"' }).meta({
      description: "The envelope of the extra topics; only Debezium's JSON envelope for now.",
    }),
    topicPrefix: z
      .string()
      .regex(/^[A-Za-z0-9._-]+$/, {
        error: 'topicPrefix may only contain letters, digits, ".", "_" and "-"',
      })
      .meta({
        description:
          "Debezium's `topic.prefix`: topics are `<topicPrefix>.<db>.<table>` and `source.name` carries it. Must differ from kafka.topicPrefix and not start with it followed by a dot.",
      }),
    schemas: z.boolean().default(false).meta({
      description:
        'Embed the Kafka Connect schema in key and value (`{schema, payload}`, like `schemas.enable=true`); off: the payload only.',
    }),
    tombstones: z.boolean().default(true).meta({
      description:
        "After each delete event, a tombstone (same key, null value) for log compaction, like Debezium's `tombstones.on.delete`.",
    }),
    decimalHandling: z
      .enum(['precise', 'string'], { error: 'decimalHandling must be "precise" or "string"' })
      .default('precise')
      .meta({
        description:
          "Debezium's `decimal.handling.mode`: `precise` (base64 of the unscaled big-endian two's-complement integer, Connect's Decimal) or `string`.",
      }),
  })
  .meta({ description: 'An extra output of the pipeline (Debezium-compatible change topics).' });

/** A set of tables replicated together with one conflict strategy. */
export const pipelineSchema = z
  .strictObject({
    name: pipelineNameSchema,
    tables: z
      .array(tablePatternSchema)
      .min(1, { error: 'must list at least one table ("schema.table" or "schema.*")' }),
    conflict: conflictSchema.prefault({}),
    output: outputSchema.optional(),
  })
  .meta({ description: 'Tables replicated together with one conflict strategy.' });

/**
 * Words `residency.default` gives a meaning of its own, so no zone may be
 * named after them.
 */
export const RESERVED_ZONE_NAMES: readonly string[] = ['all', 'none'];

/** A zone name: used in topic names (`<prefix>-zone-<zone>`), so as restricted as region names. */
export const zoneNameSchema = z
  .string()
  .regex(NAME_PATTERN, {
    error: `zone names must start with a lowercase letter and use only a-z, 0-9, "_" and "-" (at most ${NAME_MAX_LENGTH} characters)`,
    abort: true,
  })
  .max(NAME_MAX_LENGTH, { error: `zone names must be at most ${NAME_MAX_LENGTH} characters` })
  .refine((name) => !RESERVED_ZONE_NAMES.includes(name), {
    error: (issue) =>
      `${JSON.stringify(issue.input)} is reserved (residency.default: all | none | <zone>)`,
  });

/** A policy name: a metric label and part of audit records. */
export const policyNameSchema = z
  .string()
  .regex(NAME_PATTERN, {
    error: `policy names must start with a lowercase letter and use only a-z, 0-9, "_" and "-" (at most ${NAME_MAX_LENGTH} characters)`,
    abort: true,
  })
  .max(NAME_MAX_LENGTH, { error: `policy names must be at most ${NAME_MAX_LENGTH} characters` });

/** A governed table: one `schema.table`, never a pattern (its columns are named by the policy). */
export const governedTableSchema = tablePatternSchema.refine((value) => !value.endsWith('.*'), {
  error: (issue) =>
    `${JSON.stringify(issue.input)}: a policy names its tables one by one (its columns are those of each table)`,
});

/** A MySQL column name as a policy writes it. */
const columnNameSchema = z
  .string()
  .min(1, { error: 'column names must not be empty' })
  .max(64, { error: 'column names are at most 64 characters' });

/** The smallest HMAC key accepted: shorter keys make the hashes of short values guessable. */
export const HMAC_KEY_MIN_BYTES = 16;

/**
 * One masking mode: `nullify`, or a mapping with exactly one of `hmac`,
 * `redact`, `truncate`. Written as one mapping with optional keys (rather
 * than a union of mappings) so a mistake inside one mode is reported at its
 * key, not as "none of the options matched".
 */
const maskObjectSchema = z
  .strictObject({
    hmac: z
      .strictObject({
        key: z
          .string()
          .refine((key) => Buffer.byteLength(key, 'utf8') >= HMAC_KEY_MIN_BYTES, {
            error: `the key must be at least ${HMAC_KEY_MIN_BYTES} bytes; write "\${VAR}" to keep it out of the file`,
          })
          .transform((key) => new Secret(key))
          .meta({
            description: `HMAC-SHA256 key (its UTF-8 bytes), at least ${HMAC_KEY_MIN_BYTES} bytes. Write "\${VAR}": it is a secret and never logged.`,
          }),
      })
      .optional()
      .meta({
        description:
          'Lowercase hex HMAC-SHA256 of the canonical text of the value (docs/GOVERNANCE.md); needs a column of at least 64 characters.',
      }),
    redact: z
      .string()
      .optional()
      .meta({ description: 'This literal in place of every non-NULL value.' }),
    truncate: z
      .int({ error: 'truncate must be a whole number of characters' })
      .min(1, { error: 'truncate must be at least 1 (use redact: "" for an empty value)' })
      .optional()
      .meta({
        description: 'The first n characters of a character column (bytes of a binary column).',
      }),
  })
  .superRefine((mask, ctx) => {
    const modes = (['hmac', 'redact', 'truncate'] as const).filter((m) => mask[m] !== undefined);
    if (modes.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        path: [],
        message:
          modes.length === 0
            ? 'a mask is nullify, { hmac: { key } }, { redact: "text" } or { truncate: n }'
            : `give one mode per column, not ${modes.join(' and ')}`,
      });
    }
  });

export const maskSchema = z
  .union([z.literal('nullify'), maskObjectSchema], {
    error: 'a mask is nullify, { hmac: { key } }, { redact: "text" } or { truncate: n }',
  })
  .meta({ description: 'How the column is masked for regions that may hold the row masked.' });

/** A value a residency rule matches: a string, an integer, or null for SQL NULL. */
const residencyValueSchema = z.union([z.string(), z.int(), z.null()], {
  error: 'residency values are strings, integers or null',
});

export const residencyRuleSchema = z
  .strictObject({
    in: z.array(residencyValueSchema).min(1, { error: 'in must list at least one value' }).meta({
      description:
        'Values of the residency column this rule decides; compared exactly (case-sensitive). null matches SQL NULL.',
    }),
    zone: zoneNameSchema.meta({ description: 'The zone whose regions hold these rows plainly.' }),
    masked: z
      .union([z.literal('all'), z.array(regionNameSchema)], {
        error: 'masked is a list of regions or "all"',
      })
      .optional()
      .meta({
        description:
          'Regions outside the zone that hold these rows masked; "all": every other region. Others hold nothing.',
      }),
  })
  .meta({
    description: 'Rows whose residency value is listed: plain in the zone, masked where listed.',
  });

export const residencySchema = z
  .strictObject({
    column: columnNameSchema
      .optional()
      .meta({ description: 'The column whose value decides where a row may live.' }),
    rules: z.array(residencyRuleSchema).default([]).meta({
      description: 'Checked in order; a value may be listed by one rule only.',
    }),
    default: z
      .string({ error: 'default must be "all", "none" or a zone name' })
      .min(1, { error: 'default must be "all", "none" or a zone name' })
      .meta({
        description:
          'Rows no rule matches: "all" (every region, plain), "none" (no region) or a zone (plain there, nowhere else).',
      }),
  })
  .superRefine((residency, ctx) => {
    if (residency.rules.length > 0 && residency.column === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['column'],
        message: 'rules need the residency column they match on',
      });
    }
    if (residency.rules.length === 0 && residency.column !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['rules'],
        message: 'a residency column without rules decides nothing: add rules or remove column',
      });
    }
  })
  .meta({ description: 'Where rows may live, as a function of one column of the row.' });

export const policySchema = z
  .strictObject({
    name: policyNameSchema,
    tables: z
      .array(governedTableSchema)
      .min(1, { error: 'must list at least one table (schema.table)' }),
    residency: residencySchema,
    masking: z.record(columnNameSchema, maskSchema).default({}).meta({
      description:
        'Column → mask, applied in the origin region for regions that hold rows masked. Key and residency columns cannot be masked.',
    }),
  })
  .meta({ description: 'Residency and masking of some tables.' });

/** The `governance:` section (docs/GOVERNANCE.md). Cross-field rules: config/governance-rules.ts. */
export const governanceSchema = z
  .strictObject({
    preview: z.boolean().default(false).meta({
      description:
        'Accepted and ignored: earlier versions enforced policies only in part and started run, prepare, snapshot and bootstrap only with preview: true (docs/GOVERNANCE.md, "Status"). Kept so that those files still load.',
    }),
    zones: z
      .record(
        zoneNameSchema,
        z.array(regionNameSchema).min(1, { error: 'a zone lists at least one region' }),
      )
      .default({})
      .meta({ description: 'Named sets of regions, e.g. { eu: [eu-west, eu-central] }.' }),
    policies: z.array(policySchema).default([]),
  })
  .meta({
    description:
      'Data governance: per-row residency and per-region masking of some tables (docs/GOVERNANCE.md).',
  });

/** The whole file. Cross-field rules are checked by `validateConfig` in validate.ts. */
export const configSchema = z
  .strictObject({
    regions: regionsSchema,
    kafka: kafkaSchema,
    redis: redisSchema.optional(),
    stateDir: nonEmptyString('stateDir').default(CONFIG_DEFAULTS.stateDir).meta({
      description:
        'Directory of the local file checkpoint store (used when no redis block is set), relative to the configuration file.',
    }),
    capture: captureSchema.prefault({}),
    apply: applySchema.prefault({}),
    schema: schemaChangesSchema.prefault({}),
    internalSchema: z
      .string()
      .regex(/^[A-Za-z0-9_]{1,64}$/, { error: 'must be a schema name of letters, digits and "_"' })
      .default(CONFIG_DEFAULTS.internalSchema)
      .meta({
        description:
          "Schema holding the replicator's own tables (_cdc_tombstones, _cdc_apply_marker, _cdc_heartbeat, _cdc_conflicts) in every region.",
      }),
    pipelines: z.array(pipelineSchema).min(1, { error: 'at least one pipeline is required' }),
    metrics: metricsSchema.prefault({}),
    monitor: monitorSchema.prefault({}),
    governance: governanceSchema.optional(),
  })
  .meta({ title: 'cdc-replicator configuration' });

/** The file as written (after `${VAR}` expansion): optional fields may be absent. */
export type ConfigInput = z.input<typeof configSchema>;
/** The file after validation: defaults applied, secrets wrapped in {@link Secret}. */
export type ValidatedConfig = z.output<typeof configSchema>;
/** One validated region, overrides not yet merged (see `compileRegion`). */
export type RegionConfig = z.output<typeof regionSchema>;
/** A validated MySQL block; the password is a {@link Secret}. */
export type MysqlConfig = z.output<typeof mysqlSchema>;
/** One validated pipeline, table patterns still as written. */
export type PipelineConfig = z.output<typeof pipelineSchema>;
/** A validated TLS block. */
export type TlsConfig = z.output<typeof tlsSchema>;
/** The validated `governance:` section; hmac keys are {@link Secret}s. */
export type GovernanceConfig = z.output<typeof governanceSchema>;
/** A validated SASL block; the password (if inline) is a {@link Secret}. */
export type SaslConfig = z.output<typeof saslSchema>;
