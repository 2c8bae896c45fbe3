/**
 * `cdc-replicator audit --config F --table db.t --key col=value[,col=value]
 * [--region R] [--json]`: the audit trail of one governed row
 * (docs/GOVERNANCE.md, "Audit trail"): every record of the row in the audit
 * topics of every configured region (or of one), de-duplicated, one per
 * line or as JSON lines. The key is hashed as capture hashed it, with the
 * key columns' types read from a region's database; nothing printed holds
 * a value of the row or its key. A topic holds audit batches (capture) and
 * single records (erase, and capture before batches); both are read. Exit 0
 * when every message of every topic was read (with or without a match), 1
 * when a topic, one of its messages (named by topic, partition and offset
 * on stderr; the records of the others are printed) or the database cannot
 * be read, 2 for a wrong command line (unknown table, not governed, wrong
 * key columns) or configuration.
 */
import { dirname, resolve } from 'node:path';

import type { Command } from 'commander';

import { auditKeyHash, auditedTable, parseKeyArgument } from '../../audit/key.js';
import { describeKey, readAuditRecords } from '../../audit/read.js';
import { createKafka } from '../../bus/kafka.js';
import { compileRegion, type RuntimeOptions } from '../../config/compile.js';
import { loadConfigFile } from '../../config/load.js';
import { CdcError, ConfigError } from '../../core/errors.js';
import { createLogger } from '../../core/logger.js';
import { formatAuditRecord } from '../../governance/audit.js';
import { positiveInt } from '../../snapshot/cli-flags.js';
import { ExitCode, type CommandContext } from '../context.js';
import { reportConfigError } from '../report.js';

/** Unreadable messages named one by one on stderr; more are counted. */
const MAX_UNREADABLE_LINES = 20;

interface AuditFlags {
  readonly config: string;
  readonly table: string;
  readonly key: string;
  readonly region?: string;
  readonly json?: boolean;
  readonly timeout: string;
}

export function registerAuditCommand(program: Command, context: CommandContext): void {
  program
    .command('audit')
    .description(
      'print the audit trail of one governed row: what was sent to which region, masked or not, or withheld (never a value)',
    )
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .requiredOption('--table <schema.table>', 'the governed table')
    .requiredOption(
      '--key <col=value,...>',
      'the row: each primary-key column and its value (binary values in base64)',
    )
    .option(
      '--region <region>',
      'only the records of changes this region originated (default: every region)',
    )
    .option('--json', 'print one JSON record per line')
    .option('--timeout <ms>', 'give up reading a topic after this long', '60000')
    .action(async (flags: AuditFlags) => {
      context.setExitCode(await audit(flags, context));
    });
}

async function audit(flags: AuditFlags, context: CommandContext): Promise<ExitCode> {
  const { stdout, stderr } = context.io;
  let regions: RuntimeOptions[];
  let row;
  let parts;
  let timeoutMs: number;
  try {
    timeoutMs = positiveInt('--timeout', flags.timeout);
    const path = resolve(context.cwd, flags.config);
    // One region needs only its own secrets (the hmac key is never skipped).
    const config = await loadConfigFile(path, { env: context.env, servingRegion: flags.region });
    const names = Object.keys(config.regions);
    if (flags.region !== undefined && !names.includes(flags.region))
      throw new ConfigError([
        `--region: ${JSON.stringify(flags.region)} is not a configured region (regions: ${names.join(', ')})`,
      ]);
    regions = (flags.region === undefined ? names : [flags.region]).map((name) =>
      compileRegion(config, name, { baseDir: dirname(path) }),
    );
    const first = regions[0] as RuntimeOptions;
    row = auditedTable(flags.table, first.pipelines, first.governance);
    parts = parseKeyArgument(flags.key);
  } catch (error: unknown) {
    return reportConfigError(context.io, flags.config, error);
  }
  const logger = createLogger({
    level: context.env['CDC_LOG_LEVEL'] ?? 'warn',
    base: { command: 'audit' },
    destination: process.stderr,
  });
  const name = `${row.table.schema}.${row.table.table}`;
  try {
    const described = await describeKey(regions, row.table);
    if (described.keyColumns === undefined)
      throw new ConfigError([`--table: ${name} does not exist in region ${described.region}`]);
    const keyHash = auditKeyHash(row.policy, row.table, described.keyColumns, parts);
    const result = await readAuditRecords(
      regions,
      { ...row.table, keyHash },
      {
        kafkaOf: (options) => createKafka(options.kafka, logger),
        timeoutMs,
        onGroupLeft: (groupId, error) =>
          logger.warn(
            { groupId, err: error.message },
            'could not delete the reader consumer group; Kafka expires it',
          ),
      },
    );
    // Printed first, so a reader of the records below knows the trail may lack some.
    for (const u of result.unreadable.slice(0, MAX_UNREADABLE_LINES))
      stderr.write(
        `cdc-replicator audit: ${u.topic} partition ${u.partition} offset ${u.offset} is not readable: ${u.problem}; its records are left out\n`,
      );
    if (result.unreadable.length > MAX_UNREADABLE_LINES)
      stderr.write(
        `cdc-replicator audit: ${result.unreadable.length - MAX_UNREADABLE_LINES} more unreadable message(s) in ${result.topics.join(', ')}\n`,
      );
    for (const record of result.records)
      stdout.write(`${flags.json === true ? JSON.stringify(record) : formatAuditRecord(record)}\n`);
    if (result.records.length === 0) {
      const none = `no audit record of ${name} key ${keyHash} in ${result.topics.join(', ')}\n`;
      if (flags.json === true) stderr.write(none);
      else stdout.write(none);
    }
    // The trail printed may be incomplete: a message that could not be read may hold this row's records.
    return result.unreadable.length > 0 ? ExitCode.failure : ExitCode.ok;
  } catch (error: unknown) {
    if (error instanceof ConfigError) return reportConfigError(context.io, flags.config, error);
    if (error instanceof CdcError) {
      stderr.write(`cdc-replicator audit: ${error.message}\n`);
      return ExitCode.failure;
    }
    throw error;
  }
}
