import { describe, expect, it } from '@jest/globals';
import {
  decodeSnapshotState,
  encodeSnapshotState,
  planStart,
  snapshotCheckpointKey,
  type SnapshotState,
} from './checkpoint.js';

const state: SnapshotState = {
  keyColumns: ['a', 'b'],
  after: [5, 'x'],
  rows: 1000,
  done: false,
  startedAtMs: 1,
};

describe('snapshot checkpoints', () => {
  it('round-trips through the store position text', () => {
    const key = snapshotCheckpointKey('app', 'users');
    expect(key).toBe('snapshot/app.users');
    expect(decodeSnapshotState(encodeSnapshotState(state), key)).toEqual(state);
  });

  it('rejects what it did not write, naming the key and the way out', () => {
    for (const text of [
      'nope',
      '[]',
      '{"format":2}',
      JSON.stringify({ ...state, format: 1, after: [1] }),
    ]) {
      expect(() => decodeSnapshotState(text, 'snapshot/app.t')).toThrow(
        /snapshot checkpoint snapshot\/app.t is not usable .*--restart/,
      );
    }
  });

  it('resumes an unfinished snapshot and starts over after a finished one or --restart', () => {
    expect(planStart(undefined, ['a', 'b'], false, 7)).toMatchObject({
      resumed: false,
      state: { after: null, rows: 0, done: false, startedAtMs: 7 },
    });
    expect(planStart(state, ['a', 'b'], false, 7)).toMatchObject({ resumed: true, state });
    expect(planStart({ ...state, done: true }, ['a', 'b'], false, 7)).toMatchObject({
      resumed: false,
      reason: 'the previous snapshot had completed',
      state: { after: null, rows: 0 },
    });
    expect(planStart(state, ['a', 'b'], true, 7)).toMatchObject({
      resumed: false,
      reason: '--restart',
    });
  });

  it('refuses to resume over a changed primary key', () => {
    expect(() => planStart(state, ['id'], false, 7)).toThrow(/key is now \(id\).*--restart/);
  });
});
