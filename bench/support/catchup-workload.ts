import type mysql from 'mysql2/promise';
import type { MysqlConnection } from '../../src/mysql/connection.js';
import { seededRandom } from '../../test/support/random.js';
import { MIXED_COLUMNS, rowValues } from './mixed-workload.js';

/**
 * The catch-up workload of apply-vs-native: what an application written by a
 * new user sends, on the same ~200-byte table as the bench's mixed workload.
 *
 * - multi-row INSERTs (`insertRowsPerStatement` new rows, autocommit);
 * - single-row UPDATEs by primary key, `updatesPerTransaction` of them in one
 *   BEGIN … COMMIT (distinct rows within a transaction);
 * - range UPDATEs (`WHERE id BETWEEN lo AND hi` over `rangeUpdateIds`
 *   consecutive ids, of which only the live ones change; autocommit);
 * - IN-list DELETEs (`deleteIdsPerStatement` random live ids, autocommit).
 *
 * Which kind comes next is drawn at random (seeded), weighted by how far each
 * kind is behind its share of row changes, so the shares hold at any scale and
 * every run and machine writes the same statements. Every statement changes
 * every row it matches (`quantity = quantity + 1`), so the number of row
 * changes in the binlog is known; the writer checks each statement's affected
 * rows against it.
 */
export interface CatchupProfile {
  /** Row changes in the whole workload (exact: the last statement is cut to fit). */
  rows: number;
  seed: number;
  insertRowsPerStatement: number;
  updatesPerTransaction: number;
  rangeUpdateIds: number;
  deleteIdsPerStatement: number;
  /** Shares of row changes per kind (sum 1). */
  mix: { insert: number; singleUpdate: number; rangeUpdate: number; delete: number };
}

export type CatchupKind = keyof CatchupProfile['mix'];
const KINDS: readonly CatchupKind[] = ['insert', 'singleUpdate', 'rangeUpdate', 'delete'];

export interface CatchupStatement {
  sql: string;
  /** Rows the statement must change. */
  rows: number;
}

export interface CatchupTransaction {
  kind: CatchupKind;
  /** Several statements in BEGIN … COMMIT; otherwise one autocommit statement. */
  explicit: boolean;
  statements: CatchupStatement[];
}

