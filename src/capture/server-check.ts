import type mysql from 'mysql2/promise';
import { CdcError } from '../core/errors.js';
import type { MysqlConnection } from '../mysql/connection.js';
import type { ServerInfo } from '../mysql/introspect.js';

interface Requirement {
  variable: string;
  expected: string;
  why: string;
}

/** Server settings capture depends on (DESIGN.md §1), checked before streaming. */
function requirements(info: ServerInfo): Requirement[] {
  const list: Requirement[] = [
    { variable: 'log_bin', expected: 'ON', why: 'capture reads the binary log' },
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
    list.push({ variable: 'gtid_mode', expected: 'ON', why: 'checkpoints are GTID sets' });
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
 * Refuses to start capture on a server that is not configured for it, with
 * one line per wrong setting naming the setting, its value and the fix.
 */
export async function checkBinlogSettings(
  connection: MysqlConnection,
  info: ServerInfo,
  where: string,
): Promise<void> {
  const wanted = requirements(info);
  const [rows] = await connection.query<mysql.RowDataPacket[]>(
    `SELECT ${wanted.map((r) => `@@GLOBAL.${r.variable} AS ${r.variable}`).join(', ')}`,
  );
  const actual: Record<string, unknown> = rows[0] ?? {};
  const wrong = wanted.filter((r) => normalise(actual[r.variable]) !== r.expected);
  if (wrong.length === 0) return;
  const lines = wrong.map(
    (r) =>
      `${r.variable} is ${normalise(actual[r.variable]) || 'unset'}, needs ${r.expected} (${r.why}): ` +
      (r.variable === 'log_bin' || r.variable === 'gtid_mode'
        ? `start the server with --${r.variable.replace('_', '-')}${r.variable === 'gtid_mode' ? '=ON --enforce-gtid-consistency=ON' : ''}`
        : `SET GLOBAL ${r.variable} = '${r.expected}' and put ${r.variable}=${r.expected} in the server's configuration`),
  );
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
  const variable =
    info.flavor === 'mariadb' ? '@@GLOBAL.gtid_binlog_pos' : '@@GLOBAL.gtid_executed';
  const [rows] = await connection.query<mysql.RowDataPacket[]>(`SELECT ${variable} AS position`);
  return String(rows[0]?.position ?? '').replace(/\s+/g, '');
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
