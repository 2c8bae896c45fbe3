import type { Kafka } from 'kafkajs';
import { createKafka } from '../bus/kafka.js';
import type { RuntimeOptions } from '../config/compile.js';
import { CdcError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { classifyError } from '../core/retriable.js';
import { ApplyStage } from '../apply/apply-stage.js';
import type { LostPositionChoice } from '../capture/start-position.js';
import { CaptureLeadership } from './capture-leadership.js';
import { HeartbeatWriter } from '../monitor/heartbeat.js';
import { MetricsServer } from '../monitor/http-server.js';
import { PipelineMonitor } from '../monitor/pipeline-monitor.js';
import { checkTopicRetention, type TopicRetentionCheck } from '../monitor/topic-retention.js';
import { DaemonMetrics } from '../monitor/metrics.js';
import {
  createCheckpointStore,
  watchCheckpointStoreDurability,
  type RedisDurabilityWatch,
} from '../state/index.js';
import type { CheckpointStore } from '../state/store.js';

export type DaemonState = 'idle' | 'starting' | 'running' | 'draining' | 'stopped' | 'failed';

export interface DaemonOptions {
  options: RuntimeOptions;
  logger: Logger;
  /** How long a graceful stop may take before it gives up. */
  drainTimeoutMs?: number;
  /** What capture does if no saved position can be found (`run --accept-gap` and kin). */
  lostPosition?: LostPositionChoice | undefined;
}

/**
 * One region's daemon: wires the stages (capture and apply; heartbeats
 * arrive with the monitor) to the shared pieces (checkpoint store, Kafka
 * client, metrics) and owns the lifecycle: idle → starting → running →
 * draining → stopped, or failed. `stop()` is safe to call twice.
 */
export class Daemon {
  #state: DaemonState = 'idle';
  readonly metrics = new DaemonMetrics();
  #store: CheckpointStore | undefined;
  /** Whether the checkpoint store can lose keys (Redis only); its risks fail `/readyz` under `fatal`. */
  #storeDurability: RedisDurabilityWatch | undefined;
  /** The start-up check that Kafka keeps changes as long as the tombstone horizon needs (logs only). */
  #retention: TopicRetentionCheck | undefined;
  #kafka: Kafka | undefined;
  /** Capture, under the region's lease when checkpoints are in Redis (a standby is ready too). */
  #capture: CaptureLeadership | undefined;
  #apply: ApplyStage | undefined;
  #heartbeat: HeartbeatWriter | undefined;
  #monitor: PipelineMonitor | undefined;
  #metricsServer: MetricsServer | undefined;
  #stopping: Promise<void> | undefined;
  #metricsPort: number | undefined;
  #fatal: ((error: CdcError) => void) | undefined;
  /** Resolves with the error that made the daemon fail. */
  readonly failed: Promise<CdcError>;

  constructor(private readonly config: DaemonOptions) {
    this.failed = new Promise((resolve) => (this.#fatal = resolve));
  }

  get state(): DaemonState {
    return this.#state;
  }

  /** The apply stage, when this region has peers (tests pause it to simulate a slow applier). */
  get apply(): ApplyStage | undefined {
    return this.#apply;
  }

  /** The port `/metrics` listens on (useful when configured as 0). */
  get metricsPort(): number | undefined {
    return this.#metricsPort;
  }

  async start(): Promise<void> {
    if (this.#state !== 'idle') throw new Error(`daemon cannot start from state ${this.#state}`);
    this.#state = 'starting';
    const { options, logger } = this.config;
    try {
      this.#metricsServer = new MetricsServer(options.metrics, this.metrics, () =>
        this.#readiness(),
      );
      this.#metricsPort = await this.#metricsServer.start();
      this.#store = await createCheckpointStore(options.checkpointStore, { logger });
      this.#storeDurability = await watchCheckpointStoreDurability(options.checkpointStore, {
        logger,
      });
      this.#kafka = createKafka(options.kafka, logger);
      this.#capture = new CaptureLeadership({
        options,
        store: this.#store,
        kafka: this.#kafka,
        metrics: this.metrics,
        logger: logger.child({ stage: 'capture' }),
        lostPosition: this.config.lostPosition,
        // Local DDL on a replicated table: the applier re-reads it and retries what it
        // holds at once. Only the daemon holding the capture lease reads the binlog; on
        // a standby the apply stage's periodic recheck (apply.holdRecheckIntervalMs)
        // covers a local ALTER instead.
        onLocalSchemaChange: (schema, table) => this.#localSchemaChanged(schema, table),
      });
      void this.#capture.failed.then((error) => this.#fail(error));
      await this.#capture.start();
      if (options.peers.length > 0) {
        this.#apply = new ApplyStage({
          options,
          kafka: this.#kafka,
          metrics: this.metrics,
          logger: logger.child({ stage: 'apply' }),
        });
        void this.#apply.failed.then((error) => this.#fail(error));
        await this.#apply.start();
      }
      this.#heartbeat = new HeartbeatWriter(
        options,
        logger.child({ component: 'heartbeat' }),
        options.monitor.heartbeatIntervalMs,
      );
      await this.#heartbeat.start();
      this.#monitor = new PipelineMonitor({
        options,
        metrics: this.metrics,
        logger: logger.child({ component: 'monitor' }),
        kafka: this.#kafka,
        store: this.#store,
        apply: () => this.#apply,
        capture: () => this.#capture?.stage,
      });
      await this.#monitor.start();
      this.#retention = checkTopicRetention({
        kafka: this.#kafka,
        options,
        logger: logger.child({ component: 'retention' }),
      });
      this.#state = 'running';
      logger.info({ region: options.region, metricsPort: this.#metricsPort }, 'daemon running');
    } catch (err) {
      const error = classifyError(err, `starting the daemon for region ${options.region}`);
      // Stages that did start must not keep running (and reconnecting) behind a failed start.
      await Promise.allSettled([
        this.#monitor?.stop(),
        this.#heartbeat?.stop(),
        this.#apply?.stop(),
        this.#capture?.stop(),
      ]);
      await this.#release();
      this.#state = 'failed';
      throw error;
    }
  }

  /** Graceful stop: drain in-flight work, save checkpoints, release connections. */
  stop(): Promise<void> {
    this.#stopping ??= this.#drain();
    return this.#stopping;
  }

  async #drain(): Promise<void> {
    const { logger } = this.config;
    if (this.#state === 'idle' || this.#state === 'stopped') {
      this.#state = 'stopped';
      return;
    }
    const wasFailed = this.#state === 'failed';
    this.#state = 'draining';
    const timeoutMs = this.config.drainTimeoutMs ?? 30_000;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    try {
      await Promise.all([this.#monitor?.stop(), this.#heartbeat?.stop()]);
      const stages = Promise.all([this.#apply?.stop(), this.#capture?.stop()]);
      const result = await Promise.race([stages.then(() => 'done' as const), deadline]);
      if (result === 'timeout') {
        throw new CdcError(
          `graceful stop did not finish within ${timeoutMs} ms: capture was ${this.#capture?.state ?? 'not started'}, ` +
            `apply was ${this.#apply?.state ?? 'not started'}; unacknowledged changes replay from the checkpoint ` +
            'and unapplied ones from the committed offsets on restart',
          { code: 'DRAIN_TIMEOUT' },
        );
      }
      logger.info('daemon stopped cleanly');
    } finally {
      clearTimeout(timer);
      await this.#release();
      this.#state = wasFailed ? 'failed' : 'stopped';
    }
  }

  async #release(): Promise<void> {
    await this.#storeDurability?.stop();
    await this.#retention?.stop();
    await this.#metricsServer?.stop();
    await this.#store?.close();
  }

  #localSchemaChanged(schema: string, table: string): void {
    this.#apply?.schemaChanged(schema, table).catch((err: unknown) => {
      this.config.logger.warn(
        { err: classifyError(err, 'refreshing a table description').message, schema, table },
        'apply could not re-read a table after local DDL; its periodic recheck will',
      );
    });
  }

  #readiness(): { ready: boolean; reasons: string[] } {
    const reasons: string[] = [];
    if (this.#state !== 'running') reasons.push(`daemon is ${this.#state}`);
    if (this.#capture !== undefined && this.#capture.state !== 'running')
      reasons.push(`capture is ${this.#capture.state}`);
    if (this.#apply !== undefined && this.#apply.state !== 'running')
      reasons.push(`apply is ${this.#apply.state}`);
    if (this.#state === 'running') reasons.push(...(this.#monitor?.readiness() ?? []));
    reasons.push(...(this.#capture?.stage?.readiness() ?? []));
    reasons.push(...(this.#apply?.readiness() ?? [])); // events held for schema skew
    reasons.push(...(this.#storeDurability?.reasons() ?? []));
    return { ready: reasons.length === 0, reasons };
  }

  #fail(error: CdcError): void {
    if (this.#state === 'draining' || this.#state === 'stopped') return;
    this.#state = 'failed';
    this.config.logger.error({ err: error.message, code: error.code }, 'daemon failed');
    this.#fatal?.(error);
  }
}
