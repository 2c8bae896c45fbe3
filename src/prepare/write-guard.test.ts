import type { GovernancePolicy } from '../governance/policy.js';
import { peoplePolicy } from '../governance/people-policy.fixture.js';
import type { TableInfo } from '../mysql/introspect.js';
import { plainHereSql, writeGuardTriggers } from './write-guard.js';

const ZONES = { eu: ['eu-west', 'eu-central'] };
const PEOPLE = peoplePolicy();
const TABLE = {
  schema: 'app',
  table: 'people',
  columns: [],
  primaryKey: ['id'],
} as unknown as TableInfo;

describe('write guards', () => {
  it('are not needed where every row may be held plain', () => {
    expect(plainHereSql(PEOPLE, ZONES, 'eu-west', 'NEW')).toBeUndefined();
    expect(writeGuardTriggers(TABLE, PEOPLE, ZONES, 'eu-central')).toEqual([]);
  });

  it('let a region write only the values it may hold plain, compared byte for byte', () => {
    // us-east: DE/FR masked, CH none, anything else plain (default all).
    expect(plainHereSql(PEOPLE, ZONES, 'us-east', 'NEW')).toBe(
      "(NOT (COALESCE(CAST(NEW.`country` AS BINARY) IN (X'4445', X'4652', X'4348'), FALSE)))",
    );
    const zoneOnly: GovernancePolicy = {
      ...PEOPLE,
      residency: {
        column: 'country',
        rules: [{ values: ['DE', null], zone: 'eu', masked: [] }],
        default: { kind: 'none' },
      },
    };
    expect(plainHereSql(zoneOnly, ZONES, 'eu-west', 'OLD')).toBe(
      "(OLD.`country` IS NULL OR COALESCE(CAST(OLD.`country` AS BINARY) IN (X'4445'), FALSE))",
    );
    expect(plainHereSql(zoneOnly, ZONES, 'us-east', 'NEW')).toBe('FALSE');
    const nowhere: GovernancePolicy = {
      ...PEOPLE,
      residency: { column: undefined, rules: [], default: { kind: 'none' } },
    };
    expect(plainHereSql(nowhere, ZONES, 'eu-west', 'NEW')).toBe('FALSE');
  });

  it('refuse with SQLSTATE 45000, naming policy, region and table only, skipping the applier', () => {
    const [insert, update] = writeGuardTriggers(TABLE, PEOPLE, ZONES, 'us-east');
    expect(insert?.name).toBe('_cdc_gi_people');
    expect(update?.name).toBe('_cdc_gu_people');
    expect(insert?.create).toContain('BEFORE INSERT ON `app`.`people`');
    expect(insert?.body).toContain('IF @cdc_applier IS NULL AND NOT (');
    expect(insert?.body).toContain(
      "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'governance people-eu: us-east may not insert this row of app.people: it may hold it only masked or not at all'",
    );
    // An update must leave and find the row plain here.
    expect(update?.body).toContain('OLD.`country`');
    expect(update?.body).toContain('NEW.`country`');
  });
});
