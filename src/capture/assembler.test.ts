import { TransactionAssembler, type CaptureOutput } from './assembler.js';

function assembler(): TransactionAssembler {
  return new TransactionAssembler({
    region: 'us-east',
    internalSchema: '_cdc',
    isReplicated: () => true,
  });
}

function statement(sql: string): CaptureOutput[] {
  return assembler().push({
    kind: 'ddl',
    schema: 'app',
    statement: sql,
    gtid: '1-1-7',
    position: '1-1-7',
    timestampMs: 0,
  });
}

describe('TransactionAssembler: statements in the binlog', () => {
  it.each([
    'INSERT INTO app.t VALUES (2, 2)',
    'update app.t set v = 10 where id = 1',
    '/* app */ DELETE FROM t WHERE id = 3',
    'REPLACE INTO t VALUES (1, 1)',
    "LOAD DATA INFILE '/tmp/x' INTO TABLE t",
  ])('warns that statement-based DML cannot be captured: %s', (sql) => {
    const out = statement(sql);
    expect(out[0]).toMatchObject({ kind: 'warning', reason: 'statement_based_dml' });
    expect(out[1]).toEqual({ kind: 'commit', position: '1-1-7', gtid: '1-1-7' });
  });

  it.each(['ALTER TABLE t ADD COLUMN c INT', 'CREATE TABLE updates (id INT PRIMARY KEY)'])(
    'reports DDL as DDL: %s',
    (sql) => {
      expect(statement(sql)[0]).toMatchObject({ kind: 'ddl', statement: sql });
    },
  );
});

describe('TransactionAssembler: rows of a table without version columns', () => {
  it('publishes them with a fresh local version at the commit time, strictly increasing', () => {
    const a = assembler();
    a.push({ kind: 'begin', gtid: '1-1-8' });
    const out = a.push({
      kind: 'rows',
      op: 'insert',
      schema: 'app',
      table: 'fresh',
      primaryKey: ['id'],
      rows: [{ id: 1 }, { id: 2 }],
      timestampMs: 1_700_000_000_000,
    });
    const events = out.map((o) => (o.kind === 'change' ? o.event : undefined));
    expect(events[0]).toMatchObject({
      op: 'c',
      origin: 'us-east',
      hlc: 1_700_000_000_000_000,
      vv: { 'us-east': 1_700_000_000_000_000 },
      after: { id: 1 },
    });
    expect(events[1]?.hlc).toBe(1_700_000_000_000_001);
  });

  it('gives them a version above what was published for the table before (a commit second is coarser)', () => {
    const a = assembler();
    a.push({ kind: 'begin', gtid: '1-1-9' });
    const versioned = a.push({
      kind: 'rows',
      op: 'insert',
      schema: 'app',
      table: 't',
      primaryKey: ['id'],
      rows: [{ id: 1, _cdc_ts: '2023-11-14 22:13:20.500000', _cdc_ver: null }],
      timestampMs: 1_700_000_000_000,
    });
    a.push({ kind: 'commit', gtid: '1-1-9', position: '1-1-9', timestampMs: 1_700_000_000_000 });
    a.push({ kind: 'begin', gtid: '1-1-10' });
    const unversioned = a.push({
      kind: 'rows',
      op: 'update',
      schema: 'app',
      table: 't',
      primaryKey: ['id'],
      rows: [{ before: { id: 1 }, after: { id: 1, v: 2 } }],
      timestampMs: 1_700_000_000_000,
    });
    const hlc = (out: CaptureOutput[]): number =>
      out[0]?.kind === 'change' ? out[0].event.hlc : Number.NaN;
    expect(hlc(versioned)).toBe(1_700_000_000_500_000);
    expect(hlc(unversioned)).toBe(1_700_000_000_500_001);
  });
});

