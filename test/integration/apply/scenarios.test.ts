/**
 * Replication scenarios users rely on, across three active regions (DESIGN.md
 * §2–§3): a causal chain of writes is never a conflict, a delete and a
 * concurrent update resolve the same way everywhere whatever reaches where
 * first, a region whose clock is ten minutes behind loses none of its
 * causally later writes, and replaying every topic from offset 0 changes
 * nothing. One cluster for the whole file; each scenario has its own table so
 * the per-table counters it asserts are its own.
 */
import { jest } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel } from 'kafkajs';
import type mysql from 'mysql2/promise';
import type { RuntimeOptions } from '../../../src/config/compile.js';
import {
  decodeStoredVersion,
  effectiveVersion,
  type RowVersion,
} from '../../../src/versioning/version.js';
import { startCluster, waitFor, type Cluster } from '../../support/cluster.js';
import { changeEvents, readTopicsToEnd } from '../../support/kafka.js';

jest.setTimeout(240_000);

const REGIONS = ['east', 'west', 'south'] as const;
type Region = (typeof REGIONS)[number];

const TABLES = ['app.chain', 'app.items', 'app.skew'] as const;
type Table = (typeof TABLES)[number];

const DDL = [
  'CREATE DATABASE app',
  ...TABLES.map((t) => `CREATE TABLE ${t} (id INT PRIMARY KEY, label VARCHAR(64), qty INT)`),
];

/** Sessions of the skewed region run ten minutes behind: NOW(), CURRENT_TIMESTAMP and the triggers' clock. */
const SKEW_SECONDS = 600;

