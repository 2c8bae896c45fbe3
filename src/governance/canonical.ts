/**
 * The canonical text of a column value: the exact bytes the keyed hash
 * (`hmac` mask) is computed over, defined byte for byte in
 * docs/GOVERNANCE.md ("Canonical text") so anyone can reproduce a hash from
 * the value as MySQL shows it. It depends on the column's type, not on how
 * the envelope happened to encode the value (a number or a numeric string,
 * a DATETIME with or without its fraction), so every region and every reader
 * gets the same bytes for the same stored value.
 */
import { isBinaryDataType } from '../mysql/column-types.js';
import { GovernanceError, type ColumnTypeInfo, type EncodedValue } from './policy.js';

const INTEGER_TYPES: ReadonlySet<string> = new Set([
  'tinyint',
  'smallint',
  'mediumint',
  'int',
  'integer',
  'bigint',
]);
const DECIMAL_TYPES: ReadonlySet<string> = new Set(['decimal', 'numeric', 'dec', 'fixed']);
const FLOAT_TYPES: ReadonlySet<string> = new Set(['float', 'double', 'real', 'double precision']);
/** Character types whose values are text: masks that rewrite text apply to them. */
const TEXT_TYPES: ReadonlySet<string> = new Set([
  'char',
  'varchar',
  'tinytext',
  'text',
  'mediumtext',
  'longtext',
]);

/** How governance treats a column's values. */
export type ValueClass =
  | 'text'
  | 'binary'
  | 'integer'
  | 'decimal'
  | 'float'
  | 'date'
  | 'datetime'
  | 'time'
  | 'year'
  | 'json'
  | 'enum'
  | 'other';

/** Classifies a column by its DATA_TYPE. */
export function valueClassOf(column: Pick<ColumnTypeInfo, 'dataType'>): ValueClass {
  const type = column.dataType.toLowerCase();
  if (TEXT_TYPES.has(type)) return 'text';
  if (isBinaryDataType(type)) return 'binary';
  if (INTEGER_TYPES.has(type)) return 'integer';
  if (DECIMAL_TYPES.has(type)) return 'decimal';
  if (FLOAT_TYPES.has(type)) return 'float';
  if (type === 'date') return 'date';
  if (type === 'datetime' || type === 'timestamp') return 'datetime';
  if (type === 'time') return 'time';
  if (type === 'year') return 'year';
  if (type === 'json') return 'json';
  if (type === 'enum' || type === 'set') return 'enum';
  return 'other';
}

function invalid(column: ColumnTypeInfo, what: string): GovernanceError {
  // Names the column and its type only: the value may be the very thing being protected.
  return new GovernanceError(
    `column ${column.name} (${column.columnType}): ${what}`,
    'GOVERNANCE_VALUE_INVALID',
  );
}

/** `(n)` or `(p,s)` of a COLUMN_TYPE: its numbers, or [] when it has none. */
export function typeArguments(columnType: string): number[] {
  const match = /^[a-z ]+\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)/i.exec(columnType.trim());
  if (match === null) return [];
  return [Number(match[1]), ...(match[2] === undefined ? [] : [Number(match[2])])];
}

/** Base64 text → bytes, refusing anything that is not strict base64. */
export function decodeBase64(column: ColumnTypeInfo, value: EncodedValue): Buffer {
  if (
    typeof value !== 'string' ||
    !/^[A-Za-z0-9+/]*={0,2}$/.test(value) ||
    value.length % 4 !== 0
  ) {
    throw invalid(column, 'a binary value must arrive as base64 text');
  }
  return Buffer.from(value, 'base64');
}

function integerText(column: ColumnTypeInfo, value: EncodedValue): string {
  if (typeof value === 'boolean') return value ? '1' : '0';
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  if (typeof value === 'string' && /^[+-]?\d+$/.test(value)) return BigInt(value).toString();
  throw invalid(column, 'not an integer');
}

/**
 * DECIMAL as MySQL prints it: optional `-`, the integer digits without
 * leading zeros (`0` when there are none), then `.` and exactly the column's
 * scale of fraction digits when the scale is not 0. Negative zero prints as
 * zero, as MySQL stores it.
 */
