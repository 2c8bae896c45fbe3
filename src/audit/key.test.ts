import { createHmac } from 'node:crypto';

import { ConfigError } from '../core/errors.js';
import { issueMasks, peoplePolicy } from '../governance/people-policy.fixture.js';
import { columnTypeInfo } from '../governance/routing.js';
import { auditKeyHash, auditedTable, parseKeyArgument } from './key.js';

const KEY = 'test-key-0123456789abcdef';
const POLICY = peoplePolicy(issueMasks(KEY));
const GOVERNANCE = { policies: [POLICY] };
const PIPELINES = [
  {
    tables: [
      { schema: 'app', table: 'people' },
      { schema: 'shop', table: '*' },
    ],
  },
];
const PEOPLE = { schema: 'app', table: 'people' };
const hmac = (message: string) =>
  `hmac:${createHmac('sha256', Buffer.from(KEY, 'utf8')).update(message).digest('hex')}`;

function problems(run: () => unknown): string[] {
  try {
    run();
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

describe('auditedTable', () => {
  it('takes a governed pipeline table with its policy', () => {
    expect(auditedTable('app.people', PIPELINES, GOVERNANCE)).toEqual({
      table: PEOPLE,
      policy: POLICY,
    });
  });

  it('refuses a malformed name, a table of no pipeline, and an ungoverned table', () => {
    expect(problems(() => auditedTable('people', PIPELINES, GOVERNANCE))).toEqual([
      '--table: expected schema.table, got "people"',
    ]);
    expect(problems(() => auditedTable('app.orders', PIPELINES, GOVERNANCE))).toEqual([
      '--table: app.orders is not a table of any pipeline',
    ]);
    expect(problems(() => auditedTable('shop.items', PIPELINES, GOVERNANCE))).toEqual([
      '--table: shop.items is not under a governance policy, so it has no audit trail',
    ]);
    expect(problems(() => auditedTable('app.people', PIPELINES, undefined))).toHaveLength(1);
  });
});

describe('parseKeyArgument', () => {
  it('splits col=value parts at the first =', () => {
    expect(parseKeyArgument('a=1,b=x=y,c=')).toEqual([
      { column: 'a', value: '1' },
      { column: 'b', value: 'x=y' },
      { column: 'c', value: '' },
    ]);
  });

  it('refuses parts without a column and columns given twice, without repeating values', () => {
    expect(problems(() => parseKeyArgument('secret-value'))).toEqual([
      '--key: part 1 is not column=value',
    ]);
    expect(problems(() => parseKeyArgument('a=1,a=2'))).toEqual(['--key: a is given twice']);
  });
});

describe('auditKeyHash', () => {
  const ID = [columnTypeInfo('id', 'int(11)')];

  it('is the key hash capture computes, in key order whatever the order given', () => {
    expect(auditKeyHash(POLICY, PEOPLE, ID, [{ column: 'id', value: '42' }])).toBe(hmac('2:42'));
    const composite = [columnTypeInfo('a', 'int(11)'), columnTypeInfo('b', 'varchar(10)')];
    expect(
      auditKeyHash(POLICY, PEOPLE, composite, [
        { column: 'b', value: 'ab' },
        { column: 'a', value: '007' },
      ]),
    ).toBe(hmac('1:72:ab'));
  });

  it('refuses other columns than the primary key, and values the type cannot hold, naming no value', () => {
    expect(
      problems(() => auditKeyHash(POLICY, PEOPLE, ID, [{ column: 'email', value: 'x@y' }])),
    ).toEqual(['--key: the primary key of app.people is (id); --key names (email)']);
    const bad = problems(() =>
      auditKeyHash(POLICY, PEOPLE, ID, [{ column: 'id', value: 'forty-two' }]),
    );
    expect(bad).toEqual(['--key: column id (int(11)): not an integer']);
    expect(
      problems(() => auditKeyHash(POLICY, PEOPLE, [], [{ column: 'id', value: '1' }])),
    ).toEqual(['--key: app.people has no primary key, so it has no audit trail']);
  });
});
