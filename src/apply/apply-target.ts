import { isGeneratedColumnExtra } from '../mysql/dialect.js';
import { topicName } from '../bus/envelope.js';
import type { PipelineOptions, RuntimeOptions } from '../config/compile.js';
import { tableMatches } from '../config/compile.js';
import type { MysqlConnection } from '../mysql/connection.js';
import {
  APPLIER_SESSION_FLAG,
  INTERNAL_TABLES,
  VERSION_COLUMNS,
} from '../mysql/internal-tables.js';
import type mysql from 'mysql2/promise';
import { qualifiedName } from '../mysql/identifiers.js';
import { describeTable, resolveTables, type TableInfo } from '../mysql/introspect.js';
import type { ConflictStrategy } from '../versioning/resolve.js';
import type { RowImage } from '../bus/envelope.js';
import { topicsReadableBy } from '../governance/topics.js';
import { RejectedEvent, type ApplyEvent } from './apply-event.js';
import { imageTooWide, isPlausibleColumnName, SchemaSkew } from './schema-skew.js';

/**
 * What the local database accepts, shared by the apply stage and the
 * dead-letter replay so both judge an event the same way: which source topics
 * map to which local tables, the checks an event must pass before any
 * statement runs, and the settings of an applier session.
 */

/** Where a topic's events come from and go to. */
export interface TopicRoute {
  sourceRegion: string;
  db: string;
  table: string;
  pipeline: PipelineOptions | undefined;
  heartbeat: boolean;
  /**
   * The form rows of a governed table have on this topic: `masked` on a
   * `<prefix>-masked-<region>.` topic, else plain (docs/GOVERNANCE.md).
   * Every event is re-checked against it (`recheckGovernance`).
   */
  form?: 'plain' | 'masked';
}

/**
 * The `sql_mode` of every applier session, whatever the server's default:
 * strict for every engine, so a value the local type cannot hold fails
 * (and is held as schema skew) instead of being truncated; an incoming 0 in
 * an AUTO_INCREMENT column stays 0 (as mysqldump and replicas do); no
 * silent engine substitution. NO_ZERO_DATE is left out on purpose: a zero
 * date the source accepted must apply here too.
 */
export const APPLIER_SQL_MODE = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION';

/**
 * Every applier session: READ COMMITTED and no foreign-key checks (as
 * replication appliers do), UTC, a strict `sql_mode`, and the flag the
 * triggers skip.
 */
export const APPLIER_SESSION_STATEMENTS: readonly string[] = [
  'SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED',
  `SET SESSION foreign_key_checks = 0, time_zone = '+00:00', sql_mode = '${APPLIER_SQL_MODE}', ${APPLIER_SESSION_FLAG} = 1`,
];

/** A local table as the applier writes it. */
export interface ApplyTable extends TableInfo {
  /** Generated columns: MySQL computes them, the applier never writes them. */
  readonly generated: ReadonlySet<string>;
  /**
   * NOT NULL columns without a DEFAULT, with the type's implicit default
   * (what MySQL gives existing rows when such a column is added). A row image
   * without the column writes this value, since strict mode refuses to omit it.
   */
  readonly implicitDefaults: ReadonlyMap<string, string | number>;
  /**
   * Columns this region dropped (to null) or renamed (to the new name), by
   * the old name in lower case, from `_cdc_column_history`: other regions
   * keep sending them until they run the same DDL.
   */
  readonly columnHistory: ReadonlyMap<string, string | null>;
}

/** `_cdc_column_history` of one table; empty when the table is not there yet (a daemon before its first start). */
async function readColumnHistory(
  connection: MysqlConnection,
  internalSchema: string,
  table: string,
): Promise<Map<string, string | null>> {
  const history = new Map<string, string | null>();
  try {
    const [rows] = await connection.query<mysql.RowDataPacket[]>(
      `SELECT old_name, new_name FROM ${qualifiedName(internalSchema, INTERNAL_TABLES.columnHistory)}
        WHERE tbl = ? ORDER BY at`,
      [table],
    );
    for (const row of rows)
      history.set(
        String(row.old_name).toLowerCase(),
        row.new_name === null ? null : String(row.new_name),
      );
  } catch (err) {
    if ((err as { errno?: unknown }).errno !== 1146) throw err;
  }
  return history;
}

