import { hash } from 'node:crypto';

/**
 * The tombstone key of a primary key, computed in Node: the lowercase hex
 * SHA-256 of exactly the text the triggers hash, `JSON_ARRAY(<per key
 * column: HEX(col) for binary types, CAST(col AS CHAR) otherwise>)`
 * (src/prepare/ddl.ts `keyJsonSql`), as MariaDB 10.11 and MySQL 8.0.12 both
 * print it: `["p1", "p2"]`, every part a JSON string, `", "` between parts.
 *
 * Values are taken as the envelope encodes them (DESIGN.md §5, src/bus/envelope.ts):
 * integers as numbers (decimal strings beyond 2^53), text as strings,
 * BINARY/VARBINARY as base64, DECIMAL as the server prints it.
 *
 * Returns undefined whenever the text is not certain, and the caller then
 * lets the server compute it (`UNHEX(SHA2(JSON_ARRAY(…), 256))`):
 * - a NULL or missing part, or a value of another JS type than expected;
 * - a column type other than the integer types, CHAR/VARCHAR/TEXT types,
 *   BINARY/VARBINARY and DECIMAL (temporal, float, enum, set, bit, json,
 *   blob, uuid, … are left to the server);
 * - an integer, DECIMAL or BINARY column whose `columnType` is not given
 *   (ZEROFILL and the display width, the scale, the width are read from it);
 *   a negative value or no display width in a ZEROFILL integer column
 *   (`CAST` pads those with zeros to the display width: `int(5) zerofill`
 *   42 is `00042`); a DECIMAL column declared ZEROFILL;
 * - text holding a control character whose `\u00XX` escape has a hex letter
 *   (U+000B, U+000E, U+000F, U+001A–U+001F): MariaDB prints it upper case
 *   (`\u001A`), MySQL lower case (`\u001a`); or a lone surrogate (not text
 *   either server can hold);
 * - a CHAR value with trailing spaces (CHAR drops them when read, so the
 *   stored row's text differs from the value);
 * - a BINARY(n) value longer than n, or base64 that is not canonical;
 * - a DECIMAL string not in the column's own print form (exactly its scale
 *   in fraction digits, no leading zeros, no `+`, no negative zero, no more
 *   integer digits than the type holds).
 *
 * Text is hashed as UTF-8, as the triggers' utf8mb4 key text is (the
 * connection charset `prepare` creates them with, and the schema default of
 * the variable the delete trigger stores it in). Value-for-value, the text
 * of a string part equals `JSON.stringify` of the value once the characters
 * above are excluded: both servers escape `"` and `\`, write U+0008,
 * U+0009, U+000A, U+000C and U+000D as `\b \t \n \f \r` and the other
 * characters below U+0020 as `\u00XX`, and print everything else (`/`,
 * U+007F, non-ASCII, emoji, U+2028/U+2029) as is.
 * test/integration/apply/key-hash.test.ts pins this to the triggers of both
 * servers.
 */
export interface TombstoneKeyColumn {
  readonly name: string;
  /** information_schema DATA_TYPE, lower case. */
  readonly dataType: string;
  /** information_schema COLUMN_TYPE (`int(10) unsigned`, `decimal(10,2)`, `binary(16)`). */
  readonly columnType?: string;
}

export type TombstoneKeyValue = string | number | boolean | null;

const INTEGER_DATA_TYPES: ReadonlySet<string> = new Set([
  'tinyint',
  'smallint',
  'mediumint',
  'int',
  'bigint',
]);
const TEXT_DATA_TYPES: ReadonlySet<string> = new Set([
  'char',
  'varchar',
  'tinytext',
  'text',
  'mediumtext',
  'longtext',
]);
const INTEGER_TEXT = /^-?(0|[1-9][0-9]*)$/;
const DECIMAL_TEXT = /^(-?)(0|[1-9][0-9]*)(?:\.([0-9]+))?$/;
const DISPLAY_WIDTH = /^[a-z]+\((\d+)\)/;
const DECIMAL_TYPE = /^decimal\((\d+),(\d+)\)/;
const BINARY_TYPE = /^binary\((\d+)\)/;

/**
 * Whether both servers print `value` alike and can hold it: no control
 * character whose escape has a hex letter (U+000B, U+000E, U+000F,
 * U+001A–U+001F: `\u001A` on MariaDB, `\u001a` on MySQL), no lone surrogate.
 */
function printedAlike(value: string): boolean {
  for (let i = 0; i < value.length; i += 1) {
    const c = value.charCodeAt(i);
    if (c < 0x20) {
      if (c === 0x0b || c === 0x0e || c === 0x0f || c >= 0x1a) return false;
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const next = value.charCodeAt(i + 1); // NaN past the end
      if (c >= 0xdc00 || !(next >= 0xdc00 && next <= 0xdfff)) return false;
      i += 1;
    }
  }
  return true;
}

