import fc from 'fast-check';
import {
  decodeApplyEvent,
  decodeApplyMessage,
  RejectedEvent,
  type ApplyEvent,
} from '../apply/apply-event.js';
import {
  decodeEnvelope,
  encodeEvent,
  rowToEvent,
  type EnvelopeV2,
  encodeRows,
  packRow,
  singleRowMessage,
  type ChangeEvent,
} from './envelope.js';

const where = { sourceRegion: 'a', db: 'app', table: 't' };

function change(parts: Partial<ChangeEvent> & Pick<ChangeEvent, 'op' | 'pk'>): ChangeEvent {
  const hlc = parts.hlc ?? 1_700_000_000_000_000;
  return {
    v: 1,
    region: 'a',
    db: 'app',
    table: 't',
    before: null,
    after: null,
    hlc,
    origin: 'a',
    vv: { a: hlc },
    gtid: '0-1-7',
    commitTs: 1_700_000_000_000,
    ...parts,
  };
}

const insert = change({ op: 'c', pk: { id: 1 }, after: { id: 1, name: 'x', n: '12.50' } });
const update = change({
  op: 'u',
  pk: { id: 1 },
  before: { id: 1, name: 'x', n: '12.50' },
  after: { id: 1, name: 'y', n: null },
  hlc: 1_700_000_000_000_001,
  vv: { a: 1_700_000_000_000_001, b: 5 },
});
const moved = change({
  op: 'u',
  pk: { id: 2 },
  before: { id: 1, name: 'y', n: null },
  after: { id: 2, name: 'y', n: null },
  hlc: 1_700_000_000_000_002,
  vv: { a: 1_700_000_000_000_002 },
});
const removed = change({
  op: 'd',
  pk: { id: 2 },
  before: { id: 2, name: 'y', n: null },
  hlc: 1_700_000_000_000_003,
  vv: { a: 1_700_000_000_000_003 },
});

