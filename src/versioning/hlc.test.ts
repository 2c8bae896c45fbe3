import fc from 'fast-check';

import { CdcError } from '../core/errors.js';
import {
  HybridClock,
  microsToMysqlTimestamp,
  mysqlTimestampToMicros,
  skewMicros,
  systemClockMicros,
} from './hlc.js';

// Failures print their seed; FC_SEED=<seed> replays exactly that run.
fc.configureGlobal({
  numRuns: 500,
  ...(process.env.FC_SEED === undefined ? {} : { seed: Number(process.env.FC_SEED) }),
});

/** A physical clock the test moves by hand. */
function manualClock(startMicros: number): { read: () => number; set: (micros: number) => void } {
  let now = startMicros;
  return {
    read: () => now,
    set: (micros) => {
      now = micros;
    },
  };
}

const NOV_2024 = 1_732_147_200_000_000;

describe('HybridClock', () => {
  it('follows the physical clock while it moves forward', () => {
    const physical = manualClock(NOV_2024);
    const clock = new HybridClock(physical.read);
    expect(clock.now()).toBe(NOV_2024);
    physical.set(NOV_2024 + 500);
    expect(clock.now()).toBe(NOV_2024 + 500);
  });

  it('keeps issuing increasing timestamps when the physical clock stands still or steps back', () => {
    const physical = manualClock(NOV_2024);
    const clock = new HybridClock(physical.read);
    const first = clock.now();
    expect(clock.now()).toBe(first + 1);
    physical.set(NOV_2024 - 60_000_000); // NTP stepped the clock back a minute
    expect(clock.now()).toBe(first + 2);
  });

  it('gives a write that replaces a version from a clock that is ahead a later timestamp (the HLC rule)', () => {
    // Region A's clock is 5 minutes ahead of region B's. B reads A's write and overwrites it.
    const writtenByA = NOV_2024 + 300_000_000;
    const clockB = new HybridClock(() => NOV_2024);
    // What B's wall clock alone would stamp: the overwrite would lose to what it replaced.
    expect(NOV_2024).toBeLessThan(writtenByA);
    expect(clockB.next(writtenByA)).toBe(writtenByA + 1);
    // and everything B issues afterwards stays above it
    expect(clockB.now()).toBe(writtenByA + 2);
  });

  it('stays above observed remote timestamps', () => {
    const clock = new HybridClock(() => NOV_2024);
    clock.observe(NOV_2024 + 10);
    expect(clock.now()).toBe(NOV_2024 + 11);
    clock.observe(NOV_2024); // an older one changes nothing
    expect(clock.now()).toBe(NOV_2024 + 12);
  });

  it('is strictly increasing and above everything it was asked to follow, whatever the physical clock does', () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant('now' as const), physical: fc.integer({ min: 0, max: 1e12 }) }),
      fc.record({
        kind: fc.constant('next' as const),
        physical: fc.integer({ min: 0, max: 1e12 }),
        after: fc.integer({ min: 0, max: 1e12 }),
      }),
      fc.record({
        kind: fc.constant('observe' as const),
        physical: fc.integer({ min: 0, max: 1e12 }),
        after: fc.integer({ min: 0, max: 1e12 }),
      }),
    );
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 40 }), (steps) => {
        const physical = manualClock(0);
        const clock = new HybridClock(physical.read);
        let lastIssued = -1;
        let floor = -1; // the largest timestamp observed or issued so far
        for (const s of steps) {
          physical.set(s.physical);
          if (s.kind === 'observe') {
            clock.observe(s.after);
            floor = Math.max(floor, s.after);
            continue;
          }
          const issued = s.kind === 'now' ? clock.now() : clock.next(s.after);
          if (s.kind === 'next') {
            expect(issued).toBeGreaterThan(s.after);
          }
          expect(issued).toBeGreaterThan(lastIssued);
          expect(issued).toBeGreaterThan(floor);
          expect(issued).toBeGreaterThanOrEqual(s.physical);
          lastIssued = issued;
          floor = issued;
        }
      }),
    );
  });

  it('refuses physical readings and timestamps that are not exact microseconds', () => {
    expect(() => new HybridClock(() => 1.5).now()).toThrow(RangeError);
    expect(() => new HybridClock(() => -1).now()).toThrow(RangeError);
    expect(() => new HybridClock(() => 2 ** 53).now()).toThrow(RangeError);
    const clock = new HybridClock(() => 0);
    expect(() => clock.observe(Number.NaN)).toThrow(RangeError);
    // 2^53 - 1 can be observed, but nothing exact comes after it
    expect(() => clock.next(Number.MAX_SAFE_INTEGER)).toThrow(RangeError);
  });

  it('reads the system clock in microseconds by default', () => {
    const before = Date.now() * 1000;
    const issued = new HybridClock().now();
    expect(Number.isSafeInteger(issued)).toBe(true);
    expect(issued).toBeGreaterThanOrEqual(before);
    expect(issued).toBeLessThanOrEqual(systemClockMicros() + 1);
  });
});

