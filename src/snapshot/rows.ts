import type mysql from 'mysql2/promise';
import type { JsonScalar, RowImage } from '../bus/envelope.js';
import { toParam } from '../apply/batch-applier.js';
import { encodeRow } from '../capture/row-codec.js';
import { CdcError } from '../core/errors.js';
import type { MysqlConnection } from '../mysql/connection.js';
import { qualifiedName, quoteId } from '../mysql/identifiers.js';
import { canonicalJsonText } from '../mysql/dialect.js';
import { INTERNAL_TABLES, isInternalColumn, VERSION_COLUMNS } from '../mysql/internal-tables.js';
import type { ColumnInfo, TableInfo } from '../mysql/introspect.js';
import { canonicalKeyPart } from '../prepare/ddl.js';
import { decodeStoredVersion, effectiveVersion, type RowVersion } from '../versioning/version.js';
import { keyId, keyOrder, keyRange, type KeyValues, type SqlFragment } from './key-range.js';

/**
 * Reading rows together with their versions (DESIGN.md §3), shared by
 * `snapshot` (which publishes them) and `verify` (which compares them).
 * Every read is a plain consistent read: InnoDB takes no row or table locks
 * for it, so application writes never wait on a snapshot or a verify.
 */

const TS_ALIAS = '_cdc_ts_us';
const VER_ALIAS = '_cdc_ver_text';

/** A replicated table as the chunked readers see it. */
export interface TableShape {
  schema: string;
  table: string;
  /** `schema.table`. */
  name: string;
  /** Every column except the internal `_cdc_ts`, `_cdc_ver` and `_cdc_key_hash`, in table order. */
  dataColumns: ColumnInfo[];
  /** Key columns in key order. */
  keyColumns: ColumnInfo[];
  /**
   * Columns read as JSON values (`canonicalJsonText`) rather than as text:
   * set by `verify` for JSON columns of a fleet whose servers store JSON
   * differently (MySQL's normalised binary JSON, MariaDB's text).
   */
  jsonValueColumns?: ReadonlySet<string>;
}

/** Checks that a table can be read in key chunks with versions, naming what is missing. */
export function tableShape(info: TableInfo, where: string): TableShape {
  const name = `${info.schema}.${info.table}`;
  if (info.primaryKey.length === 0) {
    throw new CdcError(`${where}: table ${name} has no primary key; it cannot be replicated`, {
      code: 'TABLE_NO_PRIMARY_KEY',
    });
  }
  const have = new Set(info.columns.map((c) => c.name));
  const missing = [VERSION_COLUMNS.ts, VERSION_COLUMNS.ver].filter((c) => !have.has(c));
  if (missing.length > 0) {
    throw new CdcError(
      `${where}: table ${name} lacks ${missing.join(', ')}; run cdc-replicator prepare for this region first`,
      { code: 'NOT_PREPARED' },
    );
  }
  const byName = new Map(info.columns.map((c) => [c.name, c]));
  return {
    schema: info.schema,
    table: info.table,
    name,
    dataColumns: info.columns.filter((c) => !isInternalColumn(c.name)),
    keyColumns: info.primaryKey.map((c) => byName.get(c) as ColumnInfo),
  };
}

/** Each data column's COLUMN_TYPE, as capture has them from the binlog (masks and key hashes need them). */
export function columnTypesOf(shape: TableShape): Record<string, string> {
  return Object.fromEntries(shape.dataColumns.map((c) => [c.name, c.columnType]));
}

/** A key as a row image of the key columns, in key order. */
export function keyImage(shape: TableShape, key: KeyValues): RowImage {
  const pk: RowImage = {};
  shape.keyColumns.forEach((c, i) => (pk[c.name] = key[i] ?? null));
  return pk;
}

/** One row with its effective version (or why its stored version could not be read). */
export interface VersionedRow {
  id: string;
  key: KeyValues;
  pk: RowImage;
  image: RowImage;
  version: RowVersion | null;
  versionError?: string;
}

/** An encoded key value as a statement parameter for the key column at `index`. */
export function keyParam(shape: TableShape) {
  return (index: number, value: JsonScalar): unknown =>
    toParam(shape.keyColumns[index] as ColumnInfo, value);
}

function keyNames(shape: TableShape): string[] {
  return shape.keyColumns.map((c) => c.name);
}

/** The select list: data columns, then the version inputs (µs and text). */
function selectList(shape: TableShape, alias = 't'): string {
  return [
    ...shape.dataColumns.map((c) => `${alias}.${quoteId(c.name)}`),
    `CAST(UNIX_TIMESTAMP(${alias}.${quoteId(VERSION_COLUMNS.ts)}) * 1000000 AS UNSIGNED) AS ${TS_ALIAS}`,
    `CAST(${alias}.${quoteId(VERSION_COLUMNS.ver)} AS CHAR) AS ${VER_ALIAS}`,
  ].join(', ');
}

