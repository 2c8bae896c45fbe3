/**
 * The binlog as the capture stage sees it, independent of zongji's event
 * classes: transaction boundaries, row changes with their table's key, and
 * DDL. `binlog-source.ts` produces these; `assembler.ts` consumes them.
 */
export type RowValues = Record<string, unknown>;

export interface BeginEvent {
  kind: 'begin';
  gtid: string | null;
}

export interface RowsEvent {
  kind: 'rows';
  op: 'insert' | 'update' | 'delete';
  schema: string;
  table: string;
  /** Primary-key column names in key order (from the binlog's own table metadata). */
  primaryKey: readonly string[];
  /** Inserts and deletes carry one image per row, updates a before/after pair. */
  rows: readonly RowValues[] | readonly { before: RowValues; after: RowValues }[];
  /** Binlog header time of the event, ms since the epoch (second precision). */
  timestampMs: number;
  /** Column name → COLUMN_TYPE (`varchar(20)`), when the reader was asked for types. */
  columnTypes?: Readonly<Record<string, string>>;
}

/** A byte position in the server's binlog files, for position-lag metrics (resuming uses GTIDs). */
export interface BinlogCoordinates {
  file: string;
  offset: number;
}

export interface CommitEvent {
  kind: 'commit';
  gtid: string | null;
  /** The reader's position after this transaction: resuming there skips it, and nothing after it. */
  position: string;
  timestampMs: number;
  /** Where the transaction ends in the binlog, when the reader knows. */
  coordinates?: BinlogCoordinates;
}

export interface DdlEvent {
  kind: 'ddl';
  schema: string;
  statement: string;
  gtid: string | null;
  /** Position after the statement (DDL commits on its own). */
  position: string;
  timestampMs: number;
  coordinates?: BinlogCoordinates;
}

export type SourceEvent = BeginEvent | RowsEvent | CommitEvent | DdlEvent;