/** The value MySQL gives a NOT NULL column without DEFAULT in non-strict mode; undefined when unknown. */
function implicitDefault(dataType: string, columnType: string): string | number | undefined {
  if (
    /^(tinyint|smallint|mediumint|int|integer|bigint|decimal|numeric|float|double|real|bit|year)$/.test(
      dataType,
    )
  )
    return 0;
  if (/^(char|varchar|tinytext|text|mediumtext|longtext|set)$/.test(dataType)) return '';
  if (/^(binary|varbinary|tinyblob|blob|mediumblob|longblob)$/.test(dataType)) return '';
  if (dataType === 'enum') {
    const first = /^enum\('((?:[^']|'')*)'/.exec(columnType)?.[1];
    return first === undefined ? undefined : first.replace(/''/g, "'");
  }
  if (dataType === 'date') return '0000-00-00';
  if (dataType === 'datetime' || dataType === 'timestamp') return '0000-00-00 00:00:00';
  if (dataType === 'time') return '00:00:00';
  if (dataType === 'json') return 'null';
  return undefined;
}

/** One table's description for the applier, or undefined when it does not exist. */
export async function describeApplyTable(
  connection: MysqlConnection,
  schema: string,
  table: string,
  internalSchema: string,
): Promise<ApplyTable | undefined> {
  const info = await describeTable(connection, schema, table);
  if (info === undefined) return undefined;
  const [rows] = await connection.query<mysql.RowDataPacket[]>(
    `SELECT COLUMN_NAME AS name, EXTRA AS extra, COLUMN_DEFAULT IS NULL AS noDefault
       FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`,
    [schema, table],
  );
  const generated = new Set<string>();
  const noDefault = new Set<string>();
  for (const row of rows) {
    if (isGeneratedColumnExtra(String(row.extra))) generated.add(String(row.name));
    else if (Number(row.noDefault) === 1) noDefault.add(String(row.name));
  }
  const implicitDefaults = new Map<string, string | number>();
  for (const column of info.columns) {
    if (column.nullable || !noDefault.has(column.name)) continue;
    const value = implicitDefault(column.dataType, column.columnType);
    if (value !== undefined) implicitDefaults.set(column.name, value);
  }
  const columnHistory = await readColumnHistory(connection, internalSchema, `${schema}.${table}`);
  return { ...info, generated, implicitDefaults, columnHistory };
}

/** The configured tables that exist locally, keyed `schema.table`. */
export async function loadLocalTables(
  connection: MysqlConnection,
  options: Pick<RuntimeOptions, 'pipelines' | 'internalSchema'>,
): Promise<Map<string, ApplyTable>> {
  const tables = new Map<string, ApplyTable>();
  const patterns = options.pipelines.flatMap((p) => p.tables);
  for (const name of await resolveTables(connection, patterns)) {
    const info = await describeApplyTable(
      connection,
      name.schema,
      name.table,
      options.internalSchema,
    );
    if (info !== undefined) tables.set(`${name.schema}.${name.table}`, info);
  }
  return tables;
}

/** The pipeline that replicates `schema.table`, if any. */
export function pipelineOf(
  options: Pick<RuntimeOptions, 'pipelines'>,
  schema: string,
  table: string,
): PipelineOptions | undefined {
  return options.pipelines.find((p) => p.tables.some((t) => tableMatches(t, schema, table)));
}

/**
 * The route of a change topic a peer publishes (`<prefix>.<peer>.<db>.<table>`)
 * when its table belongs to a pipeline, whether or not the table exists
 * here yet; undefined for any other topic.
 */
export function routeForTopic(
  options: Pick<
    RuntimeOptions,
    'region' | 'kafka' | 'peers' | 'pipelines' | 'internalSchema' | 'governance'
  >,
  topic: string,
): TopicRoute | undefined {
  const governed = governedRoutes(options).get(topic);
  if (governed !== undefined) return governed;
  for (const source of options.peers) {
    const head = `${options.kafka.topicPrefix}.${source}.`;
    if (!topic.startsWith(head)) continue;
    const rest = topic.slice(head.length);
    const dot = rest.indexOf('.');
    if (dot <= 0 || dot === rest.length - 1) continue;
    const db = rest.slice(0, dot);
    const table = rest.slice(dot + 1);
    if (db === options.internalSchema || table.startsWith('_cdc_')) continue;
    const pipeline = pipelineOf(options, db, table);
    if (pipeline !== undefined)
      return { sourceRegion: source, db, table, pipeline, heartbeat: false };
  }
  return undefined;
}

/**
 * The source topics a region applies: every peer's topic of each local
 * table and of each table the configuration names explicitly (one that does
 * not exist here yet is held until it does), and their heartbeats.
 */
