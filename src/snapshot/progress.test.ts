import { describe, expect, it } from '@jest/globals';
import { formatDuration, RateMeter } from './progress.js';

describe('progress arithmetic', () => {
  it('measures the rate over a sliding window and derives the ETA', () => {
    const meter = new RateMeter(10_000);
    expect(meter.rate()).toBe(0);
    expect(meter.etaSeconds(100)).toBeUndefined();
    meter.record(0, 0);
    meter.record(1_000, 500);
    meter.record(2_000, 1_000);
    expect(meter.rate()).toBe(500);
    expect(meter.etaSeconds(3_000)).toBe(4);
    // Old samples fall out of the window: the rate follows the recent pace.
    meter.record(20_000, 1_000);
    meter.record(21_000, 1_100);
    expect(meter.rate()).toBe(100);
    expect(meter.etaSeconds(500)).toBe(0);
  });

  it('formats durations for people', () => {
    expect(formatDuration(undefined)).toBe('?');
    expect(formatDuration(Number.POSITIVE_INFINITY)).toBe('?');
    expect(formatDuration(42.4)).toBe('42s');
    expect(formatDuration(185)).toBe('3m05s');
    expect(formatDuration(3_725)).toBe('1h02m');
  });
});
