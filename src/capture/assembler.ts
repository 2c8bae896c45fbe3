import type { ChangeEvent, RowImage } from '../bus/envelope.js';
import { ENVELOPE_VERSION } from '../bus/envelope.js';
import { CdcError } from '../core/errors.js';
import { INTERNAL_COLUMNS, INTERNAL_TABLES, VERSION_COLUMNS } from '../mysql/internal-tables.js';
import { mysqlTimestampToMicros } from '../versioning/hlc.js';
import {
  decodeStoredVersion,
  effectiveVersion,
  parseStoredVersion,
  type RowVersion,
} from '../versioning/version.js';
import { encodeRow, primaryKeyOf } from './row-codec.js';
import type { RowValues, SourceEvent } from './source-events.js';

/** What capture does next: publish a change, checkpoint a position, or park a bad row. */
export type CaptureOutput =
  | { kind: 'change'; event: ChangeEvent }
  | { kind: 'commit'; position: string; gtid: string | null }
  | { kind: 'dead-letter'; reason: string; detail: string; source: Record<string, unknown> }
  | { kind: 'ddl'; schema: string; statement: string; timestampMs: number }
  | { kind: 'warning'; reason: string; message: string }
  /** The binlog sent a transaction of this region's applier (dropped whole: DESIGN.md §4). */
  | { kind: 'applier-transaction' };

export interface AssemblerOptions {
  region: string;
  internalSchema: string;
  /** True for tables whose changes are published (configured, not internal). */
  isReplicated: (schema: string, table: string) => boolean;
}

/** Row-changing SQL (after any leading comments): in a ROW-format binlog it should never appear as a statement. */
const STATEMENT_DML = /^\s*(?:\/\*[\s\S]*?\*\/\s*)*(?:INSERT|REPLACE|UPDATE|DELETE|LOAD\s+DATA)\b/i;

interface PendingDelete {
  schema: string;
  table: string;
  before: RowImage;
  pk: RowImage;
  raw: RowValues;
  timestampMs: number;
  /** The table's column types when read (masks and eviction notices of governed tables need them). */
  types?: Readonly<Record<string, string>>;
}

/**
 * Turns binlog events into change events, one transaction at a time, in
 * binlog order. It holds no transaction in memory: rows stream out as they
 * arrive, so a million-row transaction flows through in constant space. The
 * only state is the deletes waiting for their tombstone, which the trigger
 * writes right after each deleted row (so at most a row or two).
 *
 * Filtering (DESIGN.md §4): a transaction that touches the apply marker is the
 * applier's own and is dropped whole (the marker is its first row); internal
 * `_cdc_*` tables are never published, except heartbeats.
 */
export class TransactionAssembler {
  #gtid: string | null = null;
  #applierTransaction = false;
  readonly #pendingDeletes = new Map<string, PendingDelete[]>();
  /**
   * The previous row's version inputs (`_cdc_ts` text, `_cdc_ver` text) and
   * result. Every row of one statement carries the same `_cdc_ts`, so a
   * multi-row write computes its version once instead of parsing the same
   * timestamp per row (bench/capture found that parse among the top costs).
   * Versions are never mutated, so events may share one.
   */
  #lastVersion: { ts: string; stored: string | null; version: RowVersion } | undefined;
  /** The last version given to a row without version columns. */
  #lastUnversionedHlc = 0;
  /** Newest hlc published per table (`schema.table`), the floor for rows without version columns. */
  readonly #newestHlc = new Map<string, number>();
  /** Column types as published (version columns left out), per table description. */
  readonly #publishedTypes = new WeakMap<
    Readonly<Record<string, string>>,
    Readonly<Record<string, string>>
  >();

  constructor(private readonly options: AssemblerOptions) {}

