import type { ChangeEvent, JsonScalar, RowImage } from './envelope.js';

/**
 * Debezium's JSON change envelope (docs/DEBEZIUM.md), computed from our own
 * change event: `before`, `after`, `source`, `op`, `ts_ms`, with Debezium's
 * default value mapping (`decimal.handling.mode=precise` or `string`,
 * `time.precision.mode=adaptive_time_microseconds`,
 * `bigint.unsigned.handling.mode=long`, `binary.handling.mode=bytes`), and
 * optionally the Kafka Connect schema (`schemas.enable=true`).
 *
 * Pure: no I/O. The column types come from the event's `types` (the
 * source's COLUMN_TYPE per column).
 */

export interface DebeziumFormat {
  /** Debezium's `topic.prefix`; also `source.name`. */
  readonly topicPrefix: string;
  /** Embed the Connect schema (`{schema, payload}`) in key and value. */
  readonly schemas: boolean;
  readonly decimalHandling: 'precise' | 'string';
}

/** What `source` tells beyond the event itself. */
export interface DebeziumSourceInfo {
  readonly connector: 'mysql' | 'mariadb';
  /** The source server's `@@server_id`. */
  readonly serverId: number;
  /** Binlog file and position of the transaction's start, when known ("" and 0 otherwise). */
  readonly file: string;
  readonly pos: number;
  /** Index of the row change within its transaction. */
  readonly row: number;
  /** When the event was converted (the envelope's `ts_ms`), ms since the epoch. */
  readonly nowMs: number;
}

/** `version` in `source`: which program wrote the event (this is not Debezium). */
export const DEBEZIUM_SOURCE_VERSION = 'cdc-replicator';

/** A JSON number written as is (64-bit integers beyond 2^53, which a JS number would round). */
export class RawJsonNumber {
  constructor(readonly text: string) {}
}

/** A value of a Debezium payload. */
export type DebeziumValue =
  | JsonScalar
  | RawJsonNumber
  | { readonly [field: string]: DebeziumValue }
  | readonly DebeziumValue[];

/** A Kafka Connect schema as the JsonConverter writes it. */
export interface ConnectSchema {
  type: string;
  optional: boolean;
  field?: string;
  name?: string;
  version?: number;
  parameters?: Record<string, string>;
  fields?: ConnectSchema[];
}

interface ColumnMapping {
  readonly schema: Omit<ConnectSchema, 'optional' | 'field'>;
  readonly convert: (value: JsonScalar, column: string) => DebeziumValue;
}

/** Our DB value could not be mapped (a malformed temporal string or number). */
export class DebeziumMappingError extends Error {}

const MS_PER_DAY = 86_400_000;
const TWO_63 = 1n << 63n;
const TWO_64 = 1n << 64n;

/** JSON text of a payload; RawJsonNumber is written unquoted. */
export function stringifyDebezium(value: DebeziumValue | undefined): string {
  if (value === null || value === undefined) return 'null';
  if (value instanceof RawJsonNumber) return value.text;
  if (typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value))
    return `[${(value as readonly DebeziumValue[]).map((v) => stringifyDebezium(v)).join(',')}]`;
  const parts: string[] = [];
  for (const [k, v] of Object.entries(value as Record<string, DebeziumValue>))
    parts.push(`${JSON.stringify(k)}:${stringifyDebezium(v)}`);
  return `{${parts.join(',')}}`;
}

function fail(column: string, what: string, value: JsonScalar): never {
  throw new DebeziumMappingError(
    `column ${column}: cannot map ${JSON.stringify(value)} as ${what}`,
  );
}

/** A 64-bit integer as a JSON number: exact beyond 2^53. */
function int64(value: bigint): DebeziumValue {
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : new RawJsonNumber(value.toString());
}

function toBigInt(value: JsonScalar, column: string): bigint {
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return BigInt(value);
  if (typeof value === 'boolean') return value ? 1n : 0n;
  return fail(column, 'an integer', value);
}

const integer: ColumnMapping['convert'] = (value, column) => int64(toBigInt(value, column));

