/**
 * The configuration file's JSON Schema, generated from the zod schema so the
 * two cannot disagree. Editors use it (e.g. yaml-language-server) for
 * completion and early errors; `docs/config.schema.json` is the committed copy
 * (`npm run config:schema` regenerates it, a unit test catches drift).
 */
import { z } from 'zod';

import { configSchema } from './schema.js';

/** Where the committed copy lives, relative to the package root. */
export const CONFIG_JSON_SCHEMA_PATH = 'docs/config.schema.json';

/**
 * The JSON Schema (draft 2020-12) of the file as written, after `${VAR}`
 * expansion: fields with defaults are optional, secrets are plain strings.
 * Cross-field rules (priority lists, duplicate names, address clashes) cannot
 * be expressed in it; `cdc-replicator validate` checks those.
 */
export function configJsonSchema(): Record<string, unknown> {
  const generated = z.toJSONSchema(configSchema, {
    target: 'draft-2020-12',
    io: 'input',
    unrepresentable: 'throw',
  });
  return {
    ...generated,
    description:
      'Configuration of cdc-replicator: one file for all regions; the daemon serves the region chosen with --region. ' +
      'String values may reference environment variables as ${VAR} or ${VAR:-default}.',
  };
}

/** {@link configJsonSchema} serialized exactly as it is committed. */
export function renderConfigJsonSchema(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
