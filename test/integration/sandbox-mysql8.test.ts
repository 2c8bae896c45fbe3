import { jest } from '@jest/globals';
import mysql from 'mysql2/promise';
import { existsSync } from 'node:fs';
import { connectionOptions, startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { sandboxModesUnderTest } from '../support/sandbox-modes.js';

// A fresh machine's first run also fetches MySQL 8 (33 MB) through Maven.
jest.setTimeout(300_000);

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function withConnection<T>(
  sandbox: Sandbox,
  index: number,
  use: (connection: mysql.Connection) => Promise<T>,
): Promise<T> {
  const connection = await mysql.createConnection(connectionOptions(sandbox.mysql[index]!));
  try {
    return await use(connection);
  } finally {
    await connection.end();
  }
}

describe.each(sandboxModesUnderTest())('%s service launcher with a MySQL 8 region', (mode) => {
  let sandbox: Sandbox;

  beforeAll(async () => {
    const t0 = Date.now();
    sandbox = await startSandbox({
      regions: ['maria', { name: 'oracle', engine: 'mysql8' }],
      mode,
      kafka: false,
      redis: false,
      log: (m) => console.log(m),
    });
    console.log(`sandbox (MariaDB + MySQL 8) start took ${Date.now() - t0} ms`);
  });

  afterAll(async () => {
    await sandbox?.stop();
  });

  it('runs a MariaDB and a MySQL 8 region, each endpoint saying which', async () => {
    expect(sandbox.mysql.map((m) => [m.region, m.engine])).toEqual([
      ['maria', 'mariadb'],
      ['oracle', 'mysql8'],
    ]);
    const version = await withConnection(sandbox, 0, async (c) => {
      const [rows] = await c.query<mysql.RowDataPacket[]>('SELECT VERSION() AS v');
      return String(rows[0]?.v);
    });
    expect(version).toContain('MariaDB');
  });

  it('configures MySQL 8 as capture requires: GTIDs on, ROW binlog with full images and metadata', async () => {
    const endpoint = sandbox.mysql[1]!;
    const settings = await withConnection(sandbox, 1, async (c) => {
      const [rows] = await c.query<mysql.RowDataPacket[]>(
        'SELECT VERSION() AS version, @@gtid_mode AS gtidMode, ' +
          '@@enforce_gtid_consistency AS enforce, @@log_bin AS logBin, ' +
          '@@binlog_format AS format, @@binlog_row_image AS image, ' +
          '@@binlog_row_metadata AS metadata, @@server_id AS serverId, ' +
          "(SELECT plugin FROM mysql.user WHERE user = 'root' AND host = 'localhost') AS plugin",
      );
      return rows[0];
    });
    expect(String(settings?.version)).toMatch(/^8\.0\.12/);
    expect(settings).toMatchObject({
      gtidMode: 'ON',
      enforce: 'ON',
      logBin: 1,
      format: 'ROW',
      image: 'FULL',
      metadata: 'FULL',
      serverId: endpoint.serverId,
      plugin: 'caching_sha2_password',
    });
    expect(endpoint.serverId).not.toBe(sandbox.mysql[0]!.serverId);
  });

  it('keeps the data and port of MySQL 8 across kill -9 and restart', async () => {
    const service = sandbox.services.mysql[1]!;
    const port = sandbox.mysql[1]!.port;
    await withConnection(sandbox, 1, async (c) => {
      await c.query('CREATE DATABASE sandbox_mysql8');
      await c.query('CREATE TABLE sandbox_mysql8.t (id INT PRIMARY KEY, doc JSON)');
      await c.query(`INSERT INTO sandbox_mysql8.t VALUES (1, '{"b": 1, "a": [true, null]}')`);
    });
    const [pid] = service.pids();
    await service.kill();
    expect(isAlive(pid!)).toBe(false);

    const t0 = Date.now();
    await service.start();
    console.log(`MySQL 8 restart after kill -9 took ${Date.now() - t0} ms`);
    expect(sandbox.mysql[1]!.port).toBe(port);
    const rows = await withConnection(sandbox, 1, async (c) => {
      const [result] = await c.query<mysql.RowDataPacket[]>(
        'SELECT id, CAST(doc AS CHAR) AS doc FROM sandbox_mysql8.t',
      );
      return result;
    });
    // MySQL stores JSON normalised: keys sorted, one space after each separator.
    expect(rows).toEqual([{ id: 1, doc: '{"a": [true, null], "b": 1}' }]);
  });

  it('leaves no process or scratch directory behind after stop', async () => {
    const pids = sandbox.pids();
    expect(pids.length).toBe(2);
    expect(pids.every(isAlive)).toBe(true);
    await sandbox.stop();
    expect(pids.filter(isAlive)).toEqual([]);
    expect(existsSync(sandbox.dir)).toBe(false);
  });
});
