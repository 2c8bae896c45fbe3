/**
 * The keyed hash of a primary key (docs/GOVERNANCE.md, "The key hash"):
 * what every governed output shows instead of the key itself: `verify`'s
 * lines, audit records, `cdc-replicator audit`. One definition, so an
 * auditor can match a verify line with the audit trail of the same row, and
 * whoever holds the policy's hmac key can confirm a suspected key with
 * `printf %s '2:42' | openssl dgst -sha256 -hmac "$KEY"`.
 */
import { createHash, createHmac } from 'node:crypto';

import { canonicalText } from './canonical.js';
import type { ColumnTypeInfo, EncodedValue, GovernancePolicy } from './policy.js';

/**
 * The hash of a key: `hmac:` + lowercase hex of HMAC-SHA256 keyed with the
 * policy's first `hmac` mask key (in file order), or `sha256:` + lowercase
 * hex of SHA-256 when the policy has no hmac key. The message is each key
 * column's canonical text (docs/GOVERNANCE.md, "Canonical text") preceded by
 * its byte length in decimal and `:`, in key order; NULL (never in a
 * primary key) as `N`.
 *
 * @throws GovernanceError (no value in it) when a key value is not what its
 *   column type's encoding produces.
 */
export function keyHash(
  policy: GovernancePolicy,
  keyColumns: readonly ColumnTypeInfo[],
  key: readonly EncodedValue[],
): string {
  const parts: Buffer[] = [];
  keyColumns.forEach((column, i) => {
    const text = canonicalText(column, key[i] ?? null);
    parts.push(
      text === null ? Buffer.from('N') : Buffer.concat([Buffer.from(`${text.length}:`), text]),
    );
  });
  const message = Buffer.concat(parts);
  const hmac = [...policy.masking.values()].find((m) => m.kind === 'hmac');
  if (hmac?.kind === 'hmac') {
    const digest = createHmac('sha256', Buffer.from(hmac.key.reveal(), 'utf8'))
      .update(message)
      .digest('hex');
    return `hmac:${digest}`;
  }
  return `sha256:${createHash('sha256').update(message).digest('hex')}`;
}
