/**
 * The cross-field rules of the `governance:` section: what its zones and
 * policies say about the rest of the file (regions, pipelines) and about each
 * other. Like every cross-field rule (validate.ts), each reads only the parts
 * of the raw document that are valid on their own, so one broken field never
 * hides another problem. Checks that need the tables themselves (key columns,
 * column types and widths) are in src/governance/table-check.ts.
 */
import type { ResidencyValue } from '../governance/policy.js';
import { residencyValueOf } from '../governance/residency.js';
import { formatKeyPath, type ConfigPath } from './key-path.js';
import { isRecord, listNames, validPart, valueAt } from './raw.js';
import {
  RESERVED_ZONE_NAMES,
  governedTableSchema,
  policyNameSchema,
  regionNameSchema,
  tablePatternSchema,
  zoneNameSchema,
} from './schema.js';

/** One problem, located like validate.ts's ConfigIssue (structurally the same type). */
interface GovernanceIssue {
  readonly path: ConfigPath;
  readonly message: string;
  readonly target?: 'key' | 'value';
}

const GOVERNANCE: ConfigPath = ['governance'];

/** The pipelines' valid table patterns, with whether the pipeline has an extra output. */
function pipelineTables(raw: unknown): { pattern: string; at: ConfigPath; output: boolean }[] {
  const pipelines = valueAt(raw, ['pipelines']);
  if (!Array.isArray(pipelines)) return [];
  return pipelines.flatMap((pipeline: unknown, index) => {
    const tables = valueAt(pipeline, ['tables']);
    const output = valueAt(pipeline, ['output']) !== undefined;
    if (!Array.isArray(tables)) return [];
    return tables.flatMap((table: unknown, i) => {
      const pattern = validPart(tablePatternSchema, table);
      return pattern === undefined
        ? []
        : [{ pattern, at: ['pipelines', index, 'tables', i] as ConfigPath, output }];
    });
  });
}

function covers(pattern: string, table: string): boolean {
  const [patternSchema, patternTable] = pattern.split('.');
  const [schema, name] = table.split('.');
  return patternSchema === schema && (patternTable === '*' || patternTable === name);
}

/**
 * A raw rule value's canonical text (src/governance/residency.ts: 1 and "1"
 * are the same value), or undefined when the value is invalid (reported
 * by the schema).
 */
function residencyKey(value: unknown): ResidencyValue | undefined {
  if (value === null || typeof value === 'string') return residencyValueOf(value);
  if (typeof value === 'number' && Number.isInteger(value)) return residencyValueOf(value);
  return undefined;
}

/**
 * Every cross-field problem of the `governance:` section.
 *
 * @param regionNames the valid region names, or undefined when `regions` is
 *   unusable (region checks are then skipped rather than reported wrongly).
 */
export function governanceIssues(
  raw: unknown,
  regionNames: readonly string[] | undefined,
): GovernanceIssue[] {
  const governance = valueAt(raw, GOVERNANCE);
  if (!isRecord(governance)) return [];
  const issues: GovernanceIssue[] = [];
  const known = regionNames === undefined ? undefined : new Set(regionNames);

  const rawZones = valueAt(governance, ['zones']);
  const zones = new Map<string, string[]>();
  if (isRecord(rawZones)) {
    for (const [zone, members] of Object.entries(rawZones)) {
      if (validPart(zoneNameSchema, zone) === undefined || !Array.isArray(members)) continue;
      const regions: string[] = [];
      members.forEach((member: unknown, i) => {
        const region = validPart(regionNameSchema, member);
        if (region === undefined) return;
        const at: ConfigPath = [...GOVERNANCE, 'zones', zone, i];
        if (known !== undefined && !known.has(region)) {
          issues.push({
            path: at,
            message: `unknown region ${JSON.stringify(region)} (regions: ${listNames(regionNames ?? [])})`,
          });
        } else if (regions.includes(region)) {
          issues.push({ path: at, message: `region ${JSON.stringify(region)} is listed twice` });
        }
        regions.push(region);
      });
      zones.set(zone, regions);
    }
  }

  const rawPolicies = valueAt(governance, ['policies']);
  if (!Array.isArray(rawPolicies)) return issues;
  const pipelines = pipelineTables(raw);
  const policyByName = new Map<string, number>();
  const governedAt = new Map<string, { policy: string; at: ConfigPath }>();

  rawPolicies.forEach((policy: unknown, index) => {
    const base: ConfigPath = [...GOVERNANCE, 'policies', index];
    const name = validPart(policyNameSchema, valueAt(policy, ['name']));
    if (name !== undefined) {
      const first = policyByName.get(name);
      if (first === undefined) policyByName.set(name, index);
      else {
        issues.push({
          path: [...base, 'name'],
          message: `duplicate policy name ${JSON.stringify(name)} (also governance.policies[${first}])`,
        });
      }
    }
    issues.push(...tableIssues(policy, base, name, pipelines, governedAt));
    issues.push(...residencyIssues(policy, base, zones, regionNames));
  });
  return issues;
}

