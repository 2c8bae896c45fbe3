import mysql from 'mysql2/promise';
import type { EditPublication } from './edit-request.js';
import type { JsonScalar, RowImage } from '../bus/envelope.js';
import { encodeRow } from '../capture/row-codec.js';
import { isBinaryDataType } from '../mysql/column-types.js';
import { qualifiedName, quoteId } from '../mysql/identifiers.js';
import { INTERNAL_TABLES, VERSION_COLUMNS } from '../mysql/internal-tables.js';
import type { ColumnInfo, TableInfo } from '../mysql/introspect.js';
import { tombstoneKeyHash } from '../mysql/tombstone-key.js';
import { microsToMysqlTimestamp } from '../versioning/hlc.js';
import { parseErasureTombstoneKey, seesErasure, type ErasureMark } from '../versioning/erasure.js';
import {
  joinVersions,
  resolve,
  type ApplyOutcome,
  type ConflictStrategy,
} from '../versioning/resolve.js';
import {
  decodeStoredVersion,
  effectiveVersion,
  encodeStoredVersion,
  type RowVersion,
} from '../versioning/version.js';
import { CdcError } from '../core/errors.js';
import type { ApplyEvent } from './apply-event.js';
import type { ApplyTable } from './apply-target.js';

/** A concurrent conflict, as recorded in `_cdc_conflicts`. */
export interface ConflictRecord {
  pk: RowImage;
  winner: 'incoming' | 'local';
  localVersion: RowVersion | null;
  incomingVersion: RowVersion;
  /**
   * The local side's row. When that is the row as stored (not an earlier event
   * of the chunk) it is read only for a recorded conflict; null otherwise.
   */
  localRow: RowImage | null;
  incomingRow: RowImage | null;
}

export interface ChunkResult {
  outcomes: Map<ApplyOutcome, number>;
  conflicts: ConflictRecord[];
}

export interface ChunkContext {
  region: string;
  internalSchema: string;
  /** Row of `_cdc_apply_marker` this applier upserts (one per partition, so they never contend). */
  applierId: string;
  sourceRegion: string;
  /** The local table; without `generated`/`implicitDefaults` every column is plain and has a default. */
  table: TableInfo & Partial<Pick<ApplyTable, 'generated' | 'implicitDefaults'>>;
  strategy: ConflictStrategy;
  strategyName: string;
  /** List the chunk's keys as a table value constructor (`SqlDialect.tableValueConstructor`), else as `UNION ALL`. */
  valuesList?: boolean;
  /** Whether to record this conflict in `_cdc_conflicts` (sampling). */
  recordConflict: () => boolean;
  /**
   * Roll the transaction back instead of committing it: a dry run that takes
   * the same path (locks, join, statements, constraint checks) and leaves nothing.
   */
  rollback?: boolean;
  /**
   * Publishes what an executed edit request wrote, through this region's
   * governed path (src/apply/edit-request.ts); absent where edit requests
   * are not executed (the dead-letter replay).
   */
  publishEdit?: (publication: EditPublication) => Promise<void>;
}

/**
 * The table has columns its description does not list: a local DDL ran since
 * it was read. The chunk is rolled back; read the description again and retry
 * (writes must know every column, or one absent from the image would keep a
 * stale value instead of its default).
 */
export class LocalTableChanged extends CdcError {
  constructor(table: string, columns: readonly string[]) {
    super(`${table} has column(s) ${columns.join(', ')} its description does not list`, {
      code: 'APPLY_TABLE_CHANGED',
      retriable: true,
    });
  }
}

/**
 * Another applier transaction wrote a key this chunk read as absent, between
 * the read and the write (READ COMMITTED locks no gap, so nothing made them
 * wait for each other). The chunk is rolled back and retried with fresh
 * reads; the other transaction's write is then seen and joined.
 */
export class ApplyRaced extends CdcError {
  constructor(table: string, what: string) {
    super(`${table}: ${what} while the chunk was applied; retried`, {
      code: 'APPLY_RACED',
      retriable: true,
    });
  }
}

interface KeyState {
  pk: RowImage;
  /** Whether a row exists locally when the transaction read it. */
  existed: boolean;
  /** Whether the key had a tombstone when read (asked only of keys with no row). */
  tombstoned: boolean;
  /** The erasure its tombstone records: only versions that have seen it apply (src/versioning/erasure.ts). */
  erasure?: ErasureMark;
  version: RowVersion | null;
  live: boolean;
  image: RowImage | null;
  /** The row's data comes from an incoming event (must be written). */
  dataFromIncoming: boolean;
  versionChanged: boolean;
  /** {@link nodeKeyHash}'s answer, once asked. */
  keyHash?: string | null;
}

const VERSION_COLUMN_SET: ReadonlySet<string> = new Set([VERSION_COLUMNS.ts, VERSION_COLUMNS.ver]);

function keyId(pk: RowImage, primaryKey: readonly string[]): string {
  return JSON.stringify(primaryKey.map((c) => pk[c] ?? null));
}

