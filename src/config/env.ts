/**
 * `${VAR}` expansion, so that no secret (or per-host value) has to sit in the
 * configuration file. Expansion runs on the parsed YAML document, scalar by
 * scalar, so that positions of later errors still point into the file as
 * written, and so that a value from the environment can never change the
 * document's structure (no YAML injection through a variable).
 */
import { isMap, isScalar, isSeq, type Document, type Node } from 'yaml';

import type { ConfigPath } from './key-path.js';

/** Where variables come from. Injected (default `process.env`) so tests and callers control it. */
export type EnvSource = Readonly<Record<string, string | undefined>>;

/** What went wrong in one reference. Variable names are reported; values never are. */
export type EnvProblem =
  { readonly kind: 'unset'; readonly name: string } | { readonly kind: 'malformed' };

/** Result of {@link expandString}: the expanded text and any reference that could not be expanded. */
export interface ExpandedString {
  readonly value: string;
  readonly problems: readonly EnvProblem[];
}

const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Expands the references in one string:
 *
 * - `${NAME}`: the variable's value; an error when it is unset (an empty
 *   value is allowed, e.g. a passwordless test user);
 * - `${NAME:-default}`: the default when the variable is unset or empty, as
 *   in POSIX shells;
 * - `$${`: a literal `${` (e.g. a password that contains one).
 *
 * A `$` not followed by `{` is kept as is. Expansion is a single pass: values
 * from the environment are never expanded again.
 */
export function expandString(text: string, env: EnvSource): ExpandedString {
  const problems: EnvProblem[] = [];
  let value = '';
  let i = 0;
  while (i < text.length) {
    const dollar = text.indexOf('$', i);
    if (dollar === -1) {
      value += text.slice(i);
      break;
    }
    value += text.slice(i, dollar);
    if (text.startsWith('$${', dollar)) {
      value += '${';
      i = dollar + 3;
      continue;
    }
    if (text[dollar + 1] !== '{') {
      value += '$';
      i = dollar + 1;
      continue;
    }
    const close = text.indexOf('}', dollar + 2);
    const body = close === -1 ? '' : text.slice(dollar + 2, close);
    const separator = body.indexOf(':-');
    const name = separator === -1 ? body : body.slice(0, separator);
    if (close === -1 || !VARIABLE_NAME.test(name)) {
      problems.push({ kind: 'malformed' });
      // Keep the rest verbatim; the value is unusable anyway and only the problem is reported.
      value += text.slice(dollar);
      break;
    }
    const fromEnv = env[name];
    if (separator !== -1) {
      value += fromEnv === undefined || fromEnv === '' ? body.slice(separator + 2) : fromEnv;
    } else if (fromEnv === undefined) {
      problems.push({ kind: 'unset', name });
    } else {
      value += fromEnv;
    }
    i = close + 1;
  }
  return { value, problems };
}

/** A reference that could not be expanded, located by its key path. */
export interface EnvIssue {
  readonly path: ConfigPath;
  readonly message: string;
}

function describeProblem(problem: EnvProblem): string {
  return problem.kind === 'unset'
    ? `environment variable ${problem.name} is not set (use \${${problem.name}:-default} to allow that)`
    : 'malformed ${...} reference: expected ${NAME} or ${NAME:-default} (write $${ for a literal ${)';
}

/**
 * Expands references in every string value of the document, in place. Keys
 * are left alone: names of regions and fields are part of the file's
 * structure, not values. Aliases are skipped because the anchored node they
 * point to is expanded where it is written.
 */
export function expandDocument(doc: Document, env: EnvSource): EnvIssue[] {
  const issues: EnvIssue[] = [];
  const visit = (node: Node | null | undefined, path: ConfigPath): void => {
    if (isScalar(node)) {
      if (typeof node.value !== 'string') return;
      const expanded = expandString(node.value, env);
      node.value = expanded.value;
      for (const problem of expanded.problems) {
        issues.push({ path, message: describeProblem(problem) });
      }
    } else if (isMap(node)) {
      for (const pair of node.items) {
        if (isScalar(pair.key)) visit(pair.value as Node | null, [...path, String(pair.key.value)]);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, index) => visit(item as Node | null, [...path, index]));
    }
  };
  visit(doc.contents, []);
  return issues;
}
