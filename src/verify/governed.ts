/**
 * The pure half of `verify` for governed tables (docs/GOVERNANCE.md,
 * "Verify"): what each region may hold of one key, and whether what it holds
 * matches.
 *
 * - The residency of a key is decided on the winning image: the row of the
 *   newest version among the regions that hold one (key and residency
 *   columns are never masked, so a masked copy of that version decides
 *   alike). Each region's audience follows: `plain`, `masked` or `none`.
 * - Each pair of regions is compared only on what both may hold: not at all
 *   when either may not hold the row; everything when both hold it in the
 *   same form; the plain side passed through the policy's masks against the
 *   masked side otherwise (a masked column compared through its own mask
 *   gives no false divergence).
 * - A region holding a row it may not hold at all, plain values where only
 *   masked ones are allowed, or a masked copy where the original belongs, is
 *   a violation.
 *
 * Nothing here returns a value: verdicts name regions, columns and versions.
 */
import type { JsonScalar, RowImage } from '../bus/envelope.js';
import { decodeBase64, typeArguments, valueClassOf } from '../governance/canonical.js';
import { keyHash } from '../governance/key-hash.js';
import { applyMask } from '../governance/masks.js';
import type {
  ColumnTypeInfo,
  EncodedValue,
  GovernancePolicy,
  MaskSpec,
  Zones,
} from '../governance/policy.js';
import { audienceIn, residencyOf, type Audience } from '../governance/residency.js';
import { compareVersions, type RowVersion } from '../versioning/version.js';
import type { RegionState } from './diff.js';

/** What the comparison of one governed table needs besides the rows. */
export interface GovernedTableContext {
  /** `schema.table`. */
  readonly table: string;
  readonly policy: GovernancePolicy;
  readonly zones: Zones;
  /** Every configured region, in configuration order (the universe of `all`). */
  readonly regions: readonly string[];
  /** The table's data columns with their types (the masks need them). */
  readonly columns: ReadonlyMap<string, ColumnTypeInfo>;
  /** Key columns in key order (the key hash needs their types). */
  readonly keyColumns: readonly ColumnTypeInfo[];
}

/** How one pair of regions compares on one key. */
export type PairVerdict =
  /** Equal on what both may hold, or both without the row. */
  | { readonly kind: 'same' }
  /** At least one of them may not hold the row at all: nothing to compare. */
  | { readonly kind: 'not-compared' }
  /**
   * Different: `columns` that differ (compared through the masks when the
   * forms differ), or a row held on one side only (`onlyIn`).
   */
  | {
      readonly kind: 'differs';
      readonly columns: readonly string[];
      readonly onlyIn?: string;
      readonly throughMasks: boolean;
    };

export type ViolationKind =
  /** The region holds a row its audience for the row is `none` for. */
  | 'not-allowed'
  /** The region may hold the row only masked, but masked columns hold what no mask produces. */
  | 'plain-where-masked'
  /** The region may hold the row plain, but holds the masked copy of another region's original. */
  | 'masked-where-plain';

export interface Violation {
  readonly region: string;
  readonly kind: ViolationKind;
  /** Masked columns concerned (none for `not-allowed`). */
  readonly columns: readonly string[];
}

/** One key judged across regions. */
export interface GovernedJudgement {
  /** The region whose image decided the residency (undefined: no region holds the row). */
  readonly decidedBy: string | undefined;
  /** Each region's audience for the row, in the order of the states. */
  readonly audiences: ReadonlyMap<string, Audience>;
  readonly pairs: readonly {
    readonly a: string;
    readonly b: string;
    readonly verdict: PairVerdict;
  }[];
  readonly violations: readonly Violation[];
}

const same = (a: EncodedValue | JsonScalar | undefined, b: EncodedValue | JsonScalar | undefined) =>
  JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/**
 * A mask's output as the region's server returns it: BINARY(n) pads with
 * 0x00 to its width, so a mask written into one reads back padded.
 */