describe('TransactionAssembler: column types (schema.autoAddColumns)', () => {
  const columnTypes = {
    id: 'int(11)',
    tier: "enum('a','b''c')",
    _cdc_ts: 'timestamp(6)',
    _cdc_ver: 'longtext',
  };

  it("sends the source's column types with inserts and updates, never the version columns", () => {
    const a = assembler();
    a.push({ kind: 'begin', gtid: '1-1-11' });
    const row = { id: 1, tier: 'a', _cdc_ts: '2023-11-14 22:13:20.500000', _cdc_ver: null };
    const inserted = a.push({
      kind: 'rows',
      op: 'insert',
      schema: 'app',
      table: 't',
      primaryKey: ['id'],
      rows: [row],
      timestampMs: 1_700_000_000_000,
      columnTypes,
    });
    const updated = a.push({
      kind: 'rows',
      op: 'update',
      schema: 'app',
      table: 't',
      primaryKey: ['id'],
      rows: [{ before: row, after: { ...row, tier: 'b' } }],
      timestampMs: 1_700_000_000_000,
      columnTypes,
    });
    for (const out of [inserted, updated]) {
      const event = out[0]?.kind === 'change' ? out[0].event : undefined;
      expect(event?.types).toEqual({ id: 'int(11)', tier: "enum('a','b''c')" });
    }
  });

  it('sends them with deletes too (masks and eviction notices of governed tables need them)', () => {
    const a = assembler();
    a.push({ kind: 'begin', gtid: '1-1-12' });
    const row = { id: 2, tier: 'b', _cdc_ts: '2023-11-14 22:13:20.500000', _cdc_ver: null };
    a.push({
      kind: 'rows',
      op: 'delete',
      schema: 'app',
      table: 't',
      primaryKey: ['id'],
      rows: [row],
      timestampMs: 1_700_000_000_000,
      columnTypes,
    });
    const out = a.push({
      kind: 'commit',
      gtid: '1-1-12',
      position: '1-1-12',
      timestampMs: 1_700_000_000_000,
    });
    const deleted = out.find((o) => o.kind === 'change');
    expect(deleted?.kind === 'change' ? deleted.event.op : undefined).toBe('d');
    expect(deleted?.kind === 'change' ? deleted.event.types : undefined).toEqual({
      id: 'int(11)',
      tier: "enum('a','b''c')",
    });
  });

  it("leaves a governed table's key hash out of images and types (both servers binlog it)", () => {
    const a = assembler();
    a.push({ kind: 'begin', gtid: '1-1-13' });
    const hash = Buffer.alloc(32, 7);
    const row = { id: 1, tier: 'a', _cdc_ts: '2023-11-14 22:13:20.500000', _cdc_ver: null };
    const withHash = { ...row, _cdc_key_hash: hash };
    const types = { ...columnTypes, _cdc_key_hash: 'binary(32)' };
    const push = (op: 'insert' | 'update' | 'delete', rows: unknown[]): CaptureOutput[] =>
      a.push({
        kind: 'rows',
        op,
        schema: 'app',
        table: 't',
        primaryKey: ['id'],
        rows: rows as never,
        timestampMs: 1_700_000_000_000,
        columnTypes: types,
      });
    const inserted = push('insert', [withHash]);
    const updated = push('update', [{ before: withHash, after: { ...withHash, tier: 'b' } }]);
    for (const out of [inserted, updated]) {
      const event = out[0]?.kind === 'change' ? out[0].event : undefined;
      expect(event?.types).toEqual({ id: 'int(11)', tier: "enum('a','b''c')" });
      expect(Object.keys(event?.after ?? {})).toEqual(['id', 'tier']);
      expect(Object.keys(event?.before ?? { id: 1, tier: 'a' })).toEqual(['id', 'tier']);
    }
  });

  it('sends no types when the reader was not asked for them', () => {
    const a = assembler();
    a.push({ kind: 'begin', gtid: '1-1-12' });
    const out = a.push({
      kind: 'rows',
      op: 'insert',
      schema: 'app',
      table: 't',
      primaryKey: ['id'],
      rows: [{ id: 1 }],
      timestampMs: 1_700_000_000_000,
    });
    const event = out[0]?.kind === 'change' ? out[0].event : undefined;
    expect(event).toBeDefined();
    expect(event && 'types' in event).toBe(false);
  });
});
