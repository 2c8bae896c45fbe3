/**
 * Column types whose values travel as base64 (DESIGN.md §5): raw bytes that
 * JSON cannot carry. Both capture (encoding) and apply (decoding) use this
 * list, so they cannot disagree.
 */
const BINARY_DATA_TYPES: ReadonlySet<string> = new Set([
  'binary',
  'varbinary',
  'tinyblob',
  'blob',
  'mediumblob',
  'longblob',
  'bit',
  'geometry',
  'point',
  'linestring',
  'polygon',
  'multipoint',
  'multilinestring',
  'multipolygon',
  'geometrycollection',
]);

/** True when `dataType` (information_schema DATA_TYPE, lower case) holds raw bytes. */
export function isBinaryDataType(dataType: string): boolean {
  return BINARY_DATA_TYPES.has(dataType);
}
