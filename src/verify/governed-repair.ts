/**
 * `verify --repair` of governed tables (docs/GOVERNANCE.md, "Snapshot,
 * bootstrap and repair"): the winner's state is spread through the
 * governed publishing path capture takes (src/capture/governed-publishing.ts),
 * never published directly:
 *
 * - a winning row goes to the zone and masked topics its residency gives,
 *   masked in the winner's region, with eviction notices for the regions
 *   that may not hold it and the audit records, so a row held where it may
 *   not be (a `NOT ALLOWED` violation) is evicted by the same repair;
 * - a winning delete (a tombstone: its row image, and so its residency, is
 *   gone) goes as a value-free eviction notice to the regions that still
 *   hold a row of the key;
 * - where a region already holds the winner's version (equal versions with
 *   different data, or a violation at that version), a copy or notice of
 *   it would be stale there, so the winner first writes a new version of
 *   its own state, as `repairDivergence` does for ungoverned tables.
 *
 * Only a region that holds the winning row plain can publish it: a masked
 * copy is never published as an original. Outcomes carry the key's hash,
 * never the key or a value.
 */
import type { Producer } from 'kafkajs';
import { messageKey, type ChangeEvent } from '../bus/envelope.js';
import { OneShotGovernedPublishing } from '../capture/governed-publishing.js';
import type { RuntimeOptions } from '../config/compile.js';
import type { Logger } from '../core/logger.js';
import type { MysqlConnection } from '../mysql/connection.js';
import type { KeyValues } from '../snapshot/key-range.js';
import { columnTypesOf, keyImage, type TableShape } from '../snapshot/rows.js';
import { compareVersions, type RowVersion } from '../versioning/version.js';
import { repairVersion, type RegionState } from './diff.js';
import type { GovernedDivergence, GovernedTableContext } from './governed.js';
import { repairEvent, rewriteWinnerVersion } from './repair.js';

/** A governed key to repair: the value-free report entry and, kept apart from it, what was read. */
export interface GovernedRepairTarget {
  readonly divergence: GovernedDivergence;
  readonly key: KeyValues;
  readonly states: readonly RegionState[];
}

export type GovernedRepairOutcome =
  | {
      readonly table: string;
      readonly keyHash: string;
      /** `evicted`: a notice only, to regions holding a row no allowed region has. */
      readonly action: 'republished' | 'rewritten' | 'evicted';
      readonly region: string;
    }
  | {
      readonly table: string;
      readonly keyHash: string;
      readonly action: 'skipped';
      readonly reason: string;
    };

/** Repairs one governed key (see the module comment). */
export async function repairGovernedKey(
  target: GovernedRepairTarget,
  shape: TableShape,
  context: GovernedTableContext,
  regionOptions: ReadonlyMap<string, RuntimeOptions>,
  connections: ReadonlyMap<string, MysqlConnection>,
  producerOf: (region: string) => Promise<Producer>,
  logger: Logger,
  now: () => number = Date.now,
): Promise<GovernedRepairOutcome> {
  const d = target.divergence;
  const skipped = (reason: string): GovernedRepairOutcome => ({
    table: d.table,
    keyHash: d.keyHash,
    action: 'skipped',
    reason,
  });
  const winner = repairWinner(target);
  const winning = winner?.version ?? null;
  if (winner === undefined || winning === null)
    return evictOnly(target, shape, context, regionOptions, producerOf, logger, now, skipped);
  const options = regionOptions.get(winner.region) as RuntimeOptions;
  const wrong = new Set([...d.lagging, ...d.violations.map((v) => v.region)]);
  // A copy or notice of the winner's version is stale where that version (or a later one) is held.
  const holdsWinning = (s: RegionState): boolean =>
    s.region !== winner.region &&
    wrong.has(s.region) &&
    s.version !== null &&
    compareVersions(s.version, winning) >= 0;
  let version = winning;
  let action: 'republished' | 'rewritten' = 'republished';
  if (d.kind === 'equal-version' || target.states.some(holdsWinning)) {
    version = repairVersion({ winner: winner.region, states: [...target.states] }, now() * 1000);
    const connection = connections.get(winner.region) as MysqlConnection;
    if (!(await rewriteWinnerVersion(connection, options, shape, winner, target.key, version)))
      return skipped(
        `the row changed in ${winner.region} since it was read; that newer write spreads by itself (verify again)`,
      );
    action = 'rewritten';
  }

  const event = repairChange(shape, target.key, winner, version, now());
  const oneShot = repairPublishing(winner.region, options, context, logger);
  const { publishing, sink } = oneShot;
  const key = messageKey(shape.schema, shape.table, event.pk);
  if (winner.image !== null) {
    const outcome = publishing.publish(sink, context.policy, event, event, key);
    if (outcome.kind !== 'published')
      return skipped(oneShot.refused() ?? `not published (${outcome.kind})`);
  } else {
    const holders = target.states
      .filter((s) => s.image !== null && s.region !== winner.region)
      .map((s) => s.region);
    if (!publishing.evict(sink, context.policy, event, holders))
      return skipped(oneShot.refused() ?? 'no region holds a row of the key to evict');
  }
  const refusal = oneShot.refused();
  if (refusal !== undefined) return skipped(refusal);
  await oneShot.send(await producerOf(winner.region));
  return { table: d.table, keyHash: d.keyHash, action, region: winner.region };
}

