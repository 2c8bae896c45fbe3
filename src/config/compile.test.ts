import { ConfigError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import {
  compileAllRegions,
  compileRegion,
  isSchemaChangeHelperTable,
  parseTablePattern,
  tableMatches,
} from './compile.js';
import { parseConfig } from './load.js';

/** DESIGN.md §8, plus the overrides that let two daemons share a machine and a region-only Kafka. */
const DESIGN_EXAMPLE = `regions:
  us-east:
    mysql: { host: 127.0.0.1, port: 3307, user: root, password: "" }
  eu-west:
    mysql: { host: 127.0.0.1, port: 3308, user: root, password: "\${EU_PW}" }
    metrics: { port: 9465 }
    kafka: { brokers: ["kafka-eu-1:9092", "kafka-eu-2:9092"] }
kafka: { brokers: ["127.0.0.1:9092"], topicPrefix: cdc }
redis: { url: "redis://127.0.0.1:6379" }                   # optional: file store otherwise
pipelines:
  - name: app
    tables: ["app.users", "app.orders"]   # "app.*" for a whole schema
    conflict: { strategy: lww }
  - name: billing
    tables: ["billing.*"]
    conflict: { strategy: region-priority, priority: [eu-west, us-east] }
metrics: { port: 9464 }
`;

/** Matches any Secret; typed `unknown` because jest's asymmetric matchers are `any`. */
const anySecret: unknown = expect.any(Secret);

const config = parseConfig(DESIGN_EXAMPLE, { env: { EU_PW: 'eu-secret' } });

describe('compileRegion', () => {
  it('merges the shared blocks with the region overrides', () => {
    const options = compileRegion(config, 'eu-west');
    expect(options).toEqual({
      region: 'eu-west',
      peers: ['us-east'],
      mysql: { host: '127.0.0.1', port: 3308, user: 'root', password: anySecret },
      kafka: {
        brokers: ['kafka-eu-1:9092', 'kafka-eu-2:9092'],
        topicPrefix: 'cdc',
        clientId: 'cdc-replicator-eu-west',
        topics: { partitions: 3, replicationFactor: undefined },
      },
      checkpointStore: {
        kind: 'redis',
        url: anySecret,
        keyPrefix: 'cdc:eu-west:',
        durability: 'warn',
      },
      metrics: { host: '0.0.0.0', port: 9465, url: 'http://127.0.0.1:9465' },
      peerMetricsUrls: { 'us-east': 'http://127.0.0.1:9464' },
      monitor: {
        heartbeatIntervalMs: 1000,
        lagThresholdSeconds: 30,
        sampleIntervalMs: 1000,
        anomalyDetection: true,
      },
      pipelines: [
        {
          name: 'app',
          tables: [
            { schema: 'app', table: 'users' },
            { schema: 'app', table: 'orders' },
          ],
          conflict: { strategy: 'lww' },
        },
        {
          name: 'billing',
          tables: [{ schema: 'billing', table: '*' }],
          conflict: { strategy: 'region-priority', priority: ['eu-west', 'us-east'] },
        },
      ],
      capture: {
        serverId: expect.any(Number) as unknown,
        maxInFlightBytes: 8 * 1024 * 1024,
        batchMaxMessages: 2000,
        lingerMs: 5,
        compression: 'none',
        envelope: 2,
        checkpointIntervalMs: 500,
        schemaCheckIntervalMs: 30_000,
        lease: { ttlMs: 10_000, renewIntervalMs: 3_333 },
      },
      apply: {
        batchMaxEvents: 1000,
        partitionsConcurrently: 3,
        maxClockSkewMs: 5000,
        conflictSampleRate: 1,
        conflictRetentionMs: 168 * 3_600_000,
        tombstoneHorizonMs: 168 * 3_600_000,
        purgeIntervalMs: 60_000,
        holdRecheckIntervalMs: 1000,
        topicDiscoveryIntervalMs: 5000,
      },
      schema: { autoAddColumns: false },
      internalSchema: '_cdc',
    });
    expect(options.capture.serverId).toBeGreaterThanOrEqual(4_000_000_000);
    expect(options.capture.serverId).toBe(compileRegion(config, 'eu-west').capture.serverId);
    expect(options.mysql.password.reveal()).toBe('eu-secret');
    expect(options.checkpointStore.kind === 'redis' && options.checkpointStore.url.reveal()).toBe(
      'redis://127.0.0.1:6379',
    );
  });

  it('adds missing columns only when schema.autoAddColumns is set', () => {
    expect(compileRegion(config, 'us-east').schema.autoAddColumns).toBe(false);
    const on = parseConfig(`${DESIGN_EXAMPLE}schema: { autoAddColumns: true }\n`, {
      env: { EU_PW: 'eu-secret' },
    });
    expect(compileRegion(on, 'us-east').schema).toEqual({ autoAddColumns: true });
  });

  it('falls back to the shared blocks for a region without overrides', () => {
    const options = compileRegion(config, 'us-east');
    expect(options.kafka).toEqual({
      brokers: ['127.0.0.1:9092'],
      topicPrefix: 'cdc',
      clientId: 'cdc-replicator-us-east',
      topics: { partitions: 3, replicationFactor: undefined },
    });
    expect(options.metrics).toEqual({ host: '0.0.0.0', port: 9464, url: 'http://127.0.0.1:9464' });
    expect(options.mysql.password.isEmpty).toBe(true);
    expect(options.peers).toEqual(['eu-west']);
  });

  it('applies defaults and uses a per-region file store without redis', () => {
    const minimal = parseConfig(`regions:
  solo:
    mysql: { host: db, user: cdc, password: "", database: app }
kafka: { brokers: ["k:9092"], clientId: shared-client }
stateDir: state
pipelines:
  - { name: app, tables: [app.*] }
`);
    expect(compileRegion(minimal, 'solo', { baseDir: '/etc/cdc' })).toMatchObject({
      region: 'solo',
      peers: [],
      mysql: { host: 'db', port: 3306, user: 'cdc', password: anySecret, database: 'app' },
      kafka: { brokers: ['k:9092'], topicPrefix: 'cdc', clientId: 'shared-client' },
      checkpointStore: { kind: 'file', dir: '/etc/cdc/state/solo' },
      metrics: { host: '0.0.0.0', port: 9464, url: 'http://127.0.0.1:9464' },
      peerMetricsUrls: {},
      pipelines: [
        { name: 'app', tables: [{ schema: 'app', table: '*' }], conflict: { strategy: 'lww' } },
      ],
    });
    expect(compileRegion(minimal, 'solo').checkpointStore).toEqual({
      kind: 'file',
      dir: 'state/solo',
    });
  });

  it('derives the status url from the metrics address unless the region sets one', () => {
    const withUrls = parseConfig(`regions:
  a:
    mysql: { host: db, user: u, password: "" }
    metrics: { port: 9470, url: "https://cdc-a.example.internal:8443/" }
  b:
    mysql: { host: db, user: u, password: "" }
    metrics: { host: "10.0.0.7", port: 9471 }
kafka: { brokers: ["k:9092"] }
pipelines:
  - { name: app, tables: [app.users] }
`);
    expect(compileRegion(withUrls, 'a').metrics.url).toBe('https://cdc-a.example.internal:8443');
    expect(compileRegion(withUrls, 'b').metrics.url).toBe('http://10.0.0.7:9471');
  });

  it('lets one region use its own Redis with its own key prefix', () => {
    const mixed = parseConfig(`regions:
  a:
    mysql: { host: db, user: u, password: "" }
    metrics: { port: 0 }
  b:
    mysql: { host: db, user: u, password: "" }
    metrics: { port: 0 }
    redis: { url: "rediss://cache-b:6380", keyPrefix: team }
kafka: { brokers: ["k:9092"] }
pipelines:
  - { name: app, tables: [app.users] }
`);
    expect(compileRegion(mixed, 'a').checkpointStore).toEqual({
      kind: 'file',
      dir: '.cdc-state/a',
    });
    const store = compileRegion(mixed, 'b').checkpointStore;
    expect(store).toEqual({
      kind: 'redis',
      url: anySecret,
      keyPrefix: 'team:b:',
      durability: 'warn',
    });
    expect(store.kind === 'redis' && store.url.reveal()).toBe('rediss://cache-b:6380');
  });

  it('takes redis.durability from the region, else the shared block, else warn', () => {
    const durable = parseConfig(`regions:
  a:
    mysql: { host: db, user: u, password: "" }
  b:
    mysql: { host: db, user: u, password: "" }
    redis: { durability: ignore }
kafka: { brokers: ["k:9092"] }
redis: { url: "redis://cache:6379", durability: fatal }
pipelines:
  - { name: app, tables: [app.users] }
`);
    expect(compileRegion(durable, 'a').checkpointStore).toMatchObject({ durability: 'fatal' });
    expect(compileRegion(durable, 'b').checkpointStore).toMatchObject({ durability: 'ignore' });
    expect(() =>
      parseConfig(`regions: { a: { mysql: { host: db, user: u, password: "" } } }
kafka: { brokers: ["k:9092"] }
redis: { url: "redis://cache:6379", durability: strict }
pipelines: [{ name: app, tables: [app.users] }]
`),
    ).toThrow(/redis\.durability.*"warn", "fatal" or "ignore"/);
  });

  it('rejects an unknown region, naming the known ones', () => {
    let caught: unknown;
    try {
      compileRegion(config, 'ap-south');
    } catch (error: unknown) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).problems).toEqual([
      'region "ap-south" is not defined in the configuration (regions: us-east, eu-west)',
    ]);
  });

  it('does not treat inherited object properties as regions', () => {
    expect(() => compileRegion(config, 'toString')).toThrow(ConfigError);
  });
});

