import mysql from 'mysql2/promise';
import { setTimeout as sleep } from 'node:timers/promises';
import { compileRegion, type RuntimeOptions } from '../../../src/config/compile.js';
import { parseConfig } from '../../../src/config/load.js';
import { Daemon } from '../../../src/daemon/daemon.js';
import type { Sandbox } from '../../../src/sandbox/index.js';
import { createCheckpointStore } from '../../../src/state/index.js';
import { sandboxConfigYaml } from '../../support/config.js';
import { testLogger } from '../../support/logger.js';

/**
 * Helpers shared by the snapshot, bootstrap and verify tests: one sandbox,
 * many isolated "deployments" in it (own schema, topic prefix and Redis key
 * prefix), so tests never see each other's checkpoints or topics.
 */

export interface Deployment {
  yaml: string;
  options: (region: string) => RuntimeOptions;
}

export function deployment(
  sandbox: Sandbox,
  regions: readonly string[],
  tables: readonly string[],
  name: string,
): Deployment {
  const view = { ...sandbox, mysql: sandbox.mysql.filter((m) => regions.includes(m.region)) };
  const base = sandboxConfigYaml(view, { tables, topicPrefix: name });
  const url = sandbox.redis?.url ?? '';
  // Own Redis namespace: capture checkpoints of earlier tests must not be resumed.
  const yaml = base.replace(
    `redis: { url: "${url}" }`,
    `redis: { url: "${url}", keyPrefix: ${name} }`,
  );
  if (yaml === base)
    throw new Error('could not set the Redis key prefix of the test configuration');
  const config = parseConfig(yaml, { env: {} });
  return { yaml, options: (region) => compileRegion(config, region) };
}

export async function startDaemon(options: RuntimeOptions): Promise<Daemon> {
  const daemon = new Daemon({ options, logger: testLogger(options.region) });
  await daemon.start();
  return daemon;
}

/** A client connection as an application opens one (UTC, exact types, several statements per call). */
export async function connect(options: RuntimeOptions): Promise<mysql.Connection> {
  const connection = await mysql.createConnection({
    host: options.mysql.host,
    port: options.mysql.port,
    user: options.mysql.user,
    password: options.mysql.password.reveal(),
    dateStrings: true,
    timezone: 'Z',
    supportBigNumbers: true,
    bigNumberStrings: true,
    multipleStatements: true,
  });
  await connection.query("SET time_zone = '+00:00'");
  return connection;
}

/**
 * Inserts rows `from..to` with multi-row INSERTs, without binlog and without
 * the replicator's triggers: the fast path for seeding a big table that
 * exists before replication starts.
 */
export async function seedRows(
  connection: mysql.Connection,
  table: string,
  from: number,
  to: number,
  row: (id: number) => string,
): Promise<void> {
  await connection.query('SET SESSION sql_log_bin = 0, @cdc_applier = 1');
  try {
    for (let start = from; start <= to; start += 5_000) {
      const ids: string[] = [];
      for (let id = start; id <= Math.min(to, start + 4_999); id += 1) ids.push(row(id));
      await connection.query(`INSERT INTO ${table} VALUES ${ids.join(', ')}`);
    }
  } finally {
    await connection.query('SET SESSION sql_log_bin = 1, @cdc_applier = NULL');
  }
}

/** Count and an order-independent checksum of a table's visible content. */
export async function fingerprint(
  connection: mysql.Connection,
  table: string,
  columns: readonly string[],
): Promise<string> {
  const [rows] = await connection.query<mysql.RowDataPacket[]>(
    `SELECT COUNT(*) AS n, COALESCE(SUM(CRC32(CONCAT_WS('|', ${columns.join(', ')}))), 0) AS s FROM ${table}`,
  );
  return `${String(rows[0]?.n)}/${String(rows[0]?.s)}`;
}

/** Waits until every connection shows the same fingerprint; fails with the last ones seen. */
export async function waitForSameContent(
  connections: ReadonlyMap<string, mysql.Connection>,
  table: string,
  columns: readonly string[],
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const prints = await Promise.all(
      [...connections].map(
        async ([region, c]) => `${region}=${await fingerprint(c, table, columns)}`,
      ),
    );
    const values = new Set(prints.map((p) => p.split('=')[1]));
    if (values.size === 1) return;
    last = prints.join(' ');
    if (Date.now() > deadline)
      throw new Error(`${table} did not converge within ${timeoutMs} ms: ${last}`);
    await sleep(500);
  }
}

/** Full visible content ordered by key, as comparable text. */
export async function content(connection: mysql.Connection, table: string): Promise<string> {
  const [rows] = await connection.query(`SELECT * FROM ${table} ORDER BY id`);
  return JSON.stringify(rows);
}

/** The saved position text of a checkpoint key in a region's store. */
export async function loadCheckpointText(
  options: RuntimeOptions,
  key: string,
): Promise<string | undefined> {
  const store = await createCheckpointStore(options.checkpointStore);
  try {
    return (await store.load(key))?.position;
  } finally {
    await store.close();
  }
}
