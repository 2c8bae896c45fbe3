import { describe, expect, it } from '@jest/globals';
import type { ColumnInfo } from '../mysql/introspect.js';
import type { TableShape } from '../snapshot/rows.js';
import {
  chunkChecksumSql,
  chunkEndSql,
  columnDigestPart,
  rowDigestSql,
  summariesEqual,
} from './checksum.js';

const column = (name: string, dataType: string): ColumnInfo => ({
  name,
  dataType,
  columnType: dataType,
  nullable: true,
  invisible: false,
});

const shape: TableShape = {
  schema: 'app',
  table: 't',
  name: 'app.t',
  dataColumns: [column('id', 'int'), column('raw', 'varbinary'), column('note', 'varchar')],
  keyColumns: [column('id', 'int')],
};

describe('verify checksum SQL', () => {
  it('length-prefixes each value, marks NULL, and hexes binary columns', () => {
    expect(columnDigestPart(column('note', 'varchar'))).toBe(
      "COALESCE(CONCAT(LENGTH(CAST(t.`note` AS BINARY)), ':', CAST(t.`note` AS BINARY)), 'N')",
    );
    expect(columnDigestPart(column('raw', 'blob'), 'x')).toBe(
      "COALESCE(CONCAT(LENGTH(HEX(x.`raw`)), ':', HEX(x.`raw`)), 'N')",
    );
  });

  it('digests the data columns in order (the version columns are never among them)', () => {
    const sql = rowDigestSql(shape.dataColumns);
    expect(sql.startsWith('MD5(CONCAT(')).toBe(true);
    expect(sql.indexOf('`id`')).toBeLessThan(sql.indexOf('`raw`'));
    expect(sql.indexOf('`raw`')).toBeLessThan(sql.indexOf('`note`'));
    expect(sql).not.toContain('_cdc_');
    expect(() => rowDigestSql([])).toThrow();
  });

  it('sums a chunk by count and a two-half XOR of the row digests over the key range', () => {
    const { sql, params } = chunkChecksumSql(shape, [100], [200]);
    expect(sql).toContain('COUNT(*) AS n');
    expect(sql).toContain('BIT_XOR(CAST(CONV(SUBSTRING(d, 1, 16), 16, 10) AS UNSIGNED))');
    expect(sql).toContain('BIT_XOR(CAST(CONV(SUBSTRING(d, 17, 16), 16, 10) AS UNSIGNED))');
    expect(sql).toContain('FROM `app`.`t` AS t WHERE t.`id` > ? AND t.`id` <= ?');
    expect(params).toEqual([100, 200]);
    expect(chunkChecksumSql(shape, null, null).sql).toContain('WHERE TRUE');
  });

  it('finds the end of a chunk as the chunkSize-th key after the previous end', () => {
    expect(chunkEndSql(shape, [100], 1000)).toEqual({
      sql: 'SELECT t.`id` FROM `app`.`t` AS t WHERE t.`id` > ? ORDER BY t.`id` LIMIT 1 OFFSET 999',
      params: [100],
    });
    expect(chunkEndSql(shape, null, 1).sql).toContain(
      'WHERE TRUE ORDER BY t.`id` LIMIT 1 OFFSET 0',
    );
    expect(chunkEndSql(shape, [1], 10, [50])).toEqual({
      sql: 'SELECT t.`id` FROM `app`.`t` AS t WHERE t.`id` > ? AND t.`id` <= ? ORDER BY t.`id` LIMIT 1 OFFSET 9',
      params: [1, 50],
    });
  });

  it('compares summaries by count and sum', () => {
    expect(
      summariesEqual([
        { n: 2, sum: '1:2' },
        { n: 2, sum: '1:2' },
      ]),
    ).toBe(true);
    expect(
      summariesEqual([
        { n: 2, sum: '1:2' },
        { n: 2, sum: '1:3' },
      ]),
    ).toBe(false);
    expect(
      summariesEqual([
        { n: 2, sum: '0:0' },
        { n: 3, sum: '0:0' },
      ]),
    ).toBe(false);
  });
});
