/**
 * Reading the deployment files for the static checks of test/integration/deploy:
 * paths, YAML and JSON parsing with the file named in every error, and the
 * small rules several checks share (image pins, `${VAR}` references).
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

/** The repository root. */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export function repoPath(...parts: string[]): string {
  return join(ROOT, ...parts);
}

export function readText(path: string): string {
  return readFileSync(path, 'utf8');
}

/** Every file under `dir`, recursively, as absolute paths in a stable order. */
export function listFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? listFiles(path) : [path];
    });
}

/** A plain YAML/JSON mapping. */
export type Json = Record<string, unknown>;

/**
 * The documents of a YAML file as plain data, aliases resolved. Throws with
 * the file and every parser error or warning: a file that parses only with
 * warnings is not what the tools reading it would see.
 */
export function parseYamlFile(path: string): unknown[] {
  const docs = parseAllDocuments(readText(path), { prettyErrors: true });
  if (!Array.isArray(docs)) throw new Error(`${relative(ROOT, path)}: not a YAML stream`);
  const problems = docs.flatMap((doc) => [...doc.errors, ...doc.warnings]);
  if (problems.length > 0) {
    throw new Error(`${relative(ROOT, path)}:\n${problems.map((p) => p.message).join('\n')}`);
  }
  return docs.map((doc) => doc.toJS({ maxAliasCount: 100 }) as unknown);
}

/** A YAML file holding exactly one mapping. */
export function readYamlMap(path: string): Json {
  const docs = parseYamlFile(path);
  const [doc] = docs;
  if (docs.length !== 1 || !isMap(doc)) {
    throw new Error(`${relative(ROOT, path)}: expected one YAML mapping`);
  }
  return doc;
}

export function readJsonMap(path: string): Json {
  const parsed: unknown = JSON.parse(readText(path));
  if (!isMap(parsed)) throw new Error(`${relative(ROOT, path)}: expected a JSON object`);
  return parsed;
}

export function isMap(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `value` as a mapping, or an error naming `where`. */
export function asMap(value: unknown, where: string): Json {
  if (!isMap(value)) throw new Error(`${where}: expected a mapping`);
  return value;
}

export function asList(value: unknown, where: string): unknown[] {
  if (!Array.isArray(value)) throw new Error(`${where}: expected a list`);
  return value;
}

export function asString(value: unknown, where: string): string {
  if (typeof value !== 'string') throw new Error(`${where}: expected a string`);
  return value;
}

/**
 * Whether an image reference names one exact release: a digest, or a tag
 * with at least major.minor.patch (`8.4.6`, `v3.5.0`, `20.20.2-bookworm-slim`).
 * `latest`, a missing tag and a bare `8` or `8.4` would move under the
 * deployment without anyone changing a file.
 */
export function isPinnedImage(image: string): boolean {
  if (/@sha256:[0-9a-f]{64}$/.test(image)) return true;
  const lastSlash = image.lastIndexOf('/');
  const colon = image.indexOf(':', lastSlash + 1);
  if (colon === -1) return false;
  return /^v?\d+\.\d+\.\d+([-.+][A-Za-z0-9.-]+)?$/.test(image.slice(colon + 1));
}

/** The tag of an image reference, or undefined without one. */
export function imageTag(image: string): string | undefined {
  const lastSlash = image.lastIndexOf('/');
  const colon = image.indexOf(':', lastSlash + 1);
  return colon === -1 ? undefined : image.slice(colon + 1);
}

/**
 * Names of the variables a pipeline file references with `${NAME}` (which
 * must be set) and `${NAME:-default}` (which may be left unset). `$${` is a
 * literal and references nothing.
 */
export function pipelineVariables(text: string): { required: string[]; optional: string[] } {
  const required = new Set<string>();
  const optional = new Set<string>();
  for (const match of text.replaceAll('$${', '').matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)(:-)?/g)) {
    const name = match[1];
    if (name === undefined) continue;
    (match[2] === undefined ? required : optional).add(name);
  }
  return { required: [...required].sort(), optional: [...optional].sort() };
}

/**
 * Docker Compose's interpolation of `${VAR:-default}` / `${VAR-default}` /
 * `${VAR}` / `$$`, with no variable set: what `docker compose up` gives a
 * service on a machine without an .env file. Unset variables without a
 * default are an error here, because compose would pass an empty string.
 */
export function composeDefaults(text: string, where: string): string {
  return text.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}/g,
    (whole, name: string | undefined, fallback: string | undefined) => {
      if (whole === '$$') return '$';
      if (fallback === undefined) {
        throw new Error(
          `${where}: \${${name ?? ''}} has no default; the stack would not start as documented`,
        );
      }
      return fallback;
    },
  );
}
