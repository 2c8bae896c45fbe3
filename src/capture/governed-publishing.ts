/**
 * The governed publishing path (docs/GOVERNANCE.md, "Capture and apply"):
 * every way a region's rows of a governed table reach Kafka — capture of
 * the binlog, `snapshot` (and so `bootstrap`), and `verify --repair` —
 * goes through {@link GovernedPublishing.publish}. It routes each row
 * version to the zone and masked topics its residency gives (masks applied
 * here, in the origin), sends the value-free eviction notices, and enqueues
 * the audit records right behind the data on the same sink, so that no
 * command can publish a governed row around the policy.
 */
import type { Producer } from 'kafkajs';
import {
  ENVELOPE_VERSION,
  encodeEditRequest,
  encodeEvent,
  encodeNotice,
  noticeKey,
  topicName,
  type ChangeEvent,
  type EditRequest,
  type EvictionNotice,
} from '../bus/envelope.js';
import type { RuntimeOptions } from '../config/compile.js';
import type { Logger } from '../core/logger.js';
import { GovernanceError, type GovernancePolicy, type Zones } from '../governance/policy.js';
import { audienceIn, residencyOf, type Residency } from '../governance/residency.js';
import { governedTopicName, type TopicAudience } from '../governance/topics.js';
import {
  columnTypeInfo,
  evictionTargets,
  routeChange,
  type GovernanceLayout,
} from '../governance/routing.js';
import { tombstoneKeyHash } from '../mysql/tombstone-key.js';
import { CaptureAuditTrail, type AuditPublisher, type DecisionCounter } from './audit-trail.js';
import type { PublishItem } from './publisher.js';

/** The counters the governed path moves (DaemonMetrics has them). */
export interface GovernedPublishingMetrics {
  readonly captureGovernanceWithheldTotal: {
    inc(labels: { region: string; table: string; policy: string }): void;
  };
  readonly captureGovernanceNoticesTotal: {
    inc(labels: { region: string; table: string; policy: string }): void;
  };
  readonly governanceDecisionsTotal: DecisionCounter;
}

/** A row change the governed path could not publish: parked in the capture dead letters. */
export interface GovernedRefusal {
  readonly reason: 'governance_refused';
  readonly detail: string;
  readonly source: {
    db: string;
    table: string;
    pk: ChangeEvent['pk'];
    gtid: string | null;
    op: string;
  };
}

/** Where a region's governed path publishes, from its runtime options. */
export function governedLayoutOf(
  options: Pick<RuntimeOptions, 'region' | 'peers' | 'kafka' | 'governance'>,
): Pick<GovernedPublishingOptions, 'region' | 'topicPrefix' | 'zones' | 'regions'> {
  return {
    region: options.region,
    topicPrefix: options.kafka.topicPrefix,
    zones: options.governance?.zones ?? {},
    regions: options.governance?.regions ?? [options.region, ...options.peers],
  };
}

export interface GovernedPublishingOptions {
  /** The region publishing (the origin of every copy and record). */
  readonly region: string;
  readonly topicPrefix: string;
  readonly zones: Zones;
  /** Every configured region, in configuration order. */
  readonly regions: readonly string[];
  readonly metrics: GovernedPublishingMetrics;
  readonly logger: Logger;
  /**
   * Enqueues one copy of a change on one topic in the caller's envelope
   * (capture: v1 or v2 rows; snapshot and repair: v1 messages). `counted`
   * is false for the second and later copies of one change.
   */
  readonly enqueueChange: (
    sink: AuditPublisher,
    topic: string,
    key: string,
    event: ChangeEvent,
    counted: boolean,
  ) => void;
  /** Parks what could not be published (the capture dead-letter topic of the region). */
  readonly deadLetter: (sink: AuditPublisher, refusal: GovernedRefusal) => void;
}

/** What {@link GovernedPublishing.publish} did with one change. */
export type GovernedOutcome =
  /** Routed: `copies` topics got it (0: no region may hold it, withheld), notices to `noticed` regions. */
  | { readonly kind: 'published'; readonly copies: number; readonly noticed: readonly string[] }
  /** Parked in the capture dead letters (a `refused` audit record says so). */
  | { readonly kind: 'refused'; readonly detail: string }
  /** A snapshot row this region holds only masked: not its to publish (the plain regions are). */
  | { readonly kind: 'held-masked' };

export class GovernedPublishing {
  readonly audit: CaptureAuditTrail;
  readonly #withheld = new Map<string, { loggedAtMs: number; since: number }>();

