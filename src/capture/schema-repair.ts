import type { RuntimeOptions } from '../config/compile.js';
import { classifyError } from '../core/retriable.js';
import type { Logger } from '../core/logger.js';
import { connectMysql, type MysqlConnection } from '../mysql/connection.js';
import { qualifiedName } from '../mysql/identifiers.js';
import { INTERNAL_TABLES } from '../mysql/internal-tables.js';
import type { DaemonMetrics } from '../monitor/metrics.js';
import { pipelineTableNames, planTables, type PrepareStep } from '../prepare/prepare.js';
import type { DdlColumnChange, DdlTable } from './ddl-statement.js';

/** A dropped or renamed column and the binlog time of its ALTER (ms since the epoch). */
export interface ColumnChangeAt extends DdlColumnChange {
  atMs: number;
}

/**
 * Records dropped and renamed columns in `_cdc_column_history`, where apply
 * reads them (DESIGN §6a). One row per table and old name: a later change of
 * the same name replaces an earlier one, and replaying an older ALTER (capture
 * re-reading the binlog after a restart) never overwrites a newer row.
 */
export async function recordColumnChanges(
  connection: MysqlConnection,
  internalSchema: string,
  changes: readonly ColumnChangeAt[],
): Promise<void> {
  if (changes.length === 0) return;
  // Assignments run left to right: new_name is compared with the row's old `at`.
  await connection.query(
    `INSERT INTO ${qualifiedName(internalSchema, INTERNAL_TABLES.columnHistory)} (tbl, old_name, new_name, at)
     VALUES ${changes.map(() => '(?, ?, ?, FROM_UNIXTIME(? / 1000))').join(', ')}
     ON DUPLICATE KEY UPDATE new_name = IF(VALUES(at) >= at, VALUES(new_name), new_name),
                             at = GREATEST(at, VALUES(at))`,
    changes.flatMap((c) => [`${c.schema}.${c.table}`, c.oldName, c.newName, c.atMs]),
  );
}

/** How a repair was found: at start, after DDL in the binlog, or by the periodic drift check. */
export type RepairTrigger = 'start' | 'ddl' | 'drift';

export interface SchemaRepairDeps {
  options: RuntimeOptions;
  metrics: DaemonMetrics;
  logger: Logger;
  /** True for tables whose changes capture publishes. */
  isReplicated: (schema: string, table: string) => boolean;
  /** Dropped or renamed columns of the table were written to `_cdc_column_history`. */
  onColumnsRecorded?: (schema: string, table: string) => void;
}

/**
 * Seconds a repair's DDL waits for a table's metadata lock. A waiting DDL
 * statement queues every later query on the table behind it, so behind a
 * long transaction it is better to give up and try again than to stall the
 * application.
 */
const LOCK_WAIT_TIMEOUT_S = 5;
/** A table named by DDL may be mid-swap (absent for a moment): looked for again this often, this many times. */
const RETRY_DELAY_MS = 500;
const MAX_ATTEMPTS = 10;
/** After a round failed (server unreachable, lock timeouts), the next one waits this long. */
const FAILED_ROUND_DELAY_MS = 5_000;

/**
 * Runs repair steps on `connection`, one statement at a time, and logs and
 * counts each (`cdc_schema_repairs_total{region,table,what}`), so the log
 * and the counter never disagree. Only table steps (version columns,
 * triggers) are expected here; the internal schema is `prepare`'s.
 */
export async function applyRepairSteps(
  connection: MysqlConnection,
  steps: readonly PrepareStep[],
  deps: Pick<SchemaRepairDeps, 'options' | 'metrics' | 'logger'>,
  found: RepairTrigger,
): Promise<void> {
  if (steps.length === 0) return;
  const { options, metrics, logger } = deps;
  await connection.query('SET SESSION lock_wait_timeout = ?', [LOCK_WAIT_TIMEOUT_S]);
  for (const step of steps) {
    for (const sql of step.sql) await connection.query(sql);
    const table = step.table ?? options.internalSchema;
    metrics.schemaRepairsTotal.inc({ region: options.region, table, what: step.kind });
    const fields = { table, what: step.kind, found, step: step.description };
    if (found === 'drift') logger.warn(fields, 'schema drift repaired');
    else logger.info(fields, 'schema repaired');
  }
}

