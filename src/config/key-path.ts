/** A path into the configuration document: mapping keys and sequence indexes. */
export type ConfigPath = readonly (string | number)[];

/** Keys that can be written after a dot without ambiguity. */
const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/**
 * Formats a path the way users write it when talking about the file:
 * `pipelines[0].tables[1]`, `regions.eu-west.mysql.password`. Keys that would
 * be ambiguous after a dot are quoted: `regions["Bad Name"]`.
 */
export function formatKeyPath(path: ConfigPath): string {
  if (path.length === 0) return '(root)';
  return path
    .map((segment, index) => {
      if (typeof segment === 'number') return `[${segment}]`;
      if (!PLAIN_KEY.test(segment)) return `[${JSON.stringify(segment)}]`;
      return index === 0 ? segment : `.${segment}`;
    })
    .join('');
}
