import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The lag of one region pair at this instant. */
export interface PairLag {
  readonly source: string;
  readonly target: string;
  readonly seconds: number;
  /** Source time (µs) of the newest heartbeat applied, if any. */
  readonly lastHeartbeatMicros?: number | undefined;
}

/**
 * Every metric the daemon exports, in one registry per daemon (several
 * daemons can share a test process). Names and labels are the contract of
 * DESIGN.md §7 that dashboards and alert rules rely on: `cdc_*`, `_total`
 * for counters, units in the name, and bounded labels only (never a primary
 * key or SQL text).
 */
export class DaemonMetrics {
  readonly registry = new Registry();

  #lagSource: (() => readonly PairLag[]) | undefined;

  /**
   * Computed at scrape time from what the apply stage has applied, so a
   * source that stops sending shows lag growing with wall time instead of
   * freezing at its last value.
   */
  readonly replicationLagSeconds: Gauge<'source_region' | 'target_region'> = new Gauge({
    name: 'cdc_replication_lag_seconds',
    help: 'End-to-end lag from a source region to this region: now minus the source time up to which changes (heartbeats included) are applied.',
    labelNames: ['source_region', 'target_region'] as const,
    registers: [this.registry],
    collect: () => {
      for (const lag of this.#lagSource?.() ?? []) {
        const labels = { source_region: lag.source, target_region: lag.target };
        this.replicationLagSeconds.set(labels, lag.seconds);
        if (lag.lastHeartbeatMicros !== undefined)
          this.lastHeartbeatTimestampSeconds.set(labels, lag.lastHeartbeatMicros / 1e6);
      }
    },
  });

  /** Where the lag gauges read the current lag per source region. */
  setLagSource(source: () => readonly PairLag[]): void {
    this.#lagSource = source;
  }

