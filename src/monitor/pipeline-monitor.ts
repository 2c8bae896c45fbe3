import type { Admin, Kafka } from 'kafkajs';

import type { ApplyStage } from '../apply/apply-stage.js';
import { CAPTURE_CHECKPOINT_KEY, type CaptureStage } from '../capture/capture-stage.js';
import type { RuntimeOptions } from '../config/compile.js';
import type { Logger } from '../core/logger.js';
import { connectMysql, type MysqlConnection } from '../mysql/connection.js';
import { dialectOf } from '../mysql/dialect.js';
import { serverInfo } from '../mysql/introspect.js';
import type { CheckpointStore } from '../state/store.js';
import { AnomalyDetector, LAG_DETECTOR, THROUGHPUT_DETECTOR } from './anomaly.js';
import { diagnoseLag, type SourceCaptureEvidence } from './diagnosis.js';
import type { DaemonMetrics } from './metrics.js';
import { scrape, valueOf } from './prometheus-text.js';

export interface PipelineMonitorDeps {
  readonly options: RuntimeOptions;
  readonly metrics: DaemonMetrics;
  readonly logger: Logger;
  readonly kafka: Kafka;
  readonly store: CheckpointStore;
  /** The apply stage, when this region has peers. */
  readonly apply: () => ApplyStage | undefined;
  /** The capture stage while this daemon captures (a standby has none). */
  readonly capture: () => CaptureStage | undefined;
}

/** One dependency's last probe. */
interface Health {
  ok: boolean;
  detail: string;
  checkedAtMs: number;
}

type Dependency = 'mysql' | 'kafka' | 'checkpoint store';

/** Per source region: the detectors and what the diagnosis compares against. */
interface PairState {
  readonly lag: AnomalyDetector;
  readonly throughput: AnomalyDetector;
  lastEvents: number;
  lastSampleMs: number;
  /** Messages waiting in Kafka for this region from the source (sum over partitions). */
  backlog: number | undefined;
  backlogBaseline: number;
  batchBaselineSeconds: number;
  anomalous: boolean;
}

const PROBE_TIMEOUT_MS = 3000;
/** Consumer-group offsets and binlog positions are cheap, but not every 100 ms. */
const SLOW_SAMPLE_MS = 2000;

/**
 * Everything the daemon watches about itself, sampled every
 * `monitor.sampleIntervalMs`:
 * - end-to-end lag per source region (from heartbeats and applied changes);
 * - Kafka consumer lag per partition (admin API) and capture position lag
 *   (the server's binlog end against what Kafka acknowledged);
 * - reachability of MySQL, Kafka and the checkpoint store;
 * - lag and throughput anomalies per region pair, logged once per episode
 *   with the stage that most likely causes them.
 * `readiness()` turns the latest samples into the `/readyz` verdict.
 */
export class PipelineMonitor {
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #mysql: MysqlConnection | undefined;
  /** How the server names its binlog status (`SHOW MASTER STATUS` or MySQL 8.2+'s `SHOW BINARY LOG STATUS`). */
  #binlogStatus: string | undefined;
  #admin: Admin | undefined;
  #adminConnected = false;
  /** A connect of `#admin` still in flight: it may outlast a probe, and is never started twice. */
  #adminConnecting: Promise<void> | undefined;
  #lastSlowSampleMs = 0;
  readonly #health = new Map<Dependency, Health>();
  readonly #probes = new Map<Dependency, Promise<void>>();
  readonly #pairs = new Map<string, PairState>();

