import { createHash } from 'node:crypto';
import { isBinaryDataType } from '../mysql/column-types.js';
import { qualifiedName, quoteId, sqlString } from '../mysql/identifiers.js';
import type { ColumnInfo, TableInfo } from '../mysql/introspect.js';
import {
  APPLIER_SESSION_FLAG,
  INTERNAL_TABLES,
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

/** ALTER TABLE adding whichever version columns are missing, or undefined when none is. */
export function addVersionColumns(table: TableInfo): string | undefined {
  const have = new Set(table.columns.map((c) => c.name));
  const clauses: string[] = [];
  if (!have.has(VERSION_COLUMNS.ts)) {
    clauses.push(
      `ADD COLUMN ${quoteId(VERSION_COLUMNS.ts)} TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6) INVISIBLE`,
    );
  }
  if (!have.has(VERSION_COLUMNS.ver)) {
    clauses.push(`ADD COLUMN ${quoteId(VERSION_COLUMNS.ver)} JSON NULL INVISIBLE`);
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

/** Trigger names stay within MySQL's 64 characters and unique per table. */
export function triggerName(kind: 'ad' | 'bi' | 'bu', table: string): string {
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
function triggerDefinition(
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
 * A TIMESTAMP(6) value from microseconds. Integer arithmetic only: `x / 1e6`
 * would be rounded to `div_precision_increment` (4) decimals.
 */
function timestampFromMicros(microsSql: string): string {
  return `FROM_UNIXTIME(${microsSql} DIV 1000000) + INTERVAL (${microsSql} MOD 1000000) MICROSECOND`;
}

/**
 * SQL for the effective hlc of a row from its version columns, DESIGN.md §3:
 * `_cdc_ver.h` when `_cdc_ts` still equals it (the applier wrote last),
 * otherwise `max(_cdc_ts, max(vv) + 1µs)`. Mirrors `effectiveVersion()` in
 * src/versioning.
 */
export function effectiveHlcSql(tsSql: string, verSql: string): string {
  return `CASE
      WHEN ${verSql} IS NULL THEN ${micros(tsSql)}
      WHEN CAST(JSON_VALUE(${verSql}, '$.h') AS UNSIGNED) = ${micros(tsSql)} THEN ${micros(tsSql)}
      ELSE GREATEST(${micros(tsSql)}, 1 + (SELECT COALESCE(MAX(jt.v), 0)
        FROM JSON_TABLE(JSON_EXTRACT(${verSql}, '$.vv.*'), '$[*]' COLUMNS (v BIGINT UNSIGNED PATH '$')) AS jt))
    END`;
}

/** The HLC rule: a local write's timestamp exceeds the version it replaces, whatever the clock says. */
function nextHlcSql(previousHlcSql: string): string {
  return `GREATEST(${micros('NOW(6)')}, ${previousHlcSql} + 1)`;
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
  DECLARE v_hlc BIGINT UNSIGNED;
  DECLARE v_vv LONGTEXT;
  DECLARE v_key LONGTEXT;
  IF ${APPLIER_SESSION_FLAG} IS NULL THEN
    SET v_hlc = ${nextHlcSql(effectiveHlcSql(ts, ver))};
    SET v_vv = JSON_SET(COALESCE(JSON_EXTRACT(${ver}, '$.vv'), '{}'), ${sqlString(`$."${region}"`)}, v_hlc);
    SET v_key = ${keyJsonSql(table, 'OLD')};
    INSERT INTO ${qualifiedName(internalSchema, INTERNAL_TABLES.tombstones)} (tbl, pk_hash, pk, ver, hlc)
      VALUES (${tableText}, UNHEX(SHA2(v_key, 256)), v_key,
              JSON_SET('{}', '$.o', ${sqlString(region)}, '$.h', v_hlc, '$.vv', JSON_EXTRACT(v_vv, '$')), v_hlc)
      ON DUPLICATE KEY UPDATE pk = VALUES(pk), ver = VALUES(ver), hlc = VALUES(hlc);
  END IF;
END`;
  return triggerDefinition(table, name, 'AFTER DELETE', body);
}

/**
 * BEFORE UPDATE: applies the HLC rule to local updates. `ON UPDATE
 * CURRENT_TIMESTAMP(6)` alone stamps the wall clock, which may be behind the
 * version being replaced (clock skew, or a remote write stamped ahead); two
 * local writes would then share one version and the second would be dropped
 * elsewhere as a duplicate.
 *
 * The trigger names no column but the key and the version columns, so that
 * columns added, dropped or renamed after `prepare` neither escape
 * versioning nor break the application's writes (issue: schema changes
 * while replicating). Whether a row changed is left to the server: the
 * `ON UPDATE` stamp (which MariaDB has already put in `NEW._cdc_ts` when the
 * trigger runs) is stored only when some column's value changed, so a no-op
 * update keeps its version. The trigger steps in only when that stamp would
 * not exceed the row's version (the clock behind it): then it sets the next
 * HLC value itself, which makes even a no-op update a new version; that
 * version replicates like any other, so the regions stay alike.
 *
 * An update that changes the primary key is a delete of the old key and an
 * insert of the new one, which is how other regions apply it (with the one
 * version capture publishes for the update). So it leaves a tombstone for
 * the old key here too, with that version, as the delete trigger would;
 * without it, a concurrent update of the old key arriving later brings the
 * row back in this region only. And, as the insert trigger does for a
 * re-insert, when the new key has a tombstone the row's version follows it:
 * stamped above it, and with its vector merged in (stored as a version just
 * below the stamp, so the effective version is `self` at the stamp with the
 * union of both histories). Otherwise the move loses to that old delete in
 * every other region (by hlc under skew, or by vector under region priority)
 * and stays only here.
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
  DECLARE v_hlc BIGINT UNSIGNED;
  DECLARE v_old_hlc BIGINT UNSIGNED;
  DECLARE v_new_key_ver LONGTEXT;
  DECLARE v_new_key_hlc BIGINT UNSIGNED;
  DECLARE v_vv LONGTEXT;
  DECLARE v_key LONGTEXT;
  DECLARE v_regions LONGTEXT;
  DECLARE v_path VARCHAR(80);
  DECLARE v_entry BIGINT UNSIGNED;
  DECLARE v_i INT DEFAULT 0;
  IF ${APPLIER_SESSION_FLAG} IS NULL THEN
    SET NEW.${ver} = OLD.${ver};
    SET v_old_hlc = ${effectiveHlcSql(`OLD.${ts}`, `OLD.${ver}`)};
    IF ${keyChanged} THEN
      SET v_hlc = ${nextHlcSql('v_old_hlc')};
      SET v_vv = COALESCE(JSON_EXTRACT(OLD.${ver}, '$.vv'), '{}');
      SELECT ver, hlc INTO v_new_key_ver, v_new_key_hlc FROM ${tombstones}
        WHERE tbl = ${tableText} AND pk_hash = UNHEX(SHA2(${keyJsonSql(table, 'NEW')}, 256));
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
        SET NEW.${ver} = JSON_SET('{}', '$.o', ${sqlString(region)}, '$.h', v_hlc - 1,
                                  '$.vv', JSON_EXTRACT(JSON_SET(v_vv, ${selfEntry}, v_hlc - 1), '$'));
      END IF;
      SET v_vv = JSON_SET(v_vv, ${selfEntry}, v_hlc);
      SET v_key = ${keyJsonSql(table, 'OLD')};
      INSERT INTO ${tombstones} (tbl, pk_hash, pk, ver, hlc)
        VALUES (${tableText}, UNHEX(SHA2(v_key, 256)), v_key,
                JSON_SET('{}', '$.o', ${sqlString(region)}, '$.h', v_hlc, '$.vv', JSON_EXTRACT(v_vv, '$')), v_hlc)
        ON DUPLICATE KEY UPDATE pk = VALUES(pk), ver = VALUES(ver), hlc = VALUES(hlc);
      SET NEW.${ts} = ${timestampFromMicros('v_hlc')};
    ELSEIF ${micros(`NEW.${ts}`)} <= v_old_hlc THEN
      SET v_hlc = ${nextHlcSql('v_old_hlc')};
      SET NEW.${ts} = ${timestampFromMicros('v_hlc')};
    END IF;
  END IF;
END`;
  return triggerDefinition(table, name, 'BEFORE UPDATE', body);
}

/**
 * BEFORE INSERT: a local re-insert of a deleted key inherits the tombstone's
 * version as its stored version and a timestamp past it, so the new row
 * causally follows the delete and obeys the HLC rule even when the local
 * clock is behind the delete.
 */
export function insertTrigger(table: TableInfo, internalSchema: string): TriggerDefinition {
  const name = triggerName('bi', table.table);
  const tableText = sqlString(`${table.schema}.${table.table}`);
  const ts = quoteId(VERSION_COLUMNS.ts);
  const ver = quoteId(VERSION_COLUMNS.ver);
  const body = `BEGIN
  DECLARE v_tomb LONGTEXT;
  DECLARE v_hlc BIGINT UNSIGNED;
  IF ${APPLIER_SESSION_FLAG} IS NULL THEN
    SELECT ver, hlc INTO v_tomb, v_hlc FROM ${qualifiedName(internalSchema, INTERNAL_TABLES.tombstones)}
      WHERE tbl = ${tableText} AND pk_hash = UNHEX(SHA2(${keyJsonSql(table, 'NEW')}, 256));
    SET NEW.${ver} = v_tomb;
    IF v_tomb IS NOT NULL THEN
      SET NEW.${ts} = ${timestampFromMicros(nextHlcSql('v_hlc'))};
    END IF;
  END IF;
END`;
  return triggerDefinition(table, name, 'BEFORE INSERT', body);
}

export function dropTrigger(schema: string, name: string): string {
  return `DROP TRIGGER IF EXISTS ${qualifiedName(schema, name)}`;
}