function tableIssues(
  policy: unknown,
  base: ConfigPath,
  name: string | undefined,
  pipelines: readonly { pattern: string; at: ConfigPath; output: boolean }[],
  governedAt: Map<string, { policy: string; at: ConfigPath }>,
): GovernanceIssue[] {
  const tables = valueAt(policy, ['tables']);
  if (!Array.isArray(tables)) return [];
  const issues: GovernanceIssue[] = [];
  tables.forEach((rawTable: unknown, i) => {
    const table = validPart(governedTableSchema, rawTable);
    if (table === undefined) return;
    const at: ConfigPath = [...base, 'tables', i];
    const other = governedAt.get(table);
    if (other !== undefined) {
      issues.push({
        path: at,
        message: `${JSON.stringify(table)} is already governed by policy ${JSON.stringify(other.policy)} at ${formatKeyPath(other.at)}; a table has one policy`,
      });
    } else {
      governedAt.set(table, { policy: name ?? `policies[${String(base[2])}]`, at });
    }
    const owner = pipelines.find((pipeline) => covers(pipeline.pattern, table));
    if (owner === undefined) {
      issues.push({
        path: at,
        message: `${JSON.stringify(table)} is in no pipeline (pipeline tables: ${listNames(pipelines.map((p) => p.pattern))})`,
      });
    } else if (owner.output) {
      issues.push({
        path: at,
        message: `${JSON.stringify(table)} belongs to a pipeline with an output (${formatKeyPath(owner.at)}), which would publish its rows whole to topics outside the policy; governed tables cannot have one yet`,
      });
    }
  });
  return issues;
}

function residencyIssues(
  policy: unknown,
  base: ConfigPath,
  zones: ReadonlyMap<string, readonly string[]>,
  regionNames: readonly string[] | undefined,
): GovernanceIssue[] {
  const issues: GovernanceIssue[] = [];
  const residencyPath: ConfigPath = [...base, 'residency'];
  const zoneList = listNames([...zones.keys()]);
  const unknownZone = (zone: string): string =>
    `unknown zone ${JSON.stringify(zone)} (zones: ${zoneList})`;

  const fallback = valueAt(policy, ['residency', 'default']);
  if (
    typeof fallback === 'string' &&
    fallback !== '' &&
    !RESERVED_ZONE_NAMES.includes(fallback) &&
    !zones.has(fallback)
  ) {
    issues.push({
      path: [...residencyPath, 'default'],
      message: `${unknownZone(fallback)}; default is "all", "none" or a zone`,
    });
  }

  const column = valueAt(policy, ['residency', 'column']);
  const masking = valueAt(policy, ['masking']);
  const masksSomething = isRecord(masking) && Object.keys(masking).length > 0;
  if (typeof column === 'string' && isRecord(masking) && Object.hasOwn(masking, column)) {
    issues.push({
      path: [...base, 'masking', column],
      target: 'key',
      message: `${JSON.stringify(column)} is the residency column and cannot be masked: every region reads it to decide where the row may live`,
    });
  }

  const rules = valueAt(policy, ['residency', 'rules']);
  if (!Array.isArray(rules)) return issues;
  const seenValues = new Map<ResidencyValue, ConfigPath>();
  rules.forEach((rule: unknown, r) => {
    const rulePath: ConfigPath = [...residencyPath, 'rules', r];
    const zone = validPart(zoneNameSchema, valueAt(rule, ['zone']));
    const zoneRegions = zone === undefined ? undefined : zones.get(zone);
    if (zone !== undefined && zoneRegions === undefined) {
      issues.push({ path: [...rulePath, 'zone'], message: unknownZone(zone) });
    }

    const values = valueAt(rule, ['in']);
    if (Array.isArray(values)) {
      values.forEach((value: unknown, v) => {
        const key = residencyKey(value);
        if (key === undefined) return;
        const first = seenValues.get(key);
        const at: ConfigPath = [...rulePath, 'in', v];
        if (first !== undefined) {
          issues.push({
            path: at,
            message: `${key === null ? 'null' : JSON.stringify(key)} is already listed at ${formatKeyPath(first)}; a value belongs to one rule`,
          });
        } else seenValues.set(key, at);
      });
    }

    const masked = valueAt(rule, ['masked']);
    const maskedPath: ConfigPath = [...rulePath, 'masked'];
    if (Array.isArray(masked)) {
      masked.forEach((member: unknown, m) => {
        const region = validPart(regionNameSchema, member);
        if (region === undefined) return;
        if (regionNames !== undefined && !regionNames.includes(region)) {
          issues.push({
            path: [...maskedPath, m],
            message: `unknown region ${JSON.stringify(region)} (regions: ${listNames(regionNames)})`,
          });
        } else if (zoneRegions?.includes(region) === true) {
          issues.push({
            path: [...maskedPath, m],
            message: `region ${JSON.stringify(region)} is in zone ${JSON.stringify(zone)}, which holds these rows plainly`,
          });
        }
      });
    }
    const sendsMasked = masked === 'all' || (Array.isArray(masked) && masked.length > 0);
    if (sendsMasked && !masksSomething && isRecord(policy)) {
      issues.push({
        path: maskedPath,
        message:
          'these rows go masked to other regions, but the policy masks no column: they would arrive whole (add masking, or drop masked)',
      });
    }
  });
  return issues;
}
