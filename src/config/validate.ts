/**
 * Validation of a parsed configuration document, in two passes so that every
 * problem is reported at once: the zod schema checks each field where it
 * stands, then {@link crossFieldIssues} checks the rules that relate fields to
 * each other (priority lists against regions, duplicate names, overlapping
 * tables). The second pass works on whatever parts of
 * the file are valid on their own, so a typo in one section never hides a
 * clash in another. Messages name types, never values of secret fields.
 */
import type { z } from 'zod';

import { governanceIssues } from './governance-rules.js';
import { formatKeyPath, type ConfigPath } from './key-path.js';
import { isRecord, listNames, validPart, valueAt } from './raw.js';
import {
  CONFIG_DEFAULTS,
  conflictSchema,
  configSchema,
  pipelineNameSchema,
  regionNameSchema,
  regionRedisSchema,
  tablePatternSchema,
  type ValidatedConfig,
} from './schema.js';

/**
 * One validation problem, located by its path in the document. `target: 'key'`
 * means the problem is the key itself (an unknown or badly named key), so its
 * position is the key's, not its value's.
 */
export interface ConfigIssue {
  readonly path: ConfigPath;
  readonly message: string;
  readonly target?: 'key' | 'value';
}

/** Result of {@link validateConfig}: the validated config, or every issue found. */
export type ConfigValidation =
  | { readonly success: true; readonly config: ValidatedConfig }
  | { readonly success: false; readonly issues: readonly ConfigIssue[] };

/**
 * Validates a parsed (and env-expanded) document: structure, values, defaults
 * and the cross-field rules, returning every problem rather than the first.
 */
export function validateConfig(raw: unknown): ConfigValidation {
  const parsed = configSchema.safeParse(raw);
  const issues: ConfigIssue[] = parsed.success
    ? []
    : parsed.error.issues.flatMap((issue) => fromZodIssue(issue, raw));
  issues.push(...crossFieldIssues(raw));
  if (parsed.success && issues.length === 0) return { success: true, config: parsed.data };
  return { success: false, issues };
}

function toPath(path: readonly PropertyKey[]): (string | number)[] {
  return path.map((segment) => (typeof segment === 'number' ? segment : String(segment)));
}

/** True when `path` names a key that its (existing) parent mapping lacks. */
function isMissingKey(data: unknown, path: ConfigPath): boolean {
  const key = path.at(-1);
  if (key === undefined || typeof key === 'number') return false;
  const parent = valueAt(data, path.slice(0, -1));
  return isRecord(parent) && !Object.hasOwn(parent, key);
}

/** Names the type of a value without ever showing the value (it may be a secret). */
function describeType(value: unknown): string {
  if (value === null) return 'null (empty value)';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `a ${typeof value}`;
}

function describeExpected(expected: string): string {
  switch (expected) {
    case 'object':
      return 'a mapping';
    case 'array':
      return 'a list';
    case 'int':
      return 'an integer';
    default:
      return `a ${expected}`;
  }
}

/**
 * Turns one zod issue into located config issues with messages written for
 * someone editing YAML. Built-in zod messages are replaced where they are
 * unclear ("Invalid input") or would need the raw value.
 */
function fromZodIssue(issue: z.core.$ZodIssue, raw: unknown): ConfigIssue[] {
  const path = toPath(issue.path);
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => ({
        path: [...path, key],
        message: `unknown key ${JSON.stringify(key)}`,
        target: 'key' as const,
      }));
    case 'invalid_key':
      return [
        {
          path,
          message: `invalid key ${JSON.stringify(path.at(-1))}: ${issue.issues[0]?.message ?? issue.message}`,
          target: 'key',
        },
      ];
    case 'invalid_type':
    case 'invalid_value':
    case 'invalid_union':
      if (isMissingKey(raw, path)) {
        return [{ path, message: `missing required key ${JSON.stringify(path.at(-1))}` }];
      }
      if (issue.code === 'invalid_type' && issue.expected !== 'never') {
        // Written here rather than by zod so that it names types only, never the value.
        return [
          {
            path,
            message: `expected ${describeExpected(issue.expected)}, got ${describeType(valueAt(raw, path))}`,
          },
        ];
      }
      return [{ path, message: issue.message }];
    default:
      return [{ path, message: issue.message }];
  }
}

/**
 * The rules that relate fields to each other. Each rule reads only the parts
 * of the raw document that are valid on their own, so it can run (and report)
 * even when other parts of the file are broken.
 */
