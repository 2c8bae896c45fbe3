/**
 * Capture's half of the audit trail (docs/GOVERNANCE.md, "Audit trail"): the
 * records of each governed change, published through the same publisher as
 * the change's copies, right behind them, to the origin's audit topic
 * `<prefix>._audit.<region>`, joined per partition into audit batches at
 * send time (src/capture/publisher.ts). The publisher sends in order and the capture
 * position moves only past what Kafka acknowledged, so the position never
 * passes a change whose records are not written, and a crash replays both:
 * a record exists if and only if its data was sent (at least once; readers
 * de-duplicate, src/governance/audit.ts).
 */
import type { ChangeEvent } from '../bus/envelope.js';
import {
  auditMessageKey,
  auditRecordsForChange,
  auditTopic,
  encodeAuditRecord,
  refusedAuditRecord,
  type AuditContext,
  type AuditRecord,
  type RoutedOutcome,
} from '../governance/audit.js';
import type { GovernancePolicy, Zones } from '../governance/policy.js';
import type { PublishItem } from './publisher.js';

/** `cdc_governance_decisions_total`, as the trail counts it. */
export interface DecisionCounter {
  inc(labels: {
    source_region: string;
    target_region: string;
    table: string;
    policy: string;
    decision: string;
  }): void;
}

export interface CaptureAuditTrailOptions {
  readonly topicPrefix: string;
  /** The region this capture serves (the source of every record). */
  readonly region: string;
  readonly zones: Zones;
  /** Every configured region, in configuration order. */
  readonly regions: readonly string[];
  readonly decisions: DecisionCounter;
  /** The clock of the records' `time` (tests inject one). */
  readonly now?: () => Date;
}

/** Whatever audit records are enqueued on: capture's publisher. */
export interface AuditPublisher {
  enqueue(item: PublishItem): void;
}

export class CaptureAuditTrail {
  readonly topic: string;

  constructor(private readonly options: CaptureAuditTrailOptions) {
    this.topic = auditTopic(options.topicPrefix, options.region);
  }

  /**
   * The records of a routed change: its copies (`routeChange(...).copies`,
   * none when no region may hold the row: one `withheld` record) and the
   * regions an eviction notice of it went to. Call right after enqueuing
   * the copies and notices.
   */
  routed(
    publisher: AuditPublisher,
    policy: GovernancePolicy,
    event: ChangeEvent,
    outcome: RoutedOutcome,
  ): void {
    this.#enqueue(publisher, event, auditRecordsForChange(this.#context(policy), event, outcome));
  }

  /** The record of a change capture could not route (parked in its dead letters instead). */
  refused(publisher: AuditPublisher, policy: GovernancePolicy, event: ChangeEvent): void {
    this.#enqueue(publisher, event, [refusedAuditRecord(this.#context(policy), event)]);
  }

  #context(policy: GovernancePolicy): AuditContext {
    return {
      policy,
      zones: this.options.zones,
      regions: this.options.regions,
      sourceRegion: this.options.region,
      time: this.options.now?.() ?? new Date(),
    };
  }

  /**
   * Each record goes on the publisher as an `audit` item, in the order the
   * records were made, right behind the change's copies: the publisher joins
   * the records of one partition of the audit topic into few messages (audit
   * batches, src/governance/audit.ts) in the same sendBatch as the copies
   * they describe, and the capture position still moves only past what that
   * sendBatch's acknowledgement covers. Each record is counted once here,
   * whatever message it ends up in.
   */
  #enqueue(publisher: AuditPublisher, event: ChangeEvent, records: readonly AuditRecord[]): void {
    const table = `${event.db}.${event.table}`;
    for (const record of records) {
      publisher.enqueue({
        kind: 'audit',
        topic: this.topic,
        key: auditMessageKey(record),
        record: encodeAuditRecord(record),
        commitTs: event.commitTs,
      });
      this.options.decisions.inc({
        source_region: record.source,
        target_region: record.target,
        table,
        policy: record.policy,
        decision: record.decision,
      });
    }
  }
}