/**
 * Capture's self-repair (DESIGN §6a): after DDL on a replicated table, and
 * every `capture.schemaCheckIntervalMs`, it plans `prepare` again for the
 * tables concerned and applies what is missing (version columns, triggers,
 * triggers left on a renamed table). It runs beside the binlog reader,
 * never in its event handler, one round at a time (so repairs of one table
 * never overlap). A table that cannot be repaired (no primary key), or
 * whose repair keeps failing, is reported by {@link readiness}.
 */
export class SchemaRepair {
  readonly #tables = new Map<string, DdlTable>();
  readonly #schemas = new Set<string>();
  /** Dropped and renamed columns not written to `_cdc_column_history` yet, in binlog order. */
  #columns: ColumnChangeAt[] = [];
  #all = false;
  #loop: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** Ends the current wait between attempts early, on stop. */
  #wake: (() => void) | undefined;
  /** Tables with a problem the daemon cannot fix, by `schema.table`: what the operator must do. */
  readonly #problems = new Map<string, string>();

  constructor(private readonly deps: SchemaRepairDeps) {}

  /** Starts the periodic drift check (when configured). */
  start(): void {
    const interval = this.deps.options.capture.schemaCheckIntervalMs;
    if (interval <= 0 || this.#stopped) return;
    this.#timer = setInterval(() => this.checkAll(), interval);
    this.#timer.unref();
  }

  /** DDL created, altered or renamed `table` into place: repair it if it is replicated. */
  tableChanged(table: DdlTable): void {
    if (!this.deps.isReplicated(table.schema, table.table)) return;
    this.#tables.set(`${table.schema}.${table.table}`, table);
    this.#kick();
  }

  /**
   * An ALTER dropped or renamed columns of a table: recorded for apply, off
   * the binlog reader, before the table's repair (retried like it).
   */
  columnsChanged(changes: readonly DdlColumnChange[], atMs: number): void {
    const replicated = changes.filter((c) => this.deps.isReplicated(c.schema, c.table));
    if (replicated.length === 0) return;
    this.#columns.push(...replicated.map((c) => ({ ...c, atMs })));
    this.#kick();
  }

  /** Triggers of `schema` were created or dropped: check its replicated tables. */
  triggersChanged(schema: string): void {
    if (!this.deps.options.pipelines.some((p) => p.tables.some((t) => t.schema === schema))) return;
    this.#schemas.add(schema);
    this.#kick();
  }

  /** Checks every replicated table. */
  checkAll(): void {
    this.#all = true;
    this.#kick();
  }

  /** Reasons for `/readyz`: tables the daemon cannot repair, and what to do. */
  readiness(): string[] {
    return [...this.#problems.entries()].map(([table, problem]) => `${table} ${problem}`);
  }

  /** Ends the drift check and waits for a round in progress. Safe to call twice. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#wake?.();
    await this.#loop;
  }

  /** Waits between attempts; a stop ends the wait at once. */
  #wait(ms: number): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
    });
  }

  #pending(): boolean {
    return this.#all || this.#tables.size > 0 || this.#schemas.size > 0 || this.#columns.length > 0;
  }

  #kick(): void {
    if (this.#stopped || this.#loop !== undefined) return;
    this.#loop = this.#drain().finally(() => {
      this.#loop = undefined;
      if (this.#pending()) this.#kick();
    });
  }

  /** Rounds until nothing is pending; never rejects. */
  async #drain(): Promise<void> {
    while (!this.#stopped && this.#pending()) {
      const tables = [...this.#tables.values()];
      const schemas = [...this.#schemas];
      const all = this.#all;
      const columns = this.#columns;
      this.#tables.clear();
      this.#schemas.clear();
      this.#columns = [];
      this.#all = false;
      try {
        await this.#round(tables, schemas, all, columns);
      } catch (err) {
        const error = classifyError(err, 'schema repair');
        this.deps.logger.error(
          {
            err: error.message,
            code: error.code,
            tables: tables.map((t) => `${t.schema}.${t.table}`),
          },
          'schema repair failed; trying again later',
        );
        // Again later, not at once: the server may be down or a long transaction holding locks.
        for (const table of tables) this.#tables.set(`${table.schema}.${table.table}`, table);
        this.#columns = [...columns, ...this.#columns];
        if (all || schemas.length > 0) this.#all = true;
        for (const table of tables)
          this.#problems.set(
            `${table.schema}.${table.table}`,
            `could not be repaired after DDL (${error.message}); run cdc-replicator prepare for this region`,
          );
        await this.#wait(FAILED_ROUND_DELAY_MS);
      }
    }
  }

  async #round(
    ddlTables: DdlTable[],
    schemas: string[],
    all: boolean,
    columns: readonly ColumnChangeAt[],
  ): Promise<void> {
    const { options, logger } = this.deps;
    const connection = await connectMysql(options.mysql);
    try {
      if (columns.length > 0) {
        await recordColumnChanges(connection, options.internalSchema, columns);
        logger.info(
          {
            columns: columns.map(
              (c) => `${c.schema}.${c.table}.${c.oldName} -> ${c.newName ?? '(dropped)'}`,
            ),
          },
          "dropped or renamed columns recorded: other regions' values for them are mapped until they run the same DDL",
        );
        const tables = new Map(columns.map((c) => [`${c.schema}.${c.table}`, c]));
        for (const c of tables.values()) this.deps.onColumnsRecorded?.(c.schema, c.table);
      }
      const names = new Map<string, DdlTable>();
      if (all || schemas.length > 0) {
        for (const name of (await pipelineTableNames(connection, options)).names)
          if (all || schemas.includes(name.schema)) names.set(`${name.schema}.${name.table}`, name);
      }
      for (const table of ddlTables) names.set(`${table.schema}.${table.table}`, table);
      await this.#repair(
        connection,
        [...names.values()],
        new Set(ddlTables.map((t) => `${t.schema}.${t.table}`)),
        all || schemas.length > 0 ? 'drift' : 'ddl',
        all,
      );
    } finally {
      await connection.end();
    }
  }

  /**
   * Plans and applies the tables' repairs. A step that fails is planned
   * again (a concurrent `prepare` or table swap may have changed what is
   * there); a table named by DDL that does not exist yet is looked for
   * again for a few seconds, since a swap may be half done.
   */
  async #repair(
    connection: MysqlConnection,
    names: DdlTable[],
    expected: ReadonlySet<string>,
    found: RepairTrigger,
    everything: boolean,
  ): Promise<void> {
    const { options, logger } = this.deps;
    if (everything) this.#problems.clear();
    let remaining = names;
    for (let attempt = 1; remaining.length > 0; attempt += 1) {
      const plan = await planTables(connection, options, options.internalSchema, remaining);
      for (const table of plan.tables) this.#problems.delete(`${table.schema}.${table.table}`);
      for (const table of plan.unpreparable) {
        if (!this.#problems.has(table.table))
          logger.error(
            { table: table.table, code: table.code },
            `${table.table} ${table.reason}: its changes cannot be replicated`,
          );
        this.#problems.set(table.table, `${table.reason}: its changes are not replicated`);
      }
      try {
        // A table named by DDL was expected to need repair; anything else found is drift.
        const announced = (s: PrepareStep): boolean =>
          s.table !== undefined && expected.has(s.table);
        await applyRepairSteps(connection, plan.steps.filter(announced), this.deps, 'ddl');
        await applyRepairSteps(
          connection,
          plan.steps.filter((s) => !announced(s)),
          this.deps,
          found,
        );
      } catch (err) {
        const error = classifyError(err, 'schema repair');
        if (attempt >= MAX_ATTEMPTS) throw error;
        logger.info(
          { err: error.message, code: error.code, attempt },
          'schema repair step failed; planning again',
        );
        await this.#wait(RETRY_DELAY_MS);
        continue;
      }
      const present = new Set([
        ...plan.tables.map((t) => `${t.schema}.${t.table}`),
        ...plan.unpreparable.map((t) => t.table),
      ]);
      remaining = names.filter(
        (n) => expected.has(`${n.schema}.${n.table}`) && !present.has(`${n.schema}.${n.table}`),
      );
      if (remaining.length === 0) return;
      if (attempt >= MAX_ATTEMPTS || this.#stopped) {
        logger.debug(
          { tables: remaining.map((t) => `${t.schema}.${t.table}`) },
          'tables named by DDL no longer exist; nothing to repair',
        );
        return;
      }
      await this.#wait(RETRY_DELAY_MS);
    }
  }
}
