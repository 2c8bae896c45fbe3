/**
 * Redis URLs may carry a password (`redis://user:pass@host`, or ioredis's
 * `?password=` query option). Everything the state code prints about a Redis
 * server goes through these helpers so the password never reaches an error
 * message or a log line.
 */

const MASK = '***';

/** Query parameters ioredis turns into connection options that are credentials. */
const SECRET_QUERY_PARAMETERS: ReadonlySet<string> = new Set(['password', 'pass']);

/**
 * The URL with its password replaced by `***`, e.g. `redis://user:pass@host:6379`
 * becomes `redis://user:***@host:6379`. A string that does not parse as a URL
 * is not echoed at all (it might be nothing but a password).
 */
export function redactRedisUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return '<unparseable redis url>';
  }
  if (parsed.password !== '') parsed.password = MASK;
  for (const name of [...parsed.searchParams.keys()]) {
    if (SECRET_QUERY_PARAMETERS.has(name.toLowerCase())) parsed.searchParams.set(name, MASK);
  }
  return parsed.toString();
}

/**
 * Every form in which the URL's credentials could appear in text (raw and
 * percent-decoded), for scrubbing messages that come from the client
 * library or the server, which the redaction above does not control.
 */
export function redisUrlSecrets(url: string): string[] {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return url.length > 0 ? [url] : [];
  }
  const secrets = new Set<string>();
  const add = (value: string): void => {
    if (value.length === 0) return;
    secrets.add(value);
    secrets.add(safeDecode(value));
  };
  add(parsed.password);
  for (const [name, value] of parsed.searchParams) {
    if (SECRET_QUERY_PARAMETERS.has(name.toLowerCase())) add(value);
  }
  // Longest first, so a secret that contains another is masked whole.
  return [...secrets].sort((a, b) => b.length - a.length);
}

/** `text` with every occurrence of each secret replaced by `***`. */
export function scrubSecrets(text: string, secrets: readonly string[]): string {
  let result = text;
  for (const secret of secrets) result = result.replaceAll(secret, MASK);
  return result;
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    // Not valid percent-encoding: the raw form is the only one that can appear.
    return value;
  }
}