/** Generated lazily: 200k changes of SQL text at once would be ~40 MB for nothing. */
export function* catchupTransactions(
  schema: string,
  table: string,
  profile: CatchupProfile,
): Generator<CatchupTransaction> {
  const next = seededRandom(profile.seed);
  const target = `\`${schema}\`.\`${table}\``;
  // Live ids: an array to draw from and a set for the range updates' membership test.
  const live: number[] = [];
  const liveSet = new Set<number>();
  const done: Record<CatchupKind, number> = {
    insert: 0,
    singleUpdate: 0,
    rangeUpdate: 0,
    delete: 0,
  };
  let nextId = 1;
  let total = 0;

  /** `count` distinct live ids, moved to the end of `live` (a partial Fisher-Yates shuffle). */
  const drawTail = (count: number): number[] => {
    const chosen: number[] = [];
    for (let i = 0; i < count; i += 1) {
      const last = live.length - 1 - i;
      const j = Math.floor(next() * (last + 1));
      const picked = live[j] as number;
      live[j] = live[last] as number;
      live[last] = picked;
      chosen.push(picked);
    }
    return chosen;
  };

  const choose = (): CatchupKind => {
    // Weight = how far behind its share each kind is, looking 1,000 changes ahead.
    const weights = KINDS.map((k) => Math.max(0, profile.mix[k] * (total + 1000) - done[k]));
    const sum = weights.reduce((a, b) => a + b, 0);
    let u = next() * sum;
    for (const [i, k] of KINDS.entries()) {
      u -= weights[i] as number;
      if (u < 0) return k;
    }
    return 'insert';
  };

  while (total < profile.rows) {
    const remaining = profile.rows - total;
    let kind = choose();
    // Updates and deletes need enough live rows to choose from; early on there are none.
    const needs =
      kind === 'singleUpdate'
        ? profile.updatesPerTransaction
        : kind === 'delete'
          ? profile.deleteIdsPerStatement
          : kind === 'rangeUpdate'
            ? 1
            : 0;
    if (live.length < needs * 2) kind = 'insert';
    let tx: CatchupTransaction;
    switch (kind) {
      case 'insert': {
        const n = Math.min(profile.insertRowsPerStatement, remaining);
        const values: string[] = [];
        for (let i = 0; i < n; i += 1) {
          values.push(rowValues(nextId, next));
          live.push(nextId);
          liveSet.add(nextId);
          nextId += 1;
        }
        tx = {
          kind,
          explicit: false,
          statements: [
            { sql: `INSERT INTO ${target} (${MIXED_COLUMNS}) VALUES ${values.join(',')}`, rows: n },
          ],
        };
        break;
      }
      case 'singleUpdate': {
        const ids = drawTail(Math.min(profile.updatesPerTransaction, remaining));
        tx = {
          kind,
          explicit: true,
          statements: ids.map((id) => ({
            sql:
              `UPDATE ${target} SET quantity = quantity + 1, status = ${Math.floor(next() * 8)}, ` +
              `amount_cents = ${Math.floor(next() * 10_000_000_000)} WHERE id = ${id}`,
            rows: 1,
          })),
        };
        break;
      }
      case 'rangeUpdate': {
        // From a random live id upwards over rangeUpdateIds ids; deleted ids in between are simply not there.
        const lo = drawTail(1)[0] as number;
        const limit = Math.min(profile.rangeUpdateIds, remaining);
        let hi = lo;
        let n = 0;
        for (let id = lo; id < lo + profile.rangeUpdateIds && n < limit; id += 1) {
          if (liveSet.has(id)) {
            hi = id;
            n += 1;
          }
        }
        tx = {
          kind,
          explicit: false,
          statements: [
            {
              sql: `UPDATE ${target} SET quantity = quantity + 1, status = (status + 1) % 8 WHERE id BETWEEN ${lo} AND ${hi}`,
              rows: n,
            },
          ],
        };
        break;
      }
      case 'delete': {
        const n = Math.min(profile.deleteIdsPerStatement, remaining);
        const ids = drawTail(n);
        live.length -= n;
        for (const id of ids) liveSet.delete(id);
        tx = {
          kind,
          explicit: false,
          statements: [
            {
              sql: `DELETE FROM ${target} WHERE id IN (${[...ids].sort((a, b) => a - b).join(',')})`,
              rows: n,
            },
          ],
        };
        break;
      }
    }
    const rows = tx.statements.reduce((a, s) => a + s.rows, 0);
    done[kind] += rows;
    total += rows;
    yield tx;
  }
}

export interface CatchupResult {
  /** Row changes written (= profile.rows). */
  rows: number;
  transactions: number;
  statements: number;
  /** Row changes per kind. */
  byKind: Record<CatchupKind, number>;
  /** Transactions per kind. */
  transactionsByKind: Record<CatchupKind, number>;
  elapsedMs: number;
}

/** Writes the whole workload on one connection; fails if a statement changed other than its rows. */
export async function writeCatchup(
  connection: MysqlConnection,
  schema: string,
  table: string,
  profile: CatchupProfile,
): Promise<CatchupResult> {
  const zero = (): Record<CatchupKind, number> => ({
    insert: 0,
    singleUpdate: 0,
    rangeUpdate: 0,
    delete: 0,
  });
  const result: CatchupResult = {
    rows: 0,
    transactions: 0,
    statements: 0,
    byKind: zero(),
    transactionsByKind: zero(),
    elapsedMs: 0,
  };
  const started = performance.now();
  for (const tx of catchupTransactions(schema, table, profile)) {
    if (tx.explicit) await connection.query('BEGIN');
    for (const statement of tx.statements) {
      const [header] = await connection.query<mysql.ResultSetHeader>(statement.sql);
      if (header.affectedRows !== statement.rows)
        throw new Error(
          `catch-up workload: ${tx.kind} changed ${header.affectedRows} rows, expected ${statement.rows}: ${statement.sql.slice(0, 200)}`,
        );
      result.statements += 1;
      result.rows += statement.rows;
      result.byKind[tx.kind] += statement.rows;
    }
    if (tx.explicit) await connection.query('COMMIT');
    result.transactions += 1;
    result.transactionsByKind[tx.kind] += 1;
  }
  result.elapsedMs = performance.now() - started;
  return result;
}
