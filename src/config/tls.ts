/**
 * Compiling the secure-connection parts of the file: `tls` blocks (certificate
 * files), `sasl` blocks and `passwordFile` keys. Files are read here, when a
 * daemon's options are compiled, so a missing or unreadable file stops the
 * start with the key path and file name instead of failing on first connect.
 */
import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

import { ConfigError, fsErrorCode } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import type { SaslOptions, TlsOptions } from '../core/tls.js';
import { formatKeyPath, type ConfigPath } from './key-path.js';
import type { SaslConfig, TlsConfig } from './schema.js';

/** Reads one file named in the configuration; the error names the key and the file, never content. */
export function readConfigFile(
  path: ConfigPath,
  file: string,
  baseDir: string | undefined,
): string {
  const absolute = baseDir === undefined ? file : resolve(baseDir, file);
  try {
    return readFileSync(absolute, 'utf8');
  } catch (error: unknown) {
    const code = fsErrorCode(error);
    throw new ConfigError(
      [`${formatKeyPath(path)}: cannot read ${JSON.stringify(absolute)}: ${code}`],
      {
        cause: error,
      },
    );
  }
}

/** A password from `password` (already a Secret) or `passwordFile` (one trailing newline dropped, as `echo` adds it). */
export function compilePassword(
  path: ConfigPath,
  block: { readonly password?: Secret | undefined; readonly passwordFile?: string | undefined },
  baseDir: string | undefined,
): Secret {
  if (block.password !== undefined) return block.password;
  if (block.passwordFile === undefined) {
    // The schema requires one of the two; reaching here means unvalidated input.
    throw new ConfigError([
      `${formatKeyPath([...path, 'password'])}: password or passwordFile is required`,
    ]);
  }
  const text = readConfigFile([...path, 'passwordFile'], block.passwordFile, baseDir);
  return new Secret(text.replace(/\r?\n$/, ''));
}

/** A PEM file that must look like PEM, so a wrong file (a path typo hitting another file) is named at start. */
function readPem(path: ConfigPath, file: string, baseDir: string | undefined): string {
  const text = readConfigFile(path, file, baseDir);
  if (!text.includes('-----BEGIN ')) {
    throw new ConfigError([
      `${formatKeyPath(path)}: ${JSON.stringify(file)} is not a PEM file (no "-----BEGIN" line)`,
    ]);
  }
  return text;
}

/**
 * An RSA public key in PEM (`mysql.serverPublicKeyFile`), checked at start so
 * a wrong file is named then, not at the first login that needs it.
 */
export function readRsaPublicKey(
  path: ConfigPath,
  file: string,
  baseDir: string | undefined,
): string {
  const text = readPem(path, file, baseDir);
  let type: string | undefined;
  try {
    type = createPublicKey(text).asymmetricKeyType;
  } catch (error: unknown) {
    throw new ConfigError(
      [`${formatKeyPath(path)}: ${JSON.stringify(file)} holds no readable public key`],
      { cause: error },
    );
  }
  if (type !== 'rsa') {
    throw new ConfigError([
      `${formatKeyPath(path)}: ${JSON.stringify(file)} holds a ${type ?? 'non-RSA'} key; the server's RSA public key is needed`,
    ]);
  }
  return text;
}

/** The `tls` block at `path`, with its certificate files read. */
export function compileTls(
  path: ConfigPath,
  tls: TlsConfig,
  baseDir: string | undefined,
): TlsOptions {
  return {
    rejectUnauthorized: tls.rejectUnauthorized,
    ...(tls.caFile === undefined ? {} : { ca: readPem([...path, 'caFile'], tls.caFile, baseDir) }),
    ...(tls.certFile === undefined
      ? {}
      : { cert: readPem([...path, 'certFile'], tls.certFile, baseDir) }),
    ...(tls.keyFile === undefined
      ? {}
      : { key: new Secret(readPem([...path, 'keyFile'], tls.keyFile, baseDir)) }),
    ...(tls.servername === undefined ? {} : { servername: tls.servername }),
  };
}

/** The `sasl` block at `path`, with its password resolved. */
export function compileSasl(
  path: ConfigPath,
  sasl: SaslConfig,
  baseDir: string | undefined,
): SaslOptions {
  return {
    mechanism: sasl.mechanism,
    username: sasl.username,
    password: compilePassword(path, sasl, baseDir),
  };
}
