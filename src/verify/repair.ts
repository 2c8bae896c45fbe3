import type { Producer } from 'kafkajs';
import type mysql from 'mysql2/promise';
import {
  ENVELOPE_VERSION,
  encodeEvent,
  messageKey,
  topicName,
  type ChangeEvent,
} from '../bus/envelope.js';
import type { RuntimeOptions } from '../config/compile.js';
import type { MysqlConnection } from '../mysql/connection.js';
import { qualifiedName, quoteId } from '../mysql/identifiers.js';
import {
  APPLIER_SESSION_FLAG,
  INTERNAL_TABLES,
  VERSION_COLUMNS,
} from '../mysql/internal-tables.js';
import { canonicalKeyPart } from '../prepare/ddl.js';
import { keysSelect, keyParam, decodeRows, type TableShape } from '../snapshot/rows.js';
import { microsToMysqlTimestamp } from '../versioning/hlc.js';
import {
  compareVersions,
  decodeStoredVersion,
  encodeStoredVersion,
  vectorsEqual,
  type RowVersion,
} from '../versioning/version.js';
import { repairVersion, type Divergence, type RegionState } from './diff.js';

/**
 * `verify --repair`: makes divergent rows converge through the normal apply
 * path, never by writing other regions' rows directly.
 *
 * - `behind`: the winner's row (or delete) is published again, with the
 *   version it has, on the winner's topic. Regions that lack it apply it;
 *   regions that have it find it stale. If the row changed meanwhile, the
 *   republished version is simply older than the new one and loses.
 * - `equal-version`: republishing cannot help (every region would find the
 *   incoming version equal to its own and keep its data). So the winner
 *   makes a new write of its own data: a version above every state seen and
 *   causally after all of them ({@link repairVersion}), stored on its row
 *   (or tombstone) in a transaction marked as the applier's (capture drops
 *   it, the triggers skip it), and published on its topic. Every region,
 *   the winner included, then holds the same data with the same version.
 *   The write only happens if the winner's row still is what verify saw.
 */

export type RepairOutcome =
  | { table: string; pk: Divergence['pk']; action: 'republished' | 'rewritten'; region: string }
  | { table: string; pk: Divergence['pk']; action: 'skipped'; reason: string };

const REPAIR_APPLIER_ID = 'verify-repair';

/** The event that carries the winner's state. */
export function repairEvent(
  shape: TableShape,
  d: Pick<Divergence, 'pk'>,
  winner: RegionState,
  version: RowVersion,
  nowMs: number,
): ChangeEvent {
  return {
    v: ENVELOPE_VERSION,
    op: winner.image === null ? 'd' : 'r',
    region: winner.region,
    db: shape.schema,
    table: shape.table,
    pk: d.pk,
    before: null,
    after: winner.image,
    hlc: version.hlc,
    origin: version.origin,
    vv: version.vv,
    gtid: null,
    commitTs: nowMs,
  };
}

function sameVersion(a: RowVersion | null, b: RowVersion | null): boolean {
  if (a === null || b === null) return a === b;
  return compareVersions(a, b) === 0 && vectorsEqual(a.vv, b.vv);
}

/**
 * Stores `version` on the winner's row or tombstone, if it still holds the
 * state verify judged, in an applier-marked transaction. Returns whether it
 * did (false: the row changed since, and that newer write spreads by itself).
 */
