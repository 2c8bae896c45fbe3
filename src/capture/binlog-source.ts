import ZongJi, {
  type AnyBinlogEvent,
  type ColumnInfo,
  type ColumnSchema,
  type DeleteRowsEvent,
  type QueryEvent,
  type TableMapEvent,
  type UpdateRowsEvent,
  type WriteRowsEvent,
  type ZongJiDsn,
} from '@vlasky/zongji';
import type { MysqlOptions } from '../config/compile.js';
import { CdcError } from '../core/errors.js';
import { mysqlSslOptions } from '../core/tls.js';
import {
  describeMysql,
  mysqlAuthOptions,
  mysqlError,
  newLoginTrace,
  type LoginTrace,
} from '../mysql/connection.js';
import {
  FIELD_TYPE_BIT,
  FIELD_TYPE_DATETIME2,
  FIELD_TYPE_TIMESTAMP2,
  datetime2Text,
  temporalWidth,
  timestamp2Text,
  zongjiVersionMismatch,
} from './binlog-temporal.js';
import { mysqlJsonText } from './mysql-json.js';
import { UndecodableValue } from './row-codec.js';
import type { BinlogCoordinates, CommitEvent, RowsEvent, SourceEvent } from './source-events.js';

export interface BinlogSourceOptions {
  mysql: MysqlOptions;
  serverId: number;
  /** GTID position to resume after (MariaDB `d-s-n,...` or a MySQL GTID set). */
  gtidSet: string;
  /** Schemas and tables whose row events to decode; everything else is skipped unparsed. */
  includeSchema: Record<string, string[] | true>;
  /** Primary keys from information_schema, for servers whose binlog does not carry them. */
  primaryKeys: ReadonlyMap<string, readonly string[]>;
  /** Attach each table's column types to its rows events (for `schema.autoAddColumns`). */
  columnTypes?: boolean;
  /**
   * MariaDB only: `SET skip_replication = 1` on the dump connection, so the
   * server never sends transactions written with `skip_replication` (the
   * applier's: src/apply/apply-target.ts). Capture would drop them anyway by
   * their apply marker; this saves reading, sending and decoding them.
   */
  skipMarkedTransactions?: boolean;
  /** The server refused `skip_replication` (privileges): capture goes on without it. */
  onSkipRefused?: (error: Error) => void;
  onEvent: (event: SourceEvent) => void;
  /** Any error ends the stream; the owner decides whether to reconnect. */
  onError: (error: CdcError) => void;
}

/**
 * The binlog connection's options. Exact values: temporal types as strings
 * with microseconds, in UTC for TIMESTAMP; JSON as its text; big integers and
 * DECIMAL as strings.
 */
export function zongjiConnectionOptions(mysql: MysqlOptions, login?: LoginTrace): ZongJiDsn {
  return {
    host: mysql.host,
    port: mysql.port,
    user: mysql.user,
    password: mysql.password.reveal(),
    dateStrings: true,
    timezone: 'Z',
    jsonStrings: true,
    supportBigNumbers: true,
    bigNumberStrings: true,
    charset: 'utf8mb4_general_ci',
    ...(mysql.tls === undefined ? {} : { ssl: mysqlSslOptions(mysql.tls) }),
    // The same MySQL 8 password login as the query connections (a pinned server key).
    ...mysqlAuthOptions(mysql, login),
  };
}

/** The zongji events capture translates; everything else is skipped undecoded. */
export const BINLOG_EVENTS = [
  'tablemap',
  'writerows',
  'updaterows',
  'deleterows',
  'xid',
  'query',
  'gtid',
  'mariadbgtid',
] as const;

interface ZongjiPositionOptions {
  filename?: unknown;
  position?: unknown;
}

/**
 * MySQL's binary JSON field type, and the BLOB type capture reads it as
 * (its raw bytes; see {@link mysqlJsonText}). MariaDB's JSON columns are
 * LONGTEXT and never carry this type.
 */
