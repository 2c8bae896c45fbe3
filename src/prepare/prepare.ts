import type mysql from 'mysql2/promise';
import type { RuntimeOptions } from '../config/compile.js';
import { CdcError } from '../core/errors.js';
import type { MysqlConnection } from '../mysql/connection.js';
import { tableMatches } from '../config/compile.js';
import { isInternalTable } from '../mysql/internal-tables.js';
import { dialectOf, type SqlDialect } from '../mysql/dialect.js';
import { describeTable, resolveTables, serverInfo, type TableInfo } from '../mysql/introspect.js';
import { KEY_HASH_COLUMN, KEY_HASH_INDEX, VERSION_COLUMNS } from '../mysql/internal-tables.js';
import { writeGuardTriggers } from './write-guard.js';
import { policyForTable } from '../governance/policy.js';
import {
  addKeyHashColumn,
  addKeyHashIndex,
  addVersionColumns,
  createInternalSchema,
  deleteTrigger,
  dropKeyHashColumn,
  dropKeyHashIndex,
  dropTrigger,
  insertTrigger,
  keyHashComment,
  triggerName,
  updateTrigger,
  internalTableDdl,
  type TriggerDefinition,
  type VersionColumnLayout,
} from './ddl.js';

/**
 * What a step repairs, also the `what` label of `cdc_schema_repairs_total`:
 * the internal schema and tables (set up by `prepare` only, never by the
 * daemon), a table's version columns, its triggers (which also carry the
 * table's tombstone key definition), or triggers of ours that sit on the
 * wrong table after a rename (a table swap moves triggers with the table),
 * or a governed table's key-hash column and its index (added, replaced when
 * the key changed, dropped from a table no policy governs any more).
 */
export type PrepareStepKind =
  'internal' | 'version_columns' | 'key_hash' | 'triggers' | 'misplaced_triggers';

/** One change `prepare` makes: what it is, for people, and the SQL that does it. */
export interface PrepareStep {
  description: string;
  sql: string[];
  kind: PrepareStepKind;
  /** `schema.table` the step changes; absent for the internal schema. */
  table?: string;
  /** The internal table an `internal` step creates; absent for the schema itself. */
  internalTable?: string;
}

export interface PreparePlan {
  steps: PrepareStep[];
  /** Replicated tables found for the region's pipelines. */
  tables: TableInfo[];
  /** How the version columns are (or will be) declared here. */
  layout: VersionColumnLayout;
  /** What the operator must know about the plan (visible version columns). */
  warnings: string[];
}

/** Choices of the operator that change what `prepare` does. */
export interface PrepareChoices {
  /**
   * On a server without INVISIBLE columns (MySQL 8.0.12–8.0.22), add the
   * version columns as ordinary trailing columns instead of refusing.
   */
  visibleVersionColumns?: boolean;
}

/** A replicated table that cannot be prepared, and what the operator must do about it. */
export interface UnpreparableTable {
  table: string;
  reason: string;
  code: 'PRIMARY_KEY_MISSING';
}

/** Steps for some replicated tables, and the tables that cannot be prepared. */
export interface TablesPlan {
  steps: PrepareStep[];
  tables: TableInfo[];
  unpreparable: UnpreparableTable[];
}

/** The region's tables selected by its pipelines (helper tables of schema-change tools excluded). */
export async function pipelineTableNames(
  connection: MysqlConnection,
  options: RuntimeOptions,
): Promise<{ names: { schema: string; table: string }[]; missing: string[] }> {
  const patterns = options.pipelines.flatMap((p) => p.tables);
  const names = (await resolveTables(connection, patterns)).filter((n) =>
    patterns.some((p) => tableMatches(p, n.schema, n.table)),
  );
  const missing = patterns
    .filter(
      (p) => p.table !== '*' && !names.some((n) => n.schema === p.schema && n.table === p.table),
    )
    .map((p) => `${p.schema}.${p.table}`);
  return { names, missing };
}

function normaliseBody(body: string): string {
  return body.replace(/\s+/g, ' ').trim();
}

