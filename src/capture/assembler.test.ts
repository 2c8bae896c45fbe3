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
      expect(statement(sql)[0]).toMatchObject({ kind: 'ddl', truncate: false });
    },
  );
});
