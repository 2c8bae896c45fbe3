/**
 * Apply follows the local schema at once (issue 13, items 3 and 4): with
 * `schema.autoAddColumns`, a region adds a column another region added and
 * writes, with the source's type, so the hold lasts one round trip; and a
 * local ALTER resumes what was held right away. The periodic recheck is set
 * to ten minutes here, so neither can be it.
 */
import { jest } from '@jest/globals';
import type mysql from 'mysql2/promise';
import { startCluster, tableContent, waitFor, type Cluster } from '../../support/cluster.js';

jest.setTimeout(240_000);

const REGIONS = ['r1', 'r2'] as const;
type Region = (typeof REGIONS)[number];
/** Far longer than any wait below: a hold that ends did not end by the periodic recheck. */
const RECHECK_MS = 600_000;

const DDL = [
  'CREATE DATABASE app',
  'CREATE TABLE app.users (id INT PRIMARY KEY, name VARCHAR(50))',
  'CREATE TABLE app.prices (id INT PRIMARY KEY, label VARCHAR(10))',
];

describe('apply follows the local schema without waiting for the recheck', () => {
  let cluster: Cluster;
  const db = new Map<Region, mysql.Connection>();
  const conn = (region: Region): mysql.Connection => db.get(region) as mysql.Connection;

  beforeAll(async () => {
    cluster = await startCluster({
      regions: [...REGIONS],
      ddl: DDL,
      tables: ['app.*'],
      extraYaml: [
        `apply: { holdRecheckIntervalMs: ${RECHECK_MS} }`,
        'schema: { autoAddColumns: true }',
      ].join('\n'),
    });
    for (const region of REGIONS) db.set(region, await cluster.db(region));
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  async function deadLetters(region: Region): Promise<number> {
    const metric = await cluster.daemons.get(region)!.metrics.deadLetterTotal.get();
    return metric.values.reduce((sum, v) => sum + v.value, 0);
  }

  async function heldCount(region: Region, table: string): Promise<number> {
    const metric = await cluster.daemons.get(region)!.metrics.applyHeld.get();
    return metric.values.filter((v) => v.labels.table === table).reduce((s, v) => s + v.value, 0);
  }

  async function columnTypes(region: Region, table: string): Promise<string> {
    const [rows] = await conn(region).query(
      `SELECT COLUMN_NAME AS name, COLUMN_TYPE AS type, IS_NULLABLE AS nullable
         FROM information_schema.COLUMNS
        WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = ? AND COLUMN_NAME NOT LIKE '\\_cdc\\_%'
        ORDER BY ORDINAL_POSITION`,
      [table],
    );
    return JSON.stringify(rows);
  }

  async function waitConverged(table: string, timeoutMs: number): Promise<number> {
    const startedMs = Date.now();
    const contents = async (): Promise<string[]> =>
      Promise.all(REGIONS.map(async (r) => tableContent(conn(r), `app.${table}`)));
    await waitFor(
      async () => new Set(await contents()).size === 1,
      timeoutMs,
      async () => (await contents()).map((c, i) => `${REGIONS[i]}: ${c.slice(0, 600)}`).join('\n'),
    );
    return Date.now() - startedMs;
  }

  it('ADD COLUMN and a write in one region: the other adds the columns itself, with their types, within seconds', async () => {
    await conn('r1').query("INSERT INTO app.users VALUES (1, 'a'), (2, 'b')");
    await waitConverged('users', 60_000);

    await conn('r1').query(
      "ALTER TABLE app.users ADD COLUMN tier VARCHAR(20) NULL, ADD COLUMN level ENUM('gold','it''s') NULL, " +
        'ADD COLUMN credit DECIMAL(12,4) UNSIGNED NULL',
    );
    await conn('r1').query(
      "UPDATE app.users SET tier = 'pro', level = 'it''s', credit = 12345678.1234 WHERE id = 1",
    );
    await conn('r1').query("INSERT INTO app.users VALUES (3, 'c', 'free', 'gold', 0.5)");
    // r2 writes meanwhile, without the columns: its rows take the default in r1.
    await conn('r2').query("INSERT INTO app.users (id, name) VALUES (4, 'd')");

    const tookMs = await waitConverged('users', 30_000);
    console.log(`auto-added columns: regions identical ${tookMs} ms after r1's writes`);
    expect(tookMs).toBeLessThan(20_000);
    expect(await columnTypes('r2', 'users')).toBe(await columnTypes('r1', 'users'));
    expect(await columnTypes('r2', 'users')).toContain("\"enum('gold','it''s')\"");
    const [rows] = await conn('r2').query('SELECT * FROM app.users WHERE id = 1');
    expect(rows).toEqual([
      { id: 1, name: 'a', tier: 'pro', level: "it's", credit: '12345678.1234' },
    ]);

    const repairs = await cluster.daemons.get('r2')!.metrics.schemaRepairsTotal.get();
    const added = repairs.values
      .filter((v) => v.labels.what === 'auto_add_column' && v.labels.table === 'app.users')
      .reduce((sum, v) => sum + v.value, 0);
    expect(added).toBe(3);
    expect(await heldCount('r2', 'app.users')).toBe(0);
    for (const region of REGIONS) expect(await deadLetters(region)).toBe(0);
  });

  it('a hold the applier cannot resolve itself ends as soon as the local ALTER runs', async () => {
    await conn('r1').query('ALTER TABLE app.prices MODIFY label VARCHAR(40)');
    await conn('r1').query("INSERT INTO app.prices VALUES (1, 'a label longer than ten')");
    await waitFor(
      async () => (await heldCount('r2', 'app.prices')) > 0,
      30_000,
      () => 'r2 never held app.prices',
    );

    await conn('r2').query('ALTER TABLE app.prices MODIFY label VARCHAR(40)');
    const tookMs = await waitConverged('prices', 30_000);
    console.log(`type_too_narrow hold ended ${tookMs} ms after r2's ALTER`);
    expect(tookMs).toBeLessThan(15_000);
    const [rows] = await conn('r2').query('SELECT * FROM app.prices');
    expect(rows).toEqual([{ id: 1, label: 'a label longer than ten' }]);
    expect(await heldCount('r2', 'app.prices')).toBe(0);
    for (const region of REGIONS) expect(await deadLetters(region)).toBe(0);
  });
});
