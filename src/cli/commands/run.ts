/**
 * `cdc-replicator run --config F --region R`: the daemon. SIGTERM or SIGINT
 * drains in-flight work, saves checkpoints and exits 0; a fatal error exits 1
 * with the reason.
 */
import type { Command } from 'commander';
import { CdcError } from '../../core/errors.js';
import { createLogger } from '../../core/logger.js';
import { Daemon } from '../../daemon/daemon.js';
import { ExitCode, type CommandContext } from '../context.js';
import { loadRegionOptions, type RegionFlags } from '../region-options.js';
import { reportConfigError } from '../report.js';

interface RunFlags extends RegionFlags {
  readonly drainTimeout: string;
}

export function registerRunCommand(program: Command, context: CommandContext): void {
  program
    .command('run')
    .description(
      "run the region's daemon: capture its binlog into Kafka, apply the other regions' changes, serve metrics",
    )
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .option('-r, --region <name>', 'the region this daemon serves (env: CDC_REGION)')
    .option('--drain-timeout <ms>', 'how long a graceful stop may take', '30000')
    .action(async (flags: RunFlags) => {
      context.setExitCode(await run(flags, context));
    });
}

async function run(flags: RunFlags, context: CommandContext): Promise<ExitCode> {
  let loaded;
  try {
    loaded = await loadRegionOptions(flags, context);
  } catch (error: unknown) {
    return reportConfigError(context.io, flags.config, error);
  }
  const { options } = loaded;
  const logger = createLogger({ base: { region: options.region } });
  const drainTimeoutMs = Number.parseInt(flags.drainTimeout, 10);
  const daemon = new Daemon({
    options,
    logger,
    drainTimeoutMs: Number.isFinite(drainTimeoutMs) ? drainTimeoutMs : 30_000,
  });

  const stopRequested = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  try {
    await daemon.start();
  } catch (error: unknown) {
    const message = error instanceof Error ? error.message : String(error);
    logger.fatal({ code: error instanceof CdcError ? error.code : undefined }, message);
    context.io.stderr.write(`cdc-replicator run: ${message}\n`);
    return ExitCode.failure;
  }
  const outcome = await Promise.race([
    stopRequested.then((signal) => ({ kind: 'signal' as const, signal })),
    daemon.failed.then((error) => ({ kind: 'failed' as const, error })),
  ]);
  if (outcome.kind === 'failed') {
    context.io.stderr.write(`cdc-replicator run: ${outcome.error.message}\n`);
    await daemon.stop().catch(() => undefined); // the failure above is what the operator needs
    return ExitCode.failure;
  }
  logger.info({ signal: outcome.signal }, 'stopping: draining in-flight work');
  try {
    await daemon.stop();
    return ExitCode.ok;
  } catch (error: unknown) {
    const message = error instanceof Error ? error.message : String(error);
    logger.error(message);
    context.io.stderr.write(`cdc-replicator run: ${message}\n`);
    return ExitCode.failure;
  }
}
