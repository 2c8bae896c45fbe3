import { createHmac } from 'node:crypto';

import { compileRegion } from '../config/compile.js';
import { parseConfig } from '../config/load.js';
import { decodeApplyMessage, type DecodedRow } from './apply-event.js';
import { buildRoutes, routeForTopic } from './apply-target.js';
import { recheckGovernance, withholdsValue } from './governance-check.js';

const KEY = 'mask-Key-0123456789-secret';

const YAML = `regions:
  us-east:
    mysql: { host: db, user: root, password: "" }
  eu-west:
    mysql: { host: db, user: root, password: "" }
  eu-central:
    mysql: { host: db, user: root, password: "" }
kafka: { brokers: ["k:9092"], topicPrefix: cdc }
pipelines:
  - { name: app, tables: [app.people, app.orders] }
governance:
  preview: true
  zones: { eu: [eu-west, eu-central] }
  policies:
    - name: people-eu
      tables: [app.people]
      residency:
        column: country
        rules:
          - { in: [DE, FR], zone: eu, masked: [us-east] }
          - { in: [CH], zone: eu }
        default: all
      masking:
        email: { hmac: { key: '\${CDC_MASK_KEY}' } }
        phone: nullify
`;

const config = parseConfig(YAML, { env: { CDC_MASK_KEY: KEY } });
const usEast = compileRegion(config, 'us-east');
const euCentral = compileRegion(config, 'eu-central');

function message(row: Record<string, string | number | null>, op = 'c'): Buffer {
  return Buffer.from(
    JSON.stringify({
      v: 2,
      region: 'eu-west',
      db: 'app',
      table: 'people',
      key: ['id'],
      columns: Object.keys(row),
      rows: [
        [
          op,
          1_700_000_000_000_000,
          'eu-west',
          { 'eu-west': 1_700_000_000_000_000 },
          null,
          0,
          Object.values(row),
        ],
      ],
    }),
  );
}

const DE = { id: 1, country: 'DE', email: 'anna@example.de', phone: '+49 30 1' };
const MASKED_DE = {
  id: 1,
  country: 'DE',
  email: createHmac('sha256', KEY).update('anna@example.de').digest('hex'),
  phone: null,
};

function recheck(
  options: typeof usEast,
  topic: string,
  value: Buffer,
): { route: ReturnType<typeof routeForTopic>; rows: DecodedRow[] } {
  const route = routeForTopic(options, topic);
  if (route === undefined) throw new Error(`no route for ${topic}`);
  return { route, rows: recheckGovernance(options, route, decodeApplyMessage(value, route)) };
}

const refusals = (rows: DecodedRow[]): string[] =>
  rows.flatMap((r) => ('error' in r ? [`${r.error.reason}: ${r.error.message}`] : []));

describe('routes of governed tables', () => {
  it('subscribes a region to exactly the topics it may read, with their form', () => {
    const routes = buildRoutes(usEast, new Map());
    const governed = [...routes]
      .filter(([, r]) => r.table === 'people')
      .map(([topic, r]) => [topic, r.form ?? 'plain'])
      .sort();
    expect(governed).toEqual([
      ['cdc-masked-us-east.eu-central.app.people', 'masked'],
      ['cdc-masked-us-east.eu-west.app.people', 'masked'],
      ['cdc.eu-central.app.people', 'plain'],
      ['cdc.eu-west.app.people', 'plain'],
    ]);
    expect([...buildRoutes(euCentral, new Map()).keys()]).toEqual(
      expect.arrayContaining([
        'cdc-zone-eu.us-east.app.people',
        'cdc-zone-eu.eu-west.app.people',
        'cdc.eu-west.app.people',
      ]),
    );
    expect([...buildRoutes(euCentral, new Map()).keys()].some((t) => t.includes('masked'))).toBe(
      false,
    );
    // Topics a region may not read have no route (the apply stage parks their events).
    expect(routeForTopic(usEast, 'cdc-zone-eu.eu-west.app.people')).toBeUndefined();
    expect(routeForTopic(usEast, 'cdc-masked-us-east.us-east.app.people')).toBeUndefined();
  });
});

