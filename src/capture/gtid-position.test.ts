import { describe, expect, it } from '@jest/globals';
import { furthestPosition, positionCovers } from './gtid-position.js';

describe('positionCovers', () => {
  it('compares MariaDB positions per domain', () => {
    expect(positionCovers('0-1-10,1-2-5', '0-1-9,1-2-5')).toBe(true);
    expect(positionCovers('0-1-9,1-2-5', '0-1-10,1-2-5')).toBe(false);
    expect(positionCovers('0-1-10', '0-1-10,1-2-1')).toBe(false);
    expect(positionCovers('0-1-10,1-2-1', '0-1-10')).toBe(true);
    // Another server in the same domain (a failover): sequence numbers do not compare.
    expect(positionCovers('0-3-2', '0-1-10')).toBeUndefined();
    // Beyond 2^53 stays exact.
    expect(positionCovers('0-1-9007199254740993', '0-1-9007199254740992')).toBe(true);
    expect(positionCovers('0-1-9007199254740992', '0-1-9007199254740993')).toBe(false);
  });

  it('compares MySQL GTID sets as sets', () => {
    const u = '3e11fa47-71ca-11e1-9e33-c80aa9429562';
    const v = '4e11fa47-71ca-11e1-9e33-c80aa9429562';
    expect(positionCovers(`${u}:1-10`, `${u}:1-9`)).toBe(true);
    expect(positionCovers(`${u}:1-5:7-10`, `${u}:1-10`)).toBe(false);
    expect(positionCovers(`${u}:1-5:6-10`, `${u}:2-8`)).toBe(true);
    expect(positionCovers(`${u}:1-10`, `${u}:1-10,${v}:1`)).toBe(false);
    expect(positionCovers(`${u.toUpperCase()}:1-10,${v}:1-2`, `${u}:3,${v}:2`)).toBe(true);
    expect(positionCovers(`${u}:tag:1-5`, `${u}:1-2`)).toBe(false);
    expect(positionCovers(`${u}:1-2:tag:1-5`, `${u}:tag:3`)).toBe(true);
  });

  it('treats the empty position as the start of everything', () => {
    expect(positionCovers('0-1-1', '')).toBe(true);
    expect(positionCovers('', '0-1-1')).toBe(false);
    expect(positionCovers('', '')).toBe(true);
  });

  it('does not compare positions of different server kinds', () => {
    expect(positionCovers('0-1-1', '3e11fa47-71ca-11e1-9e33-c80aa9429562:1')).toBeUndefined();
  });

  it('rejects text that is no position', () => {
    expect(() => positionCovers('0-1-x', '0-1-1')).toThrow('not a MariaDB GTID position');
    expect(() => positionCovers('u:1-x', 'u:1')).toThrow('not a MySQL GTID set');
  });
});

describe('furthestPosition', () => {
  it('takes the copy that covers the other, whatever the save times', () => {
    const ahead = { position: '0-1-20', savedAtMs: 1, from: 'kafka' };
    const behind = { position: '0-1-10', savedAtMs: 5, from: 'store' };
    expect(furthestPosition(ahead, behind).from).toBe('kafka');
    expect(furthestPosition(behind, ahead).from).toBe('kafka');
  });

  it('takes the later save when neither covers the other', () => {
    const a = { position: '0-1-20', savedAtMs: 1, from: 'a' };
    const b = { position: '0-3-2', savedAtMs: 2, from: 'b' };
    expect(furthestPosition(a, b).from).toBe('b');
    expect(furthestPosition(b, a).from).toBe('b');
  });
});