/** A statement parameter as SQL text (mysql2's escaping, as its placeholders would give). */
function sqlLiteral(value: unknown): string {
  return mysql.escape(value as Parameters<typeof mysql.escape>[0]);
}

/** An envelope value as a statement parameter for a local column. */
export function toParam(column: ColumnInfo, value: JsonScalar | undefined): unknown {
  if (value === null || value === undefined) return null;
  if (isBinaryDataType(column.dataType) && typeof value === 'string')
    return Buffer.from(value, 'base64');
  return value;
}

/**
 * The select list that reads a row's version columns under `alias`, as
 * {@link rowVersionOf} decodes them: `_cdc_ts` in exact µs, `_cdc_ver` as text.
 */
export function versionColumnsSql(alias: string): string {
  return `CAST(UNIX_TIMESTAMP(${alias}.${quoteId(VERSION_COLUMNS.ts)}) * 1000000 AS UNSIGNED) AS _cdc_ts_us,
              CAST(${alias}.${quoteId(VERSION_COLUMNS.ver)} AS CHAR) AS _cdc_ver_text`;
}

/** The effective version (DESIGN.md §3) of a row read with {@link versionColumnsSql}, in region `self`. */
export function rowVersionOf(row: mysql.RowDataPacket, self: string): RowVersion {
  const verText = row._cdc_ver_text as string | null;
  return effectiveVersion({
    tsMicros: Number(row._cdc_ts_us),
    stored: verText === null ? null : decodeStoredVersion(verText),
    self,
  });
}

/** A tombstone read as `CAST(ver AS CHAR) AS ver, CAST(pk AS CHAR) AS pk`: its version, and its erasure mark if any. */
export function tombstoneOf(row: mysql.RowDataPacket): {
  version: RowVersion;
  erasure: ErasureMark | undefined;
} {
  return {
    version: decodeStoredVersion(String(row.ver)),
    erasure: parseErasureTombstoneKey(row.pk as string | null),
  };
}

/**
 * The upsert of this applier's `_cdc_apply_marker` row that opens each of
 * its transactions: capture drops every transaction that holds it (DESIGN.md §4).
 */
export function applyMarkerSql(
  context: Pick<ChunkContext, 'internalSchema' | 'applierId' | 'sourceRegion'>,
): string {
  return `INSERT INTO ${qualifiedName(context.internalSchema, INTERNAL_TABLES.applyMarker)} (applier, source_region, batches)
       VALUES (${sqlLiteral(context.applierId)}, ${sqlLiteral(context.sourceRegion)}, 1)
       ON DUPLICATE KEY UPDATE batches = batches + 1, source_region = VALUES(source_region)`;
}

/**
 * Applies one chunk of events of one table in one MySQL transaction
 * (DESIGN.md §2–§4): marker first, then the keys' versions and tombstones
 * locked and read, each event joined into the key's state in order, and only
 * the final state of each key written, with multi-row statements.
 *
 * Round trips are few: the statements of each step go to the server as one
 * multi-statement query when the connection allows it (`multipleStatements`;
 * see {@link runStatements}). A chunk is then three or four round trips:
 * begin + marker + locked read; the tombstones of absent keys (only when some
 * key has no row); the writes + the re-check of absent keys (+ the commit
 * when there is nothing to re-check); the commit.
 */
