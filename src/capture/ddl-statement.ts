/**
 * Which tables a DDL statement from the binlog touches, as far as capture's
 * self-repair needs to know: the tables that exist under a name after the
 * statement (created, altered, renamed to), the ones truncated, and schemas
 * whose triggers changed. It reads the statement's head only; anything it
 * does not recognise touches nothing (the periodic drift check covers it).
 */

/** A table named by a statement, with the session's default schema filled in. */
export interface DdlTable {
  schema: string;
  table: string;
}

export interface DdlTouches {
  /** Tables that exist under these names after the statement and may need repair. */
  changed: DdlTable[];
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
 * What a DDL statement touches. `defaultSchema` is the schema the session
 * was using (the binlog query event's), for unqualified names.
 */
export function ddlTouches(statement: string, defaultSchema: string): DdlTouches {
  const sql = statement.replace(LEADING_COMMENTS, '');
  const result: DdlTouches = { changed: [], truncated: [], triggerSchemas: [] };
  const add = (into: DdlTable[], name: string | undefined): void => {
    const table = name === undefined ? undefined : tableName(name, defaultSchema);
    if (table !== undefined) into.push(table);
  };
  let match: RegExpExecArray | null;
  if ((match = CREATE_TABLE.exec(sql)) !== null) {
    if (match[1] === undefined) add(result.changed, match[2]);
  } else if ((match = ALTER_TABLE.exec(sql)) !== null) {
    add(result.changed, match[1]);
    const renamed = ALTER_RENAME.exec(sql.slice(match[0].length));
    if (renamed !== null) add(result.changed, renamed[1]);
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
