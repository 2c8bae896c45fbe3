import { jest } from '@jest/globals';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import mysql from 'mysql2/promise';
import { topicName } from '../../../src/bus/envelope.js';
import { compileRegion, type RuntimeOptions } from '../../../src/config/compile.js';
import { parseConfig } from '../../../src/config/load.js';
import { Daemon } from '../../../src/daemon/daemon.js';
import { connectMysql } from '../../../src/mysql/connection.js';
import { applyPrepare, planPrepare } from '../../../src/prepare/prepare.js';
import { startSandbox, type Sandbox } from '../../../src/sandbox/index.js';
import { readTopics, type ReadMessage } from '../../support/kafka.js';
import {
  debeziumJdbcSinkClasspath,
  startKafkaConnect,
  type KafkaConnect,
} from '../../support/kafka-connect.js';
import { testLogger } from '../../support/logger.js';

// Kafka Connect's JVM start dominates; the first run also resolves the jars with Maven.
jest.setTimeout(600_000);

const PREFIX = 'dbzout';
const SOURCE_DB = 'dbz_src';
const SINK_DB = 'dbz_sink';

const ITEMS = `CREATE TABLE ${SOURCE_DB}.items (
  id INT PRIMARY KEY,
  name VARCHAR(50) CHARACTER SET utf8mb4,
  price DECIMAL(10,2),
  qty BIGINT,
  created DATETIME(6),
  day DATE,
  dur TIME(6),
  flag TINYINT,
  data VARBINARY(16),
  color ENUM('red','green','blue'),
  f DOUBLE,
  ts TIMESTAMP(6) NULL,
  dt0 DATETIME,
  yr YEAR,
  tags SET('x','y','z'),
  js JSON,
  bits BIT(8),
  b1 BIT(1)
)`;
const PAIRS = `CREATE TABLE ${SOURCE_DB}.pairs (a INT, b VARCHAR(10), v INT, PRIMARY KEY (a, b))`;

/**
 * The rows compared in source and sink. The sink creates its own column types
 * from the Connect schema (DATETIME(6) for a millisecond Timestamp, LONGTEXT
 * for Json): values are compared, not their display.
 */
const ITEM_COLUMNS =
  'id, name, price, qty, created, day, dur, flag, HEX(data) AS data, color, f, ts, CAST(dt0 AS DATETIME(6)) AS dt0, yr, tags, CAST(js AS CHAR) AS js, bits + 0 AS bits, b1 + 0 AS b1';

/**
 * Capture's Debezium-compatible output (pipelines[].output) fed to a real
 * Debezium consumer: Debezium's JDBC sink connector, run in Kafka Connect
 * standalone, upserting into (and deleting from) a second MariaDB server by
 * record key. The rows must arrive intact; the replicator's own applied
 * changes must not be published.
 */
