/**
 * A policy's version: a short fingerprint of everything that decides where
 * its rows go and what masked copies look like, for audit records ("policy
 * name and version") and to tell regions running different policies apart.
 */
import { createHash, createHmac } from 'node:crypto';

import type { Secret } from '../core/secret.js';
import type { GovernancePolicy, MaskSpec, Zones } from './policy.js';

/** Length of {@link policyVersion}, in hex digits (48 bits). */
export const POLICY_VERSION_LENGTH = 12;

/**
 * Identifies an HMAC key without revealing it (a key check value): the
 * first 16 hex digits of HMAC-SHA256(key, "cdc-replicator key id").
 */
export function keyId(key: Secret): string {
  return createHmac('sha256', Buffer.from(key.reveal(), 'utf8'))
    .update('cdc-replicator key id', 'utf8')
    .digest('hex')
    .slice(0, 16);
}

function maskFingerprint(mask: MaskSpec): unknown[] {
  switch (mask.kind) {
    case 'nullify':
      return ['nullify'];
    case 'redact':
      return ['redact', mask.text];
    case 'truncate':
      return ['truncate', mask.length];
    case 'hmac':
      return ['hmac', keyId(mask.key)];
  }
}

/**
 * The first {@link POLICY_VERSION_LENGTH} hex digits of SHA-256 over a
 * canonical JSON of the policy: its tables, residency (with the regions of
 * every zone it names), masks in column order, and for `hmac` the
 * {@link keyId} of its key. Any change that can change a decision or a
 * masked value changes the version; reordering the file's masks does not.
 */
export function policyVersion(policy: GovernancePolicy, zones: Zones): string {
  // Asked for every audited change: computed once per policy and zones (both immutable once compiled).
  let byZones = versions.get(policy);
  if (byZones === undefined) {
    byZones = new WeakMap();
    versions.set(policy, byZones);
  }
  let version = byZones.get(zones);
  if (version === undefined) {
    version = computePolicyVersion(policy, zones);
    byZones.set(zones, version);
  }
  return version;
}

const versions = new WeakMap<GovernancePolicy, WeakMap<Zones, string>>();

function computePolicyVersion(policy: GovernancePolicy, zones: Zones): string {
  const { residency } = policy;
  const named = new Set(residency.rules.map((rule) => rule.zone));
  if (residency.default.kind === 'zone') named.add(residency.default.zone);
  const canonical = JSON.stringify([
    policy.name,
    policy.tables.map((t) => `${t.schema}.${t.table}`).sort(),
    residency.column ?? null,
    residency.rules.map((rule) => [
      [...rule.values].sort((a, b) => String(a).localeCompare(String(b))),
      rule.zone,
      rule.masked === 'all' ? 'all' : [...rule.masked].sort(),
    ]),
    residency.default.kind === 'zone' ? ['zone', residency.default.zone] : [residency.default.kind],
    [...named].sort().map((zone) => [zone, [...(zones[zone] ?? [])].sort()]),
    [...policy.masking]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([column, mask]) => [column, ...maskFingerprint(mask)]),
  ]);
  return createHash('sha256')
    .update(canonical, 'utf8')
    .digest('hex')
    .slice(0, POLICY_VERSION_LENGTH);
}
