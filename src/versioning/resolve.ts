import {
  compareCausality,
  compareVersions,
  maxVersion,
  mergeVectors,
  vectorEntry,
  vectorsEqual,
  type RowVersion,
} from './version.js';

/**
 * How concurrent writes to the same row are decided.
 * - `lww`: last writer wins by `(hlc, origin)`;
 * - `region-priority`: a write from a region earlier in `order` beats a
 *   concurrent write from a later or unlisted region; unlisted regions rank
 *   after all listed ones and fall back to last-writer-wins among themselves.
 *   The exact order is {@link versionOrder}'s.
 *
 * Every region must resolve a table with the same strategy (and list): the
 * join is only a join under one order, and regions deciding under different
 * ones, or across a change while events are in flight, can keep different rows.
 */
export type ConflictStrategy =
  | { readonly kind: 'lww' }
  | { readonly kind: 'region-priority'; readonly order: readonly string[] };

/** What happened to one incoming row version; the `result` label of `cdc_events_applied_total`. */
export type ApplyOutcome = 'applied' | 'stale' | 'conflict_won' | 'conflict_lost';

/** The applier's decision for one row. */
export interface Resolution {
  outcome: ApplyOutcome;
  /** Whose row image (or delete) the row ends with. */
  winner: 'incoming' | 'local';
  /** The version stored after the apply (`_cdc_ver`, with `_cdc_ts = resulting.hlc`). */
  resulting: RowVersion;
  /**
   * Whether `resulting` differs from `local`. When `winner` is `local` and this
   * is true (LWW: local won a conflict and absorbed the loser's vector), the
   * applier must still write the version columns, keeping the local data:
   * the stored version is part of the join, and leaving it behind makes
   * regions disagree about what later writes causally follow.
   */
  versionChanged: boolean;
}

/** The inputs of {@link resolve}. */
export interface ResolveInput {
  /** The effective version of the local row or tombstone, null when the key never existed here. */
  local: RowVersion | null;
  incoming: RowVersion;
  strategy: ConflictStrategy;
}

/*
 * Why region priority is an order on whole versions, not on origins.
 *
 * DESIGN.md §2 needs every apply to be a join (commutative, associative,
 * idempotent), or regions that receive the same events in different orders
 * end in different states. For `lww` the join is the max under the total
 * order (hlc, origin); the HLC rule makes every causal successor larger, so
 * "causally after → applied" and "keep the larger" never disagree.
 *
 * The obvious region-priority rule, "causally after → applied; concurrent →
 * the origin earlier in the list wins", is NOT associative. With priority
 * [A, C, B]:
 *   a = A's write            vv {A:10}
 *   b = B's write after a    vv {A:10, B:20}     (b causally follows a)
 *   c = C's write            vv {C:15}           (concurrent with a and b)
 * a < b by causality, b < c by priority (C before B), c < a by priority (A
 * before C): a cycle. A region receiving a, b, c ends with c; one receiving
 * c, a, b ends with b (resolve.test.ts replays exactly this). The rule can
 * also not be "max under (rank(origin), hlc)": that ignores causality, so a
 * lower-priority region could never again overwrite a row a higher-priority
 * one once wrote.
 *
 * So the order has to be total on versions (a join), extend causality (a
 * causal successor always wins), and still let the earlier-listed region
 * win the common conflict: two regions writing concurrently on top of the
 * same base version. Comparing the vectors' entries for the listed regions
 * in priority order, lexicographically, then (hlc, origin), does all three:
 * - total: the last step is the LWW order;
 * - extends causality: a successor's vector is pointwise ≥, so it is never
 *   smaller on the listed entries, and if they are all equal its hlc is
 *   larger (HLC rule);
 * - common base: the two writes have equal entries except each its own
 *   origin's, which only the writer's increased, so the first listed origin
 *   decides; two unlisted origins compare equal on every listed entry and
 *   fall back to LWW.
 * In general it reads as "the version that has seen the newer write from the
 * highest-priority region wins". In the cycle above it yields b everywhere:
 * a beats c (A first), and b is an ordinary overwrite of a.
 *
 * The resulting vector. Under `lww` the stored vv is the merge of both
 * vectors whatever wins, so a later write dominates both and is not counted
 * as a conflict where the loser is still stored; the order never reads vv, so
 * the result is (LWW max) × (pointwise max), a product of joins, hence a join.
 * Under `region-priority` the order reads vv, and merging would move the
 * result up the order past versions that beat the winner: with priority
 * [P, Q], x = {P:5, Q:1} beats y = {P:3, Q:9}, their merge {P:5, Q:9} then
 * beats z = {P:5, Q:5}, which beats x; grouping (x y) z and x (y z) pick
 * different winners. So the winner keeps its own vector, and vectors merge
 * only between versions of the same write ((hlc, origin) and listed entries
 * equal, merging cannot move it). The cost: a write that follows a
 * region-priority winner is still concurrent with the loser, so a region
 * where the loser is stored in flight counts a conflict (which the follower
 * wins, since it is above the winner). Data still converges; only that count
 * is pessimistic.
 *
 * Every operation here keeps versions well-formed (vv[origin] = hlc = max vv),
 * which is what the HLC argument above needs; decodeStoredVersion rejects
 * anything else from outside.
 */