const FIELD_TYPE_JSON = 245;
const FIELD_TYPE_BLOB = 252;

/** A DATETIME2 / TIMESTAMP2 column zongji hands over as bytes (see BinlogSource's `#readRaw`). */
interface RawTemporal {
  name: string;
  datetime: boolean;
  decimals: number;
}

/** The columns of one table description that zongji hands over as raw bytes. */
interface RawColumns {
  json: readonly string[];
  temporal: readonly RawTemporal[];
}

/** MySQL/MariaDB errors that mean the binlog needed to resume is gone. */
const PURGED_BINLOG_ERRNOS = new Set([1236, 1945, 1955]);

/**
 * One binlog connection through zongji, translated into {@link SourceEvent}s.
 * zongji has no flow control of its own; `pause()` stops reading the socket
 * (MySQL then stops sending once TCP buffers fill) and `resume()` continues.
 */
export class BinlogSource {
  readonly #zongji: ZongJi;
  readonly #primaryKeys = new Map<number, string[]>();
  /** Column name → COLUMN_TYPE per zongji table description (a new one after each ALTER). */
  readonly #columnTypes = new WeakMap<readonly ColumnSchema[], Readonly<Record<string, string>>>();
  /** Columns read as raw bytes, per zongji column list (a new list after each TableMap on MySQL). */
  readonly #rawColumns = new WeakMap<readonly ColumnInfo[], RawColumns>();
  /** Why a MySQL 8 password login failed, for the error (see {@link LoginTrace}). */
  readonly #login = newLoginTrace();
  #stopped = false;
  #paused = false;

  constructor(private readonly options: BinlogSourceOptions) {
    this.#zongji = new ZongJi(zongjiConnectionOptions(options.mysql, this.#login));
    this.#zongji.on('binlog', (event: AnyBinlogEvent) => this.#handle(event));
    this.#zongji.on('error', (err: Error) => this.#fail(err));
  }

