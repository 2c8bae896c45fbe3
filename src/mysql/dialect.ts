import type { ServerInfo } from './introspect.js';

/**
 * Where MariaDB and MySQL 8 differ on the replicator's data path, in one
 * place, so that stages ask a question ("does this server have INVISIBLE
 * columns?") instead of testing the flavour themselves. docs/ARCHITECTURE.md
 * ("MySQL and MariaDB") lists every difference met and how it is handled;
 * the ones that need no code (the triggers, GTID sets, binary JSON) are
 * described where they are handled.
 */
export interface SqlDialect {
  readonly server: ServerInfo;
  /** `INVISIBLE` columns: MariaDB 10.3.3+, MySQL 8.0.23+. */
  readonly invisibleColumns: boolean;
  /**
   * Statements that replace an existing trigger. MariaDB has `CREATE OR
   * REPLACE TRIGGER`, so no write slips through without one; MySQL drops and
   * creates (a write between the two runs without the trigger).
   */
  replaceTrigger(create: string, drop: string): string[];
  /**
   * The server variable holding its GTID position: MariaDB's
   * `gtid_binlog_pos` (`domain-server-seq`, the last transaction per
   * domain), MySQL's `gtid_executed` (a GTID set `uuid:1-N`, every
   * transaction). Capture checkpoints are in this form.
   */
  readonly gtidPositionVariable: string;
  /**
   * A query (one parameter: a saved GTID position) whose single column
   * `missing` lists the transactions that position still needs but the
   * server purged from its binlogs, empty when none. MySQL keeps them as
   * `gtid_purged`; MariaDB keeps no such set (its dump request itself
   * fails with error 1236 then), so there is no query for it.
   */
  readonly purgedGtidsQuery: string | undefined;
  /**
   * Table value constructors (`WITH keys_(k, id) AS (VALUES (0, 7), (1, 9))`):
   * MariaDB 10.3.3+. The applier lists a chunk's keys this way, which the
   * server parses and joins faster than a derived table of `UNION ALL`
   * branches. MySQL's are `VALUES ROW(…)` (8.0.19+); not used, since only
   * 8.0.12 is tested here.
   */
  readonly tableValueConstructor: boolean;
  /** `SHOW MASTER STATUS`, renamed `SHOW BINARY LOG STATUS` in MySQL 8.2 (the old name is gone in 8.4). */
  readonly binlogStatusStatement: string;
}

function atLeast(info: ServerInfo, major: number, minor: number, patch: number): boolean {
  if (info.major !== major) return info.major > major;
  if (info.minor !== minor) return info.minor > minor;
  return info.patch >= patch;
}

export function dialectOf(server: ServerInfo): SqlDialect {
  const mariadb = server.flavor === 'mariadb';
  return {
    server,
    invisibleColumns: mariadb ? atLeast(server, 10, 3, 3) : atLeast(server, 8, 0, 23),
    replaceTrigger: (create, drop) =>
      mariadb ? [create.replace(/^CREATE TRIGGER /, 'CREATE OR REPLACE TRIGGER ')] : [drop, create],
    gtidPositionVariable: mariadb ? 'gtid_binlog_pos' : 'gtid_executed',
    purgedGtidsQuery: mariadb
      ? undefined
      : 'SELECT GTID_SUBTRACT(@@GLOBAL.gtid_purged, ?) AS missing',
    tableValueConstructor: mariadb && atLeast(server, 10, 3, 3),
    binlogStatusStatement:
      !mariadb && atLeast(server, 8, 2, 0) ? 'SHOW BINARY LOG STATUS' : 'SHOW MASTER STATUS',
  };
}

/**
 * Whether `information_schema.COLUMNS.EXTRA` marks a generated column.
 * MySQL 8 also writes `DEFAULT_GENERATED` for a column whose DEFAULT is an
 * expression (`DEFAULT CURRENT_TIMESTAMP`), which is an ordinary column.
 */
export function isGeneratedColumnExtra(extra: string): boolean {
  return /\b(VIRTUAL|STORED|PERSISTENT) GENERATED\b/i.test(extra);
}

/**
 * A JSON document as a value, in one canonical text: object keys sorted,
 * duplicate keys resolved last-wins (as MySQL stores them), no whitespace,
 * numbers as JavaScript prints them. MariaDB keeps JSON as the text it was
 * given and MySQL normalises it into its binary format, so the same value
 * reads back as different text from the two servers; `verify` compares such
 * columns of a mixed fleet with this. Numbers beyond 2^53 compare at double
 * precision (a difference only in their last digits goes unseen).
 */
export function canonicalJsonText(text: string): string {
  const canonical = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(canonical);
    if (typeof value === 'object' && value !== null) {
      return Object.fromEntries(
        Object.keys(value)
          .sort()
          .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
      );
    }
    return value;
  };
  return JSON.stringify(canonical(JSON.parse(text)));
}