/**
 * The total order a strategy keeps, as a comparator (-1/0/1). 0 means the same
 * write (same `hlc` and `origin`, and for region priority the same listed
 * entries). Exposed so that callers that must pick among versions (snapshot
 * overlap, tombstone purges) agree with {@link resolve}.
 */
export function versionOrder(
  strategy: ConflictStrategy,
): (a: RowVersion, b: RowVersion) => -1 | 0 | 1 {
  if (strategy.kind === 'lww') {
    return compareVersions;
  }
  const listed = [...new Set(strategy.order)];
  return (a, b) => {
    for (const region of listed) {
      const left = vectorEntry(a.vv, region);
      const right = vectorEntry(b.vv, region);
      if (left !== right) {
        return left < right ? -1 : 1;
      }
    }
    return compareVersions(a, b);
  };
}

/**
 * The join a strategy applies: the version a row ends with after seeing both
 * `a` and `b`, in either order. Commutative, associative and idempotent on
 * the whole record, vectors included; see the comment above for why the
 * vector merges under `lww` and not across different writes under
 * `region-priority`.
 */
export function joinVersions(strategy: ConflictStrategy, a: RowVersion, b: RowVersion): RowVersion {
  const order = versionOrder(strategy)(a, b);
  if (order === 0) {
    // The same write seen with different knowledge; merging keeps its place in either order.
    return maxVersion(a, b);
  }
  const winner = order > 0 ? a : b;
  if (strategy.kind === 'region-priority') {
    return winner;
  }
  const vv = mergeVectors(a.vv, b.vv);
  return vectorsEqual(vv, winner.vv) ? winner : { origin: winner.origin, hlc: winner.hlc, vv };
}

function sameVersion(a: RowVersion, b: RowVersion): boolean {
  return compareVersions(a, b) === 0 && vectorsEqual(a.vv, b.vv);
}

/**
 * Decides one incoming row version against the local one: which image the
 * row keeps, which version it stores, and how to count it.
 *
 * The decision is {@link joinVersions}, so it depends only on the two
 * versions and never on arrival order: replays, duplicates and reorderings
 * converge. For `lww` the winner always equals `maxVersion(local, incoming)`
 * (and the stored vector is the merge of both). Causality only labels the
 * outcome: a causally later incoming version is `applied`, a dominated or
 * equal one `stale`, a concurrent one `conflict_won`/`conflict_lost`. When
 * every write obeyed the HLC rule, the order agrees with causality
 * (convergence.test.ts checks it on simulated histories); should a version
 * break the rule (causally after yet ordered below, or the reverse), the
 * order still decides and the outcome is labelled a conflict, so the anomaly
 * is counted instead of silently diverging.
 */
export function resolve({ local, incoming, strategy }: ResolveInput): Resolution {
  if (local === null) {
    return { outcome: 'applied', winner: 'incoming', resulting: incoming, versionChanged: true };
  }
  const order = versionOrder(strategy)(incoming, local);
  const causality = compareCausality(incoming, local);
  const resulting = joinVersions(strategy, local, incoming);
  const versionChanged = !sameVersion(resulting, local);
  if (order > 0 || (order === 0 && causality === 'after')) {
    return {
      outcome: causality === 'after' ? 'applied' : 'conflict_won',
      winner: 'incoming',
      resulting,
      versionChanged,
    };
  }
  // Local stays: ordered below, or the same write (order 0) whose incoming
  // sighting adds no knowledge (stale) or only some (just the vector grows).
  const dominated = causality === 'before' || causality === 'equal' || order === 0;
  return {
    outcome: dominated ? 'stale' : 'conflict_lost',
    winner: 'local',
    resulting,
    versionChanged,
  };
}
