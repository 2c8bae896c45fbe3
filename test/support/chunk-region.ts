import mysql from 'mysql2/promise';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RuntimeOptions } from '../../src/config/compile.js';
import { clientOptions } from '../../src/mysql/connection.js';
import { applyPrepare, planPrepare } from '../../src/prepare/prepare.js';
import { startSandbox, type DatabaseEngine } from '../../src/sandbox/index.js';
import { chunkApplier, type ChunkApplier } from './apply-chunk.js';
import { sandboxRegionOptions } from './config.js';

/** One region without Kafka, its prepared table `app.t`, a pool and a chunk applier on it. */
export interface ChunkRegion {
  options: RuntimeOptions;
  pool: mysql.Pool;
  applier: ChunkApplier;
  stop: () => Promise<void>;
}

/** `app.t`, the table the race tests use. */
const RACE_TABLE = {
  name: 't',
  ddl: 'CREATE TABLE app.t (id INT PRIMARY KEY, val BIGINT NOT NULL DEFAULT 0, note VARCHAR(40))',
};

/**
 * Starts one region of `engine` with `app.t (id INT PRIMARY KEY, val BIGINT,
 * note VARCHAR(40))` (or the given tables of schema `app`) prepared (visible
 * version columns on MySQL 8.0.12), for tests that race applier chunks and
 * local transactions on it. The chunk applier writes the first table.
 */
export async function startChunkRegion(settings: {
  engine: DatabaseEngine;
  region: string;
  dirPrefix: string;
  connectionLimit: number;
  tables?: readonly { name: string; ddl: string }[];
  /** Statements run after `CREATE DATABASE app`, before the tables and prepare. */
  setup?: readonly string[];
}): Promise<ChunkRegion> {
  const tables = settings.tables ?? [RACE_TABLE];
  const { engine, region } = settings;
  const dir = mkdtempSync(join(tmpdir(), settings.dirPrefix));
  const sandbox = await startSandbox({
    regions: [{ name: region, engine }],
    kafka: false,
    redis: false,
  });
  const options = sandboxRegionOptions(sandbox, region, {
    tables: tables.map((t) => `app.${t.name}`),
    stateDir: dir,
  }).options;
  const admin = await mysql.createConnection(clientOptions(options.mysql));
  try {
    await admin.query('CREATE DATABASE app');
    for (const statement of settings.setup ?? []) await admin.query(statement);
    for (const table of tables) await admin.query(table.ddl);
    await applyPrepare(
      admin,
      await planPrepare(admin, options, options.internalSchema, {
        visibleVersionColumns: engine === 'mysql8',
      }),
    );
  } finally {
    await admin.end();
  }
  const pool = mysql.createPool({
    ...clientOptions(options.mysql),
    connectionLimit: settings.connectionLimit,
    multipleStatements: true, // as the apply stage's pool
  });
  const applier = chunkApplier(pool, {
    region,
    internalSchema: options.internalSchema,
    schema: 'app',
    table: (tables[0] as { name: string }).name,
  });
  return {
    options,
    pool,
    applier,
    stop: async () => {
      await pool.end();
      await sandbox.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
