import type { ChangeEvent, JsonScalar, RowImage } from '../bus/envelope.js';
import { ENVELOPE_VERSION } from '../bus/envelope.js';
import { CdcError } from '../core/errors.js';
import { validateRowVersion, type RowVersion } from '../versioning/version.js';

/** A change event that passed validation, with its version checked. */
export interface ApplyEvent {
  op: 'upsert' | 'delete';
  sourceRegion: string;
  db: string;
  table: string;
  pk: RowImage;
  /** The row as the source wrote it; null for deletes. */
  after: RowImage | null;
  /** The image a conflict record shows for the incoming side. */
  image: RowImage | null;
  version: RowVersion;
  commitTs: number;
  /** The source's column types, when it sent them (`schema.autoAddColumns`). */
  types?: Readonly<Record<string, string>>;
}

/** Why an event cannot be applied; the `reason` label of `cdc_dead_letter_total`. */
export type RejectReason =
  | 'malformed'
  | 'version_invalid'
  | 'table_not_in_pipeline'
  | 'table_missing'
  | 'column_missing'
  | 'type_too_narrow'
  | 'key_mismatch'
  | 'constraint_violation'
  | 'apply_failed';

export class RejectedEvent extends CdcError {
  constructor(
    readonly reason: RejectReason,
    message: string,
    cause?: unknown,
  ) {
    super(message, { code: `APPLY_${reason.toUpperCase()}`, retriable: false, cause });
  }
}

function isScalar(value: unknown): value is JsonScalar {
  return value === null || ['string', 'number', 'boolean'].includes(typeof value);
}

function isImage(value: unknown): value is RowImage {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    Object.values(value as Record<string, unknown>).every(isScalar)
  );
}

/**
 * Decodes and validates one Kafka message. Events are untrusted input: the
 * shape, the version and the claimed source are checked here; identifiers
 * are checked against the configuration and the local schema later, before
 * any statement runs. A primary-key change (`u` whose before and after keys
 * differ) becomes a delete of the old key and an upsert of the new one.
 */
export function decodeApplyEvent(
  value: Buffer | null,
  expected: { sourceRegion: string; db: string; table: string },
): ApplyEvent[] {
  if (value === null) throw new RejectedEvent('malformed', 'message has no value');
  let raw: unknown;
  try {
    raw = JSON.parse(value.toString('utf8'));
  } catch (err) {
    throw new RejectedEvent('malformed', `message is not JSON: ${(err as Error).message}`, err);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new RejectedEvent('malformed', 'message is not a JSON object');
  }
  const event = raw as Partial<Record<keyof ChangeEvent, unknown>>;
  if (event.v !== ENVELOPE_VERSION)
    throw new RejectedEvent('malformed', `unsupported envelope version ${String(event.v)}`);
  if (!['c', 'u', 'd', 'r'].includes(event.op as string))
    throw new RejectedEvent('malformed', `unknown op ${String(event.op)}`);
  if (event.region !== expected.sourceRegion) {
    throw new RejectedEvent(
      'malformed',
      `event claims region ${String(event.region)} on a topic of ${expected.sourceRegion}`,
    );
  }
  if (event.db !== expected.db || event.table !== expected.table) {
    throw new RejectedEvent(
      'table_not_in_pipeline',
      `event names ${String(event.db)}.${String(event.table)} on the topic of ${expected.db}.${expected.table}`,
    );
  }
  if (!isImage(event.pk) || Object.keys(event.pk).length === 0)
    throw new RejectedEvent('malformed', 'pk is not a non-empty row image');
  const before = event.before ?? null;
  const after = event.after ?? null;
  if (before !== null && !isImage(before))
    throw new RejectedEvent('malformed', 'before is not a row image');
  if (after !== null && !isImage(after))
    throw new RejectedEvent('malformed', 'after is not a row image');
  if (event.op !== 'd' && after === null)
    throw new RejectedEvent('malformed', `op ${String(event.op)} without an after image`);
  let version: RowVersion;
  try {
    version = validateRowVersion({ origin: event.origin, hlc: event.hlc, vv: event.vv });
  } catch (err) {
    throw new RejectedEvent('version_invalid', (err as Error).message, err);
  }
  const commitTs = typeof event.commitTs === 'number' ? event.commitTs : 0;
  const types = event.types ?? undefined;
  if (
    types !== undefined &&
    (typeof types !== 'object' ||
      Array.isArray(types) ||
      !Object.values(types as Record<string, unknown>).every((t) => typeof t === 'string'))
  )
    throw new RejectedEvent('malformed', 'types is not a map of column types');
  const base = {
    sourceRegion: expected.sourceRegion,
    db: expected.db,
    table: expected.table,
    version,
    commitTs,
  };
  const pk = event.pk;
  if (event.op === 'd') return [{ ...base, op: 'delete', pk, after: null, image: before }];
  const afterImage = after as RowImage;
  for (const [column, value] of Object.entries(pk)) {
    if (afterImage[column] !== value) {
      throw new RejectedEvent('key_mismatch', `pk column ${column} differs from the after image`);
    }
  }
  const upsert: ApplyEvent = { ...base, op: 'upsert', pk, after: afterImage, image: afterImage };
  if (types !== undefined) upsert.types = types as Record<string, string>;
  if (event.op === 'u' && before !== null) {
    const oldPk: RowImage = {};
    let moved = false;
    for (const column of Object.keys(pk)) {
      oldPk[column] = before[column] ?? null;
      if (before[column] !== pk[column]) moved = true;
    }
    if (moved) return [{ ...base, op: 'delete', pk: oldPk, after: null, image: before }, upsert];
  }
  return [upsert];
}
