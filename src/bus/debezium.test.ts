import { describe, expect, it } from '@jest/globals';
import type { ChangeEvent } from './envelope.js';
import {
  RawJsonNumber,
  columnMapping,
  debeziumMessages,
  decimalToBase64,
  serverIdOfGtid,
  stringifyDebezium,
  tableShape,
  twosComplement,
  type DebeziumSourceInfo,
} from './debezium.js';

const map = (
  type: string,
  value: string | number | boolean | null,
  mode: 'precise' | 'string' = 'precise',
) => columnMapping(type, mode).convert(value, 'c');

describe('Debezium value mapping', () => {
  it('maps integers to Connect ints as the MySQL connector does, exact beyond 2^53', () => {
    expect(columnMapping('tinyint(4)', 'precise').schema.type).toBe('int16');
    expect(columnMapping('smallint(5) unsigned', 'precise').schema.type).toBe('int32');
    expect(columnMapping('int(11)', 'precise').schema.type).toBe('int32');
    expect(columnMapping('int(10) unsigned', 'precise').schema.type).toBe('int64');
    expect(columnMapping('bigint(20)', 'precise').schema.type).toBe('int64');
    expect(map('int(11)', 42)).toBe(42);
    expect(map('bigint(20)', '9007199254740993')).toEqual(new RawJsonNumber('9007199254740993'));
    expect(map('bigint(20)', '-9223372036854775808')).toEqual(
      new RawJsonNumber('-9223372036854775808'),
    );
    // bigint.unsigned.handling.mode=long: wraps like Java's long.
    expect(map('bigint(20) unsigned', '18446744073709551615')).toBe(-1);
    expect(map('bigint(20) unsigned', '9223372036854775807')).toEqual(
      new RawJsonNumber('9223372036854775807'),
    );
  });

  it('maps DECIMAL as Connect Decimal (precise) or as a string', () => {
    const mapping = columnMapping('decimal(10,2)', 'precise');
    expect(mapping.schema).toEqual({
      type: 'bytes',
      name: 'org.apache.kafka.connect.data.Decimal',
      version: 1,
      parameters: { scale: '2', 'connect.decimal.precision': '10' },
    });
    // 12.34 → unscaled 1234 = 0x04D2.
    expect(map('decimal(10,2)', '12.34')).toBe(Buffer.from([0x04, 0xd2]).toString('base64'));
    // -0.01 → unscaled -1 = 0xFF.
    expect(map('decimal(10,2)', '-0.01')).toBe(Buffer.from([0xff]).toString('base64'));
    expect(decimalToBase64('128', 0)).toBe(Buffer.from([0x00, 0x80]).toString('base64'));
    expect(decimalToBase64('-128', 0)).toBe(Buffer.from([0x80]).toString('base64'));
    expect(decimalToBase64('0', 3)).toBe(Buffer.from([0]).toString('base64'));
    expect(decimalToBase64('1.5', 3)).toBe(Buffer.from([0x05, 0xdc]).toString('base64'));
    expect(map('decimal(65,30)', '-1.000000000000000000000000000001', 'string')).toBe(
      '-1.000000000000000000000000000001',
    );
    expect(columnMapping('decimal(65,30)', 'string').schema).toEqual({ type: 'string' });
  });

  it("encodes two's complement like Java's BigInteger.toByteArray", () => {
    expect([...twosComplement(0n)]).toEqual([0]);
    expect([...twosComplement(127n)]).toEqual([0x7f]);
    expect([...twosComplement(255n)]).toEqual([0x00, 0xff]);
    expect([...twosComplement(-1n)]).toEqual([0xff]);
    expect([...twosComplement(-129n)]).toEqual([0xff, 0x7f]);
    expect([...twosComplement(65536n)]).toEqual([0x01, 0x00, 0x00]);
  });

  it('maps temporal types as adaptive_time_microseconds does', () => {
    expect(map('date', '1970-01-01')).toBe(0);
    expect(map('date', '2024-02-29')).toBe(19782);
    expect(map('date', '1969-12-31')).toBe(-1);
    expect(map('date', '0000-00-00')).toBeNull();
    expect(columnMapping('datetime', 'precise').schema.name).toBe('io.debezium.time.Timestamp');
    expect(map('datetime', '1970-01-01 00:00:01')).toBe(1000);
    expect(map('datetime(3)', '1969-12-31 23:59:59.999')).toBe(-1);
    expect(columnMapping('datetime(6)', 'precise').schema.name).toBe(
      'io.debezium.time.MicroTimestamp',
    );
    expect(map('datetime(6)', '1970-01-01 00:00:00.000001')).toBe(1);
    expect(map('datetime(6)', '9999-12-31 23:59:59.999999')).toEqual(
      new RawJsonNumber('253402300799999999'),
    );
    expect(map('datetime(6)', '0000-00-00 00:00:00.000000')).toBeNull();
    expect(map('timestamp(6)', '2038-01-19 03:14:07.999999')).toBe('2038-01-19T03:14:07.999999Z');
    expect(map('timestamp', '2020-01-02 03:04:05')).toBe('2020-01-02T03:04:05Z');
    expect(map('timestamp(3)', '2020-01-02 03:04:05.1')).toBe('2020-01-02T03:04:05.100Z');
    expect(map('time(6)', '838:59:59.000000')).toBe(3_020_399_000_000);
    expect(map('time(6)', '-00:00:00.000001')).toBe(-1);
    expect(map('time', '01:00:00')).toBe(3_600_000_000);
    expect(map('year(4)', 2155)).toBe(2155);
    expect(() => map('date', 'yesterday')).toThrow(/column c/);
  });

  it('maps strings, JSON, ENUM/SET, binary, BIT and spatial values', () => {
    expect(map('varchar(20)', 'héllo')).toBe('héllo');
    expect(columnMapping('json', 'precise').schema.name).toBe('io.debezium.data.Json');
    expect(map('json', '{"a":1}')).toBe('{"a":1}');
    expect(columnMapping("enum('a','b''c')", 'precise').schema.parameters).toEqual({
      allowed: "a,b'c",
    });
    expect(columnMapping("set('x','y')", 'precise').schema.name).toBe('io.debezium.data.EnumSet');
    expect(map('varbinary(10)', 'AP8=')).toBe('AP8=');
    expect(columnMapping('longblob', 'precise').schema.type).toBe('bytes');
    expect(map('bit(1)', Buffer.from([1]).toString('base64'))).toBe(true);
    expect(map('bit(1)', Buffer.from([0]).toString('base64'))).toBe(false);
    // BIT(10) b'1010101010' = 0x02AA big-endian; Debezium's Bits are little-endian.
    expect(map('bit(10)', Buffer.from([0x02, 0xaa]).toString('base64'))).toBe(
      Buffer.from([0xaa, 0x02]).toString('base64'),
    );
    expect(columnMapping('bit(10)', 'precise').schema.parameters).toEqual({ length: '10' });
    const point = Buffer.concat([Buffer.from([0xe6, 0x10, 0, 0]), Buffer.from([1, 1, 0, 0, 0])]);
    expect(map('point', point.toString('base64'))).toEqual({
      wkb: Buffer.from([1, 1, 0, 0, 0]).toString('base64'),
      srid: 4326,
    });
    expect(columnMapping(undefined, 'precise').schema.type).toBe('string');
  });

  it('writes raw numbers unquoted', () => {
    expect(stringifyDebezium({ a: new RawJsonNumber('9007199254740993'), b: [1, 'x', null] })).toBe(
      '{"a":9007199254740993,"b":[1,"x",null]}',
    );
  });

  it('reads the server id of a MariaDB GTID', () => {
    expect(serverIdOfGtid('0-17-42')).toBe(17);
    expect(serverIdOfGtid('3E11FA47-71CA-11E1-9E33-C80AA9429562:5')).toBeUndefined();
    expect(serverIdOfGtid(null)).toBeUndefined();
  });
});

