import fc from 'fast-check';

import { CdcError } from '../core/errors.js';
import {
  MAX_VECTOR_ENTRIES,
  compareCausality,
  compareVersions,
  decodeStoredVersion,
  effectiveVersion,
  encodeStoredVersion,
  maxVersion,
  mergeVectors,
  parseStoredVersion,
  validateRowVersion,
  vectorEntry,
  vectorLeq,
  type RowVersion,
  type VersionVector,
} from './version.js';

// Failures print their seed; FC_SEED=<seed> replays exactly that run.
fc.configureGlobal({
  numRuns: 500,
  ...(process.env.FC_SEED === undefined ? {} : { seed: Number(process.env.FC_SEED) }),
});

// Few regions and a small hlc range, so that ties, equal vectors and shared
// entries are common; `constructor` checks that vectors never read inherited properties.
const REGIONS = ['us-east', 'eu-west', 'ap-south', 'b', 'constructor'] as const;
const regionArb = fc.constantFrom(...REGIONS);

/** Any well-formed version (vv[origin] = hlc, no entry above hlc), the set decode admits. */
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

const vectorArb: fc.Arbitrary<VersionVector> = fc
  .uniqueArray(fc.tuple(regionArb, fc.nat(30)), { selector: ([region]) => region })
  .map((entries) => Object.fromEntries(entries));

function v(origin: string, hlc: number, vv: Record<string, number>): RowVersion {
  return { origin, hlc, vv };
}

describe('compareVersions / maxVersion', () => {
  it('orders by hlc, then by origin as plain code units', () => {
    expect(compareVersions(v('b', 1, { b: 1 }), v('a', 2, { a: 2 }))).toBe(-1);
    expect(compareVersions(v('eu-west', 5, {}), v('us-east', 5, {}))).toBe(-1);
    expect(compareVersions(v('us-east', 5, {}), v('eu-west', 5, {}))).toBe(1);
    // code units, not locale: '-' (0x2d) sorts before '_' (0x5f) and digits
    expect(compareVersions(v('a-z', 5, {}), v('a_z', 5, {}))).toBe(-1);
    expect(compareVersions(v('a', 5, { a: 5 }), v('a', 5, { a: 5, b: 2 }))).toBe(0);
  });

  it('keeps the larger version, and unions the knowledge of two sightings of the same write', () => {
    const older = v('us-east', 10, { 'us-east': 10 });
    const newer = v('eu-west', 11, { 'eu-west': 11 });
    expect(maxVersion(older, newer)).toBe(newer);
    expect(maxVersion(newer, older)).toBe(newer);
    expect(maxVersion(v('a', 5, { a: 5, b: 2 }), v('a', 5, { a: 5, c: 3 }))).toEqual(
      v('a', 5, { a: 5, b: 2, c: 3 }),
    );
  });

  it('is a total order consistent with itself (antisymmetric, transitive)', () => {
    fc.assert(
      fc.property(versionArb, versionArb, versionArb, (a, b, c) => {
        expect(compareVersions(a, b)).toBe(-compareVersions(b, a) || 0);
        if (compareVersions(a, b) <= 0 && compareVersions(b, c) <= 0) {
          expect(compareVersions(a, c)).toBeLessThanOrEqual(0);
        }
      }),
    );
  });

  it('maxVersion is commutative, associative and idempotent on the whole record', () => {
    fc.assert(
      fc.property(versionArb, versionArb, versionArb, (a, b, c) => {
        expect(maxVersion(a, b)).toEqual(maxVersion(b, a));
        expect(maxVersion(maxVersion(a, b), c)).toEqual(maxVersion(a, maxVersion(b, c)));
        expect(maxVersion(a, a)).toEqual(a);
        // and it is an upper bound of both
        expect(compareVersions(maxVersion(a, b), a)).toBeGreaterThanOrEqual(0);
        expect(compareVersions(maxVersion(a, b), b)).toBeGreaterThanOrEqual(0);
      }),
    );
  });
});