describe('skewMicros', () => {
  it('is how far an incoming timestamp is ahead of local time, and 0 when it is not ahead', () => {
    expect(skewMicros(NOV_2024 + 2_500_000, NOV_2024)).toBe(2_500_000);
    expect(skewMicros(NOV_2024, NOV_2024)).toBe(0);
    expect(skewMicros(NOV_2024 - 1_000_000, NOV_2024)).toBe(0); // replication lag, not skew
  });
});

describe('MySQL TIMESTAMP(6) text', () => {
  it.each([
    [0, '1970-01-01 00:00:00.000000'],
    [1, '1970-01-01 00:00:00.000001'],
    [1_732_147_200_123_456, '2024-11-21 00:00:00.123456'],
    [951_782_400_999_999, '2000-02-29 00:00:00.999999'],
    [2_147_483_647_999_999, '2038-01-19 03:14:07.999999'],
    [Number.MAX_SAFE_INTEGER, '2255-06-05 23:47:34.740991'],
  ])('formats %d µs as %s and parses it back', (micros, text) => {
    expect(microsToMysqlTimestamp(micros)).toBe(text);
    expect(mysqlTimestampToMicros(text)).toBe(micros);
  });

  it('round-trips every microsecond up to 2^53 exactly', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (micros) => {
        expect(mysqlTimestampToMicros(microsToMysqlTimestamp(micros))).toBe(micros);
      }),
    );
  });

  it('reads shorter fractions as decimal fractions and accepts an ISO "T"', () => {
    expect(mysqlTimestampToMicros('2024-11-21 00:00:00')).toBe(1_732_147_200_000_000);
    expect(mysqlTimestampToMicros('2024-11-21 00:00:00.5')).toBe(1_732_147_200_500_000);
    expect(mysqlTimestampToMicros('2024-11-21T00:00:00.000123')).toBe(1_732_147_200_000_123);
  });

  it.each([
    ['2024-11-21', 'expected'],
    ['2024-11-21 00:00:00.1234567', 'expected'],
    ['2024-11-21 00:00:00Z', 'expected'],
    [' 2024-11-21 00:00:00', 'expected'],
    ['0000-00-00 00:00:00.000000', 'before 1970'],
    ['1969-12-31 23:59:59.999999', 'before 1970'],
    ['2023-02-29 00:00:00.000000', 'no such calendar date'],
    ['2024-13-01 00:00:00.000000', 'no such calendar date'],
    ['2024-11-21 24:00:00.000000', 'time of day'],
    ['2024-11-21 23:59:60.000000', 'time of day'],
    ['2255-06-05 23:47:34.740992', 'beyond 2^53'],
  ])('rejects %j (%s) as a non-retriable VERSION_INVALID error', (text, why) => {
    let caught: unknown;
    try {
      mysqlTimestampToMicros(text);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(CdcError);
    expect(caught).toMatchObject({ code: 'VERSION_INVALID', retriable: false });
    expect((caught as Error).message).toContain(why);
  });

  it('refuses to format values that are not exact microseconds', () => {
    expect(() => microsToMysqlTimestamp(-1)).toThrow(RangeError);
    expect(() => microsToMysqlTimestamp(0.5)).toThrow(RangeError);
    expect(() => microsToMysqlTimestamp(2 ** 53)).toThrow(RangeError);
  });
});
