import { ConfigError } from '../core/errors.js';
import { matchesDeadLetter, parseDeadLetterFilter } from './filter.js';
import type { DeadLetter } from './record.js';

const REGIONS = ['east', 'west'];

function problems(flags: Parameters<typeof parseDeadLetterFilter>[0]): readonly string[] {
  try {
    parseDeadLetterFilter(flags, REGIONS);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

const common = {
  topic: 'cdc._dlq.apply.west',
  partition: 0,
  offset: '3',
  timestampMs: Date.parse('2026-03-01T10:00:00Z'),
  stage: 'apply',
  region: 'west',
} as const;

const applied: DeadLetter = {
  ...common,
  kind: 'apply',
  reason: 'column_missing',
  error: 'no column nickname',
  source: { topic: 'cdc.east.app.users', partition: 0, offset: '9', key: null },
  sourceRegion: 'east',
  table: 'app.users',
  value: null,
};

const undecodable: DeadLetter = { ...common, kind: 'undecodable', problem: 'x', excerpt: null };

describe('parseDeadLetterFilter', () => {
  it('selects every region and stage by default', () => {
    expect(parseDeadLetterFilter({}, REGIONS)).toMatchObject({
      regions: ['east', 'west'],
      stages: ['capture', 'apply'],
    });
  });

  it('narrows to one region and stage, parses times as UTC unless zoned', () => {
    const filter = parseDeadLetterFilter(
      {
        region: 'west',
        stage: 'apply',
        table: 'app.*',
        since: '2026-03-01T09:00',
        until: '2026-03-01T12:00:00+02:00',
        partition: '2',
        offset: '007',
      },
      REGIONS,
    );
    expect(filter).toMatchObject({
      regions: ['west'],
      stages: ['apply'],
      table: { schema: 'app', table: '*' },
      sinceMs: Date.parse('2026-03-01T09:00:00Z'),
      untilMs: Date.parse('2026-03-01T10:00:00Z'),
      partition: 2,
      offset: '7',
    });
    expect(parseDeadLetterFilter({ since: '2026-03-01' }, REGIONS).sinceMs).toBe(
      Date.parse('2026-03-01T00:00:00Z'),
    );
  });

  it('names every bad flag at once', () => {
    expect(
      problems({
        region: 'north',
        stage: 'both',
        table: 'users',
        since: 'yesterday',
        until: '2026-13-45',
        partition: '-1',
        offset: 'x',
        reason: ' ',
      }),
    ).toEqual([
      '--region: "north" is not a configured region (regions: east, west)',
      '--stage: must be capture or apply, got "both"',
      '--table: must be schema.table or schema.*, got "users"',
      '--since: must be an ISO 8601 time such as 2026-01-31T12:00:00Z, got "yesterday"',
      '--until: must be an ISO 8601 time such as 2026-01-31T12:00:00Z, got "2026-13-45"',
      '--partition: must be a whole number ≥ 0, got "-1"',
      '--offset: must be a whole number ≥ 0, got "x"',
      '--reason: must not be empty',
    ]);
  });

  it('refuses a time window that is empty', () => {
    expect(problems({ since: '2026-03-02', until: '2026-03-01' })).toEqual([
      '--since: must be before --until',
    ]);
  });
});

describe('matchesDeadLetter', () => {
  const all = parseDeadLetterFilter({}, REGIONS);

  it('matches on every criterion that is set', () => {
    expect(matchesDeadLetter(all, applied)).toBe(true);
    const exact = parseDeadLetterFilter(
      {
        region: 'west',
        stage: 'apply',
        reason: 'column_missing',
        table: 'app.users',
        since: '2026-03-01T10:00:00Z',
        until: '2026-03-01T10:00:01Z',
        topic: 'cdc._dlq.apply.west',
        partition: '0',
        offset: '3',
      },
      REGIONS,
    );
    expect(matchesDeadLetter(exact, applied)).toBe(true);
  });

  it.each([
    ['region', { region: 'east' }],
    ['stage', { stage: 'capture' }],
    ['reason', { reason: 'constraint_violation' }],
    ['table', { table: 'app.orders' }],
    ['schema', { table: 'shop.*' }],
    ['since (inclusive)', { since: '2026-03-01T10:00:00.001Z' }],
    ['until (exclusive)', { until: '2026-03-01T10:00:00Z' }],
    ['topic', { topic: 'cdc._dlq.apply.east' }],
    ['partition', { partition: '1' }],
    ['offset', { offset: '4' }],
  ])('leaves out a dead letter of another %s', (_, flags) => {
    expect(matchesDeadLetter(parseDeadLetterFilter(flags, REGIONS), applied)).toBe(false);
  });

  it('lists undecodable records unless a reason or table is asked for', () => {
    expect(matchesDeadLetter(all, undecodable)).toBe(true);
    expect(matchesDeadLetter(parseDeadLetterFilter({ reason: 'x' }, REGIONS), undecodable)).toBe(
      false,
    );
    expect(matchesDeadLetter(parseDeadLetterFilter({ table: 'a.b' }, REGIONS), undecodable)).toBe(
      false,
    );
  });
});
