import { decodeDeadLetter, sourceOfTopic, type RawDeadLetter } from './record.js';

const APPLY = {
  stage: 'apply',
  region: 'west',
  topicPrefix: 'cdc',
  regions: ['east', 'west'],
} as const;
const CAPTURE = { ...APPLY, stage: 'capture' } as const;

function raw(value: unknown): RawDeadLetter {
  return {
    topic: 'cdc._dlq.apply.west',
    partition: 1,
    offset: '7',
    timestampMs: 1_700_000_000_000,
    value:
      value === null
        ? null
        : Buffer.from(typeof value === 'string' ? value : JSON.stringify(value), 'utf8'),
  };
}

const event = { v: 1, op: 'c', region: 'east', db: 'app', table: 'users', pk: { id: 1 } };

/** A record exactly as the apply stage's `#deadLetter` writes it. */
function applyRecord(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    stage: 'apply',
    region: 'west',
    reason: 'constraint_violation',
    error: 'Duplicate entry',
    source: { topic: 'cdc.east.app.users', partition: 2, offset: '41', key: 'app.users:[1]' },
    value: Buffer.from(JSON.stringify(event)).toString('base64'),
    ...overrides,
  };
}

describe('decodeDeadLetter', () => {
  it('decodes an apply dead letter with its original message, source region and table', () => {
    const letter = decodeDeadLetter(raw(applyRecord()), APPLY);
    expect(letter).toMatchObject({
      kind: 'apply',
      topic: 'cdc._dlq.apply.west',
      partition: 1,
      offset: '7',
      stage: 'apply',
      region: 'west',
      reason: 'constraint_violation',
      error: 'Duplicate entry',
      source: { topic: 'cdc.east.app.users', partition: 2, offset: '41', key: 'app.users:[1]' },
      sourceRegion: 'east',
      table: 'app.users',
    });
    expect(letter.kind === 'apply' && JSON.parse(letter.value?.toString() ?? '')).toEqual(event);
  });

  it('keeps an apply dead letter whose message had no value or offset', () => {
    const letter = decodeDeadLetter(
      raw(
        applyRecord({
          value: null,
          source: { topic: 'cdc.east.app.users', partition: 0, offset: null, key: null },
        }),
      ),
      APPLY,
    );
    expect(letter).toMatchObject({ kind: 'apply', value: null, source: { offset: null } });
  });

  it('names no table for a topic outside the deployment', () => {
    const letter = decodeDeadLetter(
      raw(applyRecord({ source: { topic: 'other', partition: 0, offset: '1', key: null } })),
      APPLY,
    );
    expect(letter).toMatchObject({ kind: 'apply', table: undefined, sourceRegion: undefined });
  });

  it('decodes a capture dead letter as capture writes it, with its table', () => {
    const letter = decodeDeadLetter(
      raw({
        stage: 'capture',
        region: 'west',
        reason: 'row_undecodable',
        error: 'bad column',
        source: { schema: 'app', table: 'users', op: 'insert', gtid: '0-1-5', row: { id: '1' } },
      }),
      CAPTURE,
    );
    expect(letter).toMatchObject({
      kind: 'capture',
      reason: 'row_undecodable',
      table: 'app.users',
      source: { gtid: '0-1-5', row: { id: '1' } },
    });
  });

  it.each([
    ['no value', null, 'the message has no value'],
    ['not JSON', 'garbage{', 'not JSON'],
    ['not an object', [1, 2], 'not a JSON object'],
    ['another stage', applyRecord({ stage: 'capture' }), 'stage is "capture" in a apply topic'],
    ['another region', applyRecord({ region: 'east' }), 'region is "east"'],
    ['no reason', applyRecord({ reason: '' }), 'reason is not a non-empty string'],
    ['no source', applyRecord({ source: 'x' }), 'source is not an object'],
    [
      'a bad partition',
      applyRecord({ source: { topic: 't', partition: -1, offset: '1', key: null } }),
      'partition is not a partition number',
    ],
    ['a value that is not base64', applyRecord({ value: 'not base64!' }), 'value is not base64'],
  ])('lists a record with %s as undecodable, never throws', (_, value, problem) => {
    const letter = decodeDeadLetter(raw(value), APPLY);
    expect(letter.kind).toBe('undecodable');
    expect(letter.kind === 'undecodable' && letter.problem).toContain(problem);
    expect(letter).toMatchObject({ stage: 'apply', region: 'west', offset: '7' });
  });

  it('keeps the start of an undecodable value for a person to read', () => {
    const letter = decodeDeadLetter(raw('x'.repeat(1000)), APPLY);
    expect(letter.kind === 'undecodable' && letter.excerpt).toHaveLength(200);
  });
});

describe('sourceOfTopic', () => {
  it('splits a change topic into its region and table', () => {
    expect(sourceOfTopic('cdc', ['east', 'west'], 'cdc.east.app.users')).toEqual({
      region: 'east',
      table: 'app.users',
    });
  });

  it('reads the governed topics of a table too', () => {
    expect(sourceOfTopic('cdc', ['east', 'west'], 'cdc-zone-eu.east.app.people')).toEqual({
      region: 'east',
      table: 'app.people',
    });
    expect(sourceOfTopic('cdc', ['east', 'west'], 'cdc-masked-west.east.app.people')).toEqual({
      region: 'east',
      table: 'app.people',
    });
    expect(sourceOfTopic('cdc', ['east'], 'cdc-other.east.app.people')).toBeUndefined();
    expect(sourceOfTopic('cdc', ['east'], 'cdcx.east.app.people')).toBeUndefined();
  });

  it('prefers the longest region name that fits', () => {
    expect(sourceOfTopic('p.x', ['eu', 'eu.w'], 'p.x.eu.w.app.t')).toEqual({
      region: 'eu.w',
      table: 'app.t',
    });
  });

  it('rejects other prefixes, unknown regions and names without a table', () => {
    expect(sourceOfTopic('cdc', ['east'], 'other.east.app.users')).toBeUndefined();
    expect(sourceOfTopic('cdc', ['east'], 'cdc.north.app.users')).toBeUndefined();
    expect(sourceOfTopic('cdc', ['east'], 'cdc.east.users')).toBeUndefined();
  });
});
