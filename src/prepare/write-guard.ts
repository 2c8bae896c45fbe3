/**
 * Write guards of governed tables (docs/GOVERNANCE.md, "Writes outside the
 * plain regions"): in a region, the application may write only rows that
 * region may hold plain, before and after the write. A row it holds masked
 * carries masked values, which, published as a write, would overwrite the
 * originals in the plain regions; a row it may not hold at all must not be
 * created or moved there. So `prepare` gives a governed table, in each
 * region that may not hold every row plain, two BEFORE triggers that refuse
 * such an INSERT or UPDATE with SQLSTATE 45000 and a message naming the
 * policy, the region and the table (never a value). The applier's sessions
 * pass (they write the masked copies). Deletes are not guarded: a delete
 * carries no value, and deleting a person in any region is legitimate.
 *
 * The residency test is the one `residencyOf` makes in Node: the value's
 * text, compared byte for byte (`CAST(... AS BINARY)` against the UTF-8
 * bytes of each listed value, so collations play no part), NULL as a value
 * of its own.
 */
import type { GovernancePolicy, ResidencyValue, Zones } from '../governance/policy.js';
import { quoteId, sqlString } from '../mysql/identifiers.js';
import type { TableInfo } from '../mysql/introspect.js';
import { APPLIER_SESSION_FLAG } from '../mysql/internal-tables.js';
import { triggerDefinition, triggerName, type TriggerDefinition } from './ddl.js';

/** Whether the value list holds the row's residency value, as SQL over `alias` (never NULL). */
function listed(column: string, alias: string, values: readonly ResidencyValue[]): string {
  const parts: string[] = [];
  if (values.includes(null)) parts.push(`${alias}.${quoteId(column)} IS NULL`);
  const texts = values.filter((v): v is string => v !== null);
  if (texts.length > 0)
    parts.push(
      `COALESCE(CAST(${alias}.${quoteId(column)} AS BINARY) IN (${texts
        .map((t) => `X'${Buffer.from(t, 'utf8').toString('hex')}'`)
        .join(', ')}), FALSE)`,
    );
  return parts.length === 0 ? 'FALSE' : `(${parts.join(' OR ')})`;
}

const inZone = (zones: Zones, zone: string, region: string): boolean =>
  (Object.hasOwn(zones, zone) ? (zones[zone] ?? []) : []).includes(region);

/**
 * SQL true exactly when `region` may hold the row `alias` plain under
 * `policy`; undefined when it may hold every row plain (no guard needed).
 */
export function plainHereSql(
  policy: GovernancePolicy,
  zones: Zones,
  region: string,
  alias: 'NEW' | 'OLD',
): string | undefined {
  const { column, rules } = policy.residency;
  const fallback = policy.residency.default;
  const defaultPlain =
    fallback.kind === 'all' || (fallback.kind === 'zone' && inZone(zones, fallback.zone, region));
  const plainRules = rules.filter((rule) => inZone(zones, rule.zone, region));
  if (defaultPlain && plainRules.length === rules.length) return undefined;
  if (column === undefined || rules.length === 0) return defaultPlain ? undefined : 'FALSE';
  const plain = listed(
    column,
    alias,
    plainRules.flatMap((r) => r.values),
  );
  if (!defaultPlain) return plain;
  const unlisted = `NOT ${listed(
    column,
    alias,
    rules.flatMap((r) => r.values),
  )}`;
  if (plainRules.length === 0) return `(${unlisted})`;
  return `(${plain} OR NOT ${listed(
    column,
    alias,
    rules.flatMap((r) => r.values),
  )})`;
}

/**
 * SQL true exactly when `region` holds the row `alias` only masked under
 * `policy` (a rule masks it to `region`, outside the rule's zone).
 */
export function maskedHereSql(
  policy: GovernancePolicy,
  zones: Zones,
  region: string,
  alias: 'NEW' | 'OLD',
): string {
  const { column, rules } = policy.residency;
  if (column === undefined) return 'FALSE';
  const masking = rules.filter(
    (rule) =>
      !inZone(zones, rule.zone, region) && (rule.masked === 'all' || rule.masked.includes(region)),
  );
  return masking.length === 0
    ? 'FALSE'
    : listed(
        column,
        alias,
        masking.flatMap((r) => r.values),
      );
}

/**
 * SQL true when an UPDATE is an edit of a masked row that the region may
 * make (docs/GOVERNANCE.md, "Edits in a masked region"): the row is masked
 * here, and the key, the residency column and every masked column keep
 * their bytes. Capture forwards such an edit to the zone instead of
 * publishing it.
 */
function maskedEditSql(
  table: TableInfo,
  policy: GovernancePolicy,
  zones: Zones,
  region: string,
): string {
  const maskedHere = maskedHereSql(policy, zones, region, 'OLD');
  if (maskedHere === 'FALSE') return 'FALSE';
  const fixed = new Set([
    ...table.primaryKey,
    ...policy.masking.keys(),
    ...(policy.residency.column === undefined ? [] : [policy.residency.column]),
  ]);
  const unchanged = [...fixed].map(
    (c) => `CAST(NEW.${quoteId(c)} AS BINARY) <=> CAST(OLD.${quoteId(c)} AS BINARY)`,
  );
  return `(${maskedHere} AND ${unchanged.join(' AND ')})`;
}

/** MySQL's MESSAGE_TEXT holds at most 128 characters. */
function message(policy: GovernancePolicy, region: string, table: TableInfo, op: string): string {
  const text = `governance ${policy.name}: ${region} may not ${op} this row of ${table.schema}.${table.table}: it may hold it only masked or not at all`;
  return text.length <= 128 ? text : `${text.slice(0, 125)}...`;
}

/**
 * The two guard triggers of `table` in `region` (`_cdc_gi_<table>`,
 * `_cdc_gu_<table>`), or none when the region may hold every row plain.
 */
export function writeGuardTriggers(
  table: TableInfo,
  policy: GovernancePolicy,
  zones: Zones,
  region: string,
): TriggerDefinition[] {
  const newPlain = plainHereSql(policy, zones, region, 'NEW');
  const oldPlain = plainHereSql(policy, zones, region, 'OLD');
  if (newPlain === undefined || oldPlain === undefined) return [];
  const guard = (condition: string, op: string): string => `BEGIN
  IF ${APPLIER_SESSION_FLAG} IS NULL AND NOT (${condition}) THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = ${sqlString(message(policy, region, table, op))};
  END IF;
END`;
  return [
    triggerDefinition(
      table,
      triggerName('gi', table.table),
      'BEFORE INSERT',
      guard(newPlain, 'insert'),
    ),
    triggerDefinition(
      table,
      triggerName('gu', table.table),
      'BEFORE UPDATE',
      guard(
        `(${oldPlain} AND ${newPlain}) OR ${maskedEditSql(table, policy, zones, region)}`,
        'update',
      ),
    ),
  ];
}