  readonly applyLatencySeconds = new Histogram({
    name: 'cdc_apply_latency_seconds',
    help: 'Time from source commit to local apply of a change.',
    labelNames: ['source_region', 'target_region'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });

  readonly eventsCapturedTotal = new Counter({
    name: 'cdc_events_captured_total',
    help: 'Row changes captured from the local binlog and acknowledged by Kafka.',
    labelNames: ['region', 'table', 'op'] as const,
    registers: [this.registry],
  });

  readonly eventsAppliedTotal = new Counter({
    name: 'cdc_events_applied_total',
    help: 'Incoming changes by outcome: applied, stale, conflict_won, conflict_lost.',
    labelNames: ['source_region', 'target_region', 'table', 'result'] as const,
    registers: [this.registry],
  });

  readonly conflictsTotal = new Counter({
    name: 'cdc_conflicts_total',
    help: 'Concurrent writes to the same row, by resolution.',
    labelNames: ['table', 'resolution'] as const,
    registers: [this.registry],
  });

  readonly deadLetterTotal = new Counter({
    name: 'cdc_dead_letter_total',
    help: 'Changes that could not be captured or applied and were parked in a dead-letter topic.',
    labelNames: ['stage', 'reason'] as const,
    registers: [this.registry],
  });

  readonly capturePositionLagBytes = new Gauge({
    name: 'cdc_capture_position_lag_bytes',
    help: "Bytes between the server's binlog end and the capture checkpoint.",
    labelNames: ['region'] as const,
    registers: [this.registry],
  });

  readonly captureLagSeconds = new Gauge({
    name: 'cdc_capture_lag_seconds',
    help: 'Age of the newest change acknowledged by Kafka, relative to its commit time.',
    labelNames: ['region'] as const,
    registers: [this.registry],
  });

  readonly kafkaConsumerLagMessages = new Gauge({
    name: 'cdc_kafka_consumer_lag_messages',
    help: 'Messages not yet consumed by this region, per source topic partition.',
    labelNames: ['source_region', 'topic', 'partition'] as const,
    registers: [this.registry],
  });

  readonly clockSkewSeconds = new Gauge({
    name: 'cdc_clock_skew_seconds',
    help: 'How far the newest incoming version was ahead of the local clock (0 when behind).',
    labelNames: ['source_region'] as const,
    registers: [this.registry],
  });

  readonly captureDdlTotal = new Counter({
    name: 'cdc_capture_ddl_total',
    help: 'DDL statements seen in the binlog (logged, never published as data); kind=truncate is a TRUNCATE of a replicated table, which is not replicated.',
    labelNames: ['region', 'kind'] as const,
    registers: [this.registry],
  });

  readonly schemaRepairsTotal = new Counter({
    name: 'cdc_schema_repairs_total',
    help: 'Repairs capture made to a replicated table after DDL or found by the drift check (what is version_columns, key_hash, triggers or misplaced_triggers), and columns the applier added for held events under schema.autoAddColumns (what is auto_add_column).',
    labelNames: ['region', 'table', 'what'] as const,
    registers: [this.registry],
  });

  readonly captureWarningsTotal = new Counter({
    name: 'cdc_capture_warnings_total',
    help: 'Captured changes that needed attention, by reason.',
    labelNames: ['region', 'reason'] as const,
    registers: [this.registry],
  });

  readonly captureGovernanceWithheldTotal = new Counter({
    name: 'cdc_capture_governance_withheld_total',
    help: 'Row changes of governed tables that no region may hold (residency default: none, no rule matched), so capture published them nowhere.',
    labelNames: ['region', 'table', 'policy'] as const,
    registers: [this.registry],
  });

  readonly captureGovernanceNoticesTotal = new Counter({
    name: 'cdc_capture_governance_notices_total',
    help: 'Eviction notices published for row versions of governed tables that some region may not hold (docs/GOVERNANCE.md, "Eviction").',
    labelNames: ['region', 'table', 'policy'] as const,
    registers: [this.registry],
  });

  readonly governanceDecisionsTotal = new Counter({
    name: 'cdc_governance_decisions_total',
    help: 'Audit records capture wrote for changes of governed tables, by target region and decision: sent, sent_masked, notice, and withheld or refused with target_region "*" (docs/GOVERNANCE.md, "Audit trail").',
    labelNames: ['source_region', 'target_region', 'table', 'policy', 'decision'] as const,
    registers: [this.registry],
  });

  readonly captureApplierTransactionsTotal = new Counter({
    name: 'cdc_capture_applier_transactions_total',
    help: "Transactions of this region's own applier that the binlog sent to capture, which dropped them by their apply marker. MariaDB leaves them out of the stream (skip_replication), so there it stays 0; on MySQL it grows with every applied chunk.",
    labelNames: ['region'] as const,
    registers: [this.registry],
  });

  readonly captureInFlightBytes = new Gauge({
    name: 'cdc_capture_in_flight_bytes',
    help: 'Bytes captured but not yet acknowledged by Kafka (bounded by capture.maxInFlightBytes).',
    labelNames: ['region'] as const,
    registers: [this.registry],
  });

  /**
   * Capture starts by where the start position came from: `store`, `kafka`
   * (the checkpoint store had lost it or was behind), `first-start`, or an
   * operator's choice for a lost position (`resume-from-gtid`,
   * `replay-from-oldest-binlog`, `accept-gap`).
   */
  readonly captureStartsTotal = new Counter({
    name: 'cdc_capture_starts_total',
    help: 'Capture starts by where the start position came from (store, kafka, first-start, or an operator choice for a lost position).',
    labelNames: ['region', 'from'] as const,
    registers: [this.registry],
  });

  readonly captureReconnectsTotal = new Counter({
    name: 'cdc_capture_reconnects_total',
    help: 'Binlog connections re-established after a failure.',
    labelNames: ['region'] as const,
    registers: [this.registry],
  });

  readonly applyHeld = new Gauge({
    name: 'cdc_apply_held',
    help: 'Partitions of a source table whose events are held because the local schema does not allow them yet (a table, column or wider type this region lacks), or, with reason row_missing, because an edit request of a masked region names a row that has not reached this region yet.',
    labelNames: ['source_region', 'table', 'reason'] as const,
    registers: [this.registry],
  });

  readonly applyBatchEvents = new Histogram({
    name: 'cdc_apply_batch_events',
    help: 'Events per apply transaction (one table chunk of one partition).',
    labelNames: ['source_region', 'target_region'] as const,
    buckets: [1, 10, 50, 100, 250, 500, 1000, 2500, 5000],
    registers: [this.registry],
  });

  readonly applyBatchDurationSeconds = new Histogram({
    name: 'cdc_apply_batch_duration_seconds',
    help: 'Wall time of one apply transaction, from BEGIN to COMMIT, retries included.',
    labelNames: ['source_region', 'target_region'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [this.registry],
  });

  readonly lastHeartbeatTimestampSeconds = new Gauge({
    name: 'cdc_last_heartbeat_timestamp_seconds',
    help: 'Source time (unix seconds) of the newest heartbeat applied from each source region.',
    labelNames: ['source_region', 'target_region'] as const,
    registers: [this.registry],
  });

  readonly lagAnomaly = new Gauge({
    name: 'cdc_lag_anomaly',
    help: '1 while lag or throughput of a region pair departs from its own recent normal.',
    labelNames: ['source_region', 'target_region'] as const,
    registers: [this.registry],
  });

  readonly snapshotRowsTotal = new Counter({
    name: 'cdc_snapshot_rows_total',
    help: 'Rows published by snapshots (op=r events), per table.',
    labelNames: ['region', 'table'] as const,
    registers: [this.registry],
  });

  readonly captureLeader = new Gauge({
    name: 'cdc_capture_leader',
    help: "1 while this daemon holds its region's capture lease and captures; 0 on a standby.",
    labelNames: ['region'] as const,
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }
}
