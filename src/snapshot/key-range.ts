import type { JsonScalar } from '../bus/envelope.js';
import { quoteId } from '../mysql/identifiers.js';

/**
 * Primary-key range predicates for chunked reads (snapshot and verify).
 *
 * A chunk is a half-open key range `(after, atMost]` walked in key order, so
 * every chunk read is an index range scan of at most one chunk of rows and
 * nothing is held between chunks. Composite keys are compared
 * lexicographically, spelled out as a disjunction (`a > ? OR (a = ? AND b > ?)`)
 * rather than as a row constructor (`(a, b) > (?, ?)`): both servers turn the
 * expanded form into an index range, while row-constructor ranges are not
 * optimised by every MariaDB version.
 */

/** A boundary of a key range: the key's values in key order, as the envelope encodes them. */
export type KeyValues = readonly JsonScalar[];

export interface SqlFragment {
  sql: string;
  params: unknown[];
}

/**
 * `key > values` (op `>`) or `key <= values` (op `<=`) over the key columns,
 * lexicographically. `toParam` turns an encoded value back into a statement
 * parameter (e.g. base64 → bytes for binary key columns).
 */
export function keyComparison(
  columns: readonly string[],
  op: '>' | '<=',
  values: KeyValues,
  toParam: (index: number, value: JsonScalar) => unknown = (_i, v) => v,
  alias?: string,
): SqlFragment {
  if (columns.length === 0) throw new Error('a key range needs at least one key column');
  if (values.length !== columns.length) {
    throw new Error(
      `a key boundary needs ${columns.length} value(s) (${columns.join(', ')}), got ${values.length}`,
    );
  }
  const name = (i: number): string =>
    (alias === undefined ? '' : `${alias}.`) + quoteId(columns[i] as string);
  const terms: string[] = [];
  const params: unknown[] = [];
  for (let i = 0; i < columns.length; i += 1) {
    const last = i === columns.length - 1;
    const strict = op === '>' ? '>' : last ? '<=' : '<';
    const parts: string[] = [];
    for (let j = 0; j < i; j += 1) {
      parts.push(`${name(j)} = ?`);
      params.push(toParam(j, values[j] as JsonScalar));
    }
    parts.push(`${name(i)} ${strict} ?`);
    params.push(toParam(i, values[i] as JsonScalar));
    terms.push(parts.length === 1 ? (parts[0] as string) : `(${parts.join(' AND ')})`);
  }
  return { sql: terms.length === 1 ? (terms[0] as string) : `(${terms.join(' OR ')})`, params };
}

/** `(after, atMost]` as one predicate; either end may be open (null). `TRUE` when both are. */
export function keyRange(
  columns: readonly string[],
  after: KeyValues | null,
  atMost: KeyValues | null,
  toParam?: (index: number, value: JsonScalar) => unknown,
  alias?: string,
): SqlFragment {
  const parts: SqlFragment[] = [];
  if (after !== null) parts.push(keyComparison(columns, '>', after, toParam, alias));
  if (atMost !== null) parts.push(keyComparison(columns, '<=', atMost, toParam, alias));
  if (parts.length === 0) return { sql: 'TRUE', params: [] };
  return {
    sql: parts.map((p) => p.sql).join(' AND '),
    params: parts.flatMap((p) => p.params),
  };
}

/** `ORDER BY` clause body for the key, ascending. */
export function keyOrder(columns: readonly string[], alias?: string): string {
  return columns.map((c) => (alias === undefined ? '' : `${alias}.`) + quoteId(c)).join(', ');
}

/** Stable identity of a key across regions and runs: its encoded values in key order. */
export function keyId(values: KeyValues): string {
  return JSON.stringify(values);
}
