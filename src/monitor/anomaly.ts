/**
 * Online anomaly detection for one metric series (lag or throughput of one
 * region pair), cheap enough to run every sample for every pair.
 *
 * The baseline is robust on purpose:
 * - its level is the median of the recent normal samples, so a few spikes do
 *   not move it;
 * - its noise is estimated from the median absolute first difference, which
 *   a slow trend barely changes, so a ramp stands out against the noise
 *   instead of inflating it (a plain MAD of the window would grow with the
 *   ramp and hide it);
 * - the current value is the median of the last few samples, so one outlier
 *   is not an episode.
 * Samples taken during an episode are kept out of the baseline, so a slow
 * drift cannot teach the detector that the drift is normal; after
 * `relearnAfterSamples` of one episode the new level is accepted instead
 * (the fixed lag threshold keeps alerting if it is too high).
 * Hysteresis (several samples to start, more to end) prevents alarm storms.
 */

export type Direction = 'up' | 'down' | 'both';

export interface AnomalyDetectorOptions {
  /** Which departures count: lag matters when it rises, throughput when it drops. */
  readonly direction: Direction;
  /** Normal samples kept for the baseline. */
  readonly baselineSamples: number;
  /** No verdict before this many normal samples. */
  readonly warmupSamples: number;
  /** The current value is the median of this many latest samples. */
  readonly recentSamples: number;
  /** Robust z-score that counts as departing. */
  readonly threshold: number;
  /** Robust z-score below which a departure counts as over. */
  readonly clearThreshold: number;
  /** Departures smaller than this (in the series' unit) never count, however quiet the baseline. */
  readonly absoluteFloor: number;
  /** Departures smaller than this share of the baseline level never count. */
  readonly relativeFloor: number;
  /** Consecutive departing samples that start an episode. */
  readonly triggerSamples: number;
  /** Consecutive calm samples that end an episode. */
  readonly clearSamples: number;
  /** An episode this long becomes the new normal. */
  readonly relearnAfterSamples: number;
}

/** Settings for end-to-end lag in seconds, sampled about once a second. */
export const LAG_DETECTOR: AnomalyDetectorOptions = {
  direction: 'up',
  baselineSamples: 300,
  warmupSamples: 30,
  recentSamples: 5,
  threshold: 6,
  clearThreshold: 3,
  absoluteFloor: 0.5,
  relativeFloor: 0.5,
  triggerSamples: 3,
  clearSamples: 10,
  relearnAfterSamples: 900,
};

/** Settings for applied events per second, sampled about once a second. */
export const THROUGHPUT_DETECTOR: AnomalyDetectorOptions = {
  direction: 'down',
  baselineSamples: 300,
  warmupSamples: 30,
  recentSamples: 5,
  threshold: 6,
  clearThreshold: 3,
  absoluteFloor: 1,
  relativeFloor: 0.5,
  triggerSamples: 3,
  clearSamples: 10,
  relearnAfterSamples: 900,
};

export interface AnomalyVerdict {
  /** The series is currently in an episode. */
  readonly anomalous: boolean;
  /** This sample started an episode (log once). */
  readonly started: boolean;
  /** This sample ended an episode. */
  readonly ended: boolean;
  /** Median of the latest samples. */
  readonly current: number;
  /** Median of the normal baseline. */
  readonly baseline: number;
  /** Signed robust z-score of `current` against the baseline (0 during warm-up). */
  readonly score: number;
}

export class AnomalyDetector {
  readonly #normal: number[] = [];
  readonly #recent: number[] = [];
  #anomalous = false;
  #departing = 0;
  #calm = 0;
  #episodeLength = 0;
  readonly #episodeSamples: number[] = [];

  constructor(private readonly options: AnomalyDetectorOptions) {}

  get anomalous(): boolean {
    return this.#anomalous;
  }

  observe(value: number): AnomalyVerdict {
    const o = this.options;
    if (!Number.isFinite(value)) return this.#verdict(false, false, NaN, NaN, 0);
    push(this.#recent, value, o.recentSamples);
    const current = median(this.#recent);
    if (this.#normal.length < o.warmupSamples) {
      push(this.#normal, value, o.baselineSamples);
      return this.#verdict(false, false, current, median(this.#normal), 0);
    }
    const baseline = median(this.#normal);
    const score = this.#score(current, baseline);
    const departing = this.#isDeparture(score, current - baseline, baseline, o.threshold);
    const calm = !this.#isDeparture(score, current - baseline, baseline, o.clearThreshold);
    let started = false;
    let ended = false;
    if (!this.#anomalous) {
      this.#departing = departing ? this.#departing + 1 : 0;
      if (this.#departing >= o.triggerSamples) {
        this.#anomalous = true;
        started = true;
        this.#calm = 0;
        this.#episodeLength = 0;
        this.#episodeSamples.length = 0;
      } else if (!departing) {
        push(this.#normal, value, o.baselineSamples);
      }
    } else {
      this.#episodeLength += 1;
      push(this.#episodeSamples, value, o.baselineSamples);
      this.#calm = calm ? this.#calm + 1 : 0;
      if (this.#calm >= o.clearSamples || this.#episodeLength >= o.relearnAfterSamples) {
        if (this.#episodeLength >= o.relearnAfterSamples) {
          // A lasting change is the new normal: learn it instead of alarming forever.
          this.#normal.length = 0;
          this.#normal.push(...this.#episodeSamples);
        }
        this.#anomalous = false;
        this.#departing = 0;
        ended = true;
      }
    }
    return this.#verdict(started, ended, current, baseline, score);
  }

  #score(current: number, baseline: number): number {
    const diffs: number[] = [];
    for (let i = 1; i < this.#normal.length; i += 1)
      diffs.push(Math.abs((this.#normal[i] as number) - (this.#normal[i - 1] as number)));
    // For white noise the median |x_t - x_{t-1}| is about 0.954 σ; 1.048 turns it into σ.
    const noise = median(diffs) * 1.048;
    const o = this.options;
    const scale = Math.max(noise, (o.absoluteFloor / o.threshold) * 0.5, Number.EPSILON);
    return (current - baseline) / scale;
  }

  #isDeparture(score: number, delta: number, baseline: number, threshold: number): boolean {
    const o = this.options;
    const signed = o.direction === 'up' ? score : o.direction === 'down' ? -score : Math.abs(score);
    const size = o.direction === 'up' ? delta : o.direction === 'down' ? -delta : Math.abs(delta);
    // The floors scale with the threshold so the clear test is looser than the trigger test.
    const share = threshold / o.threshold;
    return (
      signed > threshold &&
      size > o.absoluteFloor * share &&
      size > Math.abs(baseline) * o.relativeFloor * share
    );
  }

  #verdict(
    started: boolean,
    ended: boolean,
    current: number,
    baseline: number,
    score: number,
  ): AnomalyVerdict {
    return { anomalous: this.#anomalous, started, ended, current, baseline, score };
  }
}

function push(buffer: number[], value: number, capacity: number): void {
  buffer.push(value);
  if (buffer.length > capacity) buffer.shift();
}

function median(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}
