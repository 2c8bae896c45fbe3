import { CdcError } from '../core/errors.js';
import { isMicros } from './hlc.js';

/**
 * A version vector for one row: for each region, the hlc of the latest write
 * from that region that this version has seen (itself included). A missing
 * region means 0, "seen nothing". Only causality questions read it; the
 * last-writer-wins order does not.
 */
export type VersionVector = Readonly<Record<string, number>>;

/**
 * The version of one row (or tombstone): the write that produced it, named by
 * `(hlc, origin)`, and what that write had seen.
 *
 * Every version this module produces is *well-formed*: `vv[origin] === hlc`
 * and no entry of `vv` exceeds `hlc` (a write's timestamp is above everything
 * it replaced, by the HLC rule). {@link decodeStoredVersion} rejects versions
 * that are not, so the algebra can rely on it. Vectors leave out 0 entries
 * (0 and missing mean the same), so equal vectors are equal objects.
 */
export interface RowVersion {
  readonly origin: string;
  readonly hlc: number;
  readonly vv: VersionVector;
}

/**
 * Region names inside versions. A superset of what the configuration accepts,
 * so a version written under a future, looser naming rule still decodes; tight
 * enough that names are safe as object keys, label values and log text.
 */
export const REGION_NAME_PATTERN = /^[a-z][a-z0-9_-]{0,62}$/;

/** The most regions a version vector may name: far above any real deployment, low enough to bound decoding work on untrusted input. */
export const MAX_VECTOR_ENTRIES = 64;

/** Whether `value` is usable as a region name in a version. */
export function isRegionName(value: unknown): value is string {
  return typeof value === 'string' && REGION_NAME_PATTERN.test(value);
}

/**
 * The entry of `region` in `vv`, 0 when absent. Own properties only: a region
 * may legally be called `constructor`, and `vv.constructor` on a plain object
 * is Object's constructor, not a missing entry.
 */
export function vectorEntry(vv: VersionVector, region: string): number {
  return Object.hasOwn(vv, region) ? (vv[region] ?? 0) : 0;
}

// Sorted keys, and no zero entries: 0 means "seen nothing" exactly like a
// missing entry, and one spelling per meaning keeps equal vectors equal as
// objects and as text.
function canonicalVector(entries: Iterable<readonly [string, number]>): VersionVector {
  const list = Array.isArray(entries) ? (entries as (readonly [string, number])[]) : [...entries];
  // Fast path, the common case on the apply path: already sorted, no zeros.
  let canonical = true;
  for (let i = 0; i < list.length && canonical; i += 1) {
    const [key, value] = list[i] as readonly [string, number];
    if (value === 0 || (i > 0 && !((list[i - 1] as readonly [string, number])[0] < key)))
      canonical = false;
  }
  const sorted = canonical
    ? list
    : list
        .filter(([, value]) => value !== 0)
        // UTF-16 code units, locale-independent like the origin tie-break.
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  // A loop, not Object.fromEntries (twice as slow per decoded event). Keys are
  // region names (REGION_NAME_PATTERN), so never `__proto__`.
  const vv: Record<string, number> = {};
  for (const [key, value] of sorted) vv[key] = value;
  return Object.freeze(vv);
}

/**
 * The last-writer-wins order of DESIGN.md §2: by `hlc`, then by `origin`
 * (plain code-unit comparison, identical in every region whatever its
 * locale). It is total on `(hlc, origin)`, which is what makes keeping the
 * larger version a join. Two versions comparing 0 are the same write, possibly
 * seen with different causal knowledge (`vv`).
 */
export function compareVersions(a: RowVersion, b: RowVersion): -1 | 0 | 1 {
  if (a.hlc !== b.hlc) {
    return a.hlc < b.hlc ? -1 : 1;
  }
  if (a.origin !== b.origin) {
    return a.origin < b.origin ? -1 : 1;
  }
  return 0;
}