describe('compileAllRegions', () => {
  it('compiles every region in file order', () => {
    expect(compileAllRegions(config).map((options) => options.region)).toEqual([
      'us-east',
      'eu-west',
    ]);
  });
});

describe('table patterns', () => {
  it('parses and matches schema.table and schema.*', () => {
    const all = parseTablePattern('app.*');
    const users = parseTablePattern('app.users');
    expect(tableMatches(all, 'app', 'orders')).toBe(true);
    expect(tableMatches(all, 'other', 'orders')).toBe(false);
    expect(tableMatches(users, 'app', 'users')).toBe(true);
    expect(tableMatches(users, 'app', 'Users')).toBe(false);
    expect(() => parseTablePattern('app')).toThrow(ConfigError);
  });

  it('leaves the helper tables of gh-ost and pt-online-schema-change out of schema.*', () => {
    const all = parseTablePattern('app.*');
    for (const helper of [
      '_users_gho',
      '_users_ghc',
      '_users_del',
      '_users_20240101120000_del',
      '_users_new',
      '__users_new',
      '_users_old',
    ]) {
      expect(isSchemaChangeHelperTable(helper)).toBe(true);
      expect(tableMatches(all, 'app', helper)).toBe(false);
    }
    for (const table of ['users', 'users_old', '_users', 'new', '_new', 'users_gho'])
      expect(tableMatches(all, 'app', table)).toBe(true);
    // Named explicitly, a table is selected whatever its name.
    expect(tableMatches(parseTablePattern('app._users_old'), 'app', '_users_old')).toBe(true);
  });
});

