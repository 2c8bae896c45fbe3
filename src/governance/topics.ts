/**
 * The topic layout of governed tables (docs/GOVERNANCE.md, "Topics"). Kafka
 * grants and mirrors per topic, so a row goes only to topics every reader
 * of which may hold it in that form:
 *
 * - unrestricted rows (and tables without a policy): today's change topic,
 *   `<prefix>.<source>.<db>.<table>`, read by every region;
 * - rows held plainly in one zone: `<prefix>-zone-<zone>.<source>.<db>.<table>`,
 *   read by the zone's regions only;
 * - masked copies for one region: `<prefix>-masked-<region>.<source>.<db>.<table>`,
 *   read by that region only.
 *
 * The audience is part of the topic's *prefix*, not a suffix: one Kafka
 * PREFIXED ACL or one MirrorMaker topic pattern then grants or mirrors an
 * audience exactly (`cdc-zone-eu.`), while no grant of today's prefix
 * (`cdc.`, `cdc.us-east.`) can reach a restricted topic, and the appliers'
 * discovery of `<prefix>.<source>.<db>.*` topics can never mistake a
 * restricted topic for a table of a `schema.*` pipeline.
 */
import type { Residency } from './residency.js';
import type { GovernancePolicy, Zones } from './policy.js';

/** Who may read a topic. */
export type TopicAudience =
  | { readonly kind: 'all' }
  | { readonly kind: 'zone'; readonly zone: string }
  | { readonly kind: 'masked'; readonly region: string };

/** The part of the topic name before `.<source>.<db>.<table>`; grant and mirror by `<it>.`. */
export function audiencePrefix(topicPrefix: string, audience: TopicAudience): string {
  switch (audience.kind) {
    case 'all':
      return topicPrefix;
    case 'zone':
      return `${topicPrefix}-zone-${audience.zone}`;
    case 'masked':
      return `${topicPrefix}-masked-${audience.region}`;
  }
}

/**
 * The change topic of `db.table` from `sourceRegion` for one audience. For
 * `all` this is exactly today's `topicName` (src/bus/envelope.ts).
 */
export function governedTopicName(
  topicPrefix: string,
  audience: TopicAudience,
  sourceRegion: string,
  db: string,
  table: string,
): string {
  return `${audiencePrefix(topicPrefix, audience)}.${sourceRegion}.${db}.${table}`;
}

/** The regions that may read a topic of `audience`, in configuration order. */
export function readersOf(
  audience: TopicAudience,
  zones: Zones,
  regions: readonly string[],
): readonly string[] {
  switch (audience.kind) {
    case 'all':
      return [...regions];
    case 'zone': {
      const members = new Set(Object.hasOwn(zones, audience.zone) ? zones[audience.zone] : []);
      return regions.filter((region) => members.has(region));
    }
    case 'masked':
      return regions.filter((region) => region === audience.region);
  }
}

/** Where one version of a row is published, and in which form. */
export interface RowTopic {
  readonly audience: TopicAudience;
  readonly form: 'plain' | 'masked';
}

/**
 * The audiences one row version is published to, given its residency
 * (residency.ts): the change topic when every region may hold it plainly;
 * else its zone's topic, plus one masked topic per region that may hold it
 * masked; nothing when no region may hold it.
 */
export function rowTopics(residency: Residency): readonly RowTopic[] {
  switch (residency.scope.kind) {
    case 'all':
      return [{ audience: { kind: 'all' }, form: 'plain' }];
    case 'none':
      return [];
    case 'zone':
      return [
        { audience: { kind: 'zone', zone: residency.scope.zone }, form: 'plain' },
        ...residency.masked.map((region): RowTopic => ({
          audience: { kind: 'masked', region },
          form: 'masked',
        })),
      ];
  }
}

/**
 * Every audience a policy's rows can be published to, whatever their values:
 * the change topic (for `default: all`, and for value-free notices, which
 * every region reads), each zone a rule or the default names, and each
 * region a rule masks to. Topics to create, mirror and grant.
 */
