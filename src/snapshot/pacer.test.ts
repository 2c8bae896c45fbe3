import { describe, expect, it } from '@jest/globals';
import { Pacer } from './pacer.js';

describe('Pacer', () => {
  it('spaces chunks evenly at the given rate', () => {
    let now = 1000;
    const pacer = new Pacer(4, () => now);
    expect([pacer.reserve(), pacer.reserve(), pacer.reserve()]).toEqual([0, 250, 500]);
    now = 2000; // idle time is not saved up for a burst
    expect([pacer.reserve(), pacer.reserve()]).toEqual([0, 250]);
  });

  it('never waits without a limit and refuses a bad rate', () => {
    const pacer = new Pacer(0, () => 0);
    expect([pacer.reserve(), pacer.reserve()]).toEqual([0, 0]);
    expect(() => new Pacer(-1)).toThrow(RangeError);
    expect(() => new Pacer(Number.NaN)).toThrow(RangeError);
  });

  it('waits for the reserved slot', async () => {
    const waits: number[] = [];
    const pacer = new Pacer(
      10,
      () => 0,
      (ms) => {
        waits.push(ms);
        return Promise.resolve();
      },
    );
    await pacer.take();
    await pacer.take();
    expect(waits).toEqual([100]);
  });
});
