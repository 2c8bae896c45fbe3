/**
 * The validated `governance:` section → the options the governed stages
 * share (src/governance/policy.ts): table names split, masks tagged, `default`
 * resolved to all, none or a zone. `compileRegion` puts them in
 * `RuntimeOptions.governance`.
 */
import type {
  GovernanceOptions,
  GovernedTable,
  MaskSpec,
  ResidencyDefault,
} from '../governance/policy.js';
import { residencyValueOf } from '../governance/residency.js';
import { TABLE_PATTERN, type GovernanceConfig, type ValidatedConfig } from './schema.js';

/** `schema.table` split (validation guarantees the shape; not imported from compile.ts, which imports this). */
function governedTable(name: string): GovernedTable {
  const match = TABLE_PATTERN.exec(name);
  return { schema: match?.[1] ?? '', table: match?.[2] ?? '' };
}

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
      tables: policy.tables.map(governedTable),
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
