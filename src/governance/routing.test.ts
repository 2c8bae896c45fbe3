import { createHmac } from 'node:crypto';

import type { GovernancePolicy, RowValues, Zones } from './policy.js';
import {
  columnTypeInfo,
  evictionTargets,
  maskImage,
  recheckRow,
  routeChange,
  routeRow,
  regionsThatMayHold,
  type GovernanceLayout,
} from './routing.js';
import { residencyOf } from './residency.js';
import { issueMasks, peoplePolicy } from './people-policy.fixture.js';

const KEY = 'test-key-0123456789abcdef';
const REGIONS = ['us-east', 'eu-west', 'eu-central'];
const ZONES: Zones = { eu: ['eu-west', 'eu-central'] };
const LAYOUT: GovernanceLayout = { topicPrefix: 'cdc', zones: ZONES, regions: REGIONS };
const FROM_EU_WEST = { sourceRegion: 'eu-west', db: 'app', table: 'people' };

const PEOPLE = peoplePolicy(issueMasks(KEY));

const TYPES = {
  id: 'int(11)',
  country: 'char(2)',
  email: 'varchar(255)',
  phone: 'varchar(32)',
  note: 'text',
  name: 'varchar(100)',
};

const DE_ROW: RowValues = {
  id: 1,
  country: 'DE',
  email: 'zoë@example.com',
  phone: '+49 30 1234',
  note: 'allergic to nuts',
  name: 'Zoë',
};

const hmacOf = (text: string): string =>
  createHmac('sha256', Buffer.from(KEY, 'utf8')).update(Buffer.from(text, 'utf8')).digest('hex');

const MASKED_DE: RowValues = {
  id: 1,
  country: 'DE',
  email: hmacOf('zoë@example.com'),
  phone: null,
  note: '***',
  name: 'Z',
};

describe('routeRow: where one row image goes, and in which form', () => {
  it('sends a restricted row plain to its zone topic and masked to each masked region', () => {
    const { copies } = routeRow(LAYOUT, PEOPLE, FROM_EU_WEST, DE_ROW, TYPES);
    expect(copies.map(({ topic, form, image }) => ({ topic, form, image }))).toEqual([
      { topic: 'cdc-zone-eu.eu-west.app.people', form: 'plain', image: DE_ROW },
      { topic: 'cdc-masked-us-east.eu-west.app.people', form: 'masked', image: MASKED_DE },
    ]);
    // The masked copy is a new object: the plain one is never touched.
    expect(DE_ROW.email).toBe('zoë@example.com');
  });

  it("sends a row of a zone-only rule to the zone's topic only", () => {
    const { copies } = routeRow(LAYOUT, PEOPLE, FROM_EU_WEST, { ...DE_ROW, country: 'CH' }, TYPES);
    expect(copies.map((c) => [c.topic, c.form])).toEqual([
      ['cdc-zone-eu.eu-west.app.people', 'plain'],
    ]);
  });

  it("sends an unrestricted row plain to today's topic", () => {
    const { copies } = routeRow(LAYOUT, PEOPLE, FROM_EU_WEST, { ...DE_ROW, country: 'US' }, TYPES);
    expect(copies.map((c) => [c.topic, c.form])).toEqual([['cdc.eu-west.app.people', 'plain']]);
    expect(copies[0]?.image.email).toBe('zoë@example.com');
  });

  it('sends a row no region may hold nowhere', () => {
    const none: GovernancePolicy = {
      ...PEOPLE,
      residency: { ...PEOPLE.residency, default: { kind: 'none' } },
    };
    const { residency, copies } = routeRow(
      LAYOUT,
      none,
      FROM_EU_WEST,
      { ...DE_ROW, country: 'XX' },
      TYPES,
    );
    expect(copies).toEqual([]);
    expect(residency.scope).toEqual({ kind: 'none' });
  });

  it('leaves out the masked copy for the source region itself (nobody reads it)', () => {
    const { copies } = routeRow(
      LAYOUT,
      PEOPLE,
      { ...FROM_EU_WEST, sourceRegion: 'us-east' },
      DE_ROW,
      TYPES,
    );
    expect(copies.map((c) => c.topic)).toEqual(['cdc-zone-eu.us-east.app.people']);
  });

  it('refuses, without values, a row it cannot decide or mask', () => {
    const incomplete: RowValues = { id: 1, email: 'zoë@example.com' };
    expect(() => routeRow(LAYOUT, PEOPLE, FROM_EU_WEST, incomplete, TYPES)).toThrow(
      /lacks the residency column country/,
    );
    const noTypes = (): unknown => routeRow(LAYOUT, PEOPLE, FROM_EU_WEST, DE_ROW, { id: 'int' });
    expect(noTypes).toThrow(/type of masked column email is unknown/);
    try {
      noTypes();
    } catch (err) {
      expect((err as Error).message).not.toContain('zoë');
    }
    const intEmail = (): unknown =>
      routeRow(
        LAYOUT,
        PEOPLE,
        FROM_EU_WEST,
        { ...DE_ROW, email: 7 },
        { ...TYPES, email: 'int(11)' },
      );
    expect(intEmail).toThrow(
      /email \(int\(11\)\): the hmac mask needs a character or binary column/,
    );
  });

  it('masks a binary column through its bytes', () => {
    const token = Buffer.from([0, 255, 97, 98]).toString('base64');
    const masked = maskImage(PEOPLE, { email: token }, { email: 'varbinary(64)' });
    const expected = createHmac('sha256', Buffer.from(KEY, 'utf8'))
      .update(Buffer.from([0, 255, 97, 98]))
      .digest('hex');
    expect(Buffer.from(masked.email as string, 'base64').toString('utf8')).toBe(expected);
  });

  it('reads DATA_TYPE off COLUMN_TYPE', () => {
    expect(columnTypeInfo('a', 'varchar(255)').dataType).toBe('varchar');
    expect(columnTypeInfo('a', 'int(10) unsigned').dataType).toBe('int');
    expect(columnTypeInfo('a', "enum('x','y')").dataType).toBe('enum');
    expect(columnTypeInfo('a', 'longblob').dataType).toBe('longblob');
  });
});