export async function applyChunk(
  connection: mysql.PoolConnection,
  events: readonly ApplyEvent[],
  context: ChunkContext,
): Promise<ChunkResult> {
  const { table } = context;
  const primaryKey = table.primaryKey;
  const columns = new Map(table.columns.map((c) => [c.name, c]));
  const pkColumns = primaryKey.map((name) => columns.get(name) as ColumnInfo);
  const target = qualifiedName(table.schema, table.table);
  const tombstones = qualifiedName(context.internalSchema, INTERNAL_TABLES.tombstones);
  const tableText = `${table.schema}.${table.table}`;

  const keys = new Map<string, KeyState>();
  const addKey = (pk: RowImage): void => {
    const id = keyId(pk, primaryKey);
    if (!keys.has(id)) {
      keys.set(id, {
        pk,
        existed: false,
        tombstoned: false,
        version: null,
        live: false,
        image: null,
        dataFromIncoming: false,
        versionChanged: false,
      });
    }
  };
  // Under a collation, two spellings may be one key: the server says which (`sameKeys`).
  const collated = pkColumns.some(isCollated);
  for (const event of events) {
    addKey(event.pk);
    // A key change's new key, asked even when its delete half is applied alone
    // (one event at a time, to find an event at fault); the halves of one
    // change are otherwise always in one chunk.
    if (collated && event.movedTo !== undefined) addKey(event.movedTo);
  }
  let keyList = [...keys.values()];

  let open = false;
  try {
    // 1. Begin; the marker (capture drops this whole transaction from the
    // binlog); the table's columns (`*` never lists INVISIBLE ones, so a
    // column added since the description was read shows); the keys' version
    // columns, locked. Only the version columns: the full local row is read
    // only for a conflict that is recorded (`readLocalImages`).
    // Statements are built with the values as SQL literals (mysql2's escaping):
    // placeholder formatting of thousands of `?` cost more than the escaping.
    open = true;
    const keysSql = keysCte(pkColumns, keyList, context.valuesList === true);
    const [, , columnsProbe, versionRows, sameKeyRows] = (await runStatements(connection, [
      'START TRANSACTION',
      applyMarkerSql(context),
      `SELECT * FROM ${target} LIMIT 0`,
      `${keysSql}
       SELECT keys_._cdc_k,
              ${versionColumnsSql('t')}
         FROM keys_ JOIN ${target} AS t ON ${keyJoin(pkColumns)}
        FOR UPDATE`,
      ...(collated ? [sameKeysSql(keysSql, pkColumns)] : []),
    ])) as [unknown, unknown, StatementResult, StatementResult, StatementResult | undefined];
    const unknown = columnsProbe.fields.map((f) => f.name).filter((n) => !columns.has(n));
    if (unknown.length > 0) throw new LocalTableChanged(tableText, unknown);
    for (const row of versionRows.rows) {
      const state = keyList[Number(row._cdc_k)];
      if (state === undefined) continue;
      state.existed = true;
      state.live = true;
      state.version = rowVersionOf(row, context.region);
    }
    // Spellings folded into another key's state: their tombstones count for it too.
    let aliases: ReadonlyMap<KeyState, KeyState> = new Map();
    if (sameKeyRows !== undefined && sameKeyRows.rows.length > 0)
      ({ keyList, aliases } = mergeSameKeys(keys, keyList, sameKeyRows.rows));
    // Tombstones only of keys with no local row: a live row's version already
    // descends from its key's tombstone (re-inserts inherit it), and its row lock
    // serialises a local delete, so neither the read nor the lock is needed there.
    const absent = keyList.filter((state) => !state.existed);
    for (const [alias, state] of aliases) if (!state.existed) absent.push(alias);
    for (const [row, found] of await readTombstones(connection, {
      tombstones,
      tableText,
      pkColumns,
      absent,
    })) {
      const tombstone = tombstoneOf(row);
      const state = aliases.get(found) ?? found;
      // Each spelling may have its own tombstone (they are keyed by text): the key keeps the join of them.
      state.version =
        state.version === null
          ? tombstone.version
          : joinVersions(context.strategy, state.version, tombstone.version);
      state.tombstoned = true;
      if (tombstone.erasure !== undefined && state.erasure === undefined)
        state.erasure = tombstone.erasure;
    }

    // 2. Join every event into its key's state, in delivery order.
    const outcomes = new Map<ApplyOutcome, number>();
    const conflicts: ConflictRecord[] = [];
    // Conflicts whose local side is the row as read (not an earlier event of this chunk).
    const localSides = new Map<ConflictRecord, KeyState>();
    for (const event of events) {
      const state = keys.get(keyId(event.pk, primaryKey)) as KeyState;
      // A key change within one key (`'alice'` → `'ALICE'`): the row is
      // respelled by the upsert half, not deleted (counted once, there).
      if (
        collated &&
        event.movedTo !== undefined &&
        keys.get(keyId(event.movedTo, primaryKey)) === state
      )
        continue;
      // An erased key takes only versions written after the erasure was seen.
      if (
        state.erasure !== undefined &&
        !state.live &&
        !seesErasure(event.version, state.erasure)
      ) {
        outcomes.set('stale', (outcomes.get('stale') ?? 0) + 1);
        continue;
      }
      const before = { version: state.version, dataFromIncoming: state.dataFromIncoming };
      const beforeLive = state.live;
      const beforeImage = state.image;
      const decision = resolve({
        local: state.version,
        incoming: event.version,
        strategy: context.strategy,
      });
      outcomes.set(decision.outcome, (outcomes.get(decision.outcome) ?? 0) + 1);
      if (decision.outcome === 'conflict_won' || decision.outcome === 'conflict_lost') {
        const fromTable = !before.dataFromIncoming && beforeLive;
        const conflict: ConflictRecord = {
          pk: event.pk,
          winner: decision.winner,
          localVersion: before.version,
          incomingVersion: event.version,
          localRow: fromTable ? null : beforeImage,
          incomingRow: event.image,
        };
        conflicts.push(conflict);
        if (fromTable) localSides.set(conflict, state);
      }
      if (decision.winner === 'incoming') {
        state.live = event.op === 'upsert';
        state.image = event.after;
        state.dataFromIncoming = state.live;
      }
      if (decision.versionChanged || decision.winner === 'incoming') state.versionChanged = true;
      state.version = decision.resulting;
    }
    const recorded = conflicts.filter(() => context.recordConflict());
    await readLocalImages(connection, {
      target,
      pkColumns,
      visible: table.columns.filter((c) => !VERSION_COLUMN_SET.has(c.name)),
      conflicts: recorded.flatMap((c) => {
        const state = localSides.get(c);
        return state === undefined ? [] : [{ conflict: c, state }];
      }),
    });

    // 3. Write each key's final state, and re-check the keys read as absent.
    const changed = keyList.filter((s) => s.versionChanged && s.version !== null);
    const dead = changed.filter((s) => !s.live);
    const toDelete = dead.filter((s) => s.existed);
    const writes = [
      ...upsertStatements(
        target,
        table,
        columns,
        changed.filter((s) => s.live && s.dataFromIncoming),
      ),
      ...versionOnlyStatements(
        target,
        pkColumns,
        changed.filter((s) => s.live && !s.dataFromIncoming),
      ),
    ];
    if (toDelete.length > 0) {
      writes.push(
        `DELETE FROM ${target} WHERE (${pkColumns.map((c) => quoteId(c.name)).join(', ')}) IN (${toDelete
          .map((s) => keyTuple(pkColumns, s))
          .join(', ')})`,
      );
    }
    // A tombstone that did not exist when read is INSERTed: another applier's
    // tombstone of the same key written since then fails it with a duplicate
    // key (the chunk is retried) instead of being overwritten by an older one.
    for (const [states, upsert] of [
      [dead.filter((s) => s.existed || s.tombstoned), true],
      [dead.filter((s) => !s.existed && !s.tombstoned), false],
    ] as const) {
      if (states.length === 0) continue;
      writes.push(
        `INSERT INTO ${tombstones} (tbl, pk_hash, pk, ver, hlc) VALUES ${states
          .map((s) => {
            const version = s.version as RowVersion;
            const keyJson = keyJsonOf(pkColumns, s);
            return `(${sqlLiteral(tableText)}, ${keyHashOf(pkColumns, s)}, ${keyJson}, ${sqlLiteral(encodeStoredVersion(version))}, ${sqlLiteral(version.hlc)})`;
          })
          .join(', ')}` +
          (upsert
            ? ' ON DUPLICATE KEY UPDATE pk = VALUES(pk), ver = VALUES(ver), hlc = VALUES(hlc)'
            : ''),
      );
    }
    if (recorded.length > 0) writes.push(conflictInsert(context, tableText, recorded));
    const rechecks = recheckStatements({
      target,
      tombstones,
      tableText,
      pkColumns,
      // Deleted here without a row to delete: a row inserted since must not survive the delete.
      deletedAbsent: dead.filter((s) => !s.existed),
      // Inserted where no tombstone was: a tombstone written since must not lose to the insert.
      insertedUntombstoned: changed.filter(
        (s) => s.live && s.dataFromIncoming && !s.existed && !s.tombstoned,
      ),
    });
    const end = context.rollback === true ? 'ROLLBACK' : 'COMMIT';
    const results = await runStatements(connection, [
      ...writes,
      ...rechecks.map((r) => r.sql),
      ...(rechecks.length === 0 ? [end] : []),
    ]);
    rechecks.forEach((recheck, i) => {
      const found = (results[writes.length + i] as StatementResult).rows.length;
      if (found > 0) throw new ApplyRaced(tableText, recheck.raced(found));
    });
    if (rechecks.length > 0) await connection.query(end);
    open = false;
    return { outcomes, conflicts };
  } catch (err) {
    if (open) await connection.query('ROLLBACK').catch(() => undefined); // the statement error is the one to report
    throw err;
  }
}

