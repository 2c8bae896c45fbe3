/**
 * Secure-connection settings in compiled form (certificate contents already
 * read from their files) and their translation into what each client
 * library takes: mysql2 and zongji (`ssl`), kafkajs (`ssl`, `sasl`) and
 * ioredis / node:tls (`tls`). One place, so the four clients cannot drift
 * apart in how they verify a server.
 */
import type { ConnectionOptions as NodeTlsOptions } from 'node:tls';
import type { SASLOptions } from 'kafkajs';
import type { SslOptions as MysqlSslOptions } from 'mysql2';

import type { Secret } from './secret.js';

/** TLS of one client connection. */
export interface TlsOptions {
  /** PEM CA bundle; the system's trusted CAs when absent. */
  readonly ca?: string;
  /** PEM client certificate (with `key`), for servers that require one. */
  readonly cert?: string;
  /** PEM private key of `cert`. */
  readonly key?: Secret;
  /** Refuse servers whose certificate does not verify. Default true in the configuration. */
  readonly rejectUnauthorized: boolean;
  /** Expected name in the server's certificate (and SNI) when it differs from the host. */
  readonly servername?: string;
}

/** SASL authentication to Kafka. */
export interface SaslOptions {
  readonly mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512';
  readonly username: string;
  readonly password: Secret;
}

/** node:tls options (ioredis `tls`, kafkajs `ssl`). */
export function nodeTlsOptions(tls: TlsOptions): NodeTlsOptions {
  return {
    rejectUnauthorized: tls.rejectUnauthorized,
    ...(tls.ca === undefined ? {} : { ca: tls.ca }),
    ...(tls.cert === undefined ? {} : { cert: tls.cert }),
    ...(tls.key === undefined ? {} : { key: tls.key.reveal() }),
    ...(tls.servername === undefined ? {} : { servername: tls.servername }),
  };
}

/**
 * mysql2's `ssl` (zongji passes its options to mysql2 too). mysql2 checks the
 * certificate's name only with `verifyIdentity`, and always against the
 * configured host (never for an IP address), so verification turns that on;
 * a different expected name cannot be given (the compiler refuses
 * `mysql.tls.servername`).
 */
export function mysqlSslOptions(tls: TlsOptions): MysqlSslOptions {
  return {
    rejectUnauthorized: tls.rejectUnauthorized,
    verifyIdentity: tls.rejectUnauthorized,
    ...(tls.ca === undefined ? {} : { ca: tls.ca }),
    ...(tls.cert === undefined ? {} : { cert: tls.cert }),
    ...(tls.key === undefined ? {} : { key: tls.key.reveal() }),
  };
}

/** kafkajs' `sasl`. */
export function kafkaSaslOptions(sasl: SaslOptions): SASLOptions {
  const credentials = { username: sasl.username, password: sasl.password.reveal() };
  switch (sasl.mechanism) {
    case 'plain':
      return { mechanism: 'plain', ...credentials };
    case 'scram-sha-256':
      return { mechanism: 'scram-sha-256', ...credentials };
    case 'scram-sha-512':
      return { mechanism: 'scram-sha-512', ...credentials };
  }
}
