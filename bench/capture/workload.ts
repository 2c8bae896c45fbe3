import type mysql from 'mysql2/promise';
import type { MysqlConnection } from '../../src/mysql/connection.js';

/** The bench table: about 200 bytes per row in the binlog, a typical OLTP shape. */
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

const NOTE_LENGTH = 150;
const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ';

/** mulberry32: a fixed seed gives the same rows every run, so runs and machines compare. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
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
  const next = random(seed);
  const baseMs = Date.UTC(2024, 0, 1);
  const started = performance.now();
  let transactions = 0;
  for (let first = 1; first <= rows; first += batchRows) {
    const last = Math.min(rows, first + batchRows - 1);
    const values: string[] = [];
    for (let id = first; id <= last; id += 1) {
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
    await connection.query(
      `INSERT INTO \`${schema}\`.\`${table}\` (id, account_id, quantity, status, amount_cents, created_at, note) VALUES ${values.join(',')}`,
    );
    transactions += 1;
  }
  return { rows, transactions, elapsedMs: performance.now() - started };
}

/** Total size of the server's binary logs, to report bytes per row as the binlog stores them. */
export async function binlogBytes(connection: MysqlConnection): Promise<number> {
  const [logs] = await connection.query<mysql.RowDataPacket[]>('SHOW BINARY LOGS');
  return logs.reduce((total, log) => total + Number(log.File_size ?? 0), 0);
}
