/**
 * Reading a raw (parsed, not yet validated) configuration document: the
 * helpers cross-field rules use to look at whatever parts of a possibly
 * broken file are valid on their own.
 */
import type { z } from 'zod';

import type { ConfigPath } from './key-path.js';

/** True for a mapping (not a list, not null). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The value at `path` in plain data, or `undefined` when any step is missing. */
export function valueAt(data: unknown, path: ConfigPath): unknown {
  let current = data;
  for (const segment of path) {
    if (Array.isArray(current) && typeof segment === 'number') current = current[segment];
    else if (isRecord(current)) current = current[String(segment)];
    else return undefined;
  }
  return current;
}

/** Parses one field with its own schema, so cross-field rules can use the valid parts of a broken file. */
export function validPart<T extends z.ZodType>(schema: T, value: unknown): z.output<T> | undefined {
  const result = schema.safeParse(value);
  return result.success ? result.data : undefined;
}

/** `a, b, c`, or `(none)`. */
export function listNames(names: readonly string[]): string {
  return names.length === 0 ? '(none)' : names.join(', ');
}