  push(event: SourceEvent): CaptureOutput[] {
    switch (event.kind) {
      case 'begin':
        this.#gtid = event.gtid;
        this.#applierTransaction = false;
        this.#pendingDeletes.clear();
        return [];
      case 'rows':
        return this.#rows(event);
      case 'commit': {
        const out = this.#flushUnmatchedDeletes();
        out.push({ kind: 'commit', position: event.position, gtid: event.gtid ?? this.#gtid });
        this.#gtid = null;
        this.#applierTransaction = false;
        return out;
      }
      case 'ddl': {
        if (STATEMENT_DML.test(event.statement)) {
          // A session with binlog_format STATEMENT or MIXED (the startup check
          // sees only the global value) logged its rows as SQL text: there
          // are no row images to publish, so the change cannot replicate.
          // Never silently: a warning, counted by reason.
          return [
            {
              kind: 'warning',
              reason: 'statement_based_dml',
              message:
                `a data change was logged as a statement, not as rows, and cannot be captured ` +
                `(the writing session's binlog_format is not ROW; SET GLOBAL binlog_format only affects new sessions): ` +
                event.statement.slice(0, 200),
            },
            { kind: 'commit', position: event.position, gtid: event.gtid },
          ];
        }
        return [
          {
            kind: 'ddl',
            schema: event.schema,
            statement: event.statement,
            timestampMs: event.timestampMs,
          },
          { kind: 'commit', position: event.position, gtid: event.gtid },
        ];
      }
    }
  }

  #rows(event: Extract<SourceEvent, { kind: 'rows' }>): CaptureOutput[] {
    const { internalSchema } = this.options;
    if (event.schema === internalSchema && event.table === INTERNAL_TABLES.applyMarker) {
      const first = !this.#applierTransaction;
      this.#applierTransaction = true;
      this.#pendingDeletes.clear();
      return first ? [{ kind: 'applier-transaction' }] : [];
    }
    if (this.#applierTransaction) return [];
    if (event.schema === internalSchema) {
      if (event.table === INTERNAL_TABLES.tombstones && event.op !== 'delete') {
        return this.#tombstones(event);
      }
      if (event.table === INTERNAL_TABLES.heartbeat && event.op !== 'delete') {
        return this.#heartbeats(event);
      }
      return [];
    }
    if (!this.options.isReplicated(event.schema, event.table)) return [];
    const out: CaptureOutput[] = [];
    for (const row of event.rows) {
      try {
        if (event.op === 'delete') {
          this.#queueDelete(event, row);
        } else {
          const before = event.op === 'update' ? (row as { before: RowValues }).before : null;
          const after =
            event.op === 'update' ? (row as { after: RowValues }).after : (row as RowValues);
          out.push({ kind: 'change', event: this.#upsert(event, before, after) });
        }
      } catch (err) {
        out.push(this.#deadLetter(err, event, row));
      }
    }
    return out;
  }

  #upsert(
    event: Extract<SourceEvent, { kind: 'rows' }>,
    beforeRaw: RowValues | null,
    afterRaw: RowValues,
  ): ChangeEvent {
    const where = `${event.schema}.${event.table}`;
    // Images leave out INTERNAL_COLUMNS: the version columns (they travel as the
    // event's version) and the key hash of governed tables, a virtual column
    // that both servers still write into FULL row images.
    const after = encodeRow(afterRaw, INTERNAL_COLUMNS);
    const version = this.#rowVersion(afterRaw, where, event.timestampMs);
    const change = this.#envelope(event.op === 'insert' ? 'c' : 'u', event.schema, event.table, {
      pk: primaryKeyOf(after, event.primaryKey, where),
      before: beforeRaw === null ? null : encodeRow(beforeRaw, INTERNAL_COLUMNS),
      after,
      version,
      timestampMs: event.timestampMs,
    });
    if (event.columnTypes !== undefined) change.types = this.#typesOf(event.columnTypes);
    return change;
  }

  /** The column types an event carries: the row image's columns, never the internal ones. */
  #typesOf(all: Readonly<Record<string, string>>): Readonly<Record<string, string>> {
    let types = this.#publishedTypes.get(all);
    if (types === undefined) {
      types = Object.fromEntries(
        Object.entries(all).filter(([name]) => !INTERNAL_COLUMNS.has(name)),
      );
      this.#publishedTypes.set(all, types);
    }
    return types;
  }

  /**
   * The row's effective version from its after-image (DESIGN.md §3), as the
   * applier computes it. A row of a table without version columns (a table
   * just created under `schema.*`, or swapped in by a copy that left them
   * out, before capture's self-repair added them) gets a fresh local
   * version at its commit time.
   */
  #rowVersion(row: RowValues, where: string, timestampMs: number): RowVersion {
    const ts = row[VERSION_COLUMNS.ts];
    if (ts === undefined && !(VERSION_COLUMNS.ver in row))
      return this.#unversioned(timestampMs, this.#newestHlc.get(where) ?? 0);
    if (typeof ts !== 'string') {
      throw new CdcError(`${where}: ${VERSION_COLUMNS.ts} is not a timestamp`, {
        code: 'VERSION_INVALID',
      });
    }
    const stored = row[VERSION_COLUMNS.ver];
    // Only text (MariaDB) or absent versions are memoised; MySQL's parsed JSON is not comparable by value.
    const storedText = stored === null || stored === undefined ? null : stored;
    const last = this.#lastVersion;
    if (last !== undefined && last.ts === ts && last.stored === storedText) return last.version;
    const version = effectiveVersion({
      tsMicros: mysqlTimestampToMicros(ts),
      stored: decodeVersionValue(stored),
      self: this.options.region,
    });
    this.#lastVersion =
      typeof storedText === 'string' || storedText === null
        ? { ts, stored: storedText, version }
        : undefined;
    return version;
  }

