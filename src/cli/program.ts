/**
 * The `cdc-replicator` command line, as a function of argv, streams and
 * environment, so it runs the same in the bin and in tests. Each command lives
 * in its own module under commands/ and registers itself here.
 */
import { Command, CommanderError } from 'commander';

import type { EnvSource } from '../config/env.js';
import { registerAuditCommand } from './commands/audit.js';
import { registerBootstrapCommand } from './commands/bootstrap.js';
import { registerDeadLettersCommand } from './commands/dead-letters.js';
import { registerDemoCommand } from './commands/demo.js';
import { registerEraseCommand } from './commands/erase.js';
import { registerPrepareCommand } from './commands/prepare.js';
import { registerRunCommand } from './commands/run.js';
import { registerSnapshotCommand } from './commands/snapshot.js';
import { registerStatusCommand } from './commands/status.js';
import { registerValidateCommand } from './commands/validate.js';
import { registerVerifyCommand } from './commands/verify.js';
import { ExitCode, type CliIo, type CommandContext } from './context.js';
import { packageVersion } from './version.js';

export interface RunCliOptions {
  /** Directory relative paths are resolved against. Defaults to `process.cwd()`. */
  readonly cwd?: string;
}

/**
 * Runs the command line and returns the process exit code: 0 on success
 * (including `--help` and `--version`), 2 for usage and configuration errors,
 * 1 for anything unexpected.
 *
 * @param argv the arguments after the program name (`process.argv.slice(2)`).
 */
export async function runCli(
  argv: readonly string[],
  io: CliIo,
  env: EnvSource = process.env,
  options: RunCliOptions = {},
): Promise<number> {
  let exitCode: ExitCode = ExitCode.ok;
  const context: CommandContext = {
    io,
    env,
    cwd: options.cwd ?? process.cwd(),
    setExitCode: (code) => {
      exitCode = code;
    },
  };
  const program = buildProgram(context);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (error: unknown) {
    // With exitOverride, commander throws instead of exiting; it has already
    // printed its message (or the help/version text) through configureOutput.
    if (error instanceof CommanderError) return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    io.stderr.write(`cdc-replicator: unexpected error: ${describeUnexpected(error)}\n`);
    return ExitCode.failure;
  }
}

function describeUnexpected(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}

/** The commander program. Settings made before `.command()` are inherited by every command. */
function buildProgram(context: CommandContext): Command {
  const program = new Command('cdc-replicator')
    .description(
      'Active-active cross-region replicator for MySQL (binlog capture → Kafka → conflict-resolving apply).',
    )
    .version(packageVersion(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => context.io.stdout.write(text),
      writeErr: (text) => context.io.stderr.write(text),
    })
    .showHelpAfterError('(run cdc-replicator --help for usage)')
    .allowExcessArguments(false);
  registerValidateCommand(program, context);
  registerPrepareCommand(program, context);
  registerRunCommand(program, context);
  registerStatusCommand(program, context);
  registerDemoCommand(program, context);
  registerSnapshotCommand(program, context);
  registerBootstrapCommand(program, context);
  registerVerifyCommand(program, context);
  registerDeadLettersCommand(program, context);
  registerAuditCommand(program, context);
  registerEraseCommand(program, context);
  return program;
}
