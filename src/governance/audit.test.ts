import { createHash, createHmac } from 'node:crypto';

import {
  auditMessageKey,
  auditRecordId,
  auditRecordsForChange,
  auditTopic,
  changeKeyHash,
  AUDIT_BATCH_VERSION,
  decodeAuditMessage,
  decodeAuditRecord,
  dedupeAuditRecords,
  encodeAuditBatches,
  encodeAuditRecord,
  formatAuditRecord,
  refusedAuditRecord,
  type AuditContext,
  type AuditRecord,
  type AuditedChange,
} from './audit.js';
import { keyHash } from './key-hash.js';
import { issueMasks, peoplePolicy } from './people-policy.fixture.js';
import type { GovernancePolicy, RowValues, Zones } from './policy.js';
import { columnTypeInfo, routeChange, type GovernanceLayout } from './routing.js';
import { policyVersion } from './version.js';

const KEY = 'test-key-0123456789abcdef';
const REGIONS = ['eu-west', 'eu-central', 'us-east'];
const ZONES: Zones = { eu: ['eu-west', 'eu-central'] };
const LAYOUT: GovernanceLayout = { topicPrefix: 'cdc', zones: ZONES, regions: REGIONS };
const PEOPLE = peoplePolicy(issueMasks(KEY));
const TIME = new Date('2026-12-07T08:30:00.123Z');
const CONTEXT: AuditContext = {
  policy: PEOPLE,
  zones: ZONES,
  regions: REGIONS,
  sourceRegion: 'eu-west',
  time: TIME,
};

const TYPES = {
  id: 'int(11)',
  country: 'char(2)',
  email: 'varchar(255)',
  phone: 'varchar(32)',
  note: 'text',
  name: 'varchar(100)',
};

const ROW = {
  email: 'anna.schmidt.7731@example.de',
  phone: '+49 30 5550 1937',
  note: 'Prefers contact by letter',
  name: 'Anna Schmidtbauer',
};

function change(id: number, country: string, op: 'c' | 'u' | 'd' = 'c') {
  const image: RowValues = { id, country, ...ROW };
  return {
    op,
    db: 'app',
    table: 'people',
    pk: { id },
    before: op === 'c' ? null : image,
    after: op === 'd' ? null : image,
    hlc: 1_796_622_650_188_526 + id,
    origin: 'eu-west',
    gtid: `0-1-${id}`,
    types: TYPES,
  };
}

const HASH_1 = `hmac:${createHmac('sha256', Buffer.from(KEY, 'utf8')).update('1:1').digest('hex')}`;
const VERSION = policyVersion(PEOPLE, ZONES);

/** The records of a change routed as capture routes it, from eu-west. */
function recordsOf(c: ReturnType<typeof change>, notices: readonly string[] = []): AuditRecord[] {
  const { copies } = routeChange(
    LAYOUT,
    PEOPLE,
    { sourceRegion: 'eu-west', db: 'app', table: 'people' },
    c,
    TYPES,
  );
  return auditRecordsForChange(CONTEXT, c, { copies, notices });
}

const brief = (r: AuditRecord) => `${r.target} ${r.decision}`;

