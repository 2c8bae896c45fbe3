/**
 * MySQL's binary JSON (the JSON column type of MySQL 5.7+; MariaDB's JSON is
 * plain text) turned into exactly the text MySQL prints for the column, so a
 * captured JSON value equals what `SELECT js` returns on the source.
 *
 * zongji decodes binary JSON into a JavaScript value and prints that again,
 * which cannot be exact: object keys that look like integers move to the
 * front (MySQL orders keys by length, then bytes), a key `__proto__`
 * disappears, a double that holds an integer loses its `.0` (`1.0` becomes
 * `1`, so it would be applied as an integer), exponents differ (`1e+300`
 * against MySQL's `1e300`), and a DECIMAL inside the document becomes a
 * quoted string. Capture therefore takes the raw bytes (see BinlogSource)
 * and prints them here, following the server's own rendition:
 *
 * - objects `{"k": v, ...}` and arrays `[a, b]` with `": "` and `", "`, keys in
 *   stored order (which is MySQL's order);
 * - integers (16/32/64-bit, signed or not) in decimal, exactly;
 * - doubles as the shortest text that reads back to the same double, in
 *   fixed notation with at least one fractional digit (`1.0`, `-0.0`,
 *   `0.0000001`) while the decimal exponent is between -15 and 14, or when
 *   the digits reach past the decimal point anyway (`1234567890123456.8`);
 *   otherwise `1.5e-16` / `1e15` style;
 * - strings with `"`, `\` and control characters escaped;
 * - opaque scalars: DECIMAL as a number with its scale (`1.50`), DATE,
 *   TIME and DATETIME/TIMESTAMP as quoted strings (`"12:00:00.000000"`),
 *   any other type as `"base64:type<N>:<bytes>"`.
 */
import { CdcError } from '../core/errors.js';

const SMALL_OBJECT = 0x00;
const LARGE_OBJECT = 0x01;
const SMALL_ARRAY = 0x02;
const LARGE_ARRAY = 0x03;
const LITERAL = 0x04;
const INT16 = 0x05;
const UINT16 = 0x06;
const INT32 = 0x07;
const UINT32 = 0x08;
const INT64 = 0x09;
const UINT64 = 0x0a;
const DOUBLE = 0x0b;
const STRING = 0x0c;
const OPAQUE = 0x0f;

/** MySQL field types that an opaque JSON scalar may carry and that print as values. */
const FIELD_TIMESTAMP = 7;
const FIELD_DATE = 10;
const FIELD_TIME = 11;
const FIELD_DATETIME = 12;
const FIELD_NEWDECIMAL = 246;

function invalid(message: string): CdcError {
  return new CdcError(`binary JSON: ${message}`, { code: 'VALUE_INVALID' });
}

/** The text MySQL prints for a JSON column holding `data` (its binlog bytes). */
export function mysqlJsonText(data: Buffer): string {
  // An empty value is how MySQL stores the JSON null literal in some paths.
  if (data.length === 0) return 'null';
  const out: string[] = [];
  writeValue(data, data.readUInt8(0), 1, out);
  return out.join('');
}

/** Writes the value of `type` whose data starts at `at`. */
function writeValue(data: Buffer, type: number, at: number, out: string[]): void {
  switch (type) {
    case SMALL_OBJECT:
    case LARGE_OBJECT:
      writeContainer(data, at, type === LARGE_OBJECT, true, out);
      return;
    case SMALL_ARRAY:
    case LARGE_ARRAY:
      writeContainer(data, at, type === LARGE_ARRAY, false, out);
      return;
    case LITERAL:
      out.push(literal(data.readUInt8(at)));
      return;
    case INT16:
      out.push(String(data.readInt16LE(at)));
      return;
    case UINT16:
      out.push(String(data.readUInt16LE(at)));
      return;
    case INT32:
      out.push(String(data.readInt32LE(at)));
      return;
    case UINT32:
      out.push(String(data.readUInt32LE(at)));
      return;
    case INT64:
      out.push(data.readBigInt64LE(at).toString());
      return;
    case UINT64:
      out.push(data.readBigUInt64LE(at).toString());
      return;
    case DOUBLE:
      out.push(formatMysqlDouble(data.readDoubleLE(at)));
      return;
    case STRING: {
      const { length, next } = readVarLength(data, at);
      out.push(quoteJsonString(data.toString('utf8', next, next + length)));
      return;
    }
    case OPAQUE: {
      const fieldType = data.readUInt8(at);
      const { length, next } = readVarLength(data, at + 1);
      out.push(opaque(fieldType, data.subarray(next, next + length)));
      return;
    }
    default:
      throw invalid(`unknown value type ${type}`);
  }
}