function decimalText(column: ColumnTypeInfo, value: EncodedValue): string {
  const text = typeof value === 'number' && Number.isFinite(value) ? String(value) : value;
  const match =
    typeof text === 'string' ? /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(text.trim()) : undefined;
  if (match === null || match === undefined || `${match[2] ?? ''}${match[3] ?? ''}` === '') {
    throw invalid(column, 'not a decimal number');
  }
  const scale = typeArguments(column.columnType)[1] ?? 0;
  const integer = (match[2] ?? '').replace(/^0+/, '') || '0';
  let fraction = match[3] ?? '';
  while (fraction.length > scale && fraction.endsWith('0')) fraction = fraction.slice(0, -1);
  fraction = fraction.padEnd(scale, '0');
  const digits = fraction === '' ? integer : `${integer}.${fraction}`;
  const isZero = /^[0.]*$/.test(digits);
  return match[1] === '-' && !isZero ? `-${digits}` : digits;
}

/** `YYYY-MM-DD HH:MM:SS.ffffff`: always six fraction digits, a space between date and time. */
function datetimeText(column: ColumnTypeInfo, value: EncodedValue): string {
  const match =
    typeof value === 'string'
      ? /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?$/.exec(value)
      : null;
  if (match === null) throw invalid(column, 'not a DATETIME/TIMESTAMP text');
  return `${match[1]} ${match[2]}.${(match[3] ?? '').padEnd(6, '0')}`;
}

/** `[-]HH:MM:SS.ffffff`: at least two hour digits, always six fraction digits. */
function timeText(column: ColumnTypeInfo, value: EncodedValue): string {
  const match =
    typeof value === 'string'
      ? /^(-?)(\d{1,3}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/.exec(value)
      : null;
  if (match === null) throw invalid(column, 'not a TIME text');
  const hours = (match[2] ?? '').padStart(2, '0');
  return `${match[1] ?? ''}${hours}:${match[3] ?? ''}:${match[4] ?? ''}.${(match[5] ?? '').padEnd(6, '0')}`;
}

function dateText(column: ColumnTypeInfo, value: EncodedValue): string {
  if (typeof value !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(value)) {
    throw invalid(column, 'not a DATE text');
  }
  return value;
}

/**
 * The canonical bytes of `value` in `column`, or `null` for SQL NULL (which
 * has none: every mask keeps NULL as NULL). See docs/GOVERNANCE.md for the
 * definition per type; in short:
 *
 * - text, ENUM, SET, JSON and unknown types: the value's UTF-8 bytes, as is;
 * - integers and YEAR: decimal digits (YEAR zero-padded to four);
 * - DECIMAL: as MySQL prints it, exactly `scale` fraction digits;
 * - FLOAT/DOUBLE: ECMAScript's shortest round-trip text of the double;
 * - DATE `YYYY-MM-DD`; DATETIME/TIMESTAMP `YYYY-MM-DD HH:MM:SS.ffffff` (UTC
 *   for TIMESTAMP); TIME `[-]HH:MM:SS.ffffff`;
 * - binary types: the raw bytes; BINARY(n) right-padded with 0x00 to n.
 *
 * @throws GovernanceError when the value is not what the column type's
 *   envelope encoding produces (the message names the column, not the value).
 */
export function canonicalText(column: ColumnTypeInfo, value: EncodedValue): Buffer | null {
  if (value === null) return null;
  switch (valueClassOf(column)) {
    case 'binary': {
      const bytes = decodeBase64(column, value);
      const width =
        column.dataType.toLowerCase() === 'binary'
          ? typeArguments(column.columnType)[0]
          : undefined;
      if (width === undefined || bytes.length >= width) return bytes;
      return Buffer.concat([bytes, Buffer.alloc(width - bytes.length)]);
    }
    case 'integer':
      return Buffer.from(integerText(column, value), 'utf8');
    case 'year':
      return Buffer.from(integerText(column, value).padStart(4, '0'), 'utf8');
    case 'decimal':
      return Buffer.from(decimalText(column, value), 'utf8');
    case 'float':
      if (typeof value === 'number') return Buffer.from(String(value), 'utf8');
      if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) {
        return Buffer.from(String(Number(value)), 'utf8');
      }
      throw invalid(column, 'not a number');
    case 'date':
      return Buffer.from(dateText(column, value), 'utf8');
    case 'datetime':
      return Buffer.from(datetimeText(column, value), 'utf8');
    case 'time':
      return Buffer.from(timeText(column, value), 'utf8');
    case 'text':
    case 'json':
    case 'enum':
    case 'other':
      return Buffer.from(typeof value === 'boolean' ? (value ? '1' : '0') : String(value), 'utf8');
  }
}
