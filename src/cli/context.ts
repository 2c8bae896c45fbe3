/**
 * What every command receives instead of reaching for process globals, so the
 * whole command line can run inside a test with its own streams and
 * environment.
 */
import type { EnvSource } from '../config/env.js';

/** Anything text can be written to: `process.stdout`, or a buffer in tests. */
export interface TextSink {
  write(text: string): unknown;
}

/** The streams a command writes to: results to stdout, problems to stderr. */
export interface CliIo {
  readonly stdout: TextSink;
  readonly stderr: TextSink;
}

/** Exit codes shared by all commands. */
export const ExitCode = {
  ok: 0,
  /** Something unexpected failed (a bug or an environment problem). */
  failure: 1,
  /** The command line or the configuration is wrong; fix it and run again. */
  usage: 2,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** Everything a command module gets from the program: streams, environment, working directory. */
export interface CommandContext {
  readonly io: CliIo;
  /** Variables for `${VAR}` expansion and `CDC_*` defaults of options. */
  readonly env: EnvSource;
  /** Directory relative paths on the command line are resolved against. */
  readonly cwd: string;
  /** Records the process exit code once the command's action has finished. */
  setExitCode(code: ExitCode): void;
}
