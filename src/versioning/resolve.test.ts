import fc from 'fast-check';

import { joinVersions, resolve, versionOrder, type ConflictStrategy } from './resolve.js';
import {
  compareCausality,
  compareVersions,
  effectiveVersion,
  maxVersion,
  mergeVectors,
  validateRowVersion,
  vectorEntry,
  type RowVersion,
} from './version.js';

// Failures print their seed; FC_SEED=<seed> replays exactly that run.
fc.configureGlobal({
  numRuns: 500,
  ...(process.env.FC_SEED === undefined ? {} : { seed: Number(process.env.FC_SEED) }),
});

const REGIONS = ['us-east', 'eu-west', 'ap-south', 'b', 'constructor'] as const;
const regionArb = fc.constantFrom(...REGIONS);

/** Any well-formed version; few regions and a small hlc range make ties and shared entries common. */
const versionArb: fc.Arbitrary<RowVersion> = fc
  .record({
    origin: regionArb,
    hlc: fc.integer({ min: 0, max: 30 }),
    seen: fc.uniqueArray(fc.tuple(regionArb, fc.nat(30)), { selector: ([region]) => region }),
  })
  .map(({ origin, hlc, seen }) =>
    validateRowVersion({
      origin,
      hlc,
      vv: Object.fromEntries([...seen.map(([r, t]) => [r, Math.min(t, hlc)]), [origin, hlc]]),
    }),
  );

const LWW: ConflictStrategy = { kind: 'lww' };

/** LWW, or a priority list over some of the regions (so unlisted regions occur too). */
const strategyArb: fc.Arbitrary<ConflictStrategy> = fc.oneof(
  fc.constant(LWW),
  fc
    .shuffledSubarray([...REGIONS], { minLength: 0, maxLength: REGIONS.length })
    .map((order): ConflictStrategy => ({ kind: 'region-priority', order })),
);

function v(origin: string, hlc: number, vv: Record<string, number>): RowVersion {
  return { origin, hlc, vv };
}

/** The register after a sequence of deliveries, starting from a key that never existed. */
function applyAll(strategy: ConflictStrategy, versions: readonly RowVersion[]): RowVersion | null {
  let state: RowVersion | null = null;
  for (const incoming of versions) {
    state = resolve({ local: state, incoming, strategy }).resulting;
  }
  return state;
}

/** The resolve-join: what a row holding `local` stores after `incoming` arrives. */
function join(strategy: ConflictStrategy, local: RowVersion, incoming: RowVersion): RowVersion {
  return resolve({ local, incoming, strategy }).resulting;
}

