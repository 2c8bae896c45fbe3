/**
 * The row `cdc-replicator audit` looks for: `--table db.t` and
 * `--key col=value[,col=value]` turned into the key hash audit records
 * carry (src/governance/key-hash.ts). Pure; the table's primary key and
 * its types come from a region's database (src/audit/read.ts). Errors are
 * ConfigErrors (exit 2) and never repeat a value given on the command line.
 */
import { tableMatches, type TablePattern } from '../config/compile.js';
import { ConfigError } from '../core/errors.js';
import { keyHash } from '../governance/key-hash.js';
import {
  GovernanceError,
  policyForTable,
  type ColumnTypeInfo,
  type GovernanceOptions,
  type GovernancePolicy,
} from '../governance/policy.js';

/** `db.t` split. */
export interface AuditedTable {
  readonly schema: string;
  readonly table: string;
}

/** One `col=value` of `--key`, the value as given (text). */
export interface KeyPart {
  readonly column: string;
  readonly value: string;
}

/** `--table db.t` split, one table (no `*`). */
export function parseTableArgument(text: string): AuditedTable {
  const dot = text.indexOf('.');
  const schema = text.slice(0, dot);
  const table = text.slice(dot + 1);
  if (dot <= 0 || table.length === 0 || table.includes('.') || table === '*')
    throw new ConfigError([`--table: expected schema.table, got ${JSON.stringify(text)}`]);
  return { schema, table };
}

/**
 * The `--key` values in key order: `parts` must name exactly the table's
 * key columns `wanted` (in any order).
 */
export function keyValuesInOrder(
  name: string,
  wanted: readonly string[],
  parts: readonly KeyPart[],
): (string | null)[] {
  const given = parts.map((p) => p.column);
  if (given.length !== wanted.length || !wanted.every((c) => given.includes(c)))
    throw new ConfigError([
      `--key: the primary key of ${name} is (${wanted.join(', ')}); --key names (${given.join(', ')})`,
    ]);
  return wanted.map((c) => parts.find((p) => p.column === c)?.value ?? null);
}

/** `--table db.t`: a table of some pipeline, under a policy. */
export function auditedTable(
  text: string,
  pipelines: readonly { readonly tables: readonly TablePattern[] }[],
  governance: Pick<GovernanceOptions, 'policies'> | undefined,
): { readonly table: AuditedTable; readonly policy: GovernancePolicy } {
  const { schema, table } = parseTableArgument(text);
  if (!pipelines.some((p) => p.tables.some((t) => tableMatches(t, schema, table))))
    throw new ConfigError([`--table: ${schema}.${table} is not a table of any pipeline`]);
  const policy = governance === undefined ? undefined : policyForTable(governance, schema, table);
  if (policy === undefined)
    throw new ConfigError([
      `--table: ${schema}.${table} is not under a governance policy, so it has no audit trail`,
    ]);
  return { table: { schema, table }, policy };
}

/**
 * `col=value[,col=value]`: each part split at its first `=`; a value is
 * the text up to the next `,` (so it cannot hold a comma) and may be empty.
 */
export function parseKeyArgument(text: string): KeyPart[] {
  const parts = text.split(',');
  const problems: string[] = [];
  const result: KeyPart[] = [];
  parts.forEach((part, i) => {
    const eq = part.indexOf('=');
    const column = eq < 0 ? '' : part.slice(0, eq).trim();
    if (column.length === 0) {
      problems.push(`--key: part ${i + 1} is not column=value`);
      return;
    }
    if (result.some((p) => p.column === column)) problems.push(`--key: ${column} is given twice`);
    result.push({ column, value: part.slice(eq + 1) });
  });
  if (problems.length > 0) throw new ConfigError(problems);
  return result;
}

/**
 * The key hash of the row whose primary key is `parts`: they must name
 * exactly the key columns (in any order); each value is read as the
 * envelope encodes it (decimal digits for integers, `YYYY-MM-DD hh:mm:ss`
 * with or without a fraction for DATETIME, base64 for binary columns).
 */
export function auditKeyHash(
  policy: GovernancePolicy,
  table: AuditedTable,
  keyColumns: readonly ColumnTypeInfo[],
  parts: readonly KeyPart[],
): string {
  const name = `${table.schema}.${table.table}`;
  const wanted = keyColumns.map((c) => c.name);
  if (wanted.length === 0)
    throw new ConfigError([`--key: ${name} has no primary key, so it has no audit trail`]);
  const values = keyValuesInOrder(name, wanted, parts);
  try {
    return keyHash(policy, keyColumns, values);
  } catch (err) {
    // The message names the column and its type, never the value.
    if (err instanceof GovernanceError) throw new ConfigError([`--key: ${err.message}`]);
    throw err;
  }
}
