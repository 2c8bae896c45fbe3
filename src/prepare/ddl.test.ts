import type { TableInfo } from '../mysql/introspect.js';
import { addKeyHashColumn, addKeyHashIndex, keyHashComment, keyHashSql } from './ddl.js';

const column = (name: string, dataType: string, columnType = dataType) => ({
  name,
  dataType,
  columnType,
  nullable: false,
  invisible: false,
});

const pairs: TableInfo = {
  schema: 'app',
  table: 'pairs',
  columns: [column('name', 'varchar', 'varchar(40)'), column('n', 'int'), column('note', 'text')],
  primaryKey: ['name', 'n'],
};

describe('the key-hash column', () => {
  it("hashes the key's canonical parts in key order, as the delete trigger does", () => {
    expect(keyHashSql(pairs)).toBe(
      'UNHEX(SHA2(JSON_ARRAY(CAST(`name` AS CHAR), CAST(`n` AS CHAR)), 256))',
    );
    expect(keyHashSql({ ...pairs, primaryKey: ['n', 'name'] })).toBe(
      'UNHEX(SHA2(JSON_ARRAY(CAST(`n` AS CHAR), CAST(`name` AS CHAR)), 256))',
    );
  });

  it('reads CHAR through RTRIM (MariaDB indexes nothing that depends on PAD_CHAR_TO_FULL_LENGTH) and binary as HEX', () => {
    const codes: TableInfo = {
      schema: 'app',
      table: 'codes',
      columns: [column('code', 'char', 'char(6)'), column('tag', 'varbinary', 'varbinary(8)')],
      primaryKey: ['code', 'tag'],
    };
    expect(keyHashSql(codes)).toBe(
      'UNHEX(SHA2(JSON_ARRAY(CAST(RTRIM(`code`) AS CHAR), HEX(`tag`)), 256))',
    );
  });

  it('is a virtual column, invisible where the server allows it, named by a digest of its expression', () => {
    const comment = keyHashComment(pairs);
    expect(comment).toMatch(/^cdc-replicator tombstone key hash [0-9a-f]{16}$/);
    expect(keyHashComment({ ...pairs, primaryKey: ['n', 'name'] })).not.toBe(comment);
    expect(addKeyHashColumn(pairs, true)).toBe(
      `ALTER TABLE \`app\`.\`pairs\` ADD COLUMN \`_cdc_key_hash\` BINARY(32) AS (${keyHashSql(pairs)}) VIRTUAL INVISIBLE COMMENT '${comment}'`,
    );
    expect(addKeyHashColumn(pairs, false)).not.toContain('INVISIBLE');
    expect(addKeyHashIndex(pairs)).toBe(
      'ALTER TABLE `app`.`pairs` ADD INDEX `_cdc_key_hash` (`_cdc_key_hash`)',
    );
  });
});
