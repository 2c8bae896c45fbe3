import mysql from 'mysql2/promise';
import type { RuntimeOptions } from '../../src/config/compile.js';
import { connectMysql } from '../../src/mysql/connection.js';
import { applyPrepare, planPrepare } from '../../src/prepare/prepare.js';

/** A plain client connection to the region's server, as an application would open one. */
export function connectApp(
  options: RuntimeOptions,
  extra: mysql.ConnectionOptions = {},
): Promise<mysql.Connection> {
  return mysql.createConnection({
    host: options.mysql.host,
    port: options.mysql.port,
    user: options.mysql.user,
    password: options.mysql.password.reveal(),
    supportBigNumbers: true,
    bigNumberStrings: true,
    ...extra,
  });
}

/** Runs `prepare` for the region's configured tables (what `cdc-replicator prepare` does). */
export async function prepareRegion(options: RuntimeOptions): Promise<void> {
  const admin = await connectMysql(options.mysql);
  try {
    await applyPrepare(admin, await planPrepare(admin, options, options.internalSchema));
  } finally {
    await admin.end();
  }
}

/** The server's binlog position right now (MariaDB `gtid_binlog_pos`). */
export async function binlogPosition(connection: mysql.Connection): Promise<string> {
  const [rows] = await connection.query<mysql.RowDataPacket[]>(
    'SELECT @@GLOBAL.gtid_binlog_pos AS position',
  );
  return String(rows[0]?.position ?? '');
}

/** `domain-server-seq,...` → domain → seq. */
function parseMariadbPosition(position: string): Map<number, number> {
  const byDomain = new Map<number, number>();
  for (const part of position.split(',')) {
    const trimmed = part.trim();
    if (trimmed === '') continue;
    const [domain, , seq] = trimmed.split('-').map(Number);
    if (domain === undefined || seq === undefined || !Number.isFinite(seq))
      throw new Error(`not a MariaDB GTID position: ${position}`);
    byDomain.set(domain, seq);
  }
  return byDomain;
}

/** Whether MariaDB position `a` includes every transaction of `b`. */
export function positionCovers(a: string, b: string): boolean {
  const have = parseMariadbPosition(a);
  for (const [domain, seq] of parseMariadbPosition(b)) {
    if ((have.get(domain) ?? -1) < seq) return false;
  }
  return true;
}
