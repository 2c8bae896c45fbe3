/**
 * Capture's side of schema changes (issue 13, items 2, 7, 8, 9): the daemon
 * repairs a replicated table's triggers and version columns after a table
 * swap like an online schema-change tool's cut-over, and after triggers were
 * dropped without a trace in the binlog; it prepares and captures a table
 * created under `schema.*` from its first row; it never publishes the
 * tools' helper tables; and it refuses TRUNCATE loudly.
 */
import { jest } from '@jest/globals';
import { Kafka, logLevel } from 'kafkajs';
import type mysql from 'mysql2/promise';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCluster, tableContent, waitFor, type Cluster } from '../../support/cluster.js';
import { changeEvents, readTopics, readTopicsToEnd } from '../../support/kafka.js';

jest.setTimeout(300_000);

const DDL = [
  'CREATE DATABASE app',
  'CREATE TABLE app.items (id INT PRIMARY KEY, v VARCHAR(50))',
  'CREATE TABLE app.plain (id INT PRIMARY KEY, v VARCHAR(50))',
  'CREATE TABLE app.trunc (id INT PRIMARY KEY, v INT)',
];
const CHECK_INTERVAL_MS = 2_000;

describe('capture: schema self-repair', () => {
  let cluster: Cluster;
  let east: mysql.Connection;
  let west: mysql.Connection;

  beforeAll(async () => {
    cluster = await startCluster({
      regions: ['east', 'west'],
      ddl: DDL,
      tables: ['app.*'],
      extraYaml: `capture: { schemaCheckIntervalMs: ${CHECK_INTERVAL_MS} }`,
    });
    east = await cluster.db('east');
    west = await cluster.db('west');
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  async function triggersOn(connection: mysql.Connection, table: string): Promise<string[]> {
    const [rows] = await connection.query<mysql.RowDataPacket[]>(
      `SELECT TRIGGER_NAME AS name FROM information_schema.TRIGGERS
        WHERE TRIGGER_SCHEMA = 'app' AND EVENT_OBJECT_TABLE = ? ORDER BY TRIGGER_NAME`,
      [table],
    );
    return rows.map((r) => String(r.name));
  }

  function expectedTriggers(table: string): string[] {
    return [`_cdc_ad_${table}`, `_cdc_bi_${table}`, `_cdc_bu_${table}`];
  }

  async function waitForTriggers(table: string, timeoutMs = 10_000): Promise<number> {
    const started = Date.now();
    await waitFor(
      async () =>
        JSON.stringify(await triggersOn(east, table)) === JSON.stringify(expectedTriggers(table)),
      timeoutMs,
      async () => `triggers on app.${table}: ${(await triggersOn(east, table)).join(', ')}`,
    );
    return Date.now() - started;
  }

  async function repairs(what: string, table: string): Promise<number> {
    const metric = await cluster.daemons.get('east')!.metrics.schemaRepairsTotal.get();
    return metric.values
      .filter((v) => v.labels.what === what && v.labels.table === table)
      .reduce((sum, v) => sum + v.value, 0);
  }

  async function versions(table: string): Promise<string> {
    const [rows] = await east.query(
      `SELECT id, _cdc_ts AS ts, _cdc_ver AS ver FROM app.${table} ORDER BY id`,
    );
    return JSON.stringify(rows);
  }

  async function waitConverged(table: string): Promise<void> {
    const content = (c: mysql.Connection): Promise<string> => tableContent(c, `app.${table}`);
    await waitFor(
      async () => (await content(east)) === (await content(west)),
      60_000,
      async () => {
        // The rows that differ, with their versions in both regions and what east published.
        const rows = async (c: mysql.Connection): Promise<Map<number, mysql.RowDataPacket>> => {
          const [found] = await c.query<mysql.RowDataPacket[]>(
            `SELECT id, v, _cdc_ts AS ts, _cdc_ver AS ver FROM app.${table}`,
          );
          return new Map(found.map((r) => [Number(r.id), r]));
        };
        const [e, w] = [await rows(east), await rows(west)];
        const differ = [...new Set([...e.keys(), ...w.keys()])].filter(
          (id) => String(e.get(id)?.v) !== String(w.get(id)?.v),
        );
        const events = changeEvents(
          await readTopicsToEnd(cluster.sandbox.kafka?.brokers ?? [], [`cdc.east.app.${table}`]),
        ).filter((ev) => differ.includes(Number(ev.pk.id)));
        return differ
          .map((id) => `${id}: east ${JSON.stringify(e.get(id))} west ${JSON.stringify(w.get(id))}`)
          .concat(events.map((ev) => JSON.stringify(ev)))
          .join('\n');
      },
    );
  }

  /**
   * Writes to `table` in east until stopped: inserts of fresh keys and
   * updates of earlier ones. `pause()` holds it between statements (the
   * cut-over's short write lock).
   */
  function writer(
    table: string,
    firstId: number,
  ): {
    pause: () => Promise<void>;
    resume: () => void;
    stop: () => Promise<number>;
  } {
    let running = true;
    let paused = false;
    let idle: (() => void) | undefined;
    let next = firstId;
    const loop = (async () => {
      while (running) {
        if (paused) {
          idle?.();
          await sleep(20);
          continue;
        }
        await east.query(`INSERT INTO app.${table} (id, v) VALUES (?, 'w')`, [next]);
        if (next > firstId)
          await east.query(`UPDATE app.${table} SET v = CONCAT(v, '+') WHERE id = ?`, [next - 1]);
        next += 1;
        await sleep(10);
      }
    })();
    return {
      pause: () =>
        new Promise<void>((resolve) => {
          idle = resolve;
          paused = true;
        }),
      resume: () => {
        idle = undefined;
        paused = false;
      },
      stop: async () => {
        running = false;
        await loop;
        return next - firstId;
      },
    };
  }

  async function topics(): Promise<string[]> {
    const admin = new Kafka({
      clientId: 'test-topics',
      brokers: [...(cluster.sandbox.kafka?.brokers ?? [])],
      logLevel: logLevel.NOTHING,
    }).admin();
    await admin.connect();
    try {
      return await admin.listTopics();
    } finally {
      await admin.disconnect();
    }
  }

  it('restores triggers within seconds after a gh-ost style cut-over that kept the version columns', async () => {
    await east.query(
      "INSERT INTO app.items (id, v) VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e')",
    );
    await waitConverged('items');
    const writes = writer('items', 100);
    await sleep(1_000);
    // The tool builds and fills its ghost table while the application writes.
    await east.query('CREATE TABLE app._items_gho LIKE app.items');
    await east.query('ALTER TABLE app._items_gho ADD INDEX by_v (v)');
    await east.query('CREATE TABLE app._items_ghc (id INT PRIMARY KEY, hint VARCHAR(64))');
    await east.query("INSERT INTO app._items_ghc VALUES (1, 'state: migrating')");
    // The cut-over: writes wait while the last rows are copied and the tables swapped.
    await writes.pause();
    await east.query(
      'INSERT INTO app._items_gho (id, v, _cdc_ts, _cdc_ver) SELECT id, v, _cdc_ts, _cdc_ver FROM app.items',
    );
    const before = await versions('items');
    await east.query('RENAME TABLE app.items TO app._items_del, app._items_gho TO app.items');
    // The copy named the invisible columns, so every row keeps its version.
    expect(await versions('items')).toBe(before);
    writes.resume();
    await east.query('DROP TABLE app._items_del');
    await east.query('DROP TABLE app._items_ghc');

    const tookMs = await waitForTriggers('items');
    console.log(`triggers back on app.items ${tookMs} ms after the cut-over`);
    expect(await repairs('triggers', 'app.items')).toBeGreaterThanOrEqual(3);
    expect(await repairs('version_columns', 'app.items')).toBe(0);
    await sleep(500);
    const written = await writes.stop();
    expect(written).toBeGreaterThan(10);

    // Deletes after the swap leave tombstones again, and replicate.
    await east.query('DELETE FROM app.items WHERE id IN (1, 2)');
    const [tombstones] = await east.query<mysql.RowDataPacket[]>(
      `SELECT pk FROM _cdc._cdc_tombstones WHERE tbl = 'app.items' ORDER BY pk`,
    );
    expect(tombstones.map((t) => String(t.pk))).toEqual(['["1"]', '["2"]']);
    await west.query("UPDATE app.items SET v = 'from west' WHERE id = 3");
    await waitConverged('items');
    const [gone] = await west.query<mysql.RowDataPacket[]>(
      'SELECT COUNT(*) AS n FROM app.items WHERE id IN (1, 2)',
    );
    expect(Number(gone[0]?.n)).toBe(0);

    // The helper tables were never published, and never reached west.
    const names = await topics();
    expect(names.filter((t) => /_items_(gho|ghc|del)/.test(t))).toEqual([]);
    expect(names).toContain('cdc.east.app.items');
    const [helpers] = await west.query<mysql.RowDataPacket[]>(
      "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME LIKE '\\_items\\_%'",
    );
    expect(helpers).toEqual([]);
  });

  it('re-adds the version columns when the copy left them out (rows take a fresh local version)', async () => {
    await east.query("INSERT INTO app.plain (id, v) VALUES (1, 'a'), (2, 'b'), (3, 'c')");
    await waitConverged('plain');
    const writes = writer('plain', 100);
    await sleep(500);
    // A pt-online-schema-change style copy that names only the visible columns.
    await east.query('CREATE TABLE app._plain_new (id INT PRIMARY KEY, v VARCHAR(50))');
    await writes.pause();
    await east.query('INSERT INTO app._plain_new (id, v) SELECT id, v FROM app.plain');
    await east.query('RENAME TABLE app.plain TO app._plain_old, app._plain_new TO app.plain');
    writes.resume();
    await east.query('DROP TABLE app._plain_old');

    await waitForTriggers('plain');
    await waitFor(
      async () => (await repairs('version_columns', 'app.plain')) >= 1,
      10_000,
      async () => `version column repairs: ${await repairs('version_columns', 'app.plain')}`,
    );
    const [columns] = await east.query<mysql.RowDataPacket[]>(
      `SELECT COLUMN_NAME AS name, EXTRA AS extra FROM information_schema.COLUMNS
        WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = 'plain' AND COLUMN_NAME LIKE '\\_cdc\\_%' ORDER BY 1`,
    );
    expect(columns.map((c) => [String(c.name), /INVISIBLE/i.test(String(c.extra))])).toEqual([
      ['_cdc_ts', true],
      ['_cdc_ver', true],
    ]);
    await sleep(500);
    await writes.stop();
    await east.query('DELETE FROM app.plain WHERE id = 1');
    await west.query("UPDATE app.plain SET v = 'from west' WHERE id = 2");
    await waitConverged('plain');
    // Rows written between the swap and the repair went out too (with their commit time).
    expect(await cluster.daemons.get('east')!.metrics.deadLetterTotal.get()).toMatchObject({
      values: [],
    });
  });

  it('restores triggers dropped behind its back (no DDL in the binlog) with the drift check', async () => {
    await east.query('SET SESSION sql_log_bin = 0');
    try {
      await east.query('DROP TRIGGER app._cdc_bu_items');
      await east.query('DROP TRIGGER app._cdc_ad_items');
    } finally {
      await east.query('SET SESSION sql_log_bin = 1');
    }
    const before = await repairs('triggers', 'app.items');
    const tookMs = await waitForTriggers('items', CHECK_INTERVAL_MS * 5);
    console.log(`drift repaired ${tookMs} ms after the triggers were dropped`);
    expect(await repairs('triggers', 'app.items')).toBe(before + 2);
  });

  it('prepares a table created under app.* and captures it from its first row', async () => {
    // The application creates the table and writes at once, before any repair could run.
    await east.query('CREATE TABLE app.fresh (id INT PRIMARY KEY, v INT)');
    await east.query('INSERT INTO app.fresh VALUES (1, 1), (2, 2)');
    await east.query('UPDATE app.fresh SET v = 20 WHERE id = 2');
    await waitForTriggers('fresh');
    await east.query('INSERT INTO app.fresh VALUES (3, 3)');
    await east.query('DELETE FROM app.fresh WHERE id = 1');
    const messages = await readTopics(
      cluster.sandbox.kafka?.brokers ?? [],
      ['cdc.east.app.fresh'],
      (read) => read.length >= 5,
      60_000,
    );
    // One key's events share a partition, in order; keys spread over partitions.
    const events = changeEvents(messages).map((e) => `${e.op} ${JSON.stringify(e.pk)}`);
    expect(events.filter((e) => e.endsWith('{"id":1}'))).toEqual(['c {"id":1}', 'd {"id":1}']);
    expect(events.filter((e) => e.endsWith('{"id":2}'))).toEqual(['c {"id":2}', 'u {"id":2}']);
    expect(events.filter((e) => e.endsWith('{"id":3}'))).toEqual(['c {"id":3}']);
    const ordered = changeEvents(messages).filter((e) => e.pk.id === 2);
    expect(ordered[1]!.hlc).toBeGreaterThan(ordered[0]!.hlc);
    const [tombstones] = await east.query<mysql.RowDataPacket[]>(
      "SELECT COUNT(*) AS n FROM _cdc._cdc_tombstones WHERE tbl = 'app.fresh'",
    );
    expect(Number(tombstones[0]?.n)).toBe(1);
  });

  it('refuses TRUNCATE loudly: /readyz names the table and region, and it is counted', async () => {
    await east.query('INSERT INTO app.trunc VALUES (1, 1), (2, 2)');
    await waitFor(
      async () => (await tableContent(west, 'app.trunc')).includes('"id":2'),
      30_000,
      () => tableContent(west, 'app.trunc'),
    );
    await east.query('TRUNCATE TABLE app.trunc');
    const port = cluster.daemons.get('east')!.metricsPort;
    let body = '';
    await waitFor(
      async () => {
        const response = await fetch(`http://127.0.0.1:${port}/readyz`);
        body = await response.text();
        return response.status === 503 && body.includes('app.trunc');
      },
      20_000,
      () => body,
    );
    expect(body).toMatch(/app\.trunc was truncated in east at .*TRUNCATE is not replicated/);
    const ddl = await cluster.daemons.get('east')!.metrics.captureDdlTotal.get();
    expect(ddl.values.find((v) => v.labels.kind === 'truncate')?.value).toBe(1);
    // What "refused" means: west keeps its rows until the operator acts.
    expect(JSON.parse(await tableContent(west, 'app.trunc'))).toHaveLength(2);
  });
});
