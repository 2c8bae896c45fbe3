/**
 * One error hierarchy for the whole daemon. Every error says whether retrying
 * the same operation can succeed (`retriable`), so callers decide by flag,
 * never by message text. The original error travels as `cause`.
 */
export interface CdcErrorOptions {
  /** Whether retrying the failed operation may succeed. */
  retriable?: boolean;
  /** Stable machine-readable code, e.g. `CONFIG_INVALID` or `MYSQL_1213`. */
  code?: string;
  cause?: unknown;
}

export class CdcError extends Error {
  readonly retriable: boolean;
  readonly code: string;

  constructor(message: string, options: CdcErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.retriable = options.retriable ?? false;
    this.code = options.code ?? 'CDC_ERROR';
  }
}

/** A configuration file or command line that cannot be used as given. Never retriable. */
export class ConfigError extends CdcError {
  /** Every problem found, each already formatted with its key path and line. */
  readonly problems: readonly string[];

  constructor(problems: readonly string[], options: { cause?: unknown } = {}) {
    super(
      problems.length === 1
        ? `invalid configuration: ${problems[0] ?? ''}`
        : `invalid configuration (${problems.length} problems):\n  ${problems.join('\n  ')}`,
      { retriable: false, code: 'CONFIG_INVALID', cause: options.cause },
    );
    this.problems = problems;
  }
}

/** A required program or service is missing or could not be started. */
export class EnvironmentError extends CdcError {
  constructor(message: string, options: CdcErrorOptions = {}) {
    super(message, { code: 'ENVIRONMENT', ...options });
  }
}

/**
 * The `code` of a file-system error (`ENOENT`, `EACCES`, ...), or
 * `'unreadable'`. Checked structurally: fs errors may come from another
 * realm (e.g. under jest's VM), where `instanceof Error` fails.
 */
export function fsErrorCode(error: unknown): string {
  return typeof error === 'object' &&
    error !== null &&
    'code' in error &&
    typeof error.code === 'string'
    ? error.code
    : 'unreadable';
}
