/**
 * Which tables a DDL statement from the binlog touches, as far as capture's
 * self-repair needs to know: the tables that exist under a name after the
 * statement (created, altered, renamed to), the ones truncated, and schemas
 * whose triggers changed. It reads the statement's head only; anything it
 * does not recognise touches nothing (the periodic drift check covers it).
 */

import { isInternalColumn } from '../mysql/internal-tables.js';

/** A table named by a statement, with the session's default schema filled in. */
export interface DdlTable {
  schema: string;
  table: string;
}

/**
 * A column of a table dropped (`newName` null) or renamed by an `ALTER
 * TABLE`. Apply maps other regions' values for `oldName` by it while they
 * have not run the same statement yet.
 */
export interface DdlColumnChange extends DdlTable {
  oldName: string;
  newName: string | null;
}

export interface DdlTouches {
  /** Tables that exist under these names after the statement and may need repair. */
  changed: DdlTable[];
  /** Columns the statement dropped or renamed, on the table's name after the statement. */
  columns: DdlColumnChange[];
  /** Tables emptied by TRUNCATE. */
  truncated: DdlTable[];
  /** Schemas whose triggers were created or dropped (the statement need not name the table). */
  triggerSchemas: string[];
}

const IDENT = '(?:`(?:[^`]|``)+`|[A-Za-z0-9_$]+)';
const NAME = `${IDENT}(?:\\s*\\.\\s*${IDENT})?`;
const LEADING_COMMENTS = /^(?:\s*(?:\/\*[\s\S]*?\*\/|#[^\n]*\n|--\s[^\n]*\n))*\s*/;

const CREATE_TABLE = new RegExp(
  `^CREATE\\s+(?:OR\\s+REPLACE\\s+)?(TEMPORARY\\s+)?TABLE\\s+(?:IF\\s+NOT\\s+EXISTS\\s+)?(${NAME})`,
  'i',
);
const ALTER_TABLE = new RegExp(
  `^ALTER\\s+(?:ONLINE\\s+)?(?:IGNORE\\s+)?TABLE\\s+(?:IF\\s+EXISTS\\s+)?(${NAME})`,
  'i',
);
const ALTER_RENAME = new RegExp(`\\bRENAME\\s+(?:TO\\s+|AS\\s+)?(${NAME})\\s*(?:,|$)`, 'i');
const RENAME_TABLE = /^RENAME\s+TABLES?\s+([\s\S]*)$/i;
const RENAME_PAIR = new RegExp(`^\\s*(?:${NAME})\\s+TO\\s+(${NAME})\\s*$`, 'i');
const TRUNCATE = new RegExp(`^TRUNCATE\\s+(?:TABLE\\s+)?(${NAME})`, 'i');
const INDEX_ON = new RegExp(
  `^(?:CREATE|DROP)\\s+(?:OR\\s+REPLACE\\s+)?(?:ONLINE\\s+)?(?:UNIQUE\\s+|FULLTEXT\\s+|SPATIAL\\s+)?INDEX\\s+[\\s\\S]*?\\bON\\s+(${NAME})`,
  'i',
);
const TRIGGER = new RegExp(
  `^(?:CREATE|DROP)\\s+(?:OR\\s+REPLACE\\s+)?(?:DEFINER\\s*=\\s*\\S+\\s+)?TRIGGER\\s+(?:IF\\s+(?:NOT\\s+)?EXISTS\\s+)?(${NAME})`,
  'i',
);

/** Words after DROP that name something other than a column (`DROP INDEX i`, `DROP PRIMARY KEY`). */
const DROP_NOT_COLUMN =
  /^(?:INDEX|KEY|PRIMARY|FOREIGN|CONSTRAINT|CHECK|PARTITION|SYSTEM|PERIOD|FULLTEXT|SPATIAL|UNIQUE)$/i;
const DROP_COLUMN = new RegExp(
  `^DROP\\s+(COLUMN\\s+)?(?:IF\\s+EXISTS\\s+)?(${IDENT})\\s*(?:RESTRICT|CASCADE)?$`,
  'i',
);
const RENAME_COLUMN = new RegExp(`^RENAME\\s+COLUMN\\s+(${IDENT})\\s+TO\\s+(${IDENT})$`, 'i');
const CHANGE_COLUMN = new RegExp(
  `^CHANGE\\s+(?:COLUMN\\s+)?(?:IF\\s+EXISTS\\s+)?(${IDENT})\\s+(${IDENT})(?:\\s|$)`,
  'i',
);

function unquote(identifier: string): string {
  const trimmed = identifier.trim();
  return trimmed.startsWith('`') ? trimmed.slice(1, -1).replace(/``/g, '`') : trimmed;
}

/** Splits `schema.table` (each part possibly quoted) on the dot outside backticks. */
function splitName(name: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (const char of name) {
    if (char === '`') quoted = !quoted;
    if (char === '.' && !quoted) {
      parts.push(current);
      current = '';
    } else {
      current += char;
    }
  }
  parts.push(current);
  return parts.map(unquote);
}

function tableName(name: string, defaultSchema: string): DdlTable | undefined {
  const parts = splitName(name);
  const table = parts.length === 2 ? parts[1] : parts[0];
  const schema = parts.length === 2 ? parts[0] : defaultSchema;
  if (table === undefined || schema === undefined || schema === '') return undefined;
  return { schema, table };
}

/** Splits on commas outside backticks. */
function splitList(list: string): string[] {
  const items: string[] = [];
  let current = '';
  let quoted = false;
  for (const char of list) {
    if (char === '`') quoted = !quoted;
    if (char === ',' && !quoted) {
      items.push(current);
      current = '';
    } else {
      current += char;
    }
  }
  items.push(current);
  return items;
}

/**
 * Splits an `ALTER TABLE` specification list on its top-level commas:
 * outside parentheses (`DECIMAL(6,2)`), string literals and quoted names.
 */
function splitSpecifications(list: string): string[] {
  const items: string[] = [];
  let current = '';
  let quote: string | undefined;
  let depth = 0;
  for (let i = 0; i < list.length; i += 1) {
    const char = list.charAt(i);
    if (quote !== undefined) {
      if (char === '\\' && quote !== '`') {
        current += char + list.charAt(i + 1);
        i += 1;
        continue;
      }
      if (char === quote) quote = undefined;
    } else if (char === "'" || char === '"' || char === '`') {
      quote = char;
    } else if (char === '(') {
      depth += 1;
    } else if (char === ')') {
      depth -= 1;
    } else if (char === ',' && depth === 0) {
      items.push(current.trim());
      current = '';
      continue;
    }
    current += char;
  }
  items.push(current.trim());
  return items.filter((item) => item.length > 0);
}

/** Columns an `ALTER TABLE` specification list drops or renames (`CHANGE a a …` renames nothing). */
function columnChanges(specifications: string, table: DdlTable): DdlColumnChange[] {
  const changes: DdlColumnChange[] = [];
  for (const spec of splitSpecifications(specifications)) {
    let match: RegExpExecArray | null;
    if ((match = DROP_COLUMN.exec(spec)) !== null) {
      const name = match[2] ?? '';
      // `DROP INDEX i` and kin: without COLUMN, an unquoted keyword is not a column.
      if (match[1] === undefined && DROP_NOT_COLUMN.test(name)) continue;
      // The replicator's own columns are never data (prepare replaces the key hash by drop and add).
      if (isInternalColumn(unquote(name))) continue;
      changes.push({ ...table, oldName: unquote(name), newName: null });
    } else if ((match = RENAME_COLUMN.exec(spec) ?? CHANGE_COLUMN.exec(spec)) !== null) {
      const oldName = unquote(match[1] ?? '');
      const newName = unquote(match[2] ?? '');
      if (oldName.toLowerCase() !== newName.toLowerCase())
        changes.push({ ...table, oldName, newName });
    }
  }
  return changes;
}

/**
 * What a DDL statement touches. `defaultSchema` is the schema the session
 * was using (the binlog query event's), for unqualified names.
 */
export function ddlTouches(statement: string, defaultSchema: string): DdlTouches {
  const sql = statement.replace(LEADING_COMMENTS, '');
  const result: DdlTouches = { changed: [], columns: [], truncated: [], triggerSchemas: [] };
  const add = (into: DdlTable[], name: string | undefined): void => {
    const table = name === undefined ? undefined : tableName(name, defaultSchema);
    if (table !== undefined) into.push(table);
  };
  let match: RegExpExecArray | null;
  if ((match = CREATE_TABLE.exec(sql)) !== null) {
    if (match[1] === undefined) add(result.changed, match[2]);
  } else if ((match = ALTER_TABLE.exec(sql)) !== null) {
    add(result.changed, match[1]);
    const specifications = sql.slice(match[0].length);
    const renamed = ALTER_RENAME.exec(specifications);
    if (renamed !== null) add(result.changed, renamed[1]);
    // The table's name after the statement: the rename target when it renames the table too.
    const table = result.changed[result.changed.length - 1];
    if (table !== undefined) result.columns.push(...columnChanges(specifications, table));
  } else if ((match = RENAME_TABLE.exec(sql)) !== null) {
    for (const pair of splitList(match[1] ?? '')) add(result.changed, RENAME_PAIR.exec(pair)?.[1]);
  } else if ((match = TRUNCATE.exec(sql)) !== null) {
    add(result.truncated, match[1]);
  } else if ((match = INDEX_ON.exec(sql)) !== null) {
    add(result.changed, match[1]);
  } else if ((match = TRIGGER.exec(sql)) !== null) {
    const parts = splitName(match[1] ?? '');
    const schema = parts.length === 2 ? parts[0] : defaultSchema;
    if (schema !== undefined && schema !== '') result.triggerSchemas.push(schema);
  }
  return result;
}
