import type { JsonScalar } from '../bus/envelope.js';
import { CdcError } from '../core/errors.js';
import type { KeyValues } from './key-range.js';

/**
 * Where a table's snapshot stands, saved in the region's checkpoint store
 * under {@link snapshotCheckpointKey} once Kafka has acknowledged every row up
 * to `after`. A crash replays at most the chunks published since the last
 * save; replays are harmless because applying is a join (DESIGN.md §2).
 */
export interface SnapshotState {
  /** Primary-key columns the boundary refers to; a changed key invalidates the checkpoint. */
  keyColumns: string[];
  /** The last key published and acknowledged, or null before the first chunk. */
  after: KeyValues | null;
  /** Rows published so far in this run of the snapshot (resumes included). */
  rows: number;
  /** Whether the last chunk was published: the next invocation starts over. */
  done: boolean;
  /** When this snapshot (not this process) started, ms since the epoch. */
  startedAtMs: number;
}

const FORMAT = 1;

/** `snapshot/<db>.<table>` in the region's namespace of the checkpoint store. */
export function snapshotCheckpointKey(db: string, table: string): string {
  return `snapshot/${db}.${table}`;
}

/** The checkpoint store's opaque `position` text for a state. */
export function encodeSnapshotState(state: SnapshotState): string {
  return JSON.stringify({ format: FORMAT, ...state });
}

function isScalar(value: unknown): value is JsonScalar {
  return value === null || ['string', 'number', 'boolean'].includes(typeof value);
}

/** Parses a saved position; anything else is a non-retriable error naming the key. */
export function decodeSnapshotState(text: string, key: string): SnapshotState {
  const bad = (why: string): CdcError =>
    new CdcError(`snapshot checkpoint ${key} is not usable (${why}); start over with --restart`, {
      code: 'SNAPSHOT_CHECKPOINT_INVALID',
    });
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw bad('not JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('not an object');
  const r = raw as Record<string, unknown>;
  if (r.format !== FORMAT) throw bad(`unknown format ${String(r.format)}`);
  if (!Array.isArray(r.keyColumns) || !r.keyColumns.every((c) => typeof c === 'string'))
    throw bad('keyColumns is not a list of names');
  if (r.after !== null && (!Array.isArray(r.after) || !r.after.every(isScalar)))
    throw bad('after is not a key');
  if (Array.isArray(r.after) && r.after.length !== r.keyColumns.length)
    throw bad('after does not match keyColumns');
  if (typeof r.rows !== 'number' || !Number.isSafeInteger(r.rows) || r.rows < 0)
    throw bad('rows is not a count');
  if (typeof r.done !== 'boolean') throw bad('done is not a boolean');
  if (typeof r.startedAtMs !== 'number') throw bad('startedAtMs is not a number');
  return {
    keyColumns: r.keyColumns,
    after: r.after,
    rows: r.rows,
    done: r.done,
    startedAtMs: r.startedAtMs,
  };
}

/** What the next run does with a saved state: resume it, or start over (and why). */
export function planStart(
  saved: SnapshotState | undefined,
  keyColumns: readonly string[],
  restart: boolean,
  nowMs: number,
): { state: SnapshotState; resumed: boolean; reason: string } {
  const fresh: SnapshotState = {
    keyColumns: [...keyColumns],
    after: null,
    rows: 0,
    done: false,
    startedAtMs: nowMs,
  };
  if (saved === undefined) return { state: fresh, resumed: false, reason: 'no earlier snapshot' };
  if (restart) return { state: fresh, resumed: false, reason: '--restart' };
  if (saved.done)
    return { state: fresh, resumed: false, reason: 'the previous snapshot had completed' };
  if (saved.keyColumns.join('\u0000') !== keyColumns.join('\u0000')) {
    throw new CdcError(
      `the unfinished snapshot was taken over key (${saved.keyColumns.join(', ')}), the table's key is now (${keyColumns.join(', ')}); start over with --restart`,
      { code: 'SNAPSHOT_KEY_CHANGED' },
    );
  }
  return { state: { ...saved }, resumed: saved.after !== null, reason: 'unfinished snapshot' };
}
