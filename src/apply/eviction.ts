/**
 * Applying eviction notices (docs/GOVERNANCE.md, "Eviction"): a row version
 * this region may not hold arrives as a value-free notice naming the row by
 * its tombstone key only. It is joined like a delete of that version: the
 * local row, found through the key hash, is deleted if its version is older,
 * and the key keeps a tombstone of the notice's version, so an older
 * version arriving later (another topic, a replay from the earliest offset)
 * stays out, and a later version that this region may hold again comes in.
 *
 * A notice chunk is its own transaction: its keys are hashes, not key
 * values, so it cannot share the key join of ordinary events (and an
 * ordinary event of the same row in the same chunk would be joined twice).
 */
import mysql from 'mysql2/promise';
import { canonicalKeyPart } from '../prepare/ddl.js';
import { isBinaryDataType } from '../mysql/column-types.js';
import { qualifiedName, quoteId } from '../mysql/identifiers.js';
import {
  hasKeyHashColumn,
  INTERNAL_TABLES,
  KEY_HASH_COLUMN,
  VERSION_COLUMNS,
} from '../mysql/internal-tables.js';
import { microsToMysqlTimestamp } from '../versioning/hlc.js';
import {
  erasedVersion,
  erasureMark,
  erasureTombstoneKey,
  seesErasure,
  type ErasureMark,
} from '../versioning/erasure.js';
import { resolve, type ApplyOutcome } from '../versioning/resolve.js';
import { encodeStoredVersion, type RowVersion } from '../versioning/version.js';
import type { ApplyEvent } from './apply-event.js';
import { applyEditRequest } from './edit-request.js';
import {
  ApplyRaced,
  applyChunk,
  applyMarkerSql,
  rowVersionOf,
  runStatements,
  tombstoneOf,
  versionColumnsSql,
  type ChunkContext,
  type ChunkResult,
  type StatementResult,
} from './batch-applier.js';

/**
 * The SQL expression of a row's tombstone key over `alias`'s columns: the
 * indexed `_cdc_key_hash` column when the table has it, else the trigger's
 * expression itself (correct, but a scan of the table).
 */
export function keyHashExpression(table: ChunkContext['table'], alias?: string): string {
  const column = (name: string): string =>
    alias === undefined ? quoteId(name) : `${alias}.${quoteId(name)}`;
  if (hasKeyHashColumn(table)) return column(KEY_HASH_COLUMN);
  const byName = new Map(table.columns.map((c) => [c.name, c]));
  const parts = table.primaryKey.map((name) => {
    const info = byName.get(name);
    if (info === undefined)
      throw new Error(`primary-key column ${name} missing from ${table.table}`);
    return canonicalKeyPart(info, column(name));
  });
  return `UNHEX(SHA2(JSON_ARRAY(${parts.join(', ')}), 256))`;
}

/**
 * The tombstone key of a `_cdc_conflicts` record, computed from its `pk`
 * column (the key as the envelope encodes it: `{"id": 42}`) with the
 * trigger's canonical parts: the text of each value, binary ones (base64 in
 * the envelope) as their hex. A scan of the conflict log, which an erasure
 * (rare) can afford.
 */
function conflictKeyHash(table: ChunkContext['table']): string {
  const byName = new Map(table.columns.map((c) => [c.name, c]));
  const parts = table.primaryKey.map((name) => {
    const value = `JSON_UNQUOTE(JSON_EXTRACT(pk, ${literal(`$.${JSON.stringify(name)}`)}))`;
    const info = byName.get(name);
    return info !== undefined && isBinaryDataType(info.dataType)
      ? `HEX(FROM_BASE64(${value}))`
      : `CAST(${value} AS CHAR)`;
  });
  return `UNHEX(SHA2(JSON_ARRAY(${parts.join(', ')}), 256))`;
}

interface HashState {
  existed: boolean;
  tombstoned: boolean;
  version: RowVersion | null;
  live: boolean;
  versionChanged: boolean;
  /** The erasure the key's tombstone records (read, or written by this chunk). */
  erasure?: ErasureMark;
  /** Erased by this chunk: its copies in `_cdc_conflicts` go too. */
  erasedNow?: boolean;
}

const literal = (value: unknown): string =>
  mysql.escape(value as Parameters<typeof mysql.escape>[0]);

/**
 * Applies `notices` (events with `evict`, all of one table) in one
 * transaction, in order. Conflicts are counted in the outcomes but never
 * recorded in `_cdc_conflicts`: the record would keep the values of a row
 * this region may no longer hold.
 */
