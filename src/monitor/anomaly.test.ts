import { describe, expect, it } from '@jest/globals';

import { seededRandom, testSeed } from '../../test/support/random.js';
import {
  AnomalyDetector,
  LAG_DETECTOR,
  THROUGHPUT_DETECTOR,
  type AnomalyDetectorOptions,
} from './anomaly.js';

const SEEDS = 20;

/** Gaussian noise from a seeded uniform source (Box-Muller). */
function gaussian(random: () => number): number {
  const u = Math.max(random(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

interface Run {
  episodes: number;
  /** Index of the first sample that started an episode, or -1. */
  firstAlarm: number;
  anomalousAtEnd: boolean;
}

function run(options: AnomalyDetectorOptions, series: readonly number[]): Run {
  const detector = new AnomalyDetector(options);
  let episodes = 0;
  let firstAlarm = -1;
  series.forEach((value, i) => {
    const verdict = detector.observe(value);
    if (verdict.started) {
      episodes += 1;
      if (firstAlarm < 0) firstAlarm = i;
    }
  });
  return { episodes, firstAlarm, anomalousAtEnd: detector.anomalous };
}

/** Lag around 150 ms with 30 ms of noise: a healthy pipeline sampled every second. */
function steadyLag(random: () => number, n: number): number[] {
  return Array.from({ length: n }, () => Math.max(0, 0.15 + 0.03 * gaussian(random)));
}

function forEachSeed(check: (random: () => number) => void): void {
  const base = testSeed();
  for (let i = 0; i < SEEDS; i += 1) {
    const seed = base + i;
    try {
      check(seededRandom(seed));
    } catch (error) {
      throw new Error(`failed with CDC_TEST_SEED=${seed}: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }
}

describe('AnomalyDetector on lag', () => {
  it('stays quiet on a steady series', () => {
    forEachSeed((random) => {
      expect(run(LAG_DETECTOR, steadyLag(random, 1800)).episodes).toBe(0);
    });
  });

  it('flags a step change within a few samples and clears after it ends', () => {
    forEachSeed((random) => {
      const series = [
        ...steadyLag(random, 200),
        ...steadyLag(random, 60).map((v) => v + 3),
        ...steadyLag(random, 100),
      ];
      const result = run(LAG_DETECTOR, series);
      expect(result.episodes).toBe(1);
      expect(result.firstAlarm).toBeGreaterThanOrEqual(200);
      expect(result.firstAlarm).toBeLessThan(200 + LAG_DETECTOR.recentSamples + 3);
      expect(result.anomalousAtEnd).toBe(false);
    });
  });

  it('flags a slow ramp that never jumps, well before it reaches a 30 s threshold', () => {
    forEachSeed((random) => {
      // +20 ms per second: after 5 minutes the lag is 6 s, each step hidden in the noise.
      const ramp = steadyLag(random, 600).map((v, i) => (i < 300 ? v : v + (i - 300) * 0.02));
      const result = run(LAG_DETECTOR, ramp);
      expect(result.episodes).toBeGreaterThanOrEqual(1);
      expect(result.firstAlarm).toBeGreaterThan(300);
      // The ramp must be caught while it is still small (under 2 s of added lag).
      expect(result.firstAlarm).toBeLessThan(300 + 100);
    });
  });

  it('does not storm on heavy-tailed noise with isolated spikes', () => {
    forEachSeed((random) => {
      const series = steadyLag(random, 1800).map((v) =>
        random() < 0.02 ? v + 2 + random() * 3 : v,
      );
      expect(run(LAG_DETECTOR, series).episodes).toBeLessThanOrEqual(1);
    });
  });

  it('ignores departures below the absolute floor', () => {
    forEachSeed((random) => {
      // A very quiet baseline: 10 ms lag, 1 ms noise; a 0.3 s rise is not worth a page.
      const quiet = Array.from({ length: 400 }, (_, i) =>
        Math.max(0, 0.01 + 0.001 * gaussian(random) + (i >= 200 ? 0.3 : 0)),
      );
      expect(run(LAG_DETECTOR, quiet).episodes).toBe(0);
    });
  });

  it('learns a lasting new level instead of alarming forever', () => {
    forEachSeed((random) => {
      const series = [
        ...steadyLag(random, 200),
        ...steadyLag(random, LAG_DETECTOR.relearnAfterSamples + 200).map((v) => v + 3),
      ];
      const result = run(LAG_DETECTOR, series);
      expect(result.episodes).toBe(1);
      expect(result.anomalousAtEnd).toBe(false);
    });
  });

  it('says nothing during warm-up and ignores non-finite samples', () => {
    const detector = new AnomalyDetector(LAG_DETECTOR);
    for (let i = 0; i < LAG_DETECTOR.warmupSamples - 1; i += 1)
      expect(detector.observe(i % 2 === 0 ? 0.1 : 50).anomalous).toBe(false);
    expect(detector.observe(Number.NaN).anomalous).toBe(false);
  });
});

describe('AnomalyDetector on throughput', () => {
  function steadyRate(random: () => number, n: number, level = 1000): number[] {
    return Array.from({ length: n }, () => Math.max(0, level + 50 * gaussian(random)));
  }

  it('flags a drop but not a rise', () => {
    forEachSeed((random) => {
      const drop = [...steadyRate(random, 200), ...steadyRate(random, 50, 200)];
      expect(run(THROUGHPUT_DETECTOR, drop).episodes).toBe(1);
      const rise = [...steadyRate(random, 200), ...steadyRate(random, 50, 3000)];
      expect(run(THROUGHPUT_DETECTOR, rise).episodes).toBe(0);
    });
  });

  it('stays quiet on a noisy steady rate', () => {
    forEachSeed((random) => {
      expect(run(THROUGHPUT_DETECTOR, steadyRate(random, 1800)).episodes).toBe(0);
    });
  });
});
