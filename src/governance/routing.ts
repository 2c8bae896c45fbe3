/**
 * Governed publishing and its re-check (docs/GOVERNANCE.md, "Capture and
 * apply"): where one row change of a governed table goes, in which form,
 * with which image, and whether a region may apply what arrived on a topic.
 * Pure functions over a row image and the policy, so capture (both envelope
 * versions) and apply (the stage and the dead-letter replay) decide alike.
 * Nothing here puts a value in an error: messages name policies, columns,
 * types and regions only.
 */
import { applyMask } from './masks.js';
import {
  GovernanceError,
  type ColumnTypeInfo,
  type GovernancePolicy,
  type RowValues,
  type Zones,
} from './policy.js';
import { audienceIn, residencyOf, type Audience, type Residency } from './residency.js';
import { governedTopicName, rowTopics, type TopicAudience } from './topics.js';

/** What topic names and residency depend on besides the policy. */
export interface GovernanceLayout {
  readonly topicPrefix: string;
  readonly zones: Zones;
  /** Every configured region, in configuration order. */
  readonly regions: readonly string[];
}

/**
 * The columns' types as capture knows them: column name → COLUMN_TYPE
 * (`varchar(255)`, `varbinary(64)`), from the binlog's table description.
 */
export type ColumnTypes = Readonly<Record<string, string>>;

/** A column's type info from its COLUMN_TYPE: DATA_TYPE is its leading word. */
export function columnTypeInfo(name: string, columnType: string): ColumnTypeInfo {
  const dataType = /^[a-z]+/i.exec(columnType.trim())?.[0].toLowerCase() ?? '';
  return { name, dataType, columnType };
}

/**
 * `row` with the policy's masks applied (masks.ts); columns without a mask
 * as they are, masked columns the row lacks stay absent. A masked column
 * whose type is unknown cannot be masked safely and is refused.
 *
 * @throws GovernanceError (no value in it) for a masked column without a
 *   type, or a mask its type cannot take.
 */
export function maskImage(
  policy: GovernancePolicy,
  row: RowValues,
  types: ColumnTypes | undefined,
): RowValues {
  let masked: Record<string, RowValues[string]> | undefined;
  for (const [column, mask] of policy.masking) {
    if (!Object.hasOwn(row, column)) continue;
    const columnType =
      types !== undefined && Object.hasOwn(types, column) ? types[column] : undefined;
    if (columnType === undefined && mask.kind !== 'nullify')
      throw new GovernanceError(
        `policy ${policy.name}: the type of masked column ${column} is unknown, so it cannot be masked`,
        'GOVERNANCE_MASK_UNSUPPORTED',
      );
    masked ??= { ...row };
    masked[column] = applyMask(mask, columnTypeInfo(column, columnType ?? ''), row[column] ?? null);
  }
  return masked ?? row;
}

/** One copy of a row version: the topic, who reads it, and the image it carries. */
export interface RoutedImage {
  readonly topic: string;
  readonly audience: TopicAudience;
  readonly form: 'plain' | 'masked';
  readonly image: RowValues;
}

/**
 * Where one row image of `db.table` from `sourceRegion` is published
 * (`rowTopics`), with the image each topic gets: as written on plain topics,
 * masked on masked ones. A masked topic read only by the source region
 * itself is left out (no region applies its own topics). Empty when no
 * region may hold the row (`default: none`).
 *
 * @throws GovernanceError when the residency cannot be decided (the image
 *   lacks the residency column) or a mask cannot be applied.
 */
