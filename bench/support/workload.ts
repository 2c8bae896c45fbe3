import type mysql from 'mysql2/promise';
import type { MysqlConnection } from '../../src/mysql/connection.js';
import { seededRandom } from '../../test/support/random.js';

/** The bench table of bench/capture and bench/apply: about 200 bytes per row, a typical OLTP shape. */
export function tableDdl(schema: string, table: string): string {
  return `CREATE TABLE \`${schema}\`.\`${table}\` (
  id BIGINT NOT NULL PRIMARY KEY,
  account_id INT NOT NULL,
  quantity INT NOT NULL,
  status TINYINT NOT NULL,
  amount_cents BIGINT NOT NULL,
  created_at DATETIME(6) NOT NULL,
  note VARCHAR(150) CHARACTER SET utf8mb4 NOT NULL
)`;
}

export const COLUMNS = 'id, account_id, quantity, status, amount_cents, created_at, note';

const NOTE_LENGTH = 150;
const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ';

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/**
 * Multi-row INSERT statements for the given ids, `batchRows` rows each, built
 * up front so that timing a writer never includes generating its text.
 */
export function insertStatements(
  schema: string,
  table: string,
  ids: readonly number[],
  batchRows: number,
  seed: number,
): string[] {
  // A fixed seed gives the same rows every run, so runs and machines compare.
  const next = seededRandom(seed);
  const baseMs = Date.UTC(2024, 0, 1);
  const statements: string[] = [];
  for (let first = 0; first < ids.length; first += batchRows) {
    const values: string[] = [];
    for (const id of ids.slice(first, first + batchRows)) {
      let note = '';
      for (let i = 0; i < NOTE_LENGTH; i += 1)
        note += ALPHABET[Math.floor(next() * ALPHABET.length)] as string;
      const at = new Date(baseMs + Math.floor(next() * 365 * 86_400_000));
      const createdAt =
        `${at.getUTCFullYear()}-${pad(at.getUTCMonth() + 1, 2)}-${pad(at.getUTCDate(), 2)} ` +
        `${pad(at.getUTCHours(), 2)}:${pad(at.getUTCMinutes(), 2)}:${pad(at.getUTCSeconds(), 2)}.` +
        pad(Math.floor(next() * 1_000_000), 6);
      values.push(
        `(${id},${Math.floor(next() * 1_000_000)},${1 + Math.floor(next() * 100)},` +
          `${Math.floor(next() * 8)},${Math.floor(next() * 10_000_000_000)},'${createdAt}','${note}')`,
      );
    }
    statements.push(
      `INSERT INTO \`${schema}\`.\`${table}\` (${COLUMNS}) VALUES ${values.join(',')}`,
    );
  }
  return statements;
}

export function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** Runs the statements one after the other (autocommit: one transaction each); returns ms. */
export async function runStatements(
  connection: MysqlConnection,
  statements: readonly string[],
): Promise<number> {
  const started = performance.now();
  for (const sql of statements) await connection.query(sql);
  return performance.now() - started;
}

export interface BacklogResult {
  rows: number;
  transactions: number;
  elapsedMs: number;
}

/**
 * Inserts `rows` rows with ids 1..rows, `batchRows` per multi-row INSERT
 * (one autocommit transaction each), as fast as one connection can.
 */
export async function writeBacklog(
  connection: MysqlConnection,
  schema: string,
  table: string,
  rows: number,
  batchRows: number,
  seed = 42,
): Promise<BacklogResult> {
  const statements = insertStatements(schema, table, range(1, rows), batchRows, seed);
  const elapsedMs = await runStatements(connection, statements);
  return { rows, transactions: statements.length, elapsedMs };
}

/** Total size of the server's binary logs, to report bytes per row as the binlog stores them. */
export async function binlogBytes(connection: MysqlConnection): Promise<number> {
  const [logs] = await connection.query<mysql.RowDataPacket[]>('SHOW BINARY LOGS');
  return logs.reduce((total, log) => total + Number(log.File_size ?? 0), 0);
}