describe('envelope v2', () => {
  it('carries several changes in one message and gives them back as v1 events', () => {
    const messages = encodeRows([insert, update, moved, removed].map(packRow), 1 << 20);
    expect(messages).toHaveLength(1);
    expect(messages[0]?.rows).toBe(4);
    const events = decodeEnvelope((messages[0] as { value: Buffer }).value);
    expect(events.map((e) => [e.op, e.pk, e.after, e.hlc, e.vv, e.gtid])).toEqual([
      ['c', { id: 1 }, insert.after, insert.hlc, insert.vv, '0-1-7'],
      ['u', { id: 1 }, update.after, update.hlc, update.vv, '0-1-7'],
      ['u', { id: 2 }, moved.after, moved.hlc, moved.vv, '0-1-7'],
      ['d', { id: 2 }, null, removed.hlc, removed.vv, '0-1-7'],
    ]);
    // No before image of an update but the old key of a key change; a delete carries its row.
    expect(events.map((e) => e.before)).toEqual([null, null, { id: 1 }, removed.before]);
  });

  it('is smaller than the same changes in v1', () => {
    const rows = [insert, update, moved, removed];
    const v1 = rows.reduce((sum, e) => sum + encodeEvent(e).length, 0);
    const v2 = encodeRows(rows.map(packRow), 1 << 20)[0]?.value.length ?? Infinity;
    expect(v2).toBeLessThan(v1 / 2);
  });

  it('starts a new message when the columns change or the size bound is reached, keeping order', () => {
    const widened = change({
      op: 'c',
      pk: { id: 3 },
      after: { id: 3, name: 'z', n: '1', extra: 1 },
    });
    const shapes = encodeRows([insert, removed, widened, update].map(packRow), 1 << 20);
    expect(shapes.map((m) => m.rows)).toEqual([2, 1, 1]);
    const keyOnly = change({
      op: 'd',
      pk: { id: 9 },
      hlc: 1_700_000_000_000_009,
      vv: { a: 1_700_000_000_000_009 },
    });
    expect(encodeRows([insert, keyOnly].map(packRow), 1 << 20).map((m) => m.rows)).toEqual([1, 1]);
    const ops = shapes.flatMap((m) =>
      decodeEnvelope(m.value).map((e) => `${e.op}${String(e.pk.id)}`),
    );
    expect(ops).toEqual(['c1', 'd2', 'c3', 'u1']);
    const rows = Array.from({ length: 50 }, (_, i) =>
      packRow(change({ op: 'c', pk: { id: i }, after: { id: i, name: 'n'.repeat(100), n: null } })),
    );
    const bounded = encodeRows(rows, 1000);
    expect(bounded.length).toBeGreaterThan(5);
    expect(bounded.reduce((sum, m) => sum + m.rows, 0)).toBe(50);
    for (const m of bounded) expect(m.value.length).toBeLessThan(1300);
  });

  it('decodes into the applier events of v1, a key change into a delete and an upsert', () => {
    const message = encodeRows([insert, moved, removed].map(packRow), 1 << 20)[0]?.value as Buffer;
    const v2 = decodeApplyEvent(message, where);
    const v1 = [insert, moved, removed].flatMap((e) => decodeApplyEvent(encodeEvent(e), where));
    const comparable = (events: typeof v1) =>
      events.map((e) => ({ op: e.op, pk: e.pk, after: e.after, version: e.version }));
    expect(comparable(v2)).toEqual(comparable(v1));
    expect(v2.map((e) => `${e.op}${String(e.pk.id)}`)).toEqual([
      'upsert1',
      'delete1',
      'upsert2',
      'delete2',
    ]);
  });

  it('rejects one bad row of a message alone, and parks it as a message of its own', () => {
    const message = encodeRows([insert, update].map(packRow), 1 << 20)[0]?.value as Buffer;
    const parsed = JSON.parse(message.toString()) as { rows: unknown[][] };
    (parsed.rows[0] as unknown[])[1] = -5; // an hlc no clock gives
    const tampered = Buffer.from(JSON.stringify(parsed));
    const rows = decodeApplyMessage(tampered, where);
    expect('error' in (rows[0] as object)).toBe(true);
    expect((rows[0] as { error: RejectedEvent }).error.reason).toBe('version_invalid');
    expect('events' in (rows[1] as object)).toBe(true);
    const parked = singleRowMessage(tampered, 0);
    expect(decodeApplyMessage(parked, where)).toHaveLength(1);
    expect(() => decodeApplyEvent(parked, where)).toThrow(RejectedEvent);
  });

  it('refuses a v2 header that claims another source or table as a whole', () => {
    const message = JSON.parse(
      encodeRows([insert].map(packRow), 1 << 20)[0]?.value.toString() as string,
    ) as Record<string, unknown>;
    const forged = (patch: Record<string, unknown>): Buffer =>
      Buffer.from(JSON.stringify({ ...message, ...patch }));
    expect(() => decodeApplyMessage(forged({ region: 'b' }), where)).toThrow(/claims region b/);
    expect(() => decodeApplyMessage(forged({ table: 'u' }), where)).toThrow(/app\.u/);
    expect(() => decodeApplyMessage(forged({ key: [] }), where)).toThrow(/key/);
    expect(() => decodeApplyMessage(forged({ rows: {} }), where)).toThrow(/rows/);
    expect(() => decodeApplyMessage(forged({ v: 3 }), where)).toThrow(/version 3/);
  });

  it('decodes every v2 row as the same change sent as a v1 event decodes, or rejects it for the same reason (property)', () => {
    const scalar = fc.oneof(
      fc.string({ maxLength: 3 }),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
    );
    const value = fc.oneof(
      { weight: 8, arbitrary: scalar },
      fc.constant({ x: 1 }),
      fc.constant([1]),
    );
    const hlc = fc.constantFrom(1_700_000_000_000_000, 1_700_000_000_000_001, -5);
    const row = fc
      .tuple(
        fc.constantFrom('c', 'u', 'd', 'r', 'x'),
        hlc,
        fc.constantFrom('a', 'b'),
        // Mostly well-formed versions (vv[origin] = hlc), so that most rows reach the events.
        fc.constantFrom('own', 'own', 'seen', 'nope'),
        fc.constantFrom('0-1-7', null),
        fc.oneof(fc.integer(), fc.constant('late')),
        fc.array(value, { minLength: 3, maxLength: 3 }),
        fc.option(fc.array(value, { minLength: 2, maxLength: 2 }), { nil: undefined }),
      )
      .map(([op, at, origin, vv, gtid, commitTs, values, oldKey]) => {
        const vector =
          vv === 'own'
            ? { [origin]: at }
            : vv === 'seen'
              ? { a: 1_700_000_000_000_000, b: 1_700_000_000_000_000, [origin]: at }
              : vv;
        const fields: unknown[] = [op, at, origin, vector, gtid, commitTs, values];
        return oldKey === undefined ? fields : [...fields, oldKey];
      });
    const header = fc.record({
      key: fc.constantFrom(['id'], ['missing'], ['id', 'name']),
      types: fc.constantFrom(undefined, { id: 'int' }, { id: 5 }),
    });
    fc.assert(
      fc.property(header, fc.array(row, { maxLength: 4 }), (head, generated) => {
        // An old key as long as the key (a v1 event has no such list to get wrong).
        const rows = generated.map((r) =>
          r.length === 8 ? [...r.slice(0, 7), (r[7] as unknown[]).slice(0, head.key.length)] : r,
        );
        const message = {
          v: 2 as const,
          region: 'a',
          db: 'app',
          table: 't',
          key: head.key,
          columns: ['id', 'name', 'n'],
          ...(head.types === undefined ? {} : { types: head.types }),
        };
        const decoded = decodeApplyMessage(
          Buffer.from(JSON.stringify({ ...message, rows })),
          where,
        );
        rows.forEach((r, i) => {
          let v1: ApplyEvent[] | RejectedEvent;
          try {
            const event = rowToEvent(message as unknown as Omit<EnvelopeV2, 'rows'>, r);
            v1 = decodeApplyEvent(Buffer.from(JSON.stringify(event)), where);
          } catch (err) {
            v1 = err as RejectedEvent;
          }
          const v2 = decoded[i];
          if (v1 instanceof RejectedEvent) {
            expect(v2 !== undefined && 'error' in v2 ? v2.error.reason : v2).toBe(v1.reason);
            expect(v2 !== undefined && 'error' in v2 ? v2.error.message : v2).toBe(v1.message);
          } else {
            expect(v2).toEqual({ row: i, events: v1 });
          }
        });
      }),
      { numRuns: 3000 },
    );
  });

  it('packs each row as the JSON of the whole row array, whichever rows came before (property)', () => {
    // The row's JSON as it was written before packRow reused the text of the fields before the values.
    const reference = (event: ChangeEvent): string => {
      const key = Object.keys(event.pk);
      const image = event.op === 'd' ? (event.before ?? event.pk) : (event.after ?? event.pk);
      const row: unknown[] = [
        event.op,
        event.hlc,
        event.origin,
        event.vv,
        event.gtid,
        event.commitTs,
        Object.keys(image).map((c) => image[c] ?? null),
      ];
      const before = event.before;
      if (event.op === 'u' && before !== null && key.some((c) => before[c] !== event.pk[c]))
        row.push(key.map((c) => before[c] ?? null));
      return JSON.stringify(row);
    };
    const scalar = fc.oneof(
      fc.string({ unit: 'binary' }),
      fc.string({ unit: 'grapheme' }),
      fc.integer(),
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.bigInt().map(String),
      fc.uint8Array({ maxLength: 12 }).map((b) => Buffer.from(b).toString('base64')),
      fc.constantFrom('0000-00-00 00:00:00', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.9'),
      fc.boolean(),
      fc.constant(null),
    );
    const image = fc.record({ id: scalar, name: scalar, n: scalar }, { requiredKeys: ['id'] });
    // A few shared version vectors, so runs of rows reuse one (as a statement's rows do) and then change.
    const vvs: Record<string, number>[] = [
      { a: 1_700_000_000_000_000 },
      { a: 1_700_000_000_000_000, 'b-2': 5 },
      {},
    ];
    const event = fc
      .record({
        op: fc.constantFrom<ChangeEvent['op']>('c', 'u', 'd', 'r'),
        hlc: fc.constantFrom(1_700_000_000_000_000, 1_700_000_000_000_001, 0, -1, 2 ** 53 + 2),
        origin: fc.constantFrom('a', 'b', 'é 😀', '"'),
        vv: fc.constantFrom(...vvs),
        gtid: fc.constantFrom('0-1-7', '3E11FA47-71CA-11E1-9E33-C80AA9429562:23', null),
        commitTs: fc.constantFrom(1_700_000_000_000, 0, 1.5),
        before: fc.option(image, { nil: null }),
        after: fc.option(image, { nil: null }),
        pkId: scalar,
      })
      .map(({ pkId, ...parts }) => change({ ...parts, pk: { id: pkId } }));
    fc.assert(
      fc.property(fc.array(event, { maxLength: 12 }), (events) => {
        for (const e of events) expect(packRow(e).bytes.toString('utf8')).toBe(reference(e));
      }),
      { numRuns: 3000 },
    );
  });

  it('never fails on untrusted input with anything but a RejectedEvent (fuzz)', () => {
    const scalar = fc.oneof(
      fc.string(),
      fc.integer(),
      fc.double(),
      fc.boolean(),
      fc.constant(null),
    );
    const row = fc.oneof(
      fc.tuple(
        fc.constantFrom('c', 'u', 'd', 'r', 'x'),
        fc.oneof(fc.integer(), fc.constant(1_700_000_000_000_000)),
        fc.constantFrom('a', 'b', ''),
        fc.oneof(fc.dictionary(fc.constantFrom('a', 'b'), fc.integer()), scalar),
        scalar,
        scalar,
        fc.array(scalar, { maxLength: 4 }),
      ),
      fc.anything(),
    );
    const message = fc.record(
      {
        v: fc.constantFrom(1, 2, 3),
        region: fc.constantFrom('a', 'b'),
        db: fc.constant('app'),
        table: fc.constant('t'),
        key: fc.oneof(fc.constant(['id']), fc.anything()),
        columns: fc.oneof(fc.constant(['id', 'name']), fc.anything()),
        rows: fc.oneof(fc.array(row, { maxLength: 5 }), fc.anything()),
        types: fc.oneof(fc.constant(undefined), fc.anything()),
      },
      { requiredKeys: ['v'] },
    );
    fc.assert(
      fc.property(fc.oneof(message, fc.anything()), (value) => {
        try {
          decodeApplyMessage(Buffer.from(JSON.stringify(value) ?? 'null'), where);
        } catch (err) {
          if (!(err instanceof RejectedEvent)) throw err;
        }
      }),
      { numRuns: 2000 },
    );
  });
});
