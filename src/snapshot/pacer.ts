import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Spaces out chunks to at most `perSecond` per second (0 = no limit), so a
 * snapshot or verify of a large table adds a bounded, predictable load on a
 * primary that keeps serving the application. Steady pacing rather than a
 * token bucket: a burst is exactly what the limit is there to prevent.
 */
export class Pacer {
  #next = 0;

  constructor(
    private readonly perSecond: number,
    private readonly now: () => number = () => performance.now(),
    private readonly wait: (ms: number) => Promise<unknown> = (ms) => sleep(ms),
  ) {
    if (!(perSecond >= 0) || !Number.isFinite(perSecond)) {
      throw new RangeError(`a rate must be a non-negative number, got ${String(perSecond)}`);
    }
  }

  /** How long the next chunk must wait, in ms, and books its slot. */
  reserve(): number {
    if (this.perSecond === 0) return 0;
    const now = this.now();
    const start = Math.max(now, this.#next);
    this.#next = start + 1000 / this.perSecond;
    return start - now;
  }

  /** Waits for the next chunk's slot. */
  async take(): Promise<void> {
    const delay = this.reserve();
    if (delay > 0) await this.wait(delay);
  }
}