export async function rewriteWinnerVersion(
  connection: MysqlConnection,
  options: RuntimeOptions,
  shape: TableShape,
  winner: RegionState,
  key: Divergence['key'],
  version: RowVersion,
): Promise<boolean> {
  const internal = options.internalSchema;
  await connection.query(
    `SET SESSION time_zone = '+00:00', ${APPLIER_SESSION_FLAG} = 1, foreign_key_checks = 0`,
  );
  await connection.beginTransaction();
  try {
    // The marker first: capture drops this transaction (it is not new data).
    await connection.query(
      `INSERT INTO ${qualifiedName(internal, INTERNAL_TABLES.applyMarker)} (applier, source_region, batches)
       VALUES (?, ?, 1) ON DUPLICATE KEY UPDATE batches = batches + 1`,
      [REPAIR_APPLIER_ID, options.region],
    );
    const select = keysSelect(shape, [key]);
    const [rows] = await connection.query<mysql.RowDataPacket[]>(
      `${select.sql} FOR UPDATE`,
      select.params,
    );
    const current = decodeRows(shape, rows, options.region)[0];
    const toParam = keyParam(shape);
    const keyParams = key.map((value, i) => toParam(i, value));
    let changed: number;
    if (winner.image !== null) {
      if (
        current === undefined ||
        JSON.stringify(current.image) !== JSON.stringify(winner.image) ||
        !sameVersion(current.version, winner.version)
      ) {
        await connection.rollback();
        return false;
      }
      const [result] = await connection.query<mysql.ResultSetHeader>(
        `UPDATE ${qualifiedName(shape.schema, shape.table)}
            SET ${quoteId(VERSION_COLUMNS.ts)} = ?, ${quoteId(VERSION_COLUMNS.ver)} = ?
          WHERE ${shape.keyColumns.map((c) => `${quoteId(c.name)} = ?`).join(' AND ')}`,
        [microsToMysqlTimestamp(version.hlc), encodeStoredVersion(version), ...keyParams],
      );
      changed = result.affectedRows;
    } else {
      const hash = `UNHEX(SHA2(JSON_ARRAY(${shape.keyColumns.map((c) => canonicalKeyPart(c, '?')).join(', ')}), 256))`;
      const tombstones = qualifiedName(internal, INTERNAL_TABLES.tombstones);
      const [tombs] = await connection.query<mysql.RowDataPacket[]>(
        `SELECT CAST(ver AS CHAR) AS ver FROM ${tombstones} WHERE tbl = ? AND pk_hash = ${hash} FOR UPDATE`,
        [shape.name, ...keyParams],
      );
      const stored = tombs[0] === undefined ? null : decodeStoredVersion(String(tombs[0].ver));
      if (current !== undefined || !sameVersion(stored, winner.version)) {
        await connection.rollback();
        return false;
      }
      const [result] = await connection.query<mysql.ResultSetHeader>(
        `UPDATE ${tombstones} SET ver = ?, hlc = ? WHERE tbl = ? AND pk_hash = ${hash}`,
        [encodeStoredVersion(version), version.hlc, shape.name, ...keyParams],
      );
      changed = result.affectedRows;
    }
    await connection.commit();
    return changed === 1;
  } catch (err) {
    await connection.rollback().catch(() => undefined); // the statement's error is the one to report
    throw err;
  } finally {
    await connection.query(`SET SESSION ${APPLIER_SESSION_FLAG} = NULL`).catch(() => undefined);
  }
}

/** Repairs one divergence (see the module comment). */
export async function repairDivergence(
  d: Divergence,
  shape: TableShape,
  regionOptions: ReadonlyMap<string, RuntimeOptions>,
  connections: ReadonlyMap<string, MysqlConnection>,
  producerOf: (region: string) => Promise<Producer>,
  now: () => number = Date.now,
): Promise<RepairOutcome> {
  const base = { table: d.table, pk: d.pk };
  const winner = d.states.find((s) => s.region === d.winner);
  if (d.kind === 'unversioned' || winner === undefined || winner.version === null) {
    return { ...base, action: 'skipped', reason: 'no readable version to repair with' };
  }
  const options = regionOptions.get(winner.region) as RuntimeOptions;
  let version = winner.version;
  let action: 'republished' | 'rewritten' = 'republished';
  if (d.kind === 'equal-version') {
    version = repairVersion(d, now() * 1000);
    const connection = connections.get(winner.region) as MysqlConnection;
    const done = await rewriteWinnerVersion(connection, options, shape, winner, d.key, version);
    if (!done) {
      return {
        ...base,
        action: 'skipped',
        reason: `the row changed in ${winner.region} since it was read; that newer write spreads by itself (verify again)`,
      };
    }
    action = 'rewritten';
  }
  const event = repairEvent(shape, d, winner, version, now());
  const producer = await producerOf(winner.region);
  await producer.send({
    topic: topicName(options.kafka.topicPrefix, winner.region, shape.schema, shape.table),
    acks: -1,
    messages: [{ key: messageKey(shape.schema, shape.table, d.pk), value: encodeEvent(event) }],
  });
  return { ...base, action, region: winner.region };
}
