/**
 * YAML text → validated configuration. Every problem in the file is collected
 * and reported at once, each as `keyPath (line L:C): message`, so a user fixes
 * the file in one round instead of one error per start attempt.
 */
import { readFile } from 'node:fs/promises';

import { ConfigError, fsErrorCode } from '../core/errors.js';
import { expandDocument, type EnvSource } from './env.js';
import type { ConfigPath } from './key-path.js';
import type { ValidatedConfig } from './schema.js';
import { validateConfig, type ConfigIssue } from './validate.js';
import { formatProblem, locate, parseYamlSource, type ConfigSource } from './source.js';

/** Options of {@link parseConfig} and {@link loadConfigFile}. */
export interface LoadOptions {
  /** Variables for `${VAR}` expansion. Defaults to `process.env`. */
  readonly env?: EnvSource;
  /**
   * The one region the caller serves (`run`, `prepare`, `snapshot`). Another
   * region's `mysql.password` may then reference an unset variable, which
   * expands to nothing: the daemon never connects to another region's
   * database, so each region's deployment only needs its own secrets.
   */
  readonly servingRegion?: string;
}

/**
 * Parses, expands and validates configuration text.
 *
 * @throws ConfigError listing every problem found (syntax, unset variables,
 *   unknown keys, bad values, cross-field rules), sorted by position.
 */
export function parseConfig(text: string, options: LoadOptions = {}): ValidatedConfig {
  const env = options.env ?? process.env;
  const { source, problems: syntaxProblems } = parseYamlSource(text);
  // Validating a document the parser could not read fully would mostly report
  // consequences of the syntax error, so syntax problems are reported alone.
  if (syntaxProblems.length > 0) throw new ConfigError(syntaxProblems);

  const envIssues = expandDocument(source.doc, env).filter(
    (issue) => !isOtherRegionsSecret(issue.path, options.servingRegion),
  );
  const validation = validateConfig(source.doc.toJS({ maxAliasCount: 100 }));
  // A value whose reference could not be expanded is already reported; its
  // leftover text would only add a second, misleading error at the same place.
  const schemaIssues = validation.success
    ? []
    : validation.issues.filter((issue) => !envIssues.some((env) => isWithin(issue.path, env.path)));

  const issues = [...envIssues, ...schemaIssues];
  if (issues.length > 0 || !validation.success) throw new ConfigError(formatIssues(source, issues));
  return validation.config;
}

/**
 * Reads and parses a configuration file.
 *
 * @throws ConfigError when the file cannot be read or is invalid.
 */
export async function loadConfigFile(
  path: string,
  options: LoadOptions = {},
): Promise<ValidatedConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error: unknown) {
    const code = fsErrorCode(error);
    throw new ConfigError([`cannot read configuration file ${JSON.stringify(path)}: ${code}`], {
      cause: error,
    });
  }
  return parseConfig(text, options);
}

function isOtherRegionsSecret(path: ConfigPath, servingRegion: string | undefined): boolean {
  return (
    servingRegion !== undefined &&
    path.length === 4 &&
    path[0] === 'regions' &&
    path[1] !== servingRegion &&
    path[2] === 'mysql' &&
    path[3] === 'password'
  );
}

function isWithin(path: ConfigPath, prefix: ConfigPath): boolean {
  return prefix.length <= path.length && prefix.every((segment, i) => path[i] === segment);
}

/** Locates and formats issues, in file order so the list reads top to bottom. */
function formatIssues(source: ConfigSource, issues: readonly ConfigIssue[]): string[] {
  return issues
    .map((issue) => ({ issue, position: locate(source, issue.path, issue.target) }))
    .sort((a, b) => a.position.line - b.position.line || a.position.col - b.position.col)
    .map(({ issue, position }) => formatProblem(issue.path, position, issue.message));
}
