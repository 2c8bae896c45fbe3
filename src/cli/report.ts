import { ConfigError } from '../core/errors.js';
import { ExitCode, type CliIo } from './context.js';

/**
 * Prints a failed command's error and picks the exit code: a ConfigError
 * lists every problem and exits with the usage code (the user must fix the
 * file or the command line); anything else is unexpected.
 */
export function reportConfigError(io: CliIo, file: string, error: unknown): ExitCode {
  if (error instanceof ConfigError) {
    const count = error.problems.length;
    io.stderr.write(
      `${file}: invalid configuration (${count} problem${count === 1 ? '' : 's'})\n` +
        error.problems.map((problem) => `  ${problem}\n`).join(''),
    );
    return ExitCode.usage;
  }
  throw error;
}
