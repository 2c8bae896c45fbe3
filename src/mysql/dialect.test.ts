import { canonicalJsonText, dialectOf, isGeneratedColumnExtra } from './dialect.js';
import type { ServerInfo } from './introspect.js';

function server(flavor: 'mariadb' | 'mysql', version: string): ServerInfo {
  const [major, minor, patch] = version.split('.').map(Number) as [number, number, number];
  return { flavor, version, major, minor, patch };
}

describe('dialectOf', () => {
  it.each([
    ['mysql', '8.0.12', false],
    ['mysql', '8.0.22', false],
    ['mysql', '8.0.23', true],
    ['mysql', '8.4.0', true],
    ['mariadb', '10.3.2', false],
    ['mariadb', '10.3.3', true],
    ['mariadb', '10.11.9', true],
  ] as const)('%s %s has INVISIBLE columns: %s', (flavor, version, expected) => {
    expect(dialectOf(server(flavor, version)).invisibleColumns).toBe(expected);
  });

  it('replaces a trigger in one statement on MariaDB, by drop and create on MySQL', () => {
    const create = 'CREATE TRIGGER `a`.`t` BEFORE INSERT ON `a`.`x` FOR EACH ROW BEGIN END';
    const drop = 'DROP TRIGGER IF EXISTS `a`.`t`';
    expect(dialectOf(server('mariadb', '10.11.9')).replaceTrigger(create, drop)).toEqual([
      create.replace('CREATE TRIGGER', 'CREATE OR REPLACE TRIGGER'),
    ]);
    expect(dialectOf(server('mysql', '8.0.12')).replaceTrigger(create, drop)).toEqual([
      drop,
      create,
    ]);
  });
});

describe('isGeneratedColumnExtra', () => {
  it.each([
    ['VIRTUAL GENERATED', true],
    ['STORED GENERATED', true],
    ['PERSISTENT GENERATED', true],
    // MySQL 8 marks a column whose DEFAULT is an expression; it is an ordinary column.
    ['DEFAULT_GENERATED on update CURRENT_TIMESTAMP(6)', false],
    ['DEFAULT_GENERATED', false],
    ['auto_increment', false],
    ['', false],
  ])('%j → %s', (extra, expected) => {
    expect(isGeneratedColumnExtra(extra)).toBe(expected);
  });
});

describe('canonicalJsonText', () => {
  it('gives MySQL-normalised and as-written texts of one document the same text', () => {
    const written = '{"zeta": 1, "alpha": [1, 2.50, "a\\u00e9"], "dup": 1, "dup": 2}';
    const mysqlNormalised = '{"dup": 2, "zeta": 1, "alpha": [1, 2.5, "aé"]}';
    expect(canonicalJsonText(written)).toBe(canonicalJsonText(mysqlNormalised));
    expect(canonicalJsonText(written)).toBe('{"alpha":[1,2.5,"aé"],"dup":2,"zeta":1}');
  });

  it('keeps different documents different, and sorts nested keys', () => {
    expect(canonicalJsonText('{"a": {"y": 1, "x": 2}}')).toBe('{"a":{"x":2,"y":1}}');
    expect(canonicalJsonText('[1, 2]')).not.toBe(canonicalJsonText('[2, 1]'));
    expect(canonicalJsonText('"s"')).toBe('"s"');
    expect(canonicalJsonText('null')).toBe('null');
  });
});