describe('resolve: the decision for one row', () => {
  const east = v('us-east', 100, { 'us-east': 100 });

  it('applies to a key that never existed', () => {
    expect(resolve({ local: null, incoming: east, strategy: LWW })).toEqual({
      outcome: 'applied',
      winner: 'incoming',
      resulting: east,
      versionChanged: true,
    });
  });

  it('applies a causal successor, even one from a lower-priority region', () => {
    const overwrite = v('eu-west', 150, { 'us-east': 100, 'eu-west': 150 });
    for (const strategy of [
      LWW,
      { kind: 'region-priority', order: ['us-east', 'eu-west'] },
    ] as const) {
      expect(resolve({ local: east, incoming: overwrite, strategy })).toEqual({
        outcome: 'applied',
        winner: 'incoming',
        resulting: overwrite,
        versionChanged: true,
      });
    }
  });

  it('skips replays and dominated versions as stale', () => {
    const overwrite = v('eu-west', 150, { 'us-east': 100, 'eu-west': 150 });
    expect(resolve({ local: east, incoming: east, strategy: LWW })).toEqual({
      outcome: 'stale',
      winner: 'local',
      resulting: east,
      versionChanged: false,
    });
    expect(resolve({ local: overwrite, incoming: east, strategy: LWW })).toMatchObject({
      outcome: 'stale',
      winner: 'local',
      resulting: overwrite,
      versionChanged: false,
    });
  });

  describe('lww', () => {
    const west = v('eu-west', 120, { 'eu-west': 120 });

    it('lets the larger (hlc, origin) win a concurrent conflict and stores the merged vector', () => {
      const won = resolve({ local: east, incoming: west, strategy: LWW });
      expect(won).toEqual({
        outcome: 'conflict_won',
        winner: 'incoming',
        resulting: v('eu-west', 120, { 'eu-west': 120, 'us-east': 100 }),
        versionChanged: true,
      });
      // The losing side still stores the merged vector: the applier writes the version columns.
      const lost = resolve({ local: west, incoming: east, strategy: LWW });
      expect(lost).toEqual({
        outcome: 'conflict_lost',
        winner: 'local',
        resulting: won.resulting,
        versionChanged: true,
      });
    });

    it('breaks an hlc tie by origin', () => {
      const tie = v('eu-west', 100, { 'eu-west': 100 });
      expect(resolve({ local: east, incoming: tie, strategy: LWW }).outcome).toBe('conflict_lost');
      expect(resolve({ local: tie, incoming: east, strategy: LWW }).outcome).toBe('conflict_won');
    });

    it('a later local write after the conflict causally follows both sides', () => {
      const { resulting } = resolve({ local: east, incoming: west, strategy: LWW });
      const later = effectiveVersion({ tsMicros: 130, stored: resulting, self: 'ap-south' });
      expect(compareCausality(later, east)).toBe('after');
      expect(compareCausality(later, west)).toBe('after');
      expect(resolve({ local: east, incoming: later, strategy: LWW }).outcome).toBe('applied');
    });

    it('always picks maxVersion(local, incoming) and stores the merge of both vectors', () => {
      fc.assert(
        fc.property(versionArb, versionArb, (local, incoming) => {
          const { resulting, winner } = resolve({ local, incoming, strategy: LWW });
          const max = maxVersion(local, incoming);
          expect(compareVersions(resulting, max)).toBe(0);
          expect(resulting.origin).toBe(max.origin);
          expect(resulting.vv).toEqual(mergeVectors(local.vv, incoming.vv));
          if (compareVersions(incoming, local) !== 0) {
            expect(winner).toBe(compareVersions(incoming, local) > 0 ? 'incoming' : 'local');
          }
        }),
      );
    });
  });

  describe('region-priority', () => {
    const strategy: ConflictStrategy = { kind: 'region-priority', order: ['us-east', 'eu-west'] };
    const base = v('eu-west', 50, { 'eu-west': 50 });
    // Three regions write concurrently on top of the same base version.
    const east = v('us-east', 60, { 'eu-west': 50, 'us-east': 60 });
    const west = v('eu-west', 90, { 'eu-west': 90 });
    const south = v('ap-south', 99, { 'eu-west': 50, 'ap-south': 99 });
    const other = v('b', 95, { 'eu-west': 50, b: 95 });

    it('lets the earlier-listed region win a concurrent conflict whatever the timestamps', () => {
      expect(compareCausality(west, east)).toBe('concurrent');
      expect(resolve({ local: west, incoming: east, strategy })).toEqual({
        outcome: 'conflict_won',
        winner: 'incoming',
        resulting: east,
        versionChanged: true,
      });
      expect(resolve({ local: east, incoming: west, strategy })).toEqual({
        outcome: 'conflict_lost',
        winner: 'local',
        resulting: east,
        versionChanged: false,
      });
    });

    it('ranks unlisted regions after listed ones, and by LWW among themselves', () => {
      expect(resolve({ local: east, incoming: south, strategy }).outcome).toBe('conflict_lost');
      expect(resolve({ local: south, incoming: east, strategy }).outcome).toBe('conflict_won');
      expect(resolve({ local: other, incoming: south, strategy }).outcome).toBe('conflict_won');
      expect(resolve({ local: south, incoming: other, strategy }).outcome).toBe('conflict_lost');
    });

    it('applies a causal overwrite from an unlisted region of a listed one', () => {
      const overwrite = effectiveVersion({ tsMicros: 10, stored: east, self: 'ap-south' });
      expect(resolve({ local: east, incoming: overwrite, strategy }).outcome).toBe('applied');
      expect(resolve({ local: base, incoming: overwrite, strategy }).outcome).toBe('applied');
    });

    it('converges on the 3-version cycle where "causality first, then origin priority" does not', () => {
      // Priority [A, C, B]: b follows a; c is concurrent with both.
      const cyclic: ConflictStrategy = { kind: 'region-priority', order: ['a', 'c', 'b'] };
      const a = v('a', 10, { a: 10 });
      const b = v('b', 20, { a: 10, b: 20 });
      const c = v('c', 15, { c: 15 });
      const naive = (local: RowVersion, incoming: RowVersion): RowVersion => {
        const causality = compareCausality(incoming, local);
        if (causality !== 'concurrent') return causality === 'after' ? incoming : local;
        const rank = (r: string): number => ['a', 'c', 'b'].indexOf(r);
        return rank(incoming.origin) < rank(local.origin) ? incoming : local;
      };
      // The naive rule ends in different states depending on arrival order...
      expect(naive(naive(a, b), c)).toBe(c);
      expect(naive(naive(c, a), b)).toBe(b);
      // ...the version order does not: b is an overwrite of a, which beat c.
      for (const order of [
        [a, b, c],
        [a, c, b],
        [b, a, c],
        [b, c, a],
        [c, a, b],
        [c, b, a],
      ]) {
        expect(applyAll(cyclic, order)).toEqual(b);
      }
    });

    it("keeps the winner's own vector, because merging would break associativity", () => {
      const order: ConflictStrategy = { kind: 'region-priority', order: ['p', 'q'] };
      const x = v('p', 5, { p: 5, q: 1 });
      const y = v('q', 9, { p: 3, q: 9 });
      const z = v('r', 6, { p: 5, q: 5, r: 6 });
      // With merged vectors, x's merge with y would climb above z although z beats x.
      const merging = (l: RowVersion, r: RowVersion): RowVersion => {
        const winner = versionOrder(order)(l, r) >= 0 ? l : r;
        return { ...winner, vv: mergeVectors(l.vv, r.vv) };
      };
      expect(merging(merging(x, y), z).origin).toBe('p');
      expect(merging(x, merging(y, z)).origin).toBe('r');
      expect(join(order, join(order, x, y), z)).toEqual(join(order, x, join(order, y, z)));
      expect(join(order, join(order, x, y), z)).toEqual(z);
    });

    it('still merges the knowledge of two sightings of the same write', () => {
      const seen1 = v('b', 9, { b: 9, 'ap-south': 2 });
      const seen2 = v('b', 9, { b: 9, 'ap-south': 4 });
      expect(resolve({ local: seen1, incoming: seen2, strategy })).toEqual({
        outcome: 'applied',
        winner: 'incoming',
        resulting: seen2,
        versionChanged: true,
      });
    });
  });

  it('labels versions that break the HLC rule as conflicts, and still decides by the order', () => {
    // eu-west wrote at 5 after seeing us-east's write at 5; the HLC rule says above 5.
    const local = v('us-east', 5, { 'us-east': 5 });
    const follower = v('eu-west', 5, { 'us-east': 5, 'eu-west': 5 });
    expect(compareCausality(follower, local)).toBe('after');
    expect(compareVersions(follower, local)).toBe(-1);
    expect(resolve({ local, incoming: follower, strategy: LWW })).toMatchObject({
      outcome: 'conflict_lost',
      winner: 'local',
    });
    // and the other way round: dominated, yet ordered above
    expect(resolve({ local: follower, incoming: local, strategy: LWW })).toMatchObject({
      outcome: 'conflict_won',
      winner: 'incoming',
    });
  });
});

