import fc from 'fast-check';

import { HybridClock } from './hlc.js';
import { joinVersions, resolve, type ApplyOutcome, type ConflictStrategy } from './resolve.js';
import {
  compareCausality,
  compareVersions,
  effectiveVersion,
  type Causality,
  type RowVersion,
} from './version.js';

// Failures print their seed; FC_SEED=<seed> replays exactly that run.
fc.configureGlobal({
  numRuns: 500,
  ...(process.env.FC_SEED === undefined ? {} : { seed: Number(process.env.FC_SEED) }),
});

/*
 * A simulation of one row replicated between regions whose clocks disagree by
 * up to ± 5 minutes. Each region keeps the row as MySQL would: `_cdc_ts`,
 * `_cdc_ver` and the data (here: the id of the write that produced it). Local
 * writes read the row's effective version and replace it; the applier
 * resolves incoming versions against the effective local one. Deliveries are
 * reordered and duplicated at random.
 */

const REGIONS = ['us-east', 'eu-west', 'ap-south', 'sa-east'] as const;
const NOV_2024 = 1_732_147_200_000_000;
const MINUTE = 60_000_000;

interface Row {
  tsMicros: number;
  stored: RowVersion | null;
  writeId: number;
}

interface Message {
  version: RowVersion;
  writeId: number;
  from: Region;
}

interface Region {
  name: string;
  clock: HybridClock;
  row: Row | null;
  inbox: Message[];
}

type Step =
  | { kind: 'write'; region: number; advanceMicros: number }
  | { kind: 'follow'; region: number; advanceMicros: number }
  | { kind: 'deliver'; region: number; pick: number; duplicate: boolean; advanceMicros: number };

interface Applied {
  outcome: ApplyOutcome;
  causality: Causality | null;
}

interface Written {
  id: number;
  version: RowVersion;
  replaced: RowVersion | null;
}

function simulate(strategy: ConflictStrategy, offsets: readonly number[], steps: readonly Step[]) {
  let trueTime = NOV_2024;
  const regions: Region[] = offsets.map((offset, i) => ({
    name: REGIONS[i] ?? 'unused',
    clock: new HybridClock(() => trueTime + offset),
    row: null,
    inbox: [],
  }));
  const writes: Written[] = [];
  const applied: Applied[] = [];
  const chain: Message[] = [];

  const effective = (region: Region): RowVersion | null =>
    region.row === null
      ? null
      : effectiveVersion({
          tsMicros: region.row.tsMicros,
          stored: region.row.stored,
          self: region.name,
        });

  const write = (region: Region): Message => {
    const replaced = effective(region);
    // The stamp a local write gets: MySQL's clock, raised above the version it
    // replaces (the HLC rule where the row is stamped; see effectiveVersion).
    const tsMicros = replaced === null ? region.clock.now() : region.clock.next(replaced.hlc);
    const id = writes.length;
    region.row = { tsMicros, stored: region.row?.stored ?? null, writeId: id };
    const version = effective(region)!;
    writes.push({ id, version, replaced });
    const message = { version, writeId: id, from: region };
    for (const other of regions) {
      if (other !== region) other.inbox.push(message);
    }
    return message;
  };

  const apply = (region: Region, message: Message): void => {
    const local = effective(region);
    const decision = resolve({ local, incoming: message.version, strategy });
    applied.push({
      outcome: decision.outcome,
      causality: local === null ? null : compareCausality(message.version, local),
    });
    if (decision.winner === 'incoming') {
      region.row = {
        tsMicros: decision.resulting.hlc,
        stored: decision.resulting,
        writeId: message.writeId,
      };
    } else if (decision.versionChanged && region.row !== null) {
      region.row = { ...region.row, tsMicros: decision.resulting.hlc, stored: decision.resulting };
    }
  };

  for (const step of steps) {
    trueTime += step.advanceMicros;
    const region = regions[step.region % regions.length]!;
    if (step.kind === 'write') {
      write(region);
    } else if (step.kind === 'follow') {
      // The next link of a causal chain: the region first sees the chain's
      // latest write, then overwrites whatever it now holds.
      const tip = chain.at(-1);
      if (tip !== undefined && tip.from !== region) {
        apply(region, tip);
      }
      chain.push(write(region));
    } else if (region.inbox.length > 0) {
      const index = step.pick % region.inbox.length;
      const message = step.duplicate ? region.inbox[index]! : region.inbox.splice(index, 1)[0]!;
      apply(region, message);
    }
  }
  // Traffic stops: every region eventually receives everything still in flight (newest first).
  for (const region of regions) {
    for (let message = region.inbox.pop(); message !== undefined; message = region.inbox.pop()) {
      apply(region, message);
    }
  }
  return {
    writes,
    applied,
    chain,
    finals: regions.map((region) => ({ version: effective(region), writeId: region.row?.writeId })),
  };
}