export function crossFieldIssues(raw: unknown): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const rawRegions = valueAt(raw, ['regions']);
  const regionNames = isRecord(rawRegions)
    ? Object.keys(rawRegions).filter((name) => validPart(regionNameSchema, name) !== undefined)
    : undefined;

  issues.push(...pipelineIssues(raw, regionNames));
  issues.push(...governanceIssues(raw, regionNames));
  if (isRecord(rawRegions)) {
    // zod's record skips a "__proto__" key instead of validating it; it is no valid region name either.
    if (Object.hasOwn(rawRegions, '__proto__')) {
      issues.push({
        path: ['regions', '__proto__'],
        message: 'invalid key "__proto__": not a usable region name',
        target: 'key',
      });
    }
    issues.push(...regionRedisIssues(raw, rawRegions));
  }
  return issues;
}

function pipelineIssues(raw: unknown, regionNames: readonly string[] | undefined): ConfigIssue[] {
  const rawPipelines = valueAt(raw, ['pipelines']);
  if (!Array.isArray(rawPipelines)) return [];
  const issues: ConfigIssue[] = [];
  const firstByName = new Map<string, number>();
  const tableOwners: { pattern: string; at: ConfigPath }[] = [];

  rawPipelines.forEach((rawPipeline: unknown, index) => {
    const name = validPart(pipelineNameSchema, valueAt(rawPipeline, ['name']));
    if (name !== undefined) {
      const first = firstByName.get(name);
      if (first === undefined) firstByName.set(name, index);
      else {
        issues.push({
          path: ['pipelines', index, 'name'],
          message: `duplicate pipeline name ${JSON.stringify(name)} (also pipelines[${first}])`,
        });
      }
    }

    const conflict = validPart(conflictSchema, valueAt(rawPipeline, ['conflict']) ?? {});
    if (conflict?.priority !== undefined && regionNames !== undefined) {
      const known = new Set(regionNames);
      conflict.priority.forEach((region, i) => {
        if (!known.has(region)) {
          issues.push({
            path: ['pipelines', index, 'conflict', 'priority', i],
            message: `unknown region ${JSON.stringify(region)} (regions: ${listNames(regionNames)})`,
          });
        }
      });
      const unranked = regionNames.filter((region) => !conflict.priority?.includes(region));
      if (unranked.length > 0) {
        issues.push({
          path: ['pipelines', index, 'conflict', 'priority'],
          message: `priority must rank every region; missing: ${listNames(unranked)}`,
        });
      }
    }

    // Debezium topics `<p>.<db>.<table>` must never fall among the replication topics
    // `<kafka.topicPrefix>.<region>.<db>.<table>` (nor the positions and dead letters there).
    const outputPrefix = valueAt(rawPipeline, ['output', 'topicPrefix']);
    const rawKafkaPrefix = valueAt(raw, ['kafka', 'topicPrefix']);
    const kafkaPrefix =
      typeof rawKafkaPrefix === 'string' ? rawKafkaPrefix : CONFIG_DEFAULTS.topicPrefix;
    if (
      typeof outputPrefix === 'string' &&
      (outputPrefix === kafkaPrefix || outputPrefix.startsWith(`${kafkaPrefix}.`))
    ) {
      issues.push({
        path: ['pipelines', index, 'output', 'topicPrefix'],
        message: `must differ from kafka.topicPrefix ${JSON.stringify(kafkaPrefix)} and not start with "${kafkaPrefix}.": its topics would mix with the replication topics`,
      });
    }

    const rawTables = valueAt(rawPipeline, ['tables']);
    if (!Array.isArray(rawTables)) return;
    rawTables.forEach((rawTable: unknown, i) => {
      const pattern = validPart(tablePatternSchema, rawTable);
      if (pattern === undefined) return;
      const at: ConfigPath = ['pipelines', index, 'tables', i];
      const owner = tableOwners.find((other) => patternsOverlap(other.pattern, pattern));
      if (owner !== undefined) {
        issues.push({
          path: at,
          message: `${JSON.stringify(pattern)} overlaps ${JSON.stringify(owner.pattern)} at ${formatKeyPath(owner.at)}; a table may belong to one pipeline only`,
        });
      }
      tableOwners.push({ pattern, at });
    });
  });
  return issues;
}

/** Two table patterns overlap when some table matches both. */
function patternsOverlap(a: string, b: string): boolean {
  const [schemaA, tableA] = a.split('.');
  const [schemaB, tableB] = b.split('.');
  return schemaA === schemaB && (tableA === '*' || tableB === '*' || tableA === tableB);
}

/** A region's redis override may omit the url only when the top-level block provides one. */
function regionRedisIssues(raw: unknown, rawRegions: Record<string, unknown>): ConfigIssue[] {
  if (valueAt(raw, ['redis']) !== undefined) return [];
  const issues: ConfigIssue[] = [];
  for (const [region, rawRegion] of Object.entries(rawRegions)) {
    const override = validPart(regionRedisSchema, valueAt(rawRegion, ['redis']));
    if (override !== undefined && override.url === undefined) {
      issues.push({
        path: ['regions', region, 'redis', 'url'],
        message:
          'missing required key "url" (there is no top-level redis block to inherit it from)',
      });
    }
  }
  return issues;
}