describe('pipelines[].output', () => {
  const withOutput = (output: string) => `regions:
  us-east:
    mysql: { host: 127.0.0.1, user: root, password: "" }
kafka: { brokers: ["127.0.0.1:9092"] }
pipelines:
  - name: app
    tables: [app.users]
    output: ${output}
  - name: other
    tables: [other.*]
`;

  it('compiles a Debezium output with its defaults, only on the pipeline that has one', () => {
    const options = compileRegion(
      parseConfig(withOutput('{ format: debezium, topicPrefix: dbz }'), { env: {} }),
      'us-east',
    );
    expect(options.pipelines[0]?.output).toEqual({
      format: 'debezium',
      topicPrefix: 'dbz',
      schemas: false,
      tombstones: true,
      decimalHandling: 'precise',
    });
    expect(options.pipelines[1]).not.toHaveProperty('output');
  });

  it('refuses a prefix that would mix its topics with the replication topics', () => {
    for (const prefix of ['cdc', 'cdc.us-east']) {
      let problems: readonly string[] = [];
      try {
        parseConfig(withOutput(`{ format: debezium, topicPrefix: ${prefix} }`), { env: {} });
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        problems = error.problems;
      }
      expect(problems).toEqual([
        expect.stringMatching(
          /^pipelines\[0\]\.output\.topicPrefix \(line 8:\d+\): must differ from kafka\.topicPrefix "cdc"/,
        ),
      ]);
    }
  });

  it('reports a wrong format, a bad prefix and unknown keys with line and key path', () => {
    let problems: readonly string[] = [];
    try {
      parseConfig(
        withOutput('{ format: avro, topicPrefix: "a b", schemas: yes, decimal: string }'),
        { env: {} },
      );
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems = error.problems;
    }
    expect(problems).toEqual([
      expect.stringMatching(
        /^pipelines\[0\]\.output\.format \(line 8:\d+\): format must be "debezium"$/,
      ),
      expect.stringMatching(
        /^pipelines\[0\]\.output\.topicPrefix \(line 8:\d+\): topicPrefix may only/,
      ),
      expect.stringMatching(/^pipelines\[0\]\.output\.schemas \(line 8:\d+\): /),
      expect.stringMatching(/^pipelines\[0\]\.output\.decimal \(line 8:\d+\): /),
    ]);
  });
});