function maskAsStored(mask: MaskSpec, column: ColumnTypeInfo, value: EncodedValue): EncodedValue {
  const masked = applyMask(mask, column, value);
  if (masked === null || column.dataType.toLowerCase() !== 'binary') return masked;
  const width = typeArguments(column.columnType)[0] ?? 1;
  const bytes = decodeBase64(column, masked);
  if (bytes.length >= width) return masked;
  return Buffer.concat([bytes, Buffer.alloc(width - bytes.length)]).toString('base64');
}

function columnOf(context: GovernedTableContext, name: string): ColumnTypeInfo {
  return context.columns.get(name) ?? { name, dataType: '', columnType: '' };
}

/**
 * A plain image in the masked form: each masked column through its mask.
 * A mask that cannot apply gives `undefined` for that column (it then
 * compares as different, never as equal).
 */
export function maskedForm(
  context: GovernedTableContext,
  image: RowImage,
): Record<string, EncodedValue | undefined> {
  const out: Record<string, EncodedValue | undefined> = { ...image };
  for (const [name, mask] of context.policy.masking) {
    if (!Object.hasOwn(image, name)) continue;
    try {
      out[name] = maskAsStored(mask, columnOf(context, name), image[name] ?? null);
    } catch {
      out[name] = undefined;
    }
  }
  return out;
}

function differingColumns(
  a: Readonly<Record<string, EncodedValue | JsonScalar | undefined>>,
  b: Readonly<Record<string, EncodedValue | JsonScalar | undefined>>,
): string[] {
  const names = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...names].filter((name) => {
    const x = a[name];
    const y = b[name];
    return x === undefined || y === undefined || !same(x, y);
  });
}

/**
 * Compares two regions' copies of one key on what both may hold (see the
 * module comment). `a` and `b` are region names, used for `onlyIn`.
 */
export function comparePair(
  context: GovernedTableContext,
  a: { readonly region: string; readonly audience: Audience; readonly image: RowImage | null },
  b: { readonly region: string; readonly audience: Audience; readonly image: RowImage | null },
): PairVerdict {
  if (a.audience === 'none' || b.audience === 'none') return { kind: 'not-compared' };
  const throughMasks = a.audience !== b.audience;
  if (a.image === null && b.image === null) return { kind: 'same' };
  if (a.image === null || b.image === null) {
    return {
      kind: 'differs',
      columns: [],
      onlyIn: a.image === null ? b.region : a.region,
      throughMasks,
    };
  }
  let left: Readonly<Record<string, EncodedValue | JsonScalar | undefined>> = a.image;
  let right: Readonly<Record<string, EncodedValue | JsonScalar | undefined>> = b.image;
  if (a.audience === 'plain' && b.audience === 'masked') left = maskedForm(context, a.image);
  if (a.audience === 'masked' && b.audience === 'plain') right = maskedForm(context, b.image);
  const columns = differingColumns(left, right);
  return columns.length === 0 ? { kind: 'same' } : { kind: 'differs', columns, throughMasks };
}

const HMAC_TEXT = /^[0-9a-f]{64}$/;

/** Whether `value` is something `mask` can write into `column` (NULL always is). */
function maskCanProduce(mask: MaskSpec, column: ColumnTypeInfo, value: EncodedValue): boolean {
  if (value === null) return true;
  switch (mask.kind) {
    case 'nullify':
      return false;
    case 'hmac': {
      if (typeof value !== 'string') return false;
      if (valueClassOf(column) !== 'binary') return HMAC_TEXT.test(value);
      const bytes = decodeBase64(column, value);
      // BINARY(n) reads back padded with 0x00.
      const end = bytes.indexOf(0);
      return HMAC_TEXT.test(bytes.subarray(0, end === -1 ? bytes.length : end).toString('latin1'));
    }
    case 'redact':
    case 'truncate':
      try {
        return same(maskAsStored(mask, column, value), value);
      } catch {
        return false;
      }
  }
}