describe('routeChange: a whole change per topic', () => {
  const change = (op: string, before: RowValues | null, after: RowValues | null) => ({
    op,
    pk: { id: 1 },
    before,
    after,
    hlc: 5,
  });

  it('routes an update on its after image and keeps only the key of its before image', () => {
    const { copies } = routeChange(
      LAYOUT,
      PEOPLE,
      FROM_EU_WEST,
      change('u', { ...DE_ROW, country: 'CH' }, DE_ROW),
      TYPES,
    );
    expect(copies.map((c) => [c.topic, c.change.before, c.change.after])).toEqual([
      ['cdc-zone-eu.eu-west.app.people', { id: 1 }, DE_ROW],
      ['cdc-masked-us-east.eu-west.app.people', { id: 1 }, MASKED_DE],
    ]);
    expect(copies[0]?.change.hlc).toBe(5);
  });

  it('routes a delete on the deleted row, masked where the copy is masked', () => {
    const { copies } = routeChange(LAYOUT, PEOPLE, FROM_EU_WEST, change('d', DE_ROW, null), TYPES);
    expect(copies.map((c) => [c.form, c.change.before, c.change.after])).toEqual([
      ['plain', DE_ROW, null],
      ['masked', MASKED_DE, null],
    ]);
  });

  it('refuses a change without the image to decide on', () => {
    expect(() => routeChange(LAYOUT, PEOPLE, FROM_EU_WEST, change('d', null, null), TYPES)).toThrow(
      /without its row image cannot be routed/,
    );
  });
});

