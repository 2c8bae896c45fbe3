import type { DeadLetter } from './record.js';
import { captureNotReplayable, verdictOf } from './replay.js';
import {
  countReplay,
  deadLetterJson,
  renderDeadLetter,
  renderDeadLetterTable,
  renderReplay,
} from './report.js';

const common = {
  topic: 'cdc._dlq.apply.west',
  partition: 0,
  offset: '3',
  timestampMs: Date.parse('2026-03-01T10:00:00Z'),
  stage: 'apply',
  region: 'west',
} as const;

const event = { v: 1, op: 'c', region: 'east', db: 'app', table: 'users', pk: { id: 1 } };

const applied: DeadLetter = {
  ...common,
  kind: 'apply',
  reason: 'column_missing',
  error: 'app.users has no column(s) "nickname"\nsecond line',
  source: { topic: 'cdc.east.app.users', partition: 1, offset: '9', key: 'app.users:[1]' },
  sourceRegion: 'east',
  table: 'app.users',
  value: Buffer.from(JSON.stringify(event)),
};

const captured: DeadLetter = {
  ...common,
  topic: 'cdc._dlq.capture.west',
  stage: 'capture',
  kind: 'capture',
  reason: 'row_undecodable',
  error: 'bad',
  source: { schema: 'app', table: 'users' },
  table: 'app.users',
};

const garbage: DeadLetter = {
  ...common,
  offset: '4',
  kind: 'undecodable',
  problem: 'not JSON',
  excerpt: 'zz',
};

describe('dead-letter report', () => {
  it('lists one row per dead letter with a one-line error', () => {
    const text = renderDeadLetterTable([applied, garbage]);
    const lines = text.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^LOCATION\s+TIME\s+STAGE\s+REGION\s+REASON\s+TABLE\s+ERROR$/);
    expect(lines[1]).toContain('cdc._dlq.apply.west:0:3');
    expect(lines[1]).toContain('2026-03-01T10:00:00.000Z');
    expect(lines[1]).toContain('column_missing');
    expect(lines[1]).toContain('app.users has no column(s) "nickname" second line');
    expect(lines[2]).toMatch(/cdc\._dlq\.apply\.west:0:4 .* undecodable +- +not JSON$/);
    expect(renderDeadLetterTable([])).toBe('no dead letters match\n');
  });

  it('shows the original event in full, parsed', () => {
    const text = renderDeadLetter(applied);
    expect(text).toContain('original:    cdc.east.app.users:1:9 key app.users:[1]');
    expect(text).toContain('"table": "users"');
    expect(deadLetterJson(applied)).toMatchObject({ event, sourceRegion: 'east' });
    expect(deadLetterJson({ ...applied, value: Buffer.from([0xff, 0x00]) })).toMatchObject({
      event: { base64: '/wA=' },
    });
  });

  it('maps the join outcomes of a replayed message to one verdict', () => {
    expect(verdictOf(new Map([['applied', 1]]))).toEqual({ kind: 'applied', conflict: false });
    expect(verdictOf(new Map([['conflict_won', 1]]))).toEqual({ kind: 'applied', conflict: true });
    expect(verdictOf(new Map([['conflict_lost', 1]]))).toEqual({ kind: 'local_won' });
    expect(verdictOf(new Map([['stale', 2]]))).toEqual({ kind: 'stale' });
    // A primary-key change is a delete and an upsert: applied when either is.
    expect(
      verdictOf(
        new Map([
          ['stale', 1],
          ['applied', 1],
        ]),
      ),
    ).toEqual({ kind: 'applied', conflict: false });
  });

  it('counts a replay and says in which tense', () => {
    const results = [
      { letter: applied, verdict: { kind: 'applied', conflict: false } },
      { letter: applied, verdict: { kind: 'stale' } },
      { letter: applied, verdict: { kind: 'failed', reason: 'column_missing', error: 'e' } },
      {
        letter: captured,
        verdict: { kind: 'not_replayable', why: captureNotReplayable(captured) },
      },
    ] as const;
    expect(countReplay(results)).toEqual({ replayed: 1, stale: 1, failing: 2 });
    const dry = renderReplay(results, true);
    expect(dry).toContain('cdc._dlq.apply.west:0:3 app.users: would apply');
    expect(dry).toContain('still invalid: column_missing: e');
    expect(dry).toContain('verify --tables app.users --repair');
    expect(dry).toContain(
      'dry run: would replay 1, stale 1, still failing 2 (they stay in the dead-letter topic)',
    );
    expect(renderReplay(results.slice(0, 2), false)).toMatch(
      /replayed 1, stale 1, still failing 0\n$/,
    );
  });
});
