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