  constructor(private readonly options: GovernedPublishingOptions) {
    this.audit = new CaptureAuditTrail({
      topicPrefix: options.topicPrefix,
      region: options.region,
      zones: options.zones,
      regions: options.regions,
      decisions: options.metrics.governanceDecisionsTotal,
    });
  }

  get layout(): GovernanceLayout {
    const { topicPrefix, zones, regions } = this.options;
    return { topicPrefix, zones, regions };
  }

  /**
   * Publishes one change of a governed table: once per topic its residency
   * gives, plain or masked, each copy keyed and partitioned like any change
   * (`key`), so per-key order holds on every topic; an eviction notice for
   * the regions that may not hold this version; then its audit records. A
   * row no region may hold is published nowhere (counted, logged without
   * values). A row that cannot be routed (no residency column, a mask its
   * column's type cannot take), or a local write of a row this region holds
   * only masked, is parked in the dead letters with the reason and its key
   * only.
   *
   * `event` carries the column types (`types`: masks and the notice's key
   * hash need them); `replicated` is the same change as the topics get it
   * (capture may strip `types`). A snapshot row (`op: 'r'`) this region
   * holds only masked is skipped: its originals are the plain regions' to
   * publish.
   */
  publish(
    sink: AuditPublisher,
    policy: GovernancePolicy,
    event: ChangeEvent,
    replicated: ChangeEvent,
    key: string,
  ): GovernedOutcome {
    const { region } = this.options;
    let copies;
    let residency;
    try {
      ({ copies, residency } = routeChange(
        this.layout,
        policy,
        { sourceRegion: region, db: event.db, table: event.table },
        replicated,
        event.types,
      ));
    } catch (err) {
      if (!(err instanceof GovernanceError)) throw err;
      return this.#refuse(sink, policy, event, err.message);
    }
    if (event.op === 'r' && audienceIn(residency, region) === 'masked')
      return { kind: 'held-masked' };
    const masked = this.#maskedHere(policy, event);
    if (masked !== undefined)
      return (
        this.#forwardEdit(sink, policy, event, residency, key) ??
        this.#refuse(sink, policy, event, masked)
      );
    const table = `${event.db}.${event.table}`;
    if (copies.length === 0) {
      this.options.metrics.captureGovernanceWithheldTotal.inc({
        region,
        table,
        policy: policy.name,
      });
      this.#logWithheld(table, policy.name, event);
    }
    copies.forEach((copy, index) =>
      this.options.enqueueChange(sink, copy.topic, key, copy.change, index === 0),
    );
    const evict = evictionTargets(policy, this.layout, region, residency);
    const noticed = evict.length > 0 && this.#publishNotice(sink, policy, event, evict);
    this.audit.routed(sink, policy, event, { copies, notices: noticed ? evict : [] });
    return { kind: 'published', copies: copies.length, noticed: noticed ? evict : [] };
  }

  /**
   * A value-free eviction notice of `event`'s version for `regions`, with
   * its audit records, and no copy of the row: what `verify --repair`
   * spreads when the newest state of a governed key is a delete, whose row
   * image (and so residency) is gone. The regions delete an older copy and
   * keep a tombstone of that version, as for a delete. Returns whether the
   * notice was sent (false: its key cannot be hashed here; parked instead).
   */
  evict(
    sink: AuditPublisher,
    policy: GovernancePolicy,
    event: ChangeEvent,
    regions: readonly string[],
  ): boolean {
    if (regions.length === 0 || !this.#publishNotice(sink, policy, event, regions)) return false;
    this.audit.routed(sink, policy, event, { copies: [], notices: regions });
    return true;
  }

  #refuse(
    sink: AuditPublisher,
    policy: GovernancePolicy,
    event: ChangeEvent,
    detail: string,
  ): GovernedOutcome {
    this.options.deadLetter(sink, {
      reason: 'governance_refused',
      detail,
      source: { db: event.db, table: event.table, pk: event.pk, gtid: event.gtid, op: event.op },
    });
    this.audit.refused(sink, policy, event);
    return { kind: 'refused', detail };
  }

