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

/**
 * A value-free eviction notice (docs/GOVERNANCE.md, "Eviction"): this
 * version of a governed row may not be held by `regions`, so each of them
 * deletes its copy (if older) and keeps a tombstone of the version, without
 * ever learning a value. The row is named by its tombstone key only: the
 * lowercase hex SHA-256 the delete trigger stores in `_cdc_tombstones.pk_hash`
 * (src/mysql/tombstone-key.ts). Always sent in this v1 shape, on the
 * table's change topic (every region reads it), whatever `capture.envelope`
 * is.
 */
export interface EvictionNotice {
  v: typeof ENVELOPE_VERSION;
  /**
   * `evict`: this version may not be held there (joined like a delete).
   * `erase`: an erasure (`cdc-replicator erase`), which beats every version
   * that has not seen it (src/versioning/erasure.ts).
   */
  notice: 'evict' | 'erase';
  region: string;
  db: string;
  table: string;
  keyHash: string;
  /** The regions that may not hold this version of the row, in configuration order. */
  regions: string[];
  hlc: number;
  origin: string;
  vv: VersionVector;
  gtid: string | null;
  commitTs: number;
}

/** A notice's Kafka key: the table and the key hash (never the key's values). */
export function noticeKey(db: string, table: string, keyHash: string): string {
  return `${db}.${table}#${keyHash}`;
}

/** Serialises a notice for Kafka. */
export function encodeNotice(notice: EvictionNotice): Buffer {
  return Buffer.from(JSON.stringify(notice));
}

/**
 * An edit request (docs/GOVERNANCE.md, "Edits in a masked region"): a
 * region that holds a row only masked (`region`) changed some of its
 * unmasked columns. Published as data, its masked values would replace the
 * originals, so it goes instead to the row's zone topic (read only by the
 * regions that hold the row plain) with just the key and the changed
 * unmasked columns (`set`), and `executor`, the zone region that writes
 * the edit into its plain row at a version above this one (`hlc`,
 * `origin`, `vv`: the editing region's version) and publishes the result.
 * Always v1, whatever `capture.envelope` is.
 */
export interface EditRequest extends Omit<ChangeEvent, 'op' | 'before' | 'after'> {
  notice: 'edit';
  /** The changed columns, none of them masked, the key or the residency column (`types` covers `pk` and these). */
  set: RowImage;
  executor: string;
}

/** Serialises an edit request for Kafka. */
export function encodeEditRequest(request: EditRequest): Buffer {
  return Buffer.from(JSON.stringify(request));
}

/** Serialises an event for Kafka. */
export function encodeEvent(event: ChangeEvent): Buffer {
  return Buffer.from(JSON.stringify(event));
}

/**
 * Envelope v2 (DESIGN.md §5, docs/ARCHITECTURE.md "Envelope v2"): several
 * row changes of one table in one message, with positional columns.
 *
 * ```json
 * {"v":2,"region":"a","db":"app","table":"t","key":["id"],"columns":["id","name"],
 *  "types":{"id":"int(11)"},
 *  "rows":[["c",hlc,"a",{"a":hlc},"0-1-7",commitTs,[1,"x"]],
 *          ["d",hlc,"a",{"a":hlc},"0-1-8",commitTs,[1,"x"]],
 *          ["u",hlc,"a",{"a":hlc},"0-1-9",commitTs,[2,"y"],[1]]]}
 * ```
 *
 * Each row is `[op, hlc, origin, vv, gtid, commitTs, values, oldKey?]`:
 * `values`, aligned with `columns`, is the after image (`c`/`u`/`r`) or the
 * deleted row (`d`); `oldKey`, aligned with `key`, is present only when an
 * update changed the primary key. An update carries no before image
 * otherwise: the join needs none. Every row of a message has the same
 * columns; all of them go to one partition, the one each row's
 * {@link messageKey} maps to.
 * Appliers read v1 and v2.
 */
export const ENVELOPE_V2 = 2;

