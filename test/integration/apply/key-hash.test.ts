import { jest } from '@jest/globals';
import type mysql from 'mysql2/promise';
import { hash } from 'node:crypto';
import { integerKeyHash } from '../../../src/apply/batch-applier.js';
import type { RowImage } from '../../../src/bus/envelope.js';
import { encodeRow } from '../../../src/capture/row-codec.js';
import { describeTable, type ColumnInfo } from '../../../src/mysql/introspect.js';
import { tombstoneKeyHash } from '../../../src/mysql/tombstone-key.js';
import type { DatabaseEngine } from '../../../src/sandbox/index.js';
import { chunkApplier, rowVersion } from '../../support/apply-chunk.js';
import { startChunkRegion, type ChunkRegion } from '../../support/chunk-region.js';
import { randomInt, seededRandom, withSeed } from '../../support/random.js';

/**
 * The applier and capture compute a key's tombstone key in Node
 * (`tombstoneKeyHash`) while the triggers compute it in SQL over OLD/NEW
 * (`UNHEX(SHA2(JSON_ARRAY(<HEX(col) or CAST(col AS CHAR)>), 256))`). They
 * must agree byte for byte on both servers wherever Node returns a hash, or
 * a remote delete and a local re-insert of the same key would look for
 * different tombstones. Each key is inserted and deleted by a plain session
 * (the delete trigger writes the tombstone), and read back between the two
 * as capture encodes a row (mysql2 with the replicator's options, then
 * `encodeRow`), which is the key the envelope carries.
 */
jest.setTimeout(240_000);

const sha = (text: string): string => hash('sha256', text, 'hex');

const INTEGER_EDGES = [
  '0',
  '-1',
  '1',
  '127',
  '-128',
  '9007199254740993',
  '-9223372036854775808',
  '9223372036854775807',
];

/** Control characters MariaDB escapes as `\u001A` and MySQL as `\u001a`. */
const ENGINE_DEPENDENT_CONTROLS = [0x0b, 0x0e, 0x0f, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f];

const TABLES = [
  { name: 'single', ddl: 'CREATE TABLE app.single (id BIGINT PRIMARY KEY, v INT)' },
  {
    name: 'pair',
    ddl: 'CREATE TABLE app.pair (a TINYINT, b BIGINT UNSIGNED, v INT, PRIMARY KEY (a, b))',
  },
  {
    name: 'vc',
    ddl: 'CREATE TABLE app.vc (k VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PRIMARY KEY, v INT)',
  },
  {
    name: 'ch',
    ddl: 'CREATE TABLE app.ch (k CHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PRIMARY KEY, v INT)',
  },
  { name: 'vb', ddl: 'CREATE TABLE app.vb (k VARBINARY(16) PRIMARY KEY, v INT)' },
  { name: 'bn', ddl: 'CREATE TABLE app.bn (k BINARY(4) PRIMARY KEY, v INT)' },
  { name: 'dec2', ddl: 'CREATE TABLE app.dec2 (k DECIMAL(10,2) PRIMARY KEY, v INT)' },
  { name: 'dec0', ddl: 'CREATE TABLE app.dec0 (k DECIMAL(5,0) PRIMARY KEY, v INT)' },
  {
    name: 'combo',
    ddl: 'CREATE TABLE app.combo (s VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, n INT, v INT, PRIMARY KEY (s, n))',
  },
  { name: 'zf', ddl: 'CREATE TABLE app.zf (k INT(5) UNSIGNED ZEROFILL PRIMARY KEY, v INT)' },
];

/** A key to write: column → statement parameter (Buffers for binary columns). */
type KeyParams = Record<string, string | number | Buffer>;

/** What one insert + delete left: the key as the envelope carries it, and the trigger's hash. */
interface Written {
  envelope: RowImage;
  stored: string;
  /** The tombstone's `pk` text, for failure messages. */
  pkText: string;
}