describe('Debezium messages', () => {
  const types = { id: 'int(11)', name: 'varchar(20)', price: 'decimal(5,2)' };
  const event: ChangeEvent = {
    v: 1,
    op: 'u',
    region: 'us-east',
    db: 'app',
    table: 'items',
    pk: { id: 7 },
    before: { id: 7, name: 'a', price: '1.00' },
    after: { id: 7, name: 'b', price: '2.50' },
    hlc: 1,
    origin: 'us-east',
    vv: { 'us-east': 1 },
    gtid: '0-1-5',
    commitTs: 1_700_000_000_000,
    types,
  };
  const source: DebeziumSourceInfo = {
    connector: 'mariadb',
    serverId: 1,
    file: 'bin.000001',
    pos: 1234,
    row: 0,
    nowMs: 1_700_000_000_500,
  };
  const format = {
    topicPrefix: 'dbz',
    schemas: false,
    decimalHandling: 'string' as 'precise' | 'string',
    tombstones: true,
  };
  const shape = (f: typeof format) =>
    tableShape(f, 'mariadb', 'app', 'items', ['id', 'name', 'price'], ['id'], types);

  it('builds the payload-only envelope on <prefix>.<db>.<table> with a JSON key', () => {
    const [message, ...rest] = debeziumMessages(format, shape(format), event, source);
    expect(rest).toEqual([]);
    expect(message?.topic).toBe('dbz.app.items');
    expect(message?.key).toBe('{"id":7}');
    const value = JSON.parse(message!.value!) as Record<string, unknown>;
    expect(value).toEqual({
      before: { id: 7, name: 'a', price: '1.00' },
      after: { id: 7, name: 'b', price: '2.50' },
      source: {
        version: 'cdc-replicator',
        connector: 'mariadb',
        name: 'dbz',
        ts_ms: 1_700_000_000_000,
        snapshot: 'false',
        db: 'app',
        sequence: null,
        ts_us: 1_700_000_000_000_000,
        ts_ns: 1_700_000_000_000_000_000,
        table: 'items',
        server_id: 1,
        gtid: '0-1-5',
        file: 'bin.000001',
        pos: 1234,
        row: 0,
        thread: null,
        query: null,
      },
      transaction: null,
      op: 'u',
      ts_ms: 1_700_000_000_500,
      ts_us: 1_700_000_000_500_000,
      ts_ns: 1_700_000_000_500_000_000,
    });
    expect(message!.value).toContain('"ts_ns":1700000000000000000');
  });

  it('follows a delete with a tombstone unless turned off', () => {
    const deleted: ChangeEvent = { ...event, op: 'd', after: null };
    const messages = debeziumMessages(format, shape(format), deleted, source);
    expect(messages.map((m) => m.value === null)).toEqual([false, true]);
    expect(messages[1]?.key).toBe('{"id":7}');
    expect(JSON.parse(messages[0]!.value!)).toMatchObject({ op: 'd', after: null });
    const off = { ...format, tombstones: false };
    expect(debeziumMessages(off, shape(off), deleted, source)).toHaveLength(1);
  });

  it('embeds Connect schemas when asked', () => {
    const withSchemas = { ...format, schemas: true, decimalHandling: 'precise' as const };
    const [message] = debeziumMessages(withSchemas, shape(withSchemas), event, source);
    const key = JSON.parse(message!.key) as { schema: unknown; payload: unknown };
    expect(key).toEqual({
      schema: {
        type: 'struct',
        optional: false,
        name: 'dbz.app.items.Key',
        fields: [{ type: 'int32', optional: false, field: 'id' }],
      },
      payload: { id: 7 },
    });
    const value = JSON.parse(message!.value!) as {
      schema: {
        name: string;
        fields: { field: string; fields?: { field: string; optional: boolean }[] }[];
      };
      payload: { after: { price: string } };
    };
    expect(value.schema.name).toBe('dbz.app.items.Envelope');
    expect(value.schema.fields.map((f) => f.field)).toEqual([
      'before',
      'after',
      'source',
      'transaction',
      'op',
      'ts_ms',
      'ts_us',
      'ts_ns',
    ]);
    expect(value.schema.fields[1]?.fields?.map((f) => [f.field, f.optional])).toEqual([
      ['id', false],
      ['name', true],
      ['price', true],
    ]);
    expect(value.payload.after.price).toBe(Buffer.from([0x00, 0xfa]).toString('base64'));
  });
});
