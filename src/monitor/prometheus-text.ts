/**
 * Reads the Prometheus text exposition format (version 0.0.4), as served by
 * `/metrics`, into samples. `status` and the lag diagnosis read other
 * daemons' endpoints with it. It covers what prom-client writes: HELP and
 * TYPE comments, labels with `\\`, `\"` and `\n` escapes, and the special
 * values NaN, +Inf and -Inf in any case. (The npm parsers for this format are
 * unmaintained; this is the small subset a scrape of our own daemons needs.)
 */

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Exposition {
  readonly samples: readonly Sample[];
  /** Metric family names declared by `# TYPE` lines, with their type. */
  readonly types: ReadonlyMap<string, string>;
}

const SAMPLE_START = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/;

export function parseExposition(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '') return;
    if (line.startsWith('#')) {
      const type = /^#\s*TYPE\s+(\S+)\s+(\S+)/.exec(line);
      if (type !== null) types.set(type[1] as string, type[2] as string);
      return;
    }
    const name = SAMPLE_START.exec(line)?.[1];
    if (name === undefined)
      throw new Error(`line ${index + 1}: not a metric sample: ${line.slice(0, 80)}`);
    let rest = line.slice(name.length);
    const labels: Record<string, string> = {};
    if (rest.startsWith('{')) {
      const end = readLabels(rest, labels, index + 1);
      rest = rest.slice(end);
    }
    const valueText = rest.trim().split(/\s+/)[0] ?? '';
    const value = parseValue(valueText);
    if (value === undefined)
      throw new Error(
        `line ${index + 1}: ${name} has no numeric value (${JSON.stringify(valueText)})`,
      );
    samples.push({ name, labels, value });
  });
  return { samples, types };
}

/** Parses `{a="x",b="y"}` at the start of `text` into `labels`; returns the index after `}`. */
function readLabels(text: string, labels: Record<string, string>, lineNumber: number): number {
  let i = 1;
  for (;;) {
    while (text[i] === ' ' || text[i] === ',') i += 1;
    if (text[i] === '}') return i + 1;
    const key = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(text.slice(i))?.[0];
    if (key === undefined || text[i + key.length] !== '=' || text[i + key.length + 1] !== '"')
      throw new Error(`line ${lineNumber}: malformed labels`);
    i += key.length + 2;
    let value = '';
    for (;;) {
      const char = text[i];
      if (char === undefined) throw new Error(`line ${lineNumber}: unterminated label value`);
      i += 1;
      if (char === '"') break;
      if (char === '\\') {
        const escaped = text[i];
        i += 1;
        value += escaped === 'n' ? '\n' : (escaped ?? '');
      } else {
        value += char;
      }
    }
    labels[key] = value;
  }
}

function parseValue(text: string): number | undefined {
  // prom-client writes "Nan" for an unmeasured event-loop lag; the format allows any case.
  const lower = text.toLowerCase();
  if (lower === 'nan') return Number.NaN;
  if (lower === '+inf' || lower === 'inf') return Number.POSITIVE_INFINITY;
  if (lower === '-inf') return Number.NEGATIVE_INFINITY;
  if (text === '' || !/^[-+0-9.eE]+$/.test(text)) return undefined;
  const value = Number(text);
  return Number.isNaN(value) ? undefined : value;
}

/** Sum of the samples of `name` whose labels include every pair of `match`. */
export function sumOf(
  samples: readonly Sample[],
  name: string,
  match: Readonly<Record<string, string>> = {},
): number {
  let total = 0;
  for (const sample of samples) {
    if (sample.name !== name) continue;
    if (Object.entries(match).every(([k, v]) => sample.labels[k] === v)) total += sample.value;
  }
  return total;
}

/** The first sample of `name` matching `match`, if any. */
export function valueOf(
  samples: readonly Sample[],
  name: string,
  match: Readonly<Record<string, string>> = {},
): number | undefined {
  return samples.find(
    (s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v),
  )?.value;
}

/**
 * Fetches and parses one `/metrics` endpoint.
 *
 * @throws Error naming the url when it does not answer in time or not with 200.
 */
export async function scrape(baseUrl: string, timeoutMs = 3000): Promise<Exposition> {
  const url = `${baseUrl}/metrics`;
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    throw new Error(`${url} does not answer (${cause})`, { cause: err });
  }
  if (!response.ok) throw new Error(`${url} answered HTTP ${response.status}`);
  return parseExposition(await response.text());
}
