/**
 * A replicated table in a schema whose default character set is latin1:
 * the delete trigger's key text must still be utf8mb4, or a key like `é`
 * gets a tombstone hash over latin1 bytes (different from the insert
 * trigger's, the applier's and capture's) and a key with an emoji makes the
 * application's own DELETE fail (error 1366). Both servers.
 */
import { jest } from '@jest/globals';
import type mysql from 'mysql2/promise';
import { tombstoneKeyHash } from '../../../src/mysql/tombstone-key.js';
import type { DatabaseEngine } from '../../../src/sandbox/index.js';
import { startChunkRegion, type ChunkRegion } from '../../support/chunk-region.js';

jest.setTimeout(180_000);

describe.each<DatabaseEngine>(['mariadb', 'mysql8'])('a latin1 schema (%s)', (engine) => {
  let region: ChunkRegion;

  beforeAll(async () => {
    region = await startChunkRegion({
      engine,
      region: 'ra',
      dirPrefix: 'latin1-',
      connectionLimit: 1,
      // The schema's default changes before the table and the triggers are created.
      setup: ['ALTER DATABASE app CHARACTER SET latin1 COLLATE latin1_swedish_ci'],
      tables: [
        {
          name: 'l1',
          ddl: 'CREATE TABLE app.l1 (k VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PRIMARY KEY, v INT)',
        },
      ],
    });
  });

  afterAll(async () => {
    await region?.stop();
  });

  it('keeps utf8mb4 tombstone keys for non-latin1 keys, and lets their deletes run', async () => {
    const connection = await region.pool.getConnection();
    try {
      const tombstones = `\`${region.options.internalSchema}\`._cdc_tombstones`;
      for (const key of ['é', 'zoë 😀', 'plain']) {
        await connection.query('INSERT INTO app.l1 (k, v) VALUES (?, 1)', [key]);
        await connection.query('DELETE FROM app.l1 WHERE k = ?', [key]);
        const [rows] = await connection.query<mysql.RowDataPacket[]>(
          `SELECT LOWER(HEX(pk_hash)) AS h FROM ${tombstones} WHERE tbl = 'app.l1' AND pk = JSON_ARRAY(CAST(? AS CHAR))`,
          [key],
        );
        expect(rows).toHaveLength(1);
        expect(rows[0]?.h).toBe(tombstoneKeyHash([{ name: 'k', dataType: 'varchar' }], { k: key }));
      }
    } finally {
      connection.release();
    }
  });
});
