/**
 * MySQL 8's default login, caching_sha2_password, for a user WITH a password,
 * against a real MySQL 8.0.12: the query connections (mysql2) and the binlog
 * connection (zongji, mysql2 underneath) must log in over plain TCP and over
 * TLS. The hard case is the FIRST login after the server's cache was emptied
 * (FLUSH PRIVILEGES): a full authentication, where the client must send the
 * password itself, in clear over TLS or RSA-encrypted with the server's
 * public key otherwise (asked from the server, or pinned with
 * `mysql.serverPublicKeyFile`). Later logins take the cached fast path, which
 * proves nothing about the full one, so every test empties the cache first.
 */
import { jest } from '@jest/globals';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { authPlugins } from 'mysql2';
import mysql from 'mysql2/promise';

import { BinlogSource } from '../../../src/capture/binlog-source.js';
import type { RowsEvent, SourceEvent } from '../../../src/capture/source-events.js';
import { compileRegion, type MysqlOptions } from '../../../src/config/compile.js';
import { parseConfig } from '../../../src/config/load.js';
import { CdcError } from '../../../src/core/errors.js';
import { connectMysql } from '../../../src/mysql/connection.js';
import { LocalMySql8 } from '../../../src/sandbox/local/mysql8.js';
import {
  checkMysql8Libraries,
  mysql8Distribution,
  type Mysql8Distribution,
} from '../../../src/sandbox/local/mysql8-dist.js';
import { freePort } from '../../../src/sandbox/ports.js';
import { requirePrograms } from '../../../src/sandbox/prerequisites.js';
import { makeCa, makeServerCert } from './certs.js';

// A fresh machine's first run also fetches MySQL 8 through Maven.
jest.setTimeout(300_000);

const REGION = 'sha2';
const USER = 'cdc_sha2';
const PASSWORD = 'Sha2-secret!pw';
const SCHEMA = 'authdb';

