import { describe, expect, it } from '@jest/globals';
import { createHmac } from 'node:crypto';
import type { RowImage } from '../bus/envelope.js';
import { columnTypeInfo } from '../governance/routing.js';
import { keyHash } from '../governance/key-hash.js';
import type { RowVersion } from '../versioning/version.js';
import type { RegionState } from './diff.js';
import {
  assessGovernedKey,
  comparePair,
  judgeKey,
  unmaskedColumns,
  type GovernedTableContext,
} from './governed.js';
import { formatGovernedDivergence, formatVersion } from './report.js';
import { issueMasks, peoplePolicy } from '../governance/people-policy.fixture.js';

const KEY = 'test-key-0123456789abcdef';
const REGIONS = ['eu-west', 'eu-central', 'us-east'];

const POLICY = peoplePolicy(issueMasks(KEY));

const TYPES: Record<string, string> = {
  id: 'int(11)',
  country: 'char(2)',
  email: 'varchar(255)',
  phone: 'varchar(32)',
  note: 'text',
  name: 'varchar(100)',
};

const CONTEXT: GovernedTableContext = {
  table: 'app.people',
  policy: POLICY,
  zones: { eu: ['eu-west', 'eu-central'] },
  regions: REGIONS,
  columns: new Map(Object.entries(TYPES).map(([n, t]) => [n, columnTypeInfo(n, t)])),
  keyColumns: [columnTypeInfo('id', 'int(11)')],
};

const hmacOf = (text: string): string =>
  createHmac('sha256', Buffer.from(KEY, 'utf8')).update(Buffer.from(text, 'utf8')).digest('hex');

const DE: RowImage = {
  id: 1,
  country: 'DE',
  email: 'anna@example.de',
  phone: '+49 30 1234',
  note: 'likes letters',
  name: 'Anna',
};
const DE_MASKED: RowImage = {
  id: 1,
  country: 'DE',
  email: hmacOf('anna@example.de'),
  phone: null,
  note: '***',
  name: 'A',
};
const CH: RowImage = { ...DE, id: 2, country: 'CH' };
const US: RowImage = { ...DE, id: 3, country: 'US' };
/** Every value of the rows above that a governed output must never show. */
const SECRETS = [
  'anna@example.de',
  '+49 30 1234',
  'likes letters',
  'Anna',
  hmacOf(String(DE.email)),
];

const v = (origin: string, hlc: number): RowVersion => ({ origin, hlc, vv: { [origin]: hlc } });
const state = (
  region: string,
  image: RowImage | null,
  version: RowVersion | null = v('eu-west', 10),
): RegionState => ({ region, image, version });

describe('comparePair', () => {
  const plain = (region: string, image: RowImage | null) =>
    ({ region, audience: 'plain', image }) as const;
  const masked = (region: string, image: RowImage | null) =>
    ({ region, audience: 'masked', image }) as const;
  const none = (region: string, image: RowImage | null) =>
    ({ region, audience: 'none', image }) as const;

  it('compares plain against masked through the masks: no false divergence', () => {
    expect(comparePair(CONTEXT, plain('eu-west', DE), masked('us-east', DE_MASKED))).toEqual({
      kind: 'same',
    });
    expect(comparePair(CONTEXT, masked('us-east', DE_MASKED), plain('eu-west', DE))).toEqual({
      kind: 'same',
    });
  });

  it('names the columns that differ through the masks', () => {
    expect(
      comparePair(
        CONTEXT,
        plain('eu-west', DE),
        masked('us-east', { ...DE_MASKED, email: hmacOf('other@example.de'), name: 'B' }),
      ),
    ).toEqual({ kind: 'differs', columns: ['email', 'name'], throughMasks: true });
    // A plaintext copy in the masked region differs in every column the masks change.
    expect(comparePair(CONTEXT, plain('eu-west', DE), masked('us-east', DE))).toEqual({
      kind: 'differs',
      columns: ['email', 'phone', 'note', 'name'],
      throughMasks: true,
    });
  });

  it('compares plain against plain on everything', () => {
    expect(comparePair(CONTEXT, plain('eu-west', DE), plain('eu-central', DE))).toEqual({
      kind: 'same',
    });
    expect(
      comparePair(CONTEXT, plain('eu-west', DE), plain('eu-central', { ...DE, phone: '+49 1' })),
    ).toEqual({ kind: 'differs', columns: ['phone'], throughMasks: false });
  });

  it('compares masked against masked as they are', () => {
    expect(comparePair(CONTEXT, masked('a', DE_MASKED), masked('b', DE_MASKED))).toEqual({
      kind: 'same',
    });
  });

  it('does not compare where one side may not hold the row, and notes a row held on one side only', () => {
    expect(comparePair(CONTEXT, plain('eu-west', CH), none('us-east', null))).toEqual({
      kind: 'not-compared',
    });
    expect(comparePair(CONTEXT, plain('eu-west', CH), none('us-east', CH))).toEqual({
      kind: 'not-compared',
    });
    expect(comparePair(CONTEXT, plain('eu-west', DE), masked('us-east', null))).toEqual({
      kind: 'differs',
      columns: [],
      onlyIn: 'eu-west',
      throughMasks: true,
    });
    expect(comparePair(CONTEXT, plain('eu-west', null), plain('eu-central', null))).toEqual({
      kind: 'same',
    });
  });
});

