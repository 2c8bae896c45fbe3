import { Secret } from '../core/secret.js';
import type { GovernancePolicy, MaskSpec, TableTypeInfo } from './policy.js';
import {
  checkKeyColumns,
  checkMaskableColumns,
  checkPolicyTable,
  checkResidencyColumn,
} from './table-check.js';

const HMAC: MaskSpec = { kind: 'hmac', key: new Secret('test-key-0123456789abcdef') };

function policy(
  masking: [string, MaskSpec][],
  values: (string | null)[] = ['DE'],
): GovernancePolicy {
  return {
    name: 'people-eu',
    tables: [{ schema: 'app', table: 'people' }],
    residency: {
      column: 'country',
      rules: [{ values, zone: 'eu', masked: ['us-east'] }],
      default: { kind: 'all' },
    },
    masking: new Map(masking),
  };
}

const PEOPLE: TableTypeInfo = {
  schema: 'app',
  table: 'people',
  primaryKey: ['id'],
  columns: [
    { name: 'id', dataType: 'bigint', columnType: 'bigint', nullable: false },
    { name: 'country', dataType: 'char', columnType: 'char(2)', nullable: false },
    { name: 'email', dataType: 'varchar', columnType: 'varchar(255)', nullable: true },
    { name: 'short_email', dataType: 'varchar', columnType: 'varchar(32)', nullable: true },
    { name: 'phone', dataType: 'varchar', columnType: 'varchar(20)', nullable: false },
    { name: 'note', dataType: 'text', columnType: 'text', nullable: true },
    { name: 'initial', dataType: 'char', columnType: 'char(1)', nullable: true },
    { name: 'born', dataType: 'date', columnType: 'date', nullable: true },
    { name: 'token', dataType: 'varbinary', columnType: 'varbinary(64)', nullable: true },
  ],
};

describe('checkMaskableColumns', () => {
  it('accepts masks the columns can hold', () => {
    expect(
      checkPolicyTable(
        policy([
          ['email', HMAC],
          ['note', { kind: 'redact', text: '***' }],
          ['initial', { kind: 'truncate', length: 1 }],
          ['born', { kind: 'nullify' }],
          ['token', HMAC],
        ]),
        PEOPLE,
      ),
    ).toEqual([]);
  });

  it('refuses key columns, missing columns, NOT NULL nullify, wrong types and narrow columns', () => {
    expect(
      checkMaskableColumns(
        policy([
          ['id', { kind: 'nullify' }],
          ['emial', HMAC],
          ['phone', { kind: 'nullify' }],
          ['born', { kind: 'redact', text: 'x' }],
          ['short_email', HMAC],
          ['initial', { kind: 'redact', text: '***' }],
          ['country', { kind: 'truncate', length: 3 }],
        ]),
        PEOPLE,
      ),
    ).toEqual([
      'app.people.id (bigint): a primary-key column cannot be masked (nullify mask of policy people-eu); every region needs the key to apply, join and erase the row',
      'app.people.emial: no such column (hmac mask of policy people-eu)',
      'app.people.phone (varchar(20)): NOT NULL, so the nullify mask cannot be written (nullify mask of policy people-eu); make the column nullable or use another mask',
      'app.people.born (date): the redact mask writes text, which a date column cannot hold (redact "x" mask of policy people-eu); use nullify',
      'app.people.short_email (varchar(32)): too narrow for the hmac mask of policy people-eu: it holds 32 characters, the mask needs at least 64',
      'app.people.initial (char(1)): too narrow for the redact "***" mask of policy people-eu: it holds 1 character, the mask needs at least 3',
      'app.people.country (char(2)): too narrow for the truncate 3 mask of policy people-eu: it holds 2 characters, the mask needs at least 3',
    ]);
  });

  it('counts binary and TEXT widths in bytes', () => {
    const table: TableTypeInfo = {
      ...PEOPLE,
      columns: [
        { name: 'b', dataType: 'varbinary', columnType: 'varbinary(8)', nullable: true },
        { name: 't', dataType: 'tinytext', columnType: 'tinytext', nullable: true },
      ],
    };
    expect(
      checkMaskableColumns(
        policy([
          ['b', { kind: 'redact', text: 'ééééé' }],
          ['t', HMAC],
        ]),
        table,
      ),
    ).toEqual([
      'app.people.b (varbinary(8)): too narrow for the redact "ééééé" mask of policy people-eu: it holds 8 bytes, the mask needs at least 10',
    ]);
  });
});

describe('checkKeyColumns', () => {
  const keyedBy = (...columns: [string, string][]): TableTypeInfo => ({
    ...PEOPLE,
    primaryKey: columns.map(([name]) => name),
    columns: [
      ...PEOPLE.columns.filter((c) => c.name !== 'id'),
      ...columns.map(([name, columnType]) => ({
        name,
        dataType: columnType.replace(/[ (].*$/, ''),
        columnType,
        nullable: false,
      })),
    ],
  });

  it.each([
    'int',
    'bigint unsigned',
    'int(5) unsigned zerofill',
    'varchar(64)',
    'char(2)',
    'text',
    'binary(16)',
    'varbinary(32)',
    'decimal(10,2)',
  ])('accepts a %s key, whose tombstone key capture computes', (type) => {
    expect(checkKeyColumns(policy([]), keyedBy(['k', type]))).toEqual([]);
  });

  it.each([
    ['datetime(3)', 'datetime'],
    ['date', 'date'],
    ['double', 'double'],
    ["enum('a','b')", 'enum'],
    ['decimal(10,2) unsigned zerofill', 'DECIMAL ZEROFILL'],
  ])('refuses a %s key, naming table, column, type and why', (type, named) => {
    const problems = checkKeyColumns(policy([]), keyedBy(['id', 'bigint'], ['k', type]));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(
      `app.people.k (${type}): a primary-key column of a table governed by policy people-eu`,
    );
    expect(problems[0]).toContain('eviction notices name a row by the hash of its key');
    expect(problems[0]).toContain(named);
  });

  it('is part of checkPolicyTable', () => {
    expect(checkPolicyTable(policy([]), keyedBy(['k', 'datetime']))).toHaveLength(1);
  });
});

describe('checkResidencyColumn', () => {
  it('needs the column, of a type residency can be decided on', () => {
    expect(checkResidencyColumn(policy([]), PEOPLE)).toEqual([]);
    expect(checkResidencyColumn(policy([]), { ...PEOPLE, columns: [] })).toEqual([
      'app.people.country: no such column (residency column of policy people-eu)',
    ]);
    const dated: TableTypeInfo = {
      ...PEOPLE,
      columns: [{ name: 'country', dataType: 'datetime', columnType: 'datetime' }],
    };
    expect(checkResidencyColumn(policy([]), dated)).toEqual([
      'app.people.country (datetime): residency is decided on character, ENUM or integer columns only (residency column of policy people-eu)',
    ]);
  });

  it('flags rule values an integer column never holds', () => {
    const numeric: TableTypeInfo = {
      ...PEOPLE,
      columns: [{ name: 'country', dataType: 'int', columnType: 'int' }],
    };
    expect(checkResidencyColumn(policy([], ['49', '-1', null]), numeric)).toEqual([]);
    expect(checkResidencyColumn(policy([], ['49', 'DE']), numeric)).toEqual([
      'app.people.country (int): an integer column never holds "DE" (residency column of policy people-eu); such rules would never match',
    ]);
  });
});
