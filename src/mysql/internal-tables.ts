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
 * Session variable the applier sets so the tombstone triggers skip its own
 * writes (it records tombstones itself, with the incoming version).
 */
export const APPLIER_SESSION_FLAG = '@cdc_applier';

/** True for names the replicator owns (`_cdc_*`), which are never replicated as data. */
export function isInternalTable(table: string): boolean {
  return table.startsWith('_cdc_');
}
