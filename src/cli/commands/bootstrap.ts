/**
 * `cdc-replicator bootstrap --config F --region NEW --from SOURCE`: brings a
 * new, empty region to parity with running ones (docs/BOOTSTRAP.md). Creates
 * the replicated tables in NEW from SOURCE's definitions where missing, runs
 * `prepare` in NEW, then snapshots SOURCE into the change stream, which NEW's
 * daemon applies (its consumer group starts from the beginning of the topics,
 * so it may be started before or after this command).
 */
import type { Command } from 'commander';
import { dirname, resolve } from 'node:path';
import { createKafka } from '../../bus/kafka.js';
import { compileRegion } from '../../config/compile.js';
import { CdcError, ConfigError } from '../../core/errors.js';
import { createLogger } from '../../core/logger.js';
import { DaemonMetrics } from '../../monitor/metrics.js';
import { bootstrapSchema, governedSnapshotSources } from '../../snapshot/bootstrap.js';
import { list, nonNegativeNumber, positiveInt } from '../../snapshot/cli-flags.js';
import { createProgressView } from '../../snapshot/progress.js';
import { runSnapshot } from '../../snapshot/snapshot.js';
import { createCheckpointStore } from '../../state/index.js';
import { ExitCode, type CommandContext } from '../context.js';
import { loadRegionOptions, type RegionFlags } from '../region-options.js';
import { reportConfigError } from '../report.js';

interface BootstrapFlags extends RegionFlags {
  readonly from?: string;
  readonly tables?: string;
  readonly chunkSize: string;
  readonly chunksPerSecond: string;
  readonly progressInterval: string;
  readonly visibleVersionColumns?: boolean;
}

export function registerBootstrapCommand(program: Command, context: CommandContext): void {
  program
    .command('bootstrap')
    .description(
      'bring a new region to parity: create missing tables from --from, prepare, snapshot --from',
    )
    .requiredOption(
      '-c, --config <file>',
      'configuration file (YAML) that already lists the new region',
    )
    .option('-r, --region <name>', 'the new region (env: CDC_REGION)')
    .option('--from <region>', 'the running region whose tables and rows are copied')
    .option(
      '--tables <list>',
      'comma-separated schema.table names (default: every configured table)',
    )
    .option(
      '--visible-version-columns',
      'when the new region has no INVISIBLE columns (MySQL before 8.0.23), add _cdc_ts and _cdc_ver as ordinary trailing columns (see prepare)',
    )
    .option('--chunk-size <rows>', 'rows per primary-key chunk of the snapshot', '1000')
    .option('--chunks-per-second <n>', 'at most this many chunks per second (0: no limit)', '0')
    .option(
      '--progress-interval <ms>',
      'how often progress is logged when not on a terminal',
      '5000',
    )
    .action(async (flags: BootstrapFlags) => {
      context.setExitCode(await bootstrap(flags, context));
    });
}

async function bootstrap(flags: BootstrapFlags, context: CommandContext): Promise<ExitCode> {
  // Relative paths in the file (certificates, keys) are read from its directory, for every region compiled.
  const configDir = dirname(resolve(context.cwd, flags.config));
  let loaded;
  let sourceOptions;
  let chunkSize: number;
  let chunksPerSecond: number;
  let progressInterval: number;
  try {
    chunkSize = positiveInt('--chunk-size', flags.chunkSize);
    chunksPerSecond = nonNegativeNumber('--chunks-per-second', flags.chunksPerSecond);
    progressInterval = positiveInt('--progress-interval', flags.progressInterval);
    loaded = await loadRegionOptions(flags, context, 'all regions');
    if (flags.from === undefined) throw new ConfigError(['--from: required (the source region)']);
    if (flags.from === loaded.options.region)
      throw new ConfigError(['--from: must name another region than --region']);
    sourceOptions = compileRegion(loaded.config, flags.from, { baseDir: configDir });
  } catch (error: unknown) {
    return reportConfigError(context.io, flags.config, error);
  }
  const target = loaded.options;
  const logger = createLogger({
    level: context.env['CDC_LOG_LEVEL'] ?? (process.stderr.isTTY ? 'warn' : 'info'),
    base: { command: 'bootstrap', region: target.region, from: sourceOptions.region },
    destination: process.stderr,
  });
  const out = context.io.stdout;
  const tables = list(flags.tables);
  const abort = new AbortController();
  const onSignal = (): void => abort.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    // Every configured table is created (prepare needs them all); --tables limits the snapshot.
    const schema = await bootstrapSchema(sourceOptions, target, logger, {
      visibleVersionColumns: flags.visibleVersionColumns === true,
    });
    for (const name of schema.created)
      out.write(`bootstrap ${target.region}: created ${name} from ${sourceOptions.region}\n`);
    for (const step of schema.prepareSteps) out.write(`bootstrap ${target.region}: ${step}\n`);
    for (const name of schema.nonEmpty)
      out.write(
        `bootstrap ${target.region}: ${name} already has rows; they are kept and joined with the snapshot by version\n`,
      );
    // Governed rows the source does not hold plain come from a region that does (docs/GOVERNANCE.md).
    const extra = governedSnapshotSources(
      target.governance,
      sourceOptions.region,
      target.region,
      tables,
    );
    const snapshots = [
      { options: sourceOptions, tables },
      ...extra.map((e) => ({
        options: compileRegion(loaded.config, e.region, { baseDir: configDir }),
        tables: [...e.tables],
      })),
    ];
    for (const e of extra)
      for (const reason of e.reasons)
        out.write(
          `bootstrap ${target.region}: ${reason}: not held plain by ${sourceOptions.region}; copied from ${e.region}\n`,
        );
    for (const snapshot of snapshots) {
      const source = snapshot.options;
      const store = await createCheckpointStore(source.checkpointStore, { logger });
      const progress = createProgressView(logger, 'snapshot', 'rows', progressInterval);
      try {
        const result = await runSnapshot({
          options: source,
          tables: snapshot.tables,
          chunkSize,
          chunksPerSecond,
          // A bootstrap always copies everything, even after an earlier complete snapshot.
          restart: false,
          store,
          kafka: createKafka(source.kafka, logger),
          metrics: new DaemonMetrics({ defaultMetrics: false }),
          progress,
          logger,
          signal: abort.signal,
        });
        for (const t of result.tables)
          out.write(
            `bootstrap ${target.region}: snapshot of ${source.region} ${t.table}: ${t.rows} rows published` +
              `${t.completed ? '' : ' (NOT complete)'}\n`,
          );
        if (
          result.interrupted ||
          result.tables.some((t) => !t.completed || t.skipped > 0 || (t.governed?.refused ?? 0) > 0)
        ) {
          out.write(
            'bootstrap interrupted or incomplete (see the log): run the same command again to resume\n',
          );
          return ExitCode.failure;
        }
      } finally {
        progress.stop();
        await store.close();
      }
    }
    out.write(
      `bootstrap ${target.region}: done. Start (or keep running) the daemon of ${target.region}; ` +
        `it converges once it has applied the snapshot. Check with: cdc-replicator verify --config ${flags.config}\n`,
    );
    return ExitCode.ok;
  } catch (error: unknown) {
    if (error instanceof ConfigError) return reportConfigError(context.io, flags.config, error);
    if (error instanceof CdcError) {
      context.io.stderr.write(`cdc-replicator bootstrap: ${error.message}\n`);
      return ExitCode.failure;
    }
    throw error;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}