export function routeRow(
  layout: GovernanceLayout,
  policy: GovernancePolicy,
  where: { readonly sourceRegion: string; readonly db: string; readonly table: string },
  row: RowValues,
  types: ColumnTypes | undefined,
): { readonly residency: Residency; readonly copies: readonly RoutedImage[] } {
  const residency = residencyOf(policy, layout.zones, layout.regions, row);
  const copies: RoutedImage[] = [];
  let masked: RowValues | undefined;
  for (const { audience, form } of rowTopics(residency)) {
    if (audience.kind === 'masked' && audience.region === where.sourceRegion) continue;
    const topic = governedTopicName(
      layout.topicPrefix,
      audience,
      where.sourceRegion,
      where.db,
      where.table,
    );
    if (form === 'masked') masked ??= maskImage(policy, row, types);
    copies.push({ topic, audience, form, image: form === 'masked' ? (masked as RowValues) : row });
  }
  return { residency, copies };
}

/** The parts of a change event routing reads and rewrites (the envelope's ChangeEvent has them). */
export interface GovernedChange {
  readonly op: string;
  readonly pk: RowValues;
  readonly before: RowValues | null;
  readonly after: RowValues | null;
}

/**
 * The image residency is decided on: the after image, or for a delete the
 * deleted row. Undefined when the change does not carry it.
 */
export function decisionImage(change: GovernedChange): RowValues | undefined {
  return (change.op === 'd' ? change.before : change.after) ?? undefined;
}

/** One copy of a change for one topic. */
export interface RoutedChange<C extends GovernedChange> {
  readonly topic: string;
  readonly audience: TopicAudience;
  readonly form: 'plain' | 'masked';
  readonly change: C;
}

/**
 * {@link routeRow} for a whole change: each copy is the change with its
 * images in the topic's form. The before image of an update keeps its key
 * columns only, on every topic: appliers read nothing else of it (a key
 * change), and the old version of a row whose residency changed may be one
 * the topic's readers may not hold. A delete's before image is the deleted
 * row, masked like an after image.
 *
 * @throws GovernanceError as {@link routeRow}; also when the change lacks
 *   the image to decide on.
 */
export function routeChange<C extends GovernedChange>(
  layout: GovernanceLayout,
  policy: GovernancePolicy,
  where: { readonly sourceRegion: string; readonly db: string; readonly table: string },
  change: C,
  types: ColumnTypes | undefined,
): { readonly residency: Residency; readonly copies: readonly RoutedChange<C>[] } {
  const image = decisionImage(change);
  if (image === undefined)
    throw new GovernanceError(
      `policy ${policy.name}: a ${change.op} change of ${where.db}.${where.table} without its row image cannot be routed`,
      'GOVERNANCE_ROW_INCOMPLETE',
    );
  const { residency, copies } = routeRow(layout, policy, where, image, types);
  const before =
    change.op === 'u' && change.before !== null
      ? Object.fromEntries(Object.keys(change.pk).map((c) => [c, change.before?.[c] ?? null]))
      : change.before;
  return {
    residency,
    copies: copies.map((copy) => ({
      topic: copy.topic,
      audience: copy.audience,
      form: copy.form,
      change:
        change.op === 'd'
          ? { ...change, before: copy.image }
          : { ...change, before, after: copy.image },
    })),
  };
}

/**
 * The apply re-check: whether `ownRegion` may apply `row` that arrived on a
 * topic of `form`. Its audience for the row (`audienceIn(residencyOf(row))`)
 * must be exactly the topic's form: a plain row on a masked topic, a masked
 * one on a plain topic, or a row the region may not hold at all is refused.
 * Returns undefined when allowed, else why not (no value in it).
 */
export function recheckRow(
  policy: GovernancePolicy,
  layout: Pick<GovernanceLayout, 'zones' | 'regions'>,
  ownRegion: string,
  form: 'plain' | 'masked',
  row: RowValues | undefined,
): string | undefined {
  if (row === undefined)
    return `policy ${policy.name}: the event carries no row image to check its residency on`;
  let audience: Audience;
  try {
    audience = audienceIn(residencyOf(policy, layout.zones, layout.regions, row), ownRegion);
  } catch (err) {
    if (err instanceof GovernanceError) return err.message;
    throw err;
  }
  if (audience === form)
    return form === 'masked' ? unmaskedColumnProblem(policy, row, ownRegion) : undefined;
  const may =
    audience === 'none'
      ? `region ${ownRegion} may not hold this row at all`
      : `region ${ownRegion} may hold this row only ${audience}`;
  return `policy ${policy.name}: ${may}, but it came on a ${form} topic`;
}

