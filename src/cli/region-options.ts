import { dirname, resolve } from 'node:path';
import { compileRegion, type RuntimeOptions } from '../config/compile.js';
import { loadConfigFile } from '../config/load.js';
import type { ValidatedConfig } from '../config/schema.js';
import { ConfigError } from '../core/errors.js';
import type { CommandContext } from './context.js';

/** Flags shared by every command that serves one region. */
export interface RegionFlags {
  readonly config: string;
  readonly region?: string;
}

/**
 * Loads the file and compiles the options of the region named by `--region`
 * or `CDC_REGION`. Throws ConfigError (exit code 2) when either is wrong.
 */
export async function loadRegionOptions(
  flags: RegionFlags,
  context: CommandContext,
  /** Whether the command connects to other regions' databases too (bootstrap does). */
  scope: 'own region' | 'all regions' = 'own region',
): Promise<{ config: ValidatedConfig; options: RuntimeOptions }> {
  const path = resolve(context.cwd, flags.config);
  const fromEnv = context.env['CDC_REGION'];
  const region = flags.region ?? (fromEnv === undefined || fromEnv === '' ? undefined : fromEnv);
  if (region === undefined) {
    throw new ConfigError(['--region: required (or set CDC_REGION)']);
  }
  const config = await loadConfigFile(path, {
    env: context.env,
    servingRegion: scope === 'own region' ? region : undefined,
  });
  return { config, options: compileRegion(config, region, { baseDir: dirname(path) }) };
}
