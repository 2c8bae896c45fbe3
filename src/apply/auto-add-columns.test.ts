import { decodeApplyEvent, RejectedEvent } from './apply-event.js';
import { safeColumnType } from './auto-add-columns.js';

describe('safeColumnType: what the applier puts into an ALTER from an event', () => {
  it.each([
    'int(11)',
    'int',
    'bigint(20) unsigned',
    'decimal(65,30)',
    'varchar(20)',
    'DATETIME(6)',
    'timestamp',
    'longtext',
    'json',
    'double unsigned zerofill',
    "enum('a','b')",
    "set('x','it''s')",
    "enum('')",
  ])('takes %s as it is', (type) => {
    expect(safeColumnType(type)).toBe(type);
  });

  it.each([
    undefined,
    '',
    'int; DROP TABLE t',
    'int NOT NULL',
    'varchar(20) CHARACTER SET latin1',
    'int /* comment */',
    'varchar(20) /*M!100301 COMPRESSED*/',
    "enum('a\\'','b')",
    "enum('a','b'",
    "enum('a') , ADD COLUMN x int",
    'int(11) GENERATED ALWAYS AS (1)',
    'text\nDEFAULT 1',
    'foo(1)',
  ])('refuses %j', (type) => {
    expect(safeColumnType(type)).toBeUndefined();
  });
});

describe('decodeApplyEvent: column types', () => {
  const route = { sourceRegion: 'us-east', db: 'app', table: 't' };
  const event = (types: unknown): Buffer =>
    Buffer.from(
      JSON.stringify({
        v: 1,
        op: 'c',
        region: 'us-east',
        db: 'app',
        table: 't',
        pk: { id: 1 },
        before: null,
        after: { id: 1, tier: 'a' },
        hlc: 1_700_000_000_000_000,
        origin: 'us-east',
        vv: { 'us-east': 1_700_000_000_000_000 },
        gtid: null,
        commitTs: 1_700_000_000_000,
        ...(types === undefined ? {} : { types }),
      }),
    );

  it('keeps the types a source sent, and reads events without them as before', () => {
    expect(decodeApplyEvent(event({ tier: 'varchar(20)' }), route)[0]?.types).toEqual({
      tier: 'varchar(20)',
    });
    expect(decodeApplyEvent(event(undefined), route)[0]?.types).toBeUndefined();
  });

  it('refuses types that are not a map of strings as malformed', () => {
    expect(() => decodeApplyEvent(event({ tier: 5 }), route)).toThrow(RejectedEvent);
    expect(() => decodeApplyEvent(event(['int']), route)).toThrow(RejectedEvent);
  });
});
