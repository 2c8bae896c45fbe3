/**
 * The masks a policy applies to a column before a row is published to a
 * region that may hold it only masked (docs/GOVERNANCE.md, "Masks"). Each
 * takes the value as the envelope encodes it and returns the masked value
 * in the same encoding, so a masked event is an ordinary event. NULL stays
 * NULL under every mask: it carries nothing to protect, and keeping it
 * keeps `IS NULL` meaningful in the masked region.
 */
import { createHmac } from 'node:crypto';

import type { Secret } from '../core/secret.js';
import { canonicalText, decodeBase64, valueClassOf } from './canonical.js';
import {
  GovernanceError,
  type ColumnTypeInfo,
  type EncodedValue,
  type MaskSpec,
} from './policy.js';

/** Length of an `hmac` mask's output: 32 bytes of HMAC-SHA256 in hex. */
export const HMAC_HEX_LENGTH = 64;

/**
 * The column types each mask can write a value of: `nullify` any nullable
 * column; the others need a character or binary column, because what they
 * produce is text (for a binary column: that text's UTF-8 bytes, or for
 * `truncate` the first bytes).
 */
export function maskApplies(mask: MaskSpec, column: Pick<ColumnTypeInfo, 'dataType'>): boolean {
  if (mask.kind === 'nullify') return true;
  const kind = valueClassOf(column);
  return kind === 'text' || kind === 'binary';
}

function unsupported(mask: MaskSpec, column: ColumnTypeInfo): GovernanceError {
  return new GovernanceError(
    `column ${column.name} (${column.columnType}): the ${mask.kind} mask needs a character or binary column`,
    'GOVERNANCE_MASK_UNSUPPORTED',
  );
}

/** Text for a column: as is for a character column, base64 of its UTF-8 bytes for a binary one. */
function encodeText(column: ColumnTypeInfo, text: string): string {
  return valueClassOf(column) === 'binary' ? Buffer.from(text, 'utf8').toString('base64') : text;
}

/** `nullify`: NULL, whatever the value. */
export function nullify(): null {
  return null;
}

/** `redact`: the policy's literal in place of any non-NULL value. */
export function redact(column: ColumnTypeInfo, value: EncodedValue, text: string): EncodedValue {
  if (value === null) return null;
  if (!maskApplies({ kind: 'redact', text }, column))
    throw unsupported({ kind: 'redact', text }, column);
  return encodeText(column, text);
}

/**
 * `truncate`: the first `length` characters (Unicode code points, as MySQL
 * counts them in utf8mb4) of a character column, or the first `length`
 * bytes of a binary one. Other types are refused.
 */
export function truncate(
  column: ColumnTypeInfo,
  value: EncodedValue,
  length: number,
): EncodedValue {
  if (value === null) return null;
  const mask: MaskSpec = { kind: 'truncate', length };
  if (!maskApplies(mask, column)) throw unsupported(mask, column);
  if (valueClassOf(column) === 'binary') {
    return decodeBase64(column, value).subarray(0, length).toString('base64');
  }
  const text = typeof value === 'string' ? value : String(value);
  // Iterating a string walks code points, so a surrogate pair is never cut in half.
  let out = '';
  let count = 0;
  for (const char of text) {
    if (count === length) break;
    out += char;
    count += 1;
  }
  return out;
}

/**
 * Lowercase hex of HMAC-SHA256 keyed with the key's UTF-8 bytes, over the
 * value's canonical text (canonical.ts), or `null` for NULL. For a text
 * column this is what `printf %s "$v" | openssl dgst -sha256 -hmac "$KEY"`
 * prints.
 */
export function hmacHex(key: Secret, column: ColumnTypeInfo, value: EncodedValue): string | null {
  const bytes = canonicalText(column, value);
  if (bytes === null) return null;
  return createHmac('sha256', Buffer.from(key.reveal(), 'utf8')).update(bytes).digest('hex');
}

/** `hmac`: {@link hmacHex} written into the column (as text, or its bytes in a binary column). */
export function hmac(key: Secret, column: ColumnTypeInfo, value: EncodedValue): EncodedValue {
  if (value === null) return null;
  const mask: MaskSpec = { kind: 'hmac', key };
  if (!maskApplies(mask, column)) throw unsupported(mask, column);
  return encodeText(column, hmacHex(key, column, value) ?? '');
}

/** Applies one mask to one encoded value. */
export function applyMask(
  mask: MaskSpec,
  column: ColumnTypeInfo,
  value: EncodedValue,
): EncodedValue {
  switch (mask.kind) {
    case 'nullify':
      return nullify();
    case 'redact':
      return redact(column, value, mask.text);
    case 'truncate':
      return truncate(column, value, mask.length);
    case 'hmac':
      return hmac(mask.key, column, value);
  }
}

/**
 * The width, in characters, a column needs for the mask's output: 64 for
 * `hmac`, the literal's length for `redact`, `n` for `truncate: n` (a
 * narrower column would hold every value whole, so the mask would hide
 * nothing), 0 for `nullify`. With `unit: 'bytes'` (binary and TEXT/BLOB
 * columns, whose width MySQL counts in bytes), the literal counts in UTF-8
 * bytes.
 */
export function minimumWidth(mask: MaskSpec, unit: 'characters' | 'bytes' = 'characters'): number {
  switch (mask.kind) {
    case 'nullify':
      return 0;
    case 'hmac':
      return HMAC_HEX_LENGTH;
    case 'truncate':
      return mask.length;
    case 'redact':
      return unit === 'bytes' ? Buffer.byteLength(mask.text, 'utf8') : [...mask.text].length;
  }
}

/** A mask's description for messages and summaries; never shows a key. */
export function describeMask(mask: MaskSpec): string {
  switch (mask.kind) {
    case 'nullify':
      return 'nullify';
    case 'hmac':
      return 'hmac';
    case 'truncate':
      return `truncate ${mask.length}`;
    case 'redact':
      return `redact ${JSON.stringify(mask.text)}`;
  }
}
