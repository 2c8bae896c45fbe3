import type { JsonScalar, RowImage } from '../bus/envelope.js';
import { CdcError } from '../core/errors.js';
import { KEY_HASH_COLUMN } from '../mysql/internal-tables.js';

/**
 * A value the binlog reader could not decode (a malformed MySQL binary JSON
 * document): encoding it fails, so the row goes to the dead-letter topic
 * instead of being published wrong.
 */
export class UndecodableValue {
  readonly message: string;
  constructor(what: string, cause: unknown) {
    this.message = `${what}: ${cause instanceof Error ? cause.message : String(cause)}`;
  }
}

/**
 * Turns a value decoded by zongji (or read by mysql2 with the same options)
 * into its exact wire form. zongji already returns integers beyond 2^53 and
 * DECIMAL as strings and temporal values as strings (`dateStrings`); what is
 * left is binary data, which JSON cannot carry raw. JSON columns arrive as
 * text: MariaDB stores them as text, and MySQL's binary JSON is printed by
 * the binlog reader exactly as MySQL prints it (mysql-json.ts).
 */
export function encodeValue(value: unknown, column: string): JsonScalar {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) {
      throw new CdcError(`column ${column}: non-finite number ${String(value)}`, {
        code: 'VALUE_INVALID',
      });
    }
    return value;
  }
  if (typeof value === 'bigint') return value.toString();
  if (Buffer.isBuffer(value)) return value.toString('base64');
  if (value instanceof UndecodableValue) {
    throw new CdcError(`column ${column}: cannot decode ${value.message}`, {
      code: 'VALUE_INVALID',
    });
  }
  if (typeof value === 'object') {
    // A JSON value decoded by another reader than the binlog one: carry it as text.
    return JSON.stringify(value);
  }
  throw new CdcError(`column ${column}: cannot encode a value of type ${typeof value}`, {
    code: 'VALUE_INVALID',
  });
}

/**
 * Encodes a row image, leaving out the columns `skip` names (the replicator's
 * own `_cdc_*` version columns, which travel as the event's version instead)
 * and, whatever `skip` says, the key-hash column of governed tables, which is
 * never data (`KEY_HASH_COLUMN`): rows read by the table's described columns
 * (the applier's conflict records) or by `SELECT *` where the column is
 * visible (MySQL before 8.0.23) carry it.
 */
export function encodeRow(row: Record<string, unknown>, skip: ReadonlySet<string>): RowImage {
  const image: RowImage = {};
  // Object.keys, not Object.entries: same columns in the same order, without a pair array per column.
  const columns = Object.keys(row);
  for (let i = 0; i < columns.length; i += 1) {
    const column = columns[i] as string;
    if (skip.has(column) || column === KEY_HASH_COLUMN) continue;
    image[column] = encodeValue(row[column], column);
  }
  return image;
}

/** The primary-key part of an encoded row, in key order. */
export function primaryKeyOf(
  image: RowImage,
  primaryKey: readonly string[],
  where: string,
): RowImage {
  const pk: RowImage = {};
  for (const column of primaryKey) {
    if (!(column in image)) {
      throw new CdcError(`${where}: row image lacks primary-key column ${column}`, {
        code: 'ROW_INVALID',
      });
    }
    pk[column] = image[column] ?? null;
  }
  return pk;
}
