/**
 * The validated `governance:` section → the options the governed stages
 * share (src/governance/policy.ts): table names split, masks tagged, `default`
 * resolved to all, none or a zone. `compileRegion` puts them in
 * `RuntimeOptions.governance`.
 */
import { ConfigError } from '../core/errors.js';
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

/** The commands that move table data, and so must not run unprotected. */
export type GovernedCommand = 'run' | 'prepare' | 'snapshot' | 'bootstrap';

/**
 * What this version does not enforce of a policy, for the one line `run`
 * logs at start under `governance.preview: true` (names only, never a
 * value). Keep it in step with docs/GOVERNANCE.md, "Status".
 */
export const NOT_ENFORCED_YET: readonly string[] = [
  'eviction of rows whose key types capture cannot hash like the tombstone trigger (src/mysql/tombstone-key.ts): their notices are parked in the capture dead letters instead',
  'checks of masked and residency columns against the live tables in validate (prepare runs them)',
];

/**
 * Refuses a command that moves table data (run, snapshot, bootstrap,
 * prepare) while the file has governance policies, unless it says
 * `governance.preview: true` (docs/GOVERNANCE.md, "Status"). Capture,
 * snapshot, bootstrap and `verify --repair` route, mask, evict and audit
 * governed rows, the appliers re-check them, write guards refuse local
 * writes a region may not make, a masked region's edits are forwarded to
 * its zone, and `erase` removes a row everywhere; what is not
 * built ({@link NOT_ENFORCED_YET}) fails closed (a notice that cannot be
 * sent is parked loudly), but an operator must know it before relying on
 * it, so the file has to say so. `run` then logs what is not enforced.
 *
 * @throws ConfigError naming the policies and the reason.
 */
export function refuseUnenforcedGovernance(
  config: ValidatedConfig,
  command: GovernedCommand,
): void {
  const policies = config.governance?.policies ?? [];
  if (policies.length === 0 || config.governance?.preview === true) return;
  const names = policies.map((p) => p.name).join(', ');
  throw new ConfigError([
    `governance.policies: ${command} refuses to start: this version enforces governance policies (${names}) only in part (capture, snapshot, bootstrap and verify --repair route, mask, evict and audit; the appliers re-check; write guards; masked-region edits; erasure; not yet: notices for keys capture cannot hash, validate's live table checks). Set governance.preview: true to run them as they are (docs/GOVERNANCE.md, "Status")`,
  ]);
}