/** What one statement returned: its rows (none for a write) and its columns. */
export interface StatementResult {
  rows: mysql.RowDataPacket[];
  fields: mysql.FieldPacket[];
}

/**
 * Runs `statements` in order, as one multi-statement query when the
 * connection was opened with `multipleStatements` (the apply stage's pool
 * is), otherwise one query each. The first failing statement rejects, and
 * the ones after it do not run, either way.
 */
export async function runStatements(
  connection: mysql.PoolConnection,
  statements: readonly string[],
): Promise<StatementResult[]> {
  const config = (
    connection as unknown as { connection?: { config?: { multipleStatements?: boolean } } }
  ).connection?.config;
  const one = (result: unknown, fields: unknown): StatementResult => ({
    rows: Array.isArray(result) ? (result as mysql.RowDataPacket[]) : [],
    fields: Array.isArray(fields) ? (fields as mysql.FieldPacket[]) : [],
  });
  if (config?.multipleStatements === true && statements.length > 1) {
    const [results, fields] = await connection.query(statements.join(';\n'));
    return statements.map((_, i) =>
      one((results as unknown[])[i], (fields as unknown as unknown[] | undefined)?.[i]),
    );
  }
  const results: StatementResult[] = [];
  for (const statement of statements) {
    const [result, fields] = await connection.query(statement);
    results.push(one(result, fields));
  }
  return results;
}

/**
 * `WITH keys_(_cdc_k, pk1, …) AS (…)`: the keys of `states` with their index, as
 * a table value constructor (`values`) or as `SELECT … UNION ALL SELECT …`.
 */
