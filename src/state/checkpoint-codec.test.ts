import {
  decodeCheckpoint,
  isFencedOut,
  namespacedKey,
  normalizeKeyPrefix,
} from './checkpoint-codec.js';

describe('checkpoint codec', () => {
  it('namespaces keys under a prefix given with or without its trailing colon', () => {
    expect(namespacedKey(normalizeKeyPrefix('cdc:us-east'), 'app')).toBe('cdc:us-east:app');
    expect(namespacedKey(normalizeKeyPrefix('cdc:us-east:'), 'app')).toBe('cdc:us-east:app');
    expect(namespacedKey(normalizeKeyPrefix(undefined), 'app')).toBe('app');
  });

  it('drops fields it does not know, so a newer writer does not look like corruption', () => {
    expect(decodeCheckpoint({ position: '1-1-1', savedAtMs: 5, addedLater: true })).toEqual({
      position: '1-1-1',
      savedAtMs: 5,
    });
  });

  it('keeps a meta key named __proto__ as plain data', () => {
    const decoded = decodeCheckpoint(
      JSON.parse('{"position":"p","savedAtMs":1,"meta":{"__proto__":"x"}}'),
    );
    expect(decoded).toEqual({ position: 'p', savedAtMs: 1, meta: { ['__proto__']: 'x' } });
    expect(Object.getPrototypeOf('meta' in decoded ? decoded.meta : {})).toBe(Object.prototype);
  });

  it.each([
    [null, 'not an object'],
    [[], 'not an object'],
    [{ savedAtMs: 1 }, 'position'],
    [{ position: 'p', savedAtMs: '1' }, 'savedAtMs'],
    [{ position: 'p', savedAtMs: Infinity }, 'savedAtMs'],
    [{ position: 'p', savedAtMs: 1, meta: [] }, 'meta'],
    [{ position: 'p', savedAtMs: 1, meta: { a: 1 } }, 'meta.a'],
  ])('refuses %j (%s)', (value, problem) => {
    const decoded = decodeCheckpoint(value);
    expect('problem' in decoded && decoded.problem).toContain(problem);
  });

  it('fences out lower and missing tokens only once a token is recorded', () => {
    expect(isFencedOut(undefined, undefined)).toBe(false);
    expect(isFencedOut(undefined, 0)).toBe(false);
    expect(isFencedOut(5, 5)).toBe(false);
    expect(isFencedOut(5, 6)).toBe(false);
    expect(isFencedOut(5, 4)).toBe(true);
    expect(isFencedOut(5, undefined)).toBe(true);
  });
});
