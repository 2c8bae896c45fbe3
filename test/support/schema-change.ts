import type { Daemon } from '../../src/daemon/daemon.js';

/**
 * Helpers for schema-change tests: a region's application writes and its
 * DDL take turns (as one application connection would), and what an
 * operator checks at the end: nothing held, no dead letter.
 */

/** One at a time per region: a DDL never races the statement an application built for the old schema. */
export class RegionLock {
  #tail: Promise<void> = Promise.resolve();

  run<T>(body: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(body);
    this.#tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

/** Partitions a daemon holds for schema skew right now (`cdc_apply_held`), by `table reason`. */
export async function heldNow(daemon: Daemon): Promise<Record<string, number>> {
  const metric = await daemon.metrics.applyHeld.get();
  const held: Record<string, number> = {};
  for (const v of metric.values)
    if (v.value > 0) held[`${String(v.labels.table)} ${String(v.labels.reason)}`] = v.value;
  return held;
}