export async function applyNoticeChunk(
  connection: mysql.PoolConnection,
  notices: readonly ApplyEvent[],
  context: ChunkContext,
): Promise<ChunkResult> {
  const { table } = context;
  const target = qualifiedName(table.schema, table.table);
  const tombstones = qualifiedName(context.internalSchema, INTERNAL_TABLES.tombstones);
  const tableText = literal(`${table.schema}.${table.table}`);
  const states = new Map<string, HashState>();
  for (const notice of notices) {
    const keyHash = notice.evict?.keyHash;
    if (keyHash === undefined) throw new Error('applyNoticeChunk: an event without a notice');
    states.set(keyHash, {
      existed: false,
      tombstoned: false,
      version: null,
      live: false,
      versionChanged: false,
    });
  }
  const hashList = (hashes: Iterable<string>): string =>
    [...hashes].map((h) => `X'${h}'`).join(', ');
  const rowHash = keyHashExpression(table, 't');
  const ts = quoteId(VERSION_COLUMNS.ts);
  const ver = quoteId(VERSION_COLUMNS.ver);

  let open = false;
  try {
    open = true;
    // The marker keeps this transaction out of capture's stream, as for every chunk.
    const [, , rows, tombRows] = (await runStatements(connection, [
      'START TRANSACTION',
      applyMarkerSql(context),
      `SELECT LOWER(HEX(${rowHash})) AS h,
              ${versionColumnsSql('t')}
         FROM ${target} AS t WHERE ${rowHash} IN (${hashList(states.keys())}) FOR UPDATE`,
      `SELECT LOWER(HEX(pk_hash)) AS h, CAST(ver AS CHAR) AS ver, CAST(pk AS CHAR) AS pk FROM ${tombstones}
        WHERE tbl = ${tableText} AND pk_hash IN (${hashList(states.keys())}) FOR UPDATE`,
    ])) as [unknown, unknown, StatementResult, StatementResult];
    for (const row of rows.rows) {
      const state = states.get(String(row.h));
      if (state === undefined) continue;
      state.existed = true;
      state.live = true;
      state.version = rowVersionOf(row, context.region);
    }
    for (const row of tombRows.rows) {
      const state = states.get(String(row.h));
      if (state === undefined || state.existed) continue;
      const tombstone = tombstoneOf(row);
      state.tombstoned = true;
      state.version = tombstone.version;
      if (tombstone.erasure !== undefined) state.erasure = tombstone.erasure;
    }

    // Each notice joined like a delete of its version, in delivery order; an
    // erasure beats every version that has not seen it (src/versioning/erasure.ts).
    const outcomes = new Map<ApplyOutcome, number>();
    const count = (outcome: ApplyOutcome): void => {
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    };
    for (const notice of notices) {
      const state = states.get(notice.evict?.keyHash ?? '') as HashState;
      if (notice.evict?.erase === true) {
        const mark = erasureMark(notice.version);
        if (state.version !== null && seesErasure(state.version, mark)) {
          count('stale'); // erased here already, or written again after the erasure was seen
          continue;
        }
        state.live = false;
        state.version = erasedVersion(state.version, notice.version);
        state.versionChanged = true;
        state.erasure = mark;
        state.erasedNow = true;
        count('applied');
        continue;
      }
      if (state.erasure !== undefined && !seesErasure(notice.version, state.erasure)) {
        count('stale');
        continue;
      }
      const decision = resolve({
        local: state.version,
        incoming: notice.version,
        strategy: context.strategy,
      });
      count(decision.outcome);
      if (decision.winner === 'incoming') state.live = false;
      if (decision.versionChanged || decision.winner === 'incoming') state.versionChanged = true;
      state.version = decision.resulting;
    }

    const changed = [...states].filter(([, s]) => s.versionChanged && s.version !== null);
    const kept = changed.filter(([, s]) => s.live);
    const dead = changed.filter(([, s]) => !s.live);
    const writes: string[] = [];
    // A local row that outranks the notice keeps its data; its version may still learn (vectors).
    for (const [keyHash, state] of kept) {
      const version = state.version as RowVersion;
      writes.push(
        `UPDATE ${target} AS t SET t.${ts} = ${literal(microsToMysqlTimestamp(version.hlc))}, t.${ver} = ${literal(encodeStoredVersion(version))}
          WHERE ${rowHash} = X'${keyHash}'`,
      );
    }
    const deleted = dead.filter(([, s]) => s.existed).map(([h]) => h);
    // No alias: MariaDB resolves one in a DELETE list against the current database.
    if (deleted.length > 0)
      writes.push(
        `DELETE FROM ${target} WHERE ${keyHashExpression(table)} IN (${hashList(deleted)})`,
      );
    // The tombstone keeps no key values (`[]`): the region may not know them.
    // One that did not exist when read is INSERTed, so a concurrent one fails
    // it with a duplicate key (retried) instead of being overwritten.
    for (const [group, upsert] of [
      [dead.filter(([, s]) => s.existed || s.tombstoned), true],
      [dead.filter(([, s]) => !s.existed && !s.tombstoned), false],
    ] as const) {
      if (group.length === 0) continue;
      writes.push(
        `INSERT INTO ${tombstones} (tbl, pk_hash, pk, ver, hlc) VALUES ${group
          .map(([keyHash, s]) => {
            const version = s.version as RowVersion;
            const pk =
              s.erasure === undefined ? 'JSON_ARRAY()' : literal(erasureTombstoneKey(s.erasure));
            return `(${tableText}, X'${keyHash}', ${pk}, ${literal(encodeStoredVersion(version))}, ${literal(version.hlc)})`;
          })
          .join(', ')}` +
          (upsert
            ? ' ON DUPLICATE KEY UPDATE pk = VALUES(pk), ver = VALUES(ver), hlc = VALUES(hlc)'
            : ''),
      );
    }
    // An erased row's copies in the conflict log go with it.
    const erased = dead.filter(([, s]) => s.erasedNow === true).map(([h]) => h);
    if (erased.length > 0)
      writes.push(
        `DELETE FROM ${qualifiedName(context.internalSchema, INTERNAL_TABLES.conflicts)}
          WHERE tbl = ${tableText} AND ${conflictKeyHash(table)} IN (${hashList(erased)})`,
      );
    // Evicted without a row to delete: a row inserted since (a local write, or
    // another applier's chunk) must not survive the notice. The locking read
    // waits for an uncommitted insert, as the chunk's re-checks do.
    const absent = dead.filter(([, s]) => !s.existed).map(([h]) => h);
    const recheck =
      absent.length > 0
        ? [`SELECT 1 FROM ${target} AS t WHERE ${rowHash} IN (${hashList(absent)}) FOR UPDATE`]
        : [];
    const end = context.rollback === true ? 'ROLLBACK' : 'COMMIT';
    const results = await runStatements(connection, [
      ...writes,
      ...recheck,
      ...(recheck.length === 0 ? [end] : []),
    ]);
    if (recheck.length > 0) {
      const found = (results[writes.length] as StatementResult).rows.length;
      if (found > 0)
        throw new ApplyRaced(
          `${table.schema}.${table.table}`,
          `${found} row(s) evicted while absent were inserted`,
        );
      await connection.query(end);
    }
    open = false;
    return { outcomes, conflicts: [] };
  } catch (err) {
    if (open) await connection.query('ROLLBACK').catch(() => undefined); // the statement error is the one to report
    throw err;
  }
}

