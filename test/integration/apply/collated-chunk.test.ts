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
import { rowVersion } from '../../support/apply-chunk.js';
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