function keysCte(
  pkColumns: readonly ColumnInfo[],
  states: readonly KeyState[],
  values: boolean,
): string {
  // `_cdc_k`, not a name a key column could have (a key column `k` would clash).
  const names = ['_cdc_k', ...pkColumns.map((c) => quoteId(c.name))].join(', ');
  const rows = states.map(
    (state, i) => `${i}, ${pkColumns.map((c) => keyOperand(c, state)).join(', ')}`,
  );
  return values
    ? `WITH keys_(${names}) AS (VALUES (${rows.join('), (')}))`
    : `WITH keys_(${names}) AS (SELECT ${rows.join(' UNION ALL SELECT ')})`;
}

/**
 * Pairs (`_cdc_k`, `_cdc_same`) of the keys of `keysSql` that the server
 * holds to be one key with an earlier one (`'A'` and `'a'` under a
 * case-insensitive collation, `'a'` and `'a '` under a PAD SPACE one), by
 * the same comparison its primary key makes: the CTE's key columns carry
 * the table's collations (`keyOperand`).
 */
function sameKeysSql(keysSql: string, pkColumns: readonly ColumnInfo[]): string {
  const partition = pkColumns.map((c) => quoteId(c.name)).join(', ');
  return `${keysSql}
     SELECT _cdc_k, _cdc_same FROM (
       SELECT _cdc_k, MIN(_cdc_k) OVER (PARTITION BY ${partition}) AS _cdc_same FROM keys_
     ) AS same_ WHERE _cdc_k <> _cdc_same`;
}

/**
 * Folds each key the server found equal to an earlier one (`sameKeysSql`'s
 * rows) into that key's state: events of either spelling then join one
 * state, in delivery order, and the row is written once, spelled as its
 * winning image spells it. Returns the states left, and each folded state
 * with the state it went into.
 */
function mergeSameKeys(
  keys: Map<string, KeyState>,
  keyList: readonly KeyState[],
  rows: readonly mysql.RowDataPacket[],
): { keyList: KeyState[]; aliases: Map<KeyState, KeyState> } {
  const into = new Map<KeyState, KeyState>();
  for (const row of rows) {
    const from = keyList[Number(row._cdc_k)];
    const to = keyList[Number(row._cdc_same)];
    if (from === undefined || to === undefined) continue;
    // Nothing to carry over: the locked read joins the same collated key
    // list, so both spellings matched the same local row (or none).
    into.set(from, to);
  }
  for (const [id, state] of keys) {
    const to = into.get(state);
    if (to !== undefined) keys.set(id, to);
  }
  return { keyList: keyList.filter((state) => !into.has(state)), aliases: into };
}

function keyJoin(pkColumns: readonly ColumnInfo[]): string {
  return pkColumns.map((c) => `t.${quoteId(c.name)} = keys_.${quoteId(c.name)}`).join(' AND ');
}

/**
 * The local rows of conflicts about to be recorded, whose local side is the
 * row as read (already locked by this transaction, and not written yet): read
 * here, on the conflict path only, so that the chunk's locked read carries
 * the version columns alone.
 */
async function readLocalImages(
  connection: mysql.PoolConnection,
  chunk: {
    target: string;
    pkColumns: readonly ColumnInfo[];
    visible: readonly ColumnInfo[];
    conflicts: readonly { conflict: ConflictRecord; state: KeyState }[];
  },
): Promise<void> {
  if (chunk.conflicts.length === 0) return;
  const states = [...new Set(chunk.conflicts.map((c) => c.state))];
  const [rows] = await connection.query<mysql.RowDataPacket[]>(
    `${keysCte(chunk.pkColumns, states, false)}
     SELECT keys_._cdc_k, ${chunk.visible.map((c) => `t.${quoteId(c.name)}`).join(', ')}
       FROM keys_ JOIN ${chunk.target} AS t ON ${keyJoin(chunk.pkColumns)}`,
  );
  const images = new Map<KeyState, RowImage>();
  for (const row of rows) {
    const state = states[Number(row._cdc_k)];
    if (state === undefined) continue;
    const image: Record<string, unknown> = {};
    for (const c of chunk.visible) image[c.name] = row[c.name];
    images.set(state, encodeRow(image, VERSION_COLUMN_SET));
  }
  for (const { conflict, state } of chunk.conflicts) conflict.localRow = images.get(state) ?? null;
}

function conflictInsert(
  context: ChunkContext,
  tableText: string,
  recorded: readonly ConflictRecord[],
): string {
  const json = (value: unknown): string => sqlLiteral(JSON.stringify(value));
  return `INSERT INTO ${qualifiedName(context.internalSchema, INTERNAL_TABLES.conflicts)}
           (tbl, pk, source_region, strategy, winner, local_ver, incoming_ver, local_row, incoming_row)
         VALUES ${recorded
           .map((c) =>
             [
               sqlLiteral(tableText),
               json(c.pk),
               sqlLiteral(context.sourceRegion),
               sqlLiteral(context.strategyName),
               sqlLiteral(c.winner),
               c.localVersion === null ? 'NULL' : sqlLiteral(encodeStoredVersion(c.localVersion)),
               sqlLiteral(encodeStoredVersion(c.incomingVersion)),
               c.localRow === null ? 'NULL' : json(c.localRow),
               c.incomingRow === null ? 'NULL' : json(c.incomingRow),
             ].join(', '),
           )
           .map((row) => `(${row})`)
           .join(', ')}`;
}

