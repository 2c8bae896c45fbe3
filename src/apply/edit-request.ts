/**
 * Executing edit requests (docs/GOVERNANCE.md, "Edits in a masked
 * region"). A region that holds a row only masked may change its unmasked
 * columns; published as data, its masked values would replace the
 * originals, so its capture sends an edit request (the key, the changed
 * columns, its version `v_m`) on the row's zone topic instead. The zone's
 * executor (its first region in configuration order) joins it here, under
 * the row lock:
 *
 * - the row is here and older than `v_m`: the request's columns are
 *   written into it at a new version above both (origin here, causally
 *   after both), and that version is published through the governed path,
 *   so every region takes it: the plain ones with the originals and the
 *   edit, the masked ones (the requester too: it is above its `v_m`) masked;
 * - this region has already seen the edit (its vector holds the requester
 *   at `v_m` or later): the current row is published again (a crash between
 *   the commit and the send lost nothing; a join is idempotent);
 * - the row here is newer than `v_m`: it wins by last-writer-wins and
 *   reaches the requester anyway, so nothing is written;
 * - the row was deleted here (a tombstone): the delete wins, and the
 *   requester gets a notice above `v_m`, so it drops its copy too; unless
 *   the requester's vector holds a write this delete has not seen and that
 *   is newer than it (a re-insert still on its way here): that write will
 *   bring the row back here, so the request waits for it, as for a row not
 *   arrived (a notice would have deleted the requester's copy for good,
 *   while every plain region kept the row);
 * - neither: the row has not arrived yet, and the request waits (held like
 *   an early event).
 *
 * Whole-row last-writer-wins stays the only rule: an edit is one more
 * write of the executor, and every region converges on the newest version.
 */
import type { ChangeEvent, RowImage } from '../bus/envelope.js';
import { ENVELOPE_VERSION } from '../bus/envelope.js';
import { qualifiedName, quoteId } from '../mysql/identifiers.js';
import { VERSION_COLUMNS } from '../mysql/internal-tables.js';
import {
  columnTypesOf,
  decodeRows,
  keysSelect,
  readTombstones,
  tableShape,
} from '../snapshot/rows.js';
import { microsToMysqlTimestamp } from '../versioning/hlc.js';
import {
  compareVersions,
  encodeStoredVersion,
  mergeVectors,
  vectorEntry,
} from '../versioning/version.js';
import type { RowVersion } from '../versioning/version.js';
import type { ApplyOutcome } from '../versioning/resolve.js';
import type mysql from 'mysql2/promise';
import type { ApplyEvent } from './apply-event.js';
import { applyMarkerSql, toParam, type ChunkContext, type ChunkResult } from './batch-applier.js';
import { SchemaSkew } from './schema-skew.js';

/** What an executed request publishes, through the governed path of this region. */
export type EditPublication =
  /** The row as it now stands here, at `change`'s version. */
  | { kind: 'row'; change: ChangeEvent }
  /** The row is deleted here: a notice above the request's version for the requester. */
  | { kind: 'notice'; change: ChangeEvent; regions: readonly string[] };

/**
 * Applies one edit request `event` (its `after` is the key and the changed
 * columns) in a transaction of its own, then hands what must be published
 * to `publish` (after the commit; a failure there fails the whole, and the
 * retry finds the edit seen and publishes the row again).
 */