describe('the resolve-join is a semilattice join, vectors included', () => {
  it('is commutative, associative and idempotent for every strategy', () => {
    fc.assert(
      fc.property(strategyArb, versionArb, versionArb, versionArb, (strategy, a, b, c) => {
        expect(join(strategy, a, b)).toEqual(join(strategy, b, a));
        expect(join(strategy, join(strategy, a, b), c)).toEqual(
          join(strategy, a, join(strategy, b, c)),
        );
        expect(join(strategy, a, a)).toEqual(a);
        expect(resolve({ local: a, incoming: a, strategy })).toMatchObject({
          outcome: 'stale',
          versionChanged: false,
        });
        // joinVersions is the same operation
        expect(joinVersions(strategy, a, b)).toEqual(join(strategy, a, b));
      }),
    );
  });

  it('absorbs: a version already joined in changes nothing when it arrives again', () => {
    fc.assert(
      fc.property(strategyArb, versionArb, versionArb, (strategy, a, b) => {
        const joined = join(strategy, a, b);
        for (const again of [a, b]) {
          const replay = resolve({ local: joined, incoming: again, strategy });
          expect(replay.resulting).toEqual(joined);
          expect(replay.versionChanged).toBe(false);
          expect(replay.winner).toBe('local');
        }
      }),
    );
  });

  it('stores a version that a later local write causally follows and outranks', () => {
    fc.assert(
      fc.property(
        strategyArb,
        versionArb,
        versionArb,
        fc.nat(40),
        regionArb,
        (strategy, a, b, ts, self) => {
          const joined = join(strategy, a, b);
          fc.pre(ts !== joined.hlc);
          const later = effectiveVersion({ tsMicros: ts, stored: joined, self });
          expect(compareCausality(later, joined)).toBe('after');
          const decision = resolve({ local: joined, incoming: later, strategy });
          expect(decision.outcome).toBe('applied');
          expect(decision.resulting).toEqual(later);
        },
      ),
    );
  });

  it('reaches the same version from any delivery order, with duplicates', () => {
    const scenario = fc
      .tuple(strategyArb, fc.array(versionArb, { minLength: 1, maxLength: 8 }))
      .chain(([strategy, distinct]) =>
        fc.array(fc.constantFrom(...distinct), { maxLength: 6 }).chain((duplicates) => {
          const deliveries = [...distinct, ...duplicates];
          return fc.tuple(
            fc.constant(strategy),
            fc.constant(deliveries),
            fc.shuffledSubarray(deliveries, {
              minLength: deliveries.length,
              maxLength: deliveries.length,
            }),
          );
        }),
      );
    fc.assert(
      fc.property(scenario, ([strategy, deliveries, permuted]) => {
        const final = applyAll(strategy, deliveries);
        expect(applyAll(strategy, permuted)).toEqual(final);
        // and it is the largest write under the strategy's order
        const order = versionOrder(strategy);
        for (const delivered of deliveries) {
          expect(order(final!, delivered)).toBeGreaterThanOrEqual(0);
        }
        if (strategy.kind === 'lww') {
          const vv = deliveries.reduce<RowVersion['vv']>((acc, d) => mergeVectors(acc, d.vv), {});
          expect(final!.vv).toEqual(vv);
        }
      }),
    );
  });

  it('region priority extends causality: a causal successor always ranks higher', () => {
    fc.assert(
      fc.property(strategyArb, versionArb, fc.nat(40), regionArb, (strategy, stored, ts, self) => {
        fc.pre(ts !== stored.hlc);
        const successor = effectiveVersion({ tsMicros: ts, stored, self });
        expect(versionOrder(strategy)(successor, stored)).toBe(1);
        // listed entries never decrease along causality
        if (strategy.kind === 'region-priority') {
          for (const region of strategy.order) {
            expect(vectorEntry(successor.vv, region)).toBeGreaterThanOrEqual(
              vectorEntry(stored.vv, region),
            );
          }
        }
      }),
    );
  });
});