/**
 * The re-check of keys this chunk read as absent, after its own writes and
 * before commit (write, then validate). Two applier transactions on one
 * absent key (an upsert from one source region, a delete from another, as
 * a region applies their partitions concurrently) each read "no row" and
 * "no tombstone" without a lock, and each writes a different table: the
 * upsert the row, the delete the tombstone. Whichever re-checks second sees
 * the other's write (or waits for its commit, as a locking read waits on an
 * uncommitted insert), so at least one of them retries and joins the other's
 * result. Both waiting on each other is a deadlock InnoDB breaks by rolling
 * one back: also a retry. Each statement finding a row means a race.
 */
function recheckStatements(chunk: {
  target: string;
  tombstones: string;
  tableText: string;
  pkColumns: readonly ColumnInfo[];
  deletedAbsent: readonly KeyState[];
  insertedUntombstoned: readonly KeyState[];
}): { sql: string; raced: (found: number) => string }[] {
  const { pkColumns } = chunk;
  const rechecks: { sql: string; raced: (found: number) => string }[] = [];
  if (chunk.deletedAbsent.length > 0) {
    rechecks.push({
      sql: `SELECT 1 FROM ${chunk.target} WHERE (${pkColumns.map((c) => quoteId(c.name)).join(', ')}) IN (${chunk.deletedAbsent
        .map((s) => keyTuple(pkColumns, s))
        .join(', ')}) FOR UPDATE`,
      raced: (found) => `${found} row(s) read as absent were inserted`,
    });
  }
  if (chunk.insertedUntombstoned.length > 0) {
    rechecks.push({
      sql: `SELECT 1 FROM ${chunk.tombstones}
        WHERE tbl = ${sqlLiteral(chunk.tableText)} AND pk_hash IN (${chunk.insertedUntombstoned.map((s) => keyHashOf(pkColumns, s)).join(', ')})
          FOR UPDATE`,
      raced: (found) => `${found} key(s) inserted without a tombstone got one`,
    });
  }
  return rechecks;
}

/** A key column's value in `state`, as an SQL literal. */
function keyLiteral(column: ColumnInfo, state: KeyState): string {
  return sqlLiteral(toParam(column, state.pk[column.name]));
}

/** Whether a key column's values compare under a collation (a character column), not as bytes. */
function isCollated(column: ColumnInfo): boolean {
  return (
    column.collation !== undefined && column.charset !== undefined && column.charset !== 'binary'
  );
}

/**
 * A key column's value in `state` as an operand that compares under the
 * column's collation. A plain literal would do in `col IN (…)`, but a
 * derived table's column built from literals takes the connection's
 * collation, and a join of it to the table would then either fail (two
 * implicit collations) or compare under the wrong one.
 */
function keyOperand(column: ColumnInfo, state: KeyState): string {
  const literal = keyLiteral(column, state);
  return isCollated(column)
    ? `CONVERT(${literal} USING ${column.charset as string}) COLLATE ${column.collation as string}`
    : literal;
}

/** `(v1, v2, ...)`: the key as a row constructor of literals. */
function keyTuple(pkColumns: readonly ColumnInfo[], state: KeyState): string {
  return `(${pkColumns.map((c) => keyLiteral(c, state)).join(', ')})`;
}

/** `JSON_ARRAY(...)` of the key's canonical text: the same expressions the tombstone trigger uses over OLD. */
function keyJsonOf(pkColumns: readonly ColumnInfo[], state: KeyState): string {
  return `JSON_ARRAY(${pkColumns
    .map((c) =>
      isBinaryDataType(c.dataType)
        ? `HEX(${keyLiteral(c, state)})`
        : `CAST(${keyLiteral(c, state)} AS CHAR)`,
    )
    .join(', ')})`;
}

/**
 * The tombstones of keys read as absent, locked, each with its key's state.
 * When Node computes every key's tombstone key (`nodeKeyHash`), a lookup of
 * the hashes as an IN list on the primary key, matched back by hash (less
 * server work and text than a derived table of one `SELECT … UNION ALL` per
 * key: bench/README.md, "What the profiles say"); otherwise that table, with
 * the keys' index, since only the server knows those keys' hashes.
 */
