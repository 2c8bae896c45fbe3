import type mysql from 'mysql2/promise';
import { setTimeout as sleep } from 'node:timers/promises';
import { APPLIER_SESSION_STATEMENTS, describeApplyTable } from '../../src/apply/apply-target.js';
import type { ApplyEvent } from '../../src/apply/apply-event.js';
import { applyChunk, type ChunkResult } from '../../src/apply/batch-applier.js';
import { classifyError } from '../../src/core/retriable.js';
import { dialectOf } from '../../src/mysql/dialect.js';
import { serverInfo } from '../../src/mysql/introspect.js';
import type { RowVersion } from '../../src/versioning/version.js';

/**
 * `applyChunk` called directly against a real server, as the apply stage
 * calls it (applier sessions, retries), for tests that force interleavings
 * of applier and local transactions on one table without Kafka.
 */

/** A well-formed version: `vv` plus the origin's own entry. */
export function rowVersion(origin: string, hlc: number, vv: Record<string, number>): RowVersion {
  return { origin, hlc, vv: { ...vv, [origin]: hlc } };
}

/** One chunk being applied: retried after a retriable error or a duplicate key, up to 5 attempts. */
export interface ChunkRun {
  result: Promise<ChunkResult>;
  /** Whether `result` has settled. */
  settled: boolean;
  /** Server thread (connection id) of each attempt, the last one current. */
  threads: number[];
  /** Why each failed attempt failed. */
  failures: { errno: number | undefined; code: string | undefined }[];
}

export interface ChunkApplier {
  /** A pooled connection with the applier's session settings (and its session flag: local triggers skip it). */
  applierConnection: () => Promise<mysql.PoolConnection>;
  apply: (events: readonly ApplyEvent[], sourceRegion: string) => ChunkRun;
}

export function chunkApplier(
  pool: mysql.Pool,
  target: { region: string; internalSchema: string; schema: string; table: string },
): ChunkApplier {
  async function applierConnection(): Promise<mysql.PoolConnection> {
    const connection = await pool.getConnection();
    for (const statement of APPLIER_SESSION_STATEMENTS) await connection.query(statement);
    return connection;
  }

  function apply(events: readonly ApplyEvent[], sourceRegion: string): ChunkRun {
    const run: ChunkRun = {
      result: undefined as unknown as Promise<ChunkResult>,
      settled: false,
      threads: [],
      failures: [],
    };
    run.result = (async () => {
      for (let attempt = 1; ; attempt += 1) {
        const connection = await applierConnection();
        run.threads.push(connection.threadId);
        try {
          const table = await describeApplyTable(
            connection,
            target.schema,
            target.table,
            target.internalSchema,
          );
          return await applyChunk(connection, events, {
            region: target.region,
            internalSchema: target.internalSchema,
            applierId: `${target.region}/test-${sourceRegion}`,
            sourceRegion,
            table: table!,
            strategy: { kind: 'lww' },
            strategyName: 'lww',
            // As the apply stage lists keys on this server.
            valuesList: dialectOf(await serverInfo(connection)).tableValueConstructor,
            recordConflict: () => false,
          });
        } catch (err) {
          const error = classifyError(err, 'applying a chunk');
          const { errno, code } = err as { errno?: number; code?: string };
          run.failures.push({ errno, code });
          if (!(error.retriable || errno === 1062) || attempt >= 5) throw err;
        } finally {
          connection.release();
        }
        await sleep(50);
      }
    })();
    run.result.then(
      () => (run.settled = true),
      () => (run.settled = true),
    );
    return run;
  }

  return { applierConnection, apply };
}
