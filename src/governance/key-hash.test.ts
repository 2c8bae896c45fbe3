import { describe, expect, it } from '@jest/globals';
import { createHash, createHmac } from 'node:crypto';
import { keyHash } from './key-hash.js';
import { issueMasks, peoplePolicy } from './people-policy.fixture.js';
import type { GovernancePolicy } from './policy.js';
import { columnTypeInfo } from './routing.js';

const KEY = 'test-key-0123456789abcdef';
const POLICY = peoplePolicy(issueMasks(KEY));
const ID = [columnTypeInfo('id', 'int(11)')];

describe('keyHash', () => {
  it('is HMAC-SHA256 under the policy hmac key over length-prefixed canonical texts', () => {
    const expected = createHmac('sha256', Buffer.from(KEY, 'utf8')).update('2:42').digest('hex');
    expect(keyHash(POLICY, ID, [42])).toBe(`hmac:${expected}`);
    expect(keyHash(POLICY, ID, ['42'])).toBe(`hmac:${expected}`);
    const composite = [columnTypeInfo('a', 'int(11)'), columnTypeInfo('b', 'varchar(10)')];
    const two = createHmac('sha256', Buffer.from(KEY, 'utf8')).update('1:72:ab').digest('hex');
    expect(keyHash(POLICY, composite, [7, 'ab'])).toBe(`hmac:${two}`);
  });

  it('hashes a key by its canonical text, not by how it was written', () => {
    const at = [columnTypeInfo('at', 'datetime(2)')];
    const message = '26:2024-02-29 13:45:00.120000';
    const expected = createHmac('sha256', Buffer.from(KEY, 'utf8')).update(message).digest('hex');
    expect(keyHash(POLICY, at, ['2024-02-29 13:45:00.12'])).toBe(`hmac:${expected}`);
    expect(keyHash(POLICY, at, ['2024-02-29 13:45:00.120000'])).toBe(`hmac:${expected}`);
  });

  it('is SHA-256 when the policy has no hmac key', () => {
    const policy: GovernancePolicy = {
      ...POLICY,
      masking: new Map([['phone', { kind: 'nullify' }]]),
    };
    expect(keyHash(policy, ID, [42])).toBe(
      `sha256:${createHash('sha256').update('2:42').digest('hex')}`,
    );
  });
});