async function readTombstones(
  connection: mysql.PoolConnection,
  chunk: {
    tombstones: string;
    tableText: string;
    pkColumns: readonly ColumnInfo[];
    absent: readonly KeyState[];
  },
): Promise<[mysql.RowDataPacket, KeyState][]> {
  const { tombstones, tableText, pkColumns, absent } = chunk;
  if (absent.length === 0) return [];
  const byHash = new Map<string, KeyState[]>();
  let allHashed = true;
  for (const state of absent) {
    const hash = nodeKeyHash(pkColumns, state);
    if (hash === null) {
      allHashed = false;
      break;
    }
    // Two spellings of one key (`1` and `"1"`) hash alike: both get its tombstone.
    const same = byHash.get(hash);
    if (same === undefined) byHash.set(hash, [state]);
    else same.push(state);
  }
  if (allHashed) {
    const [rows] = await connection.query<mysql.RowDataPacket[]>(
      `SELECT LOWER(HEX(pk_hash)) AS h, CAST(ver AS CHAR) AS ver, CAST(pk AS CHAR) AS pk
         FROM ${tombstones}
        WHERE tbl = ${sqlLiteral(tableText)} AND pk_hash IN (${[...byHash.keys()].map((h) => `X'${h}'`).join(', ')})
          FOR UPDATE`,
    );
    return rows.flatMap((row) =>
      (byHash.get(String(row.h)) ?? []).map((state): [mysql.RowDataPacket, KeyState] => [
        row,
        state,
      ]),
    );
  }
  const [rows] = await connection.query<mysql.RowDataPacket[]>(
    `SELECT keys_.k AS _cdc_k, CAST(tb.ver AS CHAR) AS ver, CAST(tb.pk AS CHAR) AS pk
       FROM (${absent.map((state, i) => `SELECT ${i} AS k, ${keyHashOf(pkColumns, state)} AS h`).join(' UNION ALL ')}) AS keys_
       JOIN ${tombstones} AS tb ON tb.tbl = ${sqlLiteral(tableText)} AND tb.pk_hash = keys_.h
      FOR UPDATE`,
  );
  return rows.flatMap((row): [mysql.RowDataPacket, KeyState][] => {
    const state = absent[Number(row._cdc_k)];
    return state === undefined ? [] : [[row, state]];
  });
}

/**
 * The tombstone key of a key state as lowercase hex when Node computes it
 * (`tombstoneKeyHash`), else null; computed once per state (a chunk asks for
 * it when reading tombstones, re-checking and writing them).
 */
function nodeKeyHash(pkColumns: readonly ColumnInfo[], state: KeyState): string | null {
  if (state.keyHash === undefined) state.keyHash = tombstoneKeyHash(pkColumns, state.pk) ?? null;
  return state.keyHash;
}

/**
 * The tombstone key of `state` as SQL: `UNHEX(SHA2(JSON_ARRAY(…), 256))`,
 * the expression the triggers compute over OLD. Wherever the key's trigger
 * text is certain (`tombstoneKeyHash`: integer, text, BINARY/VARBINARY and
 * DECIMAL keys with values in their canonical form) the hash is computed
 * here and sent as a literal: the server then does a lookup instead of two
 * JSON and one SHA-256 evaluation per key (twice for an insert: read and
 * re-check). test/integration/apply/key-hash.test.ts pins the two
 * computations to each other on MariaDB and MySQL 8.
 */
function keyHashOf(pkColumns: readonly ColumnInfo[], state: KeyState): string {
  const hash = nodeKeyHash(pkColumns, state);
  return hash === null ? `UNHEX(SHA2(${keyJsonOf(pkColumns, state)}, 256))` : `X'${hash}'`;
}

const INTEGER_DATA_TYPES: ReadonlySet<string> = new Set([
  'tinyint',
  'smallint',
  'mediumint',
  'int',
  'bigint',
]);

/**
 * `tombstoneKeyHash` restricted to keys of integer columns (its first use,
 * kept for callers that only want those).
 */
export function integerKeyHash(pkColumns: readonly ColumnInfo[], pk: RowImage): string | undefined {
  return pkColumns.every((c) => INTEGER_DATA_TYPES.has(c.dataType))
    ? tombstoneKeyHash(pkColumns, pk)
    : undefined;
}

/**
 * The version columns' values as SQL literals, quoted without escaping:
 * neither text can hold a quote or a backslash (a timestamp is digits and
 * `- :.`; the stored version is JSON of region names, which
 * REGION_NAME_PATTERN limits to `a-z0-9_-`, and integers). Escaping them
 * was a regular-expression pass over every written row.
 */
function versionLiterals(version: RowVersion): [string, string] {
  return [`'${microsToMysqlTimestamp(version.hlc)}'`, `'${encodeStoredVersion(version)}'`];
}

/**
 * Rows whose data comes from an incoming event. Keys that existed (and are
 * locked) are upserted; keys that did not are plainly INSERTed, so a local
 * insert that slipped into the gap (READ COMMITTED takes no gap locks) makes
 * the statement fail with a duplicate key and the chunk is retried with
 * fresh reads instead of overwriting a newer local row.
 *
 * A local column absent from the winning image takes its default, on insert
 * and on update alike (DESIGN.md §6a): the image was written by a region that
 * did not have the column yet, and every region must end with the same row.
 * Generated columns are never written.
 */
