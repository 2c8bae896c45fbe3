/**
 * `cdc-replicator run --config F --region R`: the daemon. SIGTERM or SIGINT
 * drains in-flight work, saves checkpoints and exits 0; a fatal error exits 1
 * with the reason.
 */
import type { Command } from 'commander';
import { CdcError } from '../../core/errors.js';
import { createLogger } from '../../core/logger.js';
import { Daemon } from '../../daemon/daemon.js';
import {
  LOST_POSITION_FLAGS,
  positionProblem,
  type LostPositionChoice,
} from '../../capture/start-position.js';
import { ExitCode, type CommandContext } from '../context.js';
import { loadRegionOptions, type RegionFlags } from '../region-options.js';
import { reportConfigError } from '../report.js';

interface RunFlags extends RegionFlags {
  readonly drainTimeout: string;
  readonly resumeFromGtid?: string;
  readonly replayFromOldestBinlog?: boolean;
  readonly acceptGap?: boolean;
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
    .option(
      '--resume-from-gtid <position>',
      'only when no saved capture position exists anywhere: resume capture after this GTID position',
    )
    .option(
      '--replay-from-oldest-binlog',
      'only when no saved capture position exists anywhere: replay from the oldest binlog on the server',
    )
    .option(
      '--accept-gap',
      'only when no saved capture position exists anywhere: start at the end of the binlog and accept the gap (audited)',
    )
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
  const lostPosition = lostPositionChoice(flags);
  if (typeof lostPosition === 'string') {
    context.io.stderr.write(`cdc-replicator run: ${lostPosition}\n`);
    return ExitCode.usage;
  }
  const logger = createLogger({ base: { region: options.region } });
  const drainTimeoutMs = Number.parseInt(flags.drainTimeout, 10);
  const daemon = new Daemon({
    options,
    logger,
    drainTimeoutMs: Number.isFinite(drainTimeoutMs) ? drainTimeoutMs : 30_000,
    lostPosition,
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

/** The lost-position option given, or a usage problem (at most one may be given). */
function lostPositionChoice(flags: RunFlags): LostPositionChoice | undefined | string {
  const given: LostPositionChoice[] = [];
  if (flags.resumeFromGtid !== undefined) {
    const problem = positionProblem(flags.resumeFromGtid);
    if (problem !== undefined) return `--resume-from-gtid: ${problem}`;
    given.push({ kind: 'resume-from-gtid', position: flags.resumeFromGtid.replace(/\s+/g, '') });
  }
  if (flags.replayFromOldestBinlog === true) given.push({ kind: 'replay-from-oldest-binlog' });
  if (flags.acceptGap === true) given.push({ kind: 'accept-gap' });
  if (given.length > 1)
    return `choose one of ${given.map((c) => LOST_POSITION_FLAGS[c.kind]).join(', ')}`;
  return given[0];
}
