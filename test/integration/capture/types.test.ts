import { jest } from '@jest/globals';
import mysql from 'mysql2/promise';
import type { ChangeEvent, RowImage } from '../../../src/bus/envelope.js';
import { topicName } from '../../../src/bus/envelope.js';
import { encodeRow } from '../../../src/capture/row-codec.js';
import { connectMysql } from '../../../src/mysql/connection.js';
import { applyPrepare, planPrepare } from '../../../src/prepare/prepare.js';
import { Daemon } from '../../../src/daemon/daemon.js';
import { startSandbox, type DatabaseEngine, type Sandbox } from '../../../src/sandbox/index.js';
import { sandboxRegionOptions } from '../../support/config.js';
import { changeEvents, readTopics } from '../../support/kafka.js';
import { testLogger } from '../../support/logger.js';
import { randomInt, seededRandom, testSeed } from '../../support/random.js';

// A fresh machine's first MySQL 8 run also fetches the server through Maven.
jest.setTimeout(300_000);

const TABLE = `CREATE TABLE types_db.all_types (
  id INT PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
  mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
  dec65 DECIMAL(65,30), f FLOAT, dbl DOUBLE,
  d DATE, tm TIME(6), dtm DATETIME(6), ts TIMESTAMP(6) NULL, yr YEAR,
  c CHAR(10) CHARACTER SET utf8mb4, vc VARCHAR(100) CHARACTER SET utf8mb4, vl VARCHAR(100) CHARACTER SET latin1,
  tx TEXT CHARACTER SET utf8mb4, bl BLOB, bn BINARY(4), vb VARBINARY(10),
  en ENUM('a','b','c'), st SET('x','y','z'), js JSON, bt BIT(10)
)`;

const COLUMNS =
  'id, ti, tiu, si, siu, mi, miu, i, iu, bi, biu, dec65, f, dbl, d, tm, dtm, ts, yr, c, vc, vl, tx, bl, bn, vb, en, st, js, bt';

const MAX_ROW = `(1, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295,
  9223372036854775807, 18446744073709551615,
  '12345678901234567890123456789012345.123456789012345678901234567890', 3.14, 1.7976931348623157e308,
  '9999-12-31', '838:59:59.000000', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999', 2155,
  'ab😀', 'emoji 😀 and ünïcödé', 'café ÿ', REPEAT('long text ✓ ', 50), UNHEX('00FF10AB'), UNHEX('0102'), UNHEX('00000001'),
  'c', 'x,z', '{"a": [1, 2.5, "x"], "big": 12345678901234567890, "s": "😀"}', b'1010101010')`;

const MIN_ROW = `(2, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0,
  -9223372036854775808, 0,
  '-12345678901234567890123456789012345.000000000000000000000000000001', -1.5e-38, -2.2250738585072014e-308,
  '1000-01-01', '-838:59:59.000000', '1000-01-01 00:00:00.000000', '1970-01-01 00:00:01.000001', 1901,
  '', '', '', '', '', UNHEX('00'), '', 'a', '', '[]', b'0')`;

const NULL_ROW = `(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`;

/**
 * JSON documents whose text a naive decoder of MySQL's binary JSON gets
 * wrong: integer-like keys (MySQL orders keys by length, then bytes;
 * JavaScript objects put integer keys first), a `__proto__` key, doubles
 * holding integers (`1.0`), exponents (`1e300`), 64-bit integers, DECIMAL
 * and temporal values inside a document, escapes, a document over 64 KiB
 * (MySQL's large object format). On MariaDB JSON is text and stays as
 * written; on MySQL the server normalises it, and the event must carry
 * exactly what MySQL returns.
 */
const JSON_DOCS: readonly string[] = [
  `'{"b": 1, "10": 2, "2": 3, "a": 4, "aa": 5, "__proto__": {"x": 1}, "constructor": 7}'`,
  `'[1.0, -0.0, 0.0, 1e300, 1e-7, 1.5e-16, 1e15, 1234567890123456.8, 0.1, 1.7976931348623157e308, 5e-324, 100.0]'`,
  `'[9007199254740993, -9223372036854775808, 18446744073709551615, 4294967296, -32769, 65535]'`,
  `JSON_QUOTE(CONCAT('a', CHAR(1 USING utf8mb4), 'b', CHAR(10 USING utf8mb4), CHAR(9 USING utf8mb4), '"', CHAR(92 USING utf8mb4), '/ é 😀', CHAR(31 USING utf8mb4)))`,
  `'{"k": {"nested": [{"z": 1, "y": [true, false, null]}]}, "": ""}'`,
  `JSON_ARRAY(CAST(1.50 AS DECIMAL(5,2)), CAST('-12345678901234567890.123456789' AS DECIMAL(65,30)), CAST(0 AS DECIMAL(3,1)))`,
  `JSON_OBJECT('d', CAST('2020-01-02' AS DATE), 't', CAST('-838:59:58.999999' AS TIME(6)), 'dt', CAST('2020-01-02 03:04:05.123456' AS DATETIME(6)))`,
  `JSON_OBJECT('big', REPEAT('y', 70000), 'n', -70000, 'k', 3000000000, 'f', 2.5e0)`,
  `'null'`,
  `'{}'`,
];

