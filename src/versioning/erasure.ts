/**
 * Erasure (docs/GOVERNANCE.md, "Erasure"): a person's erasure request must
 * remove a row in every region, and no write that has not seen the erasure
 * may bring it back, however late its clock says it was written. So unlike
 * a delete, an erasure does not compete on `(hlc, origin)`: it beats every
 * version that does not causally descend from it, and loses only to a
 * version written after it was seen (a new row inserted over its tombstone
 * inherits the tombstone's vector, so it descends).
 */
import { compareVersions, mergeVectors, vectorEntry, type RowVersion } from './version.js';

/** Which write the erasure was: its origin region and hlc. Kept with the key's tombstone. */
export interface ErasureMark {
  readonly origin: string;
  readonly hlc: number;
}

/** The mark of the erasure written as `version`. */
export function erasureMark(version: RowVersion): ErasureMark {
  return { origin: version.origin, hlc: version.hlc };
}

/** Whether `version` has seen the erasure (its vector covers the erasure's own write). */
export function seesErasure(version: RowVersion, erasure: ErasureMark): boolean {
  return vectorEntry(version.vv, erasure.origin) >= erasure.hlc;
}

/**
 * The version an erased key's tombstone keeps: the later of the local
 * version and the erasure's on `(hlc, origin)`, with both vectors merged,
 * so that it stays well formed (hlc ≥ every entry) and a row inserted over
 * it later descends from the erasure and from what the key held before.
 */
export function erasedVersion(local: RowVersion | null, erasure: RowVersion): RowVersion {
  if (local === null) return erasure;
  const later = compareVersions(local, erasure) > 0 ? local : erasure;
  return { origin: later.origin, hlc: later.hlc, vv: mergeVectors(local.vv, erasure.vv) };
}

/** The tombstone's `pk` text for an erased key: the mark, never a key value. */
export function erasureTombstoneKey(mark: ErasureMark): string {
  return JSON.stringify({ erased: { origin: mark.origin, hlc: mark.hlc } });
}

/** The mark in a tombstone's `pk` text, or undefined for any other tombstone. */
export function parseErasureTombstoneKey(text: string | null | undefined): ErasureMark | undefined {
  if (text === null || text === undefined || !text.includes('erased')) return undefined;
  try {
    const parsed = JSON.parse(text) as { erased?: { origin?: unknown; hlc?: unknown } };
    const mark = parsed?.erased;
    if (
      mark === undefined ||
      typeof mark.origin !== 'string' ||
      typeof mark.hlc !== 'number' ||
      !Number.isSafeInteger(mark.hlc)
    )
      return undefined;
    return { origin: mark.origin, hlc: mark.hlc };
  } catch {
    return undefined;
  }
}
