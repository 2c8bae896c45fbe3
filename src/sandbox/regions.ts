import { ConfigError } from '../core/errors.js';
import type { DatabaseEngine, SandboxRegion } from './types.js';

const ENGINES: readonly DatabaseEngine[] = ['mariadb', 'mysql8'];

/** The regions a sandbox starts by default: two MariaDB ones. */
export const DEFAULT_REGIONS: readonly SandboxRegion[] = ['region-a', 'region-b'];

/**
 * Every region with its engine (a bare name is MariaDB), or one ConfigError
 * naming each empty or repeated name and unknown engine: each region gets a
 * directory named after it, so names must be distinct.
 */
export function resolveRegions(
  regions: readonly SandboxRegion[] = DEFAULT_REGIONS,
): { name: string; engine: DatabaseEngine }[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  const resolved = regions.map((region, i) => {
    const { name, engine } =
      typeof region === 'string' ? { name: region, engine: 'mariadb' as const } : region;
    if (name.length === 0) problems.push(`regions[${i}]: empty region name`);
    else if (seen.has(name)) problems.push(`regions[${i}]: region "${name}" appears twice`);
    seen.add(name);
    if (!ENGINES.includes(engine)) {
      problems.push(
        `regions[${i}].engine: "${String(engine)}" is not one of ${ENGINES.join(', ')}`,
      );
    }
    return { name, engine };
  });
  if (problems.length > 0) throw new ConfigError(problems);
  return resolved;
}
