import type { MysqlConnection } from '../../src/mysql/connection.js';
import { seededRandom } from '../../test/support/random.js';

/**
 * The row workload of capture-vs-debezium, apply-vs-native and
 * backlog-memory: transactions of mixed INSERT, UPDATE and DELETE on a table
 * of about 200-byte rows. Every statement changes exactly the rows it names,
 * so the number of row changes in the binlog is known in advance.
 */
export interface MixProfile {
  /** Row changes in the whole workload. */
  rows: number;
  /** Row changes per transaction. */
  rowsPerTransaction: number;
  /** Shares of inserts, updates and deletes (sum 1). */
  mix: { insert: number; update: number; delete: number };
  seed: number;
}

import { COLUMNS, tableDdl } from './workload.js';

/** The same ~200-byte table as bench/capture and bench/apply. */
export const mixedTableDdl = tableDdl;
export const MIXED_COLUMNS = COLUMNS;

const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ';

export function noteText(next: () => number, length = 150): string {
  let note = '';
  for (let i = 0; i < length; i += 1)
    note += ALPHABET[Math.floor(next() * ALPHABET.length)] as string;
  return note;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/** One row's VALUES tuple (id, account_id, quantity, status, amount_cents, created_at, note), ~200 bytes. */
export function rowValues(id: number, next: () => number): string {
  const at = new Date(Date.UTC(2024, 0, 1) + Math.floor(next() * 365 * 86_400_000));
  const createdAt =
    `${at.getUTCFullYear()}-${pad(at.getUTCMonth() + 1, 2)}-${pad(at.getUTCDate(), 2)} ` +
    `${pad(at.getUTCHours(), 2)}:${pad(at.getUTCMinutes(), 2)}:${pad(at.getUTCSeconds(), 2)}.` +
    pad(Math.floor(next() * 1_000_000), 6);
  return (
    `(${id},${Math.floor(next() * 1_000_000)},${1 + Math.floor(next() * 100)},` +
    `${Math.floor(next() * 8)},${Math.floor(next() * 10_000_000_000)},'${createdAt}','${noteText(next)}')`
  );
}

export interface MixedTransaction {
  statements: string[];
  inserts: number;
  updates: number;
  deletes: number;
}

/**
 * Generates the transactions lazily (2M rows of SQL text would be ~600 MB),
 * seeded, so every run and machine writes the same rows. The first
 * transactions are insert-only until there are rows to update and delete.
 */
export function* mixedTransactions(
  schema: string,
  table: string,
  profile: MixProfile,
): Generator<MixedTransaction> {
  const next = seededRandom(profile.seed);
  const target = `\`${schema}\`.\`${table}\``;
  const live: number[] = [];
  let nextId = 1;
  let remaining = profile.rows;
  while (remaining > 0) {
    const size = Math.min(profile.rowsPerTransaction, remaining);
    let deletes = Math.round(size * profile.mix.delete);
    let updates = Math.round(size * profile.mix.update);
    // Updates and deletes pick distinct live rows; early on there are not enough.
    if (updates + deletes > live.length) {
      updates = 0;
      deletes = 0;
    }
    const inserts = size - updates - deletes;
    const statements: string[] = [];
    if (inserts > 0) {
      const values: string[] = [];
      for (let i = 0; i < inserts; i += 1) {
        values.push(rowValues(nextId, next));
        live.push(nextId);
        nextId += 1;
      }
      statements.push(`INSERT INTO ${target} (${MIXED_COLUMNS}) VALUES ${values.join(',')}`);
    }
    const pick = (count: number): number[] => {
      const chosen: number[] = [];
      for (let i = 0; i < count; i += 1) {
        // Swap-remove a random live id: O(1), and no id is picked twice.
        const index = Math.floor(next() * live.length);
        chosen.push(live[index] as number);
        live[index] = live[live.length - 1] as number;
        live.pop();
      }
      return chosen;
    };
    if (updates > 0) {
      const ids = pick(updates);
      // quantity + 1 changes every named row, so each counts as one row change.
      statements.push(
        `UPDATE ${target} SET quantity = quantity + 1, status = (status + 1) % 8, ` +
          `note = CONCAT(SUBSTRING(note, 2), '${noteText(next, 1)}') WHERE id IN (${ids.join(',')})`,
      );
      live.push(...ids);
    }
    if (deletes > 0)
      statements.push(`DELETE FROM ${target} WHERE id IN (${pick(deletes).join(',')})`);
    yield { statements, inserts, updates, deletes };
    remaining -= size;
  }
}

export interface MixedResult {
  rows: number;
  transactions: number;
  inserts: number;
  updates: number;
  deletes: number;
  elapsedMs: number;
}

/** Writes the whole workload, one transaction after the other, on one connection. */
export async function writeMixed(
  connection: MysqlConnection,
  schema: string,
  table: string,
  profile: MixProfile,
  progress?: (rows: number) => void,
): Promise<MixedResult> {
  const result: MixedResult = {
    rows: 0,
    transactions: 0,
    inserts: 0,
    updates: 0,
    deletes: 0,
    elapsedMs: 0,
  };
  const started = performance.now();
  let reported = 0;
  for (const tx of mixedTransactions(schema, table, profile)) {
    await connection.query('BEGIN');
    for (const sql of tx.statements) await connection.query(sql);
    await connection.query('COMMIT');
    result.transactions += 1;
    result.inserts += tx.inserts;
    result.updates += tx.updates;
    result.deletes += tx.deletes;
    result.rows += tx.inserts + tx.updates + tx.deletes;
    if (progress !== undefined && result.rows - reported >= 100_000) {
      reported = result.rows;
      progress(result.rows);
    }
  }
  result.elapsedMs = performance.now() - started;
  return result;
}
