/**
 * A mixed fleet: one MySQL 8 region and two MariaDB regions replicating with
 * each other in every direction. Values the two servers store differently
 * (JSON above all: MariaDB keeps the text, MySQL normalises it) must end up
 * as each server stores that value, and hot keys written from all three
 * regions must converge.
 */
import { jest } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type mysql from 'mysql2/promise';
import { createKafka } from '../../../src/bus/kafka.js';
import type { RuntimeOptions } from '../../../src/config/compile.js';
import { runCli } from '../../../src/cli/program.js';
import { CdcError } from '../../../src/core/errors.js';
import { connectMysql } from '../../../src/mysql/connection.js';
import { applyPrepare, planPrepare } from '../../../src/prepare/prepare.js';
import { collectStatus } from '../../../src/monitor/status.js';
import { bootstrapSchema } from '../../../src/snapshot/bootstrap.js';
import { LogProgress } from '../../../src/snapshot/progress.js';
import { runVerify, type VerifyResult } from '../../../src/verify/verify.js';
import { startCluster, waitFor, type Cluster } from '../../support/cluster.js';
import { testLogger } from '../../support/logger.js';

jest.setTimeout(300_000);

const REGIONS = ['my', 'ma', 'mb'];
const ENGINES = { my: 'mysql8' } as const;
const isMySql = (region: string): boolean => region === 'my';

/** One definition for the replicated table and for the local reference copy. */
const TYPES_COLUMNS = `(
  id INT PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, mi MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
  bi BIGINT, biu BIGINT UNSIGNED, dec65 DECIMAL(65,30), f FLOAT, dbl DOUBLE,
  d DATE, tm TIME(6), dtm DATETIME(6), ts TIMESTAMP(6) NULL, yr YEAR,
  c CHAR(10) CHARACTER SET utf8mb4, vc VARCHAR(100) CHARACTER SET utf8mb4, vl VARCHAR(100) CHARACTER SET latin1,
  tx TEXT CHARACTER SET utf8mb4, bl BLOB, bn BINARY(4), vb VARBINARY(10),
  en ENUM('a','b','c'), st SET('x','y','z'), js JSON, bt BIT(10)
) DEFAULT CHARSET=utf8mb4`;

const COLUMNS = [
  'id',
  'ti',
  'tiu',
  'si',
  'mi',
  'i',
  'iu',
  'bi',
  'biu',
  'dec65',
  'f',
  'dbl',
  'd',
  'tm',
  'dtm',
  'ts',
  'yr',
  'c',
  'vc',
  'vl',
  'tx',
  'bl',
  'bn',
  'vb',
  'en',
  'st',
  'js',
  'bt',
];

/** Rows as literals: each is written once through one region, and locally everywhere. */
function rowLiteral(id: number, flavour: number): string {
  const json = [
    // Keys out of order, spaces, a duplicate key, big and fractional numbers, nesting.
    '{"zeta": 1, "alpha": [1, 2.50, "x"], "big": 12345678901234567890, "s": "😀", "alpha2": {"b": null, "a": true}}',
    '  [ 1 , 1e2 , -0.0, "a\\\\u00e9" , {"k" : "v"} ]  ',
    '{"dup": 1, "dup": 2}',
    '"just a string"',
  ][flavour % 4];
  return `(${id}, ${-100 + flavour}, ${200 + flavour}, -32768, 16777215, ${flavour}, 4294967295,
    -9223372036854775808, 18446744073709551615, '12345678901234567890123456789012345.12345678901234567890123456789${flavour}',
    3.14, 1.7976931348623157e308, '2024-02-29', '-838:59:59.000000', '9999-12-31 23:59:59.999999',
    '2038-01-19 03:14:07.999999', 2155, 'ab😀', 'emoji 😀 ünï ${flavour}', 'café ÿ', REPEAT('long ✓ ', 40),
    UNHEX('00FF10AB'), UNHEX('0102'), UNHEX('00000001'), 'c', 'x,z', '${json}', b'1010101010')`;
}

/** A JSON document as a value: parsed, with object keys sorted, as canonical text. */
function jsonValue(text: string | null): string | null {
  if (text === null) return null;
  const sortKeys = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(sortKeys);
    if (typeof value === 'object' && value !== null)
      return Object.fromEntries(
        Object.entries(value)
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
          .map(([k, v]) => [k, sortKeys(v)]),
      );
    return value;
  };
  return JSON.stringify(sortKeys(JSON.parse(text)));
}

