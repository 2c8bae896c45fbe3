import { encodeAuditBatches, encodeAuditRecord, type AuditRecord } from '../governance/audit.js';
import { recordsOfMessages } from './read.js';

const ROW = { schema: 'app', table: 'people', keyHash: 'hmac:aa' };

function record(keyHash: string, target: string, time = '2026-12-07T08:30:00.000Z'): AuditRecord {
  return {
    v: 1,
    time,
    source: 'eu-west',
    target,
    decision: 'sent',
    db: 'app',
    table: 'people',
    op: 'c',
    keyHash,
    version: { hlc: 1, origin: 'eu-west' },
    gtid: '0-1-1',
    policy: 'people-eu',
    policyVersion: '3f9c2a61b0de',
  };
}

const at = (offset: number, value: Buffer | null) => ({
  topic: 'cdc._audit.eu-west',
  partition: 2,
  offset: String(offset),
  value,
});

describe('recordsOfMessages', () => {
  it("reads the row's records from one-record messages and from batches alike, in order", () => {
    const mine = [record('hmac:aa', 'eu-central'), record('hmac:aa', 'us-east')];
    const batch = encodeAuditBatches(
      [mine[1] as AuditRecord, record('hmac:bb', 'us-east')].map(encodeAuditRecord),
      1_000_000,
    );
    expect(batch).toHaveLength(1);
    const result = recordsOfMessages(
      [
        // The previous release's one-record message, then a batch with another row's record.
        at(0, encodeAuditRecord(mine[0] as AuditRecord)),
        at(1, batch[0]?.value ?? null),
        at(2, encodeAuditRecord({ ...(mine[0] as AuditRecord), table: 'other' })),
      ],
      ROW,
    );
    expect(result).toEqual({ records: mine, unreadable: [] });
  });

  it('names each unreadable message by topic, partition and offset, and reads the others', () => {
    const good = record('hmac:aa', 'eu-central');
    const goodText = JSON.stringify(good);
    const result = recordsOfMessages(
      [
        at(7, Buffer.from(`{"v":1,"audit":[${goodText},{"v":1}]}`)),
        at(8, Buffer.from(`{"v":1,"audit":[${goodText}`)),
        at(9, null),
        at(10, encodeAuditRecord(good)),
      ],
      ROW,
    );
    // A batch with one bad record is left out whole, its good record too: named, not read in part.
    expect(result.records).toEqual([good]);
    expect(result.unreadable.map((u) => `${u.topic} ${u.partition} ${u.offset}`)).toEqual([
      'cdc._audit.eu-west 2 7',
      'cdc._audit.eu-west 2 8',
      'cdc._audit.eu-west 2 9',
    ]);
    const [bad, cut, tombstone] = result.unreadable.map((u) => u.problem);
    expect(bad).toBe('audit batch record 2 of 2: time is not a string');
    expect(cut).toMatch(/^not JSON/);
    expect(tombstone).toBe('no value (a tombstone)');
  });
});
