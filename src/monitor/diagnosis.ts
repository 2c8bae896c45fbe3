/**
 * Which stage most likely causes a region pair's lag: the first thing an
 * operator needs when an anomaly fires. It compares what the target daemon
 * sees (messages waiting in Kafka for it, how long its apply transactions
 * take) with what the source daemon reports about its capture.
 *
 * - Kafka holds a backlog for the pair → the changes arrived and wait for
 *   apply: slow local MySQL when apply transactions take longer than usual,
 *   otherwise an applier that does not keep up (paused, under-parallelised,
 *   CPU-bound).
 * - Kafka holds nothing → the changes have not arrived: capture in the
 *   source region is behind or down; if capture is current, the delay is in
 *   between (produce/fetch latency, a rebalance).
 */

export type LagStage = 'capture' | 'kafka' | 'apply';

/** What the source daemon reports about its capture, read from its `/metrics`. */
export type SourceCaptureEvidence =
  | {
      readonly reachable: true;
      readonly lagSeconds: number | undefined;
      readonly positionLagBytes: number | undefined;
    }
  | { readonly reachable: false; readonly error: string };

export interface LagEvidence {
  readonly source: string;
  readonly target: string;
  readonly lagSeconds: number;
  /** Messages from the source waiting in Kafka for this target (all partitions); undefined when unknown. */
  readonly backlogMessages: number | undefined;
  /** The backlog usually seen for the pair. */
  readonly backlogBaseline: number;
  /** Recent apply transaction time for the pair. */
  readonly applyBatchSeconds: number;
  /** The apply transaction time usually seen. */
  readonly applyBatchBaselineSeconds: number;
  /** Undefined when the source's metrics were not consulted. */
  readonly sourceCapture: SourceCaptureEvidence | undefined;
}

export interface Diagnosis {
  readonly stage: LagStage;
  readonly explanation: string;
}

/**
 * A backlog smaller than this is what a healthy pipeline holds between
 * fetches; above it, a backlog counts when it is also three times the usual.
 */
const BACKLOG_FLOOR_MESSAGES = 10;
/** Capture this far behind its own binlog explains end-to-end lag by itself. */
const CAPTURE_BEHIND_SECONDS = 2;
const CAPTURE_BEHIND_BYTES = 1024 * 1024;

export function diagnoseLag(e: LagEvidence): Diagnosis {
  const pair = `${e.source} → ${e.target}`;
  const lag = `${e.lagSeconds.toFixed(1)} s`;
  if (
    e.backlogMessages !== undefined &&
    e.backlogMessages > Math.max(BACKLOG_FLOOR_MESSAGES, 3 * e.backlogBaseline)
  ) {
    const slower =
      e.applyBatchSeconds > 0.05 && e.applyBatchSeconds > 2 * e.applyBatchBaselineSeconds;
    return {
      stage: 'apply',
      explanation: slower
        ? `${pair} lags ${lag}: ${e.backlogMessages} messages wait in Kafka and apply transactions in ${e.target} take ${ms(e.applyBatchSeconds)} (usually ${ms(e.applyBatchBaselineSeconds)}): the local MySQL of ${e.target} is slow (locks, I/O, replica load)`
        : `${pair} lags ${lag}: ${e.backlogMessages} messages wait in Kafka while apply transactions in ${e.target} take their usual ${ms(e.applyBatchSeconds)}: the applier of ${e.target} is not keeping up (paused, too few partitions applied concurrently, or out of CPU)`,
    };
  }
  const waiting =
    e.backlogMessages === undefined
      ? 'the Kafka backlog is unknown'
      : `only ${e.backlogMessages} messages wait in Kafka`;
  const capture = e.sourceCapture;
  if (capture !== undefined && !capture.reachable) {
    return {
      stage: 'capture',
      explanation: `${pair} lags ${lag}: ${waiting} and the daemon of ${e.source} does not answer (${capture.error}): capture in ${e.source} is probably down`,
    };
  }
  if (
    capture !== undefined &&
    ((capture.lagSeconds ?? 0) > CAPTURE_BEHIND_SECONDS ||
      (capture.positionLagBytes ?? 0) > CAPTURE_BEHIND_BYTES)
  ) {
    return {
      stage: 'capture',
      explanation: `${pair} lags ${lag}: ${waiting} and capture in ${e.source} is behind its binlog (${(capture.lagSeconds ?? 0).toFixed(1)} s, ${capture.positionLagBytes ?? 0} bytes): look at the source MySQL, the binlog connection and the producer`,
    };
  }
  if (capture === undefined) {
    return {
      stage: 'capture',
      explanation: `${pair} lags ${lag}: ${waiting}, so changes from ${e.source} are not arriving: check capture in ${e.source}`,
    };
  }
  return {
    stage: 'kafka',
    explanation: `${pair} lags ${lag}: ${waiting} and capture in ${e.source} is current: changes are delayed between capture and apply (Kafka produce or fetch latency, a consumer-group rebalance)`,
  };
}

function ms(seconds: number): string {
  return `${Math.round(seconds * 1000)} ms`;
}
