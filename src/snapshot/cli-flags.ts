import { ConfigError } from '../core/errors.js';

/**
 * Parsing of the numeric and list flags shared by `snapshot`, `verify` and
 * `bootstrap`. Bad values are ConfigErrors (exit code 2) naming the flag.
 */

export function positiveInt(flag: string, text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value <= 0) {
    throw new ConfigError([`${flag}: must be a positive integer, got ${JSON.stringify(text)}`]);
  }
  return value;
}

export function nonNegativeNumber(flag: string, text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < 0) {
    throw new ConfigError([`${flag}: must be a number of at least 0, got ${JSON.stringify(text)}`]);
  }
  return value;
}

export function port(flag: string, text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || value > 65_535) {
    throw new ConfigError([`${flag}: must be a TCP port (0-65535), got ${JSON.stringify(text)}`]);
  }
  return value;
}

/** `a,b , c` → `['a', 'b', 'c']`; undefined or empty → `[]`. */
export function list(text: string | undefined): string[] {
  if (text === undefined) return [];
  return text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.length > 0);
}
