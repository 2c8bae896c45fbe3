import type { RuntimeOptions } from '../config/compile.js';
import type { Logger } from '../core/logger.js';
import { classifyError } from '../core/retriable.js';
import { connectMysql } from '../mysql/connection.js';
import { qualifiedName, quoteId } from '../mysql/identifiers.js';
import { describeTable } from '../mysql/introspect.js';
import type { DaemonMetrics } from '../monitor/metrics.js';

/**
 * `schema.autoAddColumns` (DESIGN.md §6a): when an event names a column this
 * region does not have yet, the applier adds it itself, nullable and with the
 * type the source region's capture sent along, so the hold lasts one round
 * trip instead of until an operator runs the ALTER here. The ALTER is an
 * ordinary local DDL: it is not replicated, and capture's self-repair sees it
 * in this region's binlog and re-verifies the table's triggers.
 */

/** A column an event names that this region lacks, with the source's COLUMN_TYPE when it was sent. */
export interface MissingColumn {
  readonly name: string;
  readonly sourceType: string | undefined;
}

export interface ColumnAdderDeps {
  options: Pick<RuntimeOptions, 'mysql' | 'region'>;
  metrics: DaemonMetrics;
  logger: Logger;
  /** The columns now exist here: re-read the table and retry its held partitions. */
  onAdded: (schema: string, table: string) => void;
}

/**
 * Seconds the ALTER waits for the table's metadata lock. While it waits,
 * every later query on the table queues behind it: behind a long transaction
 * it gives up quickly and is tried again later, the events staying held.
 */
const LOCK_WAIT_TIMEOUT_S = 3;
/** After a failed ALTER, the same table is not tried again for this long. */
const RETRY_AFTER_FAILURE_MS = 10_000;
/** Errors meaning the server cannot (or does not know how to) add the column instantly. */
const INSTANT_REFUSED_ERRNOS: ReadonlySet<number> = new Set([
  1800, // ER_UNKNOWN_ALTER_ALGORITHM: a server without ALGORITHM=INSTANT
  1845, // ER_ALTER_OPERATION_NOT_SUPPORTED
  1846, // ER_ALTER_OPERATION_NOT_SUPPORTED_REASON
]);
/** ER_DUP_FIELDNAME: someone (the operator, another applier of this region) added it first. */
const DUPLICATE_COLUMN_ERRNO = 1060;

const SIMPLE_TYPES =
  'tinyint|smallint|mediumint|int|integer|bigint|decimal|numeric|float|double|real|bit|bool|boolean|year|' +
  'date|datetime|timestamp|time|char|varchar|binary|varbinary|tinytext|text|mediumtext|longtext|' +
  'tinyblob|blob|mediumblob|longblob|json|uuid|inet4|inet6|geometry|point|linestring|polygon|' +
  'multipoint|multilinestring|multipolygon|geometrycollection';
/** A single-quoted member: no backslash (its meaning depends on sql_mode), `''` for a quote. */
const MEMBER = "'(?:[^'\\\\\\u0000]|'')*'";
const COLUMN_TYPE = new RegExp(
  `^(?:(?:${SIMPLE_TYPES})(?:\\(\\d{1,10}(?:,\\d{1,3})?\\))?|(?:enum|set)\\(${MEMBER}(?:,${MEMBER})*\\))` +
    '(?: unsigned)?(?: zerofill)?$',
  'i',
);
/** Longer type texts are not taken from an event (an ENUM of thousands of members is not one to guess at). */
const MAX_TYPE_LENGTH = 16_384;

/**
 * The source's COLUMN_TYPE when it is one this applier may put into an ALTER
 * as it is: a plain type with its length, precision or members, optionally
 * unsigned. The text comes from an event, which is untrusted, so anything
 * else (comments, clauses, MariaDB's COMPRESSED) is refused and the event
 * stays held until the column is added by hand.
 */
export function safeColumnType(type: string | undefined): string | undefined {
  if (type === undefined || type.length > MAX_TYPE_LENGTH) return undefined;
  return COLUMN_TYPE.test(type) ? type : undefined;
}

/**
 * Adds the columns held events wait for, one ALTER per table at a time, in a
 * session of its own, off the apply path (a copying ALTER may take a while).
 * Failures are logged and tried again later; the events stay held, never
 * dead-lettered.
 */
