/**
 * `cdc-replicator erase --config F --table db.t --key col=value[,col=value]
 * [--region R] [--timeout ms]`: removes one row in every region, whatever
 * its residency, and waits until every region confirmed
 * (docs/GOVERNANCE.md, "Erasure"; src/erase/erase.ts). The erasure is
 * made in `--region` (default: the first configured region) and reaches
 * the others as a value-free notice; a write made anywhere before the
 * erasure reached it cannot bring the row back.
 *
 * Exit 0 when every region confirmed; 1 when some did not within the
 * timeout (it names them and why; running it again is safe) or a database
 * or Kafka cannot be used; 2 for a wrong command line or configuration.
 * Nothing printed holds a value of the row: the key is named by its
 * tombstone key hash.
 */
import { dirname, resolve } from 'node:path';

import type { Command } from 'commander';

import { parseKeyArgument, parseTableArgument } from '../../audit/key.js';
import { createKafka } from '../../bus/kafka.js';
import { compileRegion, type RuntimeOptions } from '../../config/compile.js';
import { loadConfigFile } from '../../config/load.js';
import { CdcError, ConfigError } from '../../core/errors.js';
import { createLogger } from '../../core/logger.js';
import { eraseRow } from '../../erase/erase.js';
import { positiveInt } from '../../snapshot/cli-flags.js';
import { ExitCode, type CommandContext } from '../context.js';
import { reportConfigError } from '../report.js';

interface EraseFlags {
  readonly config: string;
  readonly table: string;
  readonly key: string;
  readonly region?: string;
  readonly timeout: string;
}

export function registerEraseCommand(program: Command, context: CommandContext): void {
  program
    .command('erase')
    .description(
      'remove one row in every region, whatever its residency, so that no write that has not seen the erasure brings it back; waits until every region confirmed',
    )
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .requiredOption('--table <schema.table>', 'the table')
    .requiredOption(
      '--key <col=value,...>',
      'the row: each primary-key column and its value (binary values in base64)',
    )
    .option('--region <region>', 'the region that makes the erasure (default: the first one)')
    .option('--timeout <ms>', 'how long to wait for every region to confirm', '300000')
    .action(async (flags: EraseFlags) => {
      context.setExitCode(await erase(flags, context));
    });
}

async function erase(flags: EraseFlags, context: CommandContext): Promise<ExitCode> {
  const { stdout, stderr } = context.io;
  let regions: RuntimeOptions[];
  let origin: string;
  let schema: string;
  let table: string;
  let key;
  let timeoutMs: number;
  try {
    timeoutMs = positiveInt('--timeout', flags.timeout);
    const path = resolve(context.cwd, flags.config);
    // Every region's database is read to confirm: every region's secrets are needed.
    const config = await loadConfigFile(path, { env: context.env });
    const names = Object.keys(config.regions);
    origin = flags.region ?? (names[0] as string);
    if (!names.includes(origin))
      throw new ConfigError([
        `--region: ${JSON.stringify(origin)} is not a configured region (regions: ${names.join(', ')})`,
      ]);
    ({ schema, table } = parseTableArgument(flags.table));
    key = parseKeyArgument(flags.key);
    regions = names.map((name) => compileRegion(config, name, { baseDir: dirname(path) }));
  } catch (error: unknown) {
    return reportConfigError(context.io, flags.config, error);
  }
  const logger = createLogger({
    level: context.env['CDC_LOG_LEVEL'] ?? 'warn',
    base: { command: 'erase' },
    destination: process.stderr,
  });
  try {
    const result = await eraseRow({
      regions,
      origin,
      schema,
      table,
      key,
      timeoutMs,
      kafkaOf: (options) => createKafka(options.kafka, logger),
      onProgress: (line) => stdout.write(`${line}\n`),
    });
    const name = `${schema}.${table}`;
    if (result.unconfirmed.length === 0) {
      stdout.write(
        `erased ${name} key ${result.keyHash} in every region (${result.confirmed.length}): ${result.confirmed.join(', ')}\n`,
      );
      return ExitCode.ok;
    }
    stderr.write(
      `cdc-replicator erase: ${name} key ${result.keyHash} not confirmed within ${timeoutMs} ms by ${result.unconfirmed
        .map((u) => `${u.region} (${u.why})`)
        .join(
          ', ',
        )}; the erasure stands and reaches them when they apply it; run erase again to wait for them\n`,
    );
    return ExitCode.failure;
  } catch (error: unknown) {
    if (error instanceof ConfigError) return reportConfigError(context.io, flags.config, error);
    if (error instanceof CdcError) {
      stderr.write(`cdc-replicator erase: ${error.message}\n`);
      return ExitCode.failure;
    }
    throw error;
  }
}
