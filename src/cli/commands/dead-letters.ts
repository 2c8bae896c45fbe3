/**
 * `cdc-replicator dead-letters list|show|replay --config F [filters]`: the
 * messages parked in `<prefix>._dlq.<stage>.<region>` (src/dead-letters/).
 * `list` prints one line each, `show` prints them in full with the original
 * event, `replay` applies apply-stage dead letters through the applier's
 * join once their cause is fixed (`--dry-run`: the same checks and join,
 * rolled back). Exit 0 on success, 1 when a replayed dead letter still fails
 * (or cannot be replayed), `show` finds nothing, or Kafka/MySQL fail; 2 for
 * a wrong command line or configuration.
 */
import { dirname, resolve } from 'node:path';

import type { Command } from 'commander';

import { createKafka } from '../../bus/kafka.js';
import { compileRegion, type RuntimeOptions } from '../../config/compile.js';
import { loadConfigFile } from '../../config/load.js';
import { CdcError, ConfigError } from '../../core/errors.js';
import { createLogger, type Logger } from '../../core/logger.js';
import { collectDeadLetters } from '../../dead-letters/collect.js';
import {
  parseDeadLetterFilter,
  type DeadLetterFilter,
  type DeadLetterFilterFlags,
} from '../../dead-letters/filter.js';
import type { DeadLetter } from '../../dead-letters/record.js';
import { replayDeadLetters, type ReplayResult } from '../../dead-letters/replay.js';
import {
  countReplay,
  deadLetterJson,
  renderDeadLetter,
  renderDeadLetterTable,
  renderReplay,
  replayResultJson,
} from '../../dead-letters/report.js';
import { positiveInt } from '../../snapshot/cli-flags.js';
import { ExitCode, type CommandContext } from '../context.js';
import { reportConfigError } from '../report.js';

interface DeadLetterFlags extends DeadLetterFilterFlags {
  readonly config: string;
  readonly json?: boolean;
  readonly timeout: string;
  readonly dryRun?: boolean;
}

type Action = 'list' | 'show' | 'replay';

export function registerDeadLettersCommand(program: Command, context: CommandContext): void {
  const group = program
    .command('dead-letters')
    .description('list, show and replay the messages parked in the dead-letter topics');
  const selection = (command: Command): Command =>
    command
      .requiredOption('-c, --config <file>', 'configuration file (YAML)')
      .option('--region <region>', 'only the dead letters parked by this region (default: all)')
      .option('--stage <stage>', 'only this stage: capture or apply (default: both)')
      .option('--reason <reason>', 'only this reason, e.g. column_missing or constraint_violation')
      .option('--table <schema.table>', 'only this table (schema.* for a whole schema)')
      .option('--since <time>', 'only dead letters parked at or after this ISO 8601 time')
      .option('--until <time>', 'only dead letters parked before this ISO 8601 time')
      .option('--topic <topic>', 'only this dead-letter topic')
      .option('--partition <n>', 'only this partition of the dead-letter topic')
      .option('--offset <n>', 'only the dead letter at this offset')
      .option('--json', 'print JSON')
      .option('--timeout <ms>', 'give up reading the topics after this long', '60000');
  selection(group.command('list'))
    .description('one line per dead letter: where, when, stage, region, reason, table, error')
    .action(async (flags: DeadLetterFlags) => {
      context.setExitCode(await deadLetters('list', flags, context));
    });
  selection(group.command('show'))
    .description('every field of the selected dead letters, with the original event')
    .action(async (flags: DeadLetterFlags) => {
      context.setExitCode(await deadLetters('show', flags, context));
    });
  selection(group.command('replay'))
    .description(
      'apply the selected apply-stage dead letters through the normal join (idempotent; nothing is removed from the topic)',
    )
    .option('--dry-run', 'report what each would do, in transactions that are rolled back')
    .action(async (flags: DeadLetterFlags) => {
      context.setExitCode(await deadLetters('replay', flags, context));
    });
}

