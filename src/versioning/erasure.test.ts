import {
  erasedVersion,
  erasureMark,
  erasureTombstoneKey,
  parseErasureTombstoneKey,
  seesErasure,
} from './erasure.js';
import { validateRowVersion, type RowVersion } from './version.js';

const v = (origin: string, hlc: number, vv: Record<string, number>): RowVersion =>
  validateRowVersion({ origin, hlc, vv: { ...vv, [origin]: hlc } });

describe('erasure', () => {
  const erase = v('eu-west', 2_000, { 'us-east': 1_000 });
  const mark = erasureMark(erase);

  it('is seen only by versions whose vector covers its own write', () => {
    expect(seesErasure(erase, mark)).toBe(true);
    // A later local write that inherited the tombstone's vector.
    expect(seesErasure(v('us-east', 3_000, { 'eu-west': 2_000 }), mark)).toBe(true);
    // A write with a later clock that never saw it still has not.
    expect(seesErasure(v('us-east', 9_000, { 'eu-west': 1_999 }), mark)).toBe(false);
    expect(seesErasure(v('eu-central', 1_500, {}), mark)).toBe(false);
  });

  it('keeps a well-formed tombstone version that descends from both sides', () => {
    const newer = v('us-east', 9_000, { 'eu-central': 5_000 });
    const tomb = erasedVersion(newer, erase);
    expect(tomb).toEqual(v('us-east', 9_000, { 'eu-central': 5_000, 'eu-west': 2_000 }));
    expect(seesErasure(tomb, mark)).toBe(true);
    const older = v('eu-central', 500, {});
    expect(erasedVersion(older, erase)).toEqual(
      v('eu-west', 2_000, { 'us-east': 1_000, 'eu-central': 500 }),
    );
    expect(erasedVersion(null, erase)).toBe(erase);
  });

  it('marks the tombstone without any key value, and reads the mark back', () => {
    const text = erasureTombstoneKey(mark);
    expect(text).toBe('{"erased":{"origin":"eu-west","hlc":2000}}');
    expect(parseErasureTombstoneKey(text)).toEqual(mark);
    // MySQL's JSON type prints with spaces.
    expect(parseErasureTombstoneKey('{"erased": {"hlc": 2000, "origin": "eu-west"}}')).toEqual(
      mark,
    );
    expect(parseErasureTombstoneKey('["42"]')).toBeUndefined();
    expect(parseErasureTombstoneKey('[]')).toBeUndefined();
    expect(parseErasureTombstoneKey(null)).toBeUndefined();
    expect(parseErasureTombstoneKey('{"erased": {"origin": 1, "hlc": 2}}')).toBeUndefined();
  });
});
