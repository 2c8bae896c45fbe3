/**
 * Names of the replicator's own objects in each region's database. They are
 * internal: capture never publishes them as data (DESIGN.md §4), except
 * heartbeats, which travel on purpose to measure lag.
 */

export const INTERNAL_TABLES = {
  tombstones: '_cdc_tombstones',
  applyMarker: '_cdc_apply_marker',
  heartbeat: '_cdc_heartbeat',
  conflicts: '_cdc_conflicts',
  columnHistory: '_cdc_column_history',
} as const;

/** The two INVISIBLE version columns `prepare` adds to every replicated table (DESIGN.md §3). */
export const VERSION_COLUMNS = {
  /** Stamped by MySQL on every local write; set explicitly by the applier. */
  ts: '_cdc_ts',
  /** `{o, h, vv}` written by the applier; local writes never touch it. */
  ver: '_cdc_ver',
} as const;

/**
 * The generated column `prepare` adds to every governed table (and only
 * those): `UNHEX(SHA2(JSON_ARRAY(<canonical key parts>), 256))` over the row's
 * own key columns, the tombstone key the delete trigger stores in
 * `_cdc_tombstones.pk_hash`, VIRTUAL and indexed (by {@link KEY_HASH_INDEX}),
 * INVISIBLE where the server has INVISIBLE columns. An eviction notice names
 * its row by that hash only, and the applier finds the row through the index
 * (docs/GOVERNANCE.md, "Eviction support"). It is never data: capture,
 * apply, snapshot and verify leave it out like the version columns.
 */
export const KEY_HASH_COLUMN = '_cdc_key_hash';

/** The secondary index on {@link KEY_HASH_COLUMN}, named like it. */
export const KEY_HASH_INDEX = '_cdc_key_hash';

/**
 * Every column the replicator adds to a replicated table. None of them is
 * ever replicated as data: the version columns travel as the event's
 * version, the key hash is computed by each server from the key.
 */
export const INTERNAL_COLUMNS: ReadonlySet<string> = new Set([
  VERSION_COLUMNS.ts,
  VERSION_COLUMNS.ver,
  KEY_HASH_COLUMN,
]);

/** True for the columns the replicator adds to replicated tables ({@link INTERNAL_COLUMNS}). */
export function isInternalColumn(name: string): boolean {
  return INTERNAL_COLUMNS.has(name);
}

/** Whether a described table has the key-hash column (a governed table `prepare` has run on). */
export function hasKeyHashColumn(table: {
  readonly columns: readonly { name: string }[];
}): boolean {
  return table.columns.some((c) => c.name === KEY_HASH_COLUMN);
}

/**
 * Session variable the applier sets so the tombstone triggers skip its own
 * writes (it records tombstones itself, with the incoming version).
 */
export const APPLIER_SESSION_FLAG = '@cdc_applier';

/** True for names the replicator owns (`_cdc_*`), which are never replicated as data. */
export function isInternalTable(table: string): boolean {
  return table.startsWith('_cdc_');
}