describe('recheckRow: the apply re-check against the topic a row came on', () => {
  const check = (region: string, form: 'plain' | 'masked', row: RowValues | undefined) =>
    recheckRow(PEOPLE, LAYOUT, region, form, row);

  it('accepts a row in the form its region may hold it', () => {
    expect(check('eu-central', 'plain', DE_ROW)).toBeUndefined();
    expect(check('us-east', 'masked', MASKED_DE)).toBeUndefined();
    expect(check('us-east', 'plain', { ...DE_ROW, country: 'US' })).toBeUndefined();
  });

  it('refuses plaintext of a restricted row on a plain topic, a row a region may not hold, and forged masked copies', () => {
    expect(check('us-east', 'plain', DE_ROW)).toBe(
      'policy people-eu: region us-east may hold this row only masked, but it came on a plain topic',
    );
    expect(check('us-east', 'masked', { ...MASKED_DE, country: 'CH' })).toBe(
      'policy people-eu: region us-east may not hold this row at all, but it came on a masked topic',
    );
    expect(check('eu-west', 'masked', MASKED_DE)).toBe(
      'policy people-eu: region eu-west may hold this row only plain, but it came on a masked topic',
    );
    // Plaintext on the masked topic: the masked columns must hold what their masks produce.
    expect(check('us-east', 'masked', DE_ROW)).toMatch(
      /^policy people-eu: column email on a masked topic for us-east does not hold a value its hmac mask produces$/,
    );
    expect(check('us-east', 'masked', { ...MASKED_DE, phone: '+49' })).toMatch(/column phone/);
    expect(check('us-east', 'masked', { ...MASKED_DE, name: 'Zo' })).toMatch(/column name/);
    expect(check('us-east', 'masked', { ...MASKED_DE, note: 'x' })).toMatch(/column note/);
    expect(check('us-east', 'plain', { id: 1 })).toMatch(/lacks the residency column/);
    expect(check('us-east', 'plain', undefined)).toMatch(/no row image/);
  });

  it('never puts a value in its answer', () => {
    for (const answer of [
      check('us-east', 'plain', DE_ROW),
      check('us-east', 'masked', DE_ROW),
      check('us-east', 'masked', { ...DE_ROW, country: 'CH' }),
    ]) {
      expect(answer).toBeDefined();
      for (const value of Object.values(DE_ROW)) expect(answer).not.toContain(String(value));
    }
  });
});

describe('eviction targets', () => {
  const residency = (country: string | null): ReturnType<typeof residencyOf> =>
    residencyOf(PEOPLE, ZONES, REGIONS, { ...DE_ROW, country });

  it('are the regions other than the source that may hold no form of this version', () => {
    expect(evictionTargets(PEOPLE, LAYOUT, 'eu-west', residency('CH'))).toEqual(['us-east']);
    // Masked in us-east: it gets the masked copy, no notice.
    expect(evictionTargets(PEOPLE, LAYOUT, 'eu-west', residency('DE'))).toEqual([]);
    expect(evictionTargets(PEOPLE, LAYOUT, 'eu-west', residency('US'))).toEqual([]);
    // The source is never its own target, even when it may not hold the row.
    expect(evictionTargets(PEOPLE, LAYOUT, 'us-east', residency('CH'))).toEqual([]);
  });

  it('leave out regions that can never hold a row of the policy', () => {
    const zoneOnly: GovernancePolicy = {
      ...PEOPLE,
      residency: {
        column: 'country',
        rules: [{ values: ['DE'], zone: 'eu', masked: ['us-east'] }],
        default: { kind: 'zone', zone: 'eu' },
      },
    };
    const layout = { zones: ZONES, regions: [...REGIONS, 'ap-south'] };
    expect(regionsThatMayHold(zoneOnly, layout)).toEqual(['us-east', 'eu-west', 'eu-central']);
    const ch = residencyOf(zoneOnly, ZONES, layout.regions, { ...DE_ROW, country: 'CH' });
    // us-east may hold DE rows masked, so a CH version is evicted there; ap-south never holds any.
    expect(evictionTargets(zoneOnly, layout, 'eu-west', ch)).toEqual(['us-east']);
    const nowhere: GovernancePolicy = {
      ...PEOPLE,
      residency: { column: undefined, rules: [], default: { kind: 'none' } },
    };
    expect(regionsThatMayHold(nowhere, layout)).toEqual([]);
    const none = residencyOf(nowhere, ZONES, layout.regions, DE_ROW);
    expect(evictionTargets(nowhere, layout, 'eu-west', none)).toEqual([]);
  });

  it('reach the regions outside the zone of a zone-only rule when the default is all', () => {
    const closed: GovernancePolicy = {
      ...PEOPLE,
      residency: {
        column: 'country',
        rules: [{ values: ['XX'], zone: 'eu', masked: [] }],
        default: { kind: 'all' },
      },
    };
    const xx = residencyOf(closed, ZONES, REGIONS, { ...DE_ROW, country: 'XX' });
    expect(evictionTargets(closed, LAYOUT, 'eu-central', xx)).toEqual(['us-east']);
  });
});
