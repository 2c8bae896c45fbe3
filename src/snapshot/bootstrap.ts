import type mysql from 'mysql2/promise';
import type { RuntimeOptions } from '../config/compile.js';
import { CdcError } from '../core/errors.js';
import type { GovernanceOptions } from '../governance/policy.js';
import { audienceIn, residencyClasses } from '../governance/residency.js';
import type { Logger } from '../core/logger.js';
import { connectMysql, describeMysql, type MysqlConnection } from '../mysql/connection.js';
import { qualifiedName, quoteId } from '../mysql/identifiers.js';
import { INTERNAL_COLUMNS, KEY_HASH_INDEX } from '../mysql/internal-tables.js';
import { describeTable, serverInfo } from '../mysql/introspect.js';
import { applyPrepare, planPrepare, type PrepareChoices } from '../prepare/prepare.js';
import { selectTables } from './snapshot.js';

/**
 * The database half of bringing a new region up (docs/BOOTSTRAP.md): the
 * tables the source region replicates are created in the new region where
 * they are missing (from the source's own definitions, without the
 * replicator's version columns), and `prepare` runs there. The data half is
 * a snapshot of the source.
 */

/**
 * The source's `SHOW CREATE TABLE` text made into a statement for another
 * server: qualified with the schema, the `_cdc_*` columns and the key-hash
 * index left out (`prepare` adds them with its own definition; the other
 * server may not even read the source's text of a generated column).
 */
