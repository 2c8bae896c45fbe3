import { inspect } from 'node:util';

import { ConfigError } from '../core/errors.js';
import { compileAllRegions } from './compile.js';
import type { EnvSource } from './env.js';
import { parseConfig } from './load.js';

/** The problems a text produces; fails the test when it is accepted. */
function problemsOf(text: string, env: EnvSource = {}): readonly string[] {
  try {
    parseConfig(text, { env });
  } catch (error: unknown) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected the configuration to be rejected');
}

/** A valid tail (kafka + pipelines) for tests that only care about the regions. */
const KAFKA_AND_PIPELINES = `kafka: { brokers: ["127.0.0.1:9092"] }
pipelines:
  - { name: app, tables: [app.users] }
`;

describe('parseConfig', () => {
  it('accepts the DESIGN.md §8 example with a metrics override and applies defaults', () => {
    const config = parseConfig(
      `regions:
  us-east:
    mysql: { host: 127.0.0.1, port: 3307, user: root, password: "" }
  eu-west:
    mysql: { host: 127.0.0.1, port: 3308, user: root, password: "\${EU_PW}" }
    metrics: { port: 9465 }
kafka: { brokers: ["127.0.0.1:9092"], topicPrefix: cdc }
redis: { url: "redis://127.0.0.1:6379" }                   # optional: file store otherwise
pipelines:
  - name: app
    tables: ["app.users", "app.orders"]   # "app.*" for a whole schema
    conflict: { strategy: lww }
metrics: { port: 9464 }
`,
      { env: { EU_PW: 'pw' } },
    );
    expect(config.regions['eu-west']?.mysql.password?.reveal()).toBe('pw');
    expect(config.regions['us-east']?.mysql.password?.isEmpty).toBe(true);
    expect(config.metrics).toEqual({ port: 9464, host: '0.0.0.0' });
    expect(config.stateDir).toBe('.cdc-state');
    expect(config.redis?.keyPrefix).toBe('cdc');
  });

  it('reports YAML syntax errors with their line and column', () => {
    expect(
      problemsOf(`regions:
  us-east:
    mysql: host: 127.0.0.1
`),
    ).toEqual(['YAML syntax (line 3:12): nested mappings are not allowed in compact mappings']);
  });

  it('reports duplicate keys as YAML errors', () => {
    expect(problemsOf('kafka: {}\nkafka: {}\n')).toEqual([
      'YAML syntax (line 2:1): map keys must be unique',
    ]);
  });

  it('reports an unknown key at the key itself', () => {
    expect(
      problemsOf(`regions:
  us-east:
    mysql:
      host: db
      hots: db2
      user: root
      password: ""
${KAFKA_AND_PIPELINES}`),
    ).toEqual(['regions.us-east.mysql.hots (line 5:7): unknown key "hots"']);
  });

  it('reports wrong types by type, never by value', () => {
    expect(
      problemsOf(`regions:
  us-east:
    mysql: { host: db, port: yes, user: 5, password: 12345 }
kafka: { brokers: "127.0.0.1:9092" }
pipelines:
  - { name: app, tables: [app.users], conflict: { strategy: fifo } }
`),
    ).toEqual([
      'regions.us-east.mysql.port (line 3:30): must be a port number 1-65535',
      'regions.us-east.mysql.user (line 3:41): expected a string, got a number',
      'regions.us-east.mysql.password (line 3:54): expected a string, got a number',
      'kafka.brokers (line 4:19): expected a list, got a string',
      'pipelines[0].conflict.strategy (line 6:61): strategy must be "lww" or "region-priority"',
    ]);
  });

  it('reports a missing regions section at the document and an empty one at its value', () => {
    expect(problemsOf(KAFKA_AND_PIPELINES)).toEqual([
      'regions (line 1:1): missing required key "regions"',
    ]);
    expect(problemsOf(`regions: {}\n${KAFKA_AND_PIPELINES}`)).toEqual([
      'regions (line 1:10): at least one region is required',
    ]);
  });

  it('reports a missing key at the mapping that should hold it', () => {
    expect(
      problemsOf(`regions:
  us-east:
    mysql:
      host: db
      password: ""
${KAFKA_AND_PIPELINES}`),
    ).toEqual(['regions.us-east.mysql.user (line 4:7): missing required key "user"']);
  });

  it('reports a badly named region at its name', () => {
    expect(
      problemsOf(`regions:
  US East:
    mysql: { host: db, user: root, password: "" }
${KAFKA_AND_PIPELINES}`),
    ).toEqual([
      'regions["US East"] (line 2:3): invalid key "US East": region names must start with a lowercase letter and use only a-z, 0-9, "_" and "-" (at most 48 characters)',
    ]);
  });

  it('rejects __proto__ keys instead of dropping them', () => {
    expect(
      problemsOf(`regions:
  us-east:
    mysql: { host: db, user: root, password: "", __proto__: { user: x } }
  __proto__:
    mysql: { host: db, user: root, password: "" }
${KAFKA_AND_PIPELINES}`),
    ).toEqual([
      'regions.us-east.mysql.__proto__ (line 3:50): unknown key "__proto__"',
      'regions.__proto__ (line 4:3): invalid key "__proto__": not a usable region name',
    ]);
  });

  it('reports an empty table list and a string that is not schema.table', () => {
    expect(
      problemsOf(`# cdc-replicator
regions:
  us-east:
    mysql: { host: db, user: root, password: "" }
kafka:
  brokers:
    - 127.0.0.1:9092
pipelines:
- name: empty
  tables: []
- name: app
  tables:
    - app.users
    - app
`),
    ).toEqual([
      'pipelines[0].tables (line 10:11): must list at least one table ("schema.table" or "schema.*")',
      'pipelines[1].tables[1] (line 14:7): "app" is not schema.table',
    ]);
  });

  it('rejects internal tables and tables claimed by two pipelines', () => {
    expect(
      problemsOf(`regions:
  us-east:
    mysql: { host: db, user: root, password: "" }
kafka: { brokers: ["k:9092"] }
pipelines:
  - { name: one, tables: [app.users, app._cdc_heartbeat] }
  - { name: two, tables: [app.*] }
`),
    ).toEqual([
      'pipelines[0].tables[1] (line 6:38): "app._cdc_heartbeat" is an internal table (_cdc_*) and is never replicated',
      'pipelines[1].tables[0] (line 7:27): "app.*" overlaps "app.users" at pipelines[0].tables[0]; a table may belong to one pipeline only',
    ]);
  });

  it('checks conflict priorities against the regions and pipeline names for duplicates', () => {
    expect(
      problemsOf(`regions:
  us-east:
    mysql: { host: db, user: root, password: "" }
    metrics: { port: 9465 }
  eu-west:
    mysql: { host: db, user: root, password: "" }
kafka: { brokers: ["k:9092"] }
pipelines:
  - name: app
    tables: [app.users]
    conflict: { strategy: region-priority, priority: [us-east, ap-south] }
  - name: app
    tables: [app.orders]
    conflict: { strategy: lww, priority: [us-east] }
  - name: other
    tables: [other.t]
    conflict: { strategy: region-priority }
`),
    ).toEqual([
      'pipelines[0].conflict.priority (line 11:54): priority must rank every region; missing: eu-west',
      'pipelines[0].conflict.priority[1] (line 11:64): unknown region "ap-south" (regions: us-east, eu-west)',
      'pipelines[1].name (line 12:11): duplicate pipeline name "app" (also pipelines[0])',
      'pipelines[1].conflict.priority (line 14:42): priority is only allowed with strategy "region-priority"',
      'pipelines[2].conflict.priority (line 17:15): strategy "region-priority" needs a priority list of regions, highest first',
    ]);
  });

  it('accepts regions sharing the default metrics address (they normally run on different machines)', () => {
    const config = parseConfig(`regions:
  us-east:
    mysql: { host: db, port: 3307, user: root, password: "" }
  eu-west:
    mysql: { host: db, port: 3308, user: root, password: "" }
${KAFKA_AND_PIPELINES}`);
    expect(Object.keys(config.regions)).toEqual(['us-east', 'eu-west']);
  });

  it('does not let a region override the shared topic prefix', () => {
    expect(
      problemsOf(`regions:
  us-east:
    mysql: { host: db, user: root, password: "" }
    kafka: { topicPrefix: mine }
${KAFKA_AND_PIPELINES}`),
    ).toEqual([
      'regions.us-east.kafka.topicPrefix (line 4:27): topicPrefix must be the same for every region: set it in the top-level kafka block',
    ]);
  });

  it('reports every problem of a file at once, in file order', () => {
    const problems = problemsOf(`regions:
  us-east:
    mysql: { host: db, user: root, password: "\${US_PW}", extra: 1 }
kafka: { brokers: [], topicPrefix: "no spaces" }
pipelines:
  - { name: app, tables: [app] }
metrics: { port: 70000 }
`);
    expect(problems).toEqual([
      'regions.us-east.mysql.password (line 3:46): environment variable US_PW is not set (use ${US_PW:-default} to allow that)',
      'regions.us-east.mysql.extra (line 3:58): unknown key "extra"',
      'kafka.brokers (line 4:19): must list at least one broker',
      'kafka.topicPrefix (line 4:36): topicPrefix may only contain letters, digits, ".", "_" and "-"',
      'pipelines[0].tables[0] (line 6:27): "app" is not schema.table',
      'metrics.port (line 7:18): must be a port number 0-65535 (0 picks a free port)',
    ]);
  });

  it('checks cross-field rules even when other sections are broken', () => {
    expect(
      problemsOf(`regions:
  us-east:
    mysql: { host: db, user: root, password: "" }
kafka: 9092
pipelines:
  - { name: app, tables: [a.b], conflict: { strategy: region-priority, priority: [us-east, eu] } }
`),
    ).toEqual([
      'kafka (line 4:8): expected a mapping, got a number',
      'pipelines[0].conflict.priority[1] (line 6:92): unknown region "eu" (regions: us-east)',
    ]);
  });

  it('reports an empty document', () => {
    expect(problemsOf('')).toEqual([
      '(root) (line 1:1): expected a mapping, got null (empty value)',
    ]);
  });
});

