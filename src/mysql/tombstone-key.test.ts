import { hash } from 'node:crypto';
import { randomInt, seededRandom, withSeed } from '../../test/support/random.js';
import { tombstoneKeyHash, type TombstoneKeyColumn } from './tombstone-key.js';

const sha = (text: string): string => hash('sha256', text, 'hex');

const col = (dataType: string, columnType?: string, name = 'k'): TombstoneKeyColumn =>
  columnType === undefined ? { name, dataType } : { name, dataType, columnType };

const one = (
  column: TombstoneKeyColumn,
  value: string | number | boolean | null,
): string | undefined => tombstoneKeyHash([column], { [column.name]: value });

/**
 * The servers' printing of a string inside JSON_ARRAY, written out from what
 * MariaDB 10.11 and MySQL 8.0.12 print (test/integration/apply/key-hash.test.ts
 * checks them), independently of the JSON.stringify the code uses.
 */
function serverJsonString(value: string): string {
  const short: Record<number, string> = { 8: '\\b', 9: '\\t', 10: '\\n', 12: '\\f', 13: '\\r' };
  let out = '"';
  for (const ch of value) {
    const c = ch.codePointAt(0) as number;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (short[c] !== undefined) out += short[c];
    else if (c < 0x20) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

describe('tombstoneKeyHash', () => {
  it('hashes integer keys as quoted decimal text, composite parts joined by ", "', () => {
    const pk = [col('tinyint', 'tinyint(4)', 'a'), col('bigint', 'bigint(20) unsigned', 'b')];
    expect(tombstoneKeyHash(pk, { a: -128, b: '18446744073709551615' })).toBe(
      sha('["-128", "18446744073709551615"]'),
    );
    expect(one(col('int', 'int(11)'), 0)).toBe(sha('["0"]'));
    expect(one(col('int', 'int'), -0)).toBe(sha('["0"]'));
    // ZEROFILL: CAST(col AS CHAR) pads to the display width.
    expect(one(col('int', 'int(5) unsigned zerofill'), 42)).toBe(sha('["00042"]'));
    expect(one(col('int', 'int(5) unsigned zerofill'), 1234567)).toBe(sha('["1234567"]'));
    expect(one(col('bigint', 'bigint(20) unsigned zerofill'), '7')).toBe(
      sha('["00000000000000000007"]'),
    );
  });

  it('gives up on integers it cannot print exactly', () => {
    const int = col('int', 'int(11)');
    expect(one(int, '-0')).toBeUndefined();
    expect(one(int, '007')).toBeUndefined();
    expect(one(int, '+7')).toBeUndefined();
    expect(one(int, 2 ** 53)).toBeUndefined();
    expect(one(int, 1.5)).toBeUndefined();
    expect(one(int, true)).toBeUndefined();
    expect(one(int, null)).toBeUndefined();
    expect(tombstoneKeyHash([int], {})).toBeUndefined();
    // ZEROFILL without a display width, or a negative value in it (not a value it holds).
    expect(one(col('int', 'int unsigned zerofill'), 42)).toBeUndefined();
    expect(one(col('int', 'int(5) unsigned zerofill'), -42)).toBeUndefined();
    // Without COLUMN_TYPE, ZEROFILL cannot be ruled out.
    expect(one(col('int'), 42)).toBeUndefined();
    expect(tombstoneKeyHash([], {})).toBeUndefined();
  });

  it('prints text as both servers do', () => {
    const varchar = col('varchar', 'varchar(64)');
    const cases: [string, string][] = [
      ['', '[""]'],
      ['abc', '["abc"]'],
      ['a"b', '["a\\"b"]'],
      ['a\\b', '["a\\\\b"]'],
      ['a/b', '["a/b"]'],
      ['\b\t\n\f\r', '["\\b\\t\\n\\f\\r"]'],
      ['\u0000\u0001\u0007\u0010\u0019', '["\\u0000\\u0001\\u0007\\u0010\\u0019"]'],
      ['\u007f\u0080\u00a0é\u2028\u2029\ufeff', '["\u007f\u0080\u00a0é\u2028\u2029\ufeff"]'],
      ['😀', '["😀"]'],
      ['trailing  ', '["trailing  "]'],
    ];
    for (const [value, text] of cases)
      expect([value, one(varchar, value)]).toEqual([value, sha(text)]);
    expect(one(col('text', 'text'), 'x')).toBe(sha('["x"]'));
    expect(one(col('char', 'char(10)'), 'ab')).toBe(sha('["ab"]'));
  });

  it('gives up on text the servers print differently, cannot hold, or CHAR would change', () => {
    const varchar = col('varchar', 'varchar(64)');
    for (const c of [0x0b, 0x0e, 0x0f, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f])
      expect(one(varchar, `a${String.fromCharCode(c)}`)).toBeUndefined();
    expect(one(varchar, 'a\ud800')).toBeUndefined();
    expect(one(varchar, '\udc00a')).toBeUndefined();
    expect(one(varchar, '\ud83d\ude00')).toBe(sha('["😀"]'));
    expect(one(varchar, 7)).toBeUndefined();
    expect(one(col('char', 'char(10)'), 'ab ')).toBeUndefined();
  });

  it('hashes binary keys as upper-case hex of the bytes, BINARY(n) padded to n', () => {
    const bytes = Buffer.from([0x00, 0xab, 0x7f, 0x00]);
    expect(one(col('varbinary', 'varbinary(16)'), bytes.toString('base64'))).toBe(
      sha('["00AB7F00"]'),
    );
    expect(one(col('varbinary'), '')).toBe(sha('[""]'));
    const binary = col('binary', 'binary(4)');
    expect(one(binary, bytes.toString('base64'))).toBe(sha('["00AB7F00"]'));
    expect(one(binary, Buffer.from('A').toString('base64'))).toBe(sha('["41000000"]'));
    expect(one(binary, Buffer.from('ABCDE').toString('base64'))).toBeUndefined();
    expect(one(col('binary'), 'QQ==')).toBeUndefined();
    expect(one(binary, 'QQ')).toBeUndefined(); // not canonical base64
    expect(one(binary, 'Q Q==')).toBeUndefined();
    expect(one(binary, 1)).toBeUndefined();
  });

  it('hashes DECIMAL keys in the column print form only', () => {
    const d = col('decimal', 'decimal(10,2)');
    expect(one(d, '-0.50')).toBe(sha('["-0.50"]'));
    expect(one(d, '0.00')).toBe(sha('["0.00"]'));
    expect(one(d, '12345678.99')).toBe(sha('["12345678.99"]'));
    expect(one(col('decimal', 'decimal(5,0)'), '-7')).toBe(sha('["-7"]'));
    expect(one(col('decimal', 'decimal(2,2)'), '-0.50')).toBe(sha('["-0.50"]'));
    expect(one(col('decimal', 'decimal(10,2) unsigned'), '3.10')).toBe(sha('["3.10"]'));
    for (const bad of [
      '0.5',
      '0.500',
      '1',
      '-0.00',
      '00.50',
      '+1.00',
      '.50',
      '123456789.00',
      '1e2',
    ])
      expect([bad, one(d, bad)]).toEqual([bad, undefined]);
    expect(one(col('decimal', 'decimal(5,0)'), '-0')).toBeUndefined();
    expect(one(col('decimal', 'decimal(5,0)'), '5.')).toBeUndefined();
    expect(one(d, 1.5)).toBeUndefined();
    expect(one(col('decimal'), '1.50')).toBeUndefined();
    expect(one(col('decimal', 'decimal(6,2) unsigned zerofill'), '3.10')).toBeUndefined();
  });

  it('leaves every other type to the server', () => {
    for (const [dataType, columnType, value] of [
      ['datetime', 'datetime(6)', '2024-01-01 00:00:00.000000'],
      ['date', 'date', '2024-01-01'],
      ['timestamp', 'timestamp(6)', '2024-01-01 00:00:00.000000'],
      ['time', 'time', '10:00:00'],
      ['year', 'year(4)', 2024],
      ['float', 'float', 1.5],
      ['double', 'double', 1.5],
      ['enum', "enum('a','b')", 'a'],
      ['set', "set('a','b')", 'a'],
      ['bit', 'bit(8)', 'AQ=='],
      ['json', 'json', '{}'],
      ['blob', 'blob', 'AQ=='],
      ['uuid', 'uuid', '00000000-0000-0000-0000-000000000000'],
    ] as const)
      expect(one(col(dataType, columnType), value)).toBeUndefined();
    // One part the server must compute makes the whole key so.
    expect(
      tombstoneKeyHash([col('int', 'int(11)', 'a'), col('date', 'date', 'b')], {
        a: 1,
        b: '2024-01-01',
      }),
    ).toBeUndefined();
  });

  it('agrees with the written-out server printing on seeded random strings', async () => {
    await withSeed((seed) => {
      const random = seededRandom(seed);
      // Every class of character: controls, ASCII, Latin-1, BMP, astral, and the special ones.
      const pools = [
        () => String.fromCharCode(randomInt(random, 0, 0x1f)),
        () => String.fromCharCode(randomInt(random, 0x20, 0x7f)),
        () => '"\\/ '.charAt(randomInt(random, 0, 3)),
        () => String.fromCharCode(randomInt(random, 0x80, 0x7ff)),
        () => String.fromCharCode(randomInt(random, 0x800, 0xd7ff)),
        () => String.fromCodePoint(randomInt(random, 0x10000, 0x10ffff)),
      ];
      const pk = [col('varchar', 'varchar(200)', 's'), col('int', 'int(11)', 'n')];
      let hashed = 0;
      for (let i = 0; i < 2000; i += 1) {
        let s = '';
        const length = randomInt(random, 0, 12);
        for (let j = 0; j < length; j += 1)
          s += (pools[randomInt(random, 0, pools.length - 1)] as () => string)();
        const n = randomInt(random, -1000, 1000);
        const differs = /[\u000b\u000e\u000f\u001a-\u001f]/.test(s); // eslint-disable-line no-control-regex
        const expected = differs ? undefined : sha(`[${serverJsonString(s)}, "${n}"]`);
        expect([s, tombstoneKeyHash(pk, { s, n })]).toEqual([s, expected]);
        if (!differs) hashed += 1;
      }
      expect(hashed).toBeGreaterThan(1000);
      return Promise.resolve();
    });
  });
});