describe('mixed fleet: one MySQL 8 region and two MariaDB regions', () => {
  let cluster: Cluster;
  let dir: string;
  let configFile: string;
  const conns = new Map<string, mysql.Connection>();
  const conn = (region: string): mysql.Connection => conns.get(region) as mysql.Connection;

  beforeAll(async () => {
    cluster = await startCluster({
      regions: REGIONS,
      engines: ENGINES,
      tables: ['app.types', 'app.hot'],
      ddl: [
        'CREATE DATABASE app',
        `CREATE TABLE app.types ${TYPES_COLUMNS}`,
        `CREATE TABLE app.expected ${TYPES_COLUMNS}`,
        'CREATE TABLE app.hot (id INT PRIMARY KEY, val BIGINT NOT NULL, note VARCHAR(40), doc JSON)',
      ],
    });
    for (const region of REGIONS) conns.set(region, await cluster.db(region));
    dir = mkdtempSync(join(tmpdir(), 'cdc-mixed-'));
    configFile = join(dir, 'cdc.yaml');
    writeFileSync(configFile, cluster.yaml);
  });

  afterAll(async () => {
    await cluster?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /**
   * A row as this server holds it, as comparable text. A MariaDB region
   * keeps whichever JSON text reached it (MySQL's normalised one for a row
   * written in the MySQL region: keys reordered, duplicates dropped,
   * escapes decoded), so JSON is compared there as a value; MySQL
   * normalises every text the same way, so there it is compared as text.
   */
  async function stored(region: string, table: string, id: number): Promise<string> {
    const [rows] = await conn(region).query<mysql.RowDataPacket[]>(
      `SELECT ${COLUMNS.join(', ')} FROM app.${table} WHERE id = ?`,
      [id],
    );
    return JSON.stringify(
      rows.map((row) =>
        isMySql(region) ? row : { ...row, js: jsonValue(row.js as string | null) },
      ),
    );
  }

  it('replicates every type in both directions as each server stores the same value', async () => {
    // Rows 1-4 written in the MySQL region, 5-8 in a MariaDB region, 9-12 in the other.
    const writes = REGIONS.flatMap((region, r) =>
      [0, 1, 2, 3].map((flavour) => ({ region, id: 1 + r * 4 + flavour, flavour })),
    );
    for (const w of writes) {
      await conn(w.region).query(
        `INSERT INTO app.types (${COLUMNS.join(', ')}) VALUES ${rowLiteral(w.id, w.flavour)}`,
      );
      for (const region of REGIONS) {
        await conn(region).query(
          `INSERT INTO app.expected (${COLUMNS.join(', ')}) VALUES ${rowLiteral(w.id, w.flavour)}`,
        );
      }
    }
    // Every row everywhere before the updates and deletes (a delete that arrives
    // before its row would remove nothing, and the row would then be kept).
    const count = async (region: string): Promise<number> => {
      const [rows] = await conn(region).query<mysql.RowDataPacket[]>(
        'SELECT COUNT(*) AS n FROM app.types',
      );
      return Number(rows[0]?.n);
    };
    await waitFor(
      async () => (await Promise.all(REGIONS.map(count))).every((n) => n === writes.length),
      60_000,
      async () => `rows per region: ${(await Promise.all(REGIONS.map(count))).join(', ')}`,
    );
    // An update and a delete from each engine, too.
    await conn('my').query(
      'UPDATE app.types SET js = \'{"b": 2, "a": 1}\', vc = \'upd\' WHERE id = 5',
    );
    await conn('my').query(
      'UPDATE app.expected SET js = \'{"b": 2, "a": 1}\', vc = \'upd\' WHERE id = 5',
    );
    await conn('ma').query("UPDATE app.types SET js = '[3, 2, 1]', dec65 = '-0.5' WHERE id = 1");
    await conn('ma').query("UPDATE app.expected SET js = '[3, 2, 1]', dec65 = '-0.5' WHERE id = 1");
    await conn('mb').query('DELETE FROM app.types WHERE id = 4');
    await conn('my').query('DELETE FROM app.types WHERE id = 12');
    for (const region of REGIONS) {
      await conn(region).query('DELETE FROM app.expected WHERE id IN (4, 12)');
      // The local updates above were made in one region only: mirror them in the others.
      await conn(region).query(
        'UPDATE app.expected SET js = \'{"b": 2, "a": 1}\', vc = \'upd\' WHERE id = 5',
      );
      await conn(region).query(
        "UPDATE app.expected SET js = '[3, 2, 1]', dec65 = '-0.5' WHERE id = 1",
      );
    }

    const ids = writes.map((w) => w.id);
    const mismatches = async (): Promise<string[]> => {
      const out: string[] = [];
      for (const region of REGIONS) {
        for (const id of ids) {
          const got = await stored(region, 'types', id);
          const want = await stored(region, 'expected', id);
          if (got !== want) out.push(`${region} id ${id}:\n  got  ${got}\n  want ${want}`);
        }
      }
      return out;
    };
    await waitFor(
      async () => (await mismatches()).length === 0,
      60_000,
      async () => (await mismatches()).join('\n'),
    );
    // MySQL really normalised what MariaDB kept as written: the check above compared unlike texts.
    const [maRaw] = await conn('ma').query<mysql.RowDataPacket[]>(
      'SELECT CAST(js AS CHAR) AS js FROM app.types WHERE id = 7',
    );
    const [myRaw] = await conn('my').query<mysql.RowDataPacket[]>(
      'SELECT CAST(js AS CHAR) AS js FROM app.types WHERE id = 7',
    );
    expect(String(maRaw[0]?.js)).toBe('{"dup": 1, "dup": 2}');
    expect(String(myRaw[0]?.js)).toBe('{"dup": 2}');
  });

  it('converges hot keys written from all three regions', async () => {
    const writes = REGIONS.map(async (region, r) => {
      const db = await cluster.db(region);
      for (let op = 0; op < 60; op += 1) {
        const id = 1 + ((op * 7 + r) % 5);
        const doc = JSON.stringify({ by: region, op, nested: { z: op, a: [r, op] } });
        try {
          if (op % 5 === 4) await db.query('DELETE FROM app.hot WHERE id = ?', [id]);
          else
            await db.query(
              'INSERT INTO app.hot (id, val, note, doc) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE val = val + VALUES(val), note = VALUES(note), doc = VALUES(doc)',
              [id, op + 1, `${region}-${op}`, doc],
            );
        } catch (err) {
          if (![1213, 1205].includes((err as { errno?: number }).errno ?? 0)) throw err;
        }
      }
    });
    await Promise.all(writes);
    const contents = async (): Promise<string[]> =>
      Promise.all(
        REGIONS.map(async (region) => {
          const [rows] = await conn(region).query<mysql.RowDataPacket[]>(
            'SELECT id, val, note, doc FROM app.hot ORDER BY id',
          );
          // Compare JSON as values: each engine prints it its own way.
          return JSON.stringify(
            rows.map((row) => ({ ...row, doc: jsonValue(row.doc as string | null) })),
          );
        }),
      );
    await waitFor(
      async () => new Set(await contents()).size === 1,
      60_000,
      async () => (await contents()).map((c, i) => `${REGIONS[i] ?? '?'}: ${c}`).join('\n'),
    );
    expect(JSON.parse((await contents())[0] ?? '[]')).not.toEqual([]);
    // Loop prevention on each engine: MySQL sends capture the applier's transactions
    // (dropped by their marker, counted); MariaDB leaves them out (skip_replication).
    const applierTransactionsRead = async (region: string): Promise<number> =>
      (
        await cluster.daemons.get(region)!.metrics.captureApplierTransactionsTotal.get()
      ).values.reduce((sum, v) => sum + v.value, 0);
    expect(await applierTransactionsRead('my')).toBeGreaterThan(0);
    expect(await applierTransactionsRead('ma')).toBe(0);
    expect(await applierTransactionsRead('mb')).toBe(0);
  });

  function verifyFleet(): Promise<VerifyResult> {
    const logger = testLogger('verify');
    const progress = new LogProgress(logger, 'verify', 60_000);
    return runVerify({
      // The MySQL region first: its chunk boundaries, its JSON type against MariaDB's text.
      regions: REGIONS.map((r) => cluster.options.get(r) as RuntimeOptions),
      tables: ['app.types', 'app.hot'],
      chunkSize: 4,
      chunksPerSecond: 0,
      recheckDelayMs: 500,
      rechecks: 2,
      repair: false,
      kafkaOf: (options) => createKafka(options.kafka, logger),
      progress,
      logger,
    }).finally(() => progress.stop());
  }

  it('verify finds no divergence where the servers only print JSON differently', async () => {
    // The rows compared really hold JSON text that differs between the engines.
    const [my] = await conn('my').query<mysql.RowDataPacket[]>(
      'SELECT CAST(js AS CHAR) AS js FROM app.types WHERE id = 9',
    );
    const [ma] = await conn('ma').query<mysql.RowDataPacket[]>(
      'SELECT CAST(js AS CHAR) AS js FROM app.types WHERE id = 9',
    );
    expect(String(my[0]?.js)).not.toBe(String(ma[0]?.js));
    const result = await verifyFleet();
    expect(result.summary.rows).toBeGreaterThan(10);
    expect(result.divergences).toEqual([]);
  });

  it('verify finds a deliberate divergence in a JSON value and in a plain column', async () => {
    // Changed outside replication (not binlogged), in one region each.
    await conn('ma').query('SET SESSION sql_log_bin = 0');
    await conn('ma').query(`UPDATE app.types SET js = '{"changed": true}' WHERE id = 9`);
    await conn('ma').query('SET SESSION sql_log_bin = 1');
    await conn('my').query('SET SESSION sql_log_bin = 0');
    await conn('my').query("UPDATE app.types SET vc = 'only here' WHERE id = 10");
    await conn('my').query('SET SESSION sql_log_bin = 1');
    const result = await verifyFleet();
    const found = result.divergences
      .map((d) => ({ id: d.pk.id, columns: d.differingColumns }))
      .sort((a, b) => Number(a.id) - Number(b.id));
    expect(found).toEqual([
      { id: 9, columns: ['js'] },
      { id: 10, columns: ['vc'] },
    ]);
  });

  it('snapshots the MySQL region into the MariaDB regions', async () => {
    // Rows the MySQL region holds that never went through its binlog.
    await conn('my').query('SET SESSION sql_log_bin = 0');
    for (const id of [100, 101, 102, 103])
      await conn('my').query(
        `INSERT INTO app.types (${COLUMNS.join(', ')}) VALUES ${rowLiteral(id, id % 4)}`,
      );
    await conn('my').query('SET SESSION sql_log_bin = 1');
    let output = '';
    const write = (text: string): boolean => ((output += text), true);
    const code = await runCli(
      ['snapshot', '--config', configFile, '--region', 'my', '--tables', 'app.types'],
      { stdout: { write }, stderr: { write } },
    );
    expect({ code, output }).toEqual({ code: 0, output: expect.any(String) as string });
    const present = async (): Promise<string[]> => {
      const out: string[] = [];
      for (const region of ['ma', 'mb'])
        for (const id of [100, 101, 102, 103])
          if ((await stored(region, 'types', id)) === '[]') out.push(`${region} lacks ${id}`);
      return out;
    };
    await waitFor(
      async () => (await present()).length === 0,
      60_000,
      async () => (await present()).join(', '),
    );
    // As MySQL holds them, JSON compared as a value.
    const [mine] = await conn('my').query<mysql.RowDataPacket[]>(
      'SELECT id, dec65, vc, bl, js FROM app.types WHERE id >= 100 ORDER BY id',
    );
    for (const region of ['ma', 'mb']) {
      const [theirs] = await conn(region).query<mysql.RowDataPacket[]>(
        'SELECT id, dec65, vc, bl, js FROM app.types WHERE id >= 100 ORDER BY id',
      );
      const asValues = (rows: mysql.RowDataPacket[]): unknown[] =>
        rows.map((r) => ({ ...r, js: jsonValue(r.js as string | null) }));
      expect(asValues(theirs)).toEqual(asValues(mine));
    }
  });

  it('status reads every region of the mixed fleet', async () => {
    const report = await collectStatus(
      REGIONS.map((region) => ({
        region,
        url: `http://127.0.0.1:${cluster.daemons.get(region)?.metricsPort ?? 0}`,
      })),
      { intervalMs: 1000, lagThresholdSeconds: 60 },
    );
    // Six source → target pairs, each with a measured lag.
    expect(report.pairs).toHaveLength(6);
    expect(report.pairs.map((p) => `${p.source}->${p.target}:${p.health}`).sort()).toEqual(
      REGIONS.flatMap((s) => REGIONS.filter((t) => t !== s).map((t) => `${s}->${t}:ok`)).sort(),
    );
  });

  it('bootstrap refuses to translate table definitions between MariaDB and MySQL', async () => {
    await conn('ma').query('CREATE TABLE app.extra (id INT PRIMARY KEY, doc JSON)');
    const withExtra = (options: RuntimeOptions): RuntimeOptions => ({
      ...options,
      pipelines: options.pipelines.map((p) => ({
        ...p,
        tables: [...p.tables, { schema: 'app', table: 'extra' }],
      })),
    });
    const source = withExtra(cluster.options.get('ma') as RuntimeOptions);
    const target = withExtra(cluster.options.get('my') as RuntimeOptions);
    const admin = await connectMysql(source.mysql);
    await applyPrepare(admin, await planPrepare(admin, source, source.internalSchema));
    await admin.end();
    const refusal = await bootstrapSchema(source, target, testLogger('bootstrap')).catch(
      (err: unknown) => err,
    );
    expect(refusal).toBeInstanceOf(CdcError);
    expect((refusal as CdcError).code).toBe('BOOTSTRAP_CROSS_ENGINE');
    expect((refusal as CdcError).message).toContain('app.extra');
    // With the table created by hand on MySQL, bootstrap prepares it.
    await conn('my').query('CREATE TABLE app.extra (id INT PRIMARY KEY, doc JSON)');
    const result = await bootstrapSchema(source, target, testLogger('bootstrap'));
    expect(result.created).toEqual([]);
    expect(result.prepareSteps).toContain('add version columns to app.extra');
  });
});