describe('auditRecordsForChange: one record per routed change and target region', () => {
  it('a DE row: sent plain to the other zone region, sent masked to us-east', () => {
    const records = recordsOf(change(1, 'DE'));
    expect(records).toEqual([
      {
        v: 1,
        time: '2026-12-07T08:30:00.123Z',
        source: 'eu-west',
        target: 'eu-central',
        decision: 'sent',
        db: 'app',
        table: 'people',
        op: 'c',
        keyHash: HASH_1,
        version: { hlc: 1_796_622_650_188_527, origin: 'eu-west' },
        gtid: '0-1-1',
        policy: 'people-eu',
        policyVersion: VERSION,
      },
      expect.objectContaining({ target: 'us-east', decision: 'sent_masked', keyHash: HASH_1 }),
    ]);
  });

  it('a CH row: sent to the other zone region only', () => {
    expect(recordsOf(change(2, 'CH')).map(brief)).toEqual(['eu-central sent']);
  });

  it('a US row (default: all): sent plain to every other region', () => {
    expect(recordsOf(change(3, 'US')).map(brief)).toEqual(['eu-central sent', 'us-east sent']);
  });

  it('a DE row written in us-east: sent to the zone; no masked copy for its own origin', () => {
    const c = { ...change(1, 'DE'), origin: 'us-east' };
    const { copies } = routeChange(
      LAYOUT,
      PEOPLE,
      { sourceRegion: 'us-east', db: 'app', table: 'people' },
      c,
      TYPES,
    );
    const records = auditRecordsForChange({ ...CONTEXT, sourceRegion: 'us-east' }, c, { copies });
    expect(records.map((r) => `${r.source}->${brief(r)}`)).toEqual([
      'us-east->eu-west sent',
      'us-east->eu-central sent',
    ]);
  });

  it('a row that moved out of a region: a notice record for each region told to evict', () => {
    expect(recordsOf(change(2, 'CH', 'u'), ['us-east']).map(brief)).toEqual([
      'eu-central sent',
      'us-east notice',
    ]);
  });

  it('a delete is audited on the deleted row residency, like its routing', () => {
    const records = recordsOf(change(1, 'DE', 'd'));
    expect(records.map((r) => `${brief(r)} ${r.op}`)).toEqual([
      'eu-central sent d',
      'us-east sent_masked d',
    ]);
  });

  it('a row no region may hold: one withheld record, target *', () => {
    const vault: GovernancePolicy = {
      name: 'vault-nowhere',
      tables: [{ schema: 'app', table: 'vault' }],
      residency: { column: undefined, rules: [], default: { kind: 'none' } },
      masking: new Map(),
    };
    const c = { ...change(7, 'DE'), table: 'vault', pk: { id: 7 } };
    const { copies } = routeChange(
      LAYOUT,
      vault,
      { sourceRegion: 'eu-west', db: 'app', table: 'vault' },
      c,
      TYPES,
    );
    expect(copies).toEqual([]);
    const records = auditRecordsForChange({ ...CONTEXT, policy: vault }, c, { copies });
    expect(records).toEqual([
      expect.objectContaining({
        target: '*',
        decision: 'withheld',
        table: 'vault',
        policy: 'vault-nowhere',
        policyVersion: policyVersion(vault, ZONES),
        keyHash: `sha256:${createHash('sha256').update('1:7').digest('hex')}`,
      }),
    ]);
  });

  it('a change capture could not route: one refused record, target *', () => {
    const c: AuditedChange = change(4, 'DE');
    expect(refusedAuditRecord(CONTEXT, c)).toEqual(
      expect.objectContaining({ target: '*', decision: 'refused', op: 'c', gtid: '0-1-4' }),
    );
  });

  it('never carries a value of the row, nor its key', () => {
    const c = change(1, 'DE');
    const text = [...recordsOf(c, ['us-east']), refusedAuditRecord(CONTEXT, c)]
      .map(
        (r) => `${auditMessageKey(r)} ${encodeAuditRecord(r).toString()} ${formatAuditRecord(r)}`,
      )
      .join('\n');
    for (const value of Object.values(ROW)) expect(text).not.toContain(value);
    expect(text).not.toContain('"id"');
    expect(text).not.toContain(KEY);
  });
});

describe('changeKeyHash', () => {
  it('is the key hash of the key in key order, with the key columns types', () => {
    const pk = { a: 7, b: 'ab' };
    const types = { a: 'int(11)', b: 'varchar(10)' };
    expect(changeKeyHash(PEOPLE, pk, types)).toBe(
      keyHash(
        PEOPLE,
        [columnTypeInfo('a', 'int(11)'), columnTypeInfo('b', 'varchar(10)')],
        [7, 'ab'],
      ),
    );
    // Canonical text: an integer written as text hashes like the integer.
    expect(changeKeyHash(PEOPLE, { id: '1' }, TYPES)).toBe(HASH_1);
  });

  it('hashes a value its type refuses as its text instead of failing', () => {
    expect(changeKeyHash(PEOPLE, { id: 'x' }, TYPES)).toBe(
      keyHash(PEOPLE, [columnTypeInfo('id', '')], ['x']),
    );
  });
});