async function deadLetters(
  action: Action,
  flags: DeadLetterFlags,
  context: CommandContext,
): Promise<ExitCode> {
  let filter: DeadLetterFilter;
  let regions: RuntimeOptions[];
  let allRegions: string[];
  let timeoutMs: number;
  try {
    timeoutMs = positiveInt('--timeout', flags.timeout);
    const path = resolve(context.cwd, flags.config);
    // One region needs only its own secrets; all regions need all of them (as `status`).
    const config = await loadConfigFile(path, { env: context.env, servingRegion: flags.region });
    allRegions = Object.keys(config.regions);
    filter = parseDeadLetterFilter(flags, allRegions);
    regions = filter.regions.map((r) => compileRegion(config, r, { baseDir: dirname(path) }));
  } catch (error: unknown) {
    return reportConfigError(context.io, flags.config, error);
  }
  const logger = createLogger({
    level: context.env['CDC_LOG_LEVEL'] ?? 'warn',
    base: { command: `dead-letters ${action}` },
    destination: process.stderr,
  });
  const { stdout, stderr } = context.io;
  try {
    const { letters, missing } = await collectDeadLetters(regions, allRegions, filter, {
      kafkaOf: (options) => createKafka(options.kafka, logger),
      timeoutMs,
      onGroupLeft: (groupId, error) =>
        logger.warn(
          { groupId, err: error.message },
          'could not delete the reader consumer group; Kafka expires it',
        ),
    });
    for (const topic of missing)
      stderr.write(`dead-letter topic ${topic} does not exist (nothing was parked there)\n`);
    switch (action) {
      case 'list':
        stdout.write(
          flags.json === true
            ? `${JSON.stringify(letters.map(deadLetterJson), null, 2)}\n`
            : renderDeadLetterTable(letters),
        );
        return ExitCode.ok;
      case 'show':
        if (letters.length === 0) {
          stderr.write('cdc-replicator dead-letters show: no dead letter matches\n');
          return ExitCode.failure;
        }
        stdout.write(
          flags.json === true
            ? `${JSON.stringify(letters.map(deadLetterJson), null, 2)}\n`
            : letters.map(renderDeadLetter).join('\n'),
        );
        return ExitCode.ok;
      case 'replay':
        return await replay(letters, regions, flags, context, logger);
    }
  } catch (error: unknown) {
    if (error instanceof CdcError && !(error instanceof ConfigError)) {
      stderr.write(`cdc-replicator dead-letters ${action}: ${error.message}\n`);
      return ExitCode.failure;
    }
    if (error instanceof ConfigError) return reportConfigError(context.io, flags.config, error);
    throw error;
  }
}

async function replay(
  letters: readonly DeadLetter[],
  regions: readonly RuntimeOptions[],
  flags: DeadLetterFlags,
  context: CommandContext,
  logger: Logger,
): Promise<ExitCode> {
  const dryRun = flags.dryRun === true;
  const results: ReplayResult[] = [];
  // Each region's dead letters go into that region's database.
  for (const options of regions) {
    const own = letters.filter((l) => l.region === options.region);
    if (own.length === 0) continue;
    results.push(
      ...(await replayDeadLetters(own, options, {
        dryRun,
        onRetry: (error, delayMs) =>
          logger.info({ err: error.message, retryInMs: delayMs }, 'replay retried'),
      })),
    );
  }
  if (flags.json === true) {
    context.io.stdout.write(
      `${JSON.stringify({ dryRun, ...countReplay(results), results: results.map(replayResultJson) }, null, 2)}\n`,
    );
  } else if (results.length === 0) {
    context.io.stdout.write('no dead letters match\n');
  } else {
    context.io.stdout.write(renderReplay(results, dryRun));
  }
  return countReplay(results).failing > 0 ? ExitCode.failure : ExitCode.ok;
}
