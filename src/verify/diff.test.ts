import { describe, expect, it } from '@jest/globals';
import type { VersionedRow } from '../snapshot/rows.js';
import type { RowVersion } from '../versioning/version.js';
import { assessKey, differingKeys, repairVersion, sameStates, type RegionState } from './diff.js';
import { formatDivergence, formatSummary, formatVersion } from './report.js';

const v = (
  origin: string,
  hlc: number,
  vv: Record<string, number> = { [origin]: hlc },
): RowVersion => ({
  origin,
  hlc,
  vv,
});

const row = (id: number, note: string, version: RowVersion | null = v('a', 1)): VersionedRow => ({
  id: JSON.stringify([id]),
  key: [id],
  pk: { id },
  image: { id, note },
  version,
});

describe('differingKeys', () => {
  it('finds keys whose data differs or that are missing somewhere, ignoring versions', () => {
    const keys = differingKeys(
      new Map([
        ['a', [row(1, 'x'), row(2, 'y', v('a', 5)), row(3, 'z')]],
        ['b', [row(1, 'x'), row(2, 'y', v('b', 9)), row(4, 'w')]],
        ['c', [row(1, 'changed'), row(2, 'y'), row(3, 'z'), row(4, 'w')]],
      ]),
    );
    expect(keys.map((k) => k.key)).toEqual([[1], [3], [4]]);
  });
});

const state = (region: string, note: string | null, version: RowVersion | null): RegionState => ({
  region,
  image: note === null ? null : { id: 7, note },
  version,
});

describe('assessKey', () => {
  it('finds nothing when all regions hold the same data, whatever their versions', () => {
    expect(
      assessKey('app.t', [7], { id: 7 }, [state('a', 'x', v('a', 1)), state('b', 'x', v('b', 2))]),
    ).toBeNull();
    expect(
      assessKey('app.t', [7], { id: 7 }, [state('a', null, null), state('b', null, v('b', 2))]),
    ).toBeNull();
  });

  it('names the region with the newest version as winner and the others as behind', () => {
    const d = assessKey('app.t', [7], { id: 7 }, [
      state('a', 'old', v('a', 10)),
      state('b', 'new', v('b', 20, { a: 10, b: 20 })),
      state('c', 'new', v('b', 20, { a: 10, b: 20 })),
    ]);
    expect(d).toMatchObject({
      kind: 'behind',
      winner: 'b',
      lagging: ['a'],
      differingColumns: ['note'],
    });
  });

  it('lets a newer tombstone win over an older row', () => {
    const d = assessKey('app.t', [7], { id: 7 }, [
      state('a', null, v('a', 30)),
      state('b', 'x', v('a', 10)),
    ]);
    expect(d).toMatchObject({ kind: 'behind', winner: 'a', lagging: ['b'], differingColumns: [] });
  });

  it('treats a missing row without tombstone as oldest', () => {
    const d = assessKey('app.t', [7], { id: 7 }, [
      state('a', null, null),
      state('b', 'x', v('b', 1)),
    ]);
    expect(d).toMatchObject({ kind: 'behind', winner: 'b', lagging: ['a'] });
  });

  it('resolves equal versions with different data to the copy of the version origin, else by name', () => {
    const same = v('b', 10);
    expect(
      assessKey('app.t', [7], { id: 7 }, [state('a', 'mine', same), state('b', 'theirs', same)]),
    ).toMatchObject({ kind: 'equal-version', winner: 'b', lagging: ['a'] });
    const foreign = v('z', 10);
    expect(
      assessKey('app.t', [7], { id: 7 }, [state('b', 'one', foreign), state('a', 'two', foreign)]),
    ).toMatchObject({ kind: 'equal-version', winner: 'a', lagging: ['b'] });
  });

  it('gives up on keys without any readable version', () => {
    expect(
      assessKey('app.t', [7], { id: 7 }, [state('a', 'x', null), state('b', 'y', null)]),
    ).toMatchObject({ kind: 'unversioned', winner: undefined });
  });
});

describe('repairVersion', () => {
  it('outranks and causally follows every state seen, written by the winner', () => {
    const d = assessKey('app.t', [7], { id: 7 }, [
      state('a', 'mine', v('b', 10, { a: 5, b: 10 })),
      state('b', 'theirs', v('b', 10, { b: 10, c: 3 })),
    ])!;
    expect(repairVersion(d, 8)).toEqual({ origin: 'b', hlc: 11, vv: { a: 5, b: 11, c: 3 } });
    expect(repairVersion(d, 500).hlc).toBe(500);
  });
});

describe('sameStates', () => {
  it('compares data and full versions', () => {
    const s = [state('a', 'x', v('a', 1)), state('b', null, null)];
    expect(sameStates(s, [state('a', 'x', v('a', 1)), state('b', null, null)])).toBe(true);
    expect(
      sameStates(s, [state('a', 'x', v('a', 1, { a: 1, b: 0.5 })), state('b', null, null)]),
    ).toBe(false);
    expect(sameStates(s, [state('a', 'y', v('a', 1)), state('b', null, null)])).toBe(false);
  });
});

describe('verify report', () => {
  it('prints a divergent row with every region version and the differing columns', () => {
    const d = assessKey('app.t', [7], { id: 7 }, [
      state('east', 'old', v('east', 1_700_000_000_000_001)),
      state(
        'w',
        'new',
        v('w', 1_700_000_000_500_000, { east: 1_700_000_000_000_001, w: 1_700_000_000_500_000 }),
      ),
    ])!;
    expect(formatDivergence(d)).toBe(
      [
        'DIVERGENT app.t pk {"id":7}: east lacks the newest version, held by w (not delivered, or lost)',
        '  east  row     version east@1700000000000001 (2023-11-14 22:13:20.000001 UTC) vv {east:1700000000000001}',
        '  w     row     version w@1700000000500000 (2023-11-14 22:13:20.500000 UTC) vv {east:1700000000000001, w:1700000000500000}',
        '  differing columns:',
        '    note: east="old"  w="new"',
      ].join('\n'),
    );
    expect(formatVersion(null)).toBe('none');
  });

  it('summarises a run', () => {
    expect(
      formatSummary({
        regions: ['a', 'b'],
        tables: 1,
        chunks: 3,
        chunksDiffering: 1,
        rows: 2500,
        resolvedOnRecheck: 1,
        divergent: 0,
        seconds: 1.25,
        governedTables: 0,
        violations: 0,
      }),
    ).toBe(
      'verify a,b: regions match; 1 table, 2500 rows in 3 chunks (1 differed at first sight, 1 row difference was a change in flight) in 1.3 s',
    );
  });
});