/** Random strings drawing on every class of character the escaping cares about. */
function randomText(random: () => number): string {
  const pools = [
    () => String.fromCharCode(randomInt(random, 0, 0x1f)),
    () => String.fromCharCode(randomInt(random, 0x20, 0x7f)),
    () => '"\\/ '.charAt(randomInt(random, 0, 3)),
    () => String.fromCharCode(randomInt(random, 0x80, 0x7ff)),
    () => String.fromCharCode(randomInt(random, 0x800, 0xd7ff)),
    () => String.fromCodePoint(randomInt(random, 0x10000, 0x10ffff)),
  ];
  let s = '';
  const length = randomInt(random, 0, 20);
  for (let j = 0; j < length; j += 1)
    s += (pools[randomInt(random, 0, pools.length - 1)] as () => string)();
  return s;
}

describe.each<DatabaseEngine>(['mariadb', 'mysql8'])('tombstone key hashes (%s)', (engine) => {
  let region: ChunkRegion;
  let connection: mysql.PoolConnection;
  let tombstones: string;

  beforeAll(async () => {
    region = await startChunkRegion({
      engine,
      region: 'ra',
      dirPrefix: 'key-hash-',
      connectionLimit: 3,
      tables: TABLES,
    });
    tombstones = `\`${region.options.internalSchema}\`._cdc_tombstones`;
    // A plain session: the triggers run for its writes.
    connection = await region.pool.getConnection();
  });

  afterAll(async () => {
    connection?.release();
    await region?.stop();
  });

  async function keyColumns(table: string): Promise<ColumnInfo[]> {
    const info = await describeTable(connection, 'app', table);
    return info!.primaryKey.map((name) => info!.columns.find((c) => c.name === name)!);
  }

  /** Inserts and deletes each key locally (the trigger writes its tombstone); what each left. */
  async function written(table: string, keys: readonly KeyParams[]): Promise<Written[]> {
    const out: Written[] = [];
    for (const key of keys) {
      const columns = Object.keys(key);
      const values = columns.map((c) => key[c]);
      await connection.query(`DELETE FROM ${tombstones} WHERE tbl = ?`, [`app.${table}`]);
      await connection.query(
        `INSERT INTO app.${table} (${columns.join(', ')}, v) VALUES (${columns.map(() => '?').join(', ')}, 1)`,
        values,
      );
      // The table holds this one row: read it as capture would.
      const [rows] = await connection.query<mysql.RowDataPacket[]>(
        `SELECT ${columns.join(', ')} FROM app.${table}`,
      );
      expect(rows).toHaveLength(1);
      await connection.query(`DELETE FROM app.${table}`);
      const [tombs] = await connection.query<mysql.RowDataPacket[]>(
        `SELECT LOWER(HEX(pk_hash)) AS h, CAST(pk AS CHAR) AS pk FROM ${tombstones} WHERE tbl = ?`,
        [`app.${table}`],
      );
      expect(tombs).toHaveLength(1);
      out.push({
        envelope: encodeRow({ ...rows[0] }, new Set()),
        stored: String(tombs[0]!.h),
        pkText: String(tombs[0]!.pk),
      });
    }
    return out;
  }

  /**
   * Every key's Node hash equals the trigger's where `hashed(i)` says Node
   * gives one, and is undefined elsewhere; returns how many were hashed.
   */
  function expectAgreement(
    pk: readonly ColumnInfo[],
    results: readonly Written[],
    hashed: (i: number) => boolean,
  ): number {
    let count = 0;
    results.forEach((w, i) => {
      const ours = tombstoneKeyHash(pk, w.envelope);
      const label = `${JSON.stringify(w.envelope)} → ${w.pkText}`;
      if (hashed(i)) {
        expect([label, ours]).toEqual([label, w.stored]);
        count += 1;
      } else {
        expect([label, ours]).toEqual([label, undefined]);
      }
    });
    return count;
  }

  it('agree with the delete trigger for one BIGINT column, edges and random values', async () => {
    const pk = await keyColumns('single');
    const random = seededRandom(17);
    const keys = [
      ...INTEGER_EDGES,
      ...Array.from({ length: 20 }, () => String(Math.floor((random() - 0.5) * 2 ** 52))),
    ];
    const results = await written(
      'single',
      keys.map((id) => ({ id })),
    );
    expect(expectAgreement(pk, results, () => true)).toBe(keys.length);
    // Values as the binlog reader encodes them too: numbers up to 2^53, decimal strings beyond.
    keys.forEach((id, i) => {
      const envelope = { id: Number.isSafeInteger(Number(id)) ? Number(id) : id };
      expect([id, tombstoneKeyHash(pk, envelope)]).toEqual([id, results[i]!.stored]);
      expect([id, integerKeyHash(pk, envelope)]).toEqual([id, results[i]!.stored]);
    });
  });

  it('agree with the delete trigger for a composite (TINYINT, BIGINT UNSIGNED) key', async () => {
    const pk = await keyColumns('pair');
    const keys = [
      { a: '-128', b: '0' },
      { a: '127', b: '18446744073709551615' },
      { a: '0', b: '42' },
    ];
    const results = await written('pair', keys);
    expect(expectAgreement(pk, results, () => true)).toBe(keys.length);
    keys.forEach((k, i) => {
      const envelope = {
        a: Number(k.a),
        b: Number.isSafeInteger(Number(k.b)) ? Number(k.b) : k.b,
      };
      expect(tombstoneKeyHash(pk, envelope)).toBe(results[i]!.stored);
    });
  });

  it('agree for ZEROFILL integers, padded to the display width as CAST pads them', async () => {
    const pk = await keyColumns('zf');
    const keys = [42, 0, 12345, 1234567, 4294967295];
    const results = await written(
      'zf',
      keys.map((k) => ({ k })),
    );
    expect(results.map((w) => w.stored)).toEqual(
      ['00042', '00000', '12345', '1234567', '4294967295'].map((t) => sha(`["${t}"]`)),
    );
    expect(expectAgreement(pk, results, () => true)).toBe(keys.length);
  });

  it('agree for VARCHAR utf8mb4 keys: escapes, controls, non-ASCII, emoji, spaces, random text', async () => {
    await withSeed(async (seed) => {
      const pk = await keyColumns('vc');
      const random = seededRandom(seed);
      const controls = Array.from({ length: 0x20 }, (_, c) => `<${String.fromCharCode(c)}>`);
      const edges = [
        '',
        'abc',
        'a"b',
        'a\\b',
        'a/b',
        '"\\/"',
        '\u007f',
        '\u0080\u009f',
        '\u00a0é',
        '\u2028\u2029',
        '\ufeff',
        '😀',
        '\u{10ffff}',
        'trailing  ',
        '  ',
        ' leading',
        ...controls,
      ];
      const randoms = Array.from({ length: 60 }, () => randomText(random));
      const keys = [...edges, ...randoms];
      const differs = (s: string): boolean =>
        [...s].some((ch) => ENGINE_DEPENDENT_CONTROLS.includes(ch.codePointAt(0) as number));
      const results = await written(
        'vc',
        keys.map((k) => ({ k })),
      );
      // The key as the envelope carries it is the value written.
      results.forEach((w, i) => expect(w.envelope).toEqual({ k: keys[i] }));
      const hashed = expectAgreement(pk, results, (i) => !differs(keys[i]!));
      // The edges Node leaves to the server: exactly the controls the engines print differently.
      expect(edges.filter((k) => tombstoneKeyHash(pk, { k }) === undefined)).toEqual(
        ENGINE_DEPENDENT_CONTROLS.map((c) => `<${String.fromCharCode(c)}>`),
      );
      expect(hashed).toBeGreaterThanOrEqual(edges.length - ENGINE_DEPENDENT_CONTROLS.length + 10);
      // Why: MariaDB prints their escapes upper case, MySQL lower case.
      for (const c of ENGINE_DEPENDENT_CONTROLS) {
        const hex = c.toString(16).padStart(4, '0');
        const escape = `\\u${engine === 'mariadb' ? hex.toUpperCase() : hex}`;
        const i = edges.indexOf(`<${String.fromCharCode(c)}>`);
        expect([c, results[i]!.stored]).toEqual([c, sha(`["<${escape}>"]`)]);
      }
    });
  });

  it('agree for CHAR(10) keys, read back without their trailing spaces', async () => {
    const pk = await keyColumns('ch');
    const keys = ['ab', '', 'ab  ', ' a', 'abcdefghij', 'é😀', 'a"\\/\n'];
    const results = await written(
      'ch',
      keys.map((k) => ({ k })),
    );
    expect(results[2]!.envelope).toEqual({ k: 'ab' });
    expect(expectAgreement(pk, results, () => true)).toBe(keys.length);
    // A CHAR value with trailing spaces is not what the row holds.
    expect(tombstoneKeyHash(pk, { k: 'ab  ' })).toBeUndefined();
    expect(results[2]!.stored).toBe(results[0]!.stored);
  });

  it('agree for VARBINARY keys (upper-case HEX of the bytes, trailing zeros kept)', async () => {
    await withSeed(async (seed) => {
      const pk = await keyColumns('vb');
      const random = seededRandom(seed);
      const keys = [
        Buffer.alloc(0),
        Buffer.from([0]),
        Buffer.from([0x00, 0xff]),
        Buffer.from('abc'),
        Buffer.from([0x61, 0, 0]),
        ...Array.from({ length: 20 }, () =>
          Buffer.from(
            Array.from({ length: randomInt(random, 1, 16) }, () => randomInt(random, 0, 255)),
          ),
        ),
      ];
      const results = await written(
        'vb',
        keys.map((k) => ({ k })),
      );
      results.forEach((w, i) => expect(w.envelope).toEqual({ k: keys[i]!.toString('base64') }));
      expect(expectAgreement(pk, results, () => true)).toBe(keys.length);
    });
  });

  it('agree for BINARY(4) keys, padded with 0x00 as the server returns them', async () => {
    const pk = await keyColumns('bn');
    const keys = [
      Buffer.from([0x41]),
      Buffer.alloc(0),
      Buffer.from([1, 2, 3, 4]),
      Buffer.from([0, 0, 0, 0]),
      Buffer.from([0xff, 0, 0xff]),
    ];
    const results = await written(
      'bn',
      keys.map((k) => ({ k })),
    );
    results.forEach((w, i) => {
      const padded = Buffer.concat([keys[i]!, Buffer.alloc(4 - keys[i]!.length)]);
      expect(w.envelope).toEqual({ k: padded.toString('base64') });
    });
    expect(expectAgreement(pk, results, () => true)).toBe(keys.length);
    // An unpadded value (the binlog row image strips trailing zeros) names the same row.
    keys.forEach((k, i) =>
      expect(tombstoneKeyHash(pk, { k: k.toString('base64') })).toBe(results[i]!.stored),
    );
    expect(tombstoneKeyHash(pk, { k: Buffer.from('ABCDE').toString('base64') })).toBeUndefined();
  });

  it('agree for DECIMAL keys as the server prints them, scale 2 and scale 0', async () => {
    const pk2 = await keyColumns('dec2');
    const pk0 = await keyColumns('dec0');
    const keys2 = [
      '-0.50',
      '0.00',
      '0.01',
      '-0.01',
      '12345678.99',
      '-12345678.99',
      '100.00',
      '-7.10',
    ];
    const keys0 = ['-7', '0', '99999', '-99999', '10'];
    const results2 = await written(
      'dec2',
      keys2.map((k) => ({ k })),
    );
    const results0 = await written(
      'dec0',
      keys0.map((k) => ({ k })),
    );
    results2.forEach((w, i) => expect(w.envelope).toEqual({ k: keys2[i] }));
    results0.forEach((w, i) => expect(w.envelope).toEqual({ k: keys0[i] }));
    expect(expectAgreement(pk2, results2, () => true)).toBe(keys2.length);
    expect(expectAgreement(pk0, results0, () => true)).toBe(keys0.length);
    // Other spellings of the same numbers are left to the server.
    for (const k of ['-0.5', '0', '-0.00', '012.00', '100'])
      expect([k, tombstoneKeyHash(pk2, { k })]).toEqual([k, undefined]);
    expect(tombstoneKeyHash(pk0, { k: '-0' })).toBeUndefined();
  });

  it('agree for a composite (VARCHAR, INT) key', async () => {
    const pk = await keyColumns('combo');
    const keys = [
      { s: 'a', n: 1 },
      { s: '', n: -2147483648 },
      { s: 'x"y\\z', n: 2147483647 },
      { s: 'é😀 ', n: 0 },
      { s: '\u001a', n: 5 },
    ];
    const results = await written('combo', keys);
    results.forEach((w, i) => expect(w.envelope).toEqual(keys[i]));
    expect(expectAgreement(pk, results, (i) => i < 4)).toBe(4);
  });

  /**
   * Inserts and deletes each key of app.vc locally (the trigger's tombstone),
   * then applies an older remote upsert of every key in one chunk: what the
   * chunk decided, and the keys' rows left.
   */
  async function olderUpsertsAfterLocalDeletes(keys: readonly string[]): Promise<{
    outcomes: Map<string, number>;
    rows: mysql.RowDataPacket[];
  }> {
    const applier = chunkApplier(region.pool, {
      region: 'ra',
      internalSchema: region.options.internalSchema,
      schema: 'app',
      table: 'vc',
    });
    for (const key of keys) {
      await connection.query('INSERT INTO app.vc (k, v) VALUES (?, 1)', [key]);
      await connection.query('DELETE FROM app.vc WHERE k = ?', [key]);
    }
    const old = rowVersion('rb', 1_000_000, {});
    const result = await applier.apply(
      keys.map((k) => ({
        op: 'upsert' as const,
        sourceRegion: 'rb',
        db: 'app',
        table: 'vc',
        pk: { k },
        after: { k, v: 2 },
        image: { k, v: 2 },
        version: old,
        commitTs: 1,
      })),
      'rb',
    ).result;
    const [rows] = await connection.query<mysql.RowDataPacket[]>(
      'SELECT k FROM app.vc WHERE k IN (?)',
      [keys],
    );
    return { outcomes: result.outcomes, rows };
  }

  it('lets the applier find a text key’s trigger tombstone with its literal hash', async () => {
    // A local delete of a VARCHAR key leaves the trigger's tombstone; an older
    // remote upsert of that key must lose to it (the applier looks it up by the
    // Node hash, the server computes none).
    const key = 'tomb "é😀" \\ /';
    const pk = await keyColumns('vc');
    expect(tombstoneKeyHash(pk, { k: key })).toBeDefined();
    const { outcomes, rows } = await olderUpsertsAfterLocalDeletes([key]);
    // Lost to the tombstone (stale or a lost conflict, by the vectors), never applied.
    expect([...outcomes.values()].reduce((a, b) => a + b, 0)).toBe(1);
    expect(outcomes.get('applied')).toBeUndefined();
    expect(rows).toHaveLength(0);
  });

  it('lets the applier find the tombstones of a chunk with a key Node does not hash (the server hashes them all)', async () => {
    const pk = await keyColumns('vc');
    const keys = ['plain tombstoned', 'ctl \u001a tombstoned'];
    expect(keys.map((k) => tombstoneKeyHash(pk, { k }) === undefined)).toEqual([false, true]);
    const { outcomes, rows } = await olderUpsertsAfterLocalDeletes(keys);
    expect([...outcomes.values()].reduce((a, b) => a + b, 0)).toBe(2);
    expect(outcomes.get('applied')).toBeUndefined();
    expect(rows).toHaveLength(0);
  });
});