/** One row of a v2 message, as listed above. */
export type EnvelopeRow =
  | [ChangeOp, number, string, VersionVector, string | null, number, JsonScalar[]]
  | [ChangeOp, number, string, VersionVector, string | null, number, JsonScalar[], JsonScalar[]];

export interface EnvelopeV2 {
  v: typeof ENVELOPE_V2;
  region: string;
  db: string;
  table: string;
  /** Primary-key columns, in key order. */
  key: string[];
  /** The columns of every row's `values`. */
  columns: string[];
  types?: Readonly<Record<string, string>>;
  rows: EnvelopeRow[];
}

/** The key and column lists rows of one v2 message share (one object for a run of equal shapes). */
export interface RowShape {
  readonly key: readonly string[];
  readonly columns: readonly string[];
}

/**
 * A change prepared for a v2 message: its row already serialised (so the
 * publisher knows its size and joins rows without a second pass) and the
 * header fields rows of one message must share. The row is kept as bytes,
 * off the V8 heap like a v1 message: rows wait in the publisher's queue
 * long enough to be promoted, and a million of them as strings made the
 * old generation grow by hundreds of MiB between collections.
 */
export interface PackedRow {
  readonly region: string;
  readonly db: string;
  readonly table: string;
  readonly shape: RowShape;
  readonly types: Readonly<Record<string, string>> | undefined;
  /** The row's JSON (an {@link EnvelopeRow}), UTF-8. */
  readonly bytes: Buffer;
}

let lastShape: RowShape = { key: [], columns: [] };