describe('unmaskedColumns', () => {
  it('accepts what the masks produce and NULL, names columns holding anything else', () => {
    expect(unmaskedColumns(CONTEXT, DE_MASKED)).toEqual([]);
    expect(unmaskedColumns(CONTEXT, { ...DE_MASKED, email: null, note: null, name: null })).toEqual(
      [],
    );
    expect(unmaskedColumns(CONTEXT, DE)).toEqual(['email', 'phone', 'note', 'name']);
    expect(unmaskedColumns(CONTEXT, { ...DE_MASKED, name: 'An' })).toEqual(['name']);
  });

  it('reads a binary column as the bytes of its mask (BINARY(n) padded)', () => {
    const context: GovernedTableContext = {
      ...CONTEXT,
      columns: new Map([
        ...CONTEXT.columns,
        ['email', columnTypeInfo('email', 'binary(70)')],
        ['note', columnTypeInfo('note', 'varbinary(10)')],
      ]),
    };
    const padded = Buffer.concat([Buffer.from(hmacOf('x')), Buffer.alloc(6)]).toString('base64');
    const note = Buffer.from('***').toString('base64');
    expect(unmaskedColumns(context, { ...DE_MASKED, email: padded, note })).toEqual([]);
    expect(
      unmaskedColumns(context, {
        ...DE_MASKED,
        email: Buffer.from('anna@example.de').toString('base64'),
        note,
      }),
    ).toEqual(['email']);
  });
});