const offsetsArb = fc.array(fc.integer({ min: -5 * MINUTE, max: 5 * MINUTE }), {
  minLength: 2,
  maxLength: REGIONS.length,
});
const regionIndex = fc.nat(REGIONS.length - 1);
// 0 µs steps make writes land in the same microsecond on different regions.
const advanceArb = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 2_000_000 }));
const deliverArb = fc.record({
  kind: fc.constant('deliver' as const),
  region: regionIndex,
  pick: fc.nat(),
  duplicate: fc.boolean(),
  advanceMicros: advanceArb,
});
const followArb = fc.record({
  kind: fc.constant('follow' as const),
  region: regionIndex,
  advanceMicros: advanceArb,
});
const writeArb = fc.record({
  kind: fc.constant('write' as const),
  region: regionIndex,
  advanceMicros: advanceArb,
});
const strategyArb: fc.Arbitrary<ConflictStrategy> = fc.oneof(
  fc.constant<ConflictStrategy>({ kind: 'lww' }),
  fc
    .shuffledSubarray([...REGIONS], { minLength: 1 })
    .map((order): ConflictStrategy => ({ kind: 'region-priority', order })),
);

function expectHlcRule(writes: readonly Written[]): void {
  const names = new Set<string>();
  for (const { version, replaced } of writes) {
    if (replaced !== null) {
      expect(version.hlc).toBeGreaterThan(replaced.hlc);
      expect(compareCausality(version, replaced)).toBe('after');
    }
    // no two writes share a version, so no write can pass for another's duplicate
    const name = `${version.origin}@${version.hlc}`;
    expect(names.has(name)).toBe(false);
    names.add(name);
  }
}

function expectConverged(
  strategy: ConflictStrategy,
  result: ReturnType<typeof simulate>,
): RowVersion {
  const [first, ...others] = result.finals;
  for (const other of others) {
    expect(other).toEqual(first);
  }
  // ...and to the join of every write, the state no delivery order can change
  const joined = result.writes
    .map((w) => w.version)
    .reduce((acc, version) => joinVersions(strategy, acc, version));
  expect(first?.version).toEqual(joined);
  const winner = result.writes.find((w) => compareVersions(w.version, joined) === 0);
  expect(first?.writeId).toBe(winner?.id);
  return joined;
}

describe('replication under clock skew (simulation)', () => {
  it('a causal chain across skewed regions ends with its last write everywhere, counted as no conflict', () => {
    fc.assert(
      fc.property(
        strategyArb,
        offsetsArb,
        fc.array(fc.oneof(followArb, deliverArb), { minLength: 1, maxLength: 60 }),
        (strategy, offsets, steps) => {
          const result = simulate(strategy, offsets, [
            { kind: 'follow', region: 0, advanceMicros: 0 },
            ...steps,
          ]);
          expectHlcRule(result.writes);
          const last = result.chain.at(-1)!.version;
          // the last write beats every earlier one in LWW order, whatever the clocks said
          for (const { version } of result.writes) {
            if (version !== last) expect(compareVersions(last, version)).toBe(1);
          }
          expect(expectConverged(strategy, result)).toEqual(last);
          for (const { outcome } of result.applied) {
            expect(['applied', 'stale']).toContain(outcome);
          }
        },
      ),
    );
  });

  it('concurrent writes, chains, reordering and duplicates converge to the join of all writes', () => {
    fc.assert(
      fc.property(
        strategyArb,
        offsetsArb,
        fc.array(fc.oneof(writeArb, followArb, deliverArb, deliverArb), {
          minLength: 1,
          maxLength: 60,
        }),
        (strategy, offsets, steps) => {
          const result = simulate(strategy, offsets, steps);
          fc.pre(result.writes.length > 0);
          expectHlcRule(result.writes);
          expectConverged(strategy, result);
          // causality and the strategy's order never disagree on reachable versions
          for (const { outcome, causality } of result.applied) {
            if (causality === 'after') expect(outcome).toBe('applied');
            if (causality === 'before' || causality === 'equal') expect(outcome).toBe('stale');
            if (causality === 'concurrent') expect(outcome).toMatch(/^conflict_/);
          }
        },
      ),
    );
  });
});
