/**
 * `cdc-replicator snapshot --config F --region R [--tables a.b,c.d]`:
 * publishes the current content of the region's tables into its change
 * stream as `op=r` events (see src/snapshot/snapshot.ts and docs/BOOTSTRAP.md).
 * Ctrl-C stops after the current chunk and saves the checkpoint; running the
 * same command again resumes. A snapshot that had completed starts over.
 */
import type { Command } from 'commander';
import { createKafka } from '../../bus/kafka.js';
import { CdcError, ConfigError } from '../../core/errors.js';
import { createLogger } from '../../core/logger.js';
import { MetricsServer } from '../../monitor/http-server.js';
import { DaemonMetrics } from '../../monitor/metrics.js';
import { list, nonNegativeNumber, port, positiveInt } from '../../snapshot/cli-flags.js';
import { createProgressView } from '../../snapshot/progress.js';
import { runSnapshot, type SnapshotResult } from '../../snapshot/snapshot.js';
import { createCheckpointStore } from '../../state/index.js';
import { ExitCode, type CommandContext } from '../context.js';
import { loadRegionOptions, type RegionFlags } from '../region-options.js';
import { reportConfigError } from '../report.js';

interface SnapshotFlags extends RegionFlags {
  readonly tables?: string;
  readonly chunkSize: string;
  readonly chunksPerSecond: string;
  readonly restart?: boolean;
  readonly metricsPort?: string;
  readonly progressInterval: string;
}

export function registerSnapshotCommand(program: Command, context: CommandContext): void {
  program
    .command('snapshot')
    .description(
      "publish the current rows of the region's tables into its change stream (op=r, non-blocking, resumable)",
    )
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .option('-r, --region <name>', 'the region to read (env: CDC_REGION)')
    .option(
      '--tables <list>',
      'comma-separated schema.table names (default: every configured table)',
    )
    .option('--chunk-size <rows>', 'rows per primary-key chunk', '1000')
    .option('--chunks-per-second <n>', 'at most this many chunks per second (0: no limit)', '0')
    .option('--restart', 'start over instead of resuming an unfinished snapshot')
    .option('--metrics-port <port>', 'serve /metrics (cdc_snapshot_rows_total) on this port')
    .option(
      '--progress-interval <ms>',
      'how often progress is logged when not on a terminal',
      '5000',
    )
    .action(async (flags: SnapshotFlags) => {
      context.setExitCode(await snapshot(flags, context));
    });
}

async function snapshot(flags: SnapshotFlags, context: CommandContext): Promise<ExitCode> {
  let loaded;
  let chunkSize: number;
  let chunksPerSecond: number;
  let metricsPort: number | undefined;
  let progressInterval: number;
  try {
    chunkSize = positiveInt('--chunk-size', flags.chunkSize);
    chunksPerSecond = nonNegativeNumber('--chunks-per-second', flags.chunksPerSecond);
    progressInterval = positiveInt('--progress-interval', flags.progressInterval);
    metricsPort =
      flags.metricsPort === undefined ? undefined : port('--metrics-port', flags.metricsPort);
    loaded = await loadRegionOptions(flags, context);
  } catch (error: unknown) {
    return reportConfigError(context.io, flags.config, error);
  }
  const { options } = loaded;
  const onTerminal = process.stderr.isTTY;
  const logger = createLogger({
    // Bars own the terminal: only warnings and errors interrupt them.
    level: context.env['CDC_LOG_LEVEL'] ?? (onTerminal ? 'warn' : 'info'),
    base: { command: 'snapshot', region: options.region },
    destination: process.stderr,
  });
  const metrics = new DaemonMetrics();
  const server =
    metricsPort === undefined
      ? undefined
      : new MetricsServer({ ...options.metrics, port: metricsPort }, metrics, () => ({
          ready: true,
          reasons: [],
        }));
  const abort = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (abort.signal.aborted) {
      // A second Ctrl-C while Kafka is unreachable must not wait forever; nothing
      // unacknowledged is in the checkpoint, so the next run resumes correctly.
      context.io.stderr.write('cdc-replicator snapshot: stopped at once (second signal)\n');
      process.exit(ExitCode.failure);
    }
    logger.warn({ signal }, 'stopping after the current chunk; run the same command to resume');
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const progress = createProgressView(logger, 'snapshot', 'rows', progressInterval);
  const out = context.io.stdout;
  try {
    const listening = await server?.start();
    if (listening !== undefined) logger.info({ port: listening }, 'serving /metrics');
    const store = await createCheckpointStore(options.checkpointStore, { logger });
    let result: SnapshotResult;
    try {
      result = await runSnapshot({
        options,
        tables: list(flags.tables),
        chunkSize,
        chunksPerSecond,
        restart: flags.restart === true,
        store,
        kafka: createKafka(options.kafka, logger),
        metrics,
        progress,
        logger,
        signal: abort.signal,
      });
    } finally {
      progress.stop();
      await store.close();
    }
    let skipped = 0;
    for (const t of result.tables) {
      skipped += t.skipped + (t.governed?.refused ?? 0);
      const rate = t.seconds > 0 ? Math.round(t.rows / t.seconds) : t.rows;
      const start =
        t.resumedAfter === null
          ? `from the start (${t.startReason})`
          : `resumed after key ${JSON.stringify(t.resumedAfter)}`;
      out.write(
        `snapshot ${options.region} ${t.table}: ${t.rows} rows published ${start} in ${t.seconds.toFixed(1)} s ` +
          `(${rate} rows/s); ${t.totalRows} rows in this snapshot; ${t.completed ? 'complete' : 'NOT complete'}` +
          (t.skipped > 0 ? `; ${t.skipped} rows skipped (unreadable version, see log)` : '') +
          (t.governed === undefined
            ? ''
            : `; governed by ${t.governed.policy}: ${t.governed.heldMasked} rows held masked here not published` +
              ` (the plain regions publish them), ${t.governed.refused} refused (capture dead letters, see log)`) +
          '\n',
      );
    }
    if (result.interrupted) {
      out.write('snapshot interrupted: run the same command again to resume\n');
      return ExitCode.failure;
    }
    return skipped > 0 ? ExitCode.failure : ExitCode.ok;
  } catch (error: unknown) {
    if (error instanceof ConfigError) return reportConfigError(context.io, flags.config, error);
    if (error instanceof CdcError) {
      context.io.stderr.write(`cdc-replicator snapshot: ${error.message}\n`);
      return ExitCode.failure;
    }
    throw error;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await server?.stop();
  }
}
