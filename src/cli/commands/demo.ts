/**
 * `cdc-replicator demo [--duration S]`: a local two-region sandbox with both
 * daemons, a mixed workload and a live view; ends with a convergence check
 * and exits 0 when the regions hold the same data. Ctrl-C ends the workload
 * early (the check and the clean-up still run); a second Ctrl-C quits at once.
 */
import { type Command, InvalidArgumentError } from 'commander';

import { runDemo } from '../../demo/demo.js';
import { ExitCode, type CommandContext } from '../context.js';

interface DemoFlags {
  readonly duration?: number;
  readonly rate: number;
}

export function registerDemoCommand(program: Command, context: CommandContext): void {
  program
    .command('demo')
    .description(
      'start a local two-region sandbox, replicate a live workload between the regions and check they converge',
    )
    .option(
      '-d, --duration <seconds>',
      'run the workload this long, then check (default: until Ctrl-C)',
      positive,
    )
    .option('--rate <writes>', 'writes per second in each region', positive, 25)
    .action(async (flags: DemoFlags) => {
      context.setExitCode(await demo(flags, context));
    });
}

async function demo(flags: DemoFlags, context: CommandContext): Promise<ExitCode> {
  const interrupt = new AbortController();
  const onSignal = (): void => {
    if (interrupt.signal.aborted) {
      context.io.stderr.write('cdc-replicator demo: interrupted twice, quitting now\n');
      process.exit(130);
    }
    interrupt.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const result = await runDemo({
      durationSeconds: flags.duration,
      writesPerSecond: flags.rate,
      out: context.io.stdout,
      live: (context.io.stdout as { isTTY?: boolean }).isTTY === true,
      signal: interrupt.signal,
    });
    return result.converged ? ExitCode.ok : ExitCode.failure;
  } catch (error: unknown) {
    context.io.stderr.write(
      `cdc-replicator demo: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    return ExitCode.failure;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a number > 0');
  return n;
}
