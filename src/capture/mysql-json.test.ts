import { formatMysqlDouble, mysqlJsonText, quoteJsonString } from './mysql-json.js';

describe('MySQL binary JSON as MySQL prints it', () => {
  it.each([
    [1, '1.0'],
    [-0, '-0.0'],
    [0, '0.0'],
    [100, '100.0'],
    [0.1, '0.1'],
    [1e-7, '0.0000001'],
    [1e-15, '0.000000000000001'],
    [1.5e-16, '1.5e-16'],
    [1e14, '100000000000000.0'],
    [1e15, '1e15'],
    [1234567890123456.8, '1234567890123456.8'],
    [1.2345678901234568e16, '1.2345678901234568e16'],
    [1e300, '1e300'],
    [5e-324, '5e-324'],
    [1.7976931348623157e308, '1.7976931348623157e308'],
  ])('prints the double %p as %s (what MySQL 8 returns)', (value, text) => {
    expect(formatMysqlDouble(value)).toBe(text);
  });

  it('escapes strings as MySQL does', () => {
    expect(quoteJsonString('a\u0001"\\/\n\t\u001fé')).toBe('"a\\u0001\\"\\\\/\\n\\t\\u001fé"');
  });

  it('keeps the stored key order, 64-bit integers and literals', () => {
    // {"2": 1, "a": [true, 18446744073709551615]} in MySQL's small format.
    const array = Buffer.from([
      ...[0x02, 0x00, 0x0e, 0x00], // 2 elements, 14 bytes
      ...[0x04, 0x01, 0x00], // literal true, inlined
      ...[0x0a, 0x0a, 0x00], // uint64 at offset 10
      ...[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    ]);
    const object = Buffer.from([
      0x00, // small object
      ...[0x02, 0x00, 0x00, 0x00], // 2 members, size (unused here)
      ...[0x12, 0x00, 0x01, 0x00], // key "2" at 18
      ...[0x13, 0x00, 0x01, 0x00], // key "a" at 19
      ...[0x05, 0x01, 0x00], // int16 1, inlined
      ...[0x02, 0x14, 0x00], // small array at 20
      0x32,
      0x61,
      ...array,
    ]);
    expect(mysqlJsonText(object)).toBe('{"2": 1, "a": [true, 18446744073709551615]}');
    expect(mysqlJsonText(Buffer.alloc(0))).toBe('null');
  });
});
