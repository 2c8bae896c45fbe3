/**
 * `cdc-replicator verify --config F [--regions a,b] [--tables s.t] [--repair]`:
 * compares regions while they keep taking writes (src/verify/verify.ts,
 * docs/BOOTSTRAP.md). Exit 0 when they match, 1 when rows diverge (each is
 * listed with both versions and the differing columns) or on failure, 2 for
 * a wrong command line or configuration.
 *
 * Tables under a governance policy are compared on what each pair of
 * regions may hold, through the masks, and every row held where it may not
 * be is reported too (exit 1); their lines show a hash of the key, never a
 * value or the key (docs/GOVERNANCE.md, "Verify"). `--repair` spreads their
 * winners through the governed publishing path, as capture would.
 */
import type { Command } from 'commander';
import { dirname, resolve } from 'node:path';
import { createKafka } from '../../bus/kafka.js';
import { compileRegion } from '../../config/compile.js';
import { loadConfigFile } from '../../config/load.js';
import { CdcError, ConfigError } from '../../core/errors.js';
import { createLogger } from '../../core/logger.js';
import { list, nonNegativeNumber, positiveInt } from '../../snapshot/cli-flags.js';
import { createProgressView } from '../../snapshot/progress.js';
import { formatDivergence, formatGovernedDivergence, formatSummary } from '../../verify/report.js';
import { runVerify } from '../../verify/verify.js';
import { ExitCode, type CommandContext } from '../context.js';
import { reportConfigError } from '../report.js';

/** How a governed repair line names what was done, by `action`. */
const GOVERNED_REPAIR_ACTIONS = {
  republished: 'winning version republished through the governed path from',
  rewritten: 'new version written and published through the governed path in',
  evicted: 'eviction notice to the regions holding it where it may not be sent from',
} as const;

interface VerifyFlags {
  readonly config: string;
  readonly regions?: string;
  readonly tables?: string;
  readonly chunkSize: string;
  readonly chunksPerSecond: string;
  readonly recheckDelay: string;
  readonly rechecks: string;
  readonly repair?: boolean;
  readonly progressInterval: string;
}

export function registerVerifyCommand(program: Command, context: CommandContext): void {
  program
    .command('verify')
    .description(
      'compare regions row by row while they take writes; list divergent rows (exit 1), optionally repair them',
    )
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .option(
      '--regions <list>',
      'comma-separated regions to compare (default: all; the first sets the chunks)',
    )
    .option(
      '--tables <list>',
      'comma-separated schema.table names (default: every configured table)',
    )
    .option('--chunk-size <rows>', 'rows per primary-key chunk', '1000')
    .option('--chunks-per-second <n>', 'at most this many chunks per second (0: no limit)', '20')
    .option('--recheck-delay <ms>', 'wait before reading a differing row again', '5000')
    .option('--rechecks <n>', 'times a differing row is read again before it is reported', '3')
    .option(
      '--repair',
      'publish the winning version of each divergent row so the regions converge (governed tables through the governed path)',
    )
    .option(
      '--progress-interval <ms>',
      'how often progress is logged when not on a terminal',
      '5000',
    )
    .action(async (flags: VerifyFlags) => {
      context.setExitCode(await verify(flags, context));
    });
}

async function verify(flags: VerifyFlags, context: CommandContext): Promise<ExitCode> {
  let regions;
  let numbers;
  try {
    numbers = {
      chunkSize: positiveInt('--chunk-size', flags.chunkSize),
      chunksPerSecond: nonNegativeNumber('--chunks-per-second', flags.chunksPerSecond),
      recheckDelayMs: nonNegativeNumber('--recheck-delay', flags.recheckDelay),
      rechecks: positiveInt('--rechecks', flags.rechecks),
      progressInterval: positiveInt('--progress-interval', flags.progressInterval),
    };
    const path = resolve(context.cwd, flags.config);
    const config = await loadConfigFile(path, { env: context.env });
    const names = list(flags.regions);
    const chosen = names.length > 0 ? names : Object.keys(config.regions);
    if (new Set(chosen).size < 2)
      throw new ConfigError(['--regions: name at least two different regions to compare']);
    regions = chosen.map((name) => compileRegion(config, name, { baseDir: dirname(path) }));
  } catch (error: unknown) {
    return reportConfigError(context.io, flags.config, error);
  }
  const logger = createLogger({
    level: context.env['CDC_LOG_LEVEL'] ?? (process.stderr.isTTY ? 'warn' : 'info'),
    base: { command: 'verify' },
    destination: process.stderr,
  });
  const abort = new AbortController();
  const onSignal = (): void => abort.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const progress = createProgressView(logger, 'verify', 'rows', numbers.progressInterval);
  const out = context.io.stdout;
  try {
    const result = await runVerify({
      regions,
      tables: list(flags.tables),
      chunkSize: numbers.chunkSize,
      chunksPerSecond: numbers.chunksPerSecond,
      recheckDelayMs: numbers.recheckDelayMs,
      rechecks: numbers.rechecks,
      repair: flags.repair === true,
      kafkaOf: (options) => createKafka(options.kafka, logger),
      progress,
      logger,
      signal: abort.signal,
    }).finally(() => progress.stop());
    for (const d of result.divergences) out.write(`${formatDivergence(d)}\n`);
    for (const d of result.governed) out.write(`${formatGovernedDivergence(d)}\n`);
    for (const r of result.repairs) {
      const pk = JSON.stringify(r.pk);
      out.write(
        r.action === 'skipped'
          ? `REPAIR SKIPPED ${r.table} pk ${pk}: ${r.reason}\n`
          : `REPAIRED ${r.table} pk ${pk}: ${r.action === 'rewritten' ? 'new version written in' : 'winning version republished from'} ${r.region}\n`,
      );
    }
    for (const r of result.governedRepairs)
      out.write(
        r.action === 'skipped'
          ? `REPAIR SKIPPED ${r.table} key ${r.keyHash}: ${r.reason}\n`
          : `REPAIRED ${r.table} key ${r.keyHash}: ${GOVERNED_REPAIR_ACTIONS[r.action]} ${r.region}\n`,
      );
    out.write(`${formatSummary(result.summary)}\n`);
    if ([...result.repairs, ...result.governedRepairs].some((r) => r.action !== 'skipped')) {
      out.write('repairs travel through the normal apply path: run verify again to confirm\n');
    }
    if (result.interrupted) {
      out.write('verify interrupted: the result covers only what was compared\n');
      return ExitCode.failure;
    }
    return result.divergences.length === 0 && result.governed.length === 0
      ? ExitCode.ok
      : ExitCode.failure;
  } catch (error: unknown) {
    if (error instanceof ConfigError) return reportConfigError(context.io, flags.config, error);
    if (error instanceof CdcError) {
      context.io.stderr.write(`cdc-replicator verify: ${error.message}\n`);
      return ExitCode.failure;
    }
    throw error;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}
