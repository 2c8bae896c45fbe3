import { inspect } from 'node:util';

import { Secret } from '../core/secret.js';
import type { GovernancePolicy, MaskSpec } from './policy.js';
import { keyId, policyVersion } from './version.js';

const SECRET = 'test-key-0123456789abcdef';
const ZONES = { eu: ['eu-west', 'eu-central'] };

function policy(key = SECRET, extra: [string, MaskSpec][] = []): GovernancePolicy {
  return {
    name: 'people-eu',
    tables: [{ schema: 'app', table: 'people' }],
    residency: {
      column: 'country',
      rules: [{ values: ['DE', 'FR'], zone: 'eu', masked: ['us-east'] }],
      default: { kind: 'all' },
    },
    masking: new Map([['email', { kind: 'hmac', key: new Secret(key) }], ...extra]),
  };
}

describe('policyVersion', () => {
  it('is stable, short, and independent of mask order', () => {
    const a = policyVersion(policy(SECRET, [['phone', { kind: 'nullify' }]]), ZONES);
    expect(a).toMatch(/^[0-9a-f]{12}$/);
    const reordered: GovernancePolicy = {
      ...policy(),
      masking: new Map([
        ['phone', { kind: 'nullify' }],
        ['email', { kind: 'hmac', key: new Secret(SECRET) }],
      ]),
    };
    expect(policyVersion(reordered, ZONES)).toBe(a);
  });

  it('changes with the key, a mask, a rule or the regions of a zone it names', () => {
    const base = policyVersion(policy(), ZONES);
    expect(policyVersion(policy(`${SECRET}!`), ZONES)).not.toBe(base);
    expect(
      policyVersion(policy(SECRET, [['note', { kind: 'redact', text: '*' }]]), ZONES),
    ).not.toBe(base);
    expect(policyVersion(policy(), { eu: ['eu-west'] })).not.toBe(base);
    expect(policyVersion(policy(), { ...ZONES, apac: ['ap-south'] })).toBe(base);
    const moved: GovernancePolicy = {
      ...policy(),
      residency: { ...policy().residency, default: { kind: 'none' } },
    };
    expect(policyVersion(moved, ZONES)).not.toBe(base);
  });

  it('identifies a key without revealing it', () => {
    const id = keyId(new Secret(SECRET));
    expect(id).toMatch(/^[0-9a-f]{16}$/);
    expect(id).not.toContain(SECRET);
    expect(inspect(policy())).not.toContain(SECRET);
  });
});
