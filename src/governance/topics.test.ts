import type { GovernancePolicy, Zones } from './policy.js';
import { residencyOf } from './residency.js';
import {
  audiencePrefix,
  governedTopicName,
  grantPrefixes,
  policyAudiences,
  readersOf,
  rowTopics,
  topicsReadableBy,
} from './topics.js';
import { peoplePolicy } from './people-policy.fixture.js';

const REGIONS = ['us-east', 'eu-west', 'eu-central'];
const ZONES: Zones = { eu: ['eu-west', 'eu-central'] };

const PEOPLE = peoplePolicy();

describe('governed topics', () => {
  it("keeps today's topic for unrestricted rows and puts the audience in the prefix", () => {
    expect(governedTopicName('cdc', { kind: 'all' }, 'us-east', 'app', 'people')).toBe(
      'cdc.us-east.app.people',
    );
    expect(governedTopicName('cdc', { kind: 'zone', zone: 'eu' }, 'eu-west', 'app', 'people')).toBe(
      'cdc-zone-eu.eu-west.app.people',
    );
    expect(
      governedTopicName('cdc', { kind: 'masked', region: 'us-east' }, 'eu-west', 'app', 'people'),
    ).toBe('cdc-masked-us-east.eu-west.app.people');
    // No grant on today's prefix reaches a restricted topic.
    for (const audience of policyAudiences(PEOPLE, REGIONS)) {
      if (audience.kind === 'all') continue;
      expect(audiencePrefix('cdc', audience).startsWith('cdc.')).toBe(false);
    }
  });

  it('routes each row to the topics of its audiences only', () => {
    const route = (country: string) =>
      rowTopics(residencyOf(PEOPLE, ZONES, REGIONS, { country })).map((t) => ({
        topic: governedTopicName('cdc', t.audience, 'eu-west', 'app', 'people'),
        form: t.form,
        readers: readersOf(t.audience, ZONES, REGIONS),
      }));
    expect(route('DE')).toEqual([
      {
        topic: 'cdc-zone-eu.eu-west.app.people',
        form: 'plain',
        readers: ['eu-west', 'eu-central'],
      },
      { topic: 'cdc-masked-us-east.eu-west.app.people', form: 'masked', readers: ['us-east'] },
    ]);
    expect(route('CH')).toEqual([
      {
        topic: 'cdc-zone-eu.eu-west.app.people',
        form: 'plain',
        readers: ['eu-west', 'eu-central'],
      },
    ]);
    expect(route('US')).toEqual([
      {
        topic: 'cdc.eu-west.app.people',
        form: 'plain',
        readers: ['us-east', 'eu-west', 'eu-central'],
      },
    ]);
    const nowhere: GovernancePolicy = {
      ...PEOPLE,
      residency: { ...PEOPLE.residency, default: { kind: 'none' } },
    };
    expect(rowTopics(residencyOf(nowhere, ZONES, REGIONS, { country: 'US' }))).toEqual([]);
  });

  it('lists what each region may read: change topics, its zones, its own masked topics', () => {
    const layout = {
      topicPrefix: 'cdc',
      regions: REGIONS,
      zones: ZONES,
      policies: [PEOPLE],
      tables: ['app.people', 'shop.*'],
    };
    expect(topicsReadableBy(layout, 'us-east').map((t) => t.topic)).toEqual([
      'cdc.eu-west.app.people',
      'cdc.eu-west.shop.*',
      'cdc-masked-us-east.eu-west.app.people',
      'cdc.eu-central.app.people',
      'cdc.eu-central.shop.*',
      'cdc-masked-us-east.eu-central.app.people',
    ]);
    expect(topicsReadableBy(layout, 'eu-west').map((t) => t.topic)).toEqual([
      'cdc.us-east.app.people',
      'cdc.us-east.shop.*',
      'cdc-zone-eu.us-east.app.people',
      'cdc.eu-central.app.people',
      'cdc.eu-central.shop.*',
      'cdc-zone-eu.eu-central.app.people',
    ]);
    expect(topicsReadableBy(layout, 'eu-west')[2]).toEqual({
      topic: 'cdc-zone-eu.us-east.app.people',
      sourceRegion: 'us-east',
      table: 'app.people',
      audience: { kind: 'zone', zone: 'eu' },
      policy: 'people-eu',
    });
  });

  it('gives each region the prefixes to grant: change topics of the others, its zones, its masked topics', () => {
    const layout = {
      topicPrefix: 'cdc',
      regions: REGIONS,
      zones: ZONES,
      policies: [PEOPLE],
      tables: ['app.people'],
    };
    expect(grantPrefixes(layout, 'us-east')).toEqual([
      'cdc.eu-west.',
      'cdc.eu-central.',
      'cdc-masked-us-east.',
    ]);
    expect(grantPrefixes(layout, 'eu-central')).toEqual([
      'cdc.us-east.',
      'cdc.eu-west.',
      'cdc-zone-eu.',
    ]);
    // Every listed topic falls under a granted prefix, or is the region's own.
    for (const region of REGIONS) {
      const prefixes = grantPrefixes(layout, region);
      for (const { topic } of topicsReadableBy(layout, region)) {
        expect(prefixes.some((prefix) => topic.startsWith(prefix))).toBe(true);
      }
    }
  });
});