export function buildRoutes(
  options: Pick<
    RuntimeOptions,
    'region' | 'kafka' | 'peers' | 'pipelines' | 'internalSchema' | 'governance'
  >,
  tables: ReadonlyMap<string, TableInfo>,
): Map<string, TopicRoute> {
  const routes = new Map<string, TopicRoute>();
  const prefix = options.kafka.topicPrefix;
  for (const source of options.peers) {
    for (const info of tables.values()) {
      routes.set(topicName(prefix, source, info.schema, info.table), {
        sourceRegion: source,
        db: info.schema,
        table: info.table,
        pipeline: pipelineOf(options, info.schema, info.table),
        heartbeat: false,
      });
    }
    for (const pipeline of options.pipelines) {
      for (const pattern of pipeline.tables) {
        if (pattern.table === '*') continue;
        const topic = topicName(prefix, source, pattern.schema, pattern.table);
        if (routes.has(topic)) continue;
        routes.set(topic, {
          sourceRegion: source,
          db: pattern.schema,
          table: pattern.table,
          pipeline,
          heartbeat: false,
        });
      }
    }
    routes.set(topicName(prefix, source, options.internalSchema, INTERNAL_TABLES.heartbeat), {
      sourceRegion: source,
      db: options.internalSchema,
      table: INTERNAL_TABLES.heartbeat,
      pipeline: undefined,
      heartbeat: true,
    });
  }
  for (const [topic, route] of governedRoutes(options)) routes.set(topic, route);
  return routes;
}

/**
 * Every topic of a governed table this region may read (`topicsReadableBy`:
 * today's change topic, its zones' topics, its own masked topic, from each
 * peer), whether or not the table exists here yet, so rows of a table
 * created later are held, not missed. Topics of governed tables are listed
 * by name (a policy names its tables), never discovered.
 */
export function governedRoutes(
  options: Pick<
    RuntimeOptions,
    'region' | 'kafka' | 'peers' | 'pipelines' | 'internalSchema' | 'governance'
  >,
): Map<string, TopicRoute> {
  const governance = options.governance;
  if (governance === undefined || governance.policies.length === 0) return new Map();
  // Discovery asks for every topic of the cluster: compute the layout once per configuration.
  const cacheKey = `${options.region}\u0000${options.kafka.topicPrefix}`;
  let cached = governedRouteCache.get(governance);
  if (cached === undefined)
    governedRouteCache.set(
      governance,
      (cached = new Map<string, ReadonlyMap<string, TopicRoute>>()),
    );
  const known = cached.get(cacheKey);
  if (known !== undefined) return new Map(known);
  const routes = new Map<string, TopicRoute>();
  const own = options.region;
  const readable = topicsReadableBy(
    {
      topicPrefix: options.kafka.topicPrefix,
      regions: governance.regions,
      zones: governance.zones,
      policies: governance.policies,
      tables: governance.policies.flatMap((p) => p.tables.map((t) => `${t.schema}.${t.table}`)),
    },
    own,
  );
  for (const entry of readable) {
    if (entry.policy === undefined) continue;
    const [db = '', table = ''] = entry.table.split('.');
    routes.set(entry.topic, {
      sourceRegion: entry.sourceRegion,
      db,
      table,
      pipeline: pipelineOf(options, db, table),
      heartbeat: false,
      form: entry.audience.kind === 'masked' ? 'masked' : 'plain',
    });
  }
  cached.set(cacheKey, routes);
  return new Map(routes);
}

const governedRouteCache = new WeakMap<object, Map<string, ReadonlyMap<string, TopicRoute>>>();

/** The pipeline's conflict strategy and its name in conflict records. */
export function strategyOf(pipeline: PipelineOptions): {
  strategy: ConflictStrategy;
  name: string;
} {
  return pipeline.conflict.strategy === 'region-priority'
    ? {
        strategy: { kind: 'region-priority', order: pipeline.conflict.priority },
        name: 'region-priority',
      }
    : { strategy: { kind: 'lww' }, name: 'lww' };
}

/**
 * The local column an event's column goes to: itself when it exists here;
 * otherwise followed through the columns this region renamed (a chain of
 * renames included) to the one it is called now. Null for a column this
 * region dropped (its values are ignored: the column is going away in every
 * region); undefined for one that was never here (the event is early).
 */
export function localColumnFor(
  table: Pick<ApplyTable, 'columns'> & Partial<Pick<ApplyTable, 'columnHistory'>>,
  name: string,
  known: ReadonlySet<string>,
): string | null | undefined {
  if (known.has(name)) return name;
  const history = table.columnHistory;
  if (history === undefined || history.size === 0) return undefined;
  const seen = new Set<string>();
  let current = name;
  for (;;) {
    const key = current.toLowerCase();
    if (seen.has(key)) return undefined;
    seen.add(key);
    const next = history.get(key);
    if (next === undefined) return undefined;
    if (next === null) return null;
    const local = table.columns.find((c) => c.name.toLowerCase() === next.toLowerCase());
    if (local !== undefined) return local.name;
    current = next;
  }
}

