import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import fc from 'fast-check';
import {
  FIELD_TYPE_DATETIME2,
  FIELD_TYPE_TIMESTAMP2,
  ZONGJI_VERSION_CHECKED,
  datetime2Text,
  temporalWidth,
  timestamp2Text,
  zongjiVersionMismatch,
} from './binlog-temporal.js';

type ReadMysqlValue = (
  parser: { _buffer: Buffer; _offset: number },
  column: { type: number; name: string; metadata: { decimals: number } },
  columnSchema: { COLUMN_TYPE: string },
  tableMap: object,
  zongji: object,
) => unknown;

/**
 * zongji's own decoder of a column value, the reference the text must equal
 * byte for byte. Not part of its public API (hence the path): this test is
 * what pins the retyping in binlog-source.ts to the zongji it was checked
 * against.
 */
let readMysqlValue: ReadMysqlValue;
const zongji = { connection: { config: { dateStrings: true, timezone: 'Z' } } };

beforeAll(async () => {
  const entry = createRequire(import.meta.url).resolve('@vlasky/zongji');
  const common = (await import(pathToFileURL(join(dirname(entry), 'lib', 'common.js')).href)) as {
    readMysqlValue: ReadMysqlValue;
  };
  readMysqlValue = common.readMysqlValue;
});

function zongjiText(type: number, decimals: number, bytes: Buffer): unknown {
  const column = { type, name: 'c', metadata: { decimals } };
  const schema = { COLUMN_TYPE: type === FIELD_TYPE_DATETIME2 ? 'datetime' : 'timestamp' };
  const parser = { _buffer: bytes, _offset: 0 };
  const value = readMysqlValue(parser, column, schema, {}, zongji);
  // zongji read exactly the bytes the retyped (BIT) column will hand over.
  expect(parser._offset).toBe(temporalWidth(type, decimals));
  return value;
}

function ourText(type: number, decimals: number, bytes: Buffer): string {
  return type === FIELD_TYPE_DATETIME2
    ? datetime2Text(bytes, decimals)
    : timestamp2Text(bytes, decimals);
}

/** The binlog bytes of a DATETIME2 value (positive: sign bit set) with a fraction of `decimals` digits. */
function datetime2Bytes(
  parts: { year: number; month: number; day: number; hour: number; minute: number; second: number },
  fraction: number,
  decimals: number,
): Buffer {
  const bytes = Buffer.alloc(temporalWidth(FIELD_TYPE_DATETIME2, decimals));
  const date = ((parts.year * 13 + parts.month) << 5) | parts.day;
  const time = (parts.hour << 12) | (parts.minute << 6) | parts.second;
  const packed = 2 ** 39 + date * 2 ** 17 + time;
  bytes.writeUIntBE(packed, 0, 5);
  if (decimals > 0) writeFraction(bytes, 5, fraction, decimals);
  return bytes;
}

function timestamp2Bytes(seconds: number, fraction: number, decimals: number): Buffer {
  const bytes = Buffer.alloc(temporalWidth(FIELD_TYPE_TIMESTAMP2, decimals));
  bytes.writeUInt32BE(seconds, 0);
  if (decimals > 0) writeFraction(bytes, 4, fraction, decimals);
  return bytes;
}

/** As the server stores it: an odd precision keeps an unused last digit (×10). */
function writeFraction(bytes: Buffer, at: number, fraction: number, decimals: number): void {
  bytes.writeIntBE(decimals % 2 === 0 ? fraction : fraction * 10, at, Math.ceil(decimals / 2));
}

const decimalsArb = fc.integer({ min: 0, max: 6 });
const typeArb = fc.constantFrom(FIELD_TYPE_DATETIME2, FIELD_TYPE_TIMESTAMP2);
const RUNS = 20_000;

