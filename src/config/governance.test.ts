import { inspect } from 'node:util';

import { ConfigError } from '../core/errors.js';
import { compileGovernance } from './compile-governance.js';
import type { EnvSource } from './env.js';
import { parseConfig } from './load.js';

const KEY = 'k'.repeat(32);

/** Three regions, two of them in the eu zone; app.* and crm.people replicated. */
const BASE = `regions:
  us-east:
    mysql: { host: db, user: root, password: "" }
  eu-west:
    mysql: { host: db, user: root, password: "" }
  eu-central:
    mysql: { host: db, user: root, password: "" }
kafka: { brokers: ["k:9092"] }
pipelines:
  - { name: app, tables: ["app.*"] }
  - { name: crm, tables: [crm.people] }
`;

/** The issue's example, verbatim. */
const ISSUE_EXAMPLE = `governance:
  zones: { eu: [eu-west, eu-central] }
  policies:
    - name: people-eu
      tables: [app.people]
      residency:
        column: country
        rules:
          - { in: [DE, FR], zone: eu, masked: [us-east] }   # plain in the zone, masked in us-east
          - { in: [CH], zone: eu }                          # in the zone only
        default: all                                         # any other value: everywhere, plain
      masking:
        email: { hmac: { key: '\${CDC_MASK_KEY}' } }
        phone: nullify
        note: { redact: '***' }
        name: { truncate: 1 }
`;

function problemsOf(text: string, env: EnvSource = { CDC_MASK_KEY: KEY }): readonly string[] {
  try {
    parseConfig(text, { env });
  } catch (error: unknown) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected the configuration to be rejected');
}

