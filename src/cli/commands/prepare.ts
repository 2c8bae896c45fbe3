/**
 * `cdc-replicator prepare --config F --region R [--dry-run]`: the idempotent
 * set-up of what replication needs in the region's database.
 */
import type { Command } from 'commander';
import { CdcError } from '../../core/errors.js';
import type { RuntimeOptions } from '../../config/compile.js';
import { checkPolicyTable } from '../../governance/table-check.js';
import { connectMysql, describeMysql, type MysqlConnection } from '../../mysql/connection.js';
import { describeTable } from '../../mysql/introspect.js';
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
    loaded = await loadRegionOptions(flags, context);
  } catch (error: unknown) {
    return reportConfigError(context.io, flags.config, error);
  }
  const { config, options } = loaded;
  const out = context.io.stdout;
  try {
    const connection = await connectMysql(options.mysql);
    try {
      // Masked and residency columns a policy cannot work with (docs/GOVERNANCE.md, "Configuration").
      const problems = await governedTableProblems(connection, options);
      if (problems.length > 0) {
        context.io.stderr.write(
          `cdc-replicator prepare: region ${options.region}: the governed tables do not fit their policies (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n`,
        );
        for (const problem of problems) context.io.stderr.write(`  ${problem}\n`);
        return ExitCode.failure;
      }
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

/**
 * `checkPolicyTable` for every governed table that exists in this region
 * (a missing configured table is refused by the plan itself): masked
 * columns that are missing, in the key, NOT NULL under `nullify`, of a type
 * the mask cannot take or too narrow for it, and residency columns of the
 * wrong type. Messages name tables, columns and types, never values.
 */
async function governedTableProblems(
  connection: MysqlConnection,
  options: RuntimeOptions,
): Promise<string[]> {
  const problems: string[] = [];
  for (const policy of options.governance?.policies ?? []) {
    for (const { schema, table } of policy.tables) {
      const info = await describeTable(connection, schema, table);
      if (info !== undefined) problems.push(...checkPolicyTable(policy, info));
    }
  }
  return problems;
}