function upsertStatements(
  target: string,
  table: ChunkContext['table'],
  columns: ReadonlyMap<string, ColumnInfo>,
  states: readonly KeyState[],
): string[] {
  const pk = new Set(table.primaryKey);
  // A key column under a collation takes the winning image's spelling too
  // (`'alice'` → `'ALICE'` is an update of the same row), or regions would
  // keep the spelling each happened to insert.
  const respelled = new Set(
    table.primaryKey.filter((n) => isCollated(columns.get(n) as ColumnInfo)),
  );
  const generated = table.generated ?? new Set<string>();
  const implicitDefaults = table.implicitDefaults ?? new Map<string, string | number>();
  const writable = table.columns.filter(
    (c) => !VERSION_COLUMN_SET.has(c.name) && !generated.has(c.name),
  );
  // Rows of one statement must list the same columns; events normally all do.
  const allNames = writable.map((c) => c.name);
  const groups = new Map<string, { names: string[]; existed: boolean; states: KeyState[] }>();
  for (const state of states) {
    const image = state.image ?? {};
    const lists = (name: string): boolean =>
      Object.hasOwn(image, name) || implicitDefaults.has(name);
    // The common case, an image of every column, shares one list and one id.
    const complete = allNames.every(lists);
    const names = complete ? allNames : allNames.filter(lists);
    // `u`/`i` alone for complete images; any other list has `:` and its names.
    const id = `${state.existed ? 'u' : 'i'}${complete ? '' : `:${names.join('\u0000')}`}`;
    const group = groups.get(id);
    if (group === undefined) groups.set(id, { names, existed: state.existed, states: [state] });
    else group.states.push(state);
  }
  return [...groups.values()].map((group) => {
    const listed = new Set(group.names);
    const all = [...group.names, VERSION_COLUMNS.ts, VERSION_COLUMNS.ver];
    const names = group.names;
    const infos = names.map((n) => columns.get(n) as ColumnInfo);
    const binary = infos.map((info) => isBinaryDataType(info.dataType));
    // The VALUES text is built here, value by value, with mysql2's own escaping:
    // formatting ~12k `?` of a 1000-row statement cost more than the escaping.
    const rows: string[] = [];
    for (const s of group.states) {
      const image = s.image;
      let row = '(';
      for (let i = 0; i < names.length; i += 1) {
        const name = names[i] as string;
        const value = image === null ? undefined : image[name];
        // Numbers and NULL (most values) need no escaping; an absent column takes its implicit default.
        if (typeof value === 'number') row += `${value}, `;
        else if (value === null) row += 'NULL, ';
        else if (value === undefined && !(image !== null && Object.hasOwn(image, name)))
          row += `${sqlLiteral(implicitDefaults.get(name))}, `;
        else
          row += `${sqlLiteral(binary[i] === true ? toParam(infos[i] as ColumnInfo, value) : (value ?? null))}, `;
      }
      const [ts, ver] = versionLiterals(s.version as RowVersion);
      rows.push(`${row}${ts}, ${ver})`);
    }
    const updates = [
      ...all
        .filter((n) => !pk.has(n) || respelled.has(n))
        .map((n) => `${quoteId(n)} = VALUES(${quoteId(n)})`),
      ...writable
        .filter((c) => !listed.has(c.name) && !pk.has(c.name))
        .map((c) => `${quoteId(c.name)} = DEFAULT(${quoteId(c.name)})`),
    ];
    return (
      `INSERT INTO ${target} (${all.map(quoteId).join(', ')}) VALUES ${rows.join(', ')}` +
      (group.existed ? ` ON DUPLICATE KEY UPDATE ${updates.join(', ')}` : '')
    );
  });
}

/**
 * Local data stays, but the stored version absorbed the other side's vector
 * (LWW conflict lost): one UPDATE joined to the new versions of every such
 * key, not one round trip per key.
 */
function versionOnlyStatements(
  target: string,
  pkColumns: readonly ColumnInfo[],
  states: readonly KeyState[],
): string[] {
  if (states.length === 0) return [];
  const ts = quoteId(VERSION_COLUMNS.ts);
  const ver = quoteId(VERSION_COLUMNS.ver);
  const rows = states
    .map((state) => {
      const [newTs, newVer] = versionLiterals(state.version as RowVersion);
      return `SELECT ${pkColumns.map((c) => `${keyOperand(c, state)} AS ${quoteId(c.name)}`).join(', ')}, ${newTs} AS _cdc_new_ts, ${newVer} AS _cdc_new_ver`;
    })
    .join(' UNION ALL ');
  return [
    `UPDATE ${target} AS t JOIN (${rows}) AS v
        ON ${pkColumns.map((c) => `t.${quoteId(c.name)} = v.${quoteId(c.name)}`).join(' AND ')}
        SET t.${ts} = v._cdc_new_ts, t.${ver} = v._cdc_new_ver`,
  ];
}
