import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * DATETIME and TIMESTAMP values of the binlog as text, without zongji's
 * formatter.
 *
 * Why: zongji turns each DATETIME2 / TIMESTAMP2 value into text through a
 * chain of string concatenations (its `zeroPad`, a `Date` and an object of
 * parts for a TIMESTAMP), about 0.9 µs per value; every replicated row has
 * at least one (`_cdc_ts`), and zongji's formatting was 5-7 % of the
 * capturing daemon's CPU. Here the same text is built in one
 * `String.fromCharCode` call (about 0.1 µs, one flat string).
 *
 * How: the binlog source retypes these columns in zongji's table map as
 * BIT columns of the same byte width (as it retypes MySQL's binary JSON as
 * BLOB), so zongji hands over the value's raw bytes, and formats them here.
 * The text must be exactly zongji's (the envelope carries it): values a
 * server writes take the fast path, and anything else (a year above 9999,
 * a fraction out of range, a TIMESTAMP before 1970) takes a slower path
 * that follows zongji's arithmetic step by step, so even bytes no server
 * writes give zongji's text. binlog-temporal.test.ts compares both with
 * zongji's own decoder over random bytes.
 *
 * That retyping relies on zongji internals (its BIT decoding and the
 * fraction layout it reads), so it is pinned to the zongji version it was
 * checked against: with another version the columns are left to zongji
 * (correct, slower), and the unit test fails until someone checks the new
 * version and moves the pin.
 */
export const ZONGJI_VERSION_CHECKED = '0.9.0';

/** zongji's type codes (MySQL's `enum_field_types`) of the columns retyped here. */
export const FIELD_TYPE_TIMESTAMP2 = 17;
export const FIELD_TYPE_DATETIME2 = 18;
export const FIELD_TYPE_BIT = 16;

function installedZongjiVersion(): string | undefined {
  try {
    // The package's exports map hides package.json; its entry point sits next to it.
    const entry = createRequire(import.meta.url).resolve('@vlasky/zongji');
    const pkg = JSON.parse(readFileSync(join(dirname(entry), 'package.json'), 'utf8')) as {
      version?: unknown;
    };
    return typeof pkg.version === 'string' ? pkg.version : undefined;
  } catch {
    return undefined;
  }
}

/** The zongji that is installed, when it is not the one checked (`undefined` when it is). */
export const zongjiVersionMismatch: string | undefined = ((): string | undefined => {
  const version = installedZongjiVersion();
  return version === ZONGJI_VERSION_CHECKED ? undefined : (version ?? 'unknown');
})();

/** Bytes of a DATETIME2 (5) or TIMESTAMP2 (4) value plus its fraction, per precision 0-6. */
export function temporalWidth(type: number, decimals: number): number {
  return (type === FIELD_TYPE_DATETIME2 ? 5 : 4) + Math.ceil(decimals / 2);
}

/** 10^0 … 10^6: a fraction of `decimals` digits is below `POW10[decimals]`. */
const POW10 = [1, 10, 100, 1000, 10_000, 100_000, 1_000_000];
const ZERO = 48;
const DASH = 45;
const SPACE = 32;
const COLON = 58;
const DOT = 46;

/**
 * The stored fraction as zongji reads it: a big-endian signed integer of
 * ceil(decimals / 2) bytes, divided by ten for an odd precision (the
 * unused last digit), made positive.
 */
function fractionOf(bytes: Buffer, at: number, decimals: number): number {
  const size = Math.ceil(decimals / 2);
  let value = bytes.readIntBE(at, size);
  if (decimals % 2 !== 0) value /= 10;
  return value < 0 ? -value : value;
}

/** zongji's zero padding: the last `size` characters of the number's text after 32 zeros. */
function padLikeZongji(value: number, size: number): string {
  const text = `${'0'.repeat(32)}${String(value)}`;
  return text.slice(text.length - size);
}

/** '' or '.' and the fraction padded to `decimals` digits, as zongji writes it. */
function fractionTextLikeZongji(fraction: number, decimals: number): string {
  return decimals === 0 ? '' : `.${padLikeZongji(fraction, decimals)}`;
}

/**
 * `YYYY-MM-DD HH:MM:SS[.f…]` from parts already known to fit their widths
 * (year 0-9999, the others 0-99, the fraction an integer below 10^decimals).
 */
