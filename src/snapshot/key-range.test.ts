import { describe, expect, it } from '@jest/globals';
import { keyComparison, keyId, keyOrder, keyRange } from './key-range.js';

describe('key range predicates', () => {
  it('compares a single-column key directly', () => {
    expect(keyComparison(['id'], '>', [5])).toEqual({ sql: '`id` > ?', params: [5] });
    expect(keyComparison(['id'], '<=', [9], undefined, 't')).toEqual({
      sql: 't.`id` <= ?',
      params: [9],
    });
  });

  it('expands a composite key lexicographically, strict on all but the last column for <=', () => {
    expect(keyComparison(['a', 'b', 'c'], '>', [1, 'x', 3])).toEqual({
      sql: '(`a` > ? OR (`a` = ? AND `b` > ?) OR (`a` = ? AND `b` = ? AND `c` > ?))',
      params: [1, 1, 'x', 1, 'x', 3],
    });
    expect(keyComparison(['a', 'b'], '<=', [1, 2])).toEqual({
      sql: '(`a` < ? OR (`a` = ? AND `b` <= ?))',
      params: [1, 1, 2],
    });
  });

  it('turns encoded values into parameters per column', () => {
    const { params } = keyComparison(['k', 'bin'], '>', [1, 'AAE='], (i, v) =>
      i === 1 ? Buffer.from(String(v), 'base64') : v,
    );
    expect(params).toEqual([1, 1, Buffer.from([0, 1])]);
  });

  it('combines both ends of a chunk, and is TRUE when unbounded', () => {
    expect(keyRange(['id'], [10], [20])).toEqual({
      sql: '`id` > ? AND `id` <= ?',
      params: [10, 20],
    });
    expect(keyRange(['id'], null, [20]).sql).toBe('`id` <= ?');
    expect(keyRange(['id'], null, null)).toEqual({ sql: 'TRUE', params: [] });
  });

  it('refuses a boundary that does not fit the key', () => {
    expect(() => keyComparison(['a', 'b'], '>', [1])).toThrow('needs 2 value(s)');
    expect(() => keyComparison([], '>', [])).toThrow('at least one key column');
  });

  it('quotes identifiers in ORDER BY and keeps key ids stable', () => {
    expect(keyOrder(['a', 'we`ird'], 't')).toBe('t.`a`, t.`we``ird`');
    expect(keyId([1, 'x'])).toBe('[1,"x"]');
  });
});
