import type mysql from 'mysql2/promise';
import type { RuntimeOptions } from '../config/compile.js';
import { CdcError } from '../core/errors.js';
import type { MysqlConnection } from '../mysql/connection.js';
import {
  describeTable,
  resolveTables,
  serverInfo,
  supportsInvisibleColumns,
  type TableInfo,
} from '../mysql/introspect.js';
import {
  addVersionColumns,
  createInternalSchema,
  deleteTrigger,
  dropTrigger,
  insertTrigger,
  updateTrigger,
  internalTableDdl,
  type TriggerDefinition,
} from './ddl.js';

/** One change `prepare` makes: what it is, for people, and the SQL that does it. */
export interface PrepareStep {
  description: string;
  sql: string[];
}

export interface PreparePlan {
  steps: PrepareStep[];
  /** Replicated tables found for the region's pipelines. */
  tables: TableInfo[];
}

/** Every replicated table of the region's pipelines, described. */
async function pipelineTables(
  connection: MysqlConnection,
  options: RuntimeOptions,
): Promise<TableInfo[]> {
  const patterns = options.pipelines.flatMap((p) => p.tables);
  const names = await resolveTables(connection, patterns);
  const missing = patterns.filter(
    (p) => p.table !== '*' && !names.some((n) => n.schema === p.schema && n.table === p.table),
  );
  if (missing.length > 0) {
    throw new CdcError(
      `region ${options.region}: configured table(s) not found: ${missing.map((p) => `${p.schema}.${p.table}`).join(', ')}`,
      { code: 'TABLE_MISSING' },
    );
  }
  const tables: TableInfo[] = [];
  for (const name of names) {
    const info = await describeTable(connection, name.schema, name.table);
    if (info !== undefined) tables.push(info);
  }
  return tables;
}

function normaliseBody(body: string): string {
  return body.replace(/\s+/g, ' ').trim();
}

async function existingTriggers(
  connection: MysqlConnection,
  schemas: string[],
): Promise<Map<string, string>> {
  if (schemas.length === 0) return new Map();
  const [rows] = await connection.query<mysql.RowDataPacket[]>(
    `SELECT TRIGGER_SCHEMA AS s, TRIGGER_NAME AS n, ACTION_STATEMENT AS body
       FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA IN (?)`,
    [schemas],
  );
  return new Map(rows.map((r) => [`${String(r.s)}.${String(r.n)}`, normaliseBody(String(r.body))]));
}

async function existingInternalTables(
  connection: MysqlConnection,
  schema: string,
): Promise<Set<string>> {
  const [rows] = await connection.query<mysql.RowDataPacket[]>(
    'SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?',
    [schema],
  );
  return new Set(rows.map((r) => String(r.t)));
}

/**
 * Works out what `prepare` must change in the region's database: only what
 * is missing or out of date, so a second run plans nothing. Refuses, by
 * name, tables without a primary key and servers without INVISIBLE columns.
 */
export async function planPrepare(
  connection: MysqlConnection,
  options: RuntimeOptions,
  internalSchema: string,
): Promise<PreparePlan> {
  const info = await serverInfo(connection);
  if (!supportsInvisibleColumns(info)) {
    throw new CdcError(
      `region ${options.region}: server ${info.version} has no INVISIBLE columns; ` +
        'the version columns need MySQL 8.0.23+ or MariaDB 10.3.3+',
      { code: 'SERVER_UNSUPPORTED' },
    );
  }
  const tables = await pipelineTables(connection, options);
  const withoutKey = tables.filter((t) => t.primaryKey.length === 0);
  if (withoutKey.length > 0) {
    throw new CdcError(
      `region ${options.region}: table(s) without a primary key cannot be replicated: ` +
        `${withoutKey.map((t) => `${t.schema}.${t.table}`).join(', ')}; add a PRIMARY KEY`,
      { code: 'PRIMARY_KEY_MISSING' },
    );
  }

  const steps: PrepareStep[] = [];
  const haveInternal = await existingInternalTables(connection, internalSchema);
  if (haveInternal.size === 0) {
    steps.push({
      description: `create schema ${internalSchema}`,
      sql: [createInternalSchema(internalSchema)],
    });
  }
  for (const [name, ddl] of Object.entries(internalTableDdl(internalSchema))) {
    if (!haveInternal.has(name)) {
      steps.push({ description: `create table ${internalSchema}.${name}`, sql: [ddl] });
    }
  }

  const triggers = await existingTriggers(connection, [...new Set(tables.map((t) => t.schema))]);
  for (const table of tables) {
    const alter = addVersionColumns(table);
    if (alter !== undefined) {
      steps.push({
        description: `add version columns to ${table.schema}.${table.table}`,
        sql: [alter],
      });
    }
    const wanted: TriggerDefinition[] = [
      deleteTrigger(table, internalSchema, options.region),
      insertTrigger(table, internalSchema),
      updateTrigger(table, internalSchema, options.region),
    ];
    for (const trigger of wanted) {
      const current = triggers.get(`${table.schema}.${trigger.name}`);
      if (current === normaliseBody(trigger.body)) continue;
      steps.push({
        description: `${current === undefined ? 'install' : 'update'} trigger ${table.schema}.${trigger.name}`,
        sql:
          current === undefined
            ? [trigger.create]
            : [dropTrigger(table.schema, trigger.name), trigger.create],
      });
    }
  }
  return { steps, tables };
}

/** Runs the plan's statements in order. DDL commits implicitly, so each step stands alone. */
export async function applyPrepare(connection: MysqlConnection, plan: PreparePlan): Promise<void> {
  for (const step of plan.steps) {
    for (const sql of step.sql) {
      try {
        await connection.query(sql);
      } catch (err) {
        throw new CdcError(`prepare failed at "${step.description}": ${(err as Error).message}`, {
          cause: err,
          code: 'PREPARE_FAILED',
        });
      }
    }
  }
}