/**
 * Why no value of a key column of this type has a tombstone key computed
 * outside the server ({@link tombstoneKeyHash} always returns undefined for
 * it), or undefined when its values do (apart from the rare single values
 * listed above). `prepare` refuses such keys in governed tables, whose
 * eviction notices name rows by this hash (src/governance/table-check.ts).
 */
export function unhashedKeyType(column: TombstoneKeyColumn): string | undefined {
  const type = column.dataType;
  const zerofill = column.columnType?.includes('zerofill') === true;
  if (INTEGER_DATA_TYPES.has(type) || TEXT_DATA_TYPES.has(type)) return undefined;
  if (type === 'binary' || type === 'varbinary') return undefined;
  if (type === 'decimal')
    return zerofill ? 'a DECIMAL ZEROFILL key is printed padded to its width' : undefined;
  return `the server's text of a ${type} key is not reproduced outside it`;
}

/** Lowercase hex SHA-256 of the key's trigger text, or undefined when that text is not certain. */
export function tombstoneKeyHash(
  pkColumns: readonly TombstoneKeyColumn[],
  pk: Readonly<Record<string, TombstoneKeyValue>>,
): string | undefined {
  if (pkColumns.length === 0) return undefined;
  let text = '[';
  for (let i = 0; i < pkColumns.length; i += 1) {
    const column = pkColumns[i] as TombstoneKeyColumn;
    const part = keyPartText(column, pk[column.name]);
    if (part === undefined) return undefined;
    text += i === 0 ? part : `, ${part}`;
  }
  // One-shot hash: a Hash object per key cost three times as much.
  return hash('sha256', `${text}]`, 'hex');
}

/** One key column's part of the trigger text, a JSON string, or undefined when not certain. */
function keyPartText(
  column: TombstoneKeyColumn,
  value: TombstoneKeyValue | undefined,
): string | undefined {
  if (value === null || value === undefined) return undefined;
  const type = column.dataType;
  if (INTEGER_DATA_TYPES.has(type)) {
    if (column.columnType === undefined) return undefined;
    const text =
      typeof value === 'number' && Number.isSafeInteger(value)
        ? String(value)
        : typeof value === 'string' && value !== '-0' && INTEGER_TEXT.test(value)
          ? value
          : undefined;
    if (text === undefined) return undefined;
    if (!column.columnType.includes('zerofill')) return `"${text}"`;
    // ZEROFILL: CAST(col AS CHAR) pads to the display width, on both servers.
    const width = DISPLAY_WIDTH.exec(column.columnType);
    if (width === null || text.startsWith('-')) return undefined;
    return `"${text.padStart(Number(width[1]), '0')}"`;
  }
  if (TEXT_DATA_TYPES.has(type)) {
    if (typeof value !== 'string' || !printedAlike(value)) return undefined;
    if (type === 'char' && value.endsWith(' ')) return undefined;
    return JSON.stringify(value);
  }
  if (type === 'binary' || type === 'varbinary') {
    if (typeof value !== 'string') return undefined;
    let bytes = Buffer.from(value, 'base64');
    if (bytes.toString('base64') !== value) return undefined;
    if (type === 'binary') {
      const width = BINARY_TYPE.exec(column.columnType ?? '');
      if (width === null) return undefined;
      const n = Number(width[1]);
      if (bytes.length > n) return undefined;
      // The server pads BINARY(n) with 0x00 on write and HEX shows the padding.
      if (bytes.length < n) bytes = Buffer.concat([bytes, Buffer.alloc(n - bytes.length)]);
    }
    return `"${bytes.toString('hex').toUpperCase()}"`;
  }
  if (type === 'decimal') {
    const declared = DECIMAL_TYPE.exec(column.columnType ?? '');
    if (declared === null || column.columnType?.includes('zerofill') === true) return undefined;
    if (typeof value !== 'string') return undefined;
    const parts = DECIMAL_TEXT.exec(value);
    if (parts === null) return undefined;
    const sign = parts[1];
    const integer = parts[2] as string;
    const fraction = parts[3] ?? '';
    const precision = Number(declared[1]);
    const scale = Number(declared[2]);
    if (fraction.length !== scale || integer.length > Math.max(precision - scale, 1))
      return undefined;
    if (sign === '-' && /^[0.]*$/.test(`${integer}${fraction}`)) return undefined;
    return `"${value}"`;
  }
  return undefined;
}