function fastText(
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
  fraction: number,
  decimals: number,
): string {
  const head = String.fromCharCode(
    ZERO + Math.floor(year / 1000),
    ZERO + (Math.floor(year / 100) % 10),
    ZERO + (Math.floor(year / 10) % 10),
    ZERO + (year % 10),
    DASH,
    ZERO + Math.floor(month / 10),
    ZERO + (month % 10),
    DASH,
    ZERO + Math.floor(day / 10),
    ZERO + (day % 10),
    SPACE,
    ZERO + Math.floor(hour / 10),
    ZERO + (hour % 10),
    COLON,
    ZERO + Math.floor(minute / 10),
    ZERO + (minute % 10),
    COLON,
    ZERO + Math.floor(second / 10),
    ZERO + (second % 10),
  );
  if (decimals === 0) return head;
  if (decimals === 6)
    return (
      head +
      String.fromCharCode(
        DOT,
        ZERO + Math.floor(fraction / 100_000),
        ZERO + (Math.floor(fraction / 10_000) % 10),
        ZERO + (Math.floor(fraction / 1000) % 10),
        ZERO + (Math.floor(fraction / 100) % 10),
        ZERO + (Math.floor(fraction / 10) % 10),
        ZERO + (fraction % 10),
      )
    );
  let digits = '';
  for (let divisor = POW10[decimals - 1] as number; divisor >= 1; divisor /= 10)
    digits += String.fromCharCode(ZERO + (Math.floor(fraction / divisor) % 10));
  return `${head}.${digits}`;
}

/** The same text built with zongji's padding, for parts that may not fit (bytes no server writes). */
function slowText(
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
  fraction: number,
  decimals: number,
): string {
  return (
    `${padLikeZongji(year, 4)}-${padLikeZongji(month, 2)}-${padLikeZongji(day, 2)} ` +
    `${padLikeZongji(hour, 2)}:${padLikeZongji(minute, 2)}:${padLikeZongji(second, 2)}` +
    fractionTextLikeZongji(fraction, decimals)
  );
}

function fractionFits(fraction: number, decimals: number): boolean {
  return Number.isInteger(fraction) && fraction < (POW10[decimals] as number);
}

/**
 * A DATETIME2 value (MySQL 5.6+ layout, MariaDB's default since 10.1):
 * 40 bits big-endian (sign, year × 13 + month in 17 bits, day 5, hour 5,
 * minute 6, second 6), then the fraction. zongji ignores the sign bit.
 */
export function datetime2Text(bytes: Buffer, decimals: number): string {
  const high = bytes.readUInt32BE(0);
  const low = bytes[4] as number;
  const yearMonth = (high >>> 14) & 0x1ffff;
  const year = Math.floor(yearMonth / 13);
  const month = yearMonth % 13;
  const day = (high >>> 9) & 31;
  const hour = (high >>> 4) & 31;
  const minute = ((high & 15) << 2) | (low >>> 6);
  const second = low & 63;
  const fraction = decimals === 0 ? 0 : fractionOf(bytes, 5, decimals);
  // Month ≤ 12, day and hour ≤ 31, minute and second ≤ 63 by their widths: only the year and fraction can overflow.
  return year <= 9999 && fractionFits(fraction, decimals)
    ? fastText(year, month, day, hour, minute, second, fraction, decimals)
    : slowText(year, month, day, hour, minute, second, fraction, decimals);
}

/** The UTC calendar date of the last TIMESTAMP's day: rows of one statement mostly share it. */
let cachedDay = Number.NaN;
let cachedYear = 0;
let cachedMonth = 0;
let cachedDayOfMonth = 0;

/**
 * A TIMESTAMP2 value: seconds since the epoch (4 bytes big-endian, read
 * signed as zongji does), then the fraction; shown in UTC (the binlog
 * connection's `timezone: 'Z'`). Zero seconds with a zero fraction is the
 * zero timestamp `0000-00-00 00:00:00`.
 */
export function timestamp2Text(bytes: Buffer, decimals: number): string {
  const seconds = bytes.readInt32BE(0);
  const fraction = decimals === 0 ? 0 : fractionOf(bytes, 4, decimals);
  if (seconds === 0 && fraction === 0)
    return `0000-00-00 00:00:00${fractionTextLikeZongji(0, decimals)}`;
  if (seconds < 0 || !fractionFits(fraction, decimals))
    return timestampLikeZongji(seconds, fraction, decimals);
  const day = Math.floor(seconds / 86_400);
  if (day !== cachedDay) {
    const date = new Date(day * 86_400_000);
    cachedYear = date.getUTCFullYear();
    cachedMonth = date.getUTCMonth() + 1;
    cachedDayOfMonth = date.getUTCDate();
    cachedDay = day;
  }
  const time = seconds - day * 86_400;
  return fastText(
    cachedYear,
    cachedMonth,
    cachedDayOfMonth,
    Math.floor(time / 3600),
    Math.floor((time % 3600) / 60),
    time % 60,
    fraction,
    decimals,
  );
}

/**
 * zongji's way, for bytes no server writes: the milliseconds of the
 * fraction (which may then exceed a second) are added to a `Date`, whose
 * UTC parts are padded as zongji pads them.
 */
function timestampLikeZongji(seconds: number, fraction: number, decimals: number): string {
  let milliseconds = 0;
  if (decimals > 3) milliseconds = Math.floor(fraction / 10 ** (decimals - 3));
  else if (decimals > 0) milliseconds = fraction * 10 ** (3 - decimals);
  const date = new Date(seconds * 1000 + milliseconds);
  return slowText(
    date.getUTCFullYear(),
    date.getUTCMonth() + 1,
    date.getUTCDate(),
    date.getUTCHours(),
    date.getUTCMinutes(),
    date.getUTCSeconds(),
    fraction,
    decimals,
  );
}