describe('apply: three-region scenarios', () => {
  let cluster: Cluster;
  const db = new Map<Region, mysql.Connection>();
  const conn = (region: Region): mysql.Connection => db.get(region) as mysql.Connection;
  const options = (region: Region): RuntimeOptions => cluster.options.get(region) as RuntimeOptions;

  beforeAll(async () => {
    cluster = await startCluster({ regions: [...REGIONS], ddl: DDL, tables: [...TABLES] });
    for (const region of REGIONS) db.set(region, await cluster.db(region));
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  function daemon(region: Region) {
    const d = cluster.daemons.get(region);
    if (d === undefined) throw new Error(`no daemon for ${region}`);
    return d;
  }

  /** `cdc_events_applied_total` of a region for one table, optionally one source and one result. */
  async function appliedCount(
    region: Region,
    table: Table,
    filter: { result?: string; source?: Region } = {},
  ): Promise<number> {
    const metric = await daemon(region).metrics.eventsAppliedTotal.get();
    return metric.values
      .filter(
        (v) =>
          v.labels.table === table &&
          (filter.result === undefined || v.labels.result === filter.result) &&
          (filter.source === undefined || v.labels.source_region === filter.source),
      )
      .reduce((sum, v) => sum + v.value, 0);
  }

  async function conflictCount(region: Region, table: Table): Promise<number> {
    const metric = await daemon(region).metrics.conflictsTotal.get();
    return metric.values
      .filter((v) => v.labels.table === table)
      .reduce((sum, v) => sum + v.value, 0);
  }

  /** Visible columns of one row, or null when it does not exist. */
  async function row(region: Region, table: Table, id: number): Promise<unknown> {
    const [rows] = await conn(region).query<mysql.RowDataPacket[]>(
      `SELECT * FROM ${table} WHERE id = ?`,
      [id],
    );
    return rows[0] ?? null;
  }

  /**
   * Everything that decides a key's future in a region: the row with its
   * effective version (DESIGN.md §3: the version columns read as the applier
   * and capture read them), or, when the row does not exist, its tombstone's
   * version.
   */
  async function keyState(region: Region, table: Table, id: number): Promise<string> {
    const [rows] = await conn(region).query<mysql.RowDataPacket[]>(
      `SELECT *, CAST(UNIX_TIMESTAMP(_cdc_ts) * 1000000 AS UNSIGNED) AS _cdc_ts_us, _cdc_ver
         FROM ${table} WHERE id = ?`,
      [id],
    );
    const found = rows[0];
    if (found !== undefined) {
      const { _cdc_ts_us: ts, _cdc_ver: ver, ...visible } = found;
      const version = effectiveVersion({
        tsMicros: Number(ts),
        stored: ver === null ? null : decodeStoredVersion(String(ver)),
        self: region,
      });
      return JSON.stringify({ row: visible, version });
    }
    const [tombs] = await conn(region).query<mysql.RowDataPacket[]>(
      `SELECT ver FROM ${options(region).internalSchema}._cdc_tombstones
        WHERE tbl = ? AND pk_hash = UNHEX(SHA2(JSON_ARRAY(CAST(? AS CHAR)), 256))`,
      [table, id],
    );
    const tombstone = tombs[0] as { ver: string } | undefined;
    return JSON.stringify({
      tombstone: tombstone === undefined ? null : decodeStoredVersion(tombstone.ver),
    });
  }

  async function waitForRowEverywhere(table: Table, id: number, expected: unknown): Promise<void> {
    await waitFor(
      async () => {
        for (const region of REGIONS) {
          if (JSON.stringify(await row(region, table, id)) !== JSON.stringify(expected))
            return false;
        }
        return true;
      },
      30_000,
      async () =>
        `expected ${JSON.stringify(expected)}; ${(
          await Promise.all(
            REGIONS.map(async (r) => `${r}: ${JSON.stringify(await row(r, table, id))}`),
          )
        ).join(', ')}`,
    );
  }

  /** Waits until every region holds the same row, versions and tombstone for the key. */
  async function waitForSameKeyState(table: Table, id: number): Promise<string> {
    const states = async (): Promise<string[]> =>
      Promise.all(REGIONS.map((r) => keyState(r, table, id)));
    await waitFor(
      async () => new Set(await states()).size === 1,
      30_000,
      async () => (await states()).map((s, i) => `${REGIONS[i] ?? '?'}: ${s}`).join('\n'),
    );
    return (await states())[0] as string;
  }

  async function waitForCount(
    what: string,
    read: () => Promise<number>,
    expected: number,
  ): Promise<void> {
    await waitFor(
      async () => (await read()) >= expected,
      30_000,
      async () => `${what}: ${await read()} (expected ${expected})`,
    );
  }

  it('a causal chain of writes through all three regions ends with its last write everywhere, with no conflict', async () => {
    const table: Table = 'app.chain';
    // Each link is written in another region, after the previous link arrived everywhere.
    const chain: { region: Region; sql: string; expected: unknown }[] = [
      {
        region: 'east',
        sql: "INSERT INTO app.chain VALUES (1, 'east-1', 1)",
        expected: { id: 1, label: 'east-1', qty: 1 },
      },
      {
        region: 'west',
        sql: "UPDATE app.chain SET label = 'west-2', qty = 2 WHERE id = 1",
        expected: { id: 1, label: 'west-2', qty: 2 },
      },
      {
        region: 'south',
        sql: "UPDATE app.chain SET label = 'south-3' WHERE id = 1",
        expected: { id: 1, label: 'south-3', qty: 2 },
      },
      {
        region: 'east',
        sql: 'UPDATE app.chain SET qty = 4 WHERE id = 1',
        expected: { id: 1, label: 'south-3', qty: 4 },
      },
      { region: 'west', sql: 'DELETE FROM app.chain WHERE id = 1', expected: null },
      // The re-insert follows the delete (through the tombstone the applier left in south).
      {
        region: 'south',
        sql: "INSERT INTO app.chain VALUES (1, 'south-6', 6)",
        expected: { id: 1, label: 'south-6', qty: 6 },
      },
      {
        region: 'east',
        sql: "UPDATE app.chain SET label = 'east-7' WHERE id = 1",
        expected: { id: 1, label: 'east-7', qty: 6 },
      },
    ];
    for (const link of chain) {
      await conn(link.region).query(link.sql);
      await waitForRowEverywhere(table, 1, link.expected);
    }
    await waitForSameKeyState(table, 1);

    // Every link is applied in the two other regions: counted as applied, never as a conflict.
    const total = async (): Promise<number> =>
      (await Promise.all(REGIONS.map((r) => appliedCount(r, table)))).reduce((a, b) => a + b, 0);
    await waitForCount('events applied to app.chain', total, 2 * chain.length);
    await sleep(500); // nothing more may trickle in
    for (const region of REGIONS) {
      expect(await conflictCount(region, table)).toBe(0);
      expect(await appliedCount(region, table, { result: 'stale' })).toBe(0);
      expect(await appliedCount(region, table, { result: 'conflict_won' })).toBe(0);
      expect(await appliedCount(region, table, { result: 'conflict_lost' })).toBe(0);
    }
    const applied = await Promise.all(
      REGIONS.map((r) => appliedCount(r, table, { result: 'applied' })),
    );
    expect(applied.reduce((a, b) => a + b, 0)).toBe(2 * chain.length);
    // per region: the links written elsewhere (east wrote 3, west 2, south 2)
    expect(applied).toEqual([4, 5, 5]);
  });

  /*
   * A delete in east and a concurrent update of the same row in west. Their
   * timestamps are fixed with `SET timestamp` in the writers' sessions (in
   * the future, so that they, not the HLC floor above the row's previous
   * version, decide the order). Three ways the two can meet:
   *
   * - `uncommitted delete`: west's update reaches east's applier while east's
   *   delete is still an open transaction: not in the binlog, so certainly
   *   not captured, and its tombstone not committed. The applier's locking
   *   read waits on the deleted row; the test sees it waiting
   *   (INNODB_TRX in LOCK WAIT) before it commits the delete. That is the
   *   hardest case for "delete not yet captured": the applier must decide by
   *   the tombstone the delete commits, not by the row it no longer finds.
   * - `update first in east`: west's applier is paused, so east's delete
   *   (committed, possibly captured) cannot reach west; west's update is
   *   applied in east first, then west receives the delete.
   * - `delete first in west`: both appliers paused; west applies the delete
   *   before east receives the update.
   *
   * south receives both whenever they come. Every region must end with the
   * same row or tombstone, carrying the same version.
   */
  const arrivals = ['uncommitted delete', 'update first in east', 'delete first in west'] as const;
  const orders = ['delete is newer', 'update is newer'] as const;
  const cases = arrivals.flatMap((arrival) => orders.map((order) => [arrival, order] as const));

  it.each(cases.map(([arrival, order], i) => [arrival, order, 10 + i] as const))(
    'delete vs concurrent update (%s, %s) resolves the same way in every region',
    async (arrival, order, id) => {
      const table: Table = 'app.items';
      await conn('south').query('INSERT INTO app.items VALUES (?, ?, 0)', [id, `item-${id}`]);
      await waitForRowEverywhere(table, id, { id, label: `item-${id}`, qty: 0 });

      // Future wall-clock seconds, fresh for every case, two seconds apart.
      const base = Math.floor(Date.now() / 1000) + 60 + id * 10;
      const deleteAt = order === 'delete is newer' ? base + 2 : base + 1;
      const updateAt = order === 'delete is newer' ? base + 1 : base + 2;
      const deleter = await cluster.db('east');
      const updater = await cluster.db('west');
      const deleteSql = 'DELETE FROM app.items WHERE id = ?';
      const updateSql = "UPDATE app.items SET label = 'updated', qty = qty + 1 WHERE id = ?";
      const eastApplied = (): Promise<number> => appliedCount('east', table, { source: 'west' });
      const westApplied = (): Promise<number> => appliedCount('west', table, { source: 'east' });
      const eastBefore = await eastApplied();
      const westBefore = await westApplied();

      if (arrival === 'uncommitted delete') {
        await deleter.beginTransaction();
        await deleter.query('SET timestamp = ?', [deleteAt]);
        await deleter.query(deleteSql, [id]);
        await updater.query('SET timestamp = ?', [updateAt]);
        await updater.query(updateSql, [id]);
        // east's applier now holds west's update and waits for the row lock of the open delete.
        await waitFor(
          async () => {
            const [rows] = await conn('east').query<mysql.RowDataPacket[]>(
              "SELECT COUNT(*) AS n FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'",
            );
            return Number(rows[0]?.n) > 0;
          },
          30_000,
          () => "east's applier never waited for the uncommitted delete",
        );
        expect(await eastApplied()).toBe(eastBefore);
        await deleter.commit();
      } else if (arrival === 'update first in east') {
        daemon('west').apply?.pause();
        await deleter.query('SET timestamp = ?', [deleteAt]);
        await deleter.query(deleteSql, [id]);
        await updater.query('SET timestamp = ?', [updateAt]);
        await updater.query(updateSql, [id]);
        await waitForCount('update applied in east', eastApplied, eastBefore + 1);
        daemon('west').apply?.resume();
      } else {
        daemon('east').apply?.pause();
        daemon('west').apply?.pause();
        await deleter.query('SET timestamp = ?', [deleteAt]);
        await deleter.query(deleteSql, [id]);
        await updater.query('SET timestamp = ?', [updateAt]);
        await updater.query(updateSql, [id]);
        daemon('west').apply?.resume();
        await waitForCount('delete applied in west', westApplied, westBefore + 1);
        daemon('east').apply?.resume();
      }
      await deleter.query('SET timestamp = DEFAULT');
      await updater.query('SET timestamp = DEFAULT');

      const state = JSON.parse(await waitForSameKeyState(table, id)) as {
        row?: Record<string, unknown>;
        version?: RowVersion;
        tombstone?: RowVersion;
      };
      const winner = order === 'delete is newer' ? 'east' : 'west';
      const winnerMicros = (order === 'delete is newer' ? deleteAt : updateAt) * 1_000_000;
      let version: RowVersion | undefined;
      if (order === 'delete is newer') {
        expect(state.row).toBeUndefined();
        version = state.tombstone;
      } else {
        expect(state.row).toEqual({ id, label: 'updated', qty: 1 });
        version = state.version;
      }
      // The newer one won, by its own timestamp, and the version kept what the loser had seen.
      if (version === undefined) throw new Error('no version');
      expect(version.origin).toBe(winner);
      expect(version.hlc).toBe(winnerMicros);
      expect(version.vv.east).toBe(deleteAt * 1_000_000);
      expect(version.vv.west).toBe(updateAt * 1_000_000);
      // The two writes really were concurrent, and both sides counted it.
      expect(await conflictCount('east', table)).toBeGreaterThan(0);
      expect(await conflictCount('west', table)).toBeGreaterThan(0);
    },
  );

  /*
   * A primary-key change is a delete of the old key and an insert of the new
   * one (DESIGN.md §5 leaves the event a `u`; the applier splits it). The
   * region that made the change must remember the old key's delete like any
   * delete, or a concurrent update of the old key, arriving later, brings the
   * row back there and nowhere else.
   */
  it.each([
    ['the key change is newer', 30],
    ['the update is newer', 32],
  ] as const)(
    'a primary-key change and a concurrent update of the old key resolve the same way everywhere (%s)',
    async (order, id) => {
      const table: Table = 'app.items';
      const moved = id + 1;
      await conn('south').query('INSERT INTO app.items VALUES (?, ?, 0)', [id, `item-${id}`]);
      await waitForRowEverywhere(table, id, { id, label: `item-${id}`, qty: 0 });
      const base = Math.floor(Date.now() / 1000) + 60 + id * 10;
      const moveAt = order === 'the key change is newer' ? base + 2 : base + 1;
      const updateAt = order === 'the key change is newer' ? base + 1 : base + 2;
      const mover = await cluster.db('east');
      const updater = await cluster.db('west');
      // Both appliers paused: neither write has seen the other.
      daemon('east').apply?.pause();
      daemon('west').apply?.pause();
      await mover.query('SET timestamp = ?', [moveAt]);
      await mover.query('UPDATE app.items SET id = ? WHERE id = ?', [moved, id]);
      await updater.query('SET timestamp = ?', [updateAt]);
      await updater.query("UPDATE app.items SET label = 'updated' WHERE id = ?", [id]);
      await mover.query('SET timestamp = DEFAULT');
      await updater.query('SET timestamp = DEFAULT');
      daemon('east').apply?.resume();
      daemon('west').apply?.resume();

      const oldKey = JSON.parse(await waitForSameKeyState(table, id)) as {
        row?: unknown;
        version?: RowVersion;
        tombstone?: RowVersion;
      };
      const newKey = JSON.parse(await waitForSameKeyState(table, moved)) as { row?: unknown };
      expect(newKey.row).toEqual({ id: moved, label: `item-${id}`, qty: 0 });
      if (order === 'the key change is newer') {
        expect(oldKey.row).toBeUndefined();
        expect(oldKey.tombstone?.hlc).toBe(moveAt * 1_000_000);
      } else {
        expect(oldKey.row).toEqual({ id, label: 'updated', qty: 0 });
        expect(oldKey.version?.hlc).toBe(updateAt * 1_000_000);
      }
    },
  );

  it('a primary-key change onto a key deleted by a region whose clock is ahead wins everywhere', async () => {
    const table: Table = 'app.items';
    await conn('south').query(
      "INSERT INTO app.items VALUES (36, 'item-36', 0), (37, 'item-37', 0)",
    );
    await waitForRowEverywhere(table, 37, { id: 37, label: 'item-37', qty: 0 });
    await waitForRowEverywhere(table, 36, { id: 36, label: 'item-36', qty: 0 });
    // west's clock is five minutes ahead when it deletes 37.
    const ahead = await cluster.db('west');
    await ahead.query('SET timestamp = UNIX_TIMESTAMP(SYSDATE(6)) + 300');
    await ahead.query('DELETE FROM app.items WHERE id = 37');
    await ahead.query('SET timestamp = DEFAULT');
    await waitForRowEverywhere(table, 37, null);
    await waitForSameKeyState(table, 37);
    // east has seen the delete; moving 36 onto 37 follows it, whatever east's clock says.
    const conflictsBefore = await Promise.all(REGIONS.map((r) => conflictCount(r, table)));
    await conn('east').query('UPDATE app.items SET id = 37 WHERE id = 36');
    await waitForRowEverywhere(table, 37, { id: 37, label: 'item-36', qty: 0 });
    await waitForRowEverywhere(table, 36, null);
    await waitForSameKeyState(table, 36);
    const state = JSON.parse(await waitForSameKeyState(table, 37)) as { row?: unknown };
    expect(state.row).toEqual({ id: 37, label: 'item-36', qty: 0 });
    // ...and it is an ordinary overwrite, not a conflict, in every region.
    expect(await Promise.all(REGIONS.map((r) => conflictCount(r, table)))).toEqual(conflictsBefore);
  });

  it('a region whose clock is ten minutes behind converges and loses none of its causally later writes', async () => {
    const table: Table = 'app.skew';
    const skewed = await cluster.db('south');
    /** A write in south's session with the clock pushed back (SYSDATE ignores SET timestamp). */
    const southWrites = async (sql: string): Promise<void> => {
      await skewed.query(`SET timestamp = UNIX_TIMESTAMP(SYSDATE(6)) - ${SKEW_SECONDS}`);
      await skewed.query(sql);
    };
    await skewed.query(`SET timestamp = UNIX_TIMESTAMP(SYSDATE(6)) - ${SKEW_SECONDS}`);
    const [clock] = await skewed.query<mysql.RowDataPacket[]>(
      'SELECT TIMESTAMPDIFF(SECOND, NOW(6), SYSDATE(6)) AS behind',
    );
    expect(Number(clock[0]?.behind)).toBeGreaterThanOrEqual(SKEW_SECONDS - 1);
    let writes = 0;

    await conn('east').query("INSERT INTO app.skew VALUES (1, 'east-1', 0)");
    writes += 1;
    await waitForRowEverywhere(table, 1, { id: 1, label: 'east-1', qty: 0 });

    // south has seen east's write; its overwrite is stamped 10 minutes earlier by its clock, yet wins.
    await southWrites("UPDATE app.skew SET label = 'south-2' WHERE id = 1");
    writes += 1;
    await waitForRowEverywhere(table, 1, { id: 1, label: 'south-2', qty: 0 });

    // Two local writes in a row in the skewed region: the second is not a duplicate of the first.
    const southBefore = await Promise.all(
      (['east', 'west'] as const).map((r) =>
        appliedCount(r, table, { source: 'south', result: 'applied' }),
      ),
    );
    await southWrites('UPDATE app.skew SET qty = 3 WHERE id = 1');
    await southWrites("UPDATE app.skew SET label = 'south-4' WHERE id = 1");
    writes += 2;
    await waitForRowEverywhere(table, 1, { id: 1, label: 'south-4', qty: 3 });
    for (const [i, region] of (['east', 'west'] as const).entries()) {
      await waitForCount(
        `south's two writes applied in ${region}`,
        () => appliedCount(region, table, { source: 'south', result: 'applied' }),
        (southBefore[i] ?? 0) + 2,
      );
    }

    await conn('west').query("UPDATE app.skew SET label = 'west-5' WHERE id = 1");
    writes += 1;
    await waitForRowEverywhere(table, 1, { id: 1, label: 'west-5', qty: 3 });
    await southWrites("UPDATE app.skew SET label = 'south-6' WHERE id = 1");
    writes += 1;
    await waitForRowEverywhere(table, 1, { id: 1, label: 'south-6', qty: 3 });

    // A delete elsewhere, then a re-insert in the skewed region: the re-insert follows the delete.
    await southWrites("INSERT INTO app.skew VALUES (2, 'south-7', 7)");
    writes += 1;
    await waitForRowEverywhere(table, 2, { id: 2, label: 'south-7', qty: 7 });
    await conn('east').query('DELETE FROM app.skew WHERE id = 2');
    writes += 1;
    await waitForRowEverywhere(table, 2, null);
    await southWrites("INSERT INTO app.skew VALUES (2, 'south-8', 8)");
    writes += 1;
    await waitForRowEverywhere(table, 2, { id: 2, label: 'south-8', qty: 8 });
    // A delete in the skewed region after a newer remote write: the delete wins.
    await conn('west').query("UPDATE app.skew SET label = 'west-9' WHERE id = 1");
    writes += 1;
    await waitForRowEverywhere(table, 1, { id: 1, label: 'west-9', qty: 3 });
    await southWrites('DELETE FROM app.skew WHERE id = 1');
    writes += 1;
    await waitForRowEverywhere(table, 1, null);
    await skewed.query('SET timestamp = DEFAULT');

    for (const id of [1, 2]) await waitForSameKeyState(table, id);
    const total = async (): Promise<number> =>
      (await Promise.all(REGIONS.map((r) => appliedCount(r, table)))).reduce((a, b) => a + b, 0);
    await waitForCount('events applied to app.skew', total, 2 * writes);
    await sleep(500);
    for (const region of REGIONS) {
      expect(await conflictCount(region, table)).toBe(0);
      expect(await appliedCount(region, table)).toBe(
        await appliedCount(region, table, { result: 'applied' }),
      );
    }
    expect(await total()).toBe(2 * writes);
  });

  it('replaying every topic from offset 0 changes nothing: every replayed event counts as stale', async () => {
    // Some more history first: concurrent updates (conflicts), deletes, and a re-insert.
    for (const region of REGIONS) daemon(region).apply?.pause();
    await conn('east').query("INSERT INTO app.items VALUES (100, 'east', 1), (101, 'east', 1)");
    await conn('west').query("INSERT INTO app.items VALUES (100, 'west', 2), (102, 'west', 2)");
    await conn('south').query("INSERT INTO app.items VALUES (100, 'south', 3), (103, 'south', 3)");
    for (const region of REGIONS) daemon(region).apply?.resume();
    for (const id of [100, 101, 102, 103]) await waitForSameKeyState('app.items', id);
    await conn('west').query('DELETE FROM app.items WHERE id IN (101, 103)');
    await waitForRowEverywhere('app.items', 103, null);
    await conn('east').query("INSERT INTO app.items VALUES (103, 'again', 4)");
    await conn('south').query('UPDATE app.items SET qty = 9 WHERE id = 102');
    await waitForRowEverywhere('app.items', 103, { id: 103, label: 'again', qty: 4 });
    await waitForRowEverywhere('app.items', 102, { id: 102, label: 'west', qty: 9 });
    for (const id of [100, 101, 102, 103]) await waitForSameKeyState('app.items', id);

    const snapshot = async (region: Region): Promise<string> => {
      const parts: unknown[] = [];
      for (const table of TABLES) {
        const [rows] = await conn(region).query(
          `SELECT *, _cdc_ts, _cdc_ver FROM ${table} ORDER BY id`,
        );
        parts.push(rows);
      }
      const schema = options(region).internalSchema;
      const [tombs] = await conn(region).query(
        `SELECT tbl, HEX(pk_hash) AS h, pk, ver, hlc FROM ${schema}._cdc_tombstones ORDER BY tbl, h`,
      );
      const [conflicts] = await conn(region).query(
        `SELECT COUNT(*) AS n FROM ${schema}._cdc_conflicts`,
      );
      return JSON.stringify({ parts, tombs, conflicts });
    };
    const before = new Map<Region, string>();
    for (const region of REGIONS) before.set(region, await snapshot(region));

    const brokers = [...(cluster.sandbox.kafka?.brokers ?? [])];
    const client = new Kafka({ clientId: 'test-replay', brokers, logLevel: logLevel.NOTHING });
    const admin = client.admin();
    await admin.connect();
    try {
      const topics = await admin.listTopics();
      /** The change topics of every table, from the region's peers: what its applier consumes. */
      const peerTopics = (region: Region): string[] =>
        topics.filter((topic) =>
          REGIONS.some(
            (peer) => peer !== region && TABLES.some((table) => topic === `cdc.${peer}.${table}`),
          ),
        );
      // Events in them: a primary-key change is one message and two events (delete, insert).
      const eventsIn = async (region: Region): Promise<number> => {
        const messages = await readTopicsToEnd(brokers, peerTopics(region));
        return changeEvents(messages).reduce(
          (n, e) =>
            n +
            (e.before !== null && Object.keys(e.pk).some((c) => e.before?.[c] !== e.pk[c]) ? 2 : 1),
          0,
        );
      };

      // Every region's applier reads everything again: stop, rewind its group, start.
      // (kafkajs rewinds one topic at a time through a short-lived group member,
      // about 5 s each; the three groups are rewound side by side.)
      await Promise.all(REGIONS.map((region) => cluster.stopDaemon(region)));
      await Promise.all(
        REGIONS.map(async (region) => {
          expect(peerTopics(region)).toHaveLength(TABLES.length * (REGIONS.length - 1));
          const rewinder = client.admin();
          await rewinder.connect();
          try {
            for (const topic of peerTopics(region))
              await rewinder.resetOffsets({
                groupId: `cdc.apply.${region}`,
                topic,
                earliest: true,
              });
          } finally {
            await rewinder.disconnect();
          }
        }),
      );
      await Promise.all(REGIONS.map((region) => cluster.startDaemon(region)));

      for (const region of REGIONS) {
        const expected = await eventsIn(region);
        expect(expected).toBeGreaterThan(20);
        const replayed = async (): Promise<number> => {
          let sum = 0;
          for (const table of TABLES) sum += await appliedCount(region, table);
          return sum;
        };
        await waitForCount(`events replayed in ${region}`, replayed, expected);
        // ...and the group's committed offsets are back at the end of every partition.
        await waitFor(
          async () => {
            const committed = await admin.fetchOffsets({
              groupId: `cdc.apply.${region}`,
              topics: peerTopics(region),
            });
            for (const { topic, partitions } of committed) {
              const ends = await admin.fetchTopicOffsets(topic);
              for (const p of partitions) {
                const end = ends.find((e) => e.partition === p.partition);
                if (end !== undefined && Number(end.high) > 0 && p.offset !== end.high)
                  return false;
              }
            }
            return true;
          },
          30_000,
          () => `committed offsets of cdc.apply.${region} did not reach the end`,
        );
        let stale = 0;
        for (const table of TABLES) stale += await appliedCount(region, table, { result: 'stale' });
        expect({ region, replayed: await replayed(), stale }).toEqual({
          region,
          replayed: expected,
          stale: expected,
        });
        const dead = await daemon(region).metrics.deadLetterTotal.get();
        expect(dead.values.reduce((sum, v) => sum + v.value, 0)).toBe(0);
      }
    } finally {
      await admin.disconnect();
    }
    for (const region of REGIONS) expect(await snapshot(region)).toBe(before.get(region));
  });
});