  constructor(private readonly deps: PipelineMonitorDeps) {
    for (const source of deps.options.peers) {
      this.#pairs.set(source, {
        lag: new AnomalyDetector(LAG_DETECTOR),
        throughput: new AnomalyDetector(THROUGHPUT_DETECTOR),
        lastEvents: 0,
        lastSampleMs: Date.now(),
        backlog: undefined,
        backlogBaseline: 0,
        batchBaselineSeconds: 0,
        anomalous: false,
      });
    }
  }

  /** Takes the first sample (so `/readyz` has facts at once), then samples on a timer. */
  async start(): Promise<void> {
    this.deps.metrics.setLagSource(() => this.lags());
    this.#sample();
    await this.#settleProbes();
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#settleProbes();
    const mysql = this.#mysql;
    this.#mysql = undefined;
    await mysql?.end().catch(() => undefined); // a broken probe connection has nothing to report
    if (this.#adminConnected) await this.#admin?.disconnect().catch(() => undefined);
    // A connect still retrying must not hold the stop; the client is closed once it settles.
    const admin = this.#admin;
    void this.#adminConnecting?.then(
      () => admin?.disconnect(),
      () => undefined, // it failed: nothing to close
    );
  }

  /**
   * End-to-end lag per source region, now: wall time minus the source time
   * up to which changes are known to be applied. It keeps growing while a
   * source is silent, so a dead source looks like growing lag; a source not
   * heard from since start counts from the start.
   */
  lags(): { source: string; target: string; seconds: number; lastHeartbeatMicros?: number }[] {
    const apply = this.deps.apply();
    if (apply === undefined) return [];
    const nowMicros = Date.now() * 1000;
    return this.deps.options.peers.map((source) => {
      const reached = apply.progress.get(source) ?? apply.startedAtMs * 1000;
      return {
        source,
        target: this.deps.options.region,
        seconds: Math.max(0, nowMicros - reached) / 1e6,
        lastHeartbeatMicros: apply.heartbeats.get(source),
      };
    });
  }

  readiness(): string[] {
    const reasons: string[] = [];
    for (const [dependency, health] of this.#health) {
      if (!health.ok) reasons.push(`${dependency} unreachable: ${health.detail}`);
    }
    const threshold = this.deps.options.monitor.lagThresholdSeconds;
    for (const lag of this.lags()) {
      if (lag.seconds > threshold)
        reasons.push(
          `replication lag ${lag.source} → ${lag.target} is ${lag.seconds.toFixed(1)} s, over the ${threshold} s threshold (monitor.lagThresholdSeconds)`,
        );
    }
    return reasons;
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#sample();
      this.#schedule();
    }, this.deps.options.monitor.sampleIntervalMs);
    this.#timer.unref();
  }

  /**
   * One tick: lag and anomalies are judged now; the probes (which wait on
   * the network) run in the background, one of each kind at a time, so a
   * slow dependency never delays the lag samples.
   */
  #sample(): void {
    const nowMs = Date.now();
    const slow = nowMs - this.#lastSlowSampleMs >= SLOW_SAMPLE_MS;
    this.#probe('mysql', () => this.#probeMysql(slow));
    this.#probe('checkpoint store', () => this.#probeStore());
    if (slow) {
      this.#lastSlowSampleMs = nowMs;
      this.#probe('kafka', () => this.#probeKafka());
    }
    try {
      if (this.deps.options.monitor.anomalyDetection) this.#detectAnomalies(nowMs);
    } catch (err) {
      // A sampling bug must not take the daemon down; it shows in the log.
      this.deps.logger.warn({ err: (err as Error).message }, 'monitor sample failed');
    }
  }

  #probe(dependency: Dependency, run: () => Promise<void>): void {
    if (this.#probes.has(dependency)) return;
    const running = run().finally(() => this.#probes.delete(dependency));
    this.#probes.set(dependency, running);
  }

  /** Waits for the probes in flight (the first sample's, at start; all, at stop). */
  async #settleProbes(): Promise<void> {
    await Promise.allSettled([...this.#probes.values()]);
  }

  async #probeMysql(withPosition: boolean): Promise<void> {
    const { options, metrics } = this.deps;
    try {
      this.#mysql ??= await withTimeout(connectMysql(options.mysql), 'connect');
      await withTimeout(this.#mysql.query('SELECT 1'), 'SELECT 1');
      this.#setHealth('mysql', true, 'ok');
      const capture = this.deps.capture();
      if (withPosition && capture !== undefined && capture.state === 'running') {
        const lag = await this.#capturePositionLag(this.#mysql, capture);
        if (lag !== undefined) {
          metrics.capturePositionLagBytes.set({ region: options.region }, lag.bytes);
          metrics.captureLagSeconds.set({ region: options.region }, lag.seconds);
        }
      }
    } catch (err) {
      this.#setHealth('mysql', false, (err as Error).message);
      const broken = this.#mysql;
      this.#mysql = undefined;
      await broken?.end().catch(() => undefined); // reconnect next sample
    }
  }

  /**
   * Bytes between the newest transaction Kafka acknowledged and the end of
   * the server's binlog (across rotated files), and how old that transaction
   * is when it is not the last one.
   */
  async #capturePositionLag(
    mysql: MysqlConnection,
    capture: CaptureStage,
  ): Promise<{ bytes: number; seconds: number } | undefined> {
    this.#binlogStatus ??= dialectOf(
      await withTimeout(serverInfo(mysql), 'read the server version'),
    ).binlogStatusStatement;
    const statement = this.#binlogStatus;
    const [status] = await withTimeout(mysql.query(statement), statement);
    const end = (status as { File?: string; Position?: number | string }[])[0];
    const acked = capture.acknowledgedProgress();
    if (end?.File === undefined || acked.coordinates === undefined) return undefined;
    const endOffset = Number(end.Position);
    let bytes: number;
    if (acked.coordinates.file === end.File) {
      bytes = Math.max(0, endOffset - acked.coordinates.offset);
    } else {
      const [logs] = await withTimeout(mysql.query('SHOW BINARY LOGS'), 'SHOW BINARY LOGS');
      bytes = 0;
      let counting = false;
      for (const log of logs as { Log_name: string; File_size: number | string }[]) {
        if (log.Log_name === acked.coordinates.file) {
          counting = true;
          bytes += Math.max(0, Number(log.File_size) - acked.coordinates.offset);
        } else if (log.Log_name === end.File) {
          bytes += endOffset;
          break;
        } else if (counting) {
          bytes += Number(log.File_size);
        }
      }
    }
    const seconds =
      bytes === 0 || acked.commitTs === 0 ? 0 : Math.max(0, (Date.now() - acked.commitTs) / 1000);
    return { bytes, seconds };
  }

  async #probeStore(): Promise<void> {
    try {
      await withTimeout(this.deps.store.load(CAPTURE_CHECKPOINT_KEY), 'read the checkpoint');
      this.#setHealth('checkpoint store', true, 'ok');
    } catch (err) {
      this.#setHealth('checkpoint store', false, (err as Error).message);
    }
  }

  /** Consumer lag per partition of every source topic; with no peers, just cluster reachability. */
  async #probeKafka(): Promise<void> {
    const { metrics } = this.deps;
    try {
      // Retries would hold the probe for tens of seconds; the next sample is the retry.
      this.#admin ??= this.deps.kafka.admin({ retry: { retries: 0 } });
      const admin = this.#admin;
      if (!this.#adminConnected) {
        // kafkajs keeps retrying a connect past the probe's timeout: later probes wait on
        // that one instead of starting another admin client beside it (each one retrying).
        this.#adminConnecting ??= admin.connect().finally(() => {
          this.#adminConnecting = undefined;
        });
        await withTimeout(this.#adminConnecting, 'connect the admin client');
        this.#adminConnected = true;
      }
      const group = this.deps.apply()?.consumerGroup;
      if (group === undefined || group.topics.length === 0) {
        await withTimeout(admin.describeCluster(), 'describe the cluster');
      } else {
        const topics = group.topics.map((t) => t.topic);
        const committed = await withTimeout(
          admin.fetchOffsets({ groupId: group.groupId, topics }),
          'fetch committed offsets',
        );
        const backlog = new Map<string, number>();
        for (const { topic, source } of group.topics) {
          const ends = await withTimeout(admin.fetchTopicOffsets(topic), 'fetch topic offsets');
          const done = committed.find((c) => c.topic === topic)?.partitions ?? [];
          for (const end of ends) {
            const offset = Number(done.find((p) => p.partition === end.partition)?.offset ?? -1);
            // No committed offset yet: everything from the low watermark waits.
            const from = offset >= 0 ? offset : Number(end.low);
            const waiting = Math.max(0, Number(end.high) - from);
            metrics.kafkaConsumerLagMessages.set(
              { source_region: source, topic, partition: String(end.partition) },
              waiting,
            );
            backlog.set(source, (backlog.get(source) ?? 0) + waiting);
          }
        }
        for (const [source, waiting] of backlog) {
          const pair = this.#pairs.get(source);
          if (pair !== undefined) pair.backlog = waiting;
        }
      }
      this.#setHealth('kafka', true, 'ok');
    } catch (err) {
      this.#setHealth('kafka', false, (err as Error).message);
      if (this.#adminConnected) await this.#admin?.disconnect().catch(() => undefined);
      this.#adminConnected = false;
      if (this.#adminConnecting === undefined) this.#admin = undefined;
      for (const pair of this.#pairs.values()) pair.backlog = undefined;
    }
  }

  #detectAnomalies(nowMs: number): void {
    const apply = this.deps.apply();
    if (apply === undefined) return;
    const { options, metrics, logger } = this.deps;
    for (const lag of this.lags()) {
      const pair = this.#pairs.get(lag.source);
      if (pair === undefined) continue;
      const activity = apply.activity(lag.source);
      const elapsed = Math.max(1, nowMs - pair.lastSampleMs) / 1000;
      const rate = (activity.events - pair.lastEvents) / elapsed;
      pair.lastEvents = activity.events;
      pair.lastSampleMs = nowMs;
      const lagVerdict = pair.lag.observe(lag.seconds);
      const rateVerdict = pair.throughput.observe(rate);
      // A throughput drop only matters while work waits; an idle application is not an incident.
      const starved = rateVerdict.anomalous && (pair.backlog ?? 0) > 0;
      const anomalous = lagVerdict.anomalous || starved;
      if (!anomalous) {
        pair.backlogBaseline = ewma(pair.backlogBaseline, pair.backlog ?? 0);
        pair.batchBaselineSeconds = ewma(pair.batchBaselineSeconds, activity.batchSecondsEwma);
      }
      const labels = { source_region: lag.source, target_region: options.region };
      metrics.lagAnomaly.set(labels, anomalous ? 1 : 0);
      if (anomalous && !pair.anomalous) {
        const evidence = {
          source: lag.source,
          target: options.region,
          lagSeconds: lag.seconds,
          backlogMessages: pair.backlog,
          backlogBaseline: pair.backlogBaseline,
          applyBatchSeconds: activity.batchSecondsEwma,
          applyBatchBaselineSeconds: pair.batchBaselineSeconds,
        };
        const context = {
          source: lag.source,
          target: options.region,
          lagSeconds: Number(lag.seconds.toFixed(3)),
          baselineLagSeconds: Number(lagVerdict.baseline.toFixed(3)),
          eventsPerSecond: Math.round(rate),
          baselineEventsPerSecond: Math.round(rateVerdict.baseline),
          backlogMessages: pair.backlog,
        };
        // Asking the source daemon takes a network round trip: report without holding the tick.
        void this.#sourceCapture(lag.source).then((sourceCapture) => {
          const diagnosis = diagnoseLag({ ...evidence, sourceCapture });
          logger.warn(
            { ...context, likelyStage: diagnosis.stage },
            `replication anomaly: ${diagnosis.explanation}`,
          );
        });
      } else if (!anomalous && pair.anomalous) {
        logger.info(
          { source: lag.source, target: options.region, lagSeconds: lag.seconds },
          'replication back to its normal',
        );
      }
      pair.anomalous = anomalous;
    }
  }

  /** The source daemon's view of its own capture, read from its metrics endpoint. */
  async #sourceCapture(source: string): Promise<SourceCaptureEvidence | undefined> {
    const url = this.deps.options.peerMetricsUrls[source];
    if (url === undefined) return undefined;
    try {
      const { samples } = await scrape(url, PROBE_TIMEOUT_MS);
      return {
        reachable: true,
        lagSeconds: valueOf(samples, 'cdc_capture_lag_seconds', { region: source }),
        positionLagBytes: valueOf(samples, 'cdc_capture_position_lag_bytes', { region: source }),
      };
    } catch (err) {
      return { reachable: false, error: (err as Error).message };
    }
  }

  #setHealth(dependency: Dependency, ok: boolean, detail: string): void {
    const previous = this.#health.get(dependency);
    if (previous !== undefined && previous.ok !== ok) {
      if (ok) this.deps.logger.info({ dependency }, `${dependency} reachable again`);
      else this.deps.logger.warn({ dependency, err: detail }, `${dependency} unreachable`);
    }
    this.#health.set(dependency, { ok, detail, checkedAtMs: Date.now() });
  }
}

function ewma(previous: number, value: number): number {
  return previous === 0 ? value : previous * 0.95 + value * 0.05;
}

async function withTimeout<T>(promise: Promise<T>, doing: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${doing} did not answer within ${PROBE_TIMEOUT_MS} ms`)),
      PROBE_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
