import type { JsonScalar, RowImage } from '../bus/envelope.js';
import type { KeyValues } from '../snapshot/key-range.js';
import type { VersionedRow } from '../snapshot/rows.js';
import {
  compareVersions,
  mergeVectors,
  vectorsEqual,
  type RowVersion,
} from '../versioning/version.js';

/**
 * The pure half of `verify`: which keys of a chunk differ between regions,
 * and, for one key, what the regions' states say — who is behind, or whether
 * equal versions hold different data — and what repair would make them
 * converge.
 */

/** A key whose rows are not the same in every region. */
export interface Candidate {
  id: string;
  key: KeyValues;
}

function sameImage(a: RowImage | null, b: RowImage | null): boolean {
  if (a === null || b === null) return a === b;
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Keys of one chunk whose visible data differs between regions (a row
 * missing in some region counts). `rows` holds each region's rows of the
 * same key range; versions are not compared here, only data.
 */
export function differingKeys(rows: ReadonlyMap<string, readonly VersionedRow[]>): Candidate[] {
  const byKey = new Map<string, { key: KeyValues; images: (RowImage | null)[] }>();
  const regions = [...rows.keys()];
  regions.forEach((region, index) => {
    for (const row of rows.get(region) ?? []) {
      let entry = byKey.get(row.id);
      if (entry === undefined) {
        entry = { key: row.key, images: regions.map(() => null) };
        byKey.set(row.id, entry);
      }
      entry.images[index] = row.image;
    }
  });
  const out: Candidate[] = [];
  for (const [id, { key, images }] of byKey) {
    const first = images[0] ?? null;
    if (!images.every((image) => sameImage(image, first))) out.push({ id, key });
  }
  return out;
}

/** What one region holds for a key. */
export interface RegionState {
  region: string;
  /** The row's data columns, or null when the row does not exist. */
  image: RowImage | null;
  /** The row's effective version, the tombstone's when deleted, null when neither exists. */
  version: RowVersion | null;
  versionError?: string;
}

export type DivergenceKind =
  /** Some regions hold an older version: the newest one has not reached them. */
  | 'behind'
  /** Regions hold the same version with different data: a write bypassed replication. */
  | 'equal-version'
  /** No region has a readable version (a corrupt `_cdc_ver`): no automatic repair. */
  | 'unversioned';

export interface Divergence {
  table: string;
  key: KeyValues;
  pk: RowImage;
  kind: DivergenceKind;
  states: RegionState[];
  /** Data columns whose values differ between the regions that have the row. */
  differingColumns: string[];
  /** The region whose state a repair spreads (undefined for `unversioned`). */
  winner: string | undefined;
  /** Regions whose state differs from the winner's. */
  lagging: string[];
}

/**
 * Judges one key across regions: null when every region holds the same data
 * (present everywhere with equal columns, or absent everywhere), a
 * {@link Divergence} otherwise.
 *
 * The winner of `behind` is the region holding the largest version (the
 * join every apply computes, DESIGN.md §2). When the regions holding that
 * version disagree on the data (`equal-version`: only a write that bypassed
 * capture or the applier can do that), the copy in the version's own origin
 * region wins, since that is where the write happened and what capture
 * published; when the origin is not among them, the first such region by
 * name. Any fixed rule would converge; this one is the same in every run.
 */
export function assessKey(
  table: string,
  key: KeyValues,
  pk: RowImage,
  states: readonly RegionState[],
): Divergence | null {
  const first = states[0];
  if (first === undefined) return null;
  if (states.every((s) => sameImage(s.image, first.image))) return null;

  const present = states.filter((s) => s.image !== null);
  const columns = new Set<string>();
  for (const s of present) for (const c of Object.keys(s.image as RowImage)) columns.add(c);
  const differingColumns = [...columns].filter((c) => {
    const values = present.map((s) => JSON.stringify((s.image as RowImage)[c] ?? null));
    return values.some((v) => v !== values[0]);
  });

  let newest: RowVersion | null = null;
  for (const s of states) {
    if (s.version !== null && (newest === null || compareVersions(s.version, newest) > 0))
      newest = s.version;
  }
  const base = { table, key, pk, states: [...states], differingColumns };
  if (newest === null) return { ...base, kind: 'unversioned', winner: undefined, lagging: [] };
  const top = newest;
  const holders = states.filter((s) => s.version !== null && compareVersions(s.version, top) === 0);
  const agree = holders.every((h) => sameImage(h.image, (holders[0] as RegionState).image));
  let winner: RegionState;
  if (agree) {
    winner = holders.find((h) => h.region === top.origin) ?? (holders[0] as RegionState);
  } else {
    const byName = [...holders].sort((a, b) => (a.region < b.region ? -1 : 1));
    winner = holders.find((h) => h.region === top.origin) ?? (byName[0] as RegionState);
  }
  return {
    ...base,
    kind: agree ? 'behind' : 'equal-version',
    winner: winner.region,
    lagging: states.filter((s) => !sameImage(s.image, winner.image)).map((s) => s.region),
  };
}

/**
 * The version an `equal-version` repair writes: a new write by the winner
 * that causally follows every state seen (vector merge) and outranks all of
 * them (`hlc` above the largest, and not below now), so every region,
 * including ones that hold the same old version, takes it.
 */
export function repairVersion(
  divergence: Pick<Divergence, 'winner' | 'states'>,
  nowMicros: number,
): RowVersion {
  const winner = divergence.winner;
  if (winner === undefined) throw new Error('an unversioned divergence has no repair version');
  let vv = {};
  let maxHlc = 0;
  for (const s of divergence.states) {
    if (s.version === null) continue;
    vv = mergeVectors(vv, s.version.vv);
    maxHlc = Math.max(maxHlc, s.version.hlc);
  }
  const hlc = Math.max(nowMicros, maxHlc + 1);
  return { origin: winner, hlc, vv: mergeVectors(vv, { [winner]: hlc }) };
}

/** Whether two states of a key are the same (for "has it changed since the last check"). */
export function sameStates(a: readonly RegionState[], b: readonly RegionState[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((s, i) => {
    const t = b[i] as RegionState;
    if (s.region !== t.region || !sameImage(s.image, t.image)) return false;
    if (s.version === null || t.version === null) return s.version === t.version;
    return compareVersions(s.version, t.version) === 0 && vectorsEqual(s.version.vv, t.version.vv);
  });
}

/** Short text of a value for reports. */
export function showValue(value: JsonScalar | undefined, max = 60): string {
  const text = JSON.stringify(value ?? null);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