  /** Starts streaming; resolves once the server accepted the dump request. */
  start(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onReady = (): void => {
        this.#zongji.removeListener('error', onStartError);
        resolve();
      };
      const onStartError = (err: Error): void => {
        this.#zongji.removeListener('ready', onReady);
        reject(this.#classify(err));
      };
      this.#zongji.once('ready', onReady);
      this.#zongji.once('error', onStartError);
      this.#zongji.start({
        serverId: this.options.serverId,
        gtidSet: this.options.gtidSet,
        includeEvents: [...BINLOG_EVENTS],
        includeSchema: this.options.includeSchema,
      });
      // start() has just created the dump connection and queued nothing on it yet:
      // this runs before zongji's own setup and the dump request.
      if (this.options.skipMarkedTransactions === true)
        this.#zongji.connection?.query('SET SESSION skip_replication = 1', (err: Error | null) => {
          // Not fatal: the apply marker still keeps the applier's writes out.
          if (err !== null) this.options.onSkipRefused?.(err);
        });
    });
  }

  pause(): void {
    if (this.#paused || this.#stopped) return;
    this.#paused = true;
    this.#zongji.connection?.pause();
  }

  resume(): void {
    if (!this.#paused || this.#stopped) return;
    this.#paused = false;
    this.#zongji.connection?.resume();
  }

  get paused(): boolean {
    return this.#paused;
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#zongji.stop();
  }

  #position(): string {
    return this.#zongji.gtidSet ?? this.options.gtidSet;
  }

  /** Where the stream stands after a transaction or DDL statement ends. */
  #progress(
    gtid: string | null,
    timestampMs: number,
  ): Pick<CommitEvent, 'gtid' | 'position' | 'timestampMs' | 'coordinates'> {
    return { gtid, position: this.#position(), timestampMs, coordinates: this.#coordinates() };
  }

  /** zongji keeps the (file, offset) resume pair in its options, updated before each event is emitted. */
  #coordinates(): BinlogCoordinates | undefined {
    const { filename, position } = (this.#zongji as unknown as { options: ZongjiPositionOptions })
      .options;
    return typeof filename === 'string' && typeof position === 'number' && position > 0
      ? { file: filename, offset: position }
      : undefined;
  }

  #handle(event: AnyBinlogEvent): void {
    if (this.#stopped) return;
    try {
      const translated = this.#translate(event);
      if (translated !== undefined) this.options.onEvent(translated);
    } catch (err) {
      this.#fail(err);
    }
  }

  #translate(event: AnyBinlogEvent): SourceEvent | undefined {
    const gtid = event.gtid ?? null;
    switch (event.getEventName()) {
      case 'gtid':
      case 'mariadbgtid':
        return { kind: 'begin', gtid };
      case 'tablemap': {
        const map = event as TableMapEvent;
        if (map.primaryKey !== undefined && map.columnNames !== undefined) {
          const names = map.primaryKey
            .map((i) => map.columnNames?.[i])
            .filter((n) => n !== undefined);
          this.#primaryKeys.set(map.tableId, names);
        }
        this.#readRaw(map);
        return undefined;
      }
      case 'writerows':
      case 'updaterows':
      case 'deleterows': {
        const rows = event as WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent;
        const table = rows.tableMap[rows.tableId];
        if (table === undefined)
          throw new CdcError(`rows event for unknown table id ${rows.tableId}`);
        const name = `${table.parentSchema}.${table.tableName}`;
        const primaryKey =
          this.#primaryKeys.get(rows.tableId) ?? this.options.primaryKeys.get(name) ?? [];
        const op =
          event.getEventName() === 'writerows'
            ? 'insert'
            : event.getEventName() === 'updaterows'
              ? 'update'
              : 'delete';
        this.#decodeRaw(table.columns, op, rows.rows);
        return {
          kind: 'rows',
          op,
          schema: table.parentSchema,
          table: table.tableName,
          primaryKey,
          rows: rows.rows as RowsEvent['rows'],
          timestampMs: event.timestamp,
          ...(this.options.columnTypes === true
            ? { columnTypes: this.#typesOf(table.columnSchemas) }
            : {}),
        };
      }
      case 'xid':
        return { kind: 'commit', ...this.#progress(gtid, event.timestamp) };
      case 'query': {
        const query = (event as QueryEvent).query.trim();
        const upper = query.slice(0, 16).toUpperCase();
        if (upper.startsWith('BEGIN') || upper.startsWith('XA ') || upper.startsWith('SAVEPOINT'))
          return undefined;
        if (upper === 'COMMIT' || upper.startsWith('ROLLBACK'))
          return { kind: 'commit', ...this.#progress(gtid, event.timestamp) };
        return {
          kind: 'ddl',
          schema: (event as QueryEvent).schema,
          statement: query,
          ...this.#progress(gtid, event.timestamp),
        };
      }
      default:
        return undefined;
    }
  }

  /**
   * Has zongji hand over some columns as raw bytes, which this reader turns
   * into text itself. zongji emits a TableMap before it parses the rows
   * events that use it, and reads each row value by the column's type, so
   * the bytes of a column retyped here arrive as a Buffer:
   *
   * - MySQL binary JSON as BLOB (no charset: not turned into text): zongji's
   *   own decoding goes through JavaScript values and cannot reproduce
   *   MySQL's text; {@link mysqlJsonText} prints it.
   * - DATETIME2 and TIMESTAMP2 as BIT of the same byte width: zongji's
   *   formatting of them cost about 0.9 µs per value; binlog-temporal.ts
   *   writes the same text in a tenth of that. Only with the zongji version
   *   that was checked (otherwise zongji formats them, as before).
   */
  #readRaw(map: TableMapEvent): void {
    const columns = map.tableMap[map.tableId]?.columns;
    if (columns === undefined || this.#rawColumns.has(columns)) return;
    const json: string[] = [];
    const temporal: RawTemporal[] = [];
    for (const column of columns) {
      if (column.type === FIELD_TYPE_JSON) {
        column.type = FIELD_TYPE_BLOB;
        column.charset = null;
        json.push(column.name);
      } else if (
        (column.type === FIELD_TYPE_DATETIME2 || column.type === FIELD_TYPE_TIMESTAMP2) &&
        zongjiVersionMismatch === undefined
      ) {
        const decimals = Number((column.metadata as { decimals?: unknown }).decimals ?? 0);
        temporal.push({
          name: column.name,
          datetime: column.type === FIELD_TYPE_DATETIME2,
          decimals,
        });
        // A new metadata object: zongji's may be shared with its TableMap event.
        column.metadata = { bits: 8 * temporalWidth(column.type, decimals) };
        column.type = FIELD_TYPE_BIT;
      }
    }
    this.#rawColumns.set(columns, { json, temporal });
  }

  /** Replaces the raw bytes of the columns {@link #readRaw} retyped by their text. */
  #decodeRaw(
    columns: readonly ColumnInfo[] | undefined,
    op: RowsEvent['op'],
    rows: unknown[],
  ): void {
    const raw = columns === undefined ? undefined : this.#rawColumns.get(columns);
    if (raw === undefined || (raw.json.length === 0 && raw.temporal.length === 0)) return;
    const { json, temporal } = raw;
    const decode = (row: Record<string, unknown>): void => {
      for (let i = 0; i < temporal.length; i += 1) {
        const column = temporal[i] as RawTemporal;
        const value = row[column.name];
        // NULL, or a column the row image left out.
        if (!Buffer.isBuffer(value)) continue;
        row[column.name] = column.datetime
          ? datetime2Text(value, column.decimals)
          : timestamp2Text(value, column.decimals);
      }
      for (const name of json) {
        const value = row[name];
        if (!Buffer.isBuffer(value)) continue;
        try {
          row[name] = mysqlJsonText(value);
        } catch (err) {
          // Parked as a dead letter by the assembler, never published as bytes.
          row[name] = new UndecodableValue(`JSON column ${name}`, err);
        }
      }
    };
    for (const row of rows as Record<string, unknown>[]) {
      if (op === 'update') {
        decode((row as { before: Record<string, unknown> }).before);
        decode((row as { after: Record<string, unknown> }).after);
      } else decode(row);
    }
  }

  /**
   * The column types zongji read for a table (information_schema, or the
   * binlog's own metadata on MySQL with binlog_row_metadata=FULL), computed
   * once per description.
   */
  #typesOf(schemas: readonly ColumnSchema[]): Readonly<Record<string, string>> {
    let types = this.#columnTypes.get(schemas);
    if (types === undefined) {
      types = Object.fromEntries(schemas.map((c) => [c.COLUMN_NAME, c.COLUMN_TYPE]));
      this.#columnTypes.set(schemas, types);
    }
    return types;
  }

  #classify(err: unknown): CdcError {
    const errno = (err as { errno?: unknown }).errno;
    if (typeof errno === 'number' && PURGED_BINLOG_ERRNOS.has(errno)) {
      return new CdcError(
        `${describeMysql(this.options.mysql)}: the binlog needed to resume after GTID position ` +
          `${this.options.gtidSet} is no longer on the server (error ${errno}: ${(err as Error).message}). ` +
          'Changes after that position cannot be captured; re-bootstrap this region with a snapshot. ' +
          'Capture never skips ahead on its own.',
        { code: 'BINLOG_PURGED', retriable: false, cause: err },
      );
    }
    return mysqlError(this.options.mysql, 'binlog stream', err, this.#login);
  }

  #fail(err: unknown): void {
    if (this.#stopped) return;
    this.stop();
    this.options.onError(this.#classify(err));
  }
}