  /**
   * A local update of a row this region holds only masked, that changed
   * neither a masked column, the key nor the residency column (what the
   * write guards let through): published not as data (its masked values
   * would replace the originals) but as an edit request on the row's zone
   * topic, with the changed columns only, for the zone's first region to
   * execute (docs/GOVERNANCE.md, "Edits in a masked region";
   * src/apply/edit-request.ts). Audited `sent` to the zone's regions.
   * Undefined when the change is not such an edit (it is refused then).
   */
  #forwardEdit(
    sink: AuditPublisher,
    policy: GovernancePolicy,
    event: ChangeEvent,
    residency: Residency,
    key: string,
  ): GovernedOutcome | undefined {
    const { region, zones, regions, topicPrefix } = this.options;
    const before = event.before;
    const after = event.after;
    if (event.op !== 'u' || before === null || after === null) return undefined;
    if (residency.scope.kind !== 'zone' || audienceIn(residency, region) !== 'masked')
      return undefined;
    let beforeResidency;
    try {
      beforeResidency = residencyOf(policy, zones, regions, before);
    } catch (err) {
      if (err instanceof GovernanceError) return undefined;
      throw err;
    }
    if (audienceIn(beforeResidency, region) !== 'masked') return undefined;
    const same = (column: string): boolean =>
      JSON.stringify(before[column] ?? null) === JSON.stringify(after[column] ?? null);
    const fixed = [
      ...Object.keys(event.pk),
      ...policy.masking.keys(),
      ...(policy.residency.column === undefined ? [] : [policy.residency.column]),
    ];
    if (!fixed.every(same)) return undefined;
    const executor = residency.plain[0];
    if (executor === undefined) return undefined;
    const set: Record<string, ChangeEvent['pk'][string]> = {};
    for (const column of Object.keys(after))
      if (!fixed.includes(column) && !same(column)) set[column] = after[column] ?? null;
    // Nothing but version columns changed: nothing to carry.
    if (Object.keys(set).length === 0) return { kind: 'published', copies: 0, noticed: [] };
    const zone: TopicAudience = { kind: 'zone', zone: residency.scope.zone };
    const types = event.types;
    const request: EditRequest = {
      v: ENVELOPE_VERSION,
      notice: 'edit',
      region,
      db: event.db,
      table: event.table,
      pk: event.pk,
      set,
      executor,
      hlc: event.hlc,
      origin: event.origin,
      vv: event.vv,
      gtid: event.gtid,
      commitTs: event.commitTs,
      ...(types === undefined
        ? {}
        : {
            types: Object.fromEntries(
              [...Object.keys(event.pk), ...Object.keys(set)]
                .filter((c) => Object.hasOwn(types, c))
                .map((c) => [c, types[c] as string]),
            ),
          }),
    };
    sink.enqueue({
      kind: 'message',
      topic: governedTopicName(topicPrefix, zone, region, event.db, event.table),
      key,
      value: encodeEditRequest(request),
      table: `${event.db}.${event.table}`,
      op: event.op,
      commitTs: event.commitTs,
    });
    this.audit.routed(sink, policy, event, { copies: [{ audience: zone, form: 'plain' }] });
    return { kind: 'published', copies: 1, noticed: [] };
  }

  /**
   * Why a local insert or update of a row this region holds only masked
   * (before or after the write) must not be published, or undefined. The
   * write guards refuse such writes in the database (src/prepare/write-guard.ts);
   * this catches one that bypassed them (a session posing as the applier,
   * triggers dropped). No value in the message.
   */
  #maskedHere(policy: GovernancePolicy, event: ChangeEvent): string | undefined {
    if (event.op === 'd') return undefined;
    const { region, zones, regions } = this.options;
    const images = [event.after, event.op === 'u' ? event.before : null];
    for (const image of images) {
      if (image === null || image === undefined) continue;
      let audience;
      try {
        audience = audienceIn(residencyOf(policy, zones, regions, image), region);
      } catch (err) {
        if (err instanceof GovernanceError) return err.message;
        throw err;
      }
      if (audience === 'masked')
        return `policy ${policy.name}: a local ${event.op === 'c' ? 'insert' : 'update'} of a row ${region} holds only masked is not published: its masked values would replace the originals (docs/GOVERNANCE.md, "Writes outside the plain regions")`;
    }
    return undefined;
  }

  /**
   * The eviction notice of one row version for the regions that may not
   * hold it (docs/GOVERNANCE.md, "Eviction"), on the table's change topic,
   * named by the row's tombstone key only. A key whose tombstone key cannot
   * be computed here (a key type src/mysql/tombstone-key.ts does not
   * reproduce) is parked in the dead letters instead, loudly: the regions
   * would otherwise keep a copy they may not hold. Returns whether the
   * notice was sent (the audit trail records only notices sent).
   */
  #publishNotice(
    sink: AuditPublisher,
    policy: GovernancePolicy,
    event: ChangeEvent,
    regions: readonly string[],
  ): boolean {
    const { region, topicPrefix, metrics } = this.options;
    const pkColumns = Object.keys(event.pk).map((name) =>
      columnTypeInfo(name, event.types?.[name] ?? ''),
    );
    const keyHash = tombstoneKeyHash(pkColumns, event.pk);
    if (keyHash === undefined) {
      this.options.deadLetter(sink, {
        reason: 'governance_refused',
        detail: `policy ${policy.name}: the eviction notice for ${regions.join(', ')} cannot be sent: the tombstone key of ${event.db}.${event.table} (key types ${pkColumns.map((c) => c.columnType || 'unknown').join(', ')}) is not computed outside the server`,
        source: { db: event.db, table: event.table, pk: event.pk, gtid: event.gtid, op: event.op },
      });
      return false;
    }
    const notice: EvictionNotice = {
      v: ENVELOPE_VERSION,
      notice: 'evict',
      region,
      db: event.db,
      table: event.table,
      keyHash,
      regions: [...regions],
      hlc: event.hlc,
      origin: event.origin,
      vv: event.vv,
      gtid: event.gtid,
      commitTs: event.commitTs,
    };
    metrics.captureGovernanceNoticesTotal.inc({
      region,
      table: `${event.db}.${event.table}`,
      policy: policy.name,
    });
    sink.enqueue({
      kind: 'message',
      topic: topicName(topicPrefix, region, event.db, event.table),
      key: noticeKey(event.db, event.table, keyHash),
      value: encodeNotice(notice),
      table: `${event.db}.${event.table}`,
      op: 'notice',
      commitTs: event.commitTs,
      counted: false,
    });
    return true;
  }

  /**
   * Logs a withheld row without any value (table, policy, op, GTID): the
   * first of a table at once, then at most one line a minute per table with
   * how many more there were.
   */
  #logWithheld(table: string, policy: string, event: ChangeEvent): void {
    const now = Date.now();
    const seen = this.#withheld.get(table);
    if (seen !== undefined && now - seen.loggedAtMs < 60_000) {
      seen.since += 1;
      return;
    }
    this.#withheld.set(table, { loggedAtMs: now, since: 0 });
    this.options.logger.warn(
      {
        table,
        policy,
        op: event.op,
        gtid: event.gtid,
        ...(seen === undefined ? {} : { withheldSinceLastLine: seen.since }),
      },
      `a row change of ${table} that no region may hold (policy ${policy}) was not published`,
    );
  }
}