export function portableCreateTable(schema: string, table: string, createSql: string): string {
  const lines = createSql.split('\n');
  const header = lines[0] ?? '';
  const match = /^CREATE TABLE `(?:[^`]|``)+`/.exec(header);
  if (match === null) {
    throw new CdcError(`cannot read the definition of ${schema}.${table}: ${header.slice(0, 80)}`, {
      code: 'BOOTSTRAP_DDL',
    });
  }
  const internal = [
    ...[...INTERNAL_COLUMNS].map((c) => `${quoteId(c)} `),
    `KEY ${quoteId(KEY_HASH_INDEX)} `,
  ];
  const kept = lines
    .slice(1)
    .filter((line) => !internal.some((prefix) => line.trimStart().startsWith(prefix)));
  // The last definition before `)` takes no comma (the key-hash index is often last).
  const close = kept.findIndex((line) => line.startsWith(')'));
  const last = close > 0 ? kept[close - 1] : undefined;
  if (last !== undefined && last.endsWith(',')) kept[close - 1] = last.slice(0, -1);
  return [
    `CREATE TABLE ${qualifiedName(schema, table)}${header.slice(match[0].length)}`,
    ...kept,
  ].join('\n');
}

export interface BootstrapSchemaResult {
  created: string[];
  nonEmpty: string[];
  prepareSteps: string[];
}

/**
 * Creates every configured table missing in `target` from `source`'s
 * definitions, then runs prepare there (which needs all of them).
 */
export async function bootstrapSchema(
  source: RuntimeOptions,
  target: RuntimeOptions,
  logger: Logger,
  choices: PrepareChoices = {},
): Promise<BootstrapSchemaResult> {
  const result: BootstrapSchemaResult = { created: [], nonEmpty: [], prepareSteps: [] };
  const sourceWhere = `region ${source.region} (${describeMysql(source.mysql)})`;
  const targetWhere = `region ${target.region} (${describeMysql(target.mysql)})`;
  let from: MysqlConnection | undefined;
  let to: MysqlConnection | undefined;
  try {
    from = await connectMysql(source.mysql);
    to = await connectMysql(target.mysql);
    const shapes = await selectTables(from, source, [], sourceWhere);
    const sourceFlavor = (await serverInfo(from)).flavor;
    const targetFlavor = (await serverInfo(to)).flavor;
    if (sourceFlavor !== targetFlavor) {
      const missing: string[] = [];
      for (const shape of shapes)
        if ((await describeTable(to, shape.schema, shape.table)) === undefined)
          missing.push(shape.name);
      if (missing.length > 0) {
        // MariaDB's definitions do not run on MySQL and back (JSON is LONGTEXT with a
        // CHECK on one, a type on the other; MySQL's default utf8mb4_0900_* collations
        // do not exist in MariaDB), and a translation could silently change a type.
        throw new CdcError(
          `${targetWhere}: table(s) ${missing.join(', ')} missing, and ${sourceWhere} runs ` +
            `${sourceFlavor === 'mysql' ? 'MySQL' : 'MariaDB'} while the new region runs ` +
            `${targetFlavor === 'mysql' ? 'MySQL' : 'MariaDB'}: bootstrap does not translate table ` +
            'definitions between the two. Create the tables in the new region with its own ' +
            'types (docs/ARCHITECTURE.md, MySQL and MariaDB), then run bootstrap again: it ' +
            'prepares them and copies the rows',
          { code: 'BOOTSTRAP_CROSS_ENGINE' },
        );
      }
    }
    for (const shape of shapes) {
      const existing = await describeTable(to, shape.schema, shape.table);
      if (existing !== undefined) {
        const [rows] = await to.query<mysql.RowDataPacket[]>(
          `SELECT 1 AS one FROM ${qualifiedName(shape.schema, shape.table)} LIMIT 1`,
        );
        if (rows.length > 0) result.nonEmpty.push(shape.name);
        continue;
      }
      const [schemas] = await from.query<mysql.RowDataPacket[]>(
        'SELECT DEFAULT_CHARACTER_SET_NAME AS cs, DEFAULT_COLLATION_NAME AS co FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?',
        [shape.schema],
      );
      const charset = schemas[0] as { cs?: string; co?: string } | undefined;
      await to.query(
        `CREATE DATABASE IF NOT EXISTS ${quoteId(shape.schema)}` +
          (charset?.cs === undefined
            ? ''
            : ` CHARACTER SET ${String(charset.cs)} COLLATE ${String(charset.co)}`),
      );
      const [create] = await from.query<mysql.RowDataPacket[]>(
        `SHOW CREATE TABLE ${qualifiedName(shape.schema, shape.table)}`,
      );
      const text = String((create[0] as Record<string, unknown> | undefined)?.['Create Table']);
      await to.query(portableCreateTable(shape.schema, shape.table, text));
      logger.info({ table: shape.name }, `created in ${targetWhere} from ${sourceWhere}`);
      result.created.push(shape.name);
    }
    const plan = await planPrepare(to, target, target.internalSchema, choices);
    await applyPrepare(to, plan);
    result.prepareSteps = plan.steps.map((s) => s.description);
  } finally {
    await from?.end().catch(() => undefined);
    await to?.end().catch(() => undefined);
  }
  return result;
}

/** One more snapshot a bootstrap runs for governed rows its source does not hold plain. */
export interface GovernedSnapshotSource {
  /** The region snapshotted: it holds those rows plain. */
  readonly region: string;
  /** `schema.table` names. */
  readonly tables: readonly string[];
  /** Which rows, per table, by configuration only (`app.people: rows whose country is CH`). */
  readonly reasons: readonly string[];
}

/**
 * The snapshots a bootstrap of `target` from `source` adds for governed
 * tables (docs/GOVERNANCE.md, "Snapshot, bootstrap and repair"): a region
 * publishes only the rows it holds plain (a masked copy is never published
 * as an original), so for each class of a policy's rows that `target` may
 * hold in any form but `source` does not hold plain, one region that holds
 * them plain (the first in configuration order) is snapshotted too. Without
 * it the new region would silently lack those rows. `filter` limits the
 * tables (`--tables`; empty: every governed table).
 */
export function governedSnapshotSources(
  governance: GovernanceOptions | undefined,
  source: string,
  target: string,
  filter: readonly string[],
): GovernedSnapshotSource[] {
  const byRegion = new Map<string, { tables: Set<string>; reasons: string[] }>();
  for (const policy of governance?.policies ?? []) {
    const classes = residencyClasses(policy, governance?.zones ?? {}, governance?.regions ?? []);
    for (const { schema, table } of policy.tables) {
      const name = `${schema}.${table}`;
      if (filter.length > 0 && !filter.includes(name)) continue;
      for (const { rows, residency } of classes) {
        if (audienceIn(residency, target) === 'none' || residency.plain.includes(source)) continue;
        const from = residency.plain.find((region) => region !== target);
        if (from === undefined) continue; // only the new region may hold them: nobody else has any
        let entry = byRegion.get(from);
        if (entry === undefined) byRegion.set(from, (entry = { tables: new Set(), reasons: [] }));
        entry.tables.add(name);
        entry.reasons.push(`${name}: ${rows} (policy ${policy.name})`);
      }
    }
  }
  return [...byRegion].map(([region, { tables, reasons }]) => ({
    region,
    tables: [...tables],
    reasons,
  }));
}