describe('${VAR} expansion', () => {
  const file = (password: string, port: string) => `regions:
  us-east:
    mysql: { host: db, port: ${port}, user: root, password: "${password}" }
${KAFKA_AND_PIPELINES}`;

  it('expands variables, defaults and escapes before validation', () => {
    const config = parseConfig(file('$${literal}-${PW}', '"${PORT:-3310}"'), { env: { PW: 'pw' } });
    const mysql = config.regions['us-east']?.mysql;
    expect(mysql?.password?.reveal()).toBe('${literal}-pw');
    expect(mysql?.port).toBe(3310);
  });

  it('uses the environment over the default and turns digit strings into ports', () => {
    const config = parseConfig(file('', '"${PORT:-3310}"'), { env: { PORT: '3399' } });
    expect(config.regions['us-east']?.mysql.port).toBe(3399);
  });

  it('names an unset variable and where it is used, without a second error for the value', () => {
    expect(problemsOf(file('${PW}', '"${PORT}"'), { PW: '' })).toEqual([
      'regions.us-east.mysql.port (line 3:30): environment variable PORT is not set (use ${PORT:-default} to allow that)',
    ]);
  });

  it("lets a daemon start without another region's password, but nothing else of it", () => {
    const twoRegions = `regions:
  us-east:
    mysql: { host: db-us, user: root, password: "\${US_PW}" }
  eu-west:
    mysql: { host: "\${EU_HOST}", user: root, password: "\${EU_PW}" }
${KAFKA_AND_PIPELINES}`;
    const env = { US_PW: 'us-secret', EU_HOST: 'db-eu' };
    const config = parseConfig(twoRegions, { env, servingRegion: 'us-east' });
    expect(config.regions['us-east']?.mysql.password?.reveal()).toBe('us-secret');
    expect(config.regions['eu-west']?.mysql.password?.reveal()).toBe('');
    // Its own secret, any other field, and a file checked as a whole stay strict.
    expect(() => parseConfig(twoRegions, { env, servingRegion: 'eu-west' })).toThrow(
      /regions\.eu-west\.mysql\.password .*EU_PW is not set/,
    );
    expect(() =>
      parseConfig(twoRegions, { env: { US_PW: 'x' }, servingRegion: 'us-east' }),
    ).toThrow(/regions\.eu-west\.mysql\.host .*EU_HOST is not set/);
    expect(() => parseConfig(twoRegions, { env })).toThrow(/EU_PW is not set/);
  });

  it('reports a malformed reference', () => {
    expect(problemsOf(file('${PW', '3306'))).toEqual([
      'regions.us-east.mysql.password (line 3:58): malformed ${...} reference: expected ${NAME} or ${NAME:-default} (write $${ for a literal ${)',
    ]);
  });

  it('never reads process.env when an env source is given', () => {
    process.env['CDC_TEST_ONLY_IN_PROCESS_ENV'] = 'x';
    try {
      expect(problemsOf(file('${CDC_TEST_ONLY_IN_PROCESS_ENV}', '3306'))).toHaveLength(1);
    } finally {
      delete process.env['CDC_TEST_ONLY_IN_PROCESS_ENV'];
    }
  });
});