/** BIGINT UNSIGNED in Debezium's `long` mode: values above 2^63-1 wrap to negative, as Java's long does. */
const unsignedLong: ColumnMapping['convert'] = (value, column) => {
  const n = toBigInt(value, column);
  return int64(n >= TWO_63 ? n - TWO_64 : n);
};

const float: ColumnMapping['convert'] = (value, column) => {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value)))
    return Number(value);
  return fail(column, 'a floating-point number', value);
};

const text: ColumnMapping['convert'] = (value) =>
  typeof value === 'string' ? value : JSON.stringify(value);

const passthrough: ColumnMapping['convert'] = (value) => value;

/**
 * The unscaled value of a DECIMAL as the big-endian two's-complement bytes
 * Connect's Decimal logical type carries, base64 in JSON.
 */
export function decimalToBase64(value: string, scale: number): string {
  const match = /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(value.trim());
  if (match === null || (match[2] === '' && (match[3] ?? '') === ''))
    throw new DebeziumMappingError(`not a decimal: ${JSON.stringify(value)}`);
  const fraction = (match[3] ?? '').padEnd(scale, '0');
  if (fraction.length > scale && /[^0]/.test(fraction.slice(scale)))
    throw new DebeziumMappingError(`${value} has more than ${scale} fractional digits`);
  let unscaled = BigInt(`${match[2] === '' ? '0' : match[2]}${fraction.slice(0, scale)}`);
  if (match[1] === '-') unscaled = -unscaled;
  return twosComplement(unscaled).toString('base64');
}