export async function applyEditRequest(
  connection: mysql.PoolConnection,
  event: ApplyEvent,
  context: ChunkContext,
  publish: (publication: EditPublication) => Promise<void>,
  nowMicros: () => number = () => Date.now() * 1000,
): Promise<ChunkResult> {
  const { table } = context;
  const name = `${table.schema}.${table.table}`;
  const shape = tableShape(table, `region ${context.region}`);
  const key = shape.keyColumns.map((c) => event.pk[c.name] ?? null);
  const requester = event.version.origin;
  const types = columnTypesOf(shape);
  const change = (image: RowImage | null, version: RowVersion): ChangeEvent => ({
    v: ENVELOPE_VERSION,
    op: image === null ? 'd' : 'u',
    region: context.region,
    db: table.schema,
    table: table.table,
    pk: event.pk,
    before: null,
    after: image,
    hlc: version.hlc,
    origin: version.origin,
    vv: version.vv,
    gtid: null,
    commitTs: Date.now(),
    types,
  });
  /** A version of this region above `v_m` and `local`, causally after both. */
  const above = (local: RowVersion): RowVersion => {
    const hlc = Math.max(nowMicros(), event.version.hlc + 1, local.hlc + 1);
    return {
      origin: context.region,
      hlc,
      vv: mergeVectors(mergeVectors(local.vv, event.version.vv), { [context.region]: hlc }),
    };
  };
  const result = (outcome: ApplyOutcome): ChunkResult => ({
    outcomes: new Map([[outcome, 1]]),
    conflicts: [],
  });

  let publication: EditPublication | undefined;
  let outcome: ApplyOutcome;
  await connection.query('START TRANSACTION');
  try {
    // The marker keeps this transaction out of capture's stream: the edit is published below.
    await connection.query(applyMarkerSql(context));
    const select = keysSelect(shape, [key]);
    const [rows] = await connection.query<mysql.RowDataPacket[]>(
      `${select.sql} FOR UPDATE`,
      select.params,
    );
    const current = decodeRows(shape, rows, context.region)[0];
    if (current === undefined) {
      const tombstone = (await readTombstones(connection, shape, context.internalSchema, [key]))
        .values()
        .next().value;
      if (tombstone === undefined)
        throw new SchemaSkew(
          'row_missing',
          `row of ${name} not here yet: an edit request of ${requester} waits for it`,
        );
      const unseen = newerUnseenWrite(tombstone, event.version);
      if (unseen !== undefined)
        throw new SchemaSkew(
          'row_missing',
          `row of ${name} deleted here, but an edit request of ${requester} saw a newer write of it (${unseen}) not here yet: the request waits for it`,
        );
      // Deleted here: the delete wins; the requester learns it at a version above its edit.
      publication = {
        kind: 'notice',
        change: change(null, above(tombstone)),
        regions: [requester],
      };
      outcome = 'stale';
    } else if (current.version === null) {
      throw new Error(
        `the stored version of a row of ${name} cannot be read: ${current.versionError ?? ''}`,
      );
    } else if (vectorEntry(current.version.vv, requester) >= event.version.hlc) {
      // Seen (executed before a crash, or superseded): publish the row as it stands.
      publication = { kind: 'row', change: change(current.image, current.version) };
      outcome = 'stale';
    } else if (compareVersions(current.version, event.version) > 0) {
      // A newer write here wins and reaches the requester by itself.
      outcome = 'conflict_lost';
    } else {
      const version = above(current.version);
      const columns = shape.dataColumns.filter(
        (c) => Object.hasOwn(event.after ?? {}, c.name) && !Object.hasOwn(event.pk, c.name),
      );
      const set = columns.map((c) => `${quoteId(c.name)} = ?`);
      await connection.query(
        `UPDATE ${qualifiedName(table.schema, table.table)}
            SET ${[...set, `${quoteId(VERSION_COLUMNS.ts)} = ?`, `${quoteId(VERSION_COLUMNS.ver)} = ?`].join(', ')}
          WHERE ${shape.keyColumns.map((c) => `${quoteId(c.name)} = ?`).join(' AND ')}`,
        [
          ...columns.map((c) => toParam(c, event.after?.[c.name])),
          microsToMysqlTimestamp(version.hlc),
          encodeStoredVersion(version),
          ...select.params,
        ],
      );
      const image: RowImage = { ...current.image };
      for (const c of columns) image[c.name] = event.after?.[c.name] ?? null;
      publication = { kind: 'row', change: change(image, version) };
      outcome = 'applied';
    }
    await connection.query(context.rollback === true ? 'ROLLBACK' : 'COMMIT');
  } catch (err) {
    await connection.query('ROLLBACK').catch(() => undefined); // the statement's error is the one to report
    throw err;
  }
  if (publication !== undefined && context.rollback !== true) await publish(publication);
  return result(outcome);
}

/**
 * A write in the edit request's vector that the local tombstone has not
 * seen and that beats it by last-writer-wins (described as `region@hlc`),
 * or undefined. The requester's own entry is its edit, not a write of the
 * row it edited. Such a write is on its way here and will replace the
 * delete (a re-insert) or its tombstone (a later delete).
 */
function newerUnseenWrite(tombstone: RowVersion, request: RowVersion): string | undefined {
  for (const [region, hlc] of Object.entries(request.vv)) {
    if (region === request.origin || hlc <= vectorEntry(tombstone.vv, region)) continue;
    if (compareVersions({ origin: region, hlc, vv: {} }, tombstone) > 0) return `${region}@${hlc}`;
  }
  return undefined;
}
