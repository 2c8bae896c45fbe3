import type mysql from 'mysql2/promise';
import { CdcError } from '../core/errors.js';
import type { MysqlConnection } from '../mysql/connection.js';
import { dialectOf } from '../mysql/dialect.js';
import type { ServerInfo } from '../mysql/introspect.js';

interface Requirement {
  variable: string;
  /** The value capture needs, normalised (`''` for an empty value). */
  expected: string;
  why: string;
  /** How to put it right; by default `SET GLOBAL` plus the server's configuration. */
  fix?: string;
  /** The variable exists only on some versions; where it is absent, its feature is off. */
  mayBeAbsent?: boolean;
}

/** Server settings capture depends on (DESIGN.md §1), checked before streaming. */
function requirements(info: ServerInfo): Requirement[] {
  const list: Requirement[] = [
    {
      variable: 'log_bin',
      expected: 'ON',
      why: 'capture reads the binary log',
      fix: 'start the server with --log-bin',
    },
    { variable: 'binlog_format', expected: 'ROW', why: 'only row events carry the changed rows' },
    {
      variable: 'binlog_row_image',
      expected: 'FULL',
      why: 'versions and deletes need every column',
    },
    {
      variable: 'binlog_row_metadata',
      expected: 'FULL',
      why: 'rows are decoded with the column names and keys of the moment they were written',
    },
  ];
  if (info.flavor === 'mysql') {
    list.push(
      {
        variable: 'gtid_mode',
        expected: 'ON',
        why: 'checkpoints are GTID sets',
        fix: 'start the server with --gtid-mode=ON --enforce-gtid-consistency=ON',
      },
      {
        variable: 'enforce_gtid_consistency',
        expected: 'ON',
        why: 'GTID mode needs every transaction to be loggable with a GTID',
      },
      {
        variable: 'binlog_row_value_options',
        expected: '',
        why: 'partial JSON updates are not decoded: the after image would lack the full document',
      },
      {
        // MySQL 8.0.20 and later.
        variable: 'binlog_transaction_compression',
        expected: 'OFF',
        why: 'compressed transaction payloads are not decoded',
        mayBeAbsent: true,
      },
    );
  }
  return list;
}

function normalise(value: unknown): string {
  const text = (
    typeof value === 'string' || typeof value === 'number' ? String(value) : ''
  ).toUpperCase();
  return text === '1' ? 'ON' : text === '0' ? 'OFF' : text;
}

/**
 * What is wrong with the server's settings for capture, one line per setting
 * naming it, its value, why it matters and the fix; empty when nothing is.
 * `actual` holds the global variables the server has (absent ones missing).
 */
export function binlogSettingProblems(
  info: ServerInfo,
  actual: ReadonlyMap<string, unknown>,
): string[] {
  const problems: string[] = [];
  for (const r of requirements(info)) {
    if (r.mayBeAbsent === true && !actual.has(r.variable)) continue;
    const value = normalise(actual.get(r.variable));
    if (value === r.expected) continue;
    const shown = r.expected === '' ? "''" : `'${r.expected}'`;
    const fix =
      r.fix ??
      `SET GLOBAL ${r.variable} = ${shown} and put ${r.variable}=${shown} in the server's configuration`;
    problems.push(
      `${r.variable} is ${value || 'unset'}, needs ${r.expected === '' ? 'to be empty' : r.expected} (${r.why}): ${fix}`,
    );
  }
  return problems;
}

/**
 * Refuses to start capture on a server that is not configured for it, with
 * one line per wrong setting naming the setting, its value and the fix.
 */
export async function checkBinlogSettings(
  connection: MysqlConnection,
  info: ServerInfo,
  where: string,
): Promise<void> {
  const wanted = requirements(info);
  // SHOW, not @@GLOBAL: a variable this server version lacks is simply not listed.
  const [rows] = await connection.query<mysql.RowDataPacket[]>(
    'SHOW GLOBAL VARIABLES WHERE Variable_name IN (?)',
    [wanted.map((r) => r.variable)],
  );
  const actual = new Map<string, unknown>(
    rows.map((row) => [String(row.Variable_name).toLowerCase(), row.Value]),
  );
  const lines = binlogSettingProblems(info, actual);
  if (lines.length === 0) return;
  throw new CdcError(
    `${where}: the server is not configured for capture:\n  ${lines.join('\n  ')}`,
    {
      code: 'SERVER_MISCONFIGURED',
    },
  );
}

/** The server's current GTID position: where a first start begins (the end of the binlog). */
export async function currentGtidPosition(
  connection: MysqlConnection,
  info: ServerInfo,
): Promise<string> {
  const variable = dialectOf(info).gtidPositionVariable;
  const [rows] = await connection.query<mysql.RowDataPacket[]>(
    `SELECT @@GLOBAL.${variable} AS position`,
  );
  return String(rows[0]?.position ?? '').replace(/\s+/g, '');
}

/**
 * The transactions `position` still needs that the server already purged
 * from its binlogs (a MySQL GTID set), or undefined when none are missing
 * or the server cannot tell before streaming (MariaDB: its dump request
 * then fails with error 1236, which the binlog reader reports the same way).
 */
export async function purgedGtidsNeeded(
  connection: MysqlConnection,
  info: ServerInfo,
  position: string,
): Promise<{ missing: string; purged: string } | undefined> {
  const query = dialectOf(info).purgedGtidsQuery;
  if (query === undefined) return undefined;
  const [rows] = await connection.query<mysql.RowDataPacket[]>(query, [position]);
  const missing = String(rows[0]?.missing ?? '').replace(/\s+/g, '');
  if (missing === '') return undefined;
  return { missing, purged: await oldestGtidPosition(connection, info) };
}

/**
 * The GTID position just before the oldest binlog still on the server:
 * where a replay of everything the server still has begins. MariaDB records
 * it in the Gtid_list event at the head of each binlog file; MySQL in
 * `gtid_purged`.
 */
export async function oldestGtidPosition(
  connection: MysqlConnection,
  info: ServerInfo,
): Promise<string> {
  if (info.flavor !== 'mariadb') {
    const [rows] = await connection.query<mysql.RowDataPacket[]>(
      'SELECT @@GLOBAL.gtid_purged AS position',
    );
    return String(rows[0]?.position ?? '').replace(/\s+/g, '');
  }
  const [logs] = await connection.query<mysql.RowDataPacket[]>('SHOW BINARY LOGS');
  const oldest = logs[0]?.Log_name as string | undefined;
  if (oldest === undefined) return '';
  const [events] = await connection.query<mysql.RowDataPacket[]>(
    `SHOW BINLOG EVENTS IN ${connection.escape(oldest)} LIMIT 5`,
  );
  const list = events.find((e) => e.Event_type === 'Gtid_list');
  if (list === undefined)
    throw new CdcError(
      `binlog ${oldest} does not start with a Gtid_list event; cannot tell which GTIDs it follows`,
      { code: 'BINLOG_UNREADABLE' },
    );
  // Info reads like `[0-1-5,1-2-3]`; the last entry of a domain is its newest.
  const entries = String(list.Info).replace(/[[\]\s]/g, '');
  const byDomain = new Map<string, string>();
  for (const entry of entries.split(',')) {
    if (entry === '') continue;
    byDomain.set(entry.split('-')[0] as string, entry);
  }
  return [...byDomain.values()].join(',');
}