/** Pointwise maximum: the knowledge of both vectors together. Commutative, associative, idempotent. */
export function mergeVectors(a: VersionVector, b: VersionVector): VersionVector {
  const merged = new Map<string, number>();
  for (const vv of [a, b]) {
    for (const region of Object.keys(vv)) {
      merged.set(region, Math.max(merged.get(region) ?? 0, vectorEntry(vv, region)));
    }
  }
  return canonicalVector(merged);
}

/** Whether `a` is pointwise at most `b` (missing entries are 0): everything `a` has seen, `b` has seen too. */
export function vectorLeq(a: VersionVector, b: VersionVector): boolean {
  return Object.keys(a).every((region) => vectorEntry(a, region) <= vectorEntry(b, region));
}

/** Whether two vectors record the same knowledge (missing and 0 are the same). */
export function vectorsEqual(a: VersionVector, b: VersionVector): boolean {
  return vectorLeq(a, b) && vectorLeq(b, a);
}

/** The largest entry of a vector, 0 for an empty one. */
export function vectorMax(vv: VersionVector): number {
  return Object.keys(vv).reduce((max, region) => Math.max(max, vectorEntry(vv, region)), 0);
}

/**
 * How an incoming version relates to the local one causally.
 * - `equal`: same knowledge (a replay or duplicate);
 * - `before`: the incoming version is dominated, local has already seen it (stale);
 * - `after`: the incoming version has seen everything local has (a normal overwrite);
 * - `concurrent`: each has seen something the other has not (a real conflict).
 */
export type Causality = 'equal' | 'before' | 'after' | 'concurrent';

/** Classifies `incoming` against `local` by their version vectors. See {@link Causality}. */
export function compareCausality(incoming: RowVersion, local: RowVersion): Causality {
  const incomingLeq = vectorLeq(incoming.vv, local.vv);
  const localLeq = vectorLeq(local.vv, incoming.vv);
  if (incomingLeq && localLeq) {
    return 'equal';
  }
  if (incomingLeq) {
    return 'before';
  }
  return localLeq ? 'after' : 'concurrent';
}

/**
 * The last-writer-wins join: keeps the larger of two versions under
 * {@link compareVersions}. When both are the same write (same `hlc` and
 * `origin`), the result keeps that write and unions what both had seen, so the
 * operation stays commutative on the whole record, not just on `(hlc, origin)`.
 */
export function maxVersion(a: RowVersion, b: RowVersion): RowVersion {
  const order = compareVersions(a, b);
  if (order !== 0) {
    return order > 0 ? a : b;
  }
  return vectorsEqual(a.vv, b.vv)
    ? a
    : { origin: a.origin, hlc: a.hlc, vv: mergeVectors(a.vv, b.vv) };
}

function assertLocalRegion(self: string): void {
  if (!isRegionName(self)) {
    throw new RangeError(
      `region name ${JSON.stringify(self)} does not match ${REGION_NAME_PATTERN}`,
    );
  }
}

/** The inputs of {@link effectiveVersion}: a row's two version columns and the local region. */
export interface EffectiveVersionInput {
  /** The row's `_cdc_ts` (or a tombstone's timestamp) in µs: stamped by MySQL on a local write, set to the version's hlc by the applier. */
  tsMicros: number;
  /** The row's decoded `_cdc_ver`: the last version the applier wrote, or null if it never wrote this row. */
  stored: RowVersion | null;
  /** The region this daemon serves, i.e. whose MySQL stamped `tsMicros` when it differs from `stored.hlc`. */
  self: string;
}

