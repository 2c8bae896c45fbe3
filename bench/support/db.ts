import type mysql from 'mysql2/promise';
import type { MysqlConnection } from '../../src/mysql/connection.js';

/** Rows and an order-independent checksum of the given (visible) columns of a table. */
export async function tableChecksum(
  connection: MysqlConnection,
  table: string,
  columns: string,
): Promise<{ rows: number; crc: string }> {
  const [rows] = await connection.query<mysql.RowDataPacket[]>(
    `SELECT COUNT(*) AS n, CAST(COALESCE(BIT_XOR(CRC32(CONCAT_WS('|', ${columns}))), 0) AS CHAR) AS x FROM ${table}`,
  );
  return { rows: Number(rows[0]?.n ?? 0), crc: String(rows[0]?.x ?? '') };
}

/** The sequence number of `domain` in a MariaDB GTID list like `1-101-2345,2-102-7`; 0 when absent. */
export function gtidSeq(position: string, domain: number): number {
  for (const part of position.split(',')) {
    const [d, , seq] = part.trim().split('-');
    if (Number(d) === domain) return Number(seq);
  }
  return 0;
}

export async function queryValue(connection: MysqlConnection, sql: string): Promise<string> {
  const [rows] = await connection.query<mysql.RowDataPacket[]>(sql);
  const first = rows[0];
  return first === undefined ? '' : String(Object.values(first)[0] ?? '');
}
