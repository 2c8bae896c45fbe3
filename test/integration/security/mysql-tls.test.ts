/**
 * TLS to MySQL for real: a throwaway CA and server certificate made with
 * openssl, a MariaDB serving them, and a user that may only connect over
 * TLS. The replicator's connections (mysql2 for queries and apply, zongji for
 * the binlog) must connect with `tls.caFile` from the configuration, and
 * refuse a server whose certificate another CA signed, saying why.
 */
import { jest } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';

import { BinlogSource } from '../../../src/capture/binlog-source.js';
import { compileRegion, type MysqlOptions } from '../../../src/config/compile.js';
import { parseConfig } from '../../../src/config/load.js';
import { CdcError } from '../../../src/core/errors.js';
import { connectMysql } from '../../../src/mysql/connection.js';
import { LocalMariaDb } from '../../../src/sandbox/local/mariadb.js';
import { freePort } from '../../../src/sandbox/ports.js';
import { requirePrograms } from '../../../src/sandbox/prerequisites.js';
import { makeCa, makeServerCert } from './certs.js';

jest.setTimeout(120_000);

const REGION = 'secure';
const USER = 'cdc_tls';
const PASSWORD = 'tls-only-pw';

describe('TLS to MySQL', () => {
  let dir: string;
  let server: LocalMariaDb;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cdc-tls-'));
    makeCa(dir, 'good');
    makeCa(dir, 'other');
    makeServerCert(dir, 'good');
    server = new LocalMariaDb({
      region: REGION,
      dir: join(dir, 'mariadb'),
      port: await freePort(),
      serverId: 901,
      gtidDomainId: 9,
      bufferPoolMb: 32,
      programs: requirePrograms(['mariadbd', 'mariadbInstallDb']),
      extraArgs: [
        `--ssl-ca=${join(dir, 'good-ca.pem')}`,
        `--ssl-cert=${join(dir, 'server.pem')}`,
        `--ssl-key=${join(dir, 'server.key')}`,
      ],
    });
    await server.start();
    const root = await mysql.createConnection({
      host: server.endpoint.host,
      port: server.endpoint.port,
      user: server.endpoint.user,
      password: server.endpoint.password,
    });
    try {
      await root.query(`CREATE USER '${USER}'@'127.0.0.1' IDENTIFIED BY '${PASSWORD}' REQUIRE SSL`);
      await root.query(
        `GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '${USER}'@'127.0.0.1'`,
      );
    } finally {
      await root.end();
    }
    writeFileSync(join(dir, 'mysql-password'), `${PASSWORD}\n`);
  });

  afterAll(async () => {
    await server?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** The region's MySQL options as `run` would compile them from a file in `dir`. */
  function mysqlOptions(tls: string): MysqlOptions {
    const yaml = `
regions:
  ${REGION}:
    mysql:
      host: 127.0.0.1
      port: ${server.endpoint.port}
      user: ${USER}
      passwordFile: mysql-password
      tls: ${tls}
kafka: { brokers: ["127.0.0.1:9"] }
pipelines:
  - name: app
    tables: ["app.*"]
`;
    return compileRegion(parseConfig(yaml, { env: {} }), REGION, { baseDir: dir }).mysql;
  }

  it('connects with tls.caFile: the session is encrypted', async () => {
    const connection = await connectMysql(mysqlOptions('{ caFile: good-ca.pem }'));
    try {
      const [rows] = await connection.query<mysql.RowDataPacket[]>(
        "SHOW SESSION STATUS LIKE 'Ssl_cipher'",
      );
      expect(String(rows[0]?.Value ?? '')).not.toBe('');
      console.log(`MySQL session cipher: ${String(rows[0]?.Value)}`);
    } finally {
      await connection.end();
    }
  });

  it('the user really needs TLS: a plain connection is refused', async () => {
    const plain = { ...mysqlOptions('{ caFile: good-ca.pem }'), tls: undefined };
    await expect(connectMysql(plain)).rejects.toThrow(/Access denied/);
  });

  it('refuses a server whose certificate another CA signed, naming the server and the reason', async () => {
    const err = await connectMysql(mysqlOptions('{ caFile: other-ca.pem }')).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CdcError);
    const message = (err as Error).message;
    expect(message).toContain(`${USER}@127.0.0.1:${server.endpoint.port} (TLS)`);
    expect(message).toMatch(/certificate/i);
    console.log(`wrong CA: ${message}`);
  });

  it('streams the binlog over TLS (zongji gets the same certificates)', async () => {
    const options = mysqlOptions('{ caFile: good-ca.pem }');
    const errors: CdcError[] = [];
    const source = new BinlogSource({
      mysql: options,
      serverId: 4_100_000_001,
      gtidSet: '',
      includeSchema: {},
      primaryKeys: new Map(),
      onEvent: () => undefined,
      onError: (error) => errors.push(error),
    });
    try {
      // Resolves once the server accepted the dump request: impossible for this user without TLS.
      await source.start();
    } finally {
      source.stop();
    }
    expect(errors).toEqual([]);
  });
});
