/**
 * The checks of a policy that need the table itself (its columns, types and
 * primary key), which the configuration file alone cannot tell: `prepare`
 * and `validate` call them with what they read from information_schema.
 * Each returns every problem as a complete message naming the table, the
 * column, its type and what is needed.
 */
import { typeArguments, valueClassOf } from './canonical.js';
import { describeMask, maskApplies, minimumWidth } from './masks.js';
import type { ColumnTypeInfo, GovernancePolicy, TableTypeInfo } from './policy.js';
import { unhashedKeyType } from '../mysql/tombstone-key.js';

/** Width of the TEXT and BLOB types, in bytes (MySQL's maximum lengths). */
const LOB_BYTES: Readonly<Record<string, number>> = {
  tinytext: 255,
  tinyblob: 255,
  text: 65_535,
  blob: 65_535,
  mediumtext: 16_777_215,
  mediumblob: 16_777_215,
  longtext: 4_294_967_295,
  longblob: 4_294_967_295,
};

/**
 * How much a column holds: CHAR/VARCHAR in characters, BINARY/VARBINARY and
 * the TEXT/BLOB types in bytes; undefined for types without a length.
 */
export function columnWidth(
  column: ColumnTypeInfo,
): { readonly width: number; readonly unit: 'characters' | 'bytes' } | undefined {
  const type = column.dataType.toLowerCase();
  const lob = LOB_BYTES[type];
  if (lob !== undefined) return { width: lob, unit: 'bytes' };
  const declared = typeArguments(column.columnType)[0];
  if (type === 'char' || type === 'varchar') {
    return { width: declared ?? 1, unit: 'characters' };
  }
  if (type === 'binary' || type === 'varbinary') return { width: declared ?? 1, unit: 'bytes' };
  return undefined;
}

function where(table: TableTypeInfo, column: ColumnTypeInfo | string): string {
  const name = typeof column === 'string' ? column : column.name;
  const type = typeof column === 'string' ? '' : ` (${column.columnType})`;
  return `${table.schema}.${table.table}.${name}${type}`;
}

/**
 * Problems with the masked columns of `policy` in `table`: a column the
 * table lacks, a primary-key column (the key routes and joins every event,
 * so it is never masked), `nullify` on a NOT NULL column, a mask the column
 * type cannot hold, and a column too narrow for its mask's output
 * ({@link minimumWidth}). Empty when every mask can be applied.
 */
export function checkMaskableColumns(policy: GovernancePolicy, table: TableTypeInfo): string[] {
  const problems: string[] = [];
  const columns = new Map(table.columns.map((column) => [column.name, column]));
  for (const [name, mask] of policy.masking) {
    const column = columns.get(name);
    const label = `${describeMask(mask)} mask of policy ${policy.name}`;
    if (column === undefined) {
      problems.push(`${where(table, name)}: no such column (${label})`);
      continue;
    }
    if (table.primaryKey.includes(name)) {
      problems.push(
        `${where(table, column)}: a primary-key column cannot be masked (${label}); every region needs the key to apply, join and erase the row`,
      );
      continue;
    }
    if (mask.kind === 'nullify' && column.nullable === false) {
      problems.push(
        `${where(table, column)}: NOT NULL, so the nullify mask cannot be written (${label}); make the column nullable or use another mask`,
      );
      continue;
    }
    if (!maskApplies(mask, column)) {
      problems.push(
        `${where(table, column)}: the ${mask.kind} mask writes text, which a ${column.dataType} column cannot hold (${label}); use nullify`,
      );
      continue;
    }
    const capacity = columnWidth(column);
    if (capacity === undefined) continue;
    const needed = minimumWidth(mask, capacity.unit);
    if (capacity.width < needed) {
      problems.push(
        `${where(table, column)}: too narrow for the ${label}: it holds ${capacity.width} ${capacity.width === 1 ? capacity.unit.slice(0, -1) : capacity.unit}, the mask needs at least ${needed}`,
      );
    }
  }
  return problems;
}

/**
 * Problems with the residency column of `policy` in `table`: a column the
 * table lacks, a type residency cannot be decided on reliably (only
 * character, ENUM and integer columns: their canonical text is exact), and
 * rule values an integer column can never hold.
 */
export function checkResidencyColumn(policy: GovernancePolicy, table: TableTypeInfo): string[] {
  const name = policy.residency.column;
  if (name === undefined) return [];
  const column = table.columns.find((c) => c.name === name);
  const label = `residency column of policy ${policy.name}`;
  if (column === undefined) return [`${where(table, name)}: no such column (${label})`];
  const kind = valueClassOf(column);
  if (kind === 'integer') {
    const nonInteger = policy.residency.rules
      .flatMap((rule) => rule.values)
      .filter((value): value is string => value !== null && !/^-?\d+$/.test(value));
    return nonInteger.length === 0
      ? []
      : [
          `${where(table, column)}: an integer column never holds ${nonInteger.map((v) => JSON.stringify(v)).join(', ')} (${label}); such rules would never match`,
        ];
  }
  if (kind === 'text' || kind === 'enum') return [];
  return [
    `${where(table, column)}: residency is decided on character, ENUM or integer columns only (${label})`,
  ];
}

/**
 * Problems with the primary key of a governed table: a key column whose
 * tombstone key capture cannot compute (src/mysql/tombstone-key.ts
 * `unhashedKeyType`: temporal, floating-point, ENUM, SET, BIT, JSON, BLOB
 * types, DECIMAL ZEROFILL). Eviction notices name a row by that hash alone,
 * so without it a row leaving a region could not be evicted there.
 */
export function checkKeyColumns(policy: GovernancePolicy, table: TableTypeInfo): string[] {
  const columns = new Map(table.columns.map((column) => [column.name, column]));
  return table.primaryKey.flatMap((name) => {
    const column = columns.get(name);
    const reason = column === undefined ? undefined : unhashedKeyType(column);
    return column === undefined || reason === undefined
      ? []
      : [
          `${where(table, column)}: a primary-key column of a table governed by policy ${policy.name} must be an integer, CHAR/VARCHAR/TEXT, BINARY/VARBINARY or DECIMAL column: eviction notices name a row by the hash of its key, and ${reason}`,
        ];
  });
}

/** Every table-level problem of `policy` in `table`: {@link checkKeyColumns}, {@link checkResidencyColumn}, then {@link checkMaskableColumns}. */
export function checkPolicyTable(policy: GovernancePolicy, table: TableTypeInfo): string[] {
  return [
    ...checkKeyColumns(policy, table),
    ...checkResidencyColumn(policy, table),
    ...checkMaskableColumns(policy, table),
  ];
}
