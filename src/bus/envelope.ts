import type { VersionVector } from '../versioning/version.js';

/**
 * The change event as it travels through Kafka (DESIGN.md §5). One message
 * per row change; the message key is the table plus the primary key, so every
 * change of one row lands on one partition in order.
 *
 * Values are JSON-safe and exact: integers beyond 2^53 and DECIMAL as
 * strings, temporal values as strings with their microseconds, BLOB / BINARY
 * / BIT / GEOMETRY as base64, JSON columns as their text.
 */
export const ENVELOPE_VERSION = 1;

export type JsonScalar = string | number | boolean | null;
/** A row image: column name → encoded value. Internal `_cdc_*` columns are never included. */
export type RowImage = Record<string, JsonScalar>;

/** c = insert, u = update, d = delete, r = snapshot read. */
export type ChangeOp = 'c' | 'u' | 'd' | 'r';

export interface ChangeEvent {
  v: typeof ENVELOPE_VERSION;
  op: ChangeOp;
  /** The region whose capture published the event. */
  region: string;
  db: string;
  table: string;
  /** Primary-key columns in key order, with their encoded values. */
  pk: RowImage;
  before: RowImage | null;
  after: RowImage | null;
  /** The row version: `(hlc, origin)` orders it; `vv` tells causality. */
  hlc: number;
  origin: string;
  vv: VersionVector;
  /** The source transaction's GTID (`domain-server-seq` on MariaDB, `uuid:n` on MySQL). */
  gtid: string | null;
  /** When the source transaction committed, ms since the epoch (binlog header, second precision). */
  commitTs: number;
  /**
   * The source's COLUMN_TYPE of each column of `after` (`varchar(20)`,
   * `decimal(10,2) unsigned`), sent only when the source runs with
   * `schema.autoAddColumns`, so a target lacking a column can add it with the
   * same type. Optional: appliers that do not know it ignore it (`v` stays 1).
   */
  types?: Readonly<Record<string, string>>;
}

/** `<prefix>.<sourceRegion>.<schema>.<table>`: one topic per source region and table. */
export function topicName(prefix: string, sourceRegion: string, db: string, table: string): string {
  return `${prefix}.${sourceRegion}.${db}.${table}`;
}

/** The Kafka message key: table and primary-key values, stable for a given row. */
export function messageKey(db: string, table: string, pk: RowImage): string {
  return `${db}.${table}:${JSON.stringify(Object.values(pk))}`;
}

/** Serialises an event for Kafka. */
export function encodeEvent(event: ChangeEvent): Buffer {
  return Buffer.from(JSON.stringify(event));
}