describe('judgeKey', () => {
  it('is silent when each region holds exactly its projection', () => {
    expect(
      judgeKey(CONTEXT, [
        state('eu-west', DE),
        state('eu-central', DE),
        state('us-east', DE_MASKED),
      ]),
    ).toBeNull();
    expect(
      judgeKey(CONTEXT, [state('eu-west', CH), state('eu-central', CH), state('us-east', null)]),
    ).toBeNull();
    expect(
      judgeKey(CONTEXT, [state('eu-west', US), state('eu-central', US), state('us-east', US)]),
    ).toBeNull();
    expect(
      judgeKey(CONTEXT, [
        state('eu-west', null),
        state('eu-central', null),
        state('us-east', null),
      ]),
    ).toBeNull();
  });

  it('reports a row held where it may not be at all', () => {
    const j = judgeKey(CONTEXT, [
      state('eu-west', CH),
      state('eu-central', CH),
      state('us-east', CH),
    ]);
    expect(j?.violations).toEqual([{ region: 'us-east', kind: 'not-allowed', columns: [] }]);
    expect(j?.pairs.map((p) => p.verdict.kind)).toEqual(['same', 'not-compared', 'not-compared']);
  });

  it('reports plain values in the masked region, decided on the winning image', () => {
    // us-east holds DE's plaintext (a raw write there): its own row is the only one.
    const alone = judgeKey(CONTEXT, [
      state('eu-west', null, null),
      state('eu-central', null, null),
      state('us-east', DE, v('us-east', 20)),
    ]);
    expect(alone?.decidedBy).toBe('us-east');
    expect(alone?.violations).toEqual([
      {
        region: 'us-east',
        kind: 'plain-where-masked',
        columns: ['email', 'phone', 'note', 'name'],
      },
    ]);
    // The zone lacks the row it may hold plain.
    expect(alone?.pairs.filter((p) => p.verdict.kind === 'differs').map((p) => [p.a, p.b])).toEqual(
      [
        ['eu-west', 'us-east'],
        ['eu-central', 'us-east'],
      ],
    );
  });

  it('reports a masked copy where the original belongs', () => {
    const j = judgeKey(CONTEXT, [
      state('eu-west', DE),
      state('eu-central', DE_MASKED),
      state('us-east', DE_MASKED),
    ]);
    expect(j?.violations).toEqual([
      {
        region: 'eu-central',
        kind: 'masked-where-plain',
        columns: ['email', 'phone', 'note', 'name'],
      },
    ]);
  });

  it('takes the residency from the newest image: a region behind is compared on the new one', () => {
    // eu-west moved the row from US to DE; us-east still holds the US version in plain.
    const j = judgeKey(CONTEXT, [
      state('eu-west', DE, v('eu-west', 30)),
      state('eu-central', DE, v('eu-west', 30)),
      state('us-east', { ...US, id: 1 }, v('eu-west', 10)),
    ]);
    expect(j?.decidedBy).toBe('eu-west');
    expect(j?.audiences.get('us-east')).toBe('masked');
    expect(j?.violations.map((x) => x.kind)).toEqual(['plain-where-masked']);
  });
});

describe('assessGovernedKey and its report', () => {
  it('reports regions, audiences, versions, columns and a key hash, never a value or the key', () => {
    const corrupted = { ...DE_MASKED, email: 'anna@example.de' };
    const d = assessGovernedKey(
      CONTEXT,
      [1],
      [
        state('eu-west', DE, v('eu-west', 10)),
        state('eu-central', DE, v('eu-west', 10)),
        state('us-east', corrupted, v('eu-west', 10)),
      ],
    );
    expect(d).not.toBeNull();
    const text = formatGovernedDivergence(d as NonNullable<typeof d>);
    const version = formatVersion(v('eu-west', 10));
    const hash = keyHash(POLICY, CONTEXT.keyColumns, [1]);
    expect(text).toBe(
      [
        `NOT ALLOWED app.people key ${hash} (policy people-eu): us-east may hold this row only masked, but email holds what no mask produces (plain values); same version, different data in us-east (a write bypassed capture or the applier)`,
        `  eu-west     may hold plain   row     version ${version}`,
        `  eu-central  may hold plain   row     version ${version}`,
        `  us-east     may hold masked  row     version ${version}`,
        '  eu-west / us-east: columns email differ (through the masks)',
        '  eu-central / us-east: columns email differ (through the masks)',
      ].join('\n'),
    );
    for (const secret of SECRETS) expect(text).not.toContain(secret);
    expect(JSON.stringify(d)).not.toContain('anna@example.de');
    expect(text).not.toMatch(/"id"|\bid\b/);
  });

  it('says which region lacks a row it may hold', () => {
    const d = assessGovernedKey(
      CONTEXT,
      [2],
      [state('eu-west', CH), state('eu-central', null, null), state('us-east', null, null)],
    );
    const text = formatGovernedDivergence(d as NonNullable<typeof d>);
    expect(text).toMatch(
      /^DIVERGENT app\.people key hmac:[0-9a-f]{64} \(policy people-eu\): eu-central differs/,
    );
    expect(text).toContain('  eu-west / eu-central: only eu-west holds the row');
    expect(text).toContain('  us-east     may not hold     no row ');
  });
});
