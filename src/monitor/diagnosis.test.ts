import { describe, expect, it } from '@jest/globals';

import { diagnoseLag, type LagEvidence } from './diagnosis.js';

const healthy: LagEvidence = {
  source: 'us-east',
  target: 'eu-west',
  lagSeconds: 12,
  backlogMessages: 0,
  backlogBaseline: 5,
  applyBatchSeconds: 0.01,
  applyBatchBaselineSeconds: 0.01,
  sourceCapture: { reachable: true, lagSeconds: 0.2, positionLagBytes: 300 },
};

describe('diagnoseLag', () => {
  it('blames a slow local MySQL when a backlog waits and transactions slowed down', () => {
    const d = diagnoseLag({
      ...healthy,
      backlogMessages: 5000,
      applyBatchSeconds: 0.8,
      applyBatchBaselineSeconds: 0.02,
    });
    expect(d.stage).toBe('apply');
    expect(d.explanation).toMatch(
      /5000 messages wait in Kafka.*800 ms \(usually 20 ms\).*MySQL of eu-west/,
    );
  });

  it('blames the applier when a backlog waits but transactions are as fast as usual', () => {
    const d = diagnoseLag({ ...healthy, backlogMessages: 5000 });
    expect(d.stage).toBe('apply');
    expect(d.explanation).toMatch(/applier of eu-west is not keeping up/);
  });

  it('blames capture when nothing waits and the source daemon does not answer', () => {
    const d = diagnoseLag({
      ...healthy,
      sourceCapture: { reachable: false, error: 'ECONNREFUSED' },
    });
    expect(d.stage).toBe('capture');
    expect(d.explanation).toMatch(/daemon of us-east does not answer \(ECONNREFUSED\)/);
  });

  it('blames capture when the source reports it is behind its binlog', () => {
    const d = diagnoseLag({
      ...healthy,
      sourceCapture: { reachable: true, lagSeconds: 9, positionLagBytes: 50_000_000 },
    });
    expect(d.stage).toBe('capture');
    expect(d.explanation).toMatch(
      /capture in us-east is behind its binlog \(9\.0 s, 50000000 bytes\)/,
    );
  });

  it('points between the stages when capture is current and nothing waits', () => {
    expect(diagnoseLag(healthy).stage).toBe('kafka');
  });

  it('treats a usual-sized backlog as no backlog', () => {
    expect(diagnoseLag({ ...healthy, backlogMessages: 400, backlogBaseline: 300 }).stage).toBe(
      'kafka',
    );
  });
});