/**
 * Applies events of one table in order: ordinary events with `applyChunk`,
 * eviction notices with {@link applyNoticeChunk}, each run of consecutive
 * ones in a transaction of its own. A failure is thrown for the whole:
 * the caller retries everything, and what committed before is applied
 * again, idempotently.
 */
export async function applyEvents(
  connection: mysql.PoolConnection,
  events: readonly ApplyEvent[],
  context: ChunkContext,
): Promise<ChunkResult> {
  const special = (event: ApplyEvent): boolean =>
    event.evict !== undefined || event.edit !== undefined;
  if (!events.some(special)) return applyChunk(connection, events, context);
  const total: ChunkResult = { outcomes: new Map(), conflicts: [] };
  const add = (result: ChunkResult): void => {
    for (const [outcome, n] of result.outcomes)
      total.outcomes.set(outcome, (total.outcomes.get(outcome) ?? 0) + n);
    total.conflicts.push(...result.conflicts);
  };
  for (const run of runsOf(events, special)) {
    if (!run.matched) {
      add(await applyChunk(connection, run.items, context));
      continue;
    }
    // Notices and edit requests in their own transactions, in order (src/apply/edit-request.ts).
    for (const group of runsOf(run.items, (event) => event.edit !== undefined)) {
      if (!group.matched) {
        add(await applyNoticeChunk(connection, group.items, context));
        continue;
      }
      const publish = context.publishEdit;
      if (publish === undefined)
        throw new Error(
          'edit requests are executed by the daemon applier only (it publishes them)',
        );
      for (const edit of group.items)
        add(await applyEditRequest(connection, edit, context, publish));
    }
  }
  return total;
}

/** `items` cut into maximal runs of consecutive items alike under `test`, in order. */
export function runsOf<T>(
  items: readonly T[],
  test: (item: T) => boolean,
): { matched: boolean; items: T[] }[] {
  const runs: { matched: boolean; items: T[] }[] = [];
  for (const item of items) {
    const matched = test(item);
    const last = runs[runs.length - 1];
    if (last !== undefined && last.matched === matched) last.items.push(item);
    else runs.push({ matched, items: [item] });
  }
  return runs;
}