/** Minimal big-endian two's-complement bytes of an integer (Java's BigInteger.toByteArray). */
export function twosComplement(n: bigint): Buffer {
  let length = 1;
  while (n < -(1n << BigInt(8 * length - 1)) || n >= 1n << BigInt(8 * length - 1)) length += 1;
  let v = n < 0n ? (1n << BigInt(8 * length)) + n : n;
  const bytes = Buffer.alloc(length);
  for (let i = length - 1; i >= 0; i -= 1) {
    bytes[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return bytes;
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATETIME = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/;
const TIME = /^(-)?(\d{1,3}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/;

function epochMs(year: string, month: string, day: string): number {
  const date = new Date(0);
  date.setUTCFullYear(Number(year), Number(month) - 1, Number(day));
  return date.getTime();
}

/** MySQL's zero dates (`0000-00-00`, or a zero month or day) have no instant: Debezium gives null. */
function isZeroDate(month: string, day: string): boolean {
  return Number(month) === 0 || Number(day) === 0;
}

/** µs since the epoch of a DATETIME / TIMESTAMP text (read as UTC), or null for a zero date. */
function epochMicros(value: JsonScalar, column: string): bigint | null {
  if (typeof value !== 'string') return fail(column, 'a date and time', value);
  const m = DATETIME.exec(value);
  if (m === null) return fail(column, 'a date and time', value);
  const [, y, mo, d, h, mi, s, f] = m as unknown as string[];
  if (isZeroDate(mo as string, d as string)) return null;
  const ms = epochMs(y as string, mo as string, d as string);
  const seconds = BigInt(ms / 1000) + BigInt(Number(h) * 3600 + Number(mi) * 60 + Number(s));
  return seconds * 1_000_000n + BigInt((f ?? '').padEnd(6, '0'));
}

/** DATE → io.debezium.time.Date: days since the epoch. */
const date: ColumnMapping['convert'] = (value, column) => {
  if (typeof value !== 'string') return fail(column, 'a date', value);
  const m = DATE.exec(value) ?? DATETIME.exec(value);
  if (m === null) return fail(column, 'a date', value);
  if (isZeroDate(m[2] as string, m[3] as string)) return null;
  return Math.floor(epochMs(m[1] as string, m[2] as string, m[3] as string) / MS_PER_DAY);
};

/** DATETIME(0-3) → io.debezium.time.Timestamp (ms); DATETIME(4-6) → MicroTimestamp (µs). */
function datetime(precision: number): ColumnMapping['convert'] {
  return (value, column) => {
    const micros = epochMicros(value, column);
    if (micros === null) return null;
    if (precision > 3) return int64(micros);
    // Floor, as Java's Instant.toEpochMilli of a time before the epoch.
    const ms = micros >= 0n ? micros / 1000n : -((-micros + 999n) / 1000n);
    return int64(ms);
  };
}

/** TIMESTAMP → io.debezium.time.ZonedTimestamp: ISO-8601 in UTC, fraction as the column's precision. */
function zonedTimestamp(precision: number): ColumnMapping['convert'] {
  return (value, column) => {
    if (typeof value !== 'string') return fail(column, 'a timestamp', value);
    const m = DATETIME.exec(value);
    if (m === null) return fail(column, 'a timestamp', value);
    if (isZeroDate(m[2] as string, m[3] as string)) return null;
    const fraction = precision > 0 ? `.${(m[7] ?? '').padEnd(precision, '0')}` : '';
    return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}${fraction}Z`;
  };
}

/** TIME → io.debezium.time.MicroTime: µs (negative and beyond 24 h as MySQL allows). */
const microTime: ColumnMapping['convert'] = (value, column) => {
  if (typeof value !== 'string') return fail(column, 'a time', value);
  const m = TIME.exec(value);
  if (m === null) return fail(column, 'a time', value);
  const micros =
    (Number(m[2]) * 3600 + Number(m[3]) * 60 + Number(m[4])) * 1_000_000 +
    Number((m[5] ?? '').padEnd(6, '0'));
  return m[1] === '-' ? -micros : micros;
};

/** BIT(n>1) → io.debezium.data.Bits: the bytes little-endian (ours are big-endian). */
const bits: ColumnMapping['convert'] = (value, column) => {
  if (typeof value !== 'string') return fail(column, 'bits', value);
  return Buffer.from(value, 'base64').reverse().toString('base64');
};

/** BIT(1) → boolean. */
const bit1: ColumnMapping['convert'] = (value, column) => {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') return value !== 0;
  if (typeof value !== 'string') return fail(column, 'a bit', value);
  return Buffer.from(value, 'base64').some((b) => b !== 0);
};

/** Spatial types → io.debezium.data.geometry.Geometry {wkb, srid}; MySQL stores SRID (LE) + WKB. */
const geometry: ColumnMapping['convert'] = (value, column) => {
  if (typeof value !== 'string') return fail(column, 'a geometry', value);
  const bytes = Buffer.from(value, 'base64');
  if (bytes.length < 4) return fail(column, 'a geometry', value);
  return { wkb: bytes.subarray(4).toString('base64'), srid: bytes.readUInt32LE(0) };
};

const GEOMETRY_TYPES = new Set([
  'geometry',
  'point',
  'linestring',
  'polygon',
  'multipoint',
  'multilinestring',
  'multipolygon',
  'geometrycollection',
  'geomcollection',
]);

/** `'a','b''c'` → ['a', "b'c"]. */
function quotedList(list: string): string[] {
  const values: string[] = [];
  const re = /'((?:[^']|'')*)'/g;
  for (let m = re.exec(list); m !== null; m = re.exec(list))
    values.push((m[1] as string).replace(/''/g, "'"));
  return values;
}

/**
 * How Debezium's MySQL/MariaDB connector maps a column of this COLUMN_TYPE
 * (`int(10) unsigned`, `decimal(10,2)`, `datetime(6)`, `enum('a','b')`).
 * An unknown type, or a missing one, is carried as a string.
 */
export function columnMapping(
  columnType: string | undefined,
  decimalHandling: DebeziumFormat['decimalHandling'],
): ColumnMapping {
  if (columnType === undefined) return { schema: { type: 'string' }, convert: text };
  const t = columnType.trim().toLowerCase();
  const m = /^([a-z]+)(?:\((.*)\))?/.exec(t);
  const base = m?.[1] ?? t;
  const args = m?.[2] ?? '';
  const unsigned = /\bunsigned\b/.test(t);
  const precision = Number(args.split(',')[0] ?? '') || 0;
  switch (base) {
    case 'tinyint':
      return { schema: { type: 'int16' }, convert: integer };
    case 'smallint':
      return { schema: { type: unsigned ? 'int32' : 'int16' }, convert: integer };
    case 'mediumint':
      return { schema: { type: 'int32' }, convert: integer };
    case 'int':
    case 'integer':
      return { schema: { type: unsigned ? 'int64' : 'int32' }, convert: integer };
    case 'bigint':
      return { schema: { type: 'int64' }, convert: unsigned ? unsignedLong : integer };
    case 'float':
    case 'double':
    case 'real':
      // Connect's FLOAT64; its JsonConverter spells the type `double`.
      return { schema: { type: 'double' }, convert: float };
    case 'decimal':
    case 'numeric':
    case 'dec':
    case 'fixed': {
      const [p, s] = args.split(',').map((x) => Number(x.trim()));
      const scale = s ?? 0;
      if (decimalHandling === 'string') return { schema: { type: 'string' }, convert: text };
      return {
        schema: {
          type: 'bytes',
          name: 'org.apache.kafka.connect.data.Decimal',
          version: 1,
          parameters: {
            scale: String(scale),
            'connect.decimal.precision': String(p ?? 10),
          },
        },
        convert: (value, column) => {
          if (typeof value !== 'string' && typeof value !== 'number')
            return fail(column, 'a decimal', value);
          try {
            return decimalToBase64(String(value), scale);
          } catch {
            return fail(column, `a decimal of scale ${scale}`, value);
          }
        },
      };
    }
    case 'bit':
      if (precision <= 1) return { schema: { type: 'boolean' }, convert: bit1 };
      return {
        schema: {
          type: 'bytes',
          name: 'io.debezium.data.Bits',
          version: 1,
          parameters: { length: String(precision) },
        },
        convert: bits,
      };
    case 'bool':
    case 'boolean':
      return { schema: { type: 'boolean' }, convert: bit1 };
    case 'date':
      return {
        schema: { type: 'int32', name: 'io.debezium.time.Date', version: 1 },
        convert: date,
      };
    case 'datetime':
      return precision > 3
        ? {
            schema: { type: 'int64', name: 'io.debezium.time.MicroTimestamp', version: 1 },
            convert: datetime(precision),
          }
        : {
            schema: { type: 'int64', name: 'io.debezium.time.Timestamp', version: 1 },
            convert: datetime(precision),
          };
    case 'timestamp':
      return {
        schema: { type: 'string', name: 'io.debezium.time.ZonedTimestamp', version: 1 },
        convert: zonedTimestamp(precision),
      };
    case 'time':
      return {
        schema: { type: 'int64', name: 'io.debezium.time.MicroTime', version: 1 },
        convert: microTime,
      };
    case 'year':
      return {
        schema: { type: 'int32', name: 'io.debezium.time.Year', version: 1 },
        convert: integer,
      };
    case 'json':
      return {
        schema: { type: 'string', name: 'io.debezium.data.Json', version: 1 },
        convert: text,
      };
    case 'enum':
      return {
        schema: {
          type: 'string',
          name: 'io.debezium.data.Enum',
          version: 1,
          parameters: { allowed: quotedList(args).join(',') },
        },
        convert: text,
      };
    case 'set':
      return {
        schema: {
          type: 'string',
          name: 'io.debezium.data.EnumSet',
          version: 1,
          parameters: { allowed: quotedList(args).join(',') },
        },
        convert: text,
      };
    case 'binary':
    case 'varbinary':
    case 'tinyblob':
    case 'blob':
    case 'mediumblob':
    case 'longblob':
      return { schema: { type: 'bytes' }, convert: passthrough };
    default:
      if (GEOMETRY_TYPES.has(base))
        return {
          schema: {
            type: 'struct',
            name: 'io.debezium.data.geometry.Geometry',
            version: 1,
            fields: [
              { type: 'bytes', optional: false, field: 'wkb' },
              { type: 'int32', optional: true, field: 'srid' },
            ],
          },
          convert: geometry,
        };
      // CHAR, VARCHAR, the TEXT types (and MariaDB's JSON, which is LONGTEXT), anything else.
      return { schema: { type: 'string' }, convert: text };
  }
}

/** The Debezium form of one table: column mappings and (pre-serialised) Connect schemas. */
export interface TableShape {
  readonly columns: ReadonlyMap<string, ColumnMapping>;
  readonly keyColumns: readonly string[];
  readonly keySchemaJson: string;
  readonly valueSchemaJson: string;
}

/** The `source` block's schema for the connector (MySQL's and MariaDB's differ only in name). */
function sourceSchema(connector: DebeziumSourceInfo['connector']): ConnectSchema {
  const f = (type: string, field: string, optional: boolean, extra: Partial<ConnectSchema> = {}) =>
    ({ type, optional, field, ...extra }) as ConnectSchema;
  return {
    type: 'struct',
    optional: false,
    name: `io.debezium.connector.${connector}.Source`,
    fields: [
      f('string', 'version', false),
      f('string', 'connector', false),
      f('string', 'name', false),
      f('int64', 'ts_ms', false),
      f('string', 'snapshot', true, {
        name: 'io.debezium.data.Enum',
        version: 1,
        parameters: {
          allowed:
            'true,first,first_in_data_collection,last_in_data_collection,last,false,incremental',
        },
      }),
      f('string', 'db', false),
      f('string', 'sequence', true),
      f('int64', 'ts_us', true),
      f('int64', 'ts_ns', true),
      f('string', 'table', true),
      f('int64', 'server_id', false),
      f('string', 'gtid', true),
      f('string', 'file', false),
      f('int64', 'pos', false),
      f('int32', 'row', false),
      f('int64', 'thread', true),
      f('string', 'query', true),
    ],
  };
}

/**
 * Builds a table's shape from the event's column types. `keyColumns` are the
 * primary key in key order; key columns are required, all others optional
 * (the binlog's column types carry no nullability).
 */
export function tableShape(
  format: DebeziumFormat,
  connector: DebeziumSourceInfo['connector'],
  db: string,
  table: string,
  columnNames: readonly string[],
  keyColumns: readonly string[],
  types: Readonly<Record<string, string>> | undefined,
): TableShape {
  const columns = new Map<string, ColumnMapping>();
  for (const column of columnNames)
    columns.set(column, columnMapping(types?.[column], format.decimalHandling));
  for (const column of keyColumns)
    if (!columns.has(column))
      columns.set(column, columnMapping(types?.[column], format.decimalHandling));
  const keys = new Set(keyColumns);
  const field = (column: string): ConnectSchema => {
    const mapping = columns.get(column) as ColumnMapping;
    return { ...mapping.schema, optional: !keys.has(column), field: column };
  };
  const base = `${format.topicPrefix}.${db}.${table}`;
  const keySchema: ConnectSchema = {
    type: 'struct',
    optional: false,
    name: `${base}.Key`,
    fields: keyColumns.map(field),
  };
  const rowSchema = (name: string): ConnectSchema => ({
    type: 'struct',
    optional: true,
    name: `${base}.Value`,
    fields: [...columns.keys()].map(field),
    ...(name === '' ? {} : { field: name }),
  });
  const valueSchema: ConnectSchema = {
    type: 'struct',
    optional: false,
    name: `${base}.Envelope`,
    version: 2,
    fields: [
      rowSchema('before'),
      rowSchema('after'),
      { ...sourceSchema(connector), field: 'source' },
      {
        type: 'struct',
        optional: true,
        name: 'event.block',
        version: 1,
        field: 'transaction',
        fields: [
          { type: 'string', optional: false, field: 'id' },
          { type: 'int64', optional: false, field: 'total_order' },
          { type: 'int64', optional: false, field: 'data_collection_order' },
        ],
      },
      { type: 'string', optional: false, field: 'op' },
      { type: 'int64', optional: true, field: 'ts_ms' },
      { type: 'int64', optional: true, field: 'ts_us' },
      { type: 'int64', optional: true, field: 'ts_ns' },
    ],
  };
  return {
    columns,
    keyColumns,
    keySchemaJson: JSON.stringify(keySchema),
    valueSchemaJson: JSON.stringify(valueSchema),
  };
}

function mapRow(shape: TableShape, row: RowImage | null): DebeziumValue {
  if (row === null) return null;
  const out: Record<string, DebeziumValue> = {};
  for (const [column, value] of Object.entries(row)) {
    const mapping = shape.columns.get(column);
    out[column] =
      value === null ? null : mapping === undefined ? value : mapping.convert(value, column);
  }
  return out;
}

/** The server_id of a MariaDB GTID (`domain-server-seq`), if it is one. */
export function serverIdOfGtid(gtid: string | null): number | undefined {
  const m = /^\d+-(\d+)-\d+$/.exec(gtid ?? '');
  return m === null ? undefined : Number(m[1]);
}

/** `<topicPrefix>.<db>.<table>`, as Debezium names its change topics. */
export function debeziumTopic(topicPrefix: string, db: string, table: string): string {
  return `${topicPrefix}.${db}.${table}`;
}

export interface DebeziumMessage {
  readonly topic: string;
  readonly key: string;
  /** null: a tombstone. */
  readonly value: string | null;
}

function withSchema(schemas: boolean, schemaJson: string, payload: string): string {
  return schemas ? `{"schema":${schemaJson},"payload":${payload}}` : payload;
}

/**
 * The Debezium key and value of one change (a delete is followed by a
 * tombstone when `tombstones` is set). Throws DebeziumMappingError when a
 * value cannot be mapped.
 */
export function debeziumMessages(
  format: DebeziumFormat & { readonly tombstones: boolean },
  shape: TableShape,
  event: ChangeEvent,
  source: DebeziumSourceInfo,
): DebeziumMessage[] {
  if (event.op !== 'c' && event.op !== 'u' && event.op !== 'd' && event.op !== 'r')
    throw new DebeziumMappingError(`unknown op ${String(event.op)}`);
  const topic = debeziumTopic(format.topicPrefix, event.db, event.table);
  const keyPayload: Record<string, DebeziumValue> = {};
  for (const column of shape.keyColumns) {
    const value = event.pk[column] ?? null;
    const mapping = shape.columns.get(column);
    keyPayload[column] =
      value === null || mapping === undefined ? value : mapping.convert(value, column);
  }
  const key = withSchema(format.schemas, shape.keySchemaJson, stringifyDebezium(keyPayload));
  const commitMs = event.commitTs;
  const nowMs = source.nowMs;
  const payload: Record<string, DebeziumValue> = {
    before: mapRow(shape, event.before),
    after: mapRow(shape, event.after),
    source: {
      version: DEBEZIUM_SOURCE_VERSION,
      connector: source.connector,
      name: format.topicPrefix,
      ts_ms: commitMs,
      snapshot: event.op === 'r' ? 'true' : 'false',
      db: event.db,
      sequence: null,
      ts_us: int64(BigInt(commitMs) * 1000n),
      ts_ns: int64(BigInt(commitMs) * 1_000_000n),
      table: event.table,
      server_id: source.serverId,
      gtid: event.gtid,
      file: source.file,
      pos: source.pos,
      row: source.row,
      thread: null,
      query: null,
    },
    transaction: null,
    op: event.op,
    ts_ms: nowMs,
    ts_us: int64(BigInt(nowMs) * 1000n),
    ts_ns: int64(BigInt(nowMs) * 1_000_000n),
  };
  const messages: DebeziumMessage[] = [
    {
      topic,
      key,
      value: withSchema(format.schemas, shape.valueSchemaJson, stringifyDebezium(payload)),
    },
  ];
  if (event.op === 'd' && format.tombstones) messages.push({ topic, key, value: null });
  return messages;
}
