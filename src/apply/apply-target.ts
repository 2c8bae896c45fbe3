import { topicName } from '../bus/envelope.js';
import type { PipelineOptions, RuntimeOptions } from '../config/compile.js';
import { tableMatches } from '../config/compile.js';
import type { MysqlConnection } from '../mysql/connection.js';
import { APPLIER_SESSION_FLAG, INTERNAL_TABLES } from '../mysql/internal-tables.js';
import { describeTable, resolveTables, type TableInfo } from '../mysql/introspect.js';
import type { ConflictStrategy } from '../versioning/resolve.js';
import { RejectedEvent, type ApplyEvent } from './apply-event.js';

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
}

/**
 * Every applier session: READ COMMITTED and no foreign-key checks (as
 * replication appliers do), UTC, and the flag the triggers skip.
 */
export const APPLIER_SESSION_STATEMENTS: readonly string[] = [
  'SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED',
  `SET SESSION foreign_key_checks = 0, time_zone = '+00:00', ${APPLIER_SESSION_FLAG} = 1`,
];

/** The configured tables that exist locally, keyed `schema.table`. */
export async function loadLocalTables(
  connection: MysqlConnection,
  options: Pick<RuntimeOptions, 'pipelines'>,
): Promise<Map<string, TableInfo>> {
  const tables = new Map<string, TableInfo>();
  const patterns = options.pipelines.flatMap((p) => p.tables);
  for (const name of await resolveTables(connection, patterns)) {
    const info = await describeTable(connection, name.schema, name.table);
    if (info !== undefined) tables.set(`${name.schema}.${name.table}`, info);
  }
  return tables;
}

/** The source topics a region applies: every peer's topic of each local table, and their heartbeats. */
export function buildRoutes(
  options: Pick<RuntimeOptions, 'kafka' | 'peers' | 'pipelines' | 'internalSchema'>,
  tables: ReadonlyMap<string, TableInfo>,
): Map<string, TopicRoute> {
  const routes = new Map<string, TopicRoute>();
  const prefix = options.kafka.topicPrefix;
  for (const source of options.peers) {
    for (const info of tables.values()) {
      const pipeline = options.pipelines.find((p) =>
        p.tables.some((t) => tableMatches(t, info.schema, info.table)),
      );
      routes.set(topicName(prefix, source, info.schema, info.table), {
        sourceRegion: source,
        db: info.schema,
        table: info.table,
        pipeline,
        heartbeat: false,
      });
    }
    routes.set(topicName(prefix, source, options.internalSchema, INTERNAL_TABLES.heartbeat), {
      sourceRegion: source,
      db: options.internalSchema,
      table: INTERNAL_TABLES.heartbeat,
      pipeline: undefined,
      heartbeat: true,
    });
  }
  return routes;
}

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
 * Identifiers come from untrusted events: the table must be configured and
 * present, the key must be the local primary key, the columns must exist.
 *
 * @throws RejectedEvent naming the first check that fails.
 */
export function validateEvents(
  route: TopicRoute,
  table: TableInfo | undefined,
  events: ApplyEvent[],
): ApplyEvent[] {
  if (route.pipeline === undefined) {
    throw new RejectedEvent(
      'table_not_in_pipeline',
      `${route.db}.${route.table} is not in any pipeline`,
    );
  }
  if (table === undefined)
    throw new RejectedEvent(
      'table_missing',
      `table ${route.db}.${route.table} does not exist locally`,
    );
  const known = new Set(table.columns.map((c) => c.name));
  for (const event of events) {
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
    if (missing.length > 0) {
      throw new RejectedEvent(
        'column_missing',
        `${route.db}.${route.table} has no column(s) ${missing.map((c) => JSON.stringify(c.slice(0, 64))).join(', ')}`,
      );
    }
  }
  return events;
}
