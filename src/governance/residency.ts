/**
 * Residency: which regions may hold a row plainly, which masked, and which not
 * at all. A pure function of the row image and the configuration, never of
 * the region that wrote the row, so every region computes the same answer
 * for the same version of a row (docs/GOVERNANCE.md, "Residency").
 */
import {
  GovernanceError,
  type EncodedValue,
  type GovernancePolicy,
  type ResidencyDefault,
  type ResidencyRule,
  type ResidencyValue,
  type RowValues,
  type Zones,
} from './policy.js';

/** How a region may hold a row. */
export type Audience = 'plain' | 'masked' | 'none';

/** The regions that may hold a row, and what decided it. */
export interface Residency {
  /** Regions that may hold the row as written, in configuration order. */
  readonly plain: readonly string[];
  /** Regions that may hold it only masked, in configuration order; disjoint from `plain`. */
  readonly masked: readonly string[];
  /**
   * Where `plain` comes from: a zone (a rule's, or `default: <zone>`), every
   * region (`default: all`), or no region (`default: none`). Topic routing
   * follows it (topics.ts).
   */
  readonly scope:
    | { readonly kind: 'all' }
    | { readonly kind: 'none' }
    | { readonly kind: 'zone'; readonly zone: string };
  /** Index of the rule that matched, or `'default'`. */
  readonly decidedBy: number | 'default';
}

/**
 * The canonical text a residency value is compared by: strings as they are
 * (exact, case-sensitive), integers in decimal, booleans as 1/0 (MySQL's
 * BOOLEAN is TINYINT(1)), other numbers as ECMAScript prints them, NULL as
 * `null`.
 */
export function residencyValueOf(value: EncodedValue): ResidencyValue {
  if (value === null) return null;
  if (typeof value === 'boolean') return value ? '1' : '0';
  return String(value);
}

function zoneRegions(zones: Zones, zone: string, regions: readonly string[]): string[] {
  const members = new Set(Object.hasOwn(zones, zone) ? (zones[zone] ?? []) : []);
  return regions.filter((region) => members.has(region));
}

/**
 * The residency of one row image under `policy`.
 *
 * - The first rule whose `in` lists the row's residency value decides (the
 *   configuration refuses a value listed by two rules, so order never
 *   matters in a valid file).
 * - A NULL residency value matches only a rule that lists `null`; otherwise
 *   it is like any value no rule lists and `default` decides.
 * - A row image without the residency column cannot be decided and is
 *   refused with a {@link GovernanceError} (fail closed), never guessed.
 *
 * @param zones the configured zones.
 * @param regions every configured region, in configuration order.
 */
export function residencyOf(
  policy: GovernancePolicy,
  zones: Zones,
  regions: readonly string[],
  row: RowValues,
): Residency {
  const { column, rules } = policy.residency;
  if (column !== undefined && rules.length > 0) {
    if (!Object.hasOwn(row, column)) {
      throw new GovernanceError(
        `policy ${policy.name}: the row image lacks the residency column ${column}`,
        'GOVERNANCE_ROW_INCOMPLETE',
      );
    }
    const value = residencyValueOf(row[column] ?? null);
    const index = rules.findIndex((rule) => rule.values.includes(value));
    const rule = index === -1 ? undefined : rules[index];
    if (rule !== undefined) return ruleResidency(rule, index, zones, regions);
  }
  return defaultResidency(policy.residency.default, zones, regions);
}

function ruleResidency(
  rule: ResidencyRule,
  index: number,
  zones: Zones,
  regions: readonly string[],
): Residency {
  const plain = zoneRegions(zones, rule.zone, regions);
  const maskedSet = new Set(rule.masked === 'all' ? regions : rule.masked);
  return {
    plain,
    masked: regions.filter((region) => maskedSet.has(region) && !plain.includes(region)),
    scope: { kind: 'zone', zone: rule.zone },
    decidedBy: index,
  };
}

function defaultResidency(
  fallback: ResidencyDefault,
  zones: Zones,
  regions: readonly string[],
): Residency {
  switch (fallback.kind) {
    case 'all':
      return { plain: [...regions], masked: [], scope: fallback, decidedBy: 'default' };
    case 'none':
      return { plain: [], masked: [], scope: fallback, decidedBy: 'default' };
    case 'zone':
      return {
        plain: zoneRegions(zones, fallback.zone, regions),
        masked: [],
        scope: fallback,
        decidedBy: 'default',
      };
  }
}

/** One class of a policy's rows: those a rule decides, or those left to the default. */
export interface ResidencyClass {
  /** Which rows, by the configuration only (`rows whose country is DE, FR`), never a row's value. */
  readonly rows: string;
  readonly residency: Residency;
}

/**
 * Every residency a row of `policy` can have: one per rule, in file order,
 * then the default's (unless every value is decided by a rule, which the
 * configuration cannot say, so the default is always listed).
 */
export function residencyClasses(
  policy: GovernancePolicy,
  zones: Zones,
  regions: readonly string[],
): readonly ResidencyClass[] {
  const { column, rules } = policy.residency;
  const classes: ResidencyClass[] =
    column === undefined
      ? []
      : rules.map((rule, index) => ({
          rows: `rows whose ${column} is ${rule.values.map((v) => v ?? 'NULL').join(', ')}`,
          residency: ruleResidency(rule, index, zones, regions),
        }));
  classes.push({
    rows: column === undefined || rules.length === 0 ? 'every row' : 'every other row',
    residency: defaultResidency(policy.residency.default, zones, regions),
  });
  return classes;
}

/** The regions that may hold `row` as written (`allowed(row)` of the issue). */
export function allowedRegions(
  policy: GovernancePolicy,
  zones: Zones,
  regions: readonly string[],
  row: RowValues,
): readonly string[] {
  return residencyOf(policy, zones, regions, row).plain;
}

/** The regions that may hold `row` only masked (`masked(row)` of the issue). */
export function maskedRegions(
  policy: GovernancePolicy,
  zones: Zones,
  regions: readonly string[],
  row: RowValues,
): readonly string[] {
  return residencyOf(policy, zones, regions, row).masked;
}

/**
 * How `targetRegion` may hold `row`: as written, masked, or not at all. A
 * region that is not configured gets `'none'`.
 */
export function audienceFor(
  policy: GovernancePolicy,
  zones: Zones,
  regions: readonly string[],
  row: RowValues,
  targetRegion: string,
): Audience {
  return audienceIn(residencyOf(policy, zones, regions, row), targetRegion);
}

/** {@link audienceFor} for a residency already computed (one per event, many targets). */
export function audienceIn(residency: Residency, targetRegion: string): Audience {
  if (residency.plain.includes(targetRegion)) return 'plain';
  if (residency.masked.includes(targetRegion)) return 'masked';
  return 'none';
}
