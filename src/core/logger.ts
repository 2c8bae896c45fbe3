import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

/**
 * Field paths that may carry credentials. pino replaces them before
 * serialisation, so a secret that slips into a log object is still masked.
 * (Config values are additionally wrapped in `Secret`, which prints itself as
 * `[REDACTED]`.)
 */
export const REDACTED_PATHS: readonly string[] = [
  'password',
  'passwd',
  'secret',
  'token',
  'url',
  '*.password',
  '*.passwd',
  '*.secret',
  '*.token',
  '*.url',
  '*.*.password',
  '*.*.url',
  'sasl.password',
  '*.sasl.password',
];

export interface CreateLoggerOptions {
  level?: string;
  /** Human-readable output; defaults to whether stdout is a TTY. */
  pretty?: boolean;
  /** Static fields on every line, e.g. `{ region: 'us-east' }`. */
  base?: Record<string, unknown>;
  /** Destination stream; defaults to stdout. */
  destination?: NodeJS.WritableStream;
}

/**
 * The daemon's logger: JSON lines by default (for log shippers), a readable
 * colourised format when a person is watching a TTY.
 */
export function createLogger(options: CreateLoggerOptions = {}): Logger {
  const level = options.level ?? process.env.CDC_LOG_LEVEL ?? 'info';
  const pinoOptions: LoggerOptions = {
    level,
    base: { pid: process.pid, ...options.base },
    redact: { paths: [...REDACTED_PATHS], censor: '[REDACTED]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  const pretty = options.pretty ?? (options.destination === undefined && process.stdout.isTTY);
  if (pretty) {
    return pino({
      ...pinoOptions,
      transport: {
        target: 'pino-pretty',
        options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' },
      },
    });
  }
  if (options.destination !== undefined) {
    return pino(pinoOptions, options.destination);
  }
  return pino(pinoOptions);
}

/** A logger that discards everything, for library callers that pass none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