describe('recheckGovernance: every row against the form of its topic', () => {
  it('lets through what the region may hold in that form', () => {
    expect(
      refusals(recheck(euCentral, 'cdc-zone-eu.eu-west.app.people', message(DE)).rows),
    ).toEqual([]);
    expect(
      refusals(recheck(usEast, 'cdc-masked-us-east.eu-west.app.people', message(MASKED_DE)).rows),
    ).toEqual([]);
    expect(
      refusals(recheck(usEast, 'cdc.eu-west.app.people', message({ ...DE, country: 'US' })).rows),
    ).toEqual([]);
    // Ungoverned tables are not looked at.
    const orders = routeForTopic(usEast, 'cdc.eu-west.app.orders');
    expect(orders?.form).toBeUndefined();
  });

  it('refuses a forged plain restricted row, with its own reason and no value', () => {
    const rows = refusals(recheck(usEast, 'cdc.eu-west.app.people', message(DE)).rows);
    expect(rows).toEqual([
      'governance_refused: policy people-eu: region us-east may hold this row only masked, but it came on a plain topic',
    ]);
    for (const value of Object.values(DE)) expect(rows[0]).not.toContain(String(value));
  });

  it('refuses deletes by the deleted row, and plaintext on a masked topic', () => {
    expect(
      refusals(
        recheck(usEast, 'cdc.eu-west.app.people', message({ ...DE, country: 'CH' }, 'd')).rows,
      ),
    ).toEqual([
      'governance_refused: policy people-eu: region us-east may not hold this row at all, but it came on a plain topic',
    ]);
    expect(
      refusals(recheck(usEast, 'cdc-masked-us-east.eu-west.app.people', message(DE)).rows),
    ).toEqual([
      'governance_refused: policy people-eu: column email on a masked topic for us-east does not hold a value its hmac mask produces',
    ]);
  });

  it('withholds the value of dead letters of governed rows that were not checked', () => {
    const people = { db: 'app', table: 'people' };
    const orders = { db: 'app', table: 'orders' };
    expect(withholdsValue(usEast, people, 'governance_refused')).toBe(true);
    expect(withholdsValue(usEast, people, 'malformed')).toBe(true);
    expect(withholdsValue(usEast, people, 'constraint_violation')).toBe(false);
    expect(withholdsValue(usEast, orders, 'malformed')).toBe(false);
    expect(withholdsValue(usEast, undefined, 'governance_refused')).toBe(true);
  });
});

describe('eviction notices', () => {
  const HASH = 'ab'.repeat(32);
  const notice = (fields: Record<string, unknown> = {}): Buffer =>
    Buffer.from(
      JSON.stringify({
        v: 1,
        notice: 'evict',
        region: 'eu-west',
        db: 'app',
        table: 'people',
        keyHash: HASH,
        regions: ['us-east'],
        hlc: 1_700_000_000_000_000,
        origin: 'eu-west',
        vv: { 'eu-west': 1_700_000_000_000_000 },
        gtid: '0-1-9',
        commitTs: 1_700_000_000_000,
        ...fields,
      }),
    );

  it('decode to a delete by key hash, for the regions they name only', () => {
    const { rows } = recheck(usEast, 'cdc.eu-west.app.people', notice());
    expect(refusals(rows)).toEqual([]);
    const events = rows.flatMap((r) => ('events' in r ? r.events : []));
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      op: 'delete',
      pk: {},
      after: null,
      evict: { keyHash: HASH, regions: ['us-east'] },
      version: { origin: 'eu-west', hlc: 1_700_000_000_000_000 },
    });
    // eu-central is not named: the notice is read and ignored there.
    const central = recheck(euCentral, 'cdc.eu-west.app.people', notice()).rows;
    expect(refusals(central)).toEqual([]);
    expect(central.flatMap((r) => ('events' in r ? r.events : []))).toEqual([]);
  });

  it('are refused when malformed, and on a table no policy governs', () => {
    const malformed = (fields: Record<string, unknown>): string => {
      const route = routeForTopic(usEast, 'cdc.eu-west.app.people');
      if (route === undefined) throw new Error('no route');
      try {
        decodeApplyMessage(notice(fields), route);
      } catch (err) {
        return (err as Error).message;
      }
      return 'accepted';
    };
    expect(malformed({ keyHash: 'AB'.repeat(32) })).toBe(
      'notice keyHash is not 64 lowercase hex digits',
    );
    expect(malformed({ regions: [] })).toBe(
      'notice regions is not a non-empty list of region names',
    );
    expect(malformed({ notice: 'forget' })).toBe('unknown notice forget');
    expect(malformed({ hlc: -1 })).toMatch(/hlc/);
    const orders = recheck(usEast, 'cdc.eu-west.app.orders', notice({ table: 'orders' })).rows;
    expect(refusals(orders)).toEqual([
      'governance_refused: an eviction notice or edit request for app.orders, which no policy governs here',
    ]);
  });
});

