/**
 * `cdc-replicator prepare --config F --region R [--dry-run]`: the idempotent
 * set-up of what replication needs in the region's database.
 */
import type { Command } from 'commander';
import { CdcError } from '../../core/errors.js';
import { connectMysql, describeMysql } from '../../mysql/connection.js';
import { applyPrepare, planPrepare } from '../../prepare/prepare.js';
import { ExitCode, type CommandContext } from '../context.js';
import { loadRegionOptions, type RegionFlags } from '../region-options.js';
import { reportConfigError } from '../report.js';

interface PrepareFlags extends RegionFlags {
  readonly dryRun?: boolean;
  readonly visibleVersionColumns?: boolean;
}

export function registerPrepareCommand(program: Command, context: CommandContext): void {
  program
    .command('prepare')
    .description(
      "set up the region's database: internal tables, INVISIBLE version columns, tombstone triggers (idempotent)",
    )
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .option('-r, --region <name>', 'the region to prepare (env: CDC_REGION)')
    .option('--dry-run', 'print the SQL instead of running it')
    .option(
      '--visible-version-columns',
      'on a server without INVISIBLE columns (MySQL before 8.0.23), add _cdc_ts and _cdc_ver as ordinary trailing columns',
    )
    .action(async (flags: PrepareFlags) => {
      context.setExitCode(await prepare(flags, context));
    });
}

async function prepare(flags: PrepareFlags, context: CommandContext): Promise<ExitCode> {
  let loaded;
  try {
    loaded = await loadRegionOptions(flags, context, 'prepare');
  } catch (error: unknown) {
    return reportConfigError(context.io, flags.config, error);
  }
  const { config, options } = loaded;
  const out = context.io.stdout;
  try {
    const connection = await connectMysql(options.mysql);
    try {
      const plan = await planPrepare(connection, options, config.internalSchema, {
        visibleVersionColumns: flags.visibleVersionColumns === true,
      });
      const where = `region ${options.region} (${describeMysql(options.mysql)})`;
      for (const warning of plan.warnings)
        context.io.stderr.write(`cdc-replicator prepare: warning: ${where}: ${warning}\n`);
      if (plan.steps.length === 0) {
        out.write(`${where}: already prepared, nothing to change (${plan.tables.length} tables)\n`);
        return ExitCode.ok;
      }
      if (flags.dryRun === true) {
        out.write(`-- ${where}: ${plan.steps.length} change(s) planned, not applied (--dry-run)\n`);
        for (const step of plan.steps) {
          out.write(`\n-- ${step.description}\n`);
          for (const sql of step.sql) out.write(`${sql};\n`);
        }
        return ExitCode.ok;
      }
      await applyPrepare(connection, plan);
      out.write(`${where}: ${plan.steps.length} change(s) applied\n`);
      for (const step of plan.steps) out.write(`  ${step.description}\n`);
      return ExitCode.ok;
    } finally {
      await connection.end();
    }
  } catch (error: unknown) {
    if (error instanceof CdcError) {
      context.io.stderr.write(`cdc-replicator prepare: ${error.message}\n`);
      return ExitCode.failure;
    }
    throw error;
  }
}