const PRECISIONS = [0, 1, 2, 3, 4, 5, 6] as const;

/** DATETIME and TIMESTAMP of every precision: capture formats their binlog bytes itself (binlog-temporal.ts). */
const TEMPORALS_TABLE = `CREATE TABLE types_db.temporals (id INT PRIMARY KEY, ${PRECISIONS.map(
  (n) => `dt${n} DATETIME(${n}), ts${n} TIMESTAMP(${n}) NULL`,
).join(', ')})`;

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/** A random DATETIME or TIMESTAMP literal of `n` fractional digits (TIMESTAMP: 1970-01-01 00:00:01 to 2038-01-19 03:14:07 UTC). */
function randomTemporal(random: () => number, n: number, timestamp: boolean): string {
  const fraction = n === 0 ? '' : `.${pad(randomInt(random, 0, 10 ** n - 1), n)}`;
  if (timestamp) {
    const at = new Date(randomInt(random, 1, 2 ** 31 - 1) * 1000);
    return `${at.toISOString().slice(0, 19).replace('T', ' ')}${fraction}`;
  }
  const text =
    `${pad(randomInt(random, 1000, 9999), 4)}-${pad(randomInt(random, 1, 12), 2)}-${pad(randomInt(random, 1, 28), 2)} ` +
    `${pad(randomInt(random, 0, 23), 2)}:${pad(randomInt(random, 0, 59), 2)}:${pad(randomInt(random, 0, 59), 2)}`;
  return `${text}${fraction}`;
}

/**
 * The exact value a reader compares: FLOAT arrives from the binlog as the
 * stored 32-bit value, which mysql2's text protocol prints shortest-form;
 * both are the same float32. Integers travel as numbers up to 2^53 and as
 * strings beyond; mysql2 gives strings for every BIGINT with bigNumberStrings.
 */
function comparable(column: string, value: RowImage[string]): unknown {
  if (value === null) return null;
  if (column === 'f') return Math.fround(Number(value));
  if (['bi', 'biu'].includes(column)) return String(value);
  return value;
}

function normalise(image: RowImage | null): Record<string, unknown> | null {
  if (image === null) return null;
  return Object.fromEntries(Object.entries(image).map(([k, v]) => [k, comparable(k, v)]));
}

/** The GTID an event carries: MariaDB `domain-server-seq`, MySQL `server_uuid:n`. */
const GTID: Record<DatabaseEngine, RegExp> = {
  mariadb: /^\d+-\d+-\d+$/,
  mysql8: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:\d+$/,
};