describe('erasure notices', () => {
  const erase = (table: string): Buffer =>
    Buffer.from(
      JSON.stringify({
        v: 1,
        notice: 'erase',
        region: 'eu-west',
        db: 'app',
        table,
        keyHash: 'cd'.repeat(32),
        regions: ['us-east', 'eu-central'],
        hlc: 1_700_000_000_000_000,
        origin: 'eu-west',
        vv: { 'eu-west': 1_700_000_000_000_000 },
        gtid: null,
        commitTs: 1_700_000_000_000,
      }),
    );

  it('apply to governed and ungoverned tables alike, as erasures', () => {
    for (const table of ['people', 'orders']) {
      const { rows } = recheck(usEast, `cdc.eu-west.app.${table}`, erase(table));
      expect(refusals(rows)).toEqual([]);
      const events = rows.flatMap((r) => ('events' in r ? r.events : []));
      expect(events.map((e) => e.evict)).toEqual([
        { keyHash: 'cd'.repeat(32), regions: ['us-east', 'eu-central'], erase: true },
      ]);
    }
  });
});

describe('edit requests of a masked region', () => {
  const euWest = compileRegion(config, 'eu-west');
  const request = (fields: Record<string, unknown> = {}): Buffer =>
    Buffer.from(
      JSON.stringify({
        v: 1,
        notice: 'edit',
        region: 'us-east',
        db: 'app',
        table: 'people',
        pk: { id: 7 },
        set: { note: 'edited in us-east' },
        executor: 'eu-west',
        hlc: 1_700_000_000_000_000,
        origin: 'us-east',
        vv: { 'us-east': 1_700_000_000_000_000 },
        gtid: null,
        commitTs: 1_700_000_000_000,
        ...fields,
      }),
    );
  const ZONE_TOPIC = 'cdc-zone-eu.us-east.app.people';
  const events = (rows: DecodedRow[]) => rows.flatMap((r) => ('events' in r ? r.events : []));

  it('reach only their executor, as the key and the changed columns', () => {
    const { rows } = recheck(euWest, ZONE_TOPIC, request());
    expect(refusals(rows)).toEqual([]);
    expect(events(rows)).toEqual([
      expect.objectContaining({
        op: 'upsert',
        pk: { id: 7 },
        after: { id: 7, note: 'edited in us-east' },
        edit: { executor: 'eu-west' },
        version: {
          origin: 'us-east',
          hlc: 1_700_000_000_000_000,
          vv: { 'us-east': 1_700_000_000_000_000 },
        },
      }),
    ]);
    // The other zone region reads the request and leaves it to the executor.
    const central = recheck(euCentral, ZONE_TOPIC, request()).rows;
    expect(refusals(central)).toEqual([]);
    expect(events(central)).toEqual([]);
  });

  it('are refused when they set a masked or the residency column, or come on a masked topic', () => {
    expect(refusals(recheck(euWest, ZONE_TOPIC, request({ set: { email: 'x' } })).rows)).toEqual([
      'governance_refused: policy people-eu: an edit request sets masked column(s) email',
    ]);
    expect(refusals(recheck(euWest, ZONE_TOPIC, request({ set: { country: 'US' } })).rows)).toEqual(
      ['governance_refused: policy people-eu: an edit request sets the residency column country'],
    );
    expect(
      refusals(
        recheck(usEast, 'cdc-masked-us-east.eu-west.app.people', request({ region: 'eu-west' }))
          .rows,
      ),
    ).toEqual([
      'governance_refused: policy people-eu: an edit request came on a masked topic (they go on zone topics only)',
    ]);
    expect(
      refusals(recheck(euWest, 'cdc.us-east.app.orders', request({ table: 'orders' })).rows),
    ).toEqual([
      'governance_refused: an eviction notice or edit request for app.orders, which no policy governs here',
    ]);
  });

  it('are malformed without a key, a change, an executor, or with a key column in the change', () => {
    const route = routeForTopic(euWest, ZONE_TOPIC);
    if (route === undefined) throw new Error('no route');
    const malformed = (fields: Record<string, unknown>): string => {
      try {
        decodeApplyMessage(request(fields), route);
      } catch (err) {
        return (err as Error).message;
      }
      return 'accepted';
    };
    expect(malformed({ pk: {} })).toBe('edit request pk is not a non-empty row image');
    expect(malformed({ set: {} })).toBe('edit request set is not a non-empty row image');
    expect(malformed({ set: { id: 8 } })).toBe('edit request set names a key column');
    expect(malformed({ executor: 3 })).toBe('edit request executor is not a region name');
    expect(malformed({ hlc: 'soon' })).toMatch(/hlc/);
    expect(malformed({ types: [1] })).toBe('edit request types is not a map of column types');
  });
});
