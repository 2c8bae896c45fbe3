import { createHash } from 'node:crypto';
import { isBinaryDataType } from '../mysql/column-types.js';
import { qualifiedName, quoteId, sqlString } from '../mysql/identifiers.js';
import type { ColumnInfo, TableInfo } from '../mysql/introspect.js';
import {
  APPLIER_SESSION_FLAG,
  INTERNAL_TABLES,
  KEY_HASH_COLUMN,
  KEY_HASH_INDEX,
  VERSION_COLUMNS,
} from '../mysql/internal-tables.js';

/**
 * The SQL `prepare` runs. Pure functions of names and table descriptions, so
 * `--dry-run` prints exactly what a real run would execute.
 */

export function createInternalSchema(schema: string): string {
  return `CREATE DATABASE IF NOT EXISTS ${quoteId(schema)} CHARACTER SET utf8mb4`;
}

/** CREATE TABLE statements for the internal tables, keyed by table name. */
export function internalTableDdl(schema: string): Record<string, string> {
  const t = (name: string): string => qualifiedName(schema, name);
  return {
    // One row per deleted key: the delete's version, so a concurrent remote
    // update can lose to it the same way in every region (DESIGN.md §3).
    [INTERNAL_TABLES.tombstones]: `CREATE TABLE IF NOT EXISTS ${t(INTERNAL_TABLES.tombstones)} (
  tbl VARCHAR(129) NOT NULL COMMENT 'schema.table',
  pk_hash BINARY(32) NOT NULL COMMENT 'SHA-256 of pk',
  pk JSON NOT NULL COMMENT 'key columns as canonical text, in key order',
  ver JSON NOT NULL COMMENT 'version of the delete: {o, h, vv}',
  hlc BIGINT UNSIGNED NOT NULL COMMENT 'ver.h, indexed for the purge',
  PRIMARY KEY (tbl, pk_hash),
  KEY by_hlc (hlc)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
    // Upserted first in every applier transaction; capture drops any
    // transaction that touches it, which is what stops replication loops.
    [INTERNAL_TABLES.applyMarker]: `CREATE TABLE IF NOT EXISTS ${t(INTERNAL_TABLES.applyMarker)} (
  applier VARCHAR(191) NOT NULL,
  source_region VARCHAR(64) NOT NULL,
  batches BIGINT UNSIGNED NOT NULL DEFAULT 0,
  updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (applier)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
    [INTERNAL_TABLES.heartbeat]: `CREATE TABLE IF NOT EXISTS ${t(INTERNAL_TABLES.heartbeat)} (
  region VARCHAR(64) NOT NULL,
  hlc BIGINT UNSIGNED NOT NULL COMMENT 'microseconds since the epoch when the beat was written',
  beat_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (region)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
    [INTERNAL_TABLES.conflicts]: `CREATE TABLE IF NOT EXISTS ${t(INTERNAL_TABLES.conflicts)} (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  detected_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  tbl VARCHAR(129) NOT NULL,
  pk JSON NOT NULL,
  source_region VARCHAR(64) NOT NULL,
  strategy VARCHAR(32) NOT NULL,
  winner VARCHAR(16) NOT NULL,
  local_ver JSON NULL,
  incoming_ver JSON NOT NULL,
  local_row JSON NULL,
  incoming_row JSON NULL,
  PRIMARY KEY (id),
  KEY by_time (detected_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
    // Columns this region dropped (new_name NULL) or renamed, written by capture when
    // it reads the ALTER: apply maps other regions' values for them while those
    // regions have not run the same DDL yet (docs/ARCHITECTURE.md, schema skew).
    [INTERNAL_TABLES.columnHistory]: `CREATE TABLE IF NOT EXISTS ${t(INTERNAL_TABLES.columnHistory)} (
  tbl VARCHAR(129) NOT NULL COMMENT 'schema.table',
  old_name VARCHAR(64) NOT NULL COMMENT 'the column as other regions may still name it',
  new_name VARCHAR(64) NULL COMMENT 'its name here now; NULL when dropped',
  at TIMESTAMP(6) NOT NULL COMMENT 'binlog time of the ALTER',
  PRIMARY KEY (tbl, old_name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  };
}

/**
 * How the version columns are declared: `invisible` wherever the server has
 * INVISIBLE columns; `visible` (ordinary trailing columns) on MySQL
 * 8.0.12–8.0.22 when the operator chose it with `prepare
 * --visible-version-columns`. Every stage finds them by name, so both
 * layouts replicate alike.
 */
export type VersionColumnLayout = 'invisible' | 'visible';

/** ALTER TABLE adding whichever version columns are missing, or undefined when none is. */
export function addVersionColumns(
  table: TableInfo,
  layout: VersionColumnLayout = 'invisible',
): string | undefined {
  const have = new Set(table.columns.map((c) => c.name));
  const invisible = layout === 'invisible' ? ' INVISIBLE' : '';
  const clauses: string[] = [];
  if (!have.has(VERSION_COLUMNS.ts)) {
    clauses.push(
      `ADD COLUMN ${quoteId(VERSION_COLUMNS.ts)} TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)${invisible}`,
    );
  }
  if (!have.has(VERSION_COLUMNS.ver)) {
    clauses.push(`ADD COLUMN ${quoteId(VERSION_COLUMNS.ver)} JSON NULL${invisible}`);
  }
  if (clauses.length === 0) return undefined;
  return `ALTER TABLE ${qualifiedName(table.schema, table.table)} ${clauses.join(', ')}`;
}

/**
 * SQL for one key column's canonical text: HEX for binary types, the
 * server's own text form otherwise. The applier computes tombstone keys with
 * the same expressions (over parameters), so both sides always agree.
 */
export function canonicalKeyPart(column: ColumnInfo, valueSql: string): string {
  return isBinaryDataType(column.dataType) ? `HEX(${valueSql})` : `CAST(${valueSql} AS CHAR)`;
}

/** `JSON_ARRAY(...)` of the key's canonical parts for the row alias (OLD/NEW). */
export function keyJsonSql(table: TableInfo, rowAlias: 'OLD' | 'NEW'): string {
  const byName = new Map(table.columns.map((c) => [c.name, c]));
  const parts = table.primaryKey.map((name) => {
    const column = byName.get(name);
    if (column === undefined)
      throw new Error(`primary-key column ${name} missing from ${table.table}`);
    return canonicalKeyPart(column, `${rowAlias}.${quoteId(name)}`);
  });
  return `JSON_ARRAY(${parts.join(', ')})`;
}

/**
 * One key column's canonical text in the generated key-hash column: the
 * triggers' {@link canonicalKeyPart}, except for CHAR columns, where it is
 * `CAST(RTRIM(col) AS CHAR)`. MariaDB refuses to index a virtual column whose
 * expression reads a CHAR column as text ("Function or expression ... cannot
 * be used in the GENERATED ALWAYS AS clause"): its value would depend on
 * `sql_mode` PAD_CHAR_TO_FULL_LENGTH. RTRIM removes that dependency and gives
 * the same text, since a CHAR value reads back without its trailing spaces
 * (the triggers and the applier run without PAD_CHAR_TO_FULL_LENGTH, which
 * MySQL 8 deprecated and neither server sets by default). MySQL accepts both
 * forms; RTRIM is used on both servers so that a table's definition is the
 * same everywhere.
 */
export function generatedKeyPart(column: ColumnInfo): string {
  const ref = quoteId(column.name);
  return column.dataType === 'char' ? `CAST(RTRIM(${ref}) AS CHAR)` : canonicalKeyPart(column, ref);
}

/**
 * The key-hash column's expression: `UNHEX(SHA2(JSON_ARRAY(...), 256))` over
 * the table's own key columns, byte for byte the tombstone key the delete
 * trigger stores in `_cdc_tombstones.pk_hash` (see {@link generatedKeyPart}).
 * For a TIMESTAMP key column the text, like the trigger's, is in the writing
 * session's time zone (the replicator's sessions use UTC).
 */
export function keyHashSql(table: TableInfo): string {
  const byName = new Map(table.columns.map((c) => [c.name, c]));
  const parts = table.primaryKey.map((name) => {
    const column = byName.get(name);
    if (column === undefined)
      throw new Error(`primary-key column ${name} missing from ${table.table}`);
    return generatedKeyPart(column);
  });
  return `UNHEX(SHA2(JSON_ARRAY(${parts.join(', ')}), 256))`;
}

/**
 * The key-hash column's COMMENT: it names the expression by a digest, so
 * `prepare` sees whether the column still computes the current key's hash
 * (the server rewrites the expression's text, differently by server and
 * version; a comment stays as written).
 */
export function keyHashComment(table: TableInfo): string {
  const digest = createHash('sha256').update(keyHashSql(table)).digest('hex').slice(0, 16);
  return `cdc-replicator tombstone key hash ${digest}`;
}

/**
 * `ALTER TABLE` adding the key-hash column (VIRTUAL, INVISIBLE when
 * `invisible`). Its index is added by a separate statement
 * ({@link addKeyHashIndex}): each alone runs online (LOCK=NONE) on both
 * servers, together they would block writes for the index build.
 */
export function addKeyHashColumn(table: TableInfo, invisible: boolean): string {
  return (
    `ALTER TABLE ${qualifiedName(table.schema, table.table)} ADD COLUMN ${quoteId(KEY_HASH_COLUMN)} ` +
    `BINARY(32) AS (${keyHashSql(table)}) VIRTUAL${invisible ? ' INVISIBLE' : ''} ` +
    `COMMENT ${sqlString(keyHashComment(table))}`
  );
}

/** `ALTER TABLE` adding the secondary index on the key-hash column. */
export function addKeyHashIndex(table: { schema: string; table: string }): string {
  return `ALTER TABLE ${qualifiedName(table.schema, table.table)} ADD INDEX ${quoteId(KEY_HASH_INDEX)} (${quoteId(KEY_HASH_COLUMN)})`;
}

/** `ALTER TABLE` dropping the key-hash column (its index goes with it). */
export function dropKeyHashColumn(table: { schema: string; table: string }): string {
  return `ALTER TABLE ${qualifiedName(table.schema, table.table)} DROP COLUMN ${quoteId(KEY_HASH_COLUMN)}`;
}

/** `ALTER TABLE` dropping the key-hash index. */
export function dropKeyHashIndex(table: { schema: string; table: string }): string {
  return `ALTER TABLE ${qualifiedName(table.schema, table.table)} DROP INDEX ${quoteId(KEY_HASH_INDEX)}`;
}

/** Trigger names stay within MySQL's 64 characters and unique per table. */
export function triggerName(kind: 'ad' | 'bi' | 'bu' | 'gi' | 'gu', table: string): string {
  const plain = `_cdc_${kind}_${table}`;
  if (plain.length <= 64) return plain;
  const hash = createHash('sha256').update(table).digest('hex').slice(0, 8);
  return `_cdc_${kind}_${table.slice(0, 45)}_${hash}`;
}

export interface TriggerDefinition {
  name: string;
  table: TableInfo;
  /** The trigger body exactly as `information_schema.TRIGGERS.ACTION_STATEMENT` reports it. */
  body: string;
  /** The full CREATE TRIGGER statement. */
  create: string;
}

/** A trigger on `table` with its CREATE statement. */
// Every trigger body starts with the applier-session test, its DECLAREs in a
// nested block after it: the applier's sessions (most row changes in a region
// that receives) leave at once.
export function triggerDefinition(
  table: TableInfo,
  name: string,
  timing: 'AFTER DELETE' | 'BEFORE UPDATE' | 'BEFORE INSERT',
  body: string,
): TriggerDefinition {
  return {
    name,
    table,
    body,
    create: `CREATE TRIGGER ${qualifiedName(table.schema, name)} ${timing} ON ${qualifiedName(table.schema, table.table)} FOR EACH ROW ${body}`,
  };
}

/** Exact microseconds since the epoch of a TIMESTAMP(6) expression (no time-zone round trip). */
function micros(timestampSql: string): string {
  return `CAST(UNIX_TIMESTAMP(${timestampSql}) * 1000000 AS UNSIGNED)`;
}

/**
 * Statements that set the variable `target` to a row's effective hlc from
 * its version columns, DESIGN.md §3, as `effectiveVersion()` in
 * src/versioning computes it: `_cdc_ver.h` when `_cdc_ts` still equals it
 * (the applier wrote last), otherwise `max(_cdc_ts, h + 1, max(vv) + 1)`.
 * A loop, not `JSON_TABLE`: MySQL 8.0.12 refuses `JSON_TABLE` inside a
 * trigger ("Unknown database ''") and returns no rows for it over an outer
 * column. Needs `v_vals LONGTEXT` and `v_j INT` declared.
 */
function effectiveHlcStatements(target: string, tsSql: string, verSql: string): string {
  return `SET ${target} = ${micros(tsSql)};
    IF ${verSql} IS NOT NULL AND NOT (CAST(JSON_EXTRACT(${verSql}, '$.h') AS UNSIGNED) <=> ${target}) THEN
      SET ${target} = GREATEST(${target}, CAST(JSON_EXTRACT(${verSql}, '$.h') AS UNSIGNED) + 1);
      SET v_vals = JSON_EXTRACT(${verSql}, '$.vv.*');
      SET v_j = 0;
      WHILE v_j < COALESCE(JSON_LENGTH(v_vals), 0) DO
        SET ${target} = GREATEST(${target}, CAST(JSON_EXTRACT(v_vals, CONCAT('$[', v_j, ']')) AS UNSIGNED) + 1);
        SET v_j = v_j + 1;
      END WHILE;
    END IF;`;
}

/** The HLC rule: a local write's timestamp exceeds the version it replaces, whatever the clock says. */
function nextHlcSql(previousHlcSql: string): string {
  return `GREATEST(${micros('NOW(6)')}, ${previousHlcSql} + 1)`;
}

/**
 * A stored `_cdc_ver` that makes the row's effective version `hlcSql + 1`
 * with the vector `vvSql` (plus this region): origin here, hlc `hlcSql`, and
 * this region's vector entry at `hlcSql`. Valid while the row's `_cdc_ts`
 * (the server's stamp, `NOW(6)`) stays below `hlcSql`: then `h` differs from
 * the stamp and the effective version is `max(ts, max(vv) + 1)`, DESIGN.md §3.
 *
 * This is how the triggers apply the HLC rule without writing `_cdc_ts`:
 * MySQL 8 (8.0.12 at least) overwrites a trigger's assignment to a column
 * with `DEFAULT`/`ON UPDATE CURRENT_TIMESTAMP` unless the statement itself
 * names it, while MariaDB keeps it. Raising the vector works on both.
 */
function raisedVersionSql(region: string, hlcSql: string, vvSql: string): string {
  const selfEntry = sqlString(`$."${region}"`);
  return `JSON_SET('{}', '$.o', ${sqlString(region)}, '$.h', ${hlcSql},
                   '$.vv', JSON_EXTRACT(JSON_SET(${vvSql}, ${selfEntry}, ${hlcSql}), '$'))`;
}

/**
 * AFTER DELETE: a local delete leaves a tombstone atomically with the delete
 * (DESIGN.md §3). Its version follows the HLC rule: greater than the deleted
 * row's effective version, and its vector extends the row's vector, so the
 * delete causally follows every write it removed.
 */
export function deleteTrigger(
  table: TableInfo,
  internalSchema: string,
  region: string,
): TriggerDefinition {
  const name = triggerName('ad', table.table);
  const ts = `OLD.${quoteId(VERSION_COLUMNS.ts)}`;
  const ver = `OLD.${quoteId(VERSION_COLUMNS.ver)}`;
  const tableText = sqlString(`${table.schema}.${table.table}`);
  // JSON_SET, not JSON_OBJECT: with a utf8mb4 server charset MariaDB 10.11's
  // JSON_OBJECT quotes a BIGINT UNSIGNED variable as a string.
  const body = `BEGIN
  IF ${APPLIER_SESSION_FLAG} IS NULL THEN BEGIN
  DECLARE v_hlc BIGINT UNSIGNED;
  DECLARE v_vv LONGTEXT;
  DECLARE v_key LONGTEXT CHARACTER SET utf8mb4;
  DECLARE v_vals LONGTEXT;
  DECLARE v_j INT;
    ${effectiveHlcStatements('v_hlc', ts, ver)}
    SET v_hlc = ${nextHlcSql('v_hlc')};
    SET v_vv = JSON_SET(COALESCE(JSON_EXTRACT(${ver}, '$.vv'), '{}'), ${sqlString(`$."${region}"`)}, v_hlc);
    SET v_key = ${keyJsonSql(table, 'OLD')};
    INSERT INTO ${qualifiedName(internalSchema, INTERNAL_TABLES.tombstones)} (tbl, pk_hash, pk, ver, hlc)
      VALUES (${tableText}, UNHEX(SHA2(v_key, 256)), v_key,
              JSON_SET('{}', '$.o', ${sqlString(region)}, '$.h', v_hlc, '$.vv', JSON_EXTRACT(v_vv, '$')), v_hlc)
      ON DUPLICATE KEY UPDATE pk = VALUES(pk), ver = VALUES(ver), hlc = VALUES(hlc);
  END; END IF;
END`;
  return triggerDefinition(table, name, 'AFTER DELETE', body);
}

/**
 * BEFORE UPDATE: applies the HLC rule to local updates. `ON UPDATE
 * CURRENT_TIMESTAMP(6)` alone stamps the wall clock, which may be behind the
 * version being replaced (clock skew, or a remote write stamped ahead); two
 * local writes would then share one version, or the later one would carry
 * the lower version, and be dropped elsewhere.
 *
 * The trigger names no column but the key and the version columns, so that
 * columns added, dropped or renamed after `prepare` neither escape
 * versioning nor break the application's writes (issue: schema changes
 * while replicating). Whether a row changed is left to the server: the
 * `ON UPDATE` stamp is stored only when some column's value changed, so a
 * no-op update keeps its version. When that stamp would not exceed the row's
 * version (the clock behind it), the trigger raises the stored version
 * instead (`raisedVersionSql`), which the server then stores with the row.
 *
 * Inside the trigger `NEW._cdc_ts` is `NOW(6)`, except on MySQL for an
 * update that changes nothing, where it is still `OLD._cdc_ts`. So `NEW =
 * OLD` while `OLD` is not `NOW(6)` can only be a MySQL no-op, which is left
 * alone (a change within the same statement time as the row's last write
 * still gets a new version).
 *
 * An update that changes the primary key is a delete of the old key and an
 * insert of the new one, which is how other regions apply it (with the one
 * version capture publishes for the update). So it leaves a tombstone for
 * the old key here too, with that version, as the delete trigger would;
 * without it, a concurrent update of the old key arriving later brings the
 * row back in this region only. And, as the insert trigger does for a
 * re-insert, when the new key has a tombstone the row's version follows it:
 * above it, and with its vector merged in. Otherwise the move loses to that
 * old delete in every other region (by hlc under skew, or by vector under
 * region priority) and stays only here.
 */
export function updateTrigger(
  table: TableInfo,
  internalSchema: string,
  region: string,
): TriggerDefinition {
  const name = triggerName('bu', table.table);
  const ts = quoteId(VERSION_COLUMNS.ts);
  const ver = quoteId(VERSION_COLUMNS.ver);
  const tombstones = qualifiedName(internalSchema, INTERNAL_TABLES.tombstones);
  const tableText = sqlString(`${table.schema}.${table.table}`);
  const keyChanged = table.primaryKey
    .map((c) => `NOT (NEW.${quoteId(c)} <=> OLD.${quoteId(c)})`)
    .join(' OR ');
  const selfEntry = sqlString(`$."${region}"`);
  const body = `BEGIN
  IF ${APPLIER_SESSION_FLAG} IS NULL THEN BEGIN
  DECLARE v_now BIGINT UNSIGNED;
  DECLARE v_hlc BIGINT UNSIGNED;
  DECLARE v_old_hlc BIGINT UNSIGNED;
  DECLARE v_new_key_ver LONGTEXT;
  DECLARE v_new_key_hlc BIGINT UNSIGNED;
  DECLARE v_vv LONGTEXT;
  DECLARE v_key LONGTEXT CHARACTER SET utf8mb4;
  DECLARE v_regions LONGTEXT;
  DECLARE v_path VARCHAR(80);
  DECLARE v_entry BIGINT UNSIGNED;
  DECLARE v_i INT DEFAULT 0;
  DECLARE v_vals LONGTEXT;
  DECLARE v_j INT;
    SET NEW.${ver} = OLD.${ver};
    ${effectiveHlcStatements('v_old_hlc', `OLD.${ts}`, `OLD.${ver}`)}
    SET v_now = ${micros('NOW(6)')};
    SET v_vv = COALESCE(JSON_EXTRACT(OLD.${ver}, '$.vv'), '{}');
    IF ${keyChanged} THEN
      SELECT ver, hlc INTO v_new_key_ver, v_new_key_hlc FROM ${tombstones}
        WHERE tbl = ${tableText} AND pk_hash = UNHEX(SHA2(${keyJsonSql(table, 'NEW')}, 256));
      IF v_new_key_ver IS NULL AND v_now > v_old_hlc THEN
        -- The stamp alone is the new version, with the row's vector.
        SET v_hlc = v_now;
      ELSE
        SET v_hlc = GREATEST(v_now + 1, v_old_hlc + 1);
        IF v_new_key_ver IS NOT NULL THEN
          SET v_hlc = GREATEST(v_hlc, v_new_key_hlc + 1);
          SET v_regions = JSON_KEYS(JSON_EXTRACT(v_new_key_ver, '$.vv'));
          WHILE v_i < JSON_LENGTH(v_regions) DO
            SET v_path = CONCAT('$."', JSON_UNQUOTE(JSON_EXTRACT(v_regions, CONCAT('$[', v_i, ']'))), '"');
            SET v_entry = CAST(JSON_EXTRACT(JSON_EXTRACT(v_new_key_ver, '$.vv'), v_path) AS UNSIGNED);
            IF COALESCE(CAST(JSON_EXTRACT(v_vv, v_path) AS UNSIGNED), 0) < v_entry THEN
              SET v_vv = JSON_SET(v_vv, v_path, v_entry);
            END IF;
            SET v_i = v_i + 1;
          END WHILE;
        END IF;
        SET NEW.${ver} = ${raisedVersionSql(region, 'v_hlc', 'v_vv')};
        -- The row's effective version is now one above the raised one.
        SET v_hlc = v_hlc + 1;
      END IF;
      -- The tombstone of the old key gets the version capture publishes for this update.
      SET v_vv = JSON_SET(v_vv, ${selfEntry}, v_hlc);
      SET v_key = ${keyJsonSql(table, 'OLD')};
      INSERT INTO ${tombstones} (tbl, pk_hash, pk, ver, hlc)
        VALUES (${tableText}, UNHEX(SHA2(v_key, 256)), v_key,
                JSON_SET('{}', '$.o', ${sqlString(region)}, '$.h', v_hlc, '$.vv', JSON_EXTRACT(v_vv, '$')), v_hlc)
        ON DUPLICATE KEY UPDATE pk = VALUES(pk), ver = VALUES(ver), hlc = VALUES(hlc);
    ELSEIF v_now <= v_old_hlc AND NOT (NEW.${ts} <=> OLD.${ts} AND NOT OLD.${ts} <=> NOW(6)) THEN
      SET NEW.${ver} = ${raisedVersionSql(region, 'v_old_hlc + 1', 'v_vv')};
    END IF;
  END; END IF;
END`;
  return triggerDefinition(table, name, 'BEFORE UPDATE', body);
}

/**
 * BEFORE INSERT: a local re-insert of a deleted key gets a version above the
 * tombstone's, with the tombstone's vector in it, so the new row causally
 * follows the delete and obeys the HLC rule even when the local clock is
 * behind the delete. Like the update trigger, it raises `_cdc_ver` rather
 * than writing `_cdc_ts` (which MySQL would overwrite with the DEFAULT).
 */
export function insertTrigger(
  table: TableInfo,
  internalSchema: string,
  region: string,
): TriggerDefinition {
  const name = triggerName('bi', table.table);
  const tableText = sqlString(`${table.schema}.${table.table}`);
  const ver = quoteId(VERSION_COLUMNS.ver);
  const body = `BEGIN
  IF ${APPLIER_SESSION_FLAG} IS NULL THEN BEGIN
  DECLARE v_tomb LONGTEXT;
  DECLARE v_hlc BIGINT UNSIGNED;
    SELECT ver, hlc INTO v_tomb, v_hlc FROM ${qualifiedName(internalSchema, INTERNAL_TABLES.tombstones)}
      WHERE tbl = ${tableText} AND pk_hash = UNHEX(SHA2(${keyJsonSql(table, 'NEW')}, 256));
    SET NEW.${ver} = v_tomb;
    IF v_tomb IS NOT NULL AND ${micros('NOW(6)')} <= v_hlc THEN
      -- The clock is behind the delete: a version above it, the stamp below that.
      SET NEW.${ver} = ${raisedVersionSql(region, 'v_hlc + 1', "COALESCE(JSON_EXTRACT(v_tomb, '$.vv'), '{}')")};
    END IF;
  END; END IF;
END`;
  return triggerDefinition(table, name, 'BEFORE INSERT', body);
}

export function dropTrigger(schema: string, name: string): string {
  return `DROP TRIGGER IF EXISTS ${qualifiedName(schema, name)}`;
}
