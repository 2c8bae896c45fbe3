import { createHmac } from 'node:crypto';

import fc from 'fast-check';

import { Secret } from '../core/secret.js';
import { canonicalText } from './canonical.js';
import { applyMask, hmac, hmacHex, minimumWidth, redact, truncate } from './masks.js';
import { GovernanceError, type ColumnTypeInfo } from './policy.js';

const KEY = new Secret('test-key-0123456789abcdef');

function col(columnType: string, nullable = true): ColumnTypeInfo {
  const dataType = (/^[a-z]+/.exec(columnType)?.[0] ?? columnType).toLowerCase();
  return { name: 'c', dataType, columnType, nullable };
}

const VARCHAR = col('varchar(255)');
const VARBINARY = col('varbinary(255)');

function text(column: ColumnTypeInfo, value: string | number | null): string | null {
  return canonicalText(column, value)?.toString('utf8') ?? null;
}

describe('hmac', () => {
  it('is lowercase hex HMAC-SHA256 over the UTF-8 bytes of a text value', () => {
    const value = 'zoë@example.com';
    const expected = createHmac('sha256', Buffer.from(KEY.reveal(), 'utf8'))
      .update(Buffer.from(value, 'utf8'))
      .digest('hex');
    expect(hmacHex(KEY, VARCHAR, value)).toBe(expected);
    // Fixed vector: printf %s 'zoë@example.com' | openssl dgst -sha256 -hmac 'test-key-0123456789abcdef'
    expect(hmac(KEY, VARCHAR, value)).toBe(
      'e1735c12d8cf6ef00d12021d00150a328cf8b3b1c146e73cbbf33546af5f6a5f',
    );
  });

  it('matches RFC 4231 test case 2', () => {
    expect(hmacHex(new Secret('Jefe'), VARCHAR, 'what do ya want for nothing?')).toBe(
      '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    );
  });

  it('hashes a DATETIME by its six-digit canonical text, however the envelope wrote it', () => {
    // printf %s '2024-02-29 13:45:00.120000' | openssl dgst -sha256 -hmac 'test-key-0123456789abcdef'
    const expected = '5cd247cedda7e7c0dd9d5c33bb2f2adb8e7517aa459efb83f6db2736e0040b5b';
    expect(hmacHex(KEY, col('datetime(2)'), '2024-02-29 13:45:00.12')).toBe(expected);
    expect(hmacHex(KEY, col('datetime(6)'), '2024-02-29 13:45:00.120000')).toBe(expected);
  });

  it('hashes binary values by their raw bytes and writes hex bytes into a binary column', () => {
    const bytes = Buffer.from([0x00, 0xff, 0x61, 0x62]);
    // printf '\x00\xffab' | openssl dgst -sha256 -hmac 'test-key-0123456789abcdef'
    const expected = 'd705fbaf87be547d8437cf1507d4f767d0e4070932d4209fab945411edacbe24';
    expect(hmacHex(KEY, VARBINARY, bytes.toString('base64'))).toBe(expected);
    expect(hmac(KEY, VARBINARY, bytes.toString('base64'))).toBe(
      Buffer.from(expected, 'ascii').toString('base64'),
    );
  });

  it('keeps NULL as NULL, and refuses a column type that cannot hold its output', () => {
    expect(hmac(KEY, VARCHAR, null)).toBeNull();
    expect(() => hmac(KEY, col('int'), 5)).toThrow(GovernanceError);
    expect(() => hmac(KEY, col('int'), 5)).toThrow(
      'column c (int): the hmac mask needs a character or binary column',
    );
  });
});

describe('canonical text', () => {
  it('writes integers in decimal whether they arrive as numbers or strings', () => {
    expect(text(col('int'), 42)).toBe('42');
    expect(text(col('bigint unsigned'), '18446744073709551615')).toBe('18446744073709551615');
    expect(text(col('bigint'), '-0042')).toBe('-42');
    expect(text(col('tinyint(1)'), 0)).toBe('0');
    expect(text(col('year'), 0)).toBe('0000');
    expect(text(col('year'), 2024)).toBe('2024');
  });

  it('writes DECIMAL as MySQL prints it, with the column scale', () => {
    expect(text(col('decimal(10,2)'), '12.5')).toBe('12.50');
    expect(text(col('decimal(10,2)'), '0012.500')).toBe('12.50');
    expect(text(col('decimal(10,2)'), '-0.00')).toBe('0.00');
    expect(text(col('decimal(10,2)'), '-.5')).toBe('-0.50');
    expect(text(col('decimal(12,0)'), '7')).toBe('7');
    expect(text(col('decimal(65,30)'), '1')).toBe(`1.${'0'.repeat(30)}`);
  });

  it('writes temporal values with six fraction digits', () => {
    expect(text(col('datetime'), '2024-01-02 03:04:05')).toBe('2024-01-02 03:04:05.000000');
    expect(text(col('timestamp(3)'), '2024-01-02 03:04:05.123')).toBe('2024-01-02 03:04:05.123000');
    expect(text(col('datetime(6)'), '2024-01-02T03:04:05.000001')).toBe(
      '2024-01-02 03:04:05.000001',
    );
    expect(text(col('time'), '-838:59:59')).toBe('-838:59:59.000000');
    expect(text(col('time(1)'), '1:02:03.5')).toBe('01:02:03.500000');
    expect(text(col('date'), '2024-02-29')).toBe('2024-02-29');
  });

  it('writes floats as ECMAScript prints the double, JSON and text as carried', () => {
    expect(text(col('double'), 0.1)).toBe('0.1');
    expect(text(col('double'), 1e21)).toBe('1e+21');
    expect(text(col('json'), '{"a": 1}')).toBe('{"a": 1}');
    expect(text(col('enum'), 'b')).toBe('b');
    expect(canonicalText(VARCHAR, 'é')).toEqual(Buffer.from([0xc3, 0xa9]));
  });

  it('pads BINARY(n) with zero bytes as MySQL returns it, and has no text for NULL', () => {
    expect(canonicalText(col('binary(4)'), Buffer.from('ab').toString('base64'))).toEqual(
      Buffer.from([0x61, 0x62, 0, 0]),
    );
    expect(canonicalText(col('datetime'), null)).toBeNull();
  });

  it('refuses values the column type never carries, without printing them', () => {
    expect(() => canonicalText(col('int'), 'secret-value')).toThrow(
      'column c (int): not an integer',
    );
    expect(() => canonicalText(col('blob'), 'not base64!')).toThrow(GovernanceError);
    expect(() => canonicalText(col('datetime'), '2024-01-02')).toThrow(
      'column c (datetime): not a DATETIME/TIMESTAMP text',
    );
  });
});

describe('other masks', () => {
  it('nullify, redact and truncate keep NULL and rewrite everything else', () => {
    expect(applyMask({ kind: 'nullify' }, VARCHAR, 'x')).toBeNull();
    expect(applyMask({ kind: 'nullify' }, col('int'), 3)).toBeNull();
    expect(redact(VARCHAR, 'secret', '***')).toBe('***');
    expect(redact(VARCHAR, null, '***')).toBeNull();
    expect(redact(VARBINARY, 'AAE=', '***')).toBe(Buffer.from('***').toString('base64'));
    expect(truncate(VARCHAR, null, 1)).toBeNull();
  });

  it('truncates text by characters (code points) and binary by bytes', () => {
    expect(truncate(VARCHAR, 'Zoë', 1)).toBe('Z');
    expect(truncate(VARCHAR, '😀x', 1)).toBe('😀');
    expect(truncate(VARCHAR, 'ab', 5)).toBe('ab');
    expect(truncate(VARBINARY, Buffer.from([1, 2, 3]).toString('base64'), 2)).toBe(
      Buffer.from([1, 2]).toString('base64'),
    );
    expect(() => truncate(col('datetime'), '2024-01-02 03:04:05', 4)).toThrow(GovernanceError);
  });

  it('knows the width each mask needs', () => {
    expect(minimumWidth({ kind: 'hmac', key: KEY })).toBe(64);
    expect(minimumWidth({ kind: 'redact', text: 'ééé' })).toBe(3);
    expect(minimumWidth({ kind: 'redact', text: 'ééé' }, 'bytes')).toBe(6);
    expect(minimumWidth({ kind: 'truncate', length: 2 })).toBe(2);
    expect(minimumWidth({ kind: 'nullify' })).toBe(0);
  });
});

describe('mask properties', () => {
  it('truncate gives a prefix of at most n code points; hmac 64 lowercase hex digits', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.integer({ min: 1, max: 20 }), (value, n) => {
        const cut = truncate(VARCHAR, value, n) as string;
        expect([...cut].length).toBeLessThanOrEqual(n);
        expect(value.startsWith(cut)).toBe(true);
        expect(hmac(KEY, VARCHAR, value)).toMatch(/^[0-9a-f]{64}$/);
      }),
    );
  });

  it('an integer hashes alike whether the envelope carries a number or a string', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }), (value) => {
        const asString = hmacHex(KEY, col('bigint'), value.toString());
        expect(asString).toBe(
          createHmac('sha256', KEY.reveal()).update(value.toString()).digest('hex'),
        );
        if (value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)) {
          expect(hmacHex(KEY, col('bigint'), Number(value))).toBe(asString);
        }
      }),
    );
  });
});