describe('secrets', () => {
  const SECRET = 'hunter2-Zq9';

  it('never appear in error messages, whatever else is wrong', () => {
    const text = `regions:
  eu-west:
    mysql: { host: db, port: "\${EU_PW}", user: root, password: "\${EU_PW}", pasword: 1 }
  us-east:
    mysql: { host: db, user: root, password: ${SECRET} , extra: 1}
kafka: { brokers: ["k:9092"], clientId: "" }
redis: { url: "http://:${SECRET}@cache:6379" }
pipelines:
  - { name: app, tables: [app.users] }
`;
    let caught: unknown;
    try {
      parseConfig(text, { env: { EU_PW: SECRET } });
    } catch (error: unknown) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const error = caught as ConfigError;
    expect(error.problems).toHaveLength(5);
    expect(error.problems.join('\n')).toContain(
      'redis.url (line 7:15): must be a redis:// or rediss:// URL',
    );
    expect(error.message).not.toContain(SECRET);
    expect(inspect(error)).not.toContain(SECRET);
    expect(error.problems.join('\n')).not.toContain(SECRET);
  });

  it('never appear in YAML syntax errors', () => {
    const problems = problemsOf(`regions:\n  us-east:\n    mysql: { password: "${SECRET}\n`);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.join('\n')).not.toContain(SECRET);
  });

  it('are wrapped in the validated and compiled options', () => {
    const config = parseConfig(
      `regions:
  eu-west:
    mysql: { host: db, user: root, password: "\${EU_PW}" }
    redis: { url: "redis://:\${EU_PW}@cache:6379" }
${KAFKA_AND_PIPELINES}`,
      { env: { EU_PW: SECRET } },
    );
    const compiled = compileAllRegions(config);
    for (const shown of [
      JSON.stringify(config),
      inspect(config, { depth: null }),
      JSON.stringify(compiled),
      inspect(compiled, { depth: null }),
      `${String(compiled[0]?.mysql.password)}`,
    ]) {
      expect(shown).not.toContain(SECRET);
    }
    const store = compiled[0]?.checkpointStore;
    expect(store?.kind === 'redis' && store.url.reveal()).toBe(`redis://:${SECRET}@cache:6379`);
  });
});
