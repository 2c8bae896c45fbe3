import { authPlugins, type AuthPlugin } from 'mysql2';
import mysql from 'mysql2/promise';
import type { MysqlOptions } from '../config/compile.js';
import { classifyError } from '../core/retriable.js';
import { CdcError } from '../core/errors.js';
import { mysqlSslOptions } from '../core/tls.js';

export type MysqlConnection = mysql.Connection;

/**
 * Session settings every replicator connection shares. Values must come back
 * exactly as stored: DECIMAL and BIGINT as strings, temporal values as
 * strings with their microseconds, and TIMESTAMP in UTC so versions read
 * from `_cdc_ts` mean the same instant everywhere.
 *
 * `login` (see {@link LoginTrace}) lets an error say why a MySQL 8 password
 * login failed; without it the connection is the same.
 */
export function clientOptions(options: MysqlOptions, login?: LoginTrace): mysql.ConnectionOptions {
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
    // MySQL's JSON type would otherwise come back parsed (a JSON string
    // scalar indistinguishable from text); MariaDB's JSON is text already.
    jsonStrings: true,
    decimalNumbers: false,
    charset: 'utf8mb4_general_ci',
    connectTimeout: 10_000,
    multipleStatements: false,
    ...(options.tls === undefined ? {} : { ssl: mysqlSslOptions(options.tls) }),
    ...mysqlAuthOptions(options, login),
  };
}

/**
 * How far MySQL 8 password logins without TLS got: how many asked the server
 * for its RSA public key and have not received it. The server answers a key
 * request with an error (access denied) when it has no RSA key pair, which
 * otherwise looks exactly like a wrong password.
 */
export interface LoginTrace {
  unansweredKeyRequests: number;
}

export function newLoginTrace(): LoginTrace {
  return { unansweredKeyRequests: 0 };
}

/** What caching_sha2_password's server sends when the password itself is needed (not in its cache). */
const PERFORM_FULL_AUTHENTICATION = 4;

/**
 * MySQL 8's password logins (caching_sha2_password, sha256_password) send the
 * password itself on a full authentication (the first login after a restart
 * or FLUSH PRIVILEGES): in clear over TLS, otherwise RSA-encrypted with the
 * server's public key. mysql2 asks the server for that key unless it is given
 * one; with `serverPublicKeyFile` it is pinned, so no key crosses the network
 * and a man in the middle cannot substitute his own. zongji hands these
 * options to mysql2 too.
 *
 * With a `login` trace and no TLS, caching_sha2_password goes through a
 * wrapper that counts key requests (mysql2 then skips its shortcut of
 * answering the server's first plugin directly: one more round trip at login).
 */
export function mysqlAuthOptions(
  options: MysqlOptions,
  login?: LoginTrace,
): Pick<mysql.ConnectionOptions, 'authPlugins'> {
  const serverPublicKey = options.serverPublicKey;
  const traced = login !== undefined && options.tls === undefined && serverPublicKey === undefined;
  if (serverPublicKey === undefined && !traced) return {};
  const cachingSha2 = authPlugins.caching_sha2_password({
    ...(serverPublicKey === undefined ? {} : { serverPublicKey }),
    ...(traced
      ? {
          onServerPublicKey: () => {
            login.unansweredKeyRequests = Math.max(0, login.unansweredKeyRequests - 1);
          },
        }
      : {}),
  });
  return {
    authPlugins: {
      caching_sha2_password: traced ? countKeyRequests(cachingSha2, login) : cachingSha2,
      ...(serverPublicKey === undefined
        ? {}
        : { sha256_password: authPlugins.sha256_password({ serverPublicKey }) }),
    },
  };
}

/** caching_sha2_password without a pinned key, counting the key requests its full authentications make. */
function countKeyRequests(plugin: AuthPlugin, login: LoginTrace): AuthPlugin {
  return (meta) => {
    const step = plugin(meta);
    return (data) => {
      // Without TLS and a pinned key, mysql2 answers "perform full authentication" with a key request.
      if (data.length === 1 && data[0] === PERFORM_FULL_AUTHENTICATION)
        login.unansweredKeyRequests += 1;
      return step(data);
    };
  };
}

/** Where a connection goes, for error messages (never the password). */
export function describeMysql(options: MysqlOptions): string {
  return `MySQL ${options.user}@${options.host}:${options.port}${options.tls === undefined ? '' : ' (TLS)'}`;
}

const NO_TLS_FIXES =
  'connect with mysql.tls (the password then goes over TLS), or set mysql.serverPublicKeyFile, ' +
  'or give the replication user mysql_native_password';

/** What to change when a login failed in a way the password alone does not explain. */
function authenticationHint(
  options: MysqlOptions,
  err: unknown,
  login: LoginTrace | undefined,
): string | undefined {
  const { code, errno } = (typeof err === 'object' && err !== null ? err : {}) as {
    code?: unknown;
    errno?: unknown;
  };
  if (
    code === 'AUTH_SWITCH_PLUGIN_ERROR' ||
    (typeof code === 'string' && code.startsWith('ERR_OSSL'))
  ) {
    // The client side of the login threw: in practice, encrypting the password with the RSA key.
    return (
      "the client could not complete MySQL 8's password login (caching_sha2_password / sha256_password " +
      "send the password encrypted with the server's RSA public key when there is no TLS): " +
      (options.serverPublicKey === undefined
        ? NO_TLS_FIXES
        : "check that mysql.serverPublicKeyFile is this server's RSA public key, or connect with mysql.tls, " +
          'or give the replication user mysql_native_password')
    );
  }
  if (errno !== 1045 || options.tls !== undefined) return undefined;
  if (options.serverPublicKey !== undefined) {
    return (
      "if the password is right, check that mysql.serverPublicKeyFile is this server's RSA public key " +
      '(a wrong key also ends in access denied)'
    );
  }
  if (login !== undefined && login.unansweredKeyRequests > 0) {
    return (
      'the server refused a caching_sha2_password login without TLS instead of sending its RSA public key: ' +
      "it has no RSA key pair (its error log says 'Authentication requires either RSA keys or SSL encryption'; " +
      'see caching_sha2_password_private_key_path / caching_sha2_password_auto_generate_rsa_keys). ' +
      'To fix: connect with mysql.tls (the password then goes over TLS), or give the server an RSA key pair, ' +
      'or give the replication user mysql_native_password'
    );
  }
  return undefined;
}

/**
 * Wraps a driver error so the message says which server and what was being
 * done, and, for a failed MySQL 8 password login, what to change.
 */
export function mysqlError(
  options: MysqlOptions,
  doing: string,
  err: unknown,
  login?: LoginTrace,
): CdcError {
  const error = classifyError(err, `${describeMysql(options)}: ${doing}`);
  const hint = authenticationHint(options, err, login);
  if (hint === undefined || error === err) return error;
  return new CdcError(`${error.message}; ${hint}`, {
    retriable: error.retriable,
    code: error.code,
    cause: err,
  });
}

/** Opens one connection with the session in UTC. */
export async function connectMysql(options: MysqlOptions): Promise<MysqlConnection> {
  const login = newLoginTrace();
  let connection: MysqlConnection;
  try {
    connection = await mysql.createConnection(clientOptions(options, login));
  } catch (err) {
    throw mysqlError(options, 'connect', err, login);
  }
  await connection.query("SET time_zone = '+00:00'");
  return connection;
}
