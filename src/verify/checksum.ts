import { isBinaryDataType } from '../mysql/column-types.js';
import { qualifiedName, quoteId } from '../mysql/identifiers.js';
import type { ColumnInfo } from '../mysql/introspect.js';
import { keyOrder, keyRange, type KeyValues, type SqlFragment } from '../snapshot/key-range.js';
import { keyParam, type TableShape } from '../snapshot/rows.js';

/**
 * The SQL of `verify`'s first pass: per primary-key chunk, a row count and a
 * 128-bit order-independent checksum of the data columns, computed by each
 * region's server so only two numbers per chunk cross the network.
 */

/**
 * One column's value as an unambiguous byte string: `<length>:<bytes>`, or
 * `N` for NULL. Length-prefixing means no value can be confused with a
 * neighbour or with NULL (unlike a plain separator). Binary types go
 * through HEX, everything else through its text form as binary (no
 * collation can make two different strings compare equal, and mixing
 * character sets in CONCAT cannot fail).
 */
export function columnDigestPart(column: ColumnInfo, alias = 't'): string {
  const ref = `${alias}.${quoteId(column.name)}`;
  const value = isBinaryDataType(column.dataType) ? `HEX(${ref})` : `CAST(${ref} AS BINARY)`;
  return `COALESCE(CONCAT(LENGTH(${value}), ':', ${value}), 'N')`;
}

/** MD5 of a row's data columns (hex), in the given column order. */
export function rowDigestSql(columns: readonly ColumnInfo[], alias = 't'): string {
  if (columns.length === 0) throw new Error('a row digest needs at least one column');
  return `MD5(CONCAT(${columns.map((c) => columnDigestPart(c, alias)).join(', ')}))`;
}

/**
 * Count and checksum of the rows in `(after, atMost]`: the XOR of each row's
 * MD5, as two 64-bit halves. XOR is order-independent and the key makes rows
 * unique, so equal sets of rows give equal sums.
 */
export function chunkChecksumSql(
  shape: TableShape,
  after: KeyValues | null,
  atMost: KeyValues | null,
): SqlFragment {
  const range = keyRange(
    shape.keyColumns.map((c) => c.name),
    after,
    atMost,
    keyParam(shape),
    't',
  );
  return {
    sql:
      `SELECT COUNT(*) AS n,` +
      ` CAST(COALESCE(BIT_XOR(CAST(CONV(SUBSTRING(d, 1, 16), 16, 10) AS UNSIGNED)), 0) AS CHAR) AS x1,` +
      ` CAST(COALESCE(BIT_XOR(CAST(CONV(SUBSTRING(d, 17, 16), 16, 10) AS UNSIGNED)), 0) AS CHAR) AS x2` +
      ` FROM (SELECT ${rowDigestSql(shape.dataColumns)} AS d FROM ${qualifiedName(shape.schema, shape.table)} AS t WHERE ${range.sql}) AS r`,
    params: range.params,
  };
}

/**
 * The key that ends the chunk starting after `after`: the `chunkSize`-th key
 * (not beyond `atMost`), found by walking the primary-key index. No row →
 * the chunk runs to `atMost` (to the end of the table when null).
 */
export function chunkEndSql(
  shape: TableShape,
  after: KeyValues | null,
  chunkSize: number,
  atMost: KeyValues | null = null,
): SqlFragment {
  const names = shape.keyColumns.map((c) => c.name);
  const range = keyRange(names, after, atMost, keyParam(shape), 't');
  return {
    sql:
      `SELECT ${keyOrder(names, 't')} FROM ${qualifiedName(shape.schema, shape.table)} AS t` +
      ` WHERE ${range.sql} ORDER BY ${keyOrder(names, 't')} LIMIT 1 OFFSET ${Math.max(0, Math.floor(chunkSize) - 1)}`,
    params: range.params,
  };
}

/** A chunk's summary in one region. */
export interface ChunkSummary {
  n: number;
  sum: string;
}

export function summariesEqual(summaries: readonly ChunkSummary[]): boolean {
  const first = summaries[0];
  return summaries.every((s) => s.n === first?.n && s.sum === first.sum);
}
