import { readFileSync } from 'node:fs';

/**
 * The package version, read from package.json at run time so there is one
 * place to bump it. This file sits two levels below the package root both as
 * source (src/cli/) and as build output (dist/cli/).
 */
export function packageVersion(): string {
  const text = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
  const parsed: unknown = JSON.parse(text);
  const version =
    typeof parsed === 'object' && parsed !== null && 'version' in parsed
      ? parsed.version
      : undefined;
  return typeof version === 'string' ? version : '0.0.0';
}
