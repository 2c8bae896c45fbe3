/**
 * One chunk holding one key in two spellings, applied on a region that has
 * a tombstone for only one of them (tombstones are keyed by the key's text).
 * The key's state starts from every spelling's tombstone, so older remote
 * writes lose to the local delete whichever spelling came first.
 */
import { jest } from '@jest/globals';
import type mysql from 'mysql2/promise';
import type { ApplyEvent } from '../../../src/apply/apply-event.js';
import type { DatabaseEngine } from '../../../src/sandbox/index.js';
import { chunkApplier, rowVersion } from '../../support/apply-chunk.js';
import { startChunkRegion, type ChunkRegion } from '../../support/chunk-region.js';

jest.setTimeout(240_000);

describe.each<DatabaseEngine>(['mariadb', 'mysql8'])(
  'a chunk with two spellings of one key (%s)',
  (engine) => {
    let region: ChunkRegion;
    let connection: mysql.PoolConnection;

    beforeAll(async () => {
      region = await startChunkRegion({
        engine,
        region: 'ra',
        dirPrefix: 'collated-chunk-',
        connectionLimit: 3,
        tables: [
          {
            name: 'ci',
            ddl: 'CREATE TABLE app.ci (k VARCHAR(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci PRIMARY KEY, v INT NOT NULL)',
          },
          {
            name: 'pair',
            ddl: 'CREATE TABLE app.pair (s VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci, n INT, v INT NOT NULL, PRIMARY KEY (s, n))',
          },
        ],
      });
      // A plain session: the triggers run for its writes (the delete leaves a tombstone).
      connection = await region.pool.getConnection();
    });

    afterAll(async () => {
      connection?.release();
      await region?.stop();
    });

    const upsert = (k: string, v: number, hlc: number): ApplyEvent => ({
      op: 'upsert',
      sourceRegion: 'rb',
      db: 'app',
      table: 'ci',
      pk: { k },
      after: { k, v },
      image: { k, v },
      version: rowVersion('rb', hlc, {}),
      commitTs: 1,
    });

    it.each([
      ['the untombstoned spelling first', ['alice', 'ALICE'], 'ALICE'],
      ['the tombstoned spelling first', ['BOB', 'bob'], 'BOB'],
    ])('older writes lose to the local delete, %s', async (_, spellings, deleted) => {
      await connection.query('INSERT INTO app.ci (k, v) VALUES (?, 1)', [deleted]);
      await connection.query('DELETE FROM app.ci WHERE k = ?', [deleted]);
      const [first, second] = spellings as [string, string];
      // Both written a minute before the local delete, by a region that had not seen the row.
      const old = (Date.now() - 60_000) * 1000;
      const result = await region.applier.apply(
        [upsert(first, 2, old), upsert(second, 3, old + 1)],
        'rb',
      ).result;
      expect(result.outcomes.get('applied')).toBeUndefined();
      const [rows] = await connection.query<mysql.RowDataPacket[]>(
        'SELECT k, v FROM app.ci WHERE k = ?',
        [first],
      );
      expect(rows).toEqual([]);
    });

    it('a two-column key respelled in the chunk that inserted it is one row, apart from a key that differs in the other column', async () => {
      const pair = chunkApplier(region.pool, {
        region: 'ra',
        internalSchema: region.options.internalSchema,
        schema: 'app',
        table: 'pair',
      });
      const hlc = Date.now() * 1000;
      const event = (
        op: ApplyEvent['op'],
        s: string,
        n: number,
        v: number,
        at: number,
      ): ApplyEvent => ({
        op,
        sourceRegion: 'rb',
        db: 'app',
        table: 'pair',
        pk: { s, n },
        after: op === 'upsert' ? { s, n, v } : null,
        image: { s, n, v },
        version: rowVersion('rb', at, {}),
        commitTs: 1,
      });
      // Inserted as ('x', 1), then respelled to ('X', 1) by a key change (its two halves); ('x', 2) is another key.
      const respell = event('delete', 'x', 1, 1, hlc + 1);
      respell.movedTo = { s: 'X', n: 1 };
      await pair.apply(
        [
          event('upsert', 'x', 1, 1, hlc),
          respell,
          event('upsert', 'X', 1, 2, hlc + 1),
          event('upsert', 'x', 2, 3, hlc + 2),
        ],
        'rb',
      ).result;
      const [rows] = await connection.query<mysql.RowDataPacket[]>(
        'SELECT CAST(s AS BINARY) AS s, n, v FROM app.pair ORDER BY n',
      );
      expect(rows.map((r) => `${String(r.s)},${Number(r.n)}=${Number(r.v)}`)).toEqual([
        'X,1=2',
        'x,2=3',
      ]);
    });

    it('a newer write of another spelling than the tombstone’s is applied, spelled as written', async () => {
      await connection.query('INSERT INTO app.ci (k, v) VALUES (?, 1)', ['CAROL']);
      await connection.query('DELETE FROM app.ci WHERE k = ?', ['CAROL']);
      const later = (Date.now() + 60_000) * 1000;
      const result = await region.applier.apply(
        [upsert('carol', 2, later), upsert('Carol', 3, later + 1)],
        'rb',
      ).result;
      expect(result.outcomes.get('applied')).toBe(2);
      const [rows] = await connection.query<mysql.RowDataPacket[]>(
        'SELECT CAST(k AS BINARY) AS k, v FROM app.ci WHERE k = ?',
        ['carol'],
      );
      expect(rows.map((r) => `${String(r.k)}=${Number(r.v)}`)).toEqual([`Carol=3`]);
    });
  },
);