/** verify and the appliers keep no capture metrics: the governed path's counters are not moved. */
const UNCOUNTED = { inc: (): void => undefined };

/**
 * The governed path for a single change published outside capture (`verify
 * --repair`, an applier executing an edit request): what it would publish
 * is collected, then sent with {@link OneShotGovernedPublishing.send} in one
 * acknowledged batch (copies, notice, audit records), or not at all when it
 * refused (`refused()` says why; nothing is parked: the caller reports it).
 */
export class OneShotGovernedPublishing {
  readonly publishing: GovernedPublishing;
  readonly sink: AuditPublisher;
  readonly #items: PublishItem[] = [];
  #refusal: string | undefined;

  constructor(options: {
    region: string;
    topicPrefix: string;
    zones: Zones;
    regions: readonly string[];
    logger: Logger;
  }) {
    this.sink = { enqueue: (item) => this.#items.push(item) };
    this.publishing = new GovernedPublishing({
      ...options,
      metrics: {
        captureGovernanceWithheldTotal: UNCOUNTED,
        captureGovernanceNoticesTotal: UNCOUNTED,
        governanceDecisionsTotal: UNCOUNTED,
      },
      enqueueChange: (into, topic, key, change) =>
        into.enqueue({
          kind: 'message',
          topic,
          key,
          value: encodeEvent(change),
          table: `${change.db}.${change.table}`,
          op: change.op,
          commitTs: change.commitTs,
        }),
      deadLetter: (_into, letter) => (this.#refusal ??= letter.detail),
    });
  }

  /** Why the path refused the change (then {@link send} must not be called), or undefined. */
  refused(): string | undefined {
    return this.#refusal;
  }

  /** Sends what was collected, in order per topic, acknowledged by every replica. */
  async send(producer: Producer): Promise<void> {
    const byTopic = new Map<string, { key: string; value: Buffer | null }[]>();
    for (const item of this.#items) {
      if (item.kind === 'commit' || item.kind === 'row') continue; // enqueueChange above makes neither
      const message =
        item.kind === 'audit'
          ? { key: item.key, value: item.record } // a one-record audit message: readers read both forms
          : { key: item.key, value: item.value };
      const list = byTopic.get(item.topic);
      if (list === undefined) byTopic.set(item.topic, [message]);
      else list.push(message);
    }
    if (byTopic.size === 0) return;
    await producer.sendBatch({
      acks: -1,
      topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
    });
  }
}
