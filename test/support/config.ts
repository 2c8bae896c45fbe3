import { compileRegion, type RuntimeOptions } from '../../src/config/compile.js';
import { parseConfig } from '../../src/config/load.js';
import type { ValidatedConfig } from '../../src/config/schema.js';
import type { Sandbox } from '../../src/sandbox/index.js';

export interface SandboxConfigOptions {
  /** Table patterns of the single pipeline, e.g. `['app.users']`. */
  tables: readonly string[];
  /** Extra top-level YAML appended verbatim. */
  extraYaml?: string;
  /** Where the file store keeps checkpoints when the sandbox has no Redis. */
  stateDir?: string;
  topicPrefix?: string;
  internalSchema?: string;
  /** Environment `${VAR}` references in the file are expanded from (e.g. a mask key). Default: none. */
  env?: Readonly<Record<string, string>>;
}

/** The YAML configuration a user would write for the sandbox's services. */
export function sandboxConfigYaml(sandbox: Sandbox, options: SandboxConfigOptions): string {
  const regions = sandbox.mysql
    .map(
      (m) =>
        `  ${m.region}:\n    mysql: { host: ${m.host}, port: ${m.port}, user: ${m.user}, password: "${m.password}" }\n    metrics: { port: 0 }`,
    )
    .join('\n');
  const brokers = (sandbox.kafka?.brokers ?? ['127.0.0.1:9']).map((b) => `"${b}"`).join(', ');
  return [
    `regions:\n${regions}`,
    `kafka: { brokers: [${brokers}], topicPrefix: ${options.topicPrefix ?? 'cdc'} }`,
    sandbox.redis !== undefined ? `redis: { url: "${sandbox.redis.url}" }` : '',
    options.stateDir !== undefined ? `stateDir: "${options.stateDir}"` : '',
    options.internalSchema !== undefined ? `internalSchema: ${options.internalSchema}` : '',
    `pipelines:\n  - name: app\n    tables: [${options.tables.map((t) => `"${t}"`).join(', ')}]`,
    options.extraYaml ?? '',
  ]
    .filter((line) => line.length > 0)
    .join('\n');
}

/** Parses the sandbox configuration and compiles one region's options. */
export function sandboxRegionOptions(
  sandbox: Sandbox,
  region: string,
  options: SandboxConfigOptions,
): { config: ValidatedConfig; options: RuntimeOptions; yaml: string } {
  const yaml = sandboxConfigYaml(sandbox, options);
  const config = parseConfig(yaml, { env: { ...options.env } });
  return { config, options: compileRegion(config, region), yaml };
}

/** A short random suffix for schema and topic names, so tests never share state. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${Math.random().toString(36).slice(2, 8)}`;
}