/** `lastShape` when its lists equal these, so a run of rows of one table shares one shape object. */
function shapeOf(key: readonly string[], columns: readonly string[]): RowShape {
  const next = { key, columns };
  if (!sameShape(lastShape, next)) lastShape = next;
  return lastShape;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * The JSON of the last row's fields before its values,
 * `["op",hlc,"origin",{vv},"gtid",commitTs` (no closing bracket). Rows of
 * one statement share all of them (one version, one transaction), and
 * writing them was about a third of {@link packRow}: three 16-digit
 * numbers per row. A version is never mutated once built (capture already
 * shares one among the rows of a statement), so the same `vv` object means
 * the same text.
 */
let lastHead:
  | Readonly<
      Pick<ChangeEvent, 'op' | 'hlc' | 'origin' | 'vv' | 'gtid' | 'commitTs'> & { text: string }
    >
  | undefined;

function rowHead(event: ChangeEvent): string {
  const last = lastHead;
  if (
    last !== undefined &&
    last.vv === event.vv &&
    last.hlc === event.hlc &&
    last.op === event.op &&
    last.origin === event.origin &&
    last.gtid === event.gtid &&
    last.commitTs === event.commitTs
  )
    return last.text;
  const { op, hlc, origin, vv, gtid, commitTs } = event;
  // JSON of the array without its `]`: the row's JSON is this, `,`, the values' JSON and `]`.
  const text = JSON.stringify([op, hlc, origin, vv, gtid, commitTs]).slice(0, -1);
  lastHead = { op, hlc, origin, vv, gtid, commitTs, text };
  return text;
}

/** Serialises one change as a v2 row; the key columns are the event's `pk` columns. */
export function packRow(event: ChangeEvent): PackedRow {
  const key = Object.keys(event.pk);
  // A delete carries the row it deleted (the key alone if no image came with it).
  const image = event.op === 'd' ? (event.before ?? event.pk) : (event.after ?? event.pk);
  const columns = Object.keys(image);
  // The same bytes as JSON.stringify([op, hlc, origin, vv, gtid, commitTs, values, oldKey?]).
  let json = `${rowHead(event)},${JSON.stringify(columns.map((c) => image[c] ?? null))}`;
  const before = event.before;
  if (event.op === 'u' && before !== null && key.some((c) => before[c] !== event.pk[c]))
    json += `,${JSON.stringify(key.map((c) => before[c] ?? null))}`;
  return {
    region: event.region,
    db: event.db,
    table: event.table,
    shape: shapeOf(key, columns),
    types: event.types,
    bytes: Buffer.from(`${json}]`),
  };
}

const COMMA = Buffer.from(',');
const CLOSE = Buffer.from(']}');

function sameShape(a: RowShape, b: RowShape): boolean {
  return a === b || (sameList(a.key, b.key) && sameList(a.columns, b.columns));
}

/**
 * Joins packed rows of one table into v2 messages, in order: a row with
 * another key or column list (after a DDL) starts a new message. `maxBytes`
 * bounds a message (a single larger row goes alone).
 */
export function encodeRows(
  rows: readonly PackedRow[],
  maxBytes: number,
): { value: Buffer; rows: number }[] {
  const out: { value: Buffer; rows: number }[] = [];
  let start = 0;
  while (start < rows.length) {
    const first = rows[start] as PackedRow;
    let types = first.types;
    let bytes = 0;
    let end = start;
    for (; end < rows.length; end += 1) {
      const row = rows[end] as PackedRow;
      if (row.table !== first.table || row.db !== first.db || !sameShape(row.shape, first.shape))
        break;
      if (end > start && bytes + row.bytes.length + 1 > maxBytes) break;
      bytes += row.bytes.length + 1;
      types ??= row.types;
    }
    const head = JSON.stringify({
      v: ENVELOPE_V2,
      region: first.region,
      db: first.db,
      table: first.table,
      key: first.shape.key,
      columns: first.shape.columns,
      ...(types === undefined ? {} : { types }),
    });
    const parts: Buffer[] = [Buffer.from(`${head.slice(0, -1)},"rows":[`)];
    for (let i = start; i < end; i += 1) {
      if (i > start) parts.push(COMMA);
      parts.push((rows[i] as PackedRow).bytes);
    }
    parts.push(CLOSE);
    out.push({ value: Buffer.concat(parts), rows: end - start });
    start = end;
  }
  return out;
}

/**
 * Expands a v2 message into v1-shaped events, one per row, without
 * validating them (the applier validates what it decodes; this is for
 * tools and tests that read topics). A v1 message gives itself.
 */
export function decodeEnvelope(value: Buffer | string): ChangeEvent[] {
  const raw = JSON.parse(typeof value === 'string' ? value : value.toString('utf8')) as
    ChangeEvent | EnvelopeV2;
  if (raw.v !== ENVELOPE_V2) return [raw];
  return raw.rows.map((row) => rowToEvent(raw, row));
}

/** One v2 row as a v1-shaped event (a delete's `before` is its row; a key change's the old key). */
export function rowToEvent(
  message: Omit<EnvelopeV2, 'rows'>,
  row: readonly unknown[],
): ChangeEvent {
  const [op, hlc, origin, vv, gtid, commitTs, values, oldKey] = row as EnvelopeRow;
  const zip = (names: readonly string[], list: readonly JsonScalar[]): RowImage => {
    const image: RowImage = {};
    for (let i = 0; i < names.length; i += 1) image[names[i] as string] = list[i] ?? null;
    return image;
  };
  const image = zip(message.columns, values);
  const after = op === 'd' ? null : image;
  const pk: RowImage = {};
  for (const c of message.key) pk[c] = image[c] ?? null;
  const event: ChangeEvent = {
    v: ENVELOPE_VERSION,
    op,
    region: message.region,
    db: message.db,
    table: message.table,
    pk,
    before: op === 'd' ? image : oldKey === undefined ? null : zip(message.key, oldKey),
    after,
    hlc,
    origin,
    vv,
    gtid,
    commitTs,
  };
  if (message.types !== undefined) event.types = message.types;
  return event;
}

/**
 * A v2 message reduced to one of its rows (a dead letter parks the row at
 * fault alone). The message was decoded before, so it parses.
 */
export function singleRowMessage(value: Buffer, row: number): Buffer {
  const message = JSON.parse(value.toString('utf8')) as EnvelopeV2;
  return Buffer.from(JSON.stringify({ ...message, rows: [message.rows[row]] }));
}
