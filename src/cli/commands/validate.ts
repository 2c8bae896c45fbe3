/**
 * `cdc-replicator validate --config F [--region R]`: checks the whole file
 * (and compiles every region's daemon options, so anything `run` would reject
 * is caught here), then prints a short summary or every problem.
 */
import { dirname, resolve } from 'node:path';

import type { Command } from 'commander';

import { compileAllRegions, compileRegion, type RuntimeOptions } from '../../config/compile.js';
import { compileGovernance } from '../../config/compile-governance.js';
import { loadConfigFile } from '../../config/load.js';
import type { ValidatedConfig } from '../../config/schema.js';
import { describeMask } from '../../governance/masks.js';
import type { GovernanceOptions, GovernancePolicy } from '../../governance/policy.js';
import { grantPrefixes, topicsReadableBy, type ReadableTopic } from '../../governance/topics.js';
import { ExitCode, type CommandContext } from '../context.js';
import { reportConfigError } from '../report.js';

interface ValidateFlags {
  readonly config: string;
  readonly region?: string;
}

/** Adds `validate` to the program; its exit code is reported through the context. */
export function registerValidateCommand(program: Command, context: CommandContext): void {
  program
    .command('validate')
    .description('check a configuration file and list every problem in it')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .option('-r, --region <name>', 'also show the options of this region (env: CDC_REGION)')
    .action(async (flags: ValidateFlags) => {
      context.setExitCode(await validate(flags, context));
    });
}

async function validate(flags: ValidateFlags, context: CommandContext): Promise<ExitCode> {
  const path = resolve(context.cwd, flags.config);
  const region = flags.region ?? nonEmpty(context.env['CDC_REGION']);
  try {
    const config = await loadConfigFile(path, { env: context.env });
    const compileOptions = { baseDir: dirname(path) };
    const all = compileAllRegions(config, compileOptions);
    const selected =
      region === undefined ? undefined : compileRegion(config, region, compileOptions);
    context.io.stdout.write(summary(flags.config, config, all, selected));
    return ExitCode.ok;
  } catch (error: unknown) {
    return reportConfigError(context.io, flags.config, error);
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function summary(
  file: string,
  config: ValidatedConfig,
  all: readonly RuntimeOptions[],
  selected: RuntimeOptions | undefined,
): string {
  const tables = config.pipelines.flatMap((pipeline) => pipeline.tables);
  const lines = [
    `${file}: configuration OK`,
    `  regions (${all.length}): ${all.map((options) => options.region).join(', ')}`,
    `  pipelines (${config.pipelines.length}): ${config.pipelines
      .map((pipeline) => `${pipeline.name} [${pipeline.conflict.strategy}]`)
      .join(', ')}`,
    `  tables (${tables.length}): ${tables.join(', ')}`,
  ];
  const governance = compileGovernance(config);
  if (governance !== undefined) {
    lines.push(...describeGovernance(governance, config.kafka.topicPrefix, tables));
  }
  if (selected !== undefined) lines.push(...describeRegion(selected));
  return `${lines.join('\n')}\n`;
}

/** The resolved options of one region. Secrets are never printed, only whether they are set. */
function describeRegion(options: RuntimeOptions): string[] {
  const { mysql, kafka, checkpointStore, metrics, capture } = options;
  const store =
    checkpointStore.kind === 'redis'
      ? `redis (key prefix ${checkpointStore.keyPrefix}${checkpointStore.tls === undefined ? '' : ', TLS'}); capture lease ttl ${capture.lease.ttlMs} ms`
      : `file (${checkpointStore.dir}); no capture lease: run one daemon for this region`;
  const kafkaSecurity = [
    kafka.tls === undefined ? undefined : 'TLS',
    kafka.sasl === undefined ? undefined : `SASL ${kafka.sasl.mechanism}`,
  ].filter((part) => part !== undefined);
  return [
    `region ${options.region}:`,
    `  mysql: ${mysql.user}@${mysql.host}:${mysql.port}${mysql.database === undefined ? '' : `/${mysql.database}`} (password ${mysql.password.isEmpty ? 'empty' : 'set'}${mysql.tls === undefined ? '' : ', TLS'})`,
    `  kafka: ${kafka.brokers.join(', ')} (topic prefix ${kafka.topicPrefix}, client id ${kafka.clientId}${kafkaSecurity.length === 0 ? '' : `, ${kafkaSecurity.join(', ')}`})`,
    `  checkpoints: ${store}`,
    `  metrics: ${metrics.host}:${metrics.port}${metrics.url === undefined ? '' : ` (status reads ${metrics.url})`}`,
    `  peers: ${options.peers.length === 0 ? '(none)' : options.peers.join(', ')}`,
  ];
}

/**
 * The governance section in short, then what an operator mirrors to and
 * grants each region: every topic it may read, and the prefixes that cover
 * exactly those. Keys are never printed (masks are named by mode only).
 */
function describeGovernance(
  governance: GovernanceOptions,
  topicPrefix: string,
  tables: readonly string[],
): string[] {
  const zones = Object.entries(governance.zones);
  const lines = [
    `  zones (${zones.length}): ${zones.length === 0 ? '(none)' : zones.map(([zone, regions]) => `${zone} = ${regions.join(', ')}`).join('; ')}`,
    `  policies (${governance.policies.length}):`,
    ...governance.policies.map((policy) => `    ${describePolicy(policy)}`),
    '  topics each region may read (mirror them to it and grant it read; nothing else of the governed tables):',
  ];
  const layout = {
    topicPrefix,
    regions: governance.regions,
    zones: governance.zones,
    policies: governance.policies,
    tables,
  };
  for (const region of governance.regions) {
    lines.push(`    ${region}: prefixes ${grantPrefixes(layout, region).join(' ')}`);
    for (const topic of topicsReadableBy(layout, region)) {
      lines.push(`      ${topic.topic}${describeReadable(topic)}`);
    }
  }
  return lines;
}

function describePolicy(policy: GovernancePolicy): string {
  const { residency } = policy;
  const fallback =
    residency.default.kind === 'zone' ? `zone ${residency.default.zone}` : residency.default.kind;
  const rules = residency.rules.map((rule) => {
    const masked =
      rule.masked === 'all'
        ? ', masked elsewhere'
        : rule.masked.length === 0
          ? ''
          : `, masked in ${rule.masked.join(', ')}`;
    return `${rule.values.map((value) => (value === null ? 'NULL' : value)).join('|')} -> zone ${rule.zone}${masked}`;
  });
  const masks = [...policy.masking].map(([column, mask]) => `${column} ${describeMask(mask)}`);
  return [
    `${policy.name} on ${policy.tables.map((t) => `${t.schema}.${t.table}`).join(', ')}:`,
    residency.column === undefined ? '' : ` by ${residency.column}: ${rules.join('; ')};`,
    ` otherwise ${fallback}`,
    masks.length === 0 ? '' : `; masks ${masks.join(', ')}`,
  ].join('');
}

function describeReadable(topic: ReadableTopic): string {
  const policy = topic.policy === undefined ? '' : `${topic.policy}: `;
  switch (topic.audience.kind) {
    case 'all':
      return topic.policy === undefined ? '' : `  (${policy}unrestricted rows and notices)`;
    case 'zone':
      return `  (${policy}plain, zone ${topic.audience.zone})`;
    case 'masked':
      return `  (${policy}masked)`;
  }
}
