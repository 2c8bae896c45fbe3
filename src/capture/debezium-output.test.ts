import type { ChangeEvent } from '../bus/envelope.js';
import { parseTablePattern, type PipelineOptions } from '../config/compile.js';
import { DebeziumOutput } from './debezium-output.js';

const pipelines: PipelineOptions[] = [
  {
    name: 'app',
    tables: [parseTablePattern('app.*')],
    conflict: { strategy: 'lww' },
    output: {
      format: 'debezium',
      topicPrefix: 'dbz',
      schemas: false,
      tombstones: true,
      decimalHandling: 'precise',
    },
  },
  { name: 'plain', tables: [parseTablePattern('other.t')], conflict: { strategy: 'lww' } },
];

function change(over: Partial<ChangeEvent>): ChangeEvent {
  return {
    v: 1,
    op: 'c',
    region: 'us-east',
    db: 'app',
    table: 'items',
    pk: { id: 1 },
    before: null,
    after: { id: 1, price: '1.50' },
    hlc: 1,
    origin: 'us-east',
    vv: { 'us-east': 1 },
    gtid: '0-7-1',
    commitTs: 1_000,
    ...over,
  };
}

describe('DebeziumOutput', () => {
  it('is absent when no pipeline asks for it', () => {
    expect(DebeziumOutput.create([pipelines[1]!], 'mariadb', 1)).toBeUndefined();
  });

  it("covers only its pipelines' tables, never internal ones", () => {
    const output = DebeziumOutput.create(pipelines, 'mariadb', 1)!;
    expect(output.topicsOf('app', 'items')).toEqual(['dbz.app.items']);
    expect(output.topicsOf('other', 't')).toEqual([]);
    expect(output.topicsOf('app', '_cdc_tombstones')).toEqual([]);
    expect(output.messages(change({ db: 'other', table: 't' }), 0)).toEqual([]);
    expect(output.messages(change({ table: '_cdc_heartbeat' }), 0)).toEqual([]);
  });

  it('maps deletes with the types of their rows event, and tracks file, pos and row', () => {
    const output = DebeziumOutput.create(pipelines, 'mariadb', 1)!;
    output.transactionEnded({ file: 'bin.000002', offset: 400 });
    output.noteTypes('app', 'items', { id: 'int(11)', price: 'decimal(5,2)', _cdc_ts: 'x' });
    const first = output.messages(change({}), 5);
    // A delete built from the tombstone carries no types, and pk values as text.
    const deleted = output.messages(
      change({ op: 'd', pk: { id: '2' }, before: { id: 2, price: '-0.01' }, after: null }),
      5,
    );
    expect(first).toHaveLength(1);
    expect(deleted.map((m) => m.key)).toEqual(['{"id":2}', '{"id":2}']);
    expect(deleted[1]?.value).toBeNull();
    const value = JSON.parse(deleted[0]!.value!) as {
      before: { price: string };
      source: { file: string; pos: number; row: number; server_id: number };
    };
    expect(value.before.price).toBe(Buffer.from([0xff]).toString('base64'));
    expect(value.source).toMatchObject({ file: 'bin.000002', pos: 400, row: 1, server_id: 7 });
    output.transactionEnded(undefined);
    const next = JSON.parse(output.messages(change({}), 5)[0]!.value!) as {
      source: { file: string; pos: number; row: number };
    };
    expect(next.source).toMatchObject({ file: '', pos: 0, row: 0 });
  });
});
