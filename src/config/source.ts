/**
 * The YAML side of configuration loading: parsing with positions, and mapping
 * a key path back to the line and column it came from, so every problem can
 * be reported where the user has to fix it.
 */
import {
  LineCounter,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  parseDocument,
  type Document,
  type Node,
  type Pair,
  type YAMLError,
} from 'yaml';

import { formatKeyPath, type ConfigPath } from './key-path.js';

/** 1-based line and column, as editors show them. */
export interface SourcePosition {
  readonly line: number;
  readonly col: number;
}

/** A parsed YAML document together with what is needed to turn offsets into positions. */
export interface ConfigSource {
  readonly doc: Document.Parsed;
  readonly lineCounter: LineCounter;
}

/** Result of {@link parseYamlSource}: the document, plus every syntax problem already formatted. */
export interface ParsedSource {
  readonly source: ConfigSource;
  readonly problems: readonly string[];
}

/**
 * Formats one problem as `keyPath (line L:C): message`, the format every
 * configuration error uses.
 */
export function formatProblem(path: ConfigPath, position: SourcePosition, message: string): string {
  return `${formatKeyPath(path)} (line ${position.line}:${position.col}): ${message}`;
}

/**
 * Parses YAML text into a document with source ranges. Syntax errors and
 * warnings are both returned as problems: a daemon should not start from a
 * file whose meaning the parser had to guess.
 */
export function parseYamlSource(text: string): ParsedSource {
  const lineCounter = new LineCounter();
  // prettyErrors would append the offending source line to each message; that
  // line could hold a literal secret, and the position is reported anyway.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const source: ConfigSource = { doc, lineCounter };
  const problems = [...doc.errors, ...doc.warnings].map((error) => formatYamlError(source, error));
  return { source, problems };
}

function formatYamlError(source: ConfigSource, error: YAMLError): string {
  const position = positionOf(source, error.pos[0]);
  return `YAML syntax (line ${position.line}:${position.col}): ${yamlErrorMessage(error)}`;
}

/**
 * The parser's message without any quoted source text: lexer errors end in
 * `: "<source>"`, which could be a literal secret. The line and column say
 * where the problem is.
 */
function yamlErrorMessage(error: YAMLError): string {
  const quotedSource = error.message.indexOf(': "');
  const message = quotedSource === -1 ? error.message : error.message.slice(0, quotedSource);
  return `${message.charAt(0).toLowerCase()}${message.slice(1)}`;
}

/** Converts a character offset into a 1-based line and column. */
export function positionOf(source: ConfigSource, offset: number): SourcePosition {
  const { line, col } = source.lineCounter.linePos(offset);
  return { line: Math.max(line, 1), col: Math.max(col, 1) };
}

/**
 * Finds where `path` is written in the document. When the path does not fully
 * exist (a missing key), the position is that of the deepest mapping or list
 * that does exist, which is where the key has to be added. With `target:
 * 'key'`, the position is the key itself rather than its value (for unknown
 * or badly named keys).
 */
export function locate(
  source: ConfigSource,
  path: ConfigPath,
  target: 'key' | 'value' = 'value',
): SourcePosition {
  let node: Node | null | undefined = source.doc.contents;
  let offset = node?.range?.[0] ?? 0;
  for (const [index, segment] of path.entries()) {
    if (isAlias(node)) node = node.resolve(source.doc);
    let next: Node | null | undefined;
    if (isMap(node)) {
      const pair: Pair | undefined = node.items.find(
        (item) => isScalar(item.key) && String(item.key.value) === String(segment),
      );
      const wantsKey = target === 'key' && index === path.length - 1;
      // An empty value (`key:`) has no useful range of its own; point at the key.
      next =
        wantsKey || !isNodeWithRange(pair?.value) ? (pair?.key as Node | undefined) : pair?.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      next = node.items[segment] as Node | undefined;
    }
    if (!isNodeWithRange(next)) break;
    node = next;
    offset = next.range[0];
  }
  return positionOf(source, offset);
}

function isNodeWithRange(value: unknown): value is Node & { range: [number, number, number] } {
  return (
    (isScalar(value) || isMap(value) || isSeq(value) || isAlias(value)) &&
    Array.isArray(value.range) &&
    // A null scalar for an empty value is zero-width; it adds nothing to the position.
    !(isScalar(value) && value.value === null && value.range[0] === value.range[1])
  );
}
