/**
 * `cdc-replicator status --config F [--json]`: one row per (source, target)
 * region pair with lag, events/s, conflicts/s and dead letters, read from
 * every region daemon's metrics endpoint (`regions.<r>.metrics.url`, or its
 * host and port). Exits 1 when a pair is over the lag threshold or a daemon
 * does not answer, so it can gate scripts and deployments.
 */
import { dirname, resolve } from 'node:path';

import { type Command, InvalidArgumentError } from 'commander';

import { compileAllRegions } from '../../config/compile.js';
import { loadConfigFile } from '../../config/load.js';
import { ConfigError } from '../../core/errors.js';
import { collectStatus, renderStatusTable } from '../../monitor/status.js';
import { ExitCode, type CommandContext } from '../context.js';
import { reportConfigError } from '../report.js';

interface StatusFlags {
  readonly config: string;
  readonly json?: boolean;
  readonly interval: number;
  readonly threshold?: number;
}

export function registerStatusCommand(program: Command, context: CommandContext): void {
  program
    .command('status')
    .description('show lag, throughput, conflicts and dead letters of every region pair')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .option('--json', 'print the report as JSON')
    .option(
      '--interval <ms>',
      'time between the two scrapes that rates are computed from',
      nonNegativeInteger,
      1000,
    )
    .option(
      '--threshold <seconds>',
      'lag over which a pair fails (default: monitor.lagThresholdSeconds)',
      positiveNumber,
    )
    .action(async (flags: StatusFlags) => {
      context.setExitCode(await status(flags, context));
    });
}

async function status(flags: StatusFlags, context: CommandContext): Promise<ExitCode> {
  const path = resolve(context.cwd, flags.config);
  let endpoints;
  let threshold: number;
  try {
    const config = await loadConfigFile(path, { env: context.env });
    const regions = compileAllRegions(config, { baseDir: dirname(path) });
    const unknown = regions.filter((o) => o.metrics.url === undefined);
    if (unknown.length > 0)
      throw new ConfigError(
        unknown.map(
          (o) =>
            `regions.${o.region}.metrics: port 0 is chosen when the daemon starts, so status cannot find it: set regions.${o.region}.metrics.url`,
        ),
      );
    endpoints = regions.map((o) => ({ region: o.region, url: o.metrics.url as string }));
    threshold = flags.threshold ?? config.monitor.lagThresholdSeconds;
  } catch (error: unknown) {
    return reportConfigError(context.io, flags.config, error);
  }
  const report = await collectStatus(endpoints, {
    intervalMs: flags.interval,
    lagThresholdSeconds: threshold,
  });
  context.io.stdout.write(
    flags.json === true ? `${JSON.stringify(report, null, 2)}\n` : renderStatusTable(report),
  );
  return report.healthy ? ExitCode.ok : ExitCode.failure;
}

function nonNegativeInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a whole number ≥ 0');
  return n;
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a number > 0');
  return n;
}