describe('MySQL 8 caching_sha2_password with a password', () => {
  let dir: string;
  let server: LocalMySql8;
  let root: mysql.Connection;
  let nextId = 1;
  let distribution: Mysql8Distribution;
  const tlsArgs = (): string[] => [
    `--ssl-ca=${join(dir, 'good-ca.pem')}`,
    `--ssl-cert=${join(dir, 'server.pem')}`,
    `--ssl-key=${join(dir, 'server.key')}`,
  ];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cdc-mysql8-auth-'));
    makeCa(dir, 'good');
    makeServerCert(dir, 'good');
    const programs = requirePrograms(['mvn', 'tar']);
    distribution = await mysql8Distribution({
      mvn: programs.mvn,
      tar: programs.tar,
      log: (message) => console.log(message),
    });
    await checkMysql8Libraries(distribution.mysqld);
    server = new LocalMySql8({
      region: REGION,
      dir: join(dir, 'mysql8'),
      port: await freePort(),
      serverId: 911,
      gtidDomainId: 9,
      bufferPoolMb: 64,
      distribution,
      extraArgs: tlsArgs(),
    });
    await server.start();
    root = await mysql.createConnection({
      host: server.endpoint.host,
      port: server.endpoint.port,
      user: server.endpoint.user,
      password: server.endpoint.password,
    });
    await root.query(`CREATE DATABASE ${SCHEMA}`);
    await root.query(`CREATE TABLE ${SCHEMA}.items (id INT PRIMARY KEY, note VARCHAR(40))`);
    await root.query(
      `CREATE USER '${USER}'@'%' IDENTIFIED WITH caching_sha2_password BY '${PASSWORD}'`,
    );
    await root.query(
      `GRANT SELECT, INSERT, UPDATE, DELETE, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '${USER}'@'%'`,
    );
    // The server's RSA public key, as an operator would copy it for mysql.serverPublicKeyFile.
    const [key] = await root.query<mysql.RowDataPacket[]>(
      "SHOW GLOBAL STATUS LIKE 'Caching_sha2_password_rsa_public_key'",
    );
    const pem = String(key[0]?.Value ?? '');
    expect(pem).toContain('-----BEGIN PUBLIC KEY-----');
    writeFileSync(join(dir, 'server-public.pem'), pem);
    // Another RSA key: what a pinned key from the wrong server looks like.
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(
      join(dir, 'other-public.pem'),
      other.publicKey.export({ type: 'spki', format: 'pem' }),
    );
    writeFileSync(join(dir, 'mysql-password'), `${PASSWORD}\n`);
    writeFileSync(join(dir, 'wrong-password'), 'not-the-password\n');
  });

  afterAll(async () => {
    await root?.end();
    await server?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** The region's MySQL options as `run` compiles them from a configuration file in `dir`. */
  function mysqlOptions(
    extra: { tls?: string; key?: string; passwordFile?: string; port?: number } = {},
  ): MysqlOptions {
    const yaml = `
regions:
  ${REGION}:
    mysql:
      host: 127.0.0.1
      port: ${extra.port ?? server.endpoint.port}
      user: ${USER}
      passwordFile: ${extra.passwordFile ?? 'mysql-password'}
${extra.tls === undefined ? '' : `      tls: ${extra.tls}\n`}${extra.key === undefined ? '' : `      serverPublicKeyFile: ${extra.key}\n`}kafka: { brokers: ["127.0.0.1:9"] }
pipelines:
  - name: app
    tables: ["${SCHEMA}.*"]
`;
    return compileRegion(parseConfig(yaml, { env: {} }), REGION, { baseDir: dir }).mysql;
  }

  const PLAIN = {};
  const PINNED = { key: 'server-public.pem' };
  const TLS = { tls: '{ caFile: good-ca.pem }' };

  /** Empties caching_sha2_password's cache: the next login of the user is a full authentication. */
  async function coldCache(): Promise<void> {
    await root.query('FLUSH PRIVILEGES');
  }

  async function errorOf(promise: Promise<unknown>): Promise<unknown> {
    return promise.then(
      () => undefined,
      (e: unknown) => e,
    );
  }

  /** Who the session is and whether it is encrypted. */
  async function session(connection: mysql.Connection): Promise<{ user: string; cipher: string }> {
    const [users] = await connection.query<mysql.RowDataPacket[]>('SELECT CURRENT_USER() AS u');
    const [ssl] = await connection.query<mysql.RowDataPacket[]>(
      "SHOW SESSION STATUS LIKE 'Ssl_cipher'",
    );
    return { user: String(users[0]?.u), cipher: String(ssl[0]?.Value ?? '') };
  }

  it('the account really is caching_sha2_password with a password', async () => {
    const [rows] = await root.query<mysql.RowDataPacket[]>(
      "SELECT plugin, authentication_string <> '' AS has_password FROM mysql.user WHERE user = ?",
      [USER],
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]?.plugin).toBe('caching_sha2_password');
    expect(Number(rows[0]?.has_password)).toBe(1);
  });

  it('control: after FLUSH PRIVILEGES the first plain login is a full authentication (the server key is asked for), the next one is not', async () => {
    let keyRequests = 0;
    const connect = (): Promise<mysql.Connection> =>
      mysql.createConnection({
        host: '127.0.0.1',
        port: server.endpoint.port,
        user: USER,
        password: PASSWORD,
        authPlugins: {
          caching_sha2_password: authPlugins.caching_sha2_password({
            onServerPublicKey: () => {
              keyRequests += 1;
            },
          }),
        },
      });
    await coldCache();
    await (await connect()).end();
    expect(keyRequests).toBe(1);
    await (await connect()).end();
    expect(keyRequests).toBe(1); // cached: the fast path
  });

  describe.each([
    ['plain TCP, server key asked for', PLAIN, false],
    ['plain TCP, server key pinned with serverPublicKeyFile', PINNED, false],
    ['TLS', TLS, true],
  ] as const)('%s', (_name, extra, encrypted) => {
    it('connectMysql logs in with a cold cache (full authentication)', async () => {
      await coldCache();
      const connection = await connectMysql(mysqlOptions(extra));
      try {
        const { user, cipher } = await session(connection);
        expect(user).toBe(`${USER}@%`);
        if (encrypted) expect(cipher).not.toBe('');
        else expect(cipher).toBe('');
      } finally {
        await connection.end();
      }
    });

    it('the binlog source logs in with a cold cache and receives a row inserted after it started', async () => {
      const options = mysqlOptions(extra);
      const [gtid] = await root.query<mysql.RowDataPacket[]>('SELECT @@GLOBAL.gtid_executed AS g');
      const errors: CdcError[] = [];
      const id = nextId++;
      let resolveRow!: (event: RowsEvent) => void;
      const row = new Promise<RowsEvent>((resolve) => (resolveRow = resolve));
      const source = new BinlogSource({
        mysql: options,
        serverId: 4_100_000_100 + id,
        gtidSet: String(gtid[0]?.g ?? ''),
        includeSchema: { [SCHEMA]: ['items'] },
        primaryKeys: new Map(),
        onEvent: (event: SourceEvent) => {
          if (
            event.kind === 'rows' &&
            event.op === 'insert' &&
            event.table === 'items' &&
            event.rows.some((r) => (r as Record<string, unknown>).id === id)
          )
            resolveRow(event);
        },
        onError: (error) => errors.push(error),
      });
      await coldCache();
      let timer: NodeJS.Timeout | undefined;
      try {
        await source.start();
        await root.query(`INSERT INTO ${SCHEMA}.items VALUES (?, ?)`, [id, `row ${id}`]);
        const event = await Promise.race([
          row,
          new Promise<undefined>(
            (resolve) => (timer = setTimeout(() => resolve(undefined), 20_000)),
          ),
        ]);
        expect(errors).toEqual([]);
        expect(event).toBeDefined();
        expect(event?.schema).toBe(SCHEMA);
        expect(event?.rows).toEqual([{ id, note: `row ${id}` }]);
      } finally {
        clearTimeout(timer);
        source.stop();
      }
    });

    it('a wrong password is refused, naming the server and the user', async () => {
      await coldCache();
      const options = mysqlOptions({ ...extra, passwordFile: 'wrong-password' });
      const where = `${USER}@127.0.0.1:${server.endpoint.port}${encrypted ? ' (TLS)' : ''}`;

      const err = await errorOf(connectMysql(options));
      expect(err).toBeInstanceOf(CdcError);
      expect((err as CdcError).message).toContain(`MySQL ${where}: connect`);
      expect((err as CdcError).message).toMatch(/Access denied for user 'cdc_sha2'/);
      expect((err as CdcError).retriable).toBe(false);
      // This server has RSA keys: the hint for one without must not appear.
      expect((err as CdcError).message).not.toContain('no RSA key pair');
      console.log(`wrong password (${_name}): ${(err as Error).message}`);

      const source = new BinlogSource({
        mysql: options,
        serverId: 4_100_000_099,
        gtidSet: '',
        includeSchema: {},
        primaryKeys: new Map(),
        onEvent: () => undefined,
        onError: () => undefined,
      });
      try {
        const binlogErr = await errorOf(source.start());
        expect(binlogErr).toBeInstanceOf(CdcError);
        expect((binlogErr as CdcError).message).toContain(`MySQL ${where}: binlog stream`);
        expect((binlogErr as CdcError).message).toMatch(/Access denied for user 'cdc_sha2'/);
      } finally {
        source.stop();
      }
    });
  });

  it('a pinned key of another server is refused, and the error says to check serverPublicKeyFile', async () => {
    await coldCache();
    const err = await errorOf(connectMysql(mysqlOptions({ key: 'other-public.pem' })));
    expect(err).toBeInstanceOf(CdcError);
    const message = (err as Error).message;
    expect(message).toMatch(/Access denied for user 'cdc_sha2'/);
    expect(message).toContain('check that mysql.serverPublicKeyFile is this server');
    console.log(`wrong pinned key: ${message}`);
  });

  it('a key the client cannot encrypt with ends in an error naming the fixes (TLS, serverPublicKeyFile, mysql_native_password)', async () => {
    await coldCache();
    // Not reachable through the configuration (it checks the file holds an RSA key), but
    // this is the failure of a full authentication that cannot be completed without TLS.
    const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const options: MysqlOptions = {
      ...mysqlOptions(PLAIN),
      serverPublicKey: ec.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    };
    const err = await errorOf(connectMysql(options));
    expect(err).toBeInstanceOf(CdcError);
    const message = (err as Error).message;
    expect(message).toContain(`MySQL ${USER}@127.0.0.1:${server.endpoint.port}: connect`);
    expect(message).toContain('mysql.tls');
    expect(message).toContain('mysql.serverPublicKeyFile');
    expect(message).toContain('mysql_native_password');
    console.log(`unusable key: ${message}`);
  });

  it('the configuration refuses a serverPublicKeyFile that holds no RSA public key, naming the key', () => {
    writeFileSync(
      join(dir, 'not-a-key.pem'),
      '-----BEGIN PUBLIC KEY-----\nnonsense\n-----END PUBLIC KEY-----\n',
    );
    expect(() => mysqlOptions({ key: 'not-a-key.pem' })).toThrow(
      /regions\.sha2\.mysql\.serverPublicKeyFile.*not-a-key\.pem.*no readable public key/,
    );
    expect(() => mysqlOptions({ key: 'missing.pem' })).toThrow(
      /regions\.sha2\.mysql\.serverPublicKeyFile: cannot read/,
    );
  });

  describe('a server without an RSA key pair (no full authentication possible without TLS)', () => {
    let bare: LocalMySql8;

    beforeAll(async () => {
      const bareDir = join(dir, 'mysql8-no-rsa');
      bare = new LocalMySql8({
        region: 'norsa',
        dir: bareDir,
        port: await freePort(),
        serverId: 912,
        gtidDomainId: 9,
        bufferPoolMb: 32,
        distribution,
        extraArgs: [
          ...tlsArgs(),
          '--skip-caching-sha2-password-auto-generate-rsa-keys',
          '--skip-sha256-password-auto-generate-rsa-keys',
          `--caching-sha2-password-private-key-path=${join(bareDir, 'absent-private.pem')}`,
          `--caching-sha2-password-public-key-path=${join(bareDir, 'absent-public.pem')}`,
        ],
      });
      await bare.start();
      const bareRoot = await mysql.createConnection({
        host: bare.endpoint.host,
        port: bare.endpoint.port,
        user: bare.endpoint.user,
        password: bare.endpoint.password,
      });
      try {
        const [key] = await bareRoot.query<mysql.RowDataPacket[]>(
          "SHOW GLOBAL STATUS LIKE 'Caching_sha2_password_rsa_public_key'",
        );
        expect(String(key[0]?.Value ?? '')).toBe(''); // control: really no key
        await bareRoot.query(
          `CREATE USER '${USER}'@'%' IDENTIFIED WITH caching_sha2_password BY '${PASSWORD}'`,
        );
        await bareRoot.query(
          `GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '${USER}'@'%'`,
        );
        // Nothing cached: the next login is a full authentication.
        await bareRoot.query('FLUSH PRIVILEGES');
      } finally {
        await bareRoot.end();
      }
    });

    afterAll(async () => {
      await bare?.stop();
    });

    it('connectMysql without TLS fails saying the server has no RSA key pair and naming the fixes', async () => {
      const err = await errorOf(connectMysql(mysqlOptions({ port: bare.endpoint.port })));
      expect(err).toBeInstanceOf(CdcError);
      const message = (err as Error).message;
      expect(message).toContain(`MySQL ${USER}@127.0.0.1:${bare.endpoint.port}: connect`);
      expect(message).toContain('Access denied');
      expect(message).toContain('it has no RSA key pair');
      expect(message).toContain('mysql.tls');
      expect(message).toContain('mysql_native_password');
      console.log(`no RSA keys (query connection): ${message}`);
    });

    it('the binlog source without TLS fails at start the same way', async () => {
      const source = new BinlogSource({
        mysql: mysqlOptions({ port: bare.endpoint.port }),
        serverId: 4_100_000_200,
        gtidSet: '',
        includeSchema: {},
        primaryKeys: new Map(),
        onEvent: () => undefined,
        onError: () => undefined,
      });
      try {
        const err = await errorOf(source.start());
        expect(err).toBeInstanceOf(CdcError);
        const message = (err as Error).message;
        expect(message).toContain(`MySQL ${USER}@127.0.0.1:${bare.endpoint.port}: binlog stream`);
        expect(message).toContain('it has no RSA key pair');
        expect(message).toContain('mysql.tls');
        console.log(`no RSA keys (binlog): ${message}`);
      } finally {
        source.stop();
      }
    });

    it('the named fix works: over TLS the same user logs in, query and binlog connections', async () => {
      const options = mysqlOptions({ port: bare.endpoint.port, ...TLS });
      const connection = await connectMysql(options);
      try {
        expect((await session(connection)).user).toBe(`${USER}@%`);
      } finally {
        await connection.end();
      }
      const errors: CdcError[] = [];
      const source = new BinlogSource({
        mysql: options,
        serverId: 4_100_000_201,
        gtidSet: '',
        includeSchema: {},
        primaryKeys: new Map(),
        onEvent: () => undefined,
        onError: (error) => errors.push(error),
      });
      try {
        await source.start();
      } finally {
        source.stop();
      }
      expect(errors).toEqual([]);
    });
  });
});
