/**
 * `npm run config:schema`: writes the generated JSON Schema to
 * docs/config.schema.json (or to the path given as the first argument).
 */
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

import { CONFIG_JSON_SCHEMA_PATH, renderConfigJsonSchema } from './json-schema.js';

// This file runs from dist/config/, two levels below the package root.
const packageRoot = new URL('../../', import.meta.url);
const target = process.argv[2] ?? fileURLToPath(new URL(CONFIG_JSON_SCHEMA_PATH, packageRoot));

await writeFile(target, renderConfigJsonSchema(), 'utf8');
process.stdout.write(`wrote ${target}\n`);