/** `image` with columns this region renamed under their new names and dropped ones left out. */
function imageToLocal(
  table: ApplyTable | TableInfo,
  image: RowImage,
  known: ReadonlySet<string>,
): RowImage {
  if (Object.keys(image).every((c) => known.has(c))) return image;
  const local: RowImage = {};
  const mapped: [string, RowImage[string]][] = [];
  for (const [column, value] of Object.entries(image)) {
    const target = localColumnFor(table, column, known);
    if (target === column) local[column] = value;
    else if (target === undefined)
      local[column] = value; // never here: validation holds it
    else if (target !== null) mapped.push([target, value]);
  }
  // A value under the column's current name (from a region that renamed it too) wins.
  for (const [target, value] of mapped) if (!(target in local)) local[target] = value;
  return local;
}

/**
 * An event with the columns this region dropped or renamed mapped to the
 * local schema (DESIGN §6a): a region that has not run the DDL yet still
 * names them, and will once it does not. The same object when nothing maps.
 */
export function eventToLocal(table: ApplyTable | TableInfo, event: ApplyEvent): ApplyEvent {
  if (!('columnHistory' in table) || table.columnHistory.size === 0) return event;
  const known = new Set(table.columns.map((c) => c.name));
  const pk = imageToLocal(table, event.pk, known);
  const after = event.after === null ? null : imageToLocal(table, event.after, known);
  const image = event.image === null ? null : imageToLocal(table, event.image, known);
  if (pk === event.pk && after === event.after && image === event.image) return event;
  return { ...event, pk, after, image };
}

/**
 * Identifiers come from untrusted events: the table must be configured, the
 * key must be the local primary key. A table or column this region does not
 * have yet, or a value a local column cannot hold yet, is schema skew
 * (DESIGN.md §6a): the event is early, not wrong.
 *
 * @throws SchemaSkew when the local schema does not allow the event yet.
 * @throws RejectedEvent naming the first check that fails otherwise.
 */
export function validateEvents(
  route: TopicRoute,
  table: ApplyTable | TableInfo | undefined,
  incoming: ApplyEvent[],
): ApplyEvent[] {
  if (route.pipeline === undefined) {
    throw new RejectedEvent(
      'table_not_in_pipeline',
      `${route.db}.${route.table} is not in any pipeline`,
    );
  }
  if (table === undefined)
    throw new SchemaSkew('table_missing', `table ${route.db}.${route.table} missing here`);
  const known = new Set(table.columns.map((c) => c.name));
  const unprepared = [VERSION_COLUMNS.ts, VERSION_COLUMNS.ver].filter((c) => !known.has(c));
  if (unprepared.length > 0)
    throw new SchemaSkew(
      'column_missing',
      `version column${unprepared.length > 1 ? 's' : ''} ${unprepared.join(', ')} missing here (prepare has not run on this table yet)`,
    );
  const events = incoming.map((event) => eventToLocal(table, event));
  for (const event of events) {
    // A notice names its row by tombstone key only (no key columns, no image).
    if (event.evict !== undefined) continue;
    const pkNames = Object.keys(event.pk);
    if (
      pkNames.length !== table.primaryKey.length ||
      !table.primaryKey.every((c, i) => pkNames[i] === c)
    ) {
      throw new RejectedEvent(
        'key_mismatch',
        `event key (${pkNames.join(', ')}) does not match the local primary key (${table.primaryKey.join(', ')}) of ${route.db}.${route.table}`,
      );
    }
    const missing = Object.keys(event.after ?? {}).filter((c) => !known.has(c));
    if (missing.some((c) => !isPlausibleColumnName(c))) {
      throw new RejectedEvent(
        'column_missing',
        `${route.db}.${route.table} has no column(s) ${missing.map((c) => JSON.stringify(c.slice(0, 64))).join(', ')}`,
      );
    }
    if (missing.length > 0) {
      throw new SchemaSkew(
        'column_missing',
        `column${missing.length > 1 ? 's' : ''} ${missing.join(', ')} missing here`,
        undefined,
        missing.map((name) => ({ name, sourceType: event.types?.[name] })),
      );
    }
    const tooWide = event.after === null ? undefined : imageTooWide(table, event.after);
    if (tooWide !== undefined) throw tooWide;
  }
  return events;
}
