import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';

import { ConfigError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import { kafkaSaslOptions, mysqlSslOptions, nodeTlsOptions } from '../core/tls.js';
import { compileRegion } from './compile.js';
import { parseConfig } from './load.js';

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN PRIVATE KEY-----\nsecret-key-material\n-----END PRIVATE KEY-----\n';

/** A minimal file with `mysql`, `kafka` and `redis` blocks replaced by the given YAML. */
function file(parts: { mysql?: string; kafka?: string; redis?: string; extra?: string }): string {
  return `
regions:
  us-east:
    mysql: ${parts.mysql ?? '{ host: db, user: cdc, password: "" }'}
kafka: ${parts.kafka ?? '{ brokers: ["k:9092"] }'}
${parts.redis === undefined ? '' : `redis: ${parts.redis}`}
pipelines:
  - name: app
    tables: ["app.*"]
${parts.extra ?? ''}
`;
}

function problems(text: string): string[] {
  try {
    parseConfig(text, { env: {} });
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  throw new Error('expected the configuration to be refused');
}

function compileError(text: string, baseDir: string): string {
  try {
    compileRegion(parseConfig(text, { env: {} }), 'us-east', { baseDir });
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error('expected compiling to fail');
}

describe('schema of tls, sasl, passwordFile and capture.lease', () => {
  it('accepts a full tls block and defaults rejectUnauthorized to true', () => {
    const config = parseConfig(
      file({
        mysql: '{ host: db, user: cdc, password: "", tls: { caFile: ca.pem } }',
        kafka:
          '{ brokers: ["k:9093"], tls: {}, sasl: { mechanism: scram-sha-512, username: u, password: p } }',
      }),
      { env: {} },
    );
    expect(config.regions['us-east']?.mysql.tls).toEqual({
      caFile: 'ca.pem',
      rejectUnauthorized: true,
    });
    expect(config.kafka.tls).toEqual({ rejectUnauthorized: true });
    expect(config.kafka.sasl?.mechanism).toBe('scram-sha-512');
  });

  it('reports each mistake at its key path', () => {
    const found = problems(
      file({
        mysql:
          '{ host: db, user: cdc, password: x, passwordFile: pw, tls: { certFile: c.pem, bogus: 1 } }',
        kafka: '{ brokers: ["k:9093"], sasl: { mechanism: gssapi, username: u } }',
        extra: 'capture: { lease: { ttlMs: 3000, renewIntervalMs: 2000 } }',
      }),
    );
    const text = found.join('\n');
    expect(text).toMatch(/regions\.us-east\.mysql\.passwordFile .*either password or passwordFile/);
    expect(text).toMatch(/regions\.us-east\.mysql\.tls\.bogus/);
    expect(text).toMatch(/kafka\.sasl\.mechanism .*"plain", "scram-sha-256" or "scram-sha-512"/);
    expect(text).toMatch(/capture\.lease\.renewIntervalMs .*at most half of ttlMs/);
    // certFile without keyFile, and a sasl block without any password:
    const more = problems(
      file({
        mysql: '{ host: db, user: cdc, password: "", tls: { certFile: c.pem } }',
        kafka: '{ brokers: ["k:9093"], sasl: { mechanism: plain, username: u } }',
      }),
    ).join('\n');
    expect(more).toMatch(
      /regions\.us-east\.mysql\.tls\.keyFile .*certFile and keyFile go together/,
    );
    expect(more).toMatch(/kafka\.sasl\.password .*password or passwordFile is required/);
  });

  it('a mysql block without password nor passwordFile is refused', () => {
    expect(problems(file({ mysql: '{ host: db, user: cdc }' })).join('\n')).toMatch(
      /regions\.us-east\.mysql\.password .*password or passwordFile is required/,
    );
  });

  it('capture.lease defaults to a 10 s TTL renewed every third of it', () => {
    const options = compileRegion(parseConfig(file({}), { env: {} }), 'us-east');
    expect(options.capture.lease).toEqual({ ttlMs: 10_000, renewIntervalMs: 3_333 });
    const custom = compileRegion(
      parseConfig(file({ extra: 'capture: { lease: { ttlMs: 3000, renewIntervalMs: 1000 } }' }), {
        env: {},
      }),
      'us-east',
    );
    expect(custom.capture.lease).toEqual({ ttlMs: 3000, renewIntervalMs: 1000 });
  });
});

describe('compiling tls, sasl and passwordFile: files are read relative to the configuration', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'cdc-tls-config-'));
    writeFileSync(join(dir, 'ca.pem'), PEM);
    writeFileSync(join(dir, 'client.pem'), PEM);
    writeFileSync(join(dir, 'client.key'), KEY);
    writeFileSync(join(dir, 'not-pem.txt'), 'hello\n');
    writeFileSync(join(dir, 'mysql-pw'), 'db-secret\n');
    writeFileSync(join(dir, 'kafka-pw'), 'kafka-secret');
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads certificates, keys and password files into the runtime options', () => {
    const config = parseConfig(
      file({
        mysql:
          '{ host: db, user: cdc, passwordFile: mysql-pw, tls: { caFile: ca.pem, certFile: client.pem, keyFile: client.key } }',
        kafka:
          '{ brokers: ["k:9093"], tls: { caFile: ca.pem, servername: kafka.internal }, sasl: { mechanism: scram-sha-256, username: cdc, passwordFile: kafka-pw } }',
        redis: '{ url: "rediss://r:6380", tls: { caFile: ca.pem, rejectUnauthorized: false } }',
      }),
      { env: {} },
    );
    const options = compileRegion(config, 'us-east', { baseDir: dir });
    // One trailing newline (as `echo` writes) is not part of the password.
    expect(options.mysql.password.reveal()).toBe('db-secret');
    expect(options.mysql.tls?.ca).toBe(PEM);
    expect(options.mysql.tls?.cert).toBe(PEM);
    expect(options.mysql.tls?.key?.reveal()).toBe(KEY);
    expect(options.kafka.tls).toEqual({
      rejectUnauthorized: true,
      ca: PEM,
      servername: 'kafka.internal',
    });
    expect(options.kafka.sasl?.mechanism).toBe('scram-sha-256');
    expect(options.kafka.sasl?.password.reveal()).toBe('kafka-secret');
    expect(options.checkpointStore).toMatchObject({
      kind: 'redis',
      tls: { ca: PEM, rejectUnauthorized: false },
    });

    // Nothing secret shows when the options are logged or printed.
    for (const text of [JSON.stringify(options), inspect(options, { depth: 10 })]) {
      expect(text).not.toContain('db-secret');
      expect(text).not.toContain('kafka-secret');
      expect(text).not.toContain('secret-key-material');
    }
  });

  it("a region's own kafka tls and sasl replace the shared ones", () => {
    const text = `
regions:
  us-east:
    mysql: { host: db, user: cdc, password: "" }
    kafka: { tls: { caFile: ca.pem }, sasl: { mechanism: plain, username: east, password: "\${EAST_PW}" } }
  eu-west:
    mysql: { host: db2, user: cdc, password: "" }
kafka: { brokers: ["k:9093"], sasl: { mechanism: scram-sha-512, username: shared, passwordFile: kafka-pw } }
pipelines:
  - name: app
    tables: ["app.*"]
`;
    const config = parseConfig(text, { env: { EAST_PW: 'east-pw' } });
    const east = compileRegion(config, 'us-east', { baseDir: dir });
    expect(east.kafka.tls?.ca).toBe(PEM);
    expect(east.kafka.sasl).toMatchObject({ mechanism: 'plain', username: 'east' });
    expect(east.kafka.sasl?.password.reveal()).toBe('east-pw');
    const west = compileRegion(config, 'eu-west', { baseDir: dir });
    expect(west.kafka.tls).toBeUndefined();
    expect(west.kafka.sasl).toMatchObject({ mechanism: 'scram-sha-512', username: 'shared' });
  });

  it('a missing file is named with its key path and absolute path', () => {
    const message = compileError(
      file({ mysql: '{ host: db, user: cdc, password: "", tls: { caFile: missing-ca.pem } }' }),
      dir,
    );
    expect(message).toContain('regions.us-east.mysql.tls.caFile');
    expect(message).toContain(JSON.stringify(join(dir, 'missing-ca.pem')));
    expect(message).toContain('ENOENT');
    expect(
      compileError(
        file({
          kafka:
            '{ brokers: ["k:9093"], sasl: { mechanism: plain, username: u, passwordFile: nope } }',
        }),
        dir,
      ),
    ).toMatch(/kafka\.sasl\.passwordFile: cannot read ".*nope": ENOENT/);
  });

  it('a file that is not PEM is refused at start, not at first connect', () => {
    expect(
      compileError(
        file({ mysql: '{ host: db, user: cdc, password: "", tls: { caFile: not-pem.txt } }' }),
        dir,
      ),
    ).toMatch(/regions\.us-east\.mysql\.tls\.caFile: "not-pem\.txt" is not a PEM file/);
  });

  it("mysql.serverPublicKeyFile is read as the server's RSA public key; anything else is refused at start", () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const rsaPem = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    writeFileSync(join(dir, 'server-rsa.pem'), rsaPem);
    const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    writeFileSync(
      join(dir, 'server-ec.pem'),
      ec.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    );
    const withKey = (key: string): string =>
      file({ mysql: `{ host: db, user: cdc, password: "", serverPublicKeyFile: ${key} }` });

    const options = compileRegion(parseConfig(withKey('server-rsa.pem'), { env: {} }), 'us-east', {
      baseDir: dir,
    });
    expect(options.mysql.serverPublicKey).toBe(rsaPem);
    expect(compileError(withKey('server-ec.pem'), dir)).toMatch(
      /regions\.us-east\.mysql\.serverPublicKeyFile: "server-ec\.pem" holds a ec key; the server's RSA public key is needed/,
    );
    expect(compileError(withKey('ca.pem'), dir)).toMatch(
      /regions\.us-east\.mysql\.serverPublicKeyFile: "ca\.pem" holds no readable public key/,
    );
    expect(compileError(withKey('not-pem.txt'), dir)).toMatch(/is not a PEM file/);
    expect(compileError(withKey('missing.pem'), dir)).toMatch(
      /regions\.us-east\.mysql\.serverPublicKeyFile: cannot read .*ENOENT/,
    );
  });

  it('redis tls needs a rediss:// url, and mysql has no servername override', () => {
    expect(
      compileError(file({ redis: '{ url: "redis://r:6379", tls: { caFile: ca.pem } }' }), dir),
    ).toMatch(/redis\.tls: TLS needs a rediss:\/\/ url/);
    expect(
      compileError(
        file({ mysql: '{ host: db, user: cdc, password: "", tls: { servername: other } }' }),
        dir,
      ),
    ).toMatch(/regions\.us-east\.mysql\.tls\.servername: not supported for MySQL/);
  });
});