/** A trigger as the server reports it: the table it is on may differ from the one its name is for. */
interface ExistingTrigger {
  schema: string;
  name: string;
  table: string;
  body: string;
}

/** Triggers of the schemas, keyed by `schema.trigger`. */
async function existingTriggers(
  connection: MysqlConnection,
  schemas: string[],
): Promise<Map<string, ExistingTrigger>> {
  if (schemas.length === 0) return new Map();
  const [rows] = await connection.query<mysql.RowDataPacket[]>(
    `SELECT TRIGGER_SCHEMA AS s, TRIGGER_NAME AS n, EVENT_OBJECT_TABLE AS t, ACTION_STATEMENT AS body
       FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA IN (?)`,
    [schemas],
  );
  return new Map(
    rows.map((r) => [
      `${String(r.s)}.${String(r.n)}`,
      {
        schema: String(r.s),
        name: String(r.n),
        table: String(r.t),
        body: normaliseBody(String(r.body)),
      },
    ]),
  );
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

/** The key-hash column of a table as the server describes it, and its index. */
interface ExistingKeyHash {
  /** `VIRTUAL GENERATED` (a virtual generated column). */
  virtual: boolean;
  invisible: boolean;
  columnType: string;
  comment: string;
  /** The index `_cdc_key_hash` exists on exactly the column `_cdc_key_hash`. */
  indexed: boolean;
  /** Some index named `_cdc_key_hash` exists (possibly over other columns). */
  indexNamed: boolean;
}

/** The key-hash columns of the schemas' tables, keyed by `schema.table`. */
async function existingKeyHashes(
  connection: MysqlConnection,
  schemas: string[],
): Promise<Map<string, ExistingKeyHash>> {
  if (schemas.length === 0) return new Map();
  const [columns] = await connection.query<mysql.RowDataPacket[]>(
    `SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t, EXTRA AS extra, COLUMN_TYPE AS type,
            COLUMN_COMMENT AS comment
       FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN (?) AND COLUMN_NAME = ?`,
    [schemas, KEY_HASH_COLUMN],
  );
  const [indexes] = await connection.query<mysql.RowDataPacket[]>(
    `SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t,
            GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX SEPARATOR ',') AS cols
       FROM information_schema.STATISTICS WHERE TABLE_SCHEMA IN (?) AND INDEX_NAME = ?
      GROUP BY TABLE_SCHEMA, TABLE_NAME`,
    [schemas, KEY_HASH_INDEX],
  );
  const indexed = new Map(indexes.map((r) => [`${String(r.s)}.${String(r.t)}`, String(r.cols)]));
  return new Map(
    columns.map((r) => {
      const key = `${String(r.s)}.${String(r.t)}`;
      const extra = String(r.extra);
      return [
        key,
        {
          virtual: /\bVIRTUAL GENERATED\b/i.test(extra),
          invisible: /\bINVISIBLE\b/i.test(extra),
          columnType: String(r.type).toLowerCase(),
          comment: String(r.comment),
          indexed: indexed.get(key) === KEY_HASH_COLUMN,
          indexNamed: indexed.has(key),
        },
      ];
    }),
  );
}

/**
 * The key-hash column (docs/GOVERNANCE.md, "Eviction support"): added with
 * its index to a governed table that lacks it, replaced when it computes
 * something else than the current key's hash (the primary key changed) or
 * is not the virtual column `prepare` declares, its index added when
 * missing; dropped from a table no policy governs. Each statement runs
 * online; a replacement drops and adds rather than MODIFY, which both
 * servers can only do by copying the table.
 */
function planKeyHash(
  table: TableInfo,
  existing: ExistingKeyHash | undefined,
  governed: boolean,
  invisible: boolean,
): PrepareStep[] {
  const where = `${table.schema}.${table.table}`;
  const step = (description: string, sql: string[]): PrepareStep => ({
    description,
    sql,
    kind: 'key_hash',
    table: where,
  });
  if (!governed) {
    return existing === undefined
      ? []
      : [
          step(`drop key-hash column ${KEY_HASH_COLUMN} from ungoverned ${where}`, [
            dropKeyHashColumn(table),
          ]),
        ];
  }
  const add = [addKeyHashColumn(table, invisible), addKeyHashIndex(table)];
  if (existing === undefined)
    return [step(`add key-hash column ${KEY_HASH_COLUMN} and its index to ${where}`, add)];
  const current =
    existing.virtual &&
    existing.invisible === invisible &&
    existing.columnType === 'binary(32)' &&
    existing.comment === keyHashComment(table);
  if (!current) {
    return [
      step(
        `replace key-hash column ${KEY_HASH_COLUMN} of ${where} (it does not compute the hash of the key (${table.primaryKey.join(', ')}) as prepare declares it)`,
        [
          // An index of that name over other columns would outlive the column.
          ...(existing.indexNamed && !existing.indexed ? [dropKeyHashIndex(table)] : []),
          dropKeyHashColumn(table),
          ...add,
        ],
      ),
    ];
  }
  if (existing.indexed) return [];
  return [
    step(
      `add index ${KEY_HASH_INDEX} on ${KEY_HASH_COLUMN} to ${where}`,
      existing.indexNamed
        ? [dropKeyHashIndex(table), addKeyHashIndex(table)]
        : [addKeyHashIndex(table)],
    ),
  ];
}

/** The internal schema and tables that are missing. */
async function planInternal(
  connection: MysqlConnection,
  internalSchema: string,
): Promise<PrepareStep[]> {
  const steps: PrepareStep[] = [];
  const haveInternal = await existingInternalTables(connection, internalSchema);
  if (haveInternal.size === 0) {
    steps.push({
      description: `create schema ${internalSchema}`,
      sql: [createInternalSchema(internalSchema)],
      kind: 'internal',
    });
  }
  for (const [name, ddl] of Object.entries(internalTableDdl(internalSchema))) {
    if (!haveInternal.has(name)) {
      steps.push({
        description: `create table ${internalSchema}.${name}`,
        sql: [ddl],
        kind: 'internal',
        internalTable: name,
      });
    }
  }
  return steps;
}

/**
 * What one table needs: version columns, its three triggers on it with the
 * current bodies, and none of our triggers left that belong to another
 * table. After `RENAME TABLE t TO _t_del, _t_gho TO t` the triggers named
 * for `t` sit on `_t_del` (triggers move with their table, and their names
 * are unique per schema), so they are dropped there and created on `t`.
 */
function planTable(
  table: TableInfo,
  triggers: ReadonlyMap<string, ExistingTrigger>,
  options: RuntimeOptions,
  internalSchema: string,
  server: { dialect: SqlDialect; layout: VersionColumnLayout },
  claimed: ReadonlySet<string>,
  keyHash: ExistingKeyHash | undefined,
): PrepareStep[] {
  const where = `${table.schema}.${table.table}`;
  const steps: PrepareStep[] = [];
  const alter = addVersionColumns(table, server.layout);
  if (alter !== undefined) {
    steps.push({
      description: `add version columns to ${where}`,
      sql: [alter],
      kind: 'version_columns',
      table: where,
    });
  }
  const policy =
    options.governance === undefined
      ? undefined
      : policyForTable(options.governance, table.schema, table.table);
  steps.push(...planKeyHash(table, keyHash, policy !== undefined, server.dialect.invisibleColumns));
  const wanted: TriggerDefinition[] = [
    deleteTrigger(table, internalSchema, options.region),
    insertTrigger(table, internalSchema, options.region),
    updateTrigger(table, internalSchema, options.region),
    // Governed tables: refuse local writes of rows this region may not hold plain (write-guard.ts).
    ...(policy === undefined
      ? []
      : writeGuardTriggers(table, policy, options.governance?.zones ?? {}, options.region)),
  ];
  const wantedNames = new Set(wanted.map((t) => t.name));
  for (const trigger of triggers.values()) {
    if (
      trigger.schema === table.schema &&
      trigger.table === table.table &&
      isInternalTable(trigger.name) &&
      !wantedNames.has(trigger.name) &&
      !claimed.has(`${table.schema}.${trigger.name}`)
    ) {
      // Ours, but named for another table: it came along with a renamed table and
      // would write tombstones under the other table's name. (When that table is
      // planned too, its own step moves the trigger.)
      steps.push({
        description: `drop trigger ${table.schema}.${trigger.name}, which belongs to another table, from ${where}`,
        sql: [dropTrigger(table.schema, trigger.name)],
        kind: 'misplaced_triggers',
        table: where,
      });
    }
  }
  for (const trigger of wanted) {
    const current = triggers.get(`${table.schema}.${trigger.name}`);
    if (current === undefined) {
      steps.push({
        description: `install trigger ${table.schema}.${trigger.name}`,
        sql: [trigger.create],
        kind: 'triggers',
        table: where,
      });
    } else if (current.table !== table.table) {
      steps.push({
        description: `move trigger ${table.schema}.${trigger.name} from ${table.schema}.${current.table} to ${where}`,
        sql: [dropTrigger(table.schema, trigger.name), trigger.create],
        kind: 'triggers',
        table: where,
      });
    } else if (current.body !== normaliseBody(trigger.body)) {
      steps.push({
        description: `update trigger ${table.schema}.${trigger.name}`,
        sql: server.dialect.replaceTrigger(trigger.create, dropTrigger(table.schema, trigger.name)),
        kind: 'triggers',
        table: where,
      });
    }
  }
  return steps;
}

const VISIBLE_WARNING =
  'the version columns _cdc_ts and _cdc_ver are ordinary trailing columns on this server ' +
  '(no INVISIBLE columns before MySQL 8.0.23): SELECT * now shows them, INSERTs without a ' +
  'column list break, and applications must never write them (docs/OPERATIONS.md, MySQL 8)';

const VISIBLE_KEY_HASH_WARNING =
  `the key-hash column ${KEY_HASH_COLUMN} of governed tables is an ordinary (visible) virtual column ` +
  'on this server (no INVISIBLE columns before MySQL 8.0.23): SELECT * shows it, INSERTs without a ' +
  'column list break (docs/GOVERNANCE.md, "Eviction support")';

/**
 * Whether some replicated table of the region already has visible version
 * columns: `prepare --visible-version-columns` ran here before, so the
 * operator's choice is on record in the tables themselves and later runs
 * (and the daemon's self-repair) keep to it without the flag.
 */
async function hasVisibleVersionColumns(
  connection: MysqlConnection,
  options: RuntimeOptions,
): Promise<boolean> {
  const schemas = [...new Set(options.pipelines.flatMap((p) => p.tables.map((t) => t.schema)))];
  if (schemas.length === 0) return false;
  const [rows] = await connection.query<mysql.RowDataPacket[]>(
    `SELECT 1 FROM information_schema.COLUMNS
      WHERE TABLE_SCHEMA IN (?) AND COLUMN_NAME = ? AND EXTRA NOT LIKE '%INVISIBLE%' LIMIT 1`,
    [schemas, VERSION_COLUMNS.ver],
  );
  return rows.length > 0;
}

/**
 * The server's dialect and how the version columns are declared on it.
 * Without INVISIBLE columns it refuses, saying why and what to do, unless
 * the operator chose visible version columns now or in an earlier run.
 */
async function checkServer(
  connection: MysqlConnection,
  options: RuntimeOptions,
  choices: PrepareChoices,
): Promise<{ dialect: SqlDialect; layout: VersionColumnLayout }> {
  const dialect = dialectOf(await serverInfo(connection));
  if (dialect.invisibleColumns) return { dialect, layout: 'invisible' };
  if (
    choices.visibleVersionColumns === true ||
    (await hasVisibleVersionColumns(connection, options))
  )
    return { dialect, layout: 'visible' };
  throw new CdcError(
    `region ${options.region}: server ${dialect.server.version} has no INVISIBLE columns ` +
      '(MySQL 8.0.23+ and MariaDB 10.3.3+ have them), which the version columns _cdc_ts and _cdc_ver use ' +
      "so that applications' SELECT * and INSERTs without a column list keep working. " +
      'Upgrade the server, or run prepare with --visible-version-columns to add them as ordinary ' +
      'trailing columns (SELECT * then shows them, and INSERTs without a column list break)',
    { code: 'SERVER_UNSUPPORTED' },
  );
}

/**
 * What the named tables need (version columns, triggers), described as they
 * are now; tables that no longer exist are left out, and tables without a
 * primary key are listed as unpreparable instead of planned. Used by
 * `prepare` for every table and by capture's self-repair for the tables a
 * DDL statement touched.
 */
export async function planTables(
  connection: MysqlConnection,
  options: RuntimeOptions,
  internalSchema: string,
  names: readonly { schema: string; table: string }[],
  choices: PrepareChoices = {},
): Promise<TablesPlan & { layout: VersionColumnLayout }> {
  const server = await checkServer(connection, options, choices);
  const tables: TableInfo[] = [];
  const unpreparable: UnpreparableTable[] = [];
  for (const name of names) {
    const table = await describeTable(connection, name.schema, name.table);
    if (table === undefined) continue;
    if (table.primaryKey.length === 0) {
      unpreparable.push({
        table: `${table.schema}.${table.table}`,
        reason: 'has no primary key; add a PRIMARY KEY',
        code: 'PRIMARY_KEY_MISSING',
      });
    } else {
      tables.push(table);
    }
  }
  const schemas = [...new Set(tables.map((t) => t.schema))];
  const triggers = await existingTriggers(connection, schemas);
  const keyHashes = await existingKeyHashes(connection, schemas);
  const claimed = new Set(
    tables.flatMap((t) =>
      (['ad', 'bi', 'bu'] as const).map((k) => `${t.schema}.${triggerName(k, t.table)}`),
    ),
  );
  const steps = tables.flatMap((table) =>
    planTable(
      table,
      triggers,
      options,
      internalSchema,
      server,
      claimed,
      keyHashes.get(`${table.schema}.${table.table}`),
    ),
  );
  return { steps, tables, unpreparable, layout: server.layout };
}

/**
 * Works out what `prepare` must change in the region's database: only what
 * is missing or out of date, so a second run plans nothing. Refuses, by
 * name, configured tables that do not exist, tables without a primary key
 * and servers without INVISIBLE columns (unless `choices` allow visible ones).
 */
export async function planPrepare(
  connection: MysqlConnection,
  options: RuntimeOptions,
  internalSchema: string,
  choices: PrepareChoices = {},
): Promise<PreparePlan> {
  const server = await checkServer(connection, options, choices);
  const { names, missing } = await pipelineTableNames(connection, options);
  if (missing.length > 0) {
    throw new CdcError(
      `region ${options.region}: configured table(s) not found: ${missing.join(', ')}`,
      { code: 'TABLE_MISSING' },
    );
  }
  const planned = await planTables(connection, options, internalSchema, names, choices);
  if (planned.unpreparable.length > 0) {
    throw new CdcError(
      `region ${options.region}: table(s) without a primary key cannot be replicated: ` +
        `${planned.unpreparable.map((t) => t.table).join(', ')}; add a PRIMARY KEY`,
      { code: 'PRIMARY_KEY_MISSING' },
    );
  }
  const steps = [...(await planInternal(connection, internalSchema)), ...planned.steps];
  const addsVisible =
    planned.layout === 'visible' && steps.some((s) => s.kind === 'version_columns');
  const addsVisibleKeyHash =
    !server.dialect.invisibleColumns &&
    steps.some((s) => s.kind === 'key_hash' && s.sql.some((sql) => sql.includes(' ADD COLUMN ')));
  return {
    steps,
    tables: planned.tables,
    layout: planned.layout,
    warnings: [
      ...(addsVisible ? [VISIBLE_WARNING] : []),
      ...(addsVisibleKeyHash ? [VISIBLE_KEY_HASH_WARNING] : []),
    ],
  };
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