describe('governance section', () => {
  it('accepts the issue example and compiles it', () => {
    const config = parseConfig(BASE + ISSUE_EXAMPLE, { env: { CDC_MASK_KEY: KEY } });
    const governance = compileGovernance(config);
    expect(governance?.zones).toEqual({ eu: ['eu-west', 'eu-central'] });
    expect(governance?.regions).toEqual(['us-east', 'eu-west', 'eu-central']);
    const policy = governance?.policies[0];
    expect(policy?.name).toBe('people-eu');
    expect(policy?.tables).toEqual([{ schema: 'app', table: 'people' }]);
    expect(policy?.residency).toEqual({
      column: 'country',
      rules: [
        { values: ['DE', 'FR'], zone: 'eu', masked: ['us-east'] },
        { values: ['CH'], zone: 'eu', masked: [] },
      ],
      default: { kind: 'all' },
    });
    const email = policy?.masking.get('email');
    expect(email?.kind === 'hmac' && email.key.reveal()).toBe(KEY);
    expect([...(policy?.masking.entries() ?? [])].slice(1)).toEqual([
      ['phone', { kind: 'nullify' }],
      ['note', { kind: 'redact', text: '***' }],
      ['name', { kind: 'truncate', length: 1 }],
    ]);
    // The key never shows when the options are printed or serialised.
    expect(inspect(governance, { depth: 10 })).not.toContain(KEY);
    expect(JSON.stringify(policy?.residency)).not.toContain(KEY);
  });

  it('has no governance when the section is absent', () => {
    expect(compileGovernance(parseConfig(BASE))).toBeUndefined();
  });

  it('compiles default: none and default: <zone>, integers and null as residency values', () => {
    const config = parseConfig(`${BASE}governance:
  zones: { eu: [eu-west, eu-central] }
  policies:
    - { name: a, tables: [app.a], residency: { default: none } }
    - { name: b, tables: [app.b], residency: { default: eu } }
    - name: c
      tables: [crm.people]
      residency: { column: cc, rules: [{ in: [49, null], zone: eu, masked: all }], default: none }
      masking: { phone: nullify }
`);
    const policies = compileGovernance(config)?.policies ?? [];
    expect(policies.map((p) => p.residency.default)).toEqual([
      { kind: 'none' },
      { kind: 'zone', zone: 'eu' },
      { kind: 'none' },
    ]);
    expect(policies[2]?.residency.rules).toEqual([
      { values: ['49', null], zone: 'eu', masked: 'all' },
    ]);
  });

  it('stops on a missing key variable, naming it and where it is used, never a value', () => {
    expect(problemsOf(BASE + ISSUE_EXAMPLE, {})).toEqual([
      'governance.policies[0].masking.email.hmac.key (line 24:31): environment variable CDC_MASK_KEY is not set (use ${CDC_MASK_KEY:-default} to allow that)',
    ]);
  });

  it('refuses a short key without printing it', () => {
    const problems = problemsOf(BASE + ISSUE_EXAMPLE, { CDC_MASK_KEY: 'short-secret' });
    expect(problems).toEqual([
      'governance.policies[0].masking.email.hmac.key (line 24:31): the key must be at least 16 bytes; write "${VAR}" to keep it out of the file',
    ]);
    expect(problems.join('\n')).not.toContain('short-secret');
  });

  it('reports bad shapes at their line and key path', () => {
    expect(
      problemsOf(`${BASE}governance:
  zones: { all: [us-east], EU: [eu-west], empty: [] }
  policies:
    - name: People
      tables: [app.*, app]
      residency:
        column: country
        rules:
          - { in: [], zone: eu, masked: some }
          - { in: [1.5, true], zone: eu }
        default: 7
      masking:
        email: { hmac: { key: x }, redact: '*' }
        phone: nullify-it
        note: {}
        name: { truncate: 0 }
        bio: { blur: 3 }
`),
    ).toEqual([
      'governance.zones.all (line 13:12): invalid key "all": "all" is reserved (residency.default: all | none | <zone>)',
      'governance.zones.EU (line 13:28): invalid key "EU": zone names must start with a lowercase letter and use only a-z, 0-9, "_" and "-" (at most 48 characters)',
      'governance.zones.empty (line 13:50): a zone lists at least one region',
      'governance.policies[0].name (line 15:13): policy names must start with a lowercase letter and use only a-z, 0-9, "_" and "-" (at most 48 characters)',
      'governance.policies[0].tables[0] (line 16:16): "app.*": a policy names its tables one by one (its columns are those of each table)',
      'governance.policies[0].tables[1] (line 16:23): "app" is not schema.table',
      'governance.policies[0].residency.rules[0].in (line 20:19): in must list at least one value',
      'governance.policies[0].residency.rules[0].zone (line 20:29): unknown zone "eu" (zones: empty)',
      'governance.policies[0].residency.rules[0].masked (line 20:41): masked is a list of regions or "all"',
      'governance.policies[0].residency.rules[1].in[0] (line 21:20): residency values are strings, integers or null',
      'governance.policies[0].residency.rules[1].in[1] (line 21:25): residency values are strings, integers or null',
      'governance.policies[0].residency.rules[1].zone (line 21:38): unknown zone "eu" (zones: empty)',
      'governance.policies[0].residency.default (line 22:18): expected a string, got a number',
      'governance.policies[0].masking.email (line 24:16): give one mode per column, not hmac and redact',
      'governance.policies[0].masking.email.hmac.key (line 24:31): the key must be at least 16 bytes; write "${VAR}" to keep it out of the file',
      'governance.policies[0].masking.phone (line 25:16): a mask is nullify, { hmac: { key } }, { redact: "text" } or { truncate: n }',
      'governance.policies[0].masking.note (line 26:15): a mask is nullify, { hmac: { key } }, { redact: "text" } or { truncate: n }',
      'governance.policies[0].masking.name.truncate (line 27:27): truncate must be at least 1 (use redact: "" for an empty value)',
      'governance.policies[0].masking.bio (line 28:14): a mask is nullify, { hmac: { key } }, { redact: "text" } or { truncate: n }',
      'governance.policies[0].masking.bio.blur (line 28:16): unknown key "blur"',
    ]);
  });

  it('checks zones, policies and tables against the regions, the pipelines and each other', () => {
    expect(
      problemsOf(`${BASE}  - name: dbz
    tables: [shop.orders]
    output: { format: debezium, topicPrefix: dbz }
governance:
  zones:
    eu: [eu-west, eu-central, eu-west]
    apac: [ap-south]
  policies:
    - name: people
      tables: [app.people, crm.people]
      residency:
        column: country
        rules:
          - { in: [DE, FR, 49], zone: eu, masked: [us-east, eu-west, mars] }
          - { in: [FR, null, "49"], zone: emea }
          - { in: [CH], zone: eu, masked: all }
        default: europe
      masking: { country: nullify }
    - name: people
      tables: [crm.people, crm.orders, shop.orders]
      residency: { default: none }
`),
    ).toEqual([
      'governance.zones.eu[2] (line 17:31): region "eu-west" is listed twice',
      'governance.zones.apac[0] (line 18:12): unknown region "ap-south" (regions: us-east, eu-west, eu-central)',
      'governance.policies[0].residency.rules[0].masked[1] (line 25:61): region "eu-west" is in zone "eu", which holds these rows plainly',
      'governance.policies[0].residency.rules[0].masked[2] (line 25:70): unknown region "mars" (regions: us-east, eu-west, eu-central)',
      'governance.policies[0].residency.rules[1].in[0] (line 26:20): "FR" is already listed at governance.policies[0].residency.rules[0].in[1]; a value belongs to one rule',
      'governance.policies[0].residency.rules[1].in[2] (line 26:30): "49" is already listed at governance.policies[0].residency.rules[0].in[2]; a value belongs to one rule',
      'governance.policies[0].residency.rules[1].zone (line 26:43): unknown zone "emea" (zones: eu, apac)',
      'governance.policies[0].residency.default (line 28:18): unknown zone "europe" (zones: eu, apac); default is "all", "none" or a zone',
      'governance.policies[0].masking.country (line 29:18): "country" is the residency column and cannot be masked: every region reads it to decide where the row may live',
      'governance.policies[1].name (line 30:13): duplicate policy name "people" (also governance.policies[0])',
      'governance.policies[1].tables[0] (line 31:16): "crm.people" is already governed by policy "people" at governance.policies[0].tables[1]; a table has one policy',
      'governance.policies[1].tables[1] (line 31:28): "crm.orders" is in no pipeline (pipeline tables: app.*, crm.people, shop.orders)',
      'governance.policies[1].tables[2] (line 31:40): "shop.orders" belongs to a pipeline with an output (pipelines[2].tables[0]), which would publish its rows whole to topics outside the policy; governed tables cannot have one yet',
    ]);
  });

  it('refuses rows sent masked by a policy that masks nothing, and rules without their column', () => {
    expect(
      problemsOf(`${BASE}governance:
  zones: { eu: [eu-west, eu-central] }
  policies:
    - name: people
      tables: [app.people]
      residency:
        column: country
        rules: [{ in: [DE], zone: eu, masked: all }]
        default: all
    - name: orders
      tables: [app.orders]
      residency: { rules: [{ in: [DE], zone: eu }], default: none }
    - name: notes
      tables: [app.notes]
      residency: { column: country, default: eu }
`),
    ).toEqual([
      'governance.policies[0].residency.rules[0].masked (line 19:47): these rows go masked to other regions, but the policy masks no column: they would arrive whole (add masking, or drop masked)',
      'governance.policies[1].residency.column (line 23:18): rules need the residency column they match on',
      'governance.policies[2].residency.rules (line 26:18): a residency column without rules decides nothing: add rules or remove column',
    ]);
  });
});