describe('Debezium-compatible output into the Debezium JDBC sink', () => {
  let sandbox: Sandbox;
  let daemon: Daemon | undefined;
  let connect: KafkaConnect | undefined;
  let source: mysql.Connection;
  let sink: mysql.Connection;
  let options: RuntimeOptions;
  let classpath: Promise<string>;

  async function connection(index: number): Promise<mysql.Connection> {
    const m = sandbox.mysql[index]!;
    const db = await mysql.createConnection({
      host: m.host,
      port: m.port,
      user: m.user,
      password: m.password,
      dateStrings: true,
      timezone: 'Z',
      supportBigNumbers: true,
      bigNumberStrings: true,
      charset: 'utf8mb4_general_ci',
    });
    await db.query("SET time_zone = '+00:00'");
    return db;
  }

  beforeAll(async () => {
    // Maven resolves (or reads the cached) classpath while the services start.
    classpath = debeziumJdbcSinkClasspath();
    classpath.catch(() => {});
    sandbox = await startSandbox({ regions: ['us-east', 'sink'], redis: false });
    const m = sandbox.mysql[0]!;
    const yaml = [
      'regions:',
      `  us-east:`,
      `    mysql: { host: ${m.host}, port: ${m.port}, user: ${m.user}, password: "${m.password}" }`,
      `    metrics: { port: 0 }`,
      `kafka: { brokers: [${sandbox.kafka!.brokers.map((b) => `"${b}"`).join(', ')}], topicPrefix: dbzrepl }`,
      `stateDir: "${join(sandbox.dir, 'state')}"`,
      'pipelines:',
      '  - name: app',
      `    tables: ["${SOURCE_DB}.*"]`,
      `    output: { format: debezium, topicPrefix: ${PREFIX}, schemas: true }`,
    ].join('\n');
    options = compileRegion(parseConfig(yaml, { env: {} }), 'us-east');

    source = await connection(0);
    sink = await connection(1);
    await source.query(`CREATE DATABASE ${SOURCE_DB}`);
    await source.query(ITEMS);
    await source.query(PAIRS);
    await sink.query(`CREATE DATABASE ${SINK_DB}`);
    const admin = await connectMysql(options.mysql);
    await applyPrepare(admin, await planPrepare(admin, options, options.internalSchema));
    await admin.end();
    daemon = new Daemon({ options, logger: testLogger('debezium-output') });
    await daemon.start();
  });

  afterAll(async () => {
    await connect?.stop();
    await daemon?.stop();
    await source?.end();
    await sink?.end();
    await sandbox?.stop();
  });

  async function rows(db: mysql.Connection, sql: string): Promise<unknown[]> {
    const [result] = await db.query<mysql.RowDataPacket[]>(sql);
    return result.map((r) => ({ ...r }));
  }

  it('publishes Debezium envelopes that the JDBC sink applies: inserts, updates, deletes', async () => {
    // An applied change (the applier's marker in the transaction) is never published.
    await source.beginTransaction();
    await source.query(
      `INSERT INTO ${options.internalSchema}._cdc_apply_marker (applier, source_region, batches) VALUES ('test', 'eu-west', 1)`,
    );
    await source.query(`INSERT INTO ${SOURCE_DB}.items (id, name) VALUES (99, 'applied')`);
    await source.commit();

    // BIT of one byte: Debezium's Bits are little-endian, and the JDBC sink writes their bytes
    // unchanged into a BIT column, so a wider BIT arrives byte-swapped (docs/DEBEZIUM.md).
    // TIME within 00:00–24:00: the JDBC sink binds MicroTime as a LocalTime and fails on
    // negative or longer times (Debezium's own MicroTime values; see docs/DEBEZIUM.md).
    await source.query(
      `INSERT INTO ${SOURCE_DB}.items VALUES
        (1, 'ünïcödé 😀', 12.34, 9007199254740993, '2024-02-29 13:14:15.123456', '2024-02-29', '12:34:56.000001', -5, UNHEX('00FF10AB'), 'green', 1.5,
          '2038-01-19 03:14:07.999999', '2024-02-29 13:14:15', 2155, 'x,z', '{"a": [1, "😀"]}', b'10101010', b'1'),
        (2, 'two', -0.01, -42, '1969-12-31 23:59:59.999999', '1900-01-01', '23:59:59.999999', 127, UNHEX(''), 'red', -2.25e-10,
          '1970-01-01 00:00:01.000001', '1969-12-31 23:59:59', 1901, '', '[]', b'0', b'0'),
        (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
    );
    await source.query(
      `UPDATE ${SOURCE_DB}.items SET name = 'two, updated', price = 99999999.99 WHERE id = 2`,
    );
    await source.query(`DELETE FROM ${SOURCE_DB}.items WHERE id = 3`);
    await source.query(
      `INSERT INTO ${SOURCE_DB}.pairs VALUES (1, 'x', 10), (1, 'y', 11), (2, 'x', 12)`,
    );
    await source.query(`UPDATE ${SOURCE_DB}.pairs SET v = 20 WHERE a = 1 AND b = 'x'`);
    await source.query(`DELETE FROM ${SOURCE_DB}.pairs WHERE a = 1 AND b = 'y'`);

    // The raw topic: Debezium's naming, keys and envelope, a tombstone after the delete.
    const itemsTopic = `${PREFIX}.${SOURCE_DB}.items`;
    const pairsTopic = `${PREFIX}.${SOURCE_DB}.pairs`;
    const messages = await readTopics(
      sandbox.kafka!.brokers,
      [itemsTopic, pairsTopic],
      (m) =>
        m.filter((x) => x.topic === itemsTopic).length >= 6 &&
        m.filter((x) => x.topic === pairsTopic).length >= 6,
      60_000,
    );
    const items = messages.filter((m) => m.topic === itemsTopic);
    expect(items).toHaveLength(6); // 3 c, 1 u, 1 d, 1 tombstone; nothing for id 99
    const parsed = (m: ReadMessage) =>
      m.value === ''
        ? null
        : (JSON.parse(m.value) as {
            schema: { name: string };
            payload: {
              op: string;
              before: Record<string, unknown> | null;
              after: Record<string, unknown> | null;
              source: Record<string, unknown>;
              ts_ms: number;
            };
          });
    const keyOf = (m: ReadMessage) => (JSON.parse(m.key) as { payload: unknown }).payload;
    expect(items.map((m) => parsed(m)?.payload.op ?? 'tombstone').sort()).toEqual(
      ['c', 'c', 'c', 'd', 'tombstone', 'u'].sort(),
    );
    const forId3 = items.filter((m) => JSON.stringify(keyOf(m)) === '{"id":3}');
    expect(forId3.map((m) => parsed(m)?.payload.op ?? 'tombstone')).toEqual([
      'c',
      'd',
      'tombstone',
    ]);
    const first = parsed(items.find((m) => JSON.stringify(keyOf(m)) === '{"id":1}')!)!;
    expect(first.schema.name).toBe(`${PREFIX}.${SOURCE_DB}.items.Envelope`);
    expect(first.payload.source).toMatchObject({
      connector: 'mariadb',
      name: PREFIX,
      db: SOURCE_DB,
      table: 'items',
      snapshot: 'false',
      server_id: sandbox.mysql[0]!.serverId,
    });
    expect(first.payload.source.gtid).toMatch(/^\d+-\d+-\d+$/);
    expect(first.payload.after).toMatchObject({
      id: 1,
      day: 19782,
      dur: 45296000001,
      color: 'green',
      data: 'AP8Qqw==',
    });
    // Exact beyond 2^53 in the JSON text itself.
    expect(items.some((m) => m.value.includes('"qty":9007199254740993'))).toBe(true);
    expect(messages.some((m) => m.value.includes('applied'))).toBe(false);
    // The replication topic keeps its own envelope (no column types added for this output).
    const replicated = await readTopics(
      sandbox.kafka!.brokers,
      [topicName('dbzrepl', 'us-east', SOURCE_DB, 'items')],
      (m) => m.length >= 5,
      30_000,
    );
    expect(replicated.every((m) => !m.value.includes('"types"'))).toBe(true);

    // A real Debezium consumer: the JDBC sink upserts by record key and deletes.
    const m = sandbox.mysql[1]!;
    connect = await startKafkaConnect({
      dir: join(sandbox.dir, 'connect'),
      classpath: await classpath,
      brokers: sandbox.kafka!.brokers,
      worker: {
        'key.converter.schemas.enable': 'true',
        'value.converter.schemas.enable': 'true',
      },
      connector: {
        name: 'dbz-jdbc-sink',
        'connector.class': 'io.debezium.connector.jdbc.JdbcSinkConnector',
        'tasks.max': '1',
        topics: `${itemsTopic},${pairsTopic}`,
        'connection.url': `jdbc:mariadb://${m.host}:${m.port}/${SINK_DB}`,
        'connection.username': m.user,
        'connection.password': m.password,
        'insert.mode': 'upsert',
        'delete.enabled': 'true',
        'primary.key.mode': 'record_key',
        'schema.evolution': 'basic',
        'collection.name.format': '${source.table}',
        'use.time.zone': 'UTC',
      },
    });
    await connect.waitRunning(180_000);

    const expectedItems = await rows(
      source,
      `SELECT ${ITEM_COLUMNS} FROM ${SOURCE_DB}.items WHERE id <> 99 ORDER BY id`,
    );
    const expectedPairs = await rows(
      source,
      `SELECT a, b, v FROM ${SOURCE_DB}.pairs ORDER BY a, b`,
    );
    expect(expectedItems).toHaveLength(2);
    const deadline = Date.now() + 120_000;
    let actualItems: unknown[] = [];
    let actualPairs: unknown[] = [];
    for (;;) {
      try {
        actualItems = await rows(sink, `SELECT ${ITEM_COLUMNS} FROM ${SINK_DB}.items ORDER BY id`);
        actualPairs = await rows(sink, `SELECT a, b, v FROM ${SINK_DB}.pairs ORDER BY a, b`);
      } catch {
        // the sink has not created the tables yet
      }
      if (
        JSON.stringify(actualItems) === JSON.stringify(expectedItems) &&
        JSON.stringify(actualPairs) === JSON.stringify(expectedPairs)
      )
        break;
      const failure = await connect.failure();
      if (failure !== undefined) throw new Error(`the JDBC sink failed: ${failure}`);
      if (Date.now() > deadline) break;
      await sleep(1000);
    }
    if (JSON.stringify(actualItems) !== JSON.stringify(expectedItems))
      console.log(connect.logTail(6000));
    expect(actualItems).toEqual(expectedItems);
    expect(actualPairs).toEqual(expectedPairs);
  });
});
