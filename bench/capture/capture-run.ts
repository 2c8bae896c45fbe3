import type { Admin, Kafka } from 'kafkajs';
import { CAPTURE_CHECKPOINT_KEY } from '../../src/capture/capture-stage.js';
import { positionTopic } from '../../src/capture/position-log.js';
import type { RuntimeOptions } from '../../src/config/compile.js';
import type { Logger } from '../../src/core/logger.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { createCheckpointStore } from '../../src/state/index.js';
import { partitionHighs, rowsBetween } from '../support/kafka.js';
import type { CpuMeter } from '../support/machine.js';

export interface CaptureRunOptions {
  options: RuntimeOptions;
  logger: Logger;
  /** Where capture resumes: the position just before the backlog. */
  startPosition: string;
  /** `schema.table`, as the `table` label of `cdc_events_captured_total`. */
  tableLabel: string;
  topic: string;
  rows: number;
  admin: Admin;
  /** Reads the topic back to count the rows in it. */
  kafka: Kafka;
  meter: () => CpuMeter;
  /** Give up when no row was acknowledged for this long. */
  stallTimeoutMs: number;
  /** Runs around the measured section (e.g. a CPU profiler). */
  around?: { before: () => Promise<void>; after: () => Promise<void> };
}

export interface CaptureRunResult {
  rows: number;
  /** From `Daemon.start()` to the N-th acknowledged row. */
  elapsedMs: number;
  /** The part of it spent in `start()` (server checks, topic check, producer connect). */
  startMs: number;
  /** Messages that arrived in the topic, from its high watermarks (envelope v2: several rows each). */
  kafkaMessages: number;
  /** Rows those messages hold, read back: `rows`, or more if a send was retried. */
  kafkaRows: number;
  cpuMs: Record<string, number>;
}

async function capturedRows(daemon: Daemon, tableLabel: string): Promise<number> {
  const metric = await daemon.metrics.eventsCapturedTotal.get();
  return metric.values
    .filter((v) => v.labels.table === tableLabel)
    .reduce((total, v) => total + v.value, 0);
}

const POLL_MS = 5;

/**
 * One measurement of the real capture path: a daemon resumes from a saved
 * checkpoint just before a backlog of N rows and the clock runs from
 * `start()` until `cdc_events_captured_total` (incremented only after Kafka
 * acknowledged a batch) reaches N. The topic's high watermarks confirm the
 * messages are really there.
 */
export async function captureRun(run: CaptureRunOptions): Promise<CaptureRunResult> {
  const { options } = run;
  const store = await createCheckpointStore(options.checkpointStore, { logger: run.logger });
  try {
    await store.save(CAPTURE_CHECKPOINT_KEY, {
      position: run.startPosition,
      savedAtMs: Date.now(),
    });
  } finally {
    await store.close();
  }
  // Capture resumes from the newer of the store and the position kept in Kafka
  // (never from an older one): rewinding for the next run means dropping the latter.
  const positions = positionTopic(options.kafka.topicPrefix, options.region);
  if ((await run.admin.listTopics()).includes(positions))
    await run.admin.deleteTopics({ topics: [positions] });
  const before = await partitionHighs(run.admin, run.topic);

  const daemon = new Daemon({ options, logger: run.logger, drainTimeoutMs: 120_000 });
  let failure: Error | undefined;
  void daemon.failed.then((error) => (failure = error));
  let elapsedMs = 0;
  let startMs = 0;
  let cpuMs: Record<string, number> = {};
  try {
    await run.around?.before();
    const meter = run.meter();
    const started = performance.now();
    await daemon.start();
    startMs = performance.now() - started;
    let seen = 0;
    let progressAt = performance.now();
    for (;;) {
      const now = await capturedRows(daemon, run.tableLabel);
      if (now >= run.rows) break;
      if (failure !== undefined) throw failure;
      if (now > seen) {
        seen = now;
        progressAt = performance.now();
      } else if (performance.now() - progressAt > run.stallTimeoutMs) {
        throw new Error(
          `capture stalled: ${seen} of ${run.rows} rows acknowledged, none for ${run.stallTimeoutMs} ms`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    elapsedMs = performance.now() - started;
    cpuMs = meter.read();
    await run.around?.after();
  } finally {
    await daemon.stop();
  }
  const rows = await capturedRows(daemon, run.tableLabel);
  const after = await partitionHighs(run.admin, run.topic);
  const kafkaMessages = Number(
    [...after].reduce((total, [p, high]) => total + high - (before.get(p) ?? 0n), 0n),
  );
  const kafkaRows = await rowsBetween(run.kafka, run.topic, before, after);
  // More rows than acknowledged would be duplicates from retried sends (allowed: delivery is
  // at-least-once) and is reported; fewer means the counter lied, which must stop the bench.
  if (rows !== run.rows || kafkaRows < run.rows) {
    throw new Error(
      `capture run did not publish the backlog: ${rows} acknowledged, ${kafkaRows} rows in ${kafkaMessages} messages in Kafka, expected ${run.rows}`,
    );
  }
  return { rows, elapsedMs, startMs, kafkaMessages, kafkaRows, cpuMs };
}
