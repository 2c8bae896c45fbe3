import type { JsonScalar, RowImage } from '../bus/envelope.js';
import type { ColumnInfo, TableInfo } from '../mysql/introspect.js';
import { RejectedEvent } from './apply-event.js';
import type { MissingColumn } from './auto-add-columns.js';

/**
 * Schema skew (DESIGN.md §6a): an event that is only early. Regions change
 * their schemas one after the other, so an event may name a column or a
 * table this region does not have yet, or carry a value a local column
 * cannot hold until it is widened here too. Such an event is held with its
 * partition and applied once the local schema allows it, never dead-lettered.
 */

/** Why an event is held; the `reason` label of `cdc_apply_held`. */
/**
 * `row_missing`: an edit request (docs/GOVERNANCE.md, "Edits in a masked
 * region") for a row that has not reached its executor yet.
 */
export type HoldReason = 'table_missing' | 'column_missing' | 'type_too_narrow' | 'row_missing';

/**
 * An event the local schema cannot take yet. It extends `RejectedEvent` so
 * that code judging an event once (the dead-letter replay) reports it as
 * still failing; the apply stage checks for it first and holds instead.
 */
export class SchemaSkew extends RejectedEvent {
  constructor(
    readonly holdReason: HoldReason,
    /** What is missing or too narrow here, for `/readyz`: `column tier missing here`. */
    readonly what: string,
    cause?: unknown,
    /** For `column_missing` found in the event: the columns, with the source's types when sent. */
    readonly columns?: readonly MissingColumn[],
  ) {
    super(holdReason, what, cause);
  }
}

/**
 * MySQL errors that mean the local schema does not fit the event yet:
 * unknown column (1054), no such table (1146), and, under the applier's
 * strict `sql_mode`, a value the column type cannot hold: data too long
 * (1406), out of range (1264), truncated (1265, e.g. an ENUM member not
 * added here yet), incorrect value for the type (1366, 1292).
 */
export const SCHEMA_SKEW_ERRNOS: ReadonlySet<number> = new Set([
  1054, 1146, 1406, 1264, 1265, 1366, 1292,
]);

/** Whether `err` is a MySQL error that `SCHEMA_SKEW_ERRNOS` lists. */
export function isSchemaSkewError(err: unknown): boolean {
  const errno = (err as { errno?: unknown } | null)?.errno;
  return typeof errno === 'number' && SCHEMA_SKEW_ERRNOS.has(errno);
}

/** The hold for a MySQL schema-skew error whose cause the event checks did not find. */
export function skewFromMysqlError(err: unknown, table: string): SchemaSkew {
  const { errno, sqlMessage } = err as { errno?: unknown; sqlMessage?: unknown };
  const detail = typeof sqlMessage === 'string' ? sqlMessage : String(err);
  if (errno === 1146) return new SchemaSkew('table_missing', `table ${table} missing here`, err);
  if (errno === 1054)
    return new SchemaSkew('column_missing', `a column missing here (${detail})`, err);
  return new SchemaSkew(
    'type_too_narrow',
    `a value the local types cannot hold (MySQL ${String(errno)}: ${detail})`,
    err,
  );
}

/**
 * Column names a replicated table may carry that the target lacks: what an
 * unquoted MySQL identifier allows (ASCII letters, digits, `$`, `_`, and
 * U+0080..U+FFFF), at most 64 characters. A missing column with any other
 * name is treated as forged (it is invalid in itself) and dead-lettered
 * rather than holding the partition until someone creates it.
 */
const PLAUSIBLE_COLUMN = /^[0-9A-Za-z$_\u0080-\uffff]{1,64}$/u;

export function isPlausibleColumnName(name: string): boolean {
  return PLAUSIBLE_COLUMN.test(name) && !/^[0-9]+$/.test(name);
}

/** What a column holds that a strict session does not check itself, read once per column. */
type WidthLimit =
  | { readonly kind: 'chars'; readonly max: number }
  | { readonly kind: 'decimal'; readonly precision: number; readonly scale: number };

function widthLimitOf(column: ColumnInfo): WidthLimit | undefined {
  if (column.dataType === 'varchar' || column.dataType === 'char') {
    const length = /\((\d+)\)/.exec(column.columnType)?.[1];
    return length === undefined ? undefined : { kind: 'chars', max: Number(length) };
  }
  if (column.dataType === 'decimal') {
    const match = /\((\d+)(?:,(\d+))?\)/.exec(column.columnType);
    if (match === null) return undefined;
    return { kind: 'decimal', precision: Number(match[1]), scale: Number(match[2] ?? 0) };
  }
  return undefined;
}

/**
 * Why `value` does not fit `column` (whose `limit` it is) when MySQL would
 * not say so itself: a strict session rejects a too-long string or an
 * out-of-range number, but a DECIMAL silently rounds extra fraction digits.
 * Character lengths are checked here too, so the hold names the column.
 * Undefined when it fits (or when only MySQL can tell).
 */
function exceeds(column: ColumnInfo, limit: WidthLimit, value: JsonScalar): string | undefined {
  if (limit.kind === 'chars') {
    // UTF-16 units bound code points from above: most values fit without counting.
    if (typeof value !== 'string' || value.length <= limit.max) return undefined;
    const chars = [...value].length;
    return chars > limit.max
      ? `column ${column.name} ${column.columnType} cannot hold ${chars} characters`
      : undefined;
  }
  if (typeof value !== 'string' && typeof value !== 'number') return undefined;
  const digits = /^[+-]?(\d*)(?:\.(\d*))?$/.exec(String(value));
  if (digits === null) return undefined;
  const integer = (digits[1] ?? '').replace(/^0+/, '');
  const fraction = (digits[2] ?? '').replace(/0+$/, '');
  return integer.length > limit.precision - limit.scale || fraction.length > limit.scale
    ? `column ${column.name} ${column.columnType} cannot hold ${String(value)}`
    : undefined;
}

/**
 * The columns of a described table that have a {@link WidthLimit}, by name:
 * computed once per description (the applier checks every event's image).
 */
const limitsByTable = new WeakMap<
  TableInfo,
  ReadonlyMap<string, { readonly column: ColumnInfo; readonly limit: WidthLimit }>
>();

function limitsOf(
  table: TableInfo,
): ReadonlyMap<string, { readonly column: ColumnInfo; readonly limit: WidthLimit }> {
  let limits = limitsByTable.get(table);
  if (limits === undefined) {
    const built = new Map<string, { column: ColumnInfo; limit: WidthLimit }>();
    for (const column of table.columns) {
      const limit = widthLimitOf(column);
      if (limit !== undefined) built.set(column.name, { column, limit });
    }
    limits = built;
    limitsByTable.set(table, limits);
  }
  return limits;
}

/** The first value of `image` that a local column cannot hold, as a hold. */
export function imageTooWide(table: TableInfo, image: RowImage): SchemaSkew | undefined {
  const limits = limitsOf(table);
  if (limits.size === 0) return undefined;
  for (const name in image) {
    if (!Object.hasOwn(image, name)) continue;
    const checked = limits.get(name);
    const value = image[name];
    if (checked === undefined || value === null || value === undefined) continue;
    const why = exceeds(checked.column, checked.limit, value);
    if (why !== undefined) return new SchemaSkew('type_too_narrow', why);
  }
  return undefined;
}
