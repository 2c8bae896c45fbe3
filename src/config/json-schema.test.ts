import { readFile } from 'node:fs/promises';

import {
  CONFIG_JSON_SCHEMA_PATH,
  configJsonSchema,
  renderConfigJsonSchema,
} from './json-schema.js';

describe('config JSON Schema', () => {
  it('matches the committed docs/config.schema.json (run `npm run config:schema` after schema changes)', async () => {
    const committed = await readFile(
      new URL(`../../${CONFIG_JSON_SCHEMA_PATH}`, import.meta.url),
      'utf8',
    );
    expect(committed).toBe(renderConfigJsonSchema());
  });

  it('describes the file as written: defaults present, unknown keys rejected', () => {
    const schema = configJsonSchema();
    expect(schema).toMatchObject({
      type: 'object',
      additionalProperties: false,
      required: ['regions', 'kafka', 'pipelines'],
      properties: {
        stateDir: { default: '.cdc-state' },
        metrics: { properties: { port: { default: 9464 } } },
      },
    });
  });
});
