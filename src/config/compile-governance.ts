/**
 * The validated `governance:` section → the options the governed stages
 * share (src/governance/policy.ts): table names split, masks tagged, `default`
 * resolved to all, none or a zone. Kept beside compile.ts rather than in
 * RuntimeOptions until the data path reads it.
 */
import { ConfigError } from '../core/errors.js';
import type { GovernanceOptions, MaskSpec, ResidencyDefault } from '../governance/policy.js';
import { residencyValueOf } from '../governance/residency.js';
import { parseTablePattern } from './compile.js';
import type { GovernanceConfig, ValidatedConfig } from './schema.js';

type MaskConfig = NonNullable<GovernanceConfig['policies'][number]['masking'][string]>;

function compileMask(mask: MaskConfig): MaskSpec {
  if (mask === 'nullify') return { kind: 'nullify' };
  if (mask.hmac !== undefined) return { kind: 'hmac', key: mask.hmac.key };
  if (mask.redact !== undefined) return { kind: 'redact', text: mask.redact };
  // Validation guarantees exactly one mode.
  return { kind: 'truncate', length: mask.truncate ?? 0 };
}

function compileDefault(value: string): ResidencyDefault {
  if (value === 'all' || value === 'none') return { kind: value };
  return { kind: 'zone', zone: value };
}

/** The compiled governance of a validated file, or undefined when it has no `governance:` section. */
export function compileGovernance(config: ValidatedConfig): GovernanceOptions | undefined {
  const { governance } = config;
  if (governance === undefined) return undefined;
  return {
    zones: Object.fromEntries(
      Object.entries(governance.zones).map(([zone, regions]) => [zone, [...regions]]),
    ),
    regions: Object.keys(config.regions),
    policies: governance.policies.map((policy) => ({
      name: policy.name,
      tables: policy.tables.map(parseTablePattern),
      residency: {
        column: policy.residency.column,
        rules: policy.residency.rules.map((rule) => ({
          values: rule.in.map(residencyValueOf),
          zone: rule.zone,
          masked: rule.masked === 'all' ? 'all' : [...(rule.masked ?? [])],
        })),
        default: compileDefault(policy.residency.default),
      },
      masking: new Map(
        Object.entries(policy.masking).map(([column, mask]) => [column, compileMask(mask)]),
      ),
    })),
  };
}

/**
 * Refuses a command that moves or prints table data (run, snapshot,
 * bootstrap, prepare, verify) while the file has governance policies: this
 * version validates them but does not enforce them yet (docs/GOVERNANCE.md,
 * "Status"), and starting would replicate governed rows whole to every
 * region. Failing closed is the only safe reading of a policy that cannot
 * be applied. Remove once capture, apply and verify enforce policies.
 *
 * @throws ConfigError naming the policies and the reason.
 */
export function refuseUnenforcedGovernance(config: ValidatedConfig): void {
  const policies = config.governance?.policies ?? [];
  if (policies.length === 0) return;
  throw new ConfigError([
    `governance.policies: refusing to start: this version validates governance policies (${policies.map((p) => p.name).join(', ')}) but does not enforce them yet, and would replicate their tables unprotected (docs/GOVERNANCE.md, "Status")`,
  ]);
}
