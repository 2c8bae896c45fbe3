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
  /** Names of the binary JSON columns per zongji column list (a new list after each TableMap on MySQL). */
  readonly #jsonColumns = new WeakMap<readonly ColumnInfo[], readonly string[]>();
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
        this.#readJsonRaw(map);
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
        this.#decodeJson(table.columns, op, rows.rows);
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
   * Has zongji hand over MySQL binary JSON columns as raw bytes: its own
   * decoding goes through JavaScript values and cannot reproduce MySQL's
   * text (see mysql-json.ts). zongji emits a TableMap before it parses the
   * rows events that use it, and reads each row value by the column's type,
   * so the bytes of a column retyped here arrive as a Buffer (no charset:
   * not turned into text) and are printed by {@link mysqlJsonText}.
   */
  #readJsonRaw(map: TableMapEvent): void {
    const columns = map.tableMap[map.tableId]?.columns;
    if (columns === undefined || this.#jsonColumns.has(columns)) return;
    const names: string[] = [];
    for (const column of columns) {
      if (column.type !== FIELD_TYPE_JSON) continue;
      column.type = FIELD_TYPE_BLOB;
      column.charset = null;
      names.push(column.name);
    }
    this.#jsonColumns.set(columns, names);
  }

  /** Replaces the raw bytes of binary JSON columns by MySQL's text of them. */
  #decodeJson(
    columns: readonly ColumnInfo[] | undefined,
    op: RowsEvent['op'],
    rows: unknown[],
  ): void {
    const names = columns === undefined ? undefined : this.#jsonColumns.get(columns);
    if (names === undefined || names.length === 0) return;
    const decode = (row: Record<string, unknown>): void => {
      for (const name of names) {
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
