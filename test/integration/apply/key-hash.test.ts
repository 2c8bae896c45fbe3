import { jest } from '@jest/globals';
import type mysql from 'mysql2/promise';
import { integerKeyHash } from '../../../src/apply/batch-applier.js';
import { describeTable } from '../../../src/mysql/introspect.js';
import type { DatabaseEngine } from '../../../src/sandbox/index.js';
import { startChunkRegion, type ChunkRegion } from '../../support/chunk-region.js';
import { seededRandom } from '../../support/random.js';

/**
 * The applier computes the tombstone key of an integer key in Node
 * (`integerKeyHash`) while the delete trigger computes it in SQL over OLD
 * (`UNHEX(SHA2(JSON_ARRAY(CAST(… AS CHAR)), 256))`). They must agree byte for
 * byte on both servers, or a remote delete and a local re-insert of the
 * same key would look for different tombstones.
 */
jest.setTimeout(180_000);

const EDGES = [
  '0',
  '-1',
  '1',
  '127',
  '-128',
  '9007199254740993',
  '-9223372036854775808',
  '9223372036854775807',
];

describe.each<DatabaseEngine>(['mariadb', 'mysql8'])('integer key hashes (%s)', (engine) => {
  let region: ChunkRegion;
  let connection: mysql.PoolConnection;
  let tombstones: string;

  beforeAll(async () => {
    region = await startChunkRegion({
      engine,
      region: 'ra',
      dirPrefix: 'key-hash-',
      connectionLimit: 2,
      tables: [
        { name: 'single', ddl: 'CREATE TABLE app.single (id BIGINT PRIMARY KEY, v INT)' },
        {
          name: 'pair',
          ddl: 'CREATE TABLE app.pair (a TINYINT, b BIGINT UNSIGNED, v INT, PRIMARY KEY (a, b))',
        },
      ],
    });
    tombstones = `\`${region.options.internalSchema}\`._cdc_tombstones`;
    // A plain session: the triggers run for its writes.
    connection = await region.pool.getConnection();
  });

  afterAll(async () => {
    connection?.release();
    await region?.stop();
  });

  /** Inserts and deletes `keys` locally (the trigger writes their tombstones) and returns the stored hashes in order. */
  async function triggerHashes(
    table: string,
    keys: readonly Record<string, string>[],
  ): Promise<string[]> {
    const columns = Object.keys(keys[0]!);
    const hashes: string[] = [];
    for (const key of keys) {
      const where = columns.map((c) => `${c} = ?`).join(' AND ');
      const values = columns.map((c) => key[c]);
      await connection.query(
        `INSERT INTO app.${table} (${columns.join(', ')}, v) VALUES (${columns.map(() => '?').join(', ')}, 1)`,
        values,
      );
      await connection.query(`DELETE FROM app.${table} WHERE ${where}`, values);
      const [rows] = await connection.query<mysql.RowDataPacket[]>(
        `SELECT LOWER(HEX(pk_hash)) AS h FROM ${tombstones} WHERE tbl = ? AND pk = JSON_ARRAY(${columns.map(() => 'CAST(? AS CHAR)').join(', ')})`,
        [`app.${table}`, ...values],
      );
      expect(rows).toHaveLength(1);
      hashes.push(String(rows[0]!.h));
    }
    return hashes;
  }

  it('agree with the delete trigger for one BIGINT column, edges and random values', async () => {
    const table = await describeTable(connection, 'app', 'single');
    const random = seededRandom(17);
    const keys = [
      ...EDGES,
      ...Array.from({ length: 20 }, () => String(Math.floor((random() - 0.5) * 2 ** 52))),
    ].map((id) => ({ id }));
    const expected = await triggerHashes('single', keys);
    // Values as capture encodes them: numbers up to 2^53, decimal strings beyond.
    const ours = keys.map(({ id }) =>
      integerKeyHash(
        table!.columns.filter((c) => c.name === 'id'),
        {
          id: Number.isSafeInteger(Number(id)) ? Number(id) : id,
        },
      ),
    );
    expect(ours).toEqual(expected);
  });

  it('agree with the delete trigger for a composite (TINYINT, BIGINT UNSIGNED) key', async () => {
    const table = await describeTable(connection, 'app', 'pair');
    const pk = table!.primaryKey.map((name) => table!.columns.find((c) => c.name === name)!);
    const keys = [
      { a: '-128', b: '0' },
      { a: '127', b: '18446744073709551615' },
      { a: '0', b: '42' },
    ];
    const expected = await triggerHashes('pair', keys);
    const ours = keys.map((k) =>
      integerKeyHash(pk, {
        a: Number(k.a),
        b: Number.isSafeInteger(Number(k.b)) ? Number(k.b) : k.b,
      }),
    );
    expect(ours).toEqual(expected);
  });
});