/** Masked columns of `image` that hold a value their mask cannot produce (plaintext in a masked copy). */
export function unmaskedColumns(context: GovernedTableContext, image: RowImage): string[] {
  const out: string[] = [];
  for (const [name, mask] of context.policy.masking) {
    if (!Object.hasOwn(image, name)) continue;
    const value = image[name] ?? null;
    if (!maskCanProduce(mask, columnOf(context, name), value)) out.push(name);
  }
  return out;
}

function newestFirst(a: RegionState, b: RegionState): number {
  if (a.version === null || b.version === null) return a.version === null ? 1 : -1;
  return compareVersions(b.version, a.version);
}

/**
 * Judges one key across regions. Null when every region holds exactly what
 * it may (nothing where its audience is `none`) and every pair is the same;
 * otherwise the judgement (pairs that differ, violations).
 */
export function judgeKey(
  context: GovernedTableContext,
  states: readonly RegionState[],
): GovernedJudgement | null {
  const present = states.filter((s) => s.image !== null);
  if (present.length === 0) return null;
  // The winning image decides; without readable versions, the first region's row.
  const winner = [...present].sort(newestFirst)[0] as RegionState;
  const residency = residencyOf(
    context.policy,
    context.zones,
    context.regions,
    winner.image as RowImage,
  );
  const audiences = new Map(states.map((s) => [s.region, audienceIn(residency, s.region)]));
  const audienceOf = (s: RegionState): Audience => audiences.get(s.region) ?? 'none';

  const pairs: { a: string; b: string; verdict: PairVerdict }[] = [];
  for (let i = 0; i < states.length; i += 1) {
    for (let j = i + 1; j < states.length; j += 1) {
      const a = states[i] as RegionState;
      const b = states[j] as RegionState;
      const verdict = comparePair(
        context,
        { region: a.region, audience: audienceOf(a), image: a.image },
        { region: b.region, audience: audienceOf(b), image: b.image },
      );
      pairs.push({ a: a.region, b: b.region, verdict });
    }
  }

  const violations: Violation[] = [];
  for (const s of present) {
    const audience = audienceOf(s);
    const image = s.image as RowImage;
    if (audience === 'none') {
      violations.push({ region: s.region, kind: 'not-allowed', columns: [] });
    } else if (audience === 'masked') {
      const columns = unmaskedColumns(context, image);
      if (columns.length > 0)
        violations.push({ region: s.region, kind: 'plain-where-masked', columns });
    } else {
      // A masked copy where the original belongs: another plain region holds an
      // original whose masked form is exactly this row.
      for (const other of present) {
        if (other === s || audienceOf(other) !== 'plain') continue;
        const otherImage = other.image as RowImage;
        const masked = maskedForm(context, otherImage);
        const changed = differingColumns(masked, otherImage);
        if (changed.length === 0) continue; // masking changes nothing: nothing to tell
        if (differingColumns(masked, image).length === 0) {
          violations.push({ region: s.region, kind: 'masked-where-plain', columns: changed });
          break;
        }
      }
    }
  }
  if (violations.length === 0 && pairs.every((p) => p.verdict.kind !== 'differs')) return null;
  return { decidedBy: winner.region, audiences, pairs, violations };
}

/**
 * The regions that hold a different copy than the winner may hold, and the
 * winner: the newest version among regions that may hold the row (like
 * `assessKey`, the origin's copy when equal versions disagree).
 */
export function governedLagging(
  judgement: GovernedJudgement,
  states: readonly RegionState[],
): {
  winner: string | undefined;
  lagging: string[];
  kind: 'behind' | 'equal-version' | 'unversioned';
} {
  const allowed = states.filter((s) => (judgement.audiences.get(s.region) ?? 'none') !== 'none');
  let newest: RowVersion | null = null;
  for (const s of allowed)
    if (s.version !== null && (newest === null || compareVersions(s.version, newest) > 0))
      newest = s.version;
  if (newest === null) return { winner: undefined, lagging: [], kind: 'unversioned' };
  const top = newest;
  const holders = allowed.filter(
    (s) => s.version !== null && compareVersions(s.version, top) === 0,
  );
  const differs = (x: string, y: string): boolean =>
    judgement.pairs.some(
      (p) => ((p.a === x && p.b === y) || (p.a === y && p.b === x)) && p.verdict.kind === 'differs',
    );
  const agree = holders.every((h) => !differs(h.region, (holders[0] as RegionState).region));
  const byName = [...holders].sort((a, b) => (a.region < b.region ? -1 : 1));
  const winner = (holders.find((h) => h.region === top.origin) ?? byName[0]) as RegionState;
  return {
    winner: winner.region,
    lagging: allowed.filter((s) => differs(s.region, winner.region)).map((s) => s.region),
    kind: agree ? 'behind' : 'equal-version',
  };
}

