import mysql from 'mysql2/promise';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RuntimeOptions } from '../../src/config/compile.js';
import type { ValidatedConfig } from '../../src/config/schema.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { connectMysql } from '../../src/mysql/connection.js';
import { applyPrepare, planPrepare } from '../../src/prepare/prepare.js';
import { startSandbox, type DatabaseEngine, type Sandbox } from '../../src/sandbox/index.js';
import { sandboxConfigYaml, sandboxRegionOptions, type SandboxConfigOptions } from './config.js';
import { testLogger } from './logger.js';

/** A sandbox with one prepared database per region and a daemon per region, in this process. */
export interface Cluster {
  sandbox: Sandbox;
  regions: string[];
  config: ValidatedConfig;
  yaml: string;
  options: Map<string, RuntimeOptions>;
  daemons: Map<string, Daemon>;
  /** A plain client connection to a region's database (UTC, exact types). */
  db(region: string): Promise<mysql.Connection>;
  startDaemon(region: string): Promise<Daemon>;
  stopDaemon(region: string): Promise<void>;
  stop(): Promise<void>;
}

export interface ClusterOptions extends SandboxConfigOptions {
  regions: string[];
  /** The server of each region; a region not named runs MariaDB. */
  engines?: Readonly<Record<string, DatabaseEngine>>;
  /** DDL run in every region before prepare (schemas and tables). */
  ddl: string[];
  /** Start daemons right away. Default true. */
  startDaemons?: boolean;
  /**
   * Keep the sandbox's scratch directory (servers' data, binlogs and logs)
   * after stop: a boolean, or a function asked when the cluster stops (e.g.
   * "did a test fail?"). Default false.
   */
  keepDir?: boolean | (() => boolean);
}

export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const keepDir = options.keepDir;
  const sandbox = await startSandbox({
    regions: options.regions.map((name) => ({
      name,
      engine: options.engines?.[name] ?? 'mariadb',
    })),
    redis: true,
    // The launchers read it when the sandbox stops, so a function can decide then.
    get keepDir() {
      return typeof keepDir === 'function' ? keepDir() : keepDir === true;
    },
    log: (message) => {
      if (message.startsWith('sandbox files kept')) console.error(message);
    },
  });
  const connections: mysql.Connection[] = [];
  const daemons = new Map<string, Daemon>();
  const runtime = new Map<string, RuntimeOptions>();
  let config: ValidatedConfig | undefined;
  try {
    for (const region of options.regions) {
      const compiled = sandboxRegionOptions(sandbox, region, options);
      config = compiled.config;
      runtime.set(region, compiled.options);
      const admin = await connectMysql(compiled.options.mysql);
      for (const statement of options.ddl) await admin.query(statement);
      // MySQL 8.0.12 has no INVISIBLE columns: its version columns are visible ones.
      await applyPrepare(
        admin,
        await planPrepare(admin, compiled.options, compiled.options.internalSchema, {
          visibleVersionColumns: true,
        }),
      );
      await admin.end();
    }
  } catch (err) {
    await sandbox.stop();
    throw err;
  }
  const cluster: Cluster = {
    sandbox,
    regions: options.regions,
    config: config as ValidatedConfig,
    yaml: sandboxConfigYaml(sandbox, options),
    options: runtime,
    daemons,
    async db(region) {
      const o = runtime.get(region) as RuntimeOptions;
      const connection = await mysql.createConnection({
        host: o.mysql.host,
        port: o.mysql.port,
        user: o.mysql.user,
        password: o.mysql.password.reveal(),
        dateStrings: true,
        timezone: 'Z',
        supportBigNumbers: true,
        bigNumberStrings: true,
        jsonStrings: true,
        charset: 'utf8mb4_general_ci',
      });
      await connection.query("SET time_zone = '+00:00'");
      connections.push(connection);
      return connection;
    },
    async startDaemon(region) {
      const daemon = new Daemon({
        options: runtime.get(region) as RuntimeOptions,
        logger: testLogger(region),
      });
      await daemon.start();
      daemons.set(region, daemon);
      return daemon;
    },
    async stopDaemon(region) {
      await daemons.get(region)?.stop();
      daemons.delete(region);
    },
    async stop() {
      const results = await Promise.allSettled([...daemons.values()].map((d) => d.stop()));
      for (const r of results)
        if (r.status === 'rejected')
          console.error('daemon stop failed:', (r.reason as Error).message);
      await Promise.allSettled(connections.map((c) => c.end())); // ending twice is harmless
      await sandbox.stop();
    },
  };
  if (options.startDaemons ?? true) {
    try {
      for (const region of options.regions) await cluster.startDaemon(region);
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }
  return cluster;
}

/** Polls until `check` returns true, or fails with `describe()` after the timeout. */
export async function waitFor(
  check: () => Promise<boolean>,
  timeoutMs: number,
  describe: () => Promise<string> | string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline)
      throw new Error(`condition not met within ${timeoutMs} ms: ${await describe()}`);
    await sleep(200);
  }
}

/**
 * The data of a table, ordered by primary key, as comparable text: every
 * column but the version columns (visible ones on MySQL 8.0.12), in the
 * table's order.
 */
export async function tableContent(
  connection: mysql.Connection,
  table: string,
  orderBy = 'id',
): Promise<string> {
  const [schema, name] = table.split('.');
  const [columns] = await connection.query<mysql.RowDataPacket[]>(
    `SELECT COLUMN_NAME AS c FROM information_schema.COLUMNS
      WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME NOT IN ('_cdc_ts', '_cdc_ver')
        AND EXTRA NOT LIKE '%INVISIBLE%'
      ORDER BY ORDINAL_POSITION`,
    [schema, name],
  );
  // No columns: the table is not there (yet), and SELECT * says so as before.
  const list = columns.length === 0 ? '*' : columns.map((r) => `\`${String(r.c)}\``).join(', ');
  const [rows] = await connection.query(`SELECT ${list} FROM ${table} ORDER BY ${orderBy}`);
  return JSON.stringify(rows);
}
