import type { ChangeEvent } from '../bus/envelope.js';
import { decodeAuditRecord } from '../governance/audit.js';
import { issueMasks, peoplePolicy } from '../governance/people-policy.fixture.js';
import { routeChange } from '../governance/routing.js';
import { CaptureAuditTrail, type DecisionCounter } from './audit-trail.js';
import type { PublishItem } from './publisher.js';

const REGIONS = ['eu-west', 'eu-central', 'us-east'];
const ZONES = { eu: ['eu-west', 'eu-central'] };
const POLICY = peoplePolicy(issueMasks('test-key-0123456789abcdef'));

const EVENT: ChangeEvent = {
  v: 1,
  op: 'c',
  region: 'eu-west',
  db: 'app',
  table: 'people',
  pk: { id: 1 },
  before: null,
  after: {
    id: 1,
    country: 'DE',
    email: 'a.person@example.de',
    phone: null,
    note: 'x',
    name: 'Ann',
  },
  hlc: 1_796_622_650_188_526,
  origin: 'eu-west',
  vv: { 'eu-west': 1_796_622_650_188_526 },
  gtid: '0-1-9',
  commitTs: 1_796_622_650_000,
  types: {
    id: 'int(11)',
    country: 'char(2)',
    email: 'varchar(255)',
    phone: 'varchar(32)',
    note: 'text',
    name: 'varchar(100)',
  },
};

function setup() {
  const items: PublishItem[] = [];
  const counted: Parameters<DecisionCounter['inc']>[0][] = [];
  const trail = new CaptureAuditTrail({
    topicPrefix: 'cdc',
    region: 'eu-west',
    zones: ZONES,
    regions: REGIONS,
    decisions: { inc: (labels) => counted.push(labels) },
    now: () => new Date('2026-12-07T08:30:00Z'),
  });
  return { items, counted, trail, publisher: { enqueue: (item: PublishItem) => items.push(item) } };
}

describe('CaptureAuditTrail', () => {
  it('enqueues one audit item per record on the origin audit topic, keyed by row, and counts each decision', () => {
    const { items, counted, trail, publisher } = setup();
    const { copies } = routeChange(
      { topicPrefix: 'cdc', zones: ZONES, regions: REGIONS },
      POLICY,
      { sourceRegion: 'eu-west', db: 'app', table: 'people' },
      EVENT,
      EVENT.types,
    );
    trail.routed(publisher, POLICY, EVENT, { copies });
    expect(items).toHaveLength(2);
    for (const item of items) {
      expect(item).toMatchObject({
        kind: 'audit',
        topic: 'cdc._audit.eu-west',
        commitTs: EVENT.commitTs,
      });
      if (item.kind !== 'audit') throw new Error('not an audit record');
      expect(item.key).toMatch(/^app\.people#hmac:[0-9a-f]{64}$/);
      const text = item.record.toString();
      expect(text).not.toContain('a.person@example.de');
      expect(text).not.toContain('Ann');
      expect(decodeAuditRecord(text)).toMatchObject({ time: '2026-12-07T08:30:00.000Z' });
    }
    expect(
      items.map((i) => (i.kind === 'audit' ? decodeAuditRecord(i.record.toString()) : undefined)),
    ).toEqual([
      expect.objectContaining({ target: 'eu-central', decision: 'sent' }),
      expect.objectContaining({ target: 'us-east', decision: 'sent_masked' }),
    ]);
    expect(counted).toEqual([
      {
        source_region: 'eu-west',
        target_region: 'eu-central',
        table: 'app.people',
        policy: 'people-eu',
        decision: 'sent',
      },
      {
        source_region: 'eu-west',
        target_region: 'us-east',
        table: 'app.people',
        policy: 'people-eu',
        decision: 'sent_masked',
      },
    ]);
  });

  it('records a refused change once, target *', () => {
    const { items, counted, trail, publisher } = setup();
    trail.refused(publisher, POLICY, EVENT);
    expect(items).toHaveLength(1);
    expect(counted).toEqual([expect.objectContaining({ target_region: '*', decision: 'refused' })]);
  });
});