describe('version vectors', () => {
  it('merge pointwise and compare with missing entries as 0', () => {
    expect(mergeVectors({ a: 3, b: 1 }, { b: 4, c: 2 })).toEqual({ a: 3, b: 4, c: 2 });
    expect(vectorLeq({ a: 1 }, { a: 1, b: 5 })).toBe(true);
    expect(vectorLeq({ a: 1, b: 0 }, { a: 1 })).toBe(true);
    expect(vectorLeq({ a: 2 }, { a: 1, b: 5 })).toBe(false);
    // an own entry named like an Object.prototype member is an entry, an inherited member is not
    expect(vectorLeq({ constructor: 1 }, {})).toBe(false);
    expect(vectorLeq({}, { constructor: 1 })).toBe(true);
  });

  it('merge is a join: commutative, associative, idempotent, the least upper bound', () => {
    fc.assert(
      fc.property(vectorArb, vectorArb, vectorArb, (a, b, c) => {
        expect(mergeVectors(a, b)).toEqual(mergeVectors(b, a));
        expect(mergeVectors(mergeVectors(a, b), c)).toEqual(mergeVectors(a, mergeVectors(b, c)));
        expect(vectorLeq(mergeVectors(a, a), a) && vectorLeq(a, mergeVectors(a, a))).toBe(true);
        expect(vectorLeq(a, mergeVectors(a, b))).toBe(true);
        if (vectorLeq(a, c) && vectorLeq(b, c)) {
          expect(vectorLeq(mergeVectors(a, b), c)).toBe(true);
        }
      }),
    );
  });

  describe('compareCausality', () => {
    const first = v('us-east', 100, { 'us-east': 100 });
    const overwrite = v('eu-west', 150, { 'us-east': 100, 'eu-west': 150 });
    const independent = v('ap-south', 120, { 'ap-south': 120 });

    it('a causal chain is "after"', () => {
      expect(compareCausality(overwrite, first)).toBe('after');
    });

    it('a replay is "equal", an older version "before"', () => {
      expect(compareCausality(first, first)).toBe('equal');
      expect(compareCausality(v('us-east', 100, { 'us-east': 100 }), first)).toBe('equal');
      expect(compareCausality(first, overwrite)).toBe('before');
    });

    it('two independent writes are "concurrent", even when one has a larger hlc', () => {
      expect(compareCausality(independent, first)).toBe('concurrent');
      expect(compareCausality(first, independent)).toBe('concurrent');
      expect(compareCausality(independent, overwrite)).toBe('concurrent');
    });

    it('is antisymmetric: swapping the arguments swaps before and after', () => {
      const mirror = { equal: 'equal', before: 'after', after: 'before', concurrent: 'concurrent' };
      fc.assert(
        fc.property(versionArb, versionArb, (a, b) => {
          expect(compareCausality(b, a)).toBe(mirror[compareCausality(a, b)]);
        }),
      );
    });
  });
});

