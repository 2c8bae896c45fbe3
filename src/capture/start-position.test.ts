import { describe, expect, it } from '@jest/globals';
import { decideStartPosition, positionLostError, positionProblem } from './start-position.js';

const at = (position: string, savedAtMs = 1) => ({ position, savedAtMs });

describe('decideStartPosition', () => {
  it('resumes from the store when Kafka has no copy yet (an upgraded daemon)', () => {
    const decision = decideStartPosition({
      stored: at('0-1-5'),
      logged: undefined,
      topicsWithEvents: ['cdc.east.app.t'],
      choice: undefined,
    });
    expect(decision).toEqual({
      kind: 'resume',
      checkpoint: at('0-1-5'),
      from: 'store',
      storeBehind: false,
    });
  });

  it('recovers from Kafka when the store lost its keys', () => {
    const decision = decideStartPosition({
      stored: undefined,
      logged: at('0-1-9'),
      topicsWithEvents: ['cdc.east.app.t'],
      choice: { kind: 'accept-gap' },
    });
    // A position exists, so the operator's gap option is not used.
    expect(decision).toEqual({
      kind: 'resume',
      checkpoint: at('0-1-9'),
      from: 'kafka',
      storeBehind: true,
    });
  });

  it('takes the copy further ahead when the store came back behind (a failover to a lagging replica)', () => {
    const decision = decideStartPosition({
      stored: at('0-1-5', 10),
      logged: at('0-1-9', 5),
      topicsWithEvents: [],
      choice: undefined,
    });
    expect(decision).toMatchObject({ kind: 'resume', from: 'kafka', storeBehind: true });
    const ahead = decideStartPosition({
      stored: at('0-1-12', 10),
      logged: at('0-1-9', 12),
      topicsWithEvents: [],
      choice: undefined,
    });
    expect(ahead).toMatchObject({ kind: 'resume', from: 'store', storeBehind: false });
  });

  it('starts silently only when there is no position and no event anywhere', () => {
    expect(
      decideStartPosition({
        stored: undefined,
        logged: undefined,
        topicsWithEvents: [],
        choice: undefined,
      }),
    ).toEqual({ kind: 'first-start' });
  });

  it('refuses to guess when the topics hold events but no position is left', () => {
    expect(
      decideStartPosition({
        stored: undefined,
        logged: undefined,
        topicsWithEvents: ['cdc.east._cdc._cdc_heartbeat'],
        choice: undefined,
      }),
    ).toEqual({ kind: 'lost', topicsWithEvents: ['cdc.east._cdc._cdc_heartbeat'] });
  });

  it("follows the operator's choice when no position is left", () => {
    for (const choice of [
      { kind: 'accept-gap' as const },
      { kind: 'replay-from-oldest-binlog' as const },
      { kind: 'resume-from-gtid' as const, position: '0-1-3' },
    ]) {
      expect(
        decideStartPosition({
          stored: undefined,
          logged: undefined,
          topicsWithEvents: ['cdc.east.app.t'],
          choice,
        }),
      ).toEqual({ kind: 'operator', choice });
    }
  });
});

describe('positionLostError', () => {
  it('says what happened and names every choice with its position', () => {
    const error = positionLostError({
      where: 'region east (MySQL root@127.0.0.1:3307)',
      region: 'east',
      storeDescription: "Redis redis://127.0.0.1:6379, key prefix 'cdc:east'",
      positionTopic: 'cdc._positions.east',
      topicsWithEvents: ['a', 'b', 'c', 'd', 'e', 'f', 'g'],
      currentPosition: '0-1-100',
      oldestPosition: '0-1-2',
    });
    expect(error.code).toBe('CAPTURE_POSITION_LOST');
    expect(error.retriable).toBe(false);
    expect(error.message).toContain('cdc._positions.east');
    expect(error.message).toContain('and 2 more');
    expect(error.message).toContain(
      "--replay-from-oldest-binlog: replay from the oldest binlog still on the server (position '0-1-2')",
    );
    expect(error.message).toContain(
      "--accept-gap: start at the current end of the binlog ('0-1-100')",
    );
    expect(error.message).toContain('--resume-from-gtid <position>');
  });
});

describe('positionProblem', () => {
  it('accepts both server kinds and names what is wrong otherwise', () => {
    expect(positionProblem('0-1-5,1-2-7')).toBeUndefined();
    expect(positionProblem('3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5')).toBeUndefined();
    expect(positionProblem('0-1-x')).toContain('not a MariaDB GTID position');
  });
});
