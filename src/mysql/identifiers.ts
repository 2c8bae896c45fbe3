import { CdcError } from '../core/errors.js';

/** MySQL's limit for schema, table, column and trigger names. */
const MAX_IDENTIFIER_LENGTH = 64;

/**
 * Quotes one identifier with backticks. Names come from configuration,
 * information_schema or, on the apply side, untrusted events, so anything
 * MySQL could not have created is refused rather than escaped into shape.
 */
export function quoteId(name: string): string {
  if (name.length === 0 || name.length > MAX_IDENTIFIER_LENGTH || name.includes('\0')) {
    throw new CdcError(`invalid SQL identifier ${JSON.stringify(name)}`, {
      code: 'IDENTIFIER_INVALID',
    });
  }
  return `\`${name.replaceAll('`', '``')}\``;
}

/** `schema`.`table`, quoted. */
export function qualifiedName(schema: string, table: string): string {
  return `${quoteId(schema)}.${quoteId(table)}`;
}

/** A SQL string literal for DDL text (triggers cannot take parameters). */
export function sqlString(value: string): string {
  return `'${value.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`;
}