function literal(code: number): string {
  if (code === 0) return 'null';
  if (code === 1) return 'true';
  if (code === 2) return 'false';
  throw invalid(`unknown literal ${code}`);
}

/**
 * An object or array: element count and byte size, then (objects) key
 * entries, then value entries of one type byte and an offset, or the value
 * itself when it fits (small: 16-bit ints and literals; large: also 32-bit
 * ints). Offsets count from `start`, the byte after the container's type.
 */
function writeContainer(
  data: Buffer,
  start: number,
  large: boolean,
  object: boolean,
  out: string[],
): void {
  const size = large ? 4 : 2;
  const read = (at: number): number => (large ? data.readUInt32LE(at) : data.readUInt16LE(at));
  const count = read(start);
  const keyEntries = start + 2 * size;
  const valueEntries = keyEntries + (object ? count * (size + 2) : 0);
  out.push(object ? '{' : '[');
  for (let i = 0; i < count; i += 1) {
    if (i > 0) out.push(', ');
    if (object) {
      const entry = keyEntries + i * (size + 2);
      const keyAt = start + read(entry);
      const keyLength = data.readUInt16LE(entry + size);
      out.push(quoteJsonString(data.toString('utf8', keyAt, keyAt + keyLength)), ': ');
    }
    const entry = valueEntries + i * (size + 1);
    const type = data.readUInt8(entry);
    const inlined =
      type === LITERAL ||
      type === INT16 ||
      type === UINT16 ||
      (large && (type === INT32 || type === UINT32));
    writeValue(data, type, inlined ? entry + 1 : start + read(entry + 1), out);
  }
  out.push(object ? '}' : ']');
}

/** A length of 7 bits per byte, low bits first, high bit set while more bytes follow. */
function readVarLength(data: Buffer, at: number): { length: number; next: number } {
  let length = 0;
  for (let i = 0; i < 5; i += 1) {
    const byte = data.readUInt8(at + i);
    length += (byte & 0x7f) * 2 ** (7 * i);
    if ((byte & 0x80) === 0) return { length, next: at + i + 1 };
  }
  throw invalid('length longer than 5 bytes');
}

/** A JSON string as MySQL prints it: `"` and `\` escaped, control characters as escapes. */
export function quoteJsonString(text: string): string {
  let quoted = '"';
  let from = 0;
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    if (code >= 0x20 && code !== 0x22 && code !== 0x5c) continue;
    quoted += text.slice(from, i) + escapeChar(code);
    from = i + 1;
  }
  return `${quoted}${text.slice(from)}"`;
}

function escapeChar(code: number): string {
  switch (code) {
    case 0x22:
      return '\\"';
    case 0x5c:
      return '\\\\';
    case 0x08:
      return '\\b';
    case 0x09:
      return '\\t';
    case 0x0a:
      return '\\n';
    case 0x0c:
      return '\\f';
    case 0x0d:
      return '\\r';
    default:
      return `\\u${code.toString(16).padStart(4, '0')}`;
  }
}

/**
 * A double as MySQL prints it in JSON. The digits are the shortest ones
 * that read back to the same double (as JavaScript's); only the layout
 * differs: see the file comment.
 */
export function formatMysqlDouble(value: number): string {
  if (!Number.isFinite(value)) throw invalid(`non-finite double ${String(value)}`);
  const sign = value < 0 || Object.is(value, -0) ? '-' : '';
  // toExponential() without an argument gives the shortest round-trip digits.
  const [mantissa, exponentText] = Math.abs(value).toExponential().split('e') as [string, string];
  const digits = mantissa.replace('.', '');
  const exponent = Number(exponentText);
  // Decimal point position: value = 0.<digits> × 10^point.
  const point = exponent + 1;
  if (exponent >= -15 && (exponent <= 14 || point < digits.length)) {
    if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
    if (point >= digits.length) return `${sign}${digits}${'0'.repeat(point - digits.length)}.0`;
    return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
  }
  return `${sign}${mantissa}e${exponent}`;
}