/** Every column named by a differing pair, in first-seen order. */
export function differingColumnsOf(judgement: GovernedJudgement): string[] {
  const out = new Set<string>();
  for (const p of judgement.pairs)
    if (p.verdict.kind === 'differs') for (const c of p.verdict.columns) out.add(c);
  return [...out];
}

/** What one region holds of a governed key, without its values. */
export interface GovernedRegionState {
  readonly region: string;
  readonly audience: Audience;
  readonly held: 'row' | 'deleted' | 'no row';
  readonly version: RowVersion | null;
  readonly versionError?: string;
}

/** A differing pair of regions, without values. */
export interface GovernedPair {
  readonly a: string;
  readonly b: string;
  readonly columns: readonly string[];
  /** Set when only this region of the two holds the row. */
  readonly onlyIn?: string;
  /** The two hold the row in different forms: compared through the masks. */
  readonly throughMasks: boolean;
}

/**
 * A governed key verify reports: divergent pairs, violations, or both. It
 * holds no value and no key, only the key's hash ({@link keyHash}), so
 * printing all of it is safe.
 */
export interface GovernedDivergence {
  readonly table: string;
  readonly policy: string;
  readonly keyHash: string;
  /** The region whose image decided the residency. */
  readonly decidedBy: string | undefined;
  readonly states: readonly GovernedRegionState[];
  /** Whether some pair of regions differs on what both may hold. */
  readonly pairsDiffer: boolean;
  readonly pairs: readonly GovernedPair[];
  readonly differingColumns: readonly string[];
  readonly violations: readonly Violation[];
  /** As `assessKey`'s, among the regions that may hold the row. */
  readonly kind: 'behind' | 'equal-version' | 'unversioned';
  readonly winner: string | undefined;
  readonly lagging: readonly string[];
}

/** {@link judgeKey}, as a value-free report entry (null: nothing to report). */
export function assessGovernedKey(
  context: GovernedTableContext,
  key: readonly (EncodedValue | JsonScalar)[],
  states: readonly RegionState[],
): GovernedDivergence | null {
  const judgement = judgeKey(context, states);
  if (judgement === null) return null;
  const lag = governedLagging(judgement, states);
  const pairs: GovernedPair[] = [];
  for (const { a, b, verdict } of judgement.pairs) {
    if (verdict.kind !== 'differs') continue;
    pairs.push({
      a,
      b,
      columns: verdict.columns,
      ...(verdict.onlyIn === undefined ? {} : { onlyIn: verdict.onlyIn }),
      throughMasks: verdict.throughMasks,
    });
  }
  return {
    table: context.table,
    policy: context.policy.name,
    keyHash: keyHash(context.policy, context.keyColumns, key),
    decidedBy: judgement.decidedBy,
    states: states.map((s) => ({
      region: s.region,
      audience: judgement.audiences.get(s.region) ?? 'none',
      held: s.image !== null ? 'row' : s.version === null ? 'no row' : 'deleted',
      version: s.version,
      ...(s.versionError === undefined ? {} : { versionError: s.versionError }),
    })),
    pairsDiffer: pairs.length > 0,
    pairs,
    differingColumns: differingColumnsOf(judgement),
    violations: judgement.violations,
    kind: lag.kind,
    winner: lag.winner,
    lagging: lag.lagging,
  };
}
