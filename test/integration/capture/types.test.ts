import { jest } from '@jest/globals';
import mysql from 'mysql2/promise';
import type { ChangeEvent, RowImage } from '../../../src/bus/envelope.js';
import { topicName } from '../../../src/bus/envelope.js';
import { encodeRow } from '../../../src/capture/row-codec.js';
import { connectMysql } from '../../../src/mysql/connection.js';
import { applyPrepare, planPrepare } from '../../../src/prepare/prepare.js';
import { Daemon } from '../../../src/daemon/daemon.js';
import { startSandbox, type Sandbox } from '../../../src/sandbox/index.js';
import { sandboxRegionOptions } from '../../support/config.js';
import { changeEvents, readTopics } from '../../support/kafka.js';
import { testLogger } from '../../support/logger.js';

jest.setTimeout(180_000);

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

describe('capture: every column type round-trips exactly', () => {
  let sandbox: Sandbox;
  let daemon: Daemon;
  let db: mysql.Connection;

  beforeAll(async () => {
    sandbox = await startSandbox({ regions: ['us-east'], redis: true });
    const { options } = sandboxRegionOptions(sandbox, 'us-east', {
      tables: ['types_db.all_types'],
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
    const admin = await connectMysql(options.mysql);
    await applyPrepare(admin, await planPrepare(admin, options, options.internalSchema));
    await admin.end();
    daemon = new Daemon({ options, logger: testLogger('types') });
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
    expect(byOp('u')[0]?.before).toEqual(byOp('c')[0]?.after);
    expect(byOp('d').map((e) => normalise(e.before))).toEqual(
      [updated1, inserted[1]!, updated3].map(normalise),
    );
    expect(byOp('d').every((e) => e.after === null)).toBe(true);

    // Envelope fields every consumer relies on.
    for (const event of events) {
      expect(event).toMatchObject({
        v: 1,
        region: 'us-east',
        origin: 'us-east',
        db: 'types_db',
        table: 'all_types',
      });
      expect(event.pk).toEqual({ id: (event.after ?? event.before)?.id });
      expect(event.gtid).toMatch(/^\d+-\d+-\d+$/);
      expect(event.vv['us-east']).toBe(event.hlc);
      expect(Object.keys(event.after ?? event.before ?? {})).not.toContain('_cdc_ts');
    }
    // Each change of a row has a newer version than the one before it.
    const row1 = events.filter((e) => e.pk.id === 1).map((e) => e.hlc);
    expect(row1).toEqual([...row1].sort((a, b) => a - b));
    expect(new Set(row1).size).toBe(row1.length);
  });
});
