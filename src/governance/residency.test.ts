import fc from 'fast-check';

import type { GovernancePolicy, Zones } from './policy.js';
import { GovernanceError } from './policy.js';
import {
  allowedRegions,
  audienceFor,
  maskedRegions,
  residencyOf,
  residencyValueOf,
} from './residency.js';

const REGIONS = ['us-east', 'eu-west', 'eu-central', 'ap-south'];
const ZONES: Zones = { eu: ['eu-central', 'eu-west'], apac: ['ap-south'] };

function policy(overrides: Partial<GovernancePolicy['residency']> = {}): GovernancePolicy {
  return {
    name: 'people-eu',
    tables: [{ schema: 'app', table: 'people' }],
    residency: {
      column: 'country',
      rules: [
        { values: ['DE', 'FR'], zone: 'eu', masked: ['us-east'] },
        { values: ['CH'], zone: 'eu', masked: [] },
        { values: ['49', null], zone: 'apac', masked: 'all' },
      ],
      default: { kind: 'all' },
      ...overrides,
    },
    masking: new Map([['email', { kind: 'nullify' }]]),
  };
}

describe('residency', () => {
  it('keeps a matched row plain in its zone and masked where the rule says', () => {
    const row = { id: 1, country: 'DE', email: 'a@b.c' };
    // Configuration order, not zone order.
    expect(allowedRegions(policy(), ZONES, REGIONS, row)).toEqual(['eu-west', 'eu-central']);
    expect(maskedRegions(policy(), ZONES, REGIONS, row)).toEqual(['us-east']);
    expect(REGIONS.map((r) => audienceFor(policy(), ZONES, REGIONS, row, r))).toEqual([
      'masked',
      'plain',
      'plain',
      'none',
    ]);
  });

  it('keeps a zone-only row out of every other region', () => {
    const row = { country: 'CH' };
    expect(residencyOf(policy(), ZONES, REGIONS, row)).toEqual({
      plain: ['eu-west', 'eu-central'],
      masked: [],
      scope: { kind: 'zone', zone: 'eu' },
      decidedBy: 1,
    });
  });

  it('masks to every other region with masked: all', () => {
    expect(residencyOf(policy(), ZONES, REGIONS, { country: 49 })).toMatchObject({
      plain: ['ap-south'],
      masked: ['us-east', 'eu-west', 'eu-central'],
    });
  });

  it('sends any unlisted value everywhere plainly with default: all, and compares exactly', () => {
    for (const country of ['US', 'de', 'DE ', '']) {
      expect(residencyOf(policy(), ZONES, REGIONS, { country })).toEqual({
        plain: REGIONS,
        masked: [],
        scope: { kind: 'all' },
        decidedBy: 'default',
      });
    }
  });

  it('holds an unlisted value nowhere with default: none, and only in the zone with default: <zone>', () => {
    const none = policy({ default: { kind: 'none' } });
    expect(residencyOf(none, ZONES, REGIONS, { country: 'US' })).toMatchObject({
      plain: [],
      masked: [],
      scope: { kind: 'none' },
    });
    expect(audienceFor(none, ZONES, REGIONS, { country: 'US' }, 'us-east')).toBe('none');
    const eu = policy({ default: { kind: 'zone', zone: 'eu' } });
    expect(residencyOf(eu, ZONES, REGIONS, { country: 'US' })).toMatchObject({
      plain: ['eu-west', 'eu-central'],
      masked: [],
      scope: { kind: 'zone', zone: 'eu' },
    });
  });

  it('treats NULL like any value: a rule listing null decides it, else the default', () => {
    expect(allowedRegions(policy(), ZONES, REGIONS, { country: null })).toEqual(['ap-south']);
    const withoutNull = policy({
      rules: [{ values: ['DE'], zone: 'eu', masked: [] }],
      default: { kind: 'none' },
    });
    expect(allowedRegions(withoutNull, ZONES, REGIONS, { country: null })).toEqual([]);
  });

  it('matches integers whether the envelope carries a number or a string', () => {
    expect(residencyValueOf(49)).toBe('49');
    expect(residencyValueOf('49')).toBe('49');
    expect(residencyValueOf(true)).toBe('1');
    expect(allowedRegions(policy(), ZONES, REGIONS, { country: '49' })).toEqual(['ap-south']);
  });

  it('decides every row of a policy without a column by its default', () => {
    const whole = policy({ column: undefined, rules: [], default: { kind: 'zone', zone: 'eu' } });
    expect(allowedRegions(whole, ZONES, REGIONS, {})).toEqual(['eu-west', 'eu-central']);
  });

  it('refuses a row image without the residency column rather than guessing', () => {
    expect(() => residencyOf(policy(), ZONES, REGIONS, { id: 1 })).toThrow(GovernanceError);
    expect(() => residencyOf(policy(), ZONES, REGIONS, { id: 1 })).toThrow(
      'policy people-eu: the row image lacks the residency column country',
    );
  });

  it('depends on the row image only, and plain and masked never overlap', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.constantFrom('DE', 'FR', 'CH', 'US', '49', null), fc.string(), fc.integer()),
        fc.dictionary(fc.string(), fc.string()),
        (country, other) => {
          const row = { ...other, country };
          const a = residencyOf(policy(), ZONES, REGIONS, row);
          const b = residencyOf(policy(), ZONES, REGIONS, { country });
          expect(a).toEqual(b);
          expect(a.plain.filter((r) => a.masked.includes(r))).toEqual([]);
        },
      ),
    );
  });
});