describe('binlog temporal text', () => {
  it('is checked against the installed zongji', () => {
    // A new zongji: check these tests pass, then move ZONGJI_VERSION_CHECKED.
    expect(zongjiVersionMismatch).toBeUndefined();
    expect(ZONGJI_VERSION_CHECKED).toBe('0.9.0');
  });

  it("equals zongji's text for any bytes of any precision", () => {
    fc.assert(
      fc.property(
        typeArb,
        decimalsArb,
        fc.uint8Array({ minLength: 8, maxLength: 8 }),
        (t, d, raw) => {
          const bytes = Buffer.from(raw.buffer, raw.byteOffset, temporalWidth(t, d));
          expect(ourText(t, d, bytes)).toBe(zongjiText(t, d, bytes));
        },
      ),
      { numRuns: RUNS },
    );
  });

  it("equals zongji's text for every DATETIME a server can write, zero dates included", () => {
    const datetime = fc.record({
      year: fc.oneof(fc.integer({ min: 0, max: 9999 }), fc.constantFrom(0, 1000, 1970, 9999)),
      month: fc.integer({ min: 0, max: 12 }),
      day: fc.integer({ min: 0, max: 31 }),
      hour: fc.integer({ min: 0, max: 23 }),
      minute: fc.integer({ min: 0, max: 59 }),
      second: fc.integer({ min: 0, max: 59 }),
    });
    fc.assert(
      fc.property(datetime, decimalsArb, fc.double({ min: 0, max: 1, noNaN: true }), (p, d, f) => {
        const fraction = Math.min(10 ** d - 1, Math.floor(f * 10 ** d));
        const bytes = datetime2Bytes(p, fraction, d);
        const text = datetime2Text(bytes, d);
        expect(text).toBe(zongjiText(FIELD_TYPE_DATETIME2, d, bytes));
        expect(text).toHaveLength(19 + (d === 0 ? 0 : d + 1));
      }),
      { numRuns: RUNS },
    );
  });

  it("equals zongji's text for every TIMESTAMP a server can write, the zero timestamp included", () => {
    const seconds = fc.oneof(
      fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      fc.constantFrom(0, 1, 86_399, 86_400, 951_782_400, 2 ** 31 - 1),
    );
    fc.assert(
      fc.property(seconds, decimalsArb, fc.double({ min: 0, max: 1, noNaN: true }), (s, d, f) => {
        const fraction = Math.min(10 ** d - 1, Math.floor(f * 10 ** d));
        const bytes = timestamp2Bytes(s, fraction, d);
        expect(timestamp2Text(bytes, d)).toBe(zongjiText(FIELD_TYPE_TIMESTAMP2, d, bytes));
      }),
      { numRuns: RUNS },
    );
  });

  it('writes the edge values as MySQL does', () => {
    const max = { year: 9999, month: 12, day: 31, hour: 23, minute: 59, second: 59 };
    const zero = { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0 };
    expect(datetime2Text(datetime2Bytes(max, 999_999, 6), 6)).toBe('9999-12-31 23:59:59.999999');
    expect(datetime2Text(datetime2Bytes(max, 99_999, 5), 5)).toBe('9999-12-31 23:59:59.99999');
    expect(datetime2Text(datetime2Bytes(max, 5, 1), 1)).toBe('9999-12-31 23:59:59.5');
    expect(datetime2Text(datetime2Bytes(zero, 0, 0), 0)).toBe('0000-00-00 00:00:00');
    expect(datetime2Text(datetime2Bytes(zero, 0, 3), 3)).toBe('0000-00-00 00:00:00.000');
    expect(timestamp2Text(timestamp2Bytes(0, 0, 6), 6)).toBe('0000-00-00 00:00:00.000000');
    expect(timestamp2Text(timestamp2Bytes(0, 0, 0), 0)).toBe('0000-00-00 00:00:00');
    expect(timestamp2Text(timestamp2Bytes(0, 1, 6), 6)).toBe('1970-01-01 00:00:00.000001');
    expect(timestamp2Text(timestamp2Bytes(1, 1, 6), 6)).toBe('1970-01-01 00:00:01.000001');
    expect(timestamp2Text(timestamp2Bytes(2 ** 31 - 1, 999_999, 6), 6)).toBe(
      '2038-01-19 03:14:07.999999',
    );
    expect(timestamp2Text(timestamp2Bytes(951_868_799, 12, 2), 2)).toBe('2000-02-29 23:59:59.12');
  });
});