/** An opaque scalar: a MySQL value kept with its field type. */
function opaque(fieldType: number, bytes: Buffer): string {
  switch (fieldType) {
    case FIELD_NEWDECIMAL:
      return binaryDecimal(bytes.subarray(2), bytes.readUInt8(0), bytes.readUInt8(1));
    case FIELD_DATE:
      return `"${packedDateTime(bytes).slice(0, 10)}"`;
    case FIELD_DATETIME:
    case FIELD_TIMESTAMP:
      return `"${packedDateTime(bytes)}"`;
    case FIELD_TIME:
      return `"${packedTime(bytes)}"`;
    default:
      return `"base64:type${fieldType}:${bytes.toString('base64')}"`;
  }
}

const TWO_24 = 1n << 24n;

/** A packed temporal value: 64 bits, little-endian, negative for negative times. */
function packed(bytes: Buffer): { negative: boolean; whole: bigint; micros: bigint } {
  const raw = bytes.readBigInt64LE(0);
  const negative = raw < 0n;
  const magnitude = negative ? -raw : raw;
  return { negative, whole: magnitude / TWO_24, micros: magnitude % TWO_24 };
}

function pad(value: bigint | number, width: number): string {
  return String(value).padStart(width, '0');
}

/** `YYYY-MM-DD hh:mm:ss.ffffff` of a packed DATETIME (17 bits of h:m:s under year·13+month, day). */
function packedDateTime(bytes: Buffer): string {
  const { whole, micros } = packed(bytes);
  const hms = whole & 0x1ffffn;
  const ymd = whole >> 17n;
  const yearMonth = ymd >> 5n;
  return (
    `${pad(yearMonth / 13n, 4)}-${pad(yearMonth % 13n, 2)}-${pad(ymd & 31n, 2)} ` +
    `${pad(hms >> 12n, 2)}:${pad((hms >> 6n) & 63n, 2)}:${pad(hms & 63n, 2)}.${pad(micros, 6)}`
  );
}

/** `[-]hh:mm:ss.ffffff` of a packed TIME (hour·4096 + minute·64 + second). */
function packedTime(bytes: Buffer): string {
  const { negative, whole, micros } = packed(bytes);
  const hours = whole >> 12n;
  return (
    `${negative ? '-' : ''}${pad(hours, 2)}:${pad((whole >> 6n) & 63n, 2)}:` +
    `${pad(whole & 63n, 2)}.${pad(micros, 6)}`
  );
}

/** Bytes of a group of 0..9 decimal digits in MySQL's binary DECIMAL. */
const DIGIT_BYTES = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4] as const;

/**
 * MySQL's binary DECIMAL: integer digits then fraction digits, each in
 * big-endian groups of nine digits per four bytes (a shorter group at the
 * outer end), the first bit inverted as the sign, every byte inverted for a
 * negative value. Printed as MySQL does: `-`, integer digits without
 * leading zeros (at least `0`), `.` and exactly `scale` fraction digits.
 */
function binaryDecimal(bytes: Buffer, precision: number, scale: number): string {
  const integerDigits = precision - scale;
  const integerLead = integerDigits % 9;
  const fractionTail = scale % 9;
  const size =
    Math.floor(integerDigits / 9) * 4 +
    DIGIT_BYTES[integerLead]! +
    Math.floor(scale / 9) * 4 +
    DIGIT_BYTES[fractionTail]!;
  if (bytes.length < size) throw invalid(`DECIMAL(${precision},${scale}) needs ${size} bytes`);
  const copy = Buffer.from(bytes.subarray(0, size));
  const negative = (copy[0]! & 0x80) === 0;
  copy[0] = copy[0]! ^ 0x80;
  if (negative) for (let i = 0; i < copy.length; i += 1) copy[i] = copy[i]! ^ 0xff;
  let at = 0;
  const group = (digits: number): string => {
    const width = DIGIT_BYTES[digits]!;
    const value = copy.readUIntBE(at, width);
    at += width;
    return pad(value, digits);
  };
  let integer = '';
  if (integerLead > 0) integer += group(integerLead);
  for (let i = 0; i < Math.floor(integerDigits / 9); i += 1) integer += group(9);
  let fraction = '';
  for (let i = 0; i < Math.floor(scale / 9); i += 1) fraction += group(9);
  if (fractionTail > 0) fraction += group(fractionTail);
  integer = integer.replace(/^0+/, '') || '0';
  return `${negative ? '-' : ''}${integer}${scale > 0 ? `.${fraction}` : ''}`;
}