/**
 * The effective version of a row, DESIGN.md §3: a pure function of its two
 * version columns, so capture (from the binlog after-image) and the applier
 * (from `SELECT … FOR UPDATE`) compute the same version without sharing state.
 *
 * If `_cdc_ts` still equals `_cdc_ver.hlc`, the last write was the applier's
 * and the version is `_cdc_ver`. Otherwise a local write came after it: the
 * version is this region's, with `hlc = max(_cdc_ts, max(vv) + 1µs)` so that
 * it exceeds everything it replaced even when the local clock is behind (the
 * HLC rule), and `vv = _cdc_ver.vv ∪ {self: hlc}` so that it causally follows
 * what it replaced.
 *
 * Two local writes in a row are told apart only by `_cdc_ts`: while the local
 * clock is behind `max(vv)`, both get `max(vv) + 1µs`, the same version for
 * different data, and the second is dropped as a duplicate elsewhere. So the
 * stamp of a local write must itself exceed the effective hlc of the version
 * it replaces (e.g. a `BEFORE UPDATE` trigger taking the `GREATEST` of
 * `NOW(6)` and that + 1µs); `ON UPDATE CURRENT_TIMESTAMP(6)` alone does not.
 */
export function effectiveVersion({ tsMicros, stored, self }: EffectiveVersionInput): RowVersion {
  if (!isMicros(tsMicros)) {
    throw new RangeError(
      `_cdc_ts must be a non-negative safe integer of µs, got ${String(tsMicros)}`,
    );
  }
  assertLocalRegion(self);
  if (stored === null) {
    return { origin: self, hlc: tsMicros, vv: canonicalVector([[self, tsMicros]]) };
  }
  if (tsMicros === stored.hlc) {
    return stored;
  }
  // stored.hlc + 1 is implied by max(vv) + 1 for a well-formed version; it is
  // spelled out so that a local write outranks the version it replaced even
  // if one that is not well-formed slipped through.
  const hlc = Math.max(tsMicros, vectorMax(stored.vv) + 1, stored.hlc + 1);
  if (!Number.isSafeInteger(hlc)) {
    throw new RangeError(`the version after ${stored.hlc} µs exceeds 2^53 µs`);
  }
  const vv = new Map(
    Object.keys(stored.vv).map((region) => [region, vectorEntry(stored.vv, region)]),
  );
  vv.set(self, hlc);
  return { origin: self, hlc, vv: canonicalVector(vv) };
}

function invalidVersion(why: string, cause?: unknown): CdcError {
  return new CdcError(`invalid version record: ${why}`, {
    code: 'VERSION_INVALID',
    retriable: false,
    cause,
  });
}