export class ColumnAdder {
  readonly #running = new Map<string, Promise<void>>();
  readonly #failedAtMs = new Map<string, number>();
  /** Columns already reported as impossible to add, so the log says it once. */
  readonly #refused = new Set<string>();
  #stopped = false;

  constructor(private readonly deps: ColumnAdderDeps) {}

  /** Asks for `columns` to be added to `schema.table`; ignored while one ALTER of it runs or after a recent failure. */
  add(schema: string, table: string, columns: readonly MissingColumn[]): void {
    const name = `${schema}.${table}`;
    if (this.#stopped || this.#running.has(name)) return;
    if (Date.now() - (this.#failedAtMs.get(name) ?? 0) < RETRY_AFTER_FAILURE_MS) return;
    const addable: { name: string; type: string }[] = [];
    for (const column of columns) {
      const type = safeColumnType(column.sourceType);
      if (type !== undefined && !column.name.startsWith('_cdc_')) {
        addable.push({ name: column.name, type });
        continue;
      }
      const key = `${name}.${column.name}`;
      if (this.#refused.has(key)) continue;
      this.#refused.add(key);
      this.deps.logger.warn(
        { table: name, column: column.name, sourceType: column.sourceType?.slice(0, 200) },
        column.sourceType === undefined
          ? `column ${column.name} of ${name} is not added automatically: the source sent no type (its daemon runs without schema.autoAddColumns or predates it); add it here by hand`
          : `column ${column.name} of ${name} is not added automatically: its type is not one the applier adds by itself; add it here by hand`,
      );
    }
    if (addable.length === 0) return;
    const run = this.#alter(schema, table, addable).finally(() => this.#running.delete(name));
    this.#running.set(name, run);
  }

  /** Waits for ALTERs in progress. Safe to call twice. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.allSettled([...this.#running.values()]);
  }

  /** Never rejects: a failure is logged and the table tried again after a while. */
  async #alter(
    schema: string,
    table: string,
    columns: readonly { name: string; type: string }[],
  ): Promise<void> {
    const { options, metrics, logger } = this.deps;
    const name = `${schema}.${table}`;
    let connection;
    try {
      connection = await connectMysql(options.mysql);
      await connection.query('SET SESSION lock_wait_timeout = ?', [LOCK_WAIT_TIMEOUT_S]);
      // Only what is still missing: another applier or the operator may have added some.
      const present = new Set(
        (await describeTable(connection, schema, table))?.columns.map((c) => c.name) ?? [],
      );
      const missing = columns.filter((c) => !present.has(c.name));
      if (missing.length > 0) {
        const adds = missing.map((c) => `ADD COLUMN ${quoteId(c.name)} ${c.type} NULL`).join(', ');
        const alter = `ALTER TABLE ${qualifiedName(schema, table)} ${adds}`;
        let algorithm = 'INSTANT';
        try {
          try {
            await connection.query(`${alter}, ALGORITHM=INSTANT`);
          } catch (err) {
            const errno = (err as { errno?: unknown }).errno;
            if (typeof errno !== 'number' || !INSTANT_REFUSED_ERRNOS.has(errno)) throw err;
            algorithm = 'DEFAULT';
            await connection.query(alter);
          }
          for (const column of missing) {
            metrics.schemaRepairsTotal.inc({
              region: options.region,
              table: name,
              what: 'auto_add_column',
            });
            logger.info(
              { table: name, column: column.name, type: column.type, algorithm },
              `column ${column.name} ${column.type} added to ${name} for events held from another region (schema.autoAddColumns)`,
            );
          }
        } catch (err) {
          if ((err as { errno?: unknown }).errno !== DUPLICATE_COLUMN_ERRNO) throw err;
        }
      }
      this.#failedAtMs.delete(name);
      this.deps.onAdded(schema, table);
    } catch (err) {
      this.#failedAtMs.set(name, Date.now());
      logger.error(
        {
          table: name,
          columns: columns.map((c) => c.name),
          err: classifyError(err, `adding columns to ${name}`).message,
          retryInMs: RETRY_AFTER_FAILURE_MS,
        },
        `could not add the missing columns to ${name}; its events stay held and the ALTER is tried again later`,
      );
    } finally {
      await connection?.end().catch((err: unknown) => {
        logger.debug({ err: (err as Error).message }, 'closing the ALTER session failed');
      });
    }
  }
}
