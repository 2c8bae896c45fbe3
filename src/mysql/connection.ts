import mysql from 'mysql2/promise';
import type { MysqlOptions } from '../config/compile.js';
import { classifyError } from '../core/retriable.js';
import type { CdcError } from '../core/errors.js';
import { mysqlSslOptions } from '../core/tls.js';

export type MysqlConnection = mysql.Connection;

/**
 * Session settings every replicator connection shares. Values must come back
 * exactly as stored: DECIMAL and BIGINT as strings, temporal values as
 * strings with their microseconds, and TIMESTAMP in UTC so versions read
 * from `_cdc_ts` mean the same instant everywhere.
 */
export function clientOptions(options: MysqlOptions): mysql.ConnectionOptions {
  return {
    host: options.host,
    port: options.port,
    user: options.user,
    password: options.password.reveal(),
    database: options.database,
    dateStrings: true,
    timezone: 'Z',
    supportBigNumbers: true,
    bigNumberStrings: true,
    decimalNumbers: false,
    charset: 'utf8mb4_general_ci',
    connectTimeout: 10_000,
    multipleStatements: false,
    ...(options.tls === undefined ? {} : { ssl: mysqlSslOptions(options.tls) }),
  };
}

/** Where a connection goes, for error messages (never the password). */
export function describeMysql(options: MysqlOptions): string {
  return `MySQL ${options.user}@${options.host}:${options.port}${options.tls === undefined ? '' : ' (TLS)'}`;
}

/** Wraps a driver error so the message says which server and what was being done. */
export function mysqlError(options: MysqlOptions, doing: string, err: unknown): CdcError {
  return classifyError(err, `${describeMysql(options)}: ${doing}`);
}

/** Opens one connection with the session in UTC. */
export async function connectMysql(options: MysqlOptions): Promise<MysqlConnection> {
  let connection: MysqlConnection;
  try {
    connection = await mysql.createConnection(clientOptions(options));
  } catch (err) {
    throw mysqlError(options, 'connect', err);
  }
  await connection.query("SET time_zone = '+00:00'");
  return connection;
}
