/**
 * The issue's example policy, compiled, for the unit tests of governance
 * and of what uses it (routing, topics, verify): `app.people`, DE/FR plain
 * in zone eu and masked in us-east, CH in zone eu only, anything else
 * everywhere. Not part of the build (tsconfig.build.json).
 */
import { Secret } from '../core/secret.js';
import type { GovernancePolicy, MaskSpec } from './policy.js';

/** The issue's four masks, with `key` for the hmac. */
export function issueMasks(key: string): ReadonlyMap<string, MaskSpec> {
  return new Map<string, MaskSpec>([
    ['email', { kind: 'hmac', key: new Secret(key) }],
    ['phone', { kind: 'nullify' }],
    ['note', { kind: 'redact', text: '***' }],
    ['name', { kind: 'truncate', length: 1 }],
  ]);
}

/** `people-eu` with the given masks (default: email nullified). */
export function peoplePolicy(
  masking: ReadonlyMap<string, MaskSpec> = new Map([['email', { kind: 'nullify' }]]),
): GovernancePolicy {
  return {
    name: 'people-eu',
    tables: [{ schema: 'app', table: 'people' }],
    residency: {
      column: 'country',
      rules: [
        { values: ['DE', 'FR'], zone: 'eu', masked: ['us-east'] },
        { values: ['CH'], zone: 'eu', masked: [] },
      ],
      default: { kind: 'all' },
    },
    masking,
  };
}