describe('effectiveVersion (DESIGN.md §3)', () => {
  const applied = v('us-east', 1000, { 'us-east': 1000, 'ap-south': 400 });

  it('is the stored version when _cdc_ts still equals its hlc (the last write was applied)', () => {
    expect(effectiveVersion({ tsMicros: 1000, stored: applied, self: 'eu-west' })).toBe(applied);
  });

  it('is a local version when _cdc_ts moved on after the applied write', () => {
    expect(effectiveVersion({ tsMicros: 2000, stored: applied, self: 'eu-west' })).toEqual(
      v('eu-west', 2000, { 'us-east': 1000, 'ap-south': 400, 'eu-west': 2000 }),
    );
  });

  it('lifts a local write above the applied one when the local clock is behind (HLC rule)', () => {
    expect(effectiveVersion({ tsMicros: 700, stored: applied, self: 'eu-west' })).toEqual(
      v('eu-west', 1001, { 'us-east': 1000, 'ap-south': 400, 'eu-west': 1001 }),
    );
  });

  it('replaces the local region entry of an older applied version', () => {
    const seenOwn = v('us-east', 1000, { 'us-east': 1000, 'eu-west': 900 });
    expect(effectiveVersion({ tsMicros: 1500, stored: seenOwn, self: 'eu-west' })).toEqual(
      v('eu-west', 1500, { 'us-east': 1000, 'eu-west': 1500 }),
    );
  });

  it('is a first local version when the applier never wrote the row', () => {
    expect(effectiveVersion({ tsMicros: 42, stored: null, self: 'eu-west' })).toEqual(
      v('eu-west', 42, { 'eu-west': 42 }),
    );
  });

  it('cannot tell two local writes apart while the clock is behind, so _cdc_ts must be HLC-stamped', () => {
    // The contract for whoever stamps _cdc_ts: with a wall clock behind the
    // applied version, two successive local writes would get the same version
    // (and the second would be dropped elsewhere as a duplicate).
    const first = effectiveVersion({ tsMicros: 700, stored: applied, self: 'eu-west' });
    const second = effectiveVersion({ tsMicros: 701, stored: applied, self: 'eu-west' });
    expect(second).toEqual(first);
    // Stamped above the version it replaces, the second write follows the first.
    const stamped = effectiveVersion({ tsMicros: first.hlc + 1, stored: applied, self: 'eu-west' });
    expect(compareCausality(stamped, first)).toBe('after');
  });

  it('a local write after an applied one is causally after it and larger, whatever the clock says', () => {
    fc.assert(
      fc.property(versionArb, fc.nat(40), regionArb, (stored, tsMicros, self) => {
        fc.pre(tsMicros !== stored.hlc);
        const local = effectiveVersion({ tsMicros, stored, self });
        expect(compareCausality(local, stored)).toBe('after');
        expect(compareVersions(local, stored)).toBe(1);
        expect(local.hlc).toBeGreaterThanOrEqual(tsMicros);
        // and it is well-formed again: decode accepts what effectiveVersion produces
        expect(decodeStoredVersion(encodeStoredVersion(local))).toEqual(local);
      }),
    );
  });

  it('refuses a malformed timestamp or local region name (programmer errors)', () => {
    expect(() => effectiveVersion({ tsMicros: -1, stored: null, self: 'eu-west' })).toThrow(
      RangeError,
    );
    expect(() => effectiveVersion({ tsMicros: 1, stored: null, self: 'EU' })).toThrow(RangeError);
  });
});