describe('client options built from the compiled settings', () => {
  const tls = {
    ca: PEM,
    cert: PEM,
    key: new Secret(KEY),
    rejectUnauthorized: true,
    servername: 'kafka.internal',
  };

  it('node:tls (kafkajs ssl, ioredis tls) gets the certificates and the name to verify', () => {
    expect(nodeTlsOptions(tls)).toEqual({
      ca: PEM,
      cert: PEM,
      key: KEY,
      rejectUnauthorized: true,
      servername: 'kafka.internal',
    });
    expect(nodeTlsOptions({ rejectUnauthorized: true })).toEqual({ rejectUnauthorized: true });
  });

  it("mysql2 verifies the certificate's name whenever it verifies the certificate", () => {
    expect(mysqlSslOptions({ ca: PEM, rejectUnauthorized: true })).toEqual({
      ca: PEM,
      rejectUnauthorized: true,
      verifyIdentity: true,
    });
    expect(mysqlSslOptions({ rejectUnauthorized: false })).toEqual({
      rejectUnauthorized: false,
      verifyIdentity: false,
    });
  });

  it.each(['plain', 'scram-sha-256', 'scram-sha-512'] as const)('kafkajs sasl %s', (mechanism) => {
    expect(kafkaSaslOptions({ mechanism, username: 'u', password: new Secret('p') })).toEqual({
      mechanism,
      username: 'u',
      password: 'p',
    });
  });
});