/**
 * The state a repair spreads: verify's winner (the newest version among
 * the regions that may hold the row) when it is a delete or a plain row;
 * when it is a masked copy (only a write that bypassed the write guards
 * makes a masked copy newest), the newest state among the regions that
 * hold the row plain, since a masked copy is never published as an
 * original. Undefined when no such region has a readable state.
 */
function repairWinner(target: GovernedRepairTarget): RegionState | undefined {
  const d = target.divergence;
  const audience = (region: string): string =>
    d.states.find((s) => s.region === region)?.audience ?? 'none';
  const chosen = target.states.find((s) => s.region === d.winner);
  if (
    d.kind !== 'unversioned' &&
    chosen?.version !== null &&
    chosen !== undefined &&
    (chosen.image === null || audience(chosen.region) === 'plain')
  )
    return chosen;
  let newest: RegionState | undefined;
  for (const s of target.states) {
    if (audience(s.region) !== 'plain' || s.version === null) continue;
    if (newest?.version == null || compareVersions(s.version, newest.version) > 0) newest = s;
  }
  return newest;
}

/**
 * A key that no region allowed to hold it has any state of (row or
 * tombstone), held where it may not be (`NOT ALLOWED`): there is no winner
 * to spread, so a region that may hold such a row plain sends the holders
 * a notice of a version above theirs, and they delete their copy.
 */
async function evictOnly(
  target: GovernedRepairTarget,
  shape: TableShape,
  context: GovernedTableContext,
  regionOptions: ReadonlyMap<string, RuntimeOptions>,
  producerOf: (region: string) => Promise<Producer>,
  logger: Logger,
  now: () => number,
  skipped: (reason: string) => GovernedRepairOutcome,
): Promise<GovernedRepairOutcome> {
  const d = target.divergence;
  const holders = d.violations.filter((v) => v.kind === 'not-allowed').map((v) => v.region);
  const from = d.states.find((s) => s.audience === 'plain')?.region;
  if (holders.length === 0 || from === undefined)
    return skipped('no region that may hold the row has a readable version to repair with');
  const version = repairVersion({ winner: from, states: [...target.states] }, now() * 1000);
  const event = repairChange(
    shape,
    target.key,
    { region: from, image: null, version },
    version,
    now(),
  );
  const options = regionOptions.get(from) as RuntimeOptions;
  const oneShot = repairPublishing(from, options, context, logger);
  if (!oneShot.publishing.evict(oneShot.sink, context.policy, event, holders))
    return skipped(oneShot.refused() ?? 'the eviction notice could not be sent');
  await oneShot.send(await producerOf(from));
  return { table: d.table, keyHash: d.keyHash, action: 'evicted', region: from };
}

/** The change a repair publishes: `state` at `version`, with the column types masks and notices need. */
function repairChange(
  shape: TableShape,
  key: KeyValues,
  state: RegionState,
  version: RowVersion,
  nowMs: number,
): ChangeEvent {
  return {
    ...repairEvent(shape, { pk: keyImage(shape, key) }, state, version, nowMs),
    types: columnTypesOf(shape),
  };
}

/** The governed path of `region` for one repair (collects, then sends or reports the refusal). */
function repairPublishing(
  region: string,
  options: RuntimeOptions,
  context: GovernedTableContext,
  logger: Logger,
): OneShotGovernedPublishing {
  return new OneShotGovernedPublishing({
    region,
    topicPrefix: options.kafka.topicPrefix,
    zones: context.zones,
    regions: context.regions,
    logger,
  });
}