describe('encodeStoredVersion / decodeStoredVersion', () => {
  it('encodes compactly with sorted vector keys', () => {
    expect(
      encodeStoredVersion(
        v('us-east', 1_732_147_200_123_456, {
          'us-east': 1_732_147_200_123_456,
          'ap-south': 1_732_147_100_000_000,
        }),
      ),
    ).toBe(
      '{"o":"us-east","h":1732147200123456,"vv":{"ap-south":1732147100000000,"us-east":1732147200123456}}',
    );
  });

  it('decodes the brief example and what MySQL JSON columns print (with spaces)', () => {
    const expected = v('us-east', 1_732_147_200_123_456, { 'us-east': 1_732_147_200_123_456 });
    expect(
      decodeStoredVersion('{"o":"us-east","h":1732147200123456,"vv":{"us-east":1732147200123456}}'),
    ).toEqual(expected);
    expect(
      decodeStoredVersion(
        '{"h": 1732147200123456, "o": "us-east", "vv": {"us-east": 1732147200123456}}',
      ),
    ).toEqual(expected);
    expect(parseStoredVersion({ o: 'us-east', h: 1_732_147_200_123_456, vv: expected.vv })).toEqual(
      expected,
    );
  });

  it('round-trips, and equal versions encode to equal text', () => {
    fc.assert(
      fc.property(versionArb, (version) => {
        const text = encodeStoredVersion(version);
        expect(decodeStoredVersion(text)).toEqual(version);
        const reordered = {
          ...version,
          vv: Object.fromEntries(Object.entries(version.vv).reverse()),
        };
        expect(encodeStoredVersion(reordered)).toBe(text);
      }),
    );
  });

  const manyRegions = Object.fromEntries(
    Array.from({ length: MAX_VECTOR_ENTRIES + 1 }, (_, i) => [`r${i}`, 1]),
  );

  it.each([
    ['not JSON', '{"o":"us-east",', 'not JSON'],
    ['empty text', '', 'not JSON'],
    ['an array', '[1,2]', 'expected an object'],
    ['null', 'null', 'expected an object'],
    ['a missing field', '{"o":"a","h":1}', 'missing field "vv"'],
    ['an unknown field', '{"o":"a","h":1,"vv":{"a":1},"x":1}', 'unknown field(s) "x"'],
    ['a numeric origin', '{"o":1,"h":1,"vv":{"a":1}}', 'origin must be a region name'],
    ['an uppercase origin', '{"o":"US","h":1,"vv":{"US":1}}', 'origin must be a region name'],
    [
      'an over-long origin',
      `{"o":"${'a'.repeat(64)}","h":1,"vv":{}}`,
      'origin must be a region name',
    ],
    ['a string hlc', '{"o":"a","h":"1","vv":{"a":1}}', 'hlc must be a non-negative integer'],
    ['a fractional hlc', '{"o":"a","h":1.5,"vv":{"a":1.5}}', 'hlc must be a non-negative integer'],
    ['a negative hlc', '{"o":"a","h":-1,"vv":{"a":-1}}', 'hlc must be a non-negative integer'],
    [
      'an unsafe integer hlc',
      '{"o":"a","h":9007199254740993,"vv":{"a":9007199254740993}}',
      'hlc must be a non-negative integer',
    ],
    ['a vv that is an array', '{"o":"a","h":1,"vv":[1]}', 'vv must be an object'],
    [
      'a bad region key',
      '{"o":"a","h":1,"vv":{"a":1,"Bad Key":1}}',
      'every key of vv must be a region name',
    ],
    [
      'a __proto__ key',
      '{"o":"a","h":1,"vv":{"a":1,"__proto__":1}}',
      'every key of vv must be a region name',
    ],
    ['a null vv entry', '{"o":"a","h":1,"vv":{"a":null}}', 'vv["a"] must be a non-negative'],
    [
      'an unsafe vv entry',
      '{"o":"a","h":5,"vv":{"a":5,"b":1e300}}',
      'vv["b"] must be a non-negative',
    ],
    ['an entry above the hlc', '{"o":"a","h":5,"vv":{"a":5,"b":6}}', 'vv["b"] = 6 is newer'],
    ['an origin missing from vv', '{"o":"a","h":5,"vv":{"b":5}}', 'vv["a"] must equal hlc 5'],
    [
      'too many entries',
      JSON.stringify({ o: 'r0', h: 1, vv: manyRegions }),
      `vv has ${MAX_VECTOR_ENTRIES + 1} entries, at most ${MAX_VECTOR_ENTRIES}`,
    ],
    ['an oversized text', `{"o":"a","h":1,"vv":{"a":1}}${' '.repeat(20_000)}`, 'characters'],
  ])('rejects %s with a clear non-retriable VERSION_INVALID error', (_what, text, message) => {
    let caught: unknown;
    try {
      decodeStoredVersion(text);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(CdcError);
    expect(caught).toMatchObject({ code: 'VERSION_INVALID', retriable: false });
    expect((caught as Error).message).toContain(message);
  });

  it('accepts exactly the entry limit, and region names up to 63 characters', () => {
    const limit = Object.fromEntries(
      Array.from({ length: MAX_VECTOR_ENTRIES }, (_, i) => [`r${i}`, 1]),
    );
    expect(
      Object.keys(decodeStoredVersion(JSON.stringify({ o: 'r0', h: 1, vv: limit })).vv),
    ).toHaveLength(MAX_VECTOR_ENTRIES);
    const longest = `a${'b'.repeat(62)}`;
    expect(
      decodeStoredVersion(JSON.stringify({ o: longest, h: 0, vv: { [longest]: 0 } })).origin,
    ).toBe(longest);
  });

  it('never accepts garbage silently: any decoded value is well-formed', () => {
    fc.assert(
      fc.property(fc.oneof(fc.json(), fc.string()), (text) => {
        let decoded: RowVersion;
        try {
          decoded = decodeStoredVersion(text);
        } catch (error) {
          expect(error).toBeInstanceOf(CdcError);
          return;
        }
        expect(vectorEntry(decoded.vv, decoded.origin)).toBe(decoded.hlc);
      }),
    );
  });

  it('refuses to encode a version that is not well-formed', () => {
    expect(() => encodeStoredVersion(v('a', 5, { a: 4 }))).toThrow(CdcError);
  });
});