  /**
   * A version for a row without version columns: this region at the commit
   * time (the binlog's, in whole seconds), above every version this capture
   * published for the table (the row's previous version, when this region
   * wrote it, is among them: a commit second alone would be below it), and
   * strictly increasing across such rows, so two writes of one key in the
   * same second still order.
   */
  #unversioned(timestampMs: number, tableFloor: number): RowVersion {
    const hlc = Math.max(timestampMs * 1000, tableFloor + 1, this.#lastUnversionedHlc + 1);
    this.#lastUnversionedHlc = hlc;
    return { origin: this.options.region, hlc, vv: { [this.options.region]: hlc } };
  }

  #queueDelete(event: Extract<SourceEvent, { kind: 'rows' }>, raw: RowValues): void {
    const where = `${event.schema}.${event.table}`;
    const before = encodeRow(raw, INTERNAL_COLUMNS);
    const pending: PendingDelete = {
      schema: event.schema,
      table: event.table,
      before,
      pk: primaryKeyOf(before, event.primaryKey, where),
      raw,
      timestampMs: event.timestampMs,
    };
    if (event.columnTypes !== undefined) pending.types = this.#typesOf(event.columnTypes);
    const queue = this.#pendingDeletes.get(where);
    if (queue === undefined) this.#pendingDeletes.set(where, [pending]);
    else queue.push(pending);
  }

  /**
   * The trigger's tombstone follows each deleted row in the same transaction,
   * in row order, so the oldest pending delete of that table is its row.
   */
  #tombstones(event: Extract<SourceEvent, { kind: 'rows' }>): CaptureOutput[] {
    const out: CaptureOutput[] = [];
    for (const row of event.rows) {
      const image =
        event.op === 'update' ? (row as { after: RowValues }).after : (row as RowValues);
      const tbl = typeof image.tbl === 'string' ? image.tbl : '';
      const pending = this.#pendingDeletes.get(tbl)?.shift();
      if (pending === undefined) {
        // A tombstone without a delete in this transaction: written by hand, or
        // for a table this pipeline does not replicate. Nothing to publish.
        continue;
      }
      try {
        const version = decodeVersionValue(image.ver);
        if (version === null)
          throw new CdcError('tombstone has no version', { code: 'VERSION_INVALID' });
        out.push(this.#deleteChange(pending, version));
      } catch (err) {
        out.push(this.#deadLetter(err, event, { tombstone: image, deleted: pending.raw }));
      }
    }
    return out;
  }

  /** The change event of a captured delete, with the version it replicates with. */
  #deleteChange(pending: PendingDelete, version: RowVersion): CaptureOutput {
    const change = this.#envelope('d', pending.schema, pending.table, {
      pk: pending.pk,
      before: pending.before,
      after: null,
      version,
      timestampMs: pending.timestampMs,
    });
    if (pending.types !== undefined) change.types = pending.types;
    return { kind: 'change', event: change };
  }

  /**
   * Deletes without a tombstone (the trigger is missing, e.g. dropped after
   * prepare) still replicate, with the version the trigger would have given:
   * greater than the deleted row's. The local region then has no tombstone,
   * so a warning says to re-run prepare.
   */
  #flushUnmatchedDeletes(): CaptureOutput[] {
    const out: CaptureOutput[] = [];
    for (const queue of this.#pendingDeletes.values()) {
      for (const pending of queue) {
        const where = `${pending.schema}.${pending.table}`;
        try {
          const rowVersion = this.#rowVersion(pending.raw, where, pending.timestampMs);
          const hlc = Math.max(pending.timestampMs * 1000, rowVersion.hlc + 1);
          const version: RowVersion = {
            origin: this.options.region,
            hlc,
            vv: { ...rowVersion.vv, [this.options.region]: hlc },
          };
          out.push({
            kind: 'warning',
            reason: 'delete_without_tombstone',
            message: `${where}: a delete had no tombstone (is its AFTER DELETE trigger missing? run prepare)`,
          });
          out.push(this.#deleteChange(pending, version));
        } catch (err) {
          out.push({
            kind: 'dead-letter',
            reason: 'row_undecodable',
            detail: err instanceof Error ? err.message : String(err),
            source: {
              schema: pending.schema,
              table: pending.table,
              gtid: this.#gtid,
              row: pending.before,
            },
          });
        }
      }
    }
    this.#pendingDeletes.clear();
    return out;
  }

  #heartbeats(event: Extract<SourceEvent, { kind: 'rows' }>): CaptureOutput[] {
    const out: CaptureOutput[] = [];
    for (const row of event.rows) {
      const raw = event.op === 'update' ? (row as { after: RowValues }).after : (row as RowValues);
      const image = encodeRow(raw, INTERNAL_COLUMNS);
      // Only this region's own beat: other regions' rows arrive through the applier.
      if (image.region !== this.options.region) continue;
      const hlc = Number(image.hlc);
      if (!Number.isSafeInteger(hlc)) continue;
      out.push({
        kind: 'change',
        event: this.#envelope(event.op === 'insert' ? 'c' : 'u', event.schema, event.table, {
          pk: { region: this.options.region },
          before: null,
          after: image,
          version: { origin: this.options.region, hlc, vv: { [this.options.region]: hlc } },
          timestampMs: event.timestampMs,
        }),
      });
    }
    return out;
  }

  #envelope(
    op: ChangeEvent['op'],
    db: string,
    table: string,
    parts: {
      pk: RowImage;
      before: RowImage | null;
      after: RowImage | null;
      version: RowVersion;
      timestampMs: number;
    },
  ): ChangeEvent {
    if (db !== this.options.internalSchema) {
      const where = `${db}.${table}`;
      if ((this.#newestHlc.get(where) ?? 0) < parts.version.hlc)
        this.#newestHlc.set(where, parts.version.hlc);
    }
    return {
      v: ENVELOPE_VERSION,
      op,
      region: this.options.region,
      db,
      table,
      pk: parts.pk,
      before: parts.before,
      after: parts.after,
      hlc: parts.version.hlc,
      origin: parts.version.origin,
      vv: parts.version.vv,
      gtid: this.#gtid,
      commitTs: parts.timestampMs,
    };
  }

  #deadLetter(
    err: unknown,
    event: Extract<SourceEvent, { kind: 'rows' }>,
    row: unknown,
  ): CaptureOutput {
    return {
      kind: 'dead-letter',
      reason:
        err instanceof CdcError && err.code === 'VERSION_INVALID'
          ? 'version_invalid'
          : 'row_undecodable',
      detail: err instanceof Error ? err.message : String(err),
      source: {
        schema: event.schema,
        table: event.table,
        op: event.op,
        gtid: this.#gtid,
        row: safeJson(row),
      },
    };
  }
}

/** `_cdc_ver` arrives as text (MariaDB) or, on MySQL's binary JSON, possibly already parsed. */
function decodeVersionValue(value: unknown): RowVersion | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return decodeStoredVersion(value);
  if (Buffer.isBuffer(value)) return decodeStoredVersion(value.toString('utf8'));
  return parseStoredVersion(value);
}

/**
 * A JSON-safe copy of a raw row for the dead-letter record: bigints as text,
 * bytes as base64. (A replacer would see a Buffer only after its own toJSON.)
 */
function safeJson(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (Buffer.isBuffer(value)) return value.toString('base64');
  if (Array.isArray(value)) return value.map(safeJson);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, safeJson(v)]));
  }
  return value;
}