export function policyAudiences(
  policy: GovernancePolicy,
  regions: readonly string[],
): readonly TopicAudience[] {
  const zones = new Set<string>();
  const masked = new Set<string>();
  for (const rule of policy.residency.rules) {
    zones.add(rule.zone);
    const targets = rule.masked === 'all' ? regions : rule.masked;
    for (const region of targets) masked.add(region);
  }
  if (policy.residency.default.kind === 'zone') zones.add(policy.residency.default.zone);
  return [
    { kind: 'all' },
    ...[...zones].sort().map((zone): TopicAudience => ({ kind: 'zone', zone })),
    ...regions
      .filter((region) => masked.has(region))
      .map((region): TopicAudience => ({ kind: 'masked', region })),
  ];
}

/** The input of {@link topicsReadableBy}: the parts of the configuration topic names depend on. */
export interface TopicLayoutInput {
  readonly topicPrefix: string;
  /** Every configured region, in configuration order. */
  readonly regions: readonly string[];
  readonly zones: Zones;
  readonly policies: readonly GovernancePolicy[];
  /** Every pipeline's table patterns as written: `schema.table` or `schema.*`. */
  readonly tables: readonly string[];
}

/** One topic a region may read: what an operator mirrors to it and grants it. */
export interface ReadableTopic {
  /** The topic name; `<db>.*` stands for every table of a `schema.*` pattern. */
  readonly topic: string;
  readonly sourceRegion: string;
  /** `schema.table` or `schema.*`. */
  readonly table: string;
  readonly audience: TopicAudience;
  /** The policy governing the table, when there is one. */
  readonly policy?: string;
}

/**
 * The topics `region` may read: from every other region, each pipeline
 * table's change topic (restricted rows never go there), and for each
 * governed table its zone topics for the zones `region` belongs to and its
 * own masked topic when a rule masks to it. Anything not listed must not be
 * mirrored to or granted to `region`.
 *
 * A `schema.*` pattern is listed as `<prefix>.<source>.<db>.*`: governed
 * tables of that schema keep their restricted rows out of it, because
 * restricted topics live under another prefix.
 */
export function topicsReadableBy(layout: TopicLayoutInput, region: string): ReadableTopic[] {
  const result: ReadableTopic[] = [];
  for (const source of layout.regions) {
    if (source === region) continue;
    for (const pattern of layout.tables) {
      const [db = '', table = ''] = pattern.split('.');
      const policy = layout.policies.find((p) =>
        p.tables.some((t) => t.schema === db && t.table === table),
      );
      result.push({
        topic: governedTopicName(layout.topicPrefix, { kind: 'all' }, source, db, table),
        sourceRegion: source,
        table: pattern,
        audience: { kind: 'all' },
        ...(policy === undefined ? {} : { policy: policy.name }),
      });
    }
    for (const policy of layout.policies) {
      const audiences = policyAudiences(policy, layout.regions).filter(
        (audience) =>
          audience.kind !== 'all' &&
          readersOf(audience, layout.zones, layout.regions).includes(region),
      );
      for (const governed of policy.tables) {
        for (const audience of audiences) {
          result.push({
            topic: governedTopicName(
              layout.topicPrefix,
              audience,
              source,
              governed.schema,
              governed.table,
            ),
            sourceRegion: source,
            table: `${governed.schema}.${governed.table}`,
            audience,
            policy: policy.name,
          });
        }
      }
    }
  }
  return result;
}

/**
 * The topic prefixes `region` may be granted (Kafka PREFIXED ACLs, or a
 * MirrorMaker topic pattern per prefix): every other region's change topics
 * (`<prefix>.<source>.`), each zone of a policy it belongs to, and its own
 * masked topics when a policy masks to it. Each covers exactly topics
 * {@link topicsReadableBy} lists (plus the region's own, which it wrote).
 */
export function grantPrefixes(layout: TopicLayoutInput, region: string): string[] {
  const prefixes = layout.regions
    .filter((source) => source !== region)
    .map((source) => `${layout.topicPrefix}.${source}.`);
  const restricted = new Set<string>();
  for (const policy of layout.policies) {
    for (const audience of policyAudiences(policy, layout.regions)) {
      if (audience.kind === 'all') continue;
      if (!readersOf(audience, layout.zones, layout.regions).includes(region)) continue;
      restricted.add(`${audiencePrefix(layout.topicPrefix, audience)}.`);
    }
  }
  return [...prefixes, ...[...restricted].sort()];
}