// MySQL 8.0.12 has no INVISIBLE columns: prepare adds the version columns as
// ordinary trailing ones there (--visible-version-columns), which capture
// recognises by name and never publishes; writes name their columns.
//
// MariaDB publishes envelope v1 (full before images, checked here too) and
// MySQL the default v2 (no before image of an update; a delete carries its row).
describe.each<[DatabaseEngine, 1 | 2]>([
  ['mariadb', 1],
  ['mysql8', 2],
])('capture on %s (envelope v%s): every column type round-trips exactly', (engine, envelope) => {
  let sandbox: Sandbox;
  let daemon: Daemon;
  let db: mysql.Connection;

  beforeAll(async () => {
    sandbox = await startSandbox({ regions: [{ name: 'us-east', engine }], redis: true });
    const { options } = sandboxRegionOptions(sandbox, 'us-east', {
      tables: ['types_db.all_types', 'types_db.json_docs', 'types_db.temporals'],
      topicPrefix: 'types',
    });
    db = await mysql.createConnection({
      host: options.mysql.host,
      port: options.mysql.port,
      user: options.mysql.user,
      password: options.mysql.password.reveal(),
      dateStrings: true,
      timezone: 'Z',
      supportBigNumbers: true,
      bigNumberStrings: true,
      jsonStrings: true,
      charset: 'utf8mb4_general_ci',
    });
    await db.query("SET time_zone = '+00:00'");
    await db.query('CREATE DATABASE types_db');
    await db.query(TABLE);
    await db.query('CREATE TABLE types_db.json_docs (id INT PRIMARY KEY, js JSON)');
    await db.query(TEMPORALS_TABLE);
    const admin = await connectMysql(options.mysql);
    await applyPrepare(
      admin,
      await planPrepare(admin, options, options.internalSchema, {
        visibleVersionColumns: engine === 'mysql8',
      }),
    );
    await admin.end();
    daemon = new Daemon({
      options: { ...options, capture: { ...options.capture, envelope } },
      logger: testLogger('types'),
    });
    await daemon.start();
  });

  afterAll(async () => {
    await daemon?.stop();
    await db?.end();
    await sandbox?.stop();
  });

  async function select(id: number): Promise<RowImage> {
    const [rows] = await db.query<mysql.RowDataPacket[]>(
      `SELECT ${COLUMNS} FROM types_db.all_types WHERE id = ?`,
      [id],
    );
    return encodeRow(rows[0] as Record<string, unknown>, new Set());
  }

  it('publishes inserts, updates and deletes with exactly the values MySQL holds', async () => {
    await db.query(
      `INSERT INTO types_db.all_types (${COLUMNS}) VALUES ${MAX_ROW}, ${MIN_ROW}, ${NULL_ROW}`,
    );
    const inserted = [await select(1), await select(2), await select(3)];
    await db.query(
      "UPDATE types_db.all_types SET vc = 'updated 😀', dec65 = '0.000000000000000000000000000001', tm = '-00:00:00.000001', bt = b'1', bl = UNHEX('DEADBEEF') WHERE id = 1",
    );
    await db.query(
      "UPDATE types_db.all_types SET ti = 1, js = '{\"x\": null}', st = 'y', en = 'b' WHERE id = 3",
    );
    const updated1 = await select(1);
    const updated3 = await select(3);
    await db.query('DELETE FROM types_db.all_types WHERE id IN (1, 2, 3)');

    const topic = topicName('types', 'us-east', 'types_db', 'all_types');
    const events = changeEvents(
      await readTopics(sandbox.kafka!.brokers, [topic], (m) => m.length >= 8, 15_000),
    );
    // Partitions interleave; order is kept per row, so compare per row in id order.
    const byOp = (op: ChangeEvent['op']): ChangeEvent[] =>
      events.filter((e) => e.op === op).sort((a, b) => Number(a.pk.id) - Number(b.pk.id));
    expect(byOp('c').map((e) => normalise(e.after))).toEqual(inserted.map(normalise));
    expect(byOp('u').map((e) => normalise(e.after))).toEqual([
      normalise(updated1),
      normalise(updated3),
    ]);
    // v2 sends no before image of an update (the join needs none); both send the deleted rows.
    if (envelope === 1) expect(byOp('u')[0]?.before).toEqual(byOp('c')[0]?.after);
    else expect(byOp('u').map((e) => e.before)).toEqual([null, null]);
    expect(byOp('d').map((e) => normalise(e.before))).toEqual(
      [updated1, inserted[1]!, updated3].map(normalise),
    );
    expect(byOp('d').every((e) => e.after === null)).toBe(true);

    // Envelope fields every consumer relies on.
    for (const event of events) {
      expect(event).toMatchObject({
        v: 1, // as decodeEnvelope gives every change
        region: 'us-east',
        origin: 'us-east',
        db: 'types_db',
        table: 'all_types',
      });
      expect(event.pk).toEqual({ id: (event.after ?? event.before)?.id });
      expect(event.gtid).toMatch(GTID[engine]);
      expect(event.vv['us-east']).toBe(event.hlc);
      expect(Object.keys(event.after ?? event.before ?? {})).not.toContain('_cdc_ts');
      expect(Object.keys(event.after ?? event.before ?? {})).not.toContain('_cdc_ver');
    }
    // Each change of a row has a newer version than the one before it.
    const row1 = events.filter((e) => e.pk.id === 1).map((e) => e.hlc);
    expect(row1).toEqual([...row1].sort((a, b) => a - b));
    expect(new Set(row1).size).toBe(row1.length);
  });

  it('publishes JSON documents as exactly the text the server returns for them', async () => {
    const ids = JSON_DOCS.map((_, i) => i + 1);
    for (const [i, doc] of JSON_DOCS.entries())
      await db.query(`INSERT INTO types_db.json_docs (id, js) VALUES (${i + 1}, ${doc})`);
    // An update carries both images through the same decoding.
    await db.query(
      `UPDATE types_db.json_docs SET js = JSON_ARRAY(js, 1.0e0) WHERE id IN (1, 2, 6, 7)`,
    );
    const [rows] = await db.query<mysql.RowDataPacket[]>(
      'SELECT id, js FROM types_db.json_docs ORDER BY id',
    );
    const held = new Map(rows.map((r) => [Number(r.id), r.js as string]));

    const topic = topicName('types', 'us-east', 'types_db', 'json_docs');
    const events = changeEvents(
      await readTopics(
        sandbox.kafka!.brokers,
        [topic],
        (m) => m.length >= JSON_DOCS.length + 4,
        15_000,
      ),
    );
    const latest = new Map<number, string | null>();
    const inserted = new Map<number, string | null>();
    for (const event of events) {
      const js = event.after?.js;
      expect(typeof js === 'string' || js === null).toBe(true);
      const id = Number(event.pk.id);
      if (event.op === 'c') inserted.set(id, js as string | null);
      if (event.op === 'u' && envelope === 1) expect(event.before?.js).toBe(inserted.get(id));
      latest.set(id, js as string | null);
    }
    expect([...latest.keys()].sort((a, b) => a - b)).toEqual(ids);
    for (const id of ids) expect({ id, js: latest.get(id) }).toEqual({ id, js: held.get(id) });
    // The decoded text is JSON a consumer can parse.
    for (const id of ids)
      expect(() => JSON.parse(latest.get(id) ?? 'null') as unknown).not.toThrow();
  });

  it('publishes DATETIME and TIMESTAMP of every precision as the text the server returns', async () => {
    const seed = testSeed();
    const random = seededRandom(seed);
    const columns = PRECISIONS.flatMap((n) => [`dt${n}`, `ts${n}`]);
    const values = (row: (n: number, timestamp: boolean) => string): string =>
      PRECISIONS.flatMap((n) => [row(n, false), row(n, true)]).join(', ');
    const rows: string[] = [
      // Zero dates and a zero month or day (allowed without the strict modes).
      `(1, ${values(() => "'0000-00-00 00:00:00'")})`,
      `(2, ${values((_, ts) => (ts ? "'0000-00-00 00:00:00'" : "'2020-00-00 00:00:00'"))})`,
      `(3, ${values((_, ts) => (ts ? "'1970-01-01 00:00:01'" : "'1000-01-01 00:00:00'"))})`,
      `(4, ${values((n, ts) => `'${ts ? '2038-01-19 03:14:07' : '9999-12-31 23:59:59'}${n === 0 ? '' : `.${'9'.repeat(n)}`}'`)})`,
      `(5, ${values(() => 'NULL')})`,
      ...Array.from(
        { length: 40 },
        (_, i) => `(${6 + i}, ${values((n, ts) => `'${randomTemporal(random, n, ts)}'`)})`,
      ),
    ];
    await db.query("SET SESSION sql_mode = ''");
    try {
      await db.query(
        `INSERT INTO types_db.temporals (id, ${columns.join(', ')}) VALUES ${rows.join(', ')}`,
      );
      // Updates: v1 carries both images, each decoded from its own bytes.
      await db.query(
        `UPDATE types_db.temporals SET ${columns.map((c) => `${c} = '${randomTemporal(random, Number(c.slice(2)), c.startsWith('ts'))}'`).join(', ')} WHERE id IN (1, 5, 6)`,
      );
    } finally {
      await db.query('SET SESSION sql_mode = DEFAULT');
    }
    const [held] = await db.query<mysql.RowDataPacket[]>(
      `SELECT id, ${columns.join(', ')} FROM types_db.temporals ORDER BY id`,
    );

    const topic = topicName('types', 'us-east', 'types_db', 'temporals');
    const events = changeEvents(
      await readTopics(sandbox.kafka!.brokers, [topic], (m) => m.length >= rows.length + 3, 15_000),
    );
    const latest = new Map<number, RowImage>();
    const inserted = new Map<number, RowImage>();
    for (const event of events) {
      const id = Number(event.pk.id);
      if (event.op === 'c') inserted.set(id, event.after!);
      if (event.op === 'u' && envelope === 1) expect(event.before).toEqual(inserted.get(id));
      latest.set(id, event.after!);
    }
    expect(latest.size).toBe(rows.length);
    for (const row of held)
      expect({ seed, ...latest.get(Number(row.id)) }).toEqual({
        seed,
        ...encodeRow(row, new Set()),
      });
  });
});