function describeValue(value: unknown): string {
  if (value === null) {
    return 'null';
  }
  if (Array.isArray(value)) {
    return 'an array';
  }
  if (typeof value === 'string') {
    return `the string ${JSON.stringify(value.length > 70 ? `${value.slice(0, 70)}…` : value)}`;
  }
  if (typeof value === 'number') {
    return `the number ${String(value)}`;
  }
  return `a value of type ${typeof value}`;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkMicros(value: unknown, where: string): number {
  if (!isMicros(value)) {
    throw invalidVersion(
      `${where} must be a non-negative integer of at most 2^53-1 microseconds, got ${describeValue(value)}`,
    );
  }
  // JSON `-0` parses to -0, which passes isSafeInteger; store the one zero.
  return value + 0;
}

function checkRegion(value: unknown, where: string): string {
  if (!isRegionName(value)) {
    throw invalidVersion(
      `${where} must be a region name matching ${REGION_NAME_PATTERN}, got ${describeValue(value)}`,
    );
  }
  return value;
}

/**
 * Validates the three parts of a version received from outside the process
 * (a decoded `_cdc_ver`, or the `region`/`hlc`/`vv` fields of an event
 * envelope) and returns them as a well-formed {@link RowVersion} with a
 * canonical vector. Throws a non-retriable `VERSION_INVALID` {@link CdcError}
 * saying what is wrong.
 */
export function validateRowVersion(parts: {
  origin: unknown;
  hlc: unknown;
  vv: unknown;
}): RowVersion {
  const origin = checkRegion(parts.origin, 'origin');
  const hlc = checkMicros(parts.hlc, 'hlc');
  const rawVector = parts.vv;
  if (!isPlainObject(rawVector)) {
    throw invalidVersion(`vv must be an object of region → hlc, got ${describeValue(rawVector)}`);
  }
  const regions = Object.keys(rawVector);
  if (regions.length > MAX_VECTOR_ENTRIES) {
    throw invalidVersion(
      `vv has ${regions.length} entries, at most ${MAX_VECTOR_ENTRIES} are allowed`,
    );
  }
  const entries = regions.map((region): [string, number] => {
    checkRegion(region, 'every key of vv');
    const raw = rawVector[region];
    // The label is built only for the error: per entry it cost more than the check.
    const value = isMicros(raw) ? raw + 0 : checkMicros(raw, `vv[${JSON.stringify(region)}]`);
    if (value > hlc) {
      throw invalidVersion(
        `vv[${JSON.stringify(region)}] = ${value} is newer than the version's own hlc ${hlc}; a write's hlc exceeds everything it has seen`,
      );
    }
    return [region, value];
  });
  const vv = canonicalVector(entries);
  if (vectorEntry(vv, origin) !== hlc) {
    throw invalidVersion(
      `vv[${JSON.stringify(origin)}] must equal hlc ${hlc}: a version has seen its own write`,
    );
  }
  return { origin, hlc, vv };
}

/**
 * Upper bound on the text {@link decodeStoredVersion} parses. A maximal
 * canonical record is about 5.5 KiB; MySQL's JSON type reformats with spaces.
 */
const MAX_STORED_VERSION_LENGTH = 16 * 1024;

/**
 * Validates an already-parsed stored version record (`{o, h, vv}`), e.g. a
 * JSON column that mysql2 has parsed itself. See {@link decodeStoredVersion}.
 */
export function parseStoredVersion(value: unknown): RowVersion {
  if (!isPlainObject(value)) {
    throw invalidVersion(`expected an object {"o","h","vv"}, got ${describeValue(value)}`);
  }
  const unknownKeys = Object.keys(value).filter(
    (key) => key !== 'o' && key !== 'h' && key !== 'vv',
  );
  if (unknownKeys.length > 0) {
    throw invalidVersion(
      `unknown field(s) ${unknownKeys.map((key) => JSON.stringify(key.slice(0, 40))).join(', ')}`,
    );
  }
  for (const key of ['o', 'h', 'vv']) {
    if (!Object.hasOwn(value, key)) {
      throw invalidVersion(`missing field "${key}"`);
    }
  }
  return validateRowVersion({ origin: value.o, hlc: value.h, vv: value.vv });
}

/**
 * Decodes `_cdc_ver` text (or the same record carried on the wire). The input
 * is untrusted: anything but a well-formed record within the limits above is
 * a non-retriable `VERSION_INVALID` {@link CdcError}, never a silently
 * repaired version, because a wrong version silently decides conflicts wrong.
 */
export function decodeStoredVersion(text: string): RowVersion {
  if (text.length > MAX_STORED_VERSION_LENGTH) {
    throw invalidVersion(
      `${text.length} characters, at most ${MAX_STORED_VERSION_LENGTH} are allowed`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw invalidVersion(
      `not JSON (${error instanceof Error ? error.message : String(error)})`,
      error,
    );
  }
  return parseStoredVersion(parsed);
}

/**
 * The compact canonical JSON stored in `_cdc_ver` and carried on the wire,
 * e.g. `{"o":"us-east","h":1732147200123456,"vv":{"us-east":1732147200123456}}`.
 * Vector keys are sorted, so equal versions encode to equal text.
 */
export function encodeStoredVersion(version: RowVersion): string {
  const { origin, hlc, vv } = validateRowVersion(version);
  // validateRowVersion returns a canonical vector: keys already sorted, no zeros.
  const entries = Object.keys(vv).map(
    (region) => `${JSON.stringify(region)}:${vectorEntry(vv, region)}`,
  );
  return `{"o":${JSON.stringify(origin)},"h":${hlc},"vv":{${entries.join(',')}}}`;
}
