/**
 * The compiled form of the `governance:` section (docs/GOVERNANCE.md): zones,
 * and per-table policies of residency and masking. These are the types every
 * governed stage shares (capture routing and masking, apply re-check, verify,
 * audit). They hold no behaviour; the pure functions live beside them
 * (residency.ts, masks.ts, topics.ts, table-check.ts).
 */
import { CdcError } from '../core/errors.js';
import type { Secret } from '../core/secret.js';

/**
 * A column value as the change envelope carries it (src/bus/envelope.ts):
 * DECIMAL and big integers as strings, temporal values as strings with their
 * fraction, binary data as base64, JSON as its text. Declared here rather
 * than imported so governance does not depend on the envelope's module.
 */
export type EncodedValue = string | number | boolean | null;

/** A row image: column name → encoded value. */
export type RowValues = Readonly<Record<string, EncodedValue>>;

/** What governance needs to know about a column (a subset of mysql/introspect's ColumnInfo). */
export interface ColumnTypeInfo {
  readonly name: string;
  /** information_schema DATA_TYPE, lower case: `varchar`, `decimal`, `datetime`, ... */
  readonly dataType: string;
  /** Full COLUMN_TYPE: `varchar(255)`, `decimal(10,2)`, `binary(16)`, ... */
  readonly columnType: string;
  /** Whether the column accepts NULL; assumed true when unknown. */
  readonly nullable?: boolean;
}

/** What governance needs to know about a table (a subset of mysql/introspect's TableInfo). */
export interface TableTypeInfo {
  readonly schema: string;
  readonly table: string;
  readonly columns: readonly ColumnTypeInfo[];
  /** Primary-key column names in key order. */
  readonly primaryKey: readonly string[];
}

/** One masking mode of a column; the key of `hmac` never leaves its {@link Secret}. */
export type MaskSpec =
  | { readonly kind: 'nullify' }
  | { readonly kind: 'redact'; readonly text: string }
  | { readonly kind: 'truncate'; readonly length: number }
  | { readonly kind: 'hmac'; readonly key: Secret };

/**
 * A residency value as a rule lists it, in canonical text: a string as is,
 * an integer in decimal, `null` for SQL NULL.
 */
export type ResidencyValue = string | null;

/** `{ in: [...], zone, masked }`: rows whose residency column holds one of `values`. */
export interface ResidencyRule {
  readonly values: readonly ResidencyValue[];
  /** The zone whose regions hold the row plainly. */
  readonly zone: string;
  /** Regions outside the zone that hold it masked; `'all'`: every other region. */
  readonly masked: readonly string[] | 'all';
}

/** Where a row goes when no rule matches its residency value. */
export type ResidencyDefault =
  | { readonly kind: 'all' }
  | { readonly kind: 'none' }
  | { readonly kind: 'zone'; readonly zone: string };

/** The residency of a policy's rows. Without `column`, every row takes `default`. */
export interface ResidencyPolicy {
  readonly column: string | undefined;
  readonly rules: readonly ResidencyRule[];
  readonly default: ResidencyDefault;
}

/** A governed table, `schema.table` split. */
export interface GovernedTable {
  readonly schema: string;
  readonly table: string;
}

/** One entry of `governance.policies`. */
export interface GovernancePolicy {
  readonly name: string;
  readonly tables: readonly GovernedTable[];
  readonly residency: ResidencyPolicy;
  /** Column → mask, in file order. */
  readonly masking: ReadonlyMap<string, MaskSpec>;
}

/** Zone name → its regions, in file order. */
export type Zones = Readonly<Record<string, readonly string[]>>;

/** The whole compiled `governance:` section. */
export interface GovernanceOptions {
  readonly zones: Zones;
  /** Every configured region, in file order: the universe `all` refers to. */
  readonly regions: readonly string[];
  readonly policies: readonly GovernancePolicy[];
}

/**
 * A governed row or value that cannot be decided or masked (a row image
 * without its residency column, a mask on a column type it cannot apply to).
 * Never retriable: the same event fails the same way, so it is refused, not
 * retried. The message names columns and types, never values.
 */
export class GovernanceError extends CdcError {
  constructor(message: string, code = 'GOVERNANCE') {
    super(message, { retriable: false, code });
  }
}

/** The policy that governs `schema.table`, if any (a table belongs to at most one). */
export function policyForTable(
  governance: Pick<GovernanceOptions, 'policies'>,
  schema: string,
  table: string,
): GovernancePolicy | undefined {
  return governance.policies.find((policy) =>
    policy.tables.some((t) => t.schema === schema && t.table === table),
  );
}
