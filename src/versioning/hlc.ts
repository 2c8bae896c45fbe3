import { CdcError } from '../core/errors.js';

/**
 * Hybrid-logical timestamps, as integer microseconds since the Unix epoch.
 *
 * Microseconds because MySQL's `TIMESTAMP(6)` stores exactly that, and the
 * version a row carries must survive a round trip through `_cdc_ts` unchanged
 * (DESIGN.md §3). Plain numbers rather than bigint: they are exact up to 2^53
 * µs (the year 2255), far past `TIMESTAMP`'s own end in 2038, and they keep the
 * JSON on the wire a plain number.
 */

/** A source of physical time in integer microseconds since the epoch. Injected so tests can skew it. */
export type PhysicalClock = () => number;

/**
 * The machine's wall clock in microseconds. `Date.now()` only has millisecond
 * resolution; the logical part of {@link HybridClock} supplies distinct
 * microseconds within one millisecond, and the wall clock (unlike
 * `performance.now()`) follows NTP corrections, which is what other regions
 * compare against.
 */
export const systemClockMicros: PhysicalClock = () => Date.now() * 1000;

/** Whether `value` can be a timestamp here: a non-negative integer that a double holds exactly. */
export function isMicros(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

// In-process values that are not timestamps are programmer errors, hence
// RangeError (fatal); text from MySQL or the wire is checked where it is parsed.
function assertMicros(value: number, what: string): number {
  if (!isMicros(value)) {
    throw new RangeError(
      `${what} must be a non-negative safe integer of microseconds, got ${String(value)}`,
    );
  }
  return value;
}

/**
 * Issues hybrid-logical timestamps: close to the physical clock, but strictly
 * increasing and never below any timestamp it has observed.
 *
 * This is DESIGN.md §2's HLC rule in executable form: a write that replaces a
 * version with timestamp `t` must get a timestamp greater than `t` even when
 * this machine's wall clock is behind the machine that wrote `t`; otherwise
 * the causally later write would lose last-writer-wins to the write it
 * replaced, and regions would diverge.
 */
export class HybridClock {
  private lastMicros = -1;

  constructor(private readonly physical: PhysicalClock = systemClockMicros) {}

  /** A fresh timestamp: the physical time, or one microsecond past the last one issued or observed if that is later. */
  now(): number {
    const physical = assertMicros(this.physical(), 'the physical clock reading');
    const issued = assertMicros(Math.max(physical, this.lastMicros + 1), 'the next timestamp');
    this.lastMicros = issued;
    return issued;
  }

  /**
   * Takes a timestamp seen elsewhere (an incoming event, a row's version) into
   * account, so every later {@link HybridClock.now} is greater than it. How far
   * ahead it was is {@link skewMicros}' business; the clock absorbs it either
   * way, because refusing would break the HLC rule.
   */
  observe(remoteMicros: number): void {
    assertMicros(remoteMicros, 'an observed timestamp');
    this.lastMicros = Math.max(this.lastMicros, remoteMicros);
  }

  /** A fresh timestamp strictly greater than `afterMicros`: the timestamp for a write that replaces a version stamped `afterMicros`. */
  next(afterMicros: number): number {
    this.observe(afterMicros);
    return this.now();
  }
}

/**
 * How far an incoming timestamp is ahead of local physical time, in µs, or 0
 * when it is not ahead. An event normally arrives with a timestamp in the past
 * (that is replication lag, measured elsewhere); one from the future means the
 * two clocks disagree, which the monitor counts because HLCs absorb skew
 * silently.
 */
export function skewMicros(incomingMicros: number, physicalNowMicros: number): number {
  assertMicros(incomingMicros, 'the incoming timestamp');
  assertMicros(physicalNowMicros, 'the physical time');
  return Math.max(0, incomingMicros - physicalNowMicros);
}

const MICROS_PER_SECOND = 1_000_000;

function pad(value: number, width: number): string {
  return String(value).padStart(width, '0');
}

/**
 * Formats microseconds as a MySQL `TIMESTAMP(6)`/`DATETIME(6)` literal in UTC,
 * `YYYY-MM-DD HH:MM:SS.ffffff`. The session that reads or writes it must use
 * `time_zone = '+00:00'`, or MySQL shifts `TIMESTAMP` values by its own zone.
 */
export function microsToMysqlTimestamp(micros: number): string {
  assertMicros(micros, 'the timestamp');
  // Whole seconds go through Date (exact: they are a multiple of 1000 ms);
  // the fraction never does, since Date would truncate it to milliseconds.
  const seconds = Math.floor(micros / MICROS_PER_SECOND);
  const fraction = micros - seconds * MICROS_PER_SECOND;
  // The applier formats one per written row, and rows of a chunk mostly share their second.
  if (seconds !== lastSecond.seconds) {
    const date = new Date(seconds * 1000);
    lastSecond.seconds = seconds;
    lastSecond.text =
      `${pad(date.getUTCFullYear(), 4)}-${pad(date.getUTCMonth() + 1, 2)}-${pad(date.getUTCDate(), 2)} ` +
      `${pad(date.getUTCHours(), 2)}:${pad(date.getUTCMinutes(), 2)}:${pad(date.getUTCSeconds(), 2)}`;
  }
  return `${lastSecond.text}.${pad(fraction, 6)}`;
}

const lastSecond = { seconds: Number.NaN, text: '' };

const MYSQL_TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/;

function invalidTimestamp(text: string, why: string): CdcError {
  return new CdcError(`invalid timestamp ${JSON.stringify(text.slice(0, 64))}: ${why}`, {
    code: 'VERSION_INVALID',
    retriable: false,
  });
}

/**
 * Parses a MySQL `TIMESTAMP(6)`/`DATETIME(6)` literal in UTC (as the binlog
 * and mysql2 return it with `dateStrings: true`) into exact microseconds.
 * Fewer than six fractional digits are accepted (`.5` is 500000 µs) because
 * columns of lower precision print fewer. The text comes from outside the
 * process, so anything else is a non-retriable `VERSION_INVALID` error.
 */
export function mysqlTimestampToMicros(text: string): number {
  const match = MYSQL_TIMESTAMP.exec(text);
  if (match === null) {
    throw invalidTimestamp(text, "expected 'YYYY-MM-DD HH:MM:SS[.ffffff]'");
  }
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const fraction = Number((match[7] ?? '').padEnd(6, '0'));
  if (year < 1970) {
    throw invalidTimestamp(text, 'before 1970-01-01, outside the range of timestamps');
  }
  if (hour > 23 || minute > 59 || second > 59) {
    throw invalidTimestamp(text, 'time of day out of range');
  }
  const milliseconds = Date.UTC(year, month - 1, day, hour, minute, second);
  // Date.UTC rolls 02-30 over into March; a date that does not read back the
  // same does not exist.
  const check = new Date(milliseconds);
  if (check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day) {
    throw invalidTimestamp(text, 'no such calendar date');
  }
  const micros = (milliseconds / 1000) * MICROS_PER_SECOND + fraction;
  if (!Number.isSafeInteger(micros)) {
    throw invalidTimestamp(text, 'beyond 2^53 microseconds (the year 2255)');
  }
  return micros;
}
