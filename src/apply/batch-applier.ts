import mysql from 'mysql2/promise';
import type { JsonScalar, RowImage } from '../bus/envelope.js';
import { encodeRow } from '../capture/row-codec.js';
import { isBinaryDataType } from '../mysql/column-types.js';
import { qualifiedName, quoteId } from '../mysql/identifiers.js';
import { INTERNAL_TABLES, VERSION_COLUMNS } from '../mysql/internal-tables.js';
import type { ColumnInfo, TableInfo } from '../mysql/introspect.js';
import { microsToMysqlTimestamp } from '../versioning/hlc.js';
import { resolve, type ApplyOutcome, type ConflictStrategy } from '../versioning/resolve.js';
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
  /** Whether to record this conflict in `_cdc_conflicts` (sampling). */
  recordConflict: () => boolean;
  /**
   * Roll the transaction back instead of committing it: a dry run that takes
   * the same path (locks, join, statements, constraint checks) and leaves nothing.
   */
  rollback?: boolean;
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
  /** The local row as read (visible columns), encoded only if a conflict record shows it. */
  localRow: Record<string, unknown> | null;
  version: RowVersion | null;
  live: boolean;
  image: RowImage | null;
  /** The row's data comes from an incoming event (must be written). */
  dataFromIncoming: boolean;
  versionChanged: boolean;
}

const VERSION_COLUMN_SET: ReadonlySet<string> = new Set([VERSION_COLUMNS.ts, VERSION_COLUMNS.ver]);

