import { tableMatches, type TablePattern } from '../config/compile.js';
import type { MysqlConnection } from './connection.js';
import type mysql from 'mysql2/promise';

/** Which server family and version a connection talks to. */
export interface ServerInfo {
  flavor: 'mariadb' | 'mysql';
  version: string;
  major: number;
  minor: number;
  patch: number;
}

export interface ColumnInfo {
  name: string;
  /** information_schema DATA_TYPE, lower case: `int`, `varchar`, `datetime`, ... */
  dataType: string;
  /** Full COLUMN_TYPE: `int(10) unsigned`, `decimal(65,30)`, `enum('a','b')`, ... */
  columnType: string;
  nullable: boolean;
  invisible: boolean;
  /**
   * A character column's character set and collation (information_schema
   * names, `[a-z0-9_]` only); absent for other types. Values of such a key
   * column are one key when the collation says so (`'a'` and `'A'` under a
   * case-insensitive one), not when their text is the same.
   */
  charset?: string;
  collation?: string;
}

export interface TableInfo {
  schema: string;
  table: string;
  columns: ColumnInfo[];
  /** Primary-key column names in key order; empty when the table has none. */
  primaryKey: string[];
}

export async function serverInfo(connection: MysqlConnection): Promise<ServerInfo> {
  const [rows] = await connection.query<mysql.RowDataPacket[]>('SELECT VERSION() AS version');
  const version = String(rows[0]?.version ?? '');
  const match = /^(\d+)\.(\d+)\.(\d+)/.exec(version);
  return {
    flavor: /mariadb/i.test(version) ? 'mariadb' : 'mysql',
    version,
    major: Number(match?.[1] ?? 0),
    minor: Number(match?.[2] ?? 0),
    patch: Number(match?.[3] ?? 0),
  };
}

/**
 * Base tables matching the patterns, in a stable order, internal `_cdc_*`
 * tables and (under `schema.*`) online schema-change helper tables excluded.
 */
export async function resolveTables(
  connection: MysqlConnection,
  patterns: readonly TablePattern[],
): Promise<{ schema: string; table: string }[]> {
  const found = new Map<string, { schema: string; table: string }>();
  for (const pattern of patterns) {
    const [rows] = await connection.query<mysql.RowDataPacket[]>(
      `SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t FROM information_schema.TABLES
        WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA = ?
          AND (? = '*' OR TABLE_NAME = ?) AND TABLE_NAME NOT LIKE '\\_cdc\\_%'
        ORDER BY TABLE_NAME`,
      [pattern.schema, pattern.table, pattern.table],
    );
    for (const row of rows) {
      const entry = { schema: String(row.s), table: String(row.t) };
      if (!tableMatches(pattern, entry.schema, entry.table)) continue;
      found.set(`${entry.schema}.${entry.table}`, entry);
    }
  }
  return [...found.values()];
}

/** Columns and primary key of one table, or undefined when it does not exist. */
export async function describeTable(
  connection: MysqlConnection,
  schema: string,
  table: string,
): Promise<TableInfo | undefined> {
  const [columns] = await connection.query<mysql.RowDataPacket[]>(
    `SELECT COLUMN_NAME AS name, DATA_TYPE AS dataType, COLUMN_TYPE AS columnType,
            IS_NULLABLE AS nullable, EXTRA AS extra,
            CHARACTER_SET_NAME AS charset, COLLATION_NAME AS collation
       FROM information_schema.COLUMNS
      WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?
      ORDER BY ORDINAL_POSITION`,
    [schema, table],
  );
  if (columns.length === 0) return undefined;
  const [keys] = await connection.query<mysql.RowDataPacket[]>(
    `SELECT COLUMN_NAME AS name FROM information_schema.STATISTICS
      WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY'
      ORDER BY SEQ_IN_INDEX`,
    [schema, table],
  );
  return {
    schema,
    table,
    columns: columns.map((c) => {
      const column: ColumnInfo = {
        name: String(c.name),
        dataType: String(c.dataType).toLowerCase(),
        columnType: String(c.columnType).toLowerCase(),
        nullable: c.nullable === 'YES',
        invisible: /INVISIBLE/i.test(String(c.extra)),
      };
      // Names go into statements unquoted (`CONVERT(… USING cs) COLLATE coll`).
      if (typeof c.charset === 'string' && typeof c.collation === 'string') {
        if (!/^\w+$/.test(c.charset) || !/^\w+$/.test(c.collation))
          throw new Error(
            `${schema}.${table}.${String(c.name)}: unexpected character set or collation name ${c.charset} / ${c.collation}`,
          );
        column.charset = c.charset;
        column.collation = c.collation;
      }
      return column;
    }),
    primaryKey: keys.map((k) => String(k.name)),
  };
}
