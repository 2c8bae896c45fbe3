import type { ColumnInfo, TableInfo } from '../mysql/introspect.js';
import type { JsonScalar } from '../bus/envelope.js';
import { imageTooWide } from './schema-skew.js';

const column = (name: string, dataType: string, columnType: string): ColumnInfo => ({
  name,
  dataType,
  columnType,
  nullable: true,
  invisible: false,
});

const TABLE: TableInfo = {
  schema: 'app',
  table: 't',
  primaryKey: ['id'],
  columns: [
    column('id', 'int', 'int(11)'),
    column('code', 'char', 'char(2)'),
    column('name', 'varchar', 'varchar(4)'),
    column('amount', 'decimal', 'decimal(5,2)'),
    column('note', 'text', 'text'),
  ],
};

/** Why `value` of column `name` does not fit TABLE (the hold's `what`), or undefined. */
const tooWide = (name: string, value: JsonScalar): string | undefined =>
  imageTooWide(TABLE, { id: 1, [name]: value })?.what;

describe('imageTooWide, one value', () => {
  it('counts characters, not UTF-16 units: four emoji fit a varchar(4)', () => {
    expect(tooWide('name', '😀😀😀😀')).toBeUndefined();
    expect(tooWide('name', 'abcd')).toBeUndefined();
    expect(tooWide('name', '😀😀😀😀😀')).toBe('column name varchar(4) cannot hold 5 characters');
    expect(tooWide('name', 'abcde')).toBe('column name varchar(4) cannot hold 5 characters');
  });

  it('checks DECIMAL integer digits and fraction digits, ignoring zeros that change nothing', () => {
    expect(tooWide('amount', '999.99')).toBeUndefined();
    expect(tooWide('amount', '00999.9900')).toBeUndefined();
    expect(tooWide('amount', 12.5)).toBeUndefined();
    expect(tooWide('amount', '1000.00')).toBe('column amount decimal(5,2) cannot hold 1000.00');
    expect(tooWide('amount', '1.005')).toBe('column amount decimal(5,2) cannot hold 1.005');
  });

  it('leaves NULL, other types and what only MySQL can tell alone', () => {
    expect(tooWide('name', null)).toBeUndefined();
    expect(tooWide('note', 'x'.repeat(70_000))).toBeUndefined();
    expect(tooWide('amount', 'not a number')).toBeUndefined();
  });
});

describe('imageTooWide', () => {
  it('names the first value a local column cannot hold', () => {
    expect(imageTooWide(TABLE, { id: 1, code: 'DE', name: 'ab', amount: '1.50' })).toBeUndefined();
    const skew = imageTooWide(TABLE, { id: 1, code: 'DEU', name: 'ab' });
    expect(skew?.reason).toBe('type_too_narrow');
    expect(skew?.message).toContain('column code char(2) cannot hold 3 characters');
  });

  it('ignores columns the table does not have (those are checked elsewhere) and reads a table once', () => {
    expect(imageTooWide(TABLE, { id: 1, elsewhere: 'x'.repeat(100) })).toBeUndefined();
    // The same description again: the limits read the first time still apply.
    expect(imageTooWide(TABLE, { id: 2, name: 'abcdef' })?.message).toContain(
      'cannot hold 6 characters',
    );
    const unlimited: TableInfo = { ...TABLE, columns: [column('id', 'int', 'int(11)')] };
    expect(imageTooWide(unlimited, { id: 1, name: 'abcdef' })).toBeUndefined();
  });
});