/** Stable identity of a key inside one chunk (values as the envelope encodes them). */
function localImageOf(state: KeyState): RowImage | null {
  return state.localRow === null ? null : encodeRow(state.localRow, VERSION_COLUMN_SET);
}

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
 * Applies one chunk of events of one table in one MySQL transaction
 * (DESIGN.md §2–§4): marker first, then the keys' rows and tombstones locked
 * and read, each event joined into the key's state in order, and only the
 * final state of each key written, with multi-row statements.
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
  for (const event of events) {
    const id = keyId(event.pk, primaryKey);
    if (!keys.has(id)) {
      keys.set(id, {
        pk: event.pk,
        existed: false,
        tombstoned: false,
        localRow: null,
        version: null,
        live: false,
        image: null,
        dataFromIncoming: false,
        versionChanged: false,
      });
    }
  }
  const keyList = [...keys.values()];

  await connection.beginTransaction();
  try {
    // 1. The marker: capture drops this whole transaction from the binlog.
    await connection.query(
      `INSERT INTO ${qualifiedName(context.internalSchema, INTERNAL_TABLES.applyMarker)} (applier, source_region, batches)
       VALUES (?, ?, 1) ON DUPLICATE KEY UPDATE batches = batches + 1, source_region = VALUES(source_region)`,
      [context.applierId, context.sourceRegion],
    );

    // 2. Lock and read the rows and tombstones of the chunk's keys.
    // Statements are built with the values as SQL literals (mysql2's escaping):
    // placeholder formatting of thousands of `?` cost more than the escaping.
    const keyRows = keyList
      .map(
        (state, i) =>
          `SELECT ${i} AS k, ${pkColumns.map((c) => `${keyLiteral(c, state)} AS ${quoteId(c.name)}`).join(', ')}`,
      )
      .join(' UNION ALL ');
    const visible = table.columns.filter((c) => !VERSION_COLUMN_SET.has(c.name));
    // `t.*` (never INVISIBLE columns) shows a column added since the description was read.
    const [rows, fields] = await connection.query<mysql.RowDataPacket[]>(
      `SELECT keys_.k AS _cdc_k, t.*,
              CAST(UNIX_TIMESTAMP(t.${quoteId(VERSION_COLUMNS.ts)}) * 1000000 AS UNSIGNED) AS _cdc_ts_us,
              CAST(t.${quoteId(VERSION_COLUMNS.ver)} AS CHAR) AS _cdc_ver_text
         FROM (${keyRows}) AS keys_
         JOIN ${target} AS t ON ${pkColumns.map((c) => `t.${quoteId(c.name)} = keys_.${quoteId(c.name)}`).join(' AND ')}
        FOR UPDATE`,
    );
    const unknown = fields
      .map((f) => f.name)
      .filter((n) => !columns.has(n) && !['_cdc_k', '_cdc_ts_us', '_cdc_ver_text'].includes(n));
    if (unknown.length > 0) throw new LocalTableChanged(tableText, unknown);
    for (const row of rows) {
      const state = keyList[Number(row._cdc_k)];
      if (state === undefined) continue;
      const image: Record<string, unknown> = {};
      for (const c of visible) image[c.name] = row[c.name];
      state.existed = true;
      state.live = true;
      state.localRow = image;
      const verText = row._cdc_ver_text as string | null;
      state.version = effectiveVersion({
        tsMicros: Number(row._cdc_ts_us),
        stored: verText === null ? null : decodeStoredVersion(verText),
        self: context.region,
      });
    }
    // Tombstones only of keys with no local row: a live row's version already
    // descends from its key's tombstone (re-inserts inherit it), and its row lock
    // serialises a local delete, so neither the read nor the lock is needed there.
    const absent = keyList.map((state, i) => ({ state, i })).filter(({ state }) => !state.existed);
    if (absent.length > 0) {
      const [tombRows] = await connection.query<mysql.RowDataPacket[]>(
        `SELECT keys_.k AS _cdc_k, CAST(tb.ver AS CHAR) AS ver
           FROM (${absent.map(({ state, i }) => `SELECT ${i} AS k, ${keyHashOf(pkColumns, state)} AS h`).join(' UNION ALL ')}) AS keys_
           JOIN ${tombstones} AS tb ON tb.tbl = ${sqlLiteral(tableText)} AND tb.pk_hash = keys_.h
          FOR UPDATE`,
      );
      for (const row of tombRows) {
        const state = keyList[Number(row._cdc_k)];
        if (state === undefined || state.existed) continue;
        state.tombstoned = true;
        state.version = decodeStoredVersion(String(row.ver));
      }
    }

    // 3. Join every event into its key's state, in delivery order.
    const outcomes = new Map<ApplyOutcome, number>();
    const conflicts: ConflictRecord[] = [];
    for (const event of events) {
      const state = keys.get(keyId(event.pk, primaryKey)) as KeyState;
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
        conflicts.push({
          pk: event.pk,
          winner: decision.winner,
          localVersion: before.version,
          incomingVersion: event.version,
          // Until an incoming event wins, the key's image is the local row's (encoded only here).
          localRow: before.dataFromIncoming || !beforeLive ? beforeImage : localImageOf(state),
          incomingRow: event.image,
        });
      }
      if (decision.winner === 'incoming') {
        state.live = event.op === 'upsert';
        state.image = event.after;
        state.dataFromIncoming = state.live;
      }
      if (decision.versionChanged || decision.winner === 'incoming') state.versionChanged = true;
      state.version = decision.resulting;
    }

    // 4. Write each key's final state.
    const changed = keyList.filter((s) => s.versionChanged && s.version !== null);
    await writeUpserts(
      connection,
      target,
      table,
      columns,
      changed.filter((s) => s.live && s.dataFromIncoming),
    );
    await writeVersionOnly(
      connection,
      target,
      pkColumns,
      changed.filter((s) => s.live && !s.dataFromIncoming),
    );
    const dead = changed.filter((s) => !s.live);
    const toDelete = dead.filter((s) => s.existed);
    if (toDelete.length > 0) {
      await connection.query(
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
      await connection.query(
        `INSERT INTO ${tombstones} (tbl, pk_hash, pk, ver, hlc) VALUES ${states
          .map((s) => {
            const version = s.version as RowVersion;
            const keyJson = keyJsonOf(pkColumns, s);
            return `(${sqlLiteral(tableText)}, UNHEX(SHA2(${keyJson}, 256)), ${keyJson}, ${sqlLiteral(encodeStoredVersion(version))}, ${sqlLiteral(version.hlc)})`;
          })
          .join(', ')}` +
          (upsert
            ? ' ON DUPLICATE KEY UPDATE pk = VALUES(pk), ver = VALUES(ver), hlc = VALUES(hlc)'
            : ''),
      );
    }
    await recheckAbsentKeys(connection, {
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
    const recorded = conflicts.filter(() => context.recordConflict());
    if (recorded.length > 0) {
      await connection.query(
        `INSERT INTO ${qualifiedName(context.internalSchema, INTERNAL_TABLES.conflicts)}
           (tbl, pk, source_region, strategy, winner, local_ver, incoming_ver, local_row, incoming_row)
         VALUES ${recorded.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`,
        recorded.flatMap((c) => [
          tableText,
          JSON.stringify(c.pk),
          context.sourceRegion,
          context.strategyName,
          c.winner,
          c.localVersion === null ? null : encodeStoredVersion(c.localVersion),
          encodeStoredVersion(c.incomingVersion),
          c.localRow === null ? null : JSON.stringify(c.localRow),
          c.incomingRow === null ? null : JSON.stringify(c.incomingRow),
        ]),
      );
    }
    if (context.rollback === true) await connection.rollback();
    else await connection.commit();
    return { outcomes, conflicts };
  } catch (err) {
    await connection.rollback().catch(() => undefined); // the statement error is the one to report
    throw err;
  }
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
 * one back: also a retry.
 */
async function recheckAbsentKeys(
  connection: mysql.PoolConnection,
  chunk: {
    target: string;
    tombstones: string;
    tableText: string;
    pkColumns: readonly ColumnInfo[];
    deletedAbsent: readonly KeyState[];
    insertedUntombstoned: readonly KeyState[];
  },
): Promise<void> {
  const { pkColumns } = chunk;
  if (chunk.deletedAbsent.length > 0) {
    const [rows] = await connection.query<mysql.RowDataPacket[]>(
      `SELECT 1 FROM ${chunk.target} WHERE (${pkColumns.map((c) => quoteId(c.name)).join(', ')}) IN (${chunk.deletedAbsent
        .map((s) => keyTuple(pkColumns, s))
        .join(', ')}) FOR UPDATE`,
    );
    if (rows.length > 0)
      throw new ApplyRaced(chunk.tableText, `${rows.length} row(s) read as absent were inserted`);
  }
  if (chunk.insertedUntombstoned.length > 0) {
    const [rows] = await connection.query<mysql.RowDataPacket[]>(
      `SELECT 1 FROM ${chunk.tombstones}
        WHERE tbl = ${sqlLiteral(chunk.tableText)} AND pk_hash IN (${chunk.insertedUntombstoned.map((s) => keyHashOf(pkColumns, s)).join(', ')})
          FOR UPDATE`,
    );
    if (rows.length > 0)
      throw new ApplyRaced(
        chunk.tableText,
        `${rows.length} key(s) inserted without a tombstone got one`,
      );
  }
}

/** A key column's value in `state`, as an SQL literal. */
function keyLiteral(column: ColumnInfo, state: KeyState): string {
  return sqlLiteral(toParam(column, state.pk[column.name]));
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

function keyHashOf(pkColumns: readonly ColumnInfo[], state: KeyState): string {
  return `UNHEX(SHA2(${keyJsonOf(pkColumns, state)}, 256))`;
}

function versionParams(version: RowVersion): [string, string] {
  return [microsToMysqlTimestamp(version.hlc), encodeStoredVersion(version)];
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
async function writeUpserts(
  connection: mysql.PoolConnection,
  target: string,
  table: ChunkContext['table'],
  columns: ReadonlyMap<string, ColumnInfo>,
  states: readonly KeyState[],
): Promise<void> {
  const pk = new Set(table.primaryKey);
  const generated = table.generated ?? new Set<string>();
  const implicitDefaults = table.implicitDefaults ?? new Map<string, string | number>();
  const writable = table.columns.filter(
    (c) => !VERSION_COLUMN_SET.has(c.name) && !generated.has(c.name),
  );
  // Rows of one statement must list the same columns; events normally all do.
  const groups = new Map<string, { names: string[]; existed: boolean; states: KeyState[] }>();
  for (const state of states) {
    const image = state.image ?? {};
    const names = writable
      .filter((c) => Object.hasOwn(image, c.name) || implicitDefaults.has(c.name))
      .map((c) => c.name);
    const id = `${state.existed ? 'u' : 'i'}:${names.join('\u0000')}`;
    const group = groups.get(id);
    if (group === undefined) groups.set(id, { names, existed: state.existed, states: [state] });
    else group.states.push(state);
  }
  for (const group of groups.values()) {
    const listed = new Set(group.names);
    const all = [...group.names, VERSION_COLUMNS.ts, VERSION_COLUMNS.ver];
    const infos = group.names.map((n) => columns.get(n) as ColumnInfo);
    // The VALUES text is built here, value by value, with mysql2's own escaping:
    // formatting ~12k `?` of a 1000-row statement cost more than the escaping.
    const rows: string[] = [];
    for (const s of group.states) {
      let row = '(';
      for (let i = 0; i < infos.length; i += 1) {
        const info = infos[i] as ColumnInfo;
        const value =
          s.image !== null && Object.hasOwn(s.image, info.name)
            ? toParam(info, s.image[info.name])
            : implicitDefaults.get(info.name);
        row += `${sqlLiteral(value)}, `;
      }
      const [ts, ver] = versionParams(s.version as RowVersion);
      rows.push(`${row}${sqlLiteral(ts)}, ${sqlLiteral(ver)})`);
    }
    const updates = [
      ...all.filter((n) => !pk.has(n)).map((n) => `${quoteId(n)} = VALUES(${quoteId(n)})`),
      ...writable
        .filter((c) => !listed.has(c.name) && !pk.has(c.name))
        .map((c) => `${quoteId(c.name)} = DEFAULT(${quoteId(c.name)})`),
    ];
    await connection.query(
      `INSERT INTO ${target} (${all.map(quoteId).join(', ')}) VALUES ${rows.join(', ')}` +
        (group.existed ? ` ON DUPLICATE KEY UPDATE ${updates.join(', ')}` : ''),
    );
  }
}

/**
 * Local data stays, but the stored version absorbed the other side's vector
 * (LWW conflict lost): one UPDATE joined to the new versions of every such
 * key, not one round trip per key.
 */
async function writeVersionOnly(
  connection: mysql.PoolConnection,
  target: string,
  pkColumns: readonly ColumnInfo[],
  states: readonly KeyState[],
): Promise<void> {
  if (states.length === 0) return;
  const ts = quoteId(VERSION_COLUMNS.ts);
  const ver = quoteId(VERSION_COLUMNS.ver);
  const rows = states
    .map((state) => {
      const [newTs, newVer] = versionParams(state.version as RowVersion);
      return `SELECT ${pkColumns.map((c) => `${keyLiteral(c, state)} AS ${quoteId(c.name)}`).join(', ')}, ${sqlLiteral(newTs)} AS _cdc_new_ts, ${sqlLiteral(newVer)} AS _cdc_new_ver`;
    })
    .join(' UNION ALL ');
  await connection.query(
    `UPDATE ${target} AS t JOIN (${rows}) AS v
        ON ${pkColumns.map((c) => `t.${quoteId(c.name)} = v.${quoteId(c.name)}`).join(' AND ')}
        SET t.${ts} = v._cdc_new_ts, t.${ver} = v._cdc_new_ver`,
  );
}
