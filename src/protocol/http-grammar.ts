/**
 * Byte classes and list helpers from the HTTP grammar (RFC 9110 §5.5, §5.6), shared by the
 * request parser, the handshake checks and the response writers. Tables are indexed by byte
 * so the scanners test a class with one load instead of a chain of comparisons.
 */

export const CR = 0x0d;
export const LF = 0x0a;
export const SP = 0x20;
export const HTAB = 0x09;
export const COLON = 0x3a;

/** tchar (RFC 9110 §5.6.2): the characters of methods, field names and list tokens. */
export const TOKEN_CHAR = new Uint8Array(256);
/** field-vchar / SP / HTAB (RFC 9110 §5.5); obs-text (0x80-0xFF) included. */
export const FIELD_VALUE_CHAR = new Uint8Array(256);
/** Visible ASCII: what a request-target may hold (RFC 3986 chars are a subset). */
export const VISIBLE_CHAR = new Uint8Array(256);
/** Hex digit value + 1 (0 = not a hex digit), for chunk sizes (RFC 9112 §7.1). */
export const HEX_VALUE_PLUS_1 = new Uint8Array(256);

for (let byte = 0x21; byte <= 0x7e; byte++) {
  VISIBLE_CHAR[byte] = 1;
  FIELD_VALUE_CHAR[byte] = 1;
}
for (let byte = 0x80; byte <= 0xff; byte++) FIELD_VALUE_CHAR[byte] = 1;
FIELD_VALUE_CHAR[SP] = 1;
FIELD_VALUE_CHAR[HTAB] = 1;
for (const char of "!#$%&'*+-.^_`|~0123456789") TOKEN_CHAR[char.charCodeAt(0)] = 1;
for (let letter = 0; letter < 26; letter++) {
  TOKEN_CHAR[0x41 + letter] = 1;
  TOKEN_CHAR[0x61 + letter] = 1;
}
for (let digit = 0; digit < 10; digit++) HEX_VALUE_PLUS_1[0x30 + digit] = digit + 1;
for (let letter = 0; letter < 6; letter++) {
  HEX_VALUE_PLUS_1[0x41 + letter] = letter + 11;
  HEX_VALUE_PLUS_1[0x61 + letter] = letter + 11;
}

/** True when `text` is a non-empty token (RFC 9110 §5.6.2). */
export function isToken(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0xff || TOKEN_CHAR[code] === 0) return false;
  }
  return true;
}

/**
 * True when `text` can be sent as a field value: no CR, LF, NUL or other control character
 * (the response-splitting vector, RFC 9110 §5.5), and every char fits in one byte.
 */
export function isFieldValue(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0xff || FIELD_VALUE_CHAR[code] === 0) return false;
  }
  return true;
}

function isOws(code: number): boolean {
  return code === SP || code === HTAB;
}

/**
 * True when the comma-separated list `value` (RFC 9110 §5.6.1) has an element equal to
 * `lowerToken`, ignoring ASCII case and OWS. Allocates nothing: it runs on every request.
 */
export function listHasToken(value: string | undefined, lowerToken: string): boolean {
  if (value === undefined) return false;
  const length = value.length;
  let start = 0;
  while (start <= length) {
    let stop = value.indexOf(",", start);
    if (stop === -1) stop = length;
    let first = start;
    let last = stop;
    while (first < last && isOws(value.charCodeAt(first))) first++;
    while (last > first && isOws(value.charCodeAt(last - 1))) last--;
    if (last - first === lowerToken.length && equalsLowerAscii(value, first, lowerToken)) {
      return true;
    }
    start = stop + 1;
  }
  return false;
}

function equalsLowerAscii(text: string, offset: number, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) {
    let code = text.charCodeAt(offset + i);
    if (code >= 0x41 && code <= 0x5a) code |= 0x20;
    if (code !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * The non-empty elements of a comma-separated list, OWS trimmed. Empty elements are
 * skipped, as RFC 9110 §5.6.1 requires of recipients ("a, , b" is two elements).
 */
export function splitList(value: string): string[] {
  const elements: string[] = [];
  for (const part of value.split(",")) {
    const element = trimOws(part);
    if (element.length > 0) elements.push(element);
  }
  return elements;
}

/** `text` without leading/trailing SP and HTAB (String.trim would also eat U+00A0, obs-text). */
export function trimOws(text: string): string {
  let first = 0;
  let last = text.length;
  while (first < last && isOws(text.charCodeAt(first))) first++;
  while (last > first && isOws(text.charCodeAt(last - 1))) last--;
  return first === 0 && last === text.length ? text : text.slice(first, last);
}

/** Latin-1 bytes of `text`; every char must be ≤ 0xFF (callers validate first). */
export function encodeLatin1(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}