/** `SELECT … WHERE key in (after, atMost] ORDER BY key [LIMIT n]`, with its parameters. */
export function rangeSelect(
  shape: TableShape,
  after: KeyValues | null,
  atMost: KeyValues | null,
  limit?: number,
): SqlFragment {
  const range = keyRange(keyNames(shape), after, atMost, keyParam(shape), 't');
  return {
    sql:
      `SELECT ${selectList(shape)} FROM ${qualifiedName(shape.schema, shape.table)} AS t` +
      ` WHERE ${range.sql} ORDER BY ${keyOrder(keyNames(shape), 't')}` +
      (limit === undefined ? '' : ` LIMIT ${Math.floor(limit)}`),
    params: range.params,
  };
}

/** `SELECT … WHERE key IN (…)` for the given keys. */
export function keysSelect(shape: TableShape, keys: readonly KeyValues[]): SqlFragment {
  const names = keyNames(shape);
  const toParam = keyParam(shape);
  const tuple = `(${names.map(() => '?').join(', ')})`;
  return {
    sql:
      `SELECT ${selectList(shape)} FROM ${qualifiedName(shape.schema, shape.table)} AS t` +
      ` WHERE (${keyOrder(names, 't')}) IN (${keys.map(() => tuple).join(', ')})`,
    params: keys.flatMap((key) => key.map((value, i) => toParam(i, value))),
  };
}

/** Decodes rows read with {@link rangeSelect} / {@link keysSelect}. */
export function decodeRows(
  shape: TableShape,
  rows: readonly Record<string, unknown>[],
  region: string,
): VersionedRow[] {
  const skip = new Set([TS_ALIAS, VER_ALIAS]);
  return rows.map((row) => {
    const image = encodeRow(row, skip);
    for (const name of shape.jsonValueColumns ?? []) {
      const text = image[name];
      if (typeof text === 'string') image[name] = canonicalJsonText(text);
    }
    const key = shape.keyColumns.map((c) => image[c.name] ?? null);
    const pk: RowImage = {};
    for (const c of shape.keyColumns) pk[c.name] = image[c.name] ?? null;
    let version: RowVersion | null = null;
    let versionError: string | undefined;
    try {
      const text = row[VER_ALIAS] as string | null | undefined;
      version = effectiveVersion({
        tsMicros: Number(row[TS_ALIAS]),
        stored: text === null || text === undefined ? null : decodeStoredVersion(text),
        self: region,
      });
    } catch (err) {
      versionError = err instanceof Error ? err.message : String(err);
    }
    return { id: keyId(key), key, pk, image, version, versionError };
  });
}

/** Rows of `(after, atMost]` in key order, at most `limit`. */
export async function readRange(
  connection: MysqlConnection,
  shape: TableShape,
  region: string,
  after: KeyValues | null,
  atMost: KeyValues | null,
  limit?: number,
): Promise<VersionedRow[]> {
  const { sql, params } = rangeSelect(shape, after, atMost, limit);
  const [rows] = await connection.query<mysql.RowDataPacket[]>(sql, params);
  return decodeRows(shape, rows, region);
}

/** The rows that exist among `keys`, by key id. */
export async function readKeys(
  connection: MysqlConnection,
  shape: TableShape,
  region: string,
  keys: readonly KeyValues[],
): Promise<Map<string, VersionedRow>> {
  const found = new Map<string, VersionedRow>();
  for (let start = 0; start < keys.length; start += 500) {
    const { sql, params } = keysSelect(shape, keys.slice(start, start + 500));
    const [rows] = await connection.query<mysql.RowDataPacket[]>(sql, params);
    for (const row of decodeRows(shape, rows, region)) found.set(row.id, row);
  }
  return found;
}

/**
 * The tombstone versions of `keys` (deleted rows), by key id. The key hash is
 * computed with the same SQL expressions the tombstone trigger and the
 * applier use, so the three can never disagree about formatting.
 */
export async function readTombstones(
  connection: MysqlConnection,
  shape: TableShape,
  internalSchema: string,
  keys: readonly KeyValues[],
): Promise<Map<string, RowVersion>> {
  const found = new Map<string, RowVersion>();
  const toParam = keyParam(shape);
  const hash = `UNHEX(SHA2(JSON_ARRAY(${shape.keyColumns.map((c) => canonicalKeyPart(c, '?')).join(', ')}), 256))`;
  for (let start = 0; start < keys.length; start += 500) {
    const slice = keys.slice(start, start + 500);
    const [rows] = await connection.query<mysql.RowDataPacket[]>(
      `SELECT keys_.k AS k, CAST(tb.ver AS CHAR) AS ver
         FROM (${slice.map((_, i) => `SELECT ${i} AS k, ${hash} AS h`).join(' UNION ALL ')}) AS keys_
         JOIN ${qualifiedName(internalSchema, INTERNAL_TABLES.tombstones)} AS tb
           ON tb.tbl = ? AND tb.pk_hash = keys_.h`,
      [...slice.flatMap((key) => key.map((value, i) => toParam(i, value))), shape.name],
    );
    for (const row of rows) {
      const key = slice[Number(row.k)];
      if (key === undefined) continue;
      found.set(keyId(key), decodeStoredVersion(String(row.ver)));
    }
  }
  return found;
}