const HMAC_TEXT = /^[0-9a-f]{64}$/;

/** A value's text, or the UTF-8 text of its bytes when it is base64 of a binary column. */
function textForms(value: string): string[] {
  const forms = [value];
  if (/^[A-Za-z0-9+/]*={0,2}$/.test(value) && value.length % 4 === 0)
    forms.push(Buffer.from(value, 'base64').toString('utf8'));
  return forms;
}

/**
 * Whether each masked column of a row on a masked topic holds what its
 * mask can produce (NULL; for `nullify` only NULL; the 64 hex digits of
 * `hmac`; the `redact` literal; at most `n` characters or bytes for
 * `truncate`), so plaintext forged onto a masked topic is refused too. The
 * column's type is not known here, so a binary column's base64 is read both
 * ways. Undefined when it does, else which column does not (no value).
 */
function unmaskedColumnProblem(
  policy: GovernancePolicy,
  row: RowValues,
  ownRegion: string,
): string | undefined {
  for (const [column, mask] of policy.masking) {
    const value = Object.hasOwn(row, column) ? row[column] : null;
    if (value === null || value === undefined) continue;
    const text = typeof value === 'string' ? value : undefined;
    let ok: boolean;
    switch (mask.kind) {
      case 'nullify':
        ok = false;
        break;
      case 'hmac':
        ok = text !== undefined && textForms(text).some((t) => HMAC_TEXT.test(t));
        break;
      case 'redact':
        ok = text !== undefined && textForms(text).some((t) => t === mask.text);
        break;
      case 'truncate':
        ok =
          text !== undefined &&
          ([...text].length <= mask.length ||
            (textForms(text).length > 1 && Buffer.from(text, 'base64').length <= mask.length));
        break;
    }
    if (!ok)
      return `policy ${policy.name}: column ${column} on a masked topic for ${ownRegion} does not hold a value its ${mask.kind} mask produces`;
  }
  return undefined;
}

/**
 * The regions that may hold some row of `policy` in some form: every
 * region when rows may fall to `default: all`, else the regions of the
 * zones its rules and default name and the regions rows are masked for.
 * Only these can ever hold a copy to evict.
 */
export function regionsThatMayHold(
  policy: GovernancePolicy,
  layout: Pick<GovernanceLayout, 'zones' | 'regions'>,
): readonly string[] {
  if (policy.residency.default.kind === 'all') return [...layout.regions];
  const may = new Set<string>();
  for (const rule of policy.residency.rules) {
    for (const region of layout.zones[rule.zone] ?? []) may.add(region);
    for (const region of rule.masked === 'all' ? layout.regions : rule.masked) may.add(region);
  }
  const fallback = policy.residency.default;
  if (fallback.kind === 'zone')
    for (const region of layout.zones[fallback.zone] ?? []) may.add(region);
  return layout.regions.filter((region) => may.has(region));
}

/**
 * The regions an eviction notice of a row version goes to
 * (docs/GOVERNANCE.md, "Eviction"): every region other than the source that
 * may hold some row of the policy but may hold none of this version. Sent
 * for every version, not only when the residency changes: a region may
 * still hold an older version that won there (a concurrent write), or
 * receive one later (a replay); the notice's version decides, as a
 * delete's would. Regions that can never hold a row of the policy get none.
 */
export function evictionTargets(
  policy: GovernancePolicy,
  layout: Pick<GovernanceLayout, 'zones' | 'regions'>,
  sourceRegion: string,
  residency: Residency,
): readonly string[] {
  return regionsThatMayHold(policy, layout).filter(
    (region) => region !== sourceRegion && audienceIn(residency, region) === 'none',
  );
}
