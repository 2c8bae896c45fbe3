/**
 * The zone executor's answer to an edit request for a row it holds only a
 * tombstone of (src/apply/edit-request.ts), called directly on a real
 * server, MariaDB and MySQL 8.
 *
 * Found by the randomized governed convergence test (seeds 1602 and 1603 in
 * one CI run): us-east edited a DE row it held masked at a version that
 * eu-central had written after an older delete; the executor eu-west had
 * that delete's tombstone but not yet eu-central's re-insert, answered
 * "deleted", and us-east dropped its copy for good while both eu regions
 * kept the row. A delete the request's writer had not seen, and that is
 * older than a write the writer had seen, must not win: the request waits
 * for that write, as for a row not arrived.
 */
import { jest } from '@jest/globals';
import type mysql from 'mysql2/promise';
import { describeApplyTable } from '../../../src/apply/apply-target.js';
import type { ApplyEvent } from '../../../src/apply/apply-event.js';
import type { ChunkContext } from '../../../src/apply/batch-applier.js';
import { applyEditRequest, type EditPublication } from '../../../src/apply/edit-request.js';
import { SchemaSkew } from '../../../src/apply/schema-skew.js';
import type { DatabaseEngine } from '../../../src/sandbox/index.js';
import { rowVersion } from '../../support/apply-chunk.js';
import { startChunkRegion, type ChunkRegion } from '../../support/chunk-region.js';

jest.setTimeout(240_000);

const EXECUTOR = 'ra';
const REQUESTER = 'rm';
const WRITER = 'rb';

describe.each<DatabaseEngine>(['mariadb', 'mysql8'])(
  'the edit executor on a deleted row (%s)',
  (engine) => {
    let region: ChunkRegion;
    let local: mysql.PoolConnection;

    beforeAll(async () => {
      region = await startChunkRegion({
        engine,
        region: EXECUTOR,
        dirPrefix: 'edit-executor-',
        connectionLimit: 3,
      });
      // A plain session: its delete leaves a tombstone, as an application's does.
      local = await region.pool.getConnection();
    });

    afterAll(async () => {
      local?.release();
      await region?.stop();
    });

    /** Inserts and deletes row `id` locally; the tombstone's version is about now. */
    const deleteLocally = async (id: number): Promise<number> => {
      await local.query('INSERT INTO app.t (id, val) VALUES (?, 1)', [id]);
      await local.query('DELETE FROM app.t WHERE id = ?', [id]);
      return Date.now() * 1000;
    };

    /** An edit of `val` by the requester, whose vector holds `seen` (the writes of the row it edited). */
    const editRequest = (id: number, seen: Record<string, number>): ApplyEvent => {
      const hlc = Date.now() * 1000 + 120_000_000;
      return {
        op: 'upsert',
        sourceRegion: REQUESTER,
        db: 'app',
        table: 't',
        pk: { id },
        after: { id, val: 5 },
        image: { id, val: 5 },
        version: rowVersion(REQUESTER, hlc, seen),
        commitTs: 1,
        edit: { executor: EXECUTOR },
      };
    };

    const execute = async (
      event: ApplyEvent,
    ): Promise<{ outcome: string | SchemaSkew; published: EditPublication[] }> => {
      const connection = await region.applier.applierConnection();
      const published: EditPublication[] = [];
      try {
        const table = await describeApplyTable(
          connection,
          'app',
          't',
          region.options.internalSchema,
        );
        const context: ChunkContext = {
          region: EXECUTOR,
          internalSchema: region.options.internalSchema,
          applierId: `${EXECUTOR}/edits-${REQUESTER}`,
          sourceRegion: REQUESTER,
          table: table!,
          strategy: { kind: 'lww' },
          strategyName: 'lww',
          recordConflict: () => false,
        };
        const result = await applyEditRequest(connection, event, context, (p) => {
          published.push(p);
          return Promise.resolve();
        });
        return { outcome: [...result.outcomes.keys()].join(','), published };
      } catch (err) {
        if (err instanceof SchemaSkew) return { outcome: err, published };
        throw err;
      } finally {
        connection.release();
      }
    };

    const rowOf = async (id: number): Promise<unknown[]> => {
      const [rows] = await local.query<mysql.RowDataPacket[]>(
        'SELECT id, CAST(val AS CHAR) AS val FROM app.t WHERE id = ?',
        [id],
      );
      return rows;
    };

    it('waits when the requester saw a write newer than the delete, then edits the row it brings', async () => {
      const deletedAt = await deleteLocally(1);
      // The writer re-inserted the row a minute after the delete, without having seen it.
      const reinsertHlc = deletedAt + 60_000_000;
      const request = editRequest(1, { [WRITER]: reinsertHlc });

      const early = await execute(request);
      expect(early.outcome).toBeInstanceOf(SchemaSkew);
      expect((early.outcome as SchemaSkew).holdReason).toBe('row_missing');
      expect((early.outcome as SchemaSkew).what).toContain(`${WRITER}@${reinsertHlc}`);
      expect(early.published).toEqual([]);

      // The re-insert arrives and beats the delete it had not seen (a conflict it wins);
      // the request, retried, edits that row.
      const arrived = await region.applier.apply(
        [
          {
            op: 'upsert',
            sourceRegion: WRITER,
            db: 'app',
            table: 't',
            pk: { id: 1 },
            after: { id: 1, val: 2 },
            image: { id: 1, val: 2 },
            version: rowVersion(WRITER, reinsertHlc, {}),
            commitTs: 1,
          },
        ],
        WRITER,
      ).result;
      expect([...arrived.outcomes]).toEqual([['conflict_won', 1]]);
      const retried = await execute(request);
      expect(retried.outcome).toBe('applied');
      expect(retried.published.map((p) => p.kind)).toEqual(['row']);
      expect(await rowOf(1)).toEqual([{ id: 1, val: '5' }]);
    });

    it('answers with a notice when every write the requester saw is older than the delete', async () => {
      const deletedAt = await deleteLocally(2);
      const request = editRequest(2, { [WRITER]: deletedAt - 60_000_000 });
      const answer = await execute(request);
      expect(answer.outcome).toBe('stale');
      expect(answer.published.map((p) => p.kind)).toEqual(['notice']);
      const notice = answer.published[0] as Extract<EditPublication, { kind: 'notice' }>;
      expect(notice.regions).toEqual([REQUESTER]);
      expect(notice.change.op).toBe('d');
      expect(notice.change.hlc).toBeGreaterThan(request.version.hlc);
      expect(await rowOf(2)).toEqual([]);
    });
  },
);
