import { jest } from '@jest/globals';
import mysql from 'mysql2/promise';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RuntimeOptions } from '../../../src/config/compile.js';
import type { ApplyEvent } from '../../../src/apply/apply-event.js';
import type { ChunkResult } from '../../../src/apply/batch-applier.js';
import type { DatabaseEngine } from '../../../src/sandbox/index.js';
import type { RowVersion } from '../../../src/versioning/version.js';
import { rowVersion, type ChunkApplier } from '../../support/apply-chunk.js';
import { startChunkRegion, type ChunkRegion } from '../../support/chunk-region.js';

/**
 * Two applier transactions on the same key at once, as happens when a region
 * applies the partitions of two source regions concurrently (e.g. the backlog
 * of a paused applier): an upsert from one source and a later delete from the
 * other, for a key that is absent locally.
 *
 * It leaves exactly the state the randomized convergence test failed with
 * once in CI (seed 1001: ra, whose applier was paused, kept rc's last write
 * to a row that rb and rc had deleted). The interleaving is forced with a
 * third transaction holding the key's tombstone lock, so it is deterministic:
 *
 *   holder: lock the tombstone of key 2
 *   P1 (upsert U from rc): reads the row (absent), waits on the tombstone
 *   P2 (delete D from rb, D > U): reads the row (absent), waits on the tombstone
 *   holder commits; P1 inserts the row U and commits; P2 sees the old
 *   tombstone, D wins, and it writes tombstone D without deleting the row
 *   that P1 inserted after P2 read "absent" (READ COMMITTED takes no gap lock).
 *
 * The join of {T0, U, D} is D: the key must end deleted, as it does in every
 * region that applied U and D one after the other.
 */
jest.setTimeout(180_000);

const REGION = 'ra';
const TABLE = 'app.t';

function event(
  op: 'upsert' | 'delete',
  source: string,
  id: number,
  v: RowVersion,
  note?: string,
): ApplyEvent {
  const after = op === 'upsert' ? { id, val: 1, note: note ?? null } : null;
  return {
    op,
    sourceRegion: source,
    db: 'app',
    table: 't',
    pk: { id },
    after,
    image: after,
    version: v,
    commitTs: Math.floor(v.hlc / 1000),
  };
}

describe.each<DatabaseEngine>(['mariadb', 'mysql8'])(
  'concurrent applier transactions on one absent key (%s)',
  (engine) => {
    let region: ChunkRegion | undefined;
    let options: RuntimeOptions;
    let pool: mysql.Pool;
    let applierConnection: ChunkApplier['applierConnection'];
    let applyRun: ChunkApplier['apply'];

    beforeAll(async () => {
      region = await startChunkRegion({
        engine,
        region: REGION,
        dirPrefix: 'cdc-concurrent-chunks-',
        connectionLimit: 4,
      });
      ({ options, pool } = region);
      ({ applierConnection, apply: applyRun } = region.applier);
    });

    afterAll(async () => {
      await region?.stop();
    });

    /** One chunk as the apply stage runs it: retried after a retriable error, a deadlock or a duplicate key. */
    function apply(events: ApplyEvent[], source: string): Promise<ChunkResult> {
      return applyRun(events, source).result;
    }

    /**
     * Applier transactions waiting in their read of the tombstones (either
     * form: by hash, or joined to the keys). (MariaDB
     * waits there while optimising, in state `Statistics`, and does not list
     * the wait in INNODB_TRX: the process list shows it on both servers.)
     */
    async function lockWaits(): Promise<number> {
      const [rows] = await pool.query<mysql.RowDataPacket[]>(
        `SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST
          WHERE COMMAND = 'Query' AND INFO LIKE '%ver AS CHAR)%_cdc_tombstones%FOR UPDATE%'`,
      );
      return Number(rows[0]?.n ?? 0);
    }

    /** Until `n` transactions wait for a lock; fails at once if one of `running` ended instead. */
    async function untilLockWaits(n: number, running: Promise<unknown>[]): Promise<void> {
      let ended: Error | undefined;
      for (const p of running)
        p.then(
          () => (ended ??= new Error('an applier transaction finished without waiting')),
          (err: unknown) => (ended ??= err instanceof Error ? err : new Error(String(err))),
        );
      const deadline = Date.now() + 20_000;
      while ((await lockWaits()) < n) {
        if (ended !== undefined) throw ended;
        if (Date.now() > deadline) {
          throw new Error(`${n} lock waits never seen`);
        }
        await sleep(20);
      }
    }

    // Fixed by applyChunk's re-check of keys it read as absent (recheckAbsentKeys).
    it('a delete that wins still removes a row another applier inserted after it read the key', async () => {
      const base = Date.now() * 1000;
      const t0 = rowVersion('rb', base, {});
      const u = rowVersion('rc', base + 10, { rb: base });
      // D follows U (rb deleted the row after applying U): it wins everywhere.
      const d = rowVersion('rb', base + 20, { rc: base + 10 });

      // Key 2 was deleted before: a tombstone T0, no row.
      await apply([event('delete', 'rb', 2, t0)], 'rb');

      const holder = await applierConnection();
      let p1: Promise<ChunkResult> | undefined;
      let p2: Promise<ChunkResult> | undefined;
      try {
        await holder.beginTransaction();
        await holder.query(
          `SELECT ver FROM ${options.internalSchema}._cdc_tombstones WHERE tbl = ? FOR UPDATE`,
          [TABLE],
        );
        p1 = apply([event('upsert', 'rc', 2, u, 'rcw4-inc57')], 'rc');
        await untilLockWaits(1, [p1]);
        // Its statement is listed before its lock is requested: give it time to queue first.
        await sleep(500);
        p2 = apply([event('delete', 'rb', 2, d)], 'rb');
        await untilLockWaits(2, [p1, p2]);
        await sleep(500);
        await holder.commit();
        await Promise.all([p1, p2]);
      } finally {
        await holder.rollback().catch(() => undefined);
        holder.release();
        await Promise.allSettled([p1, p2]);
      }

      const [rows] = await pool.query<mysql.RowDataPacket[]>('SELECT id, note FROM app.t');
      const [tombs] = await pool.query<mysql.RowDataPacket[]>(
        `SELECT hlc FROM ${options.internalSchema}._cdc_tombstones WHERE tbl = ?`,
        [TABLE],
      );
      expect({
        rows: rows.map((r) => ({ ...r })),
        tombstoneHlc: tombs.map((t) => Number(t.hlc)),
      }).toEqual({ rows: [], tombstoneHlc: [d.hlc] });
    });
  },
);