describe('records on the wire', () => {
  it('round-trip through JSON, and other shapes are not taken for records', () => {
    const [first] = recordsOf(change(1, 'DE'));
    const record = first as AuditRecord;
    expect(decodeAuditRecord(encodeAuditRecord(record).toString())).toEqual(record);
    expect(decodeAuditRecord('not json')).toBeUndefined();
    expect(decodeAuditRecord('{"v":2}')).toBeUndefined();
    expect(decodeAuditRecord(JSON.stringify({ ...record, decision: 'lost' }))).toBeUndefined();
  });

  it('join into audit batches of whole records, in order, split under the size bound', () => {
    const records = [1, 2, 3].flatMap((id) => recordsOf(change(id, 'DE')));
    const encoded = records.map(encodeAuditRecord);
    const [one] = encodeAuditBatches(encoded, 1_000_000);
    expect(one?.records).toBe(6);
    const text = one?.value.toString() ?? '';
    // Each record byte for byte as a one-record message holds it.
    expect(text).toBe(
      `{"v":${AUDIT_BATCH_VERSION},"audit":[${encoded.map((b) => b.toString()).join(',')}]}`,
    );
    expect(JSON.parse(text)).toEqual({ v: 1, audit: records });
    expect(decodeAuditMessage(one?.value ?? null)).toEqual({ records });

    // A bound of two records' bytes: three messages of two; a bound under one record: one each.
    const size = Math.max(...encoded.map((b) => b.length + 1));
    const pairs = encodeAuditBatches(encoded, 2 * size);
    expect(pairs.map((m) => m.records)).toEqual([2, 2, 2]);
    expect(encodeAuditBatches(encoded, 1).map((m) => m.records)).toEqual([1, 1, 1, 1, 1, 1]);
    expect(
      pairs.flatMap((m) => decodeAuditMessage(m.value).records ?? []).map(auditRecordId),
    ).toEqual(records.map(auditRecordId));
    expect(encodeAuditBatches([], 100)).toEqual([]);
  });

  it('read from a batch or from a one-record message (the previous release and erase)', () => {
    const [record] = recordsOf(change(1, 'DE'));
    expect(decodeAuditMessage(encodeAuditRecord(record as AuditRecord))).toEqual({
      records: [record],
    });
    expect(decodeAuditMessage(encodeAuditRecord(record as AuditRecord).toString())).toEqual({
      records: [record],
    });
  });

  it('name what is wrong with a message that is neither, never a value, and never throw', () => {
    const [first, second] = recordsOf(change(1, 'DE'));
    const good = JSON.stringify(first);
    const batch = (...items: string[]) => `{"v":1,"audit":[${items.join(',')}]}`;
    const secret = 'a.person@example.de';
    const cases: [string, Buffer | string | null, string][] = [
      ['a tombstone', null, 'no value (a tombstone)'],
      ['nothing', '', 'not JSON (empty)'],
      ['text', `not json ${secret}`, 'not JSON (28 characters)'],
      ['a truncated batch', batch(good, good).slice(0, -10), 'not JSON'],
      ['binary', Buffer.from([0xff, 0xfe, 0x00, 0x7b]), 'not JSON'],
      ['a list', `[${good}]`, 'not a JSON object'],
      ['null', 'null', 'not a JSON object'],
      ['a number', '42', 'not a JSON object'],
      ['a string', `"${secret}"`, 'not a JSON object'],
      [
        'an object of another kind',
        `{"email":"${secret}"}`,
        'not an audit record: no record version (v)',
      ],
      [
        'a newer record',
        JSON.stringify({ ...first, v: 2 }),
        'record version 2, this version reads 1',
      ],
      [
        'a record with an unknown decision',
        JSON.stringify({ ...first, decision: secret }),
        'not an audit record: decision is not one of sent, sent_masked, notice, withheld, refused, erased',
      ],
      [
        'a record without a version',
        JSON.stringify({ ...first, version: secret }),
        'not an audit record: version is not {hlc, origin}',
      ],
      ['a newer batch', `{"v":2,"audit":[${good}]}`, 'audit batch version 2, this version reads 1'],
      ['a batch without a version', `{"audit":[${good}]}`, 'audit batch without a version (v)'],
      ['a batch whose audit is an object', `{"v":1,"audit":${good}}`, '"audit" is not a list'],
      ['an empty batch', batch(), 'audit batch without records'],
      ['a batch with a number', batch(good, '7'), 'audit batch record 2 of 2: not a JSON object'],
      [
        'a batch with a bad record',
        batch(good, JSON.stringify({ ...second, keyHash: 12, note: secret }), good),
        'audit batch record 2 of 3: keyHash is not a string',
      ],
      [
        'a batch holding a batch',
        batch(good, batch(good)),
        'audit batch record 2 of 2: time is not a string',
      ],
      ['deep nesting', `${'['.repeat(100_000)}${']'.repeat(100_000)}`, 'not a JSON object'],
    ];
    for (const [what, value, problem] of cases) {
      const decoded = decodeAuditMessage(value);
      expect({ what, records: decoded.records }).toEqual({ what, records: undefined });
      // `what` names the case in a failure.
      expect(`${what}: ${decoded.problem}`).toContain(`${what}: `);
      expect(`${what}: ${decoded.problem}`).toContain(problem);
      expect(decoded.problem).not.toContain(secret);
    }
  });

  it('are de-duplicated by GTID, table, key hash, target, decision and version, not time', () => {
    const first = recordsOf(change(1, 'DE'));
    const replayed = auditRecordsForChange(
      { ...CONTEXT, time: new Date(TIME.getTime() + 60_000) },
      change(1, 'DE'),
      {
        copies: routeChange(
          LAYOUT,
          PEOPLE,
          { sourceRegion: 'eu-west', db: 'app', table: 'people' },
          change(1, 'DE'),
          TYPES,
        ).copies,
      },
    );
    expect(auditRecordId(first[0] as AuditRecord)).toBe(auditRecordId(replayed[0] as AuditRecord));
    expect(dedupeAuditRecords([...first, ...replayed])).toEqual(first);
    const other = { ...(first[0] as AuditRecord), table: 'other' };
    expect(dedupeAuditRecords([...first, other])).toHaveLength(3);
  });

  it('are printed one per line, without values', () => {
    const [record] = recordsOf(change(1, 'DE'));
    expect(formatAuditRecord(record as AuditRecord)).toBe(
      `2026-12-07T08:30:00.123Z  eu-west -> eu-central  sent  app.people  op c  key ${HASH_1}  version eu-west@1796622650188527  gtid 0-1-1  policy people-eu@${VERSION}`,
    );
  });

  it('live in the origin region topic under the deployment prefix', () => {
    expect(auditTopic('cdc', 'eu-west')).toBe('cdc._audit.eu-west');
  });
});
