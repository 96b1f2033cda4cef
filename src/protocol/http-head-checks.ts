/**
 * Checks on a decoded request head that HTTP/1.1 requires of every request (RFC 9112): the
 * request-target form, the Host field (its syntax too, RFC 3986), and how the body is
 * delimited. Each returns an HttpError (a shared constant) or a plain value, so the failure
 * path allocates nothing.
 */
import {
  badRequest, ERR_TARGET, HttpErrorCode, httpError, type HttpError,
} from "./http-errors.ts";
import { splitList } from "./http-grammar.ts";
import { CONTENT_LENGTH, HOST, TRANSFER_ENCODING } from "./http-header-names.ts";

/** requestBodyLength: the body is chunked (RFC 9112 §7.1). */
export const CHUNKED_BODY = -1;
/** requestBodyLength: no Content-Length nor Transfer-Encoding, so no body (RFC 9112 §6.3). */
export const NO_BODY = -2;

/** Content-Length digits beyond this are a value no limit here allows (and no double holds). */
const CONTENT_LENGTH_DIGITS_MAX = 15;

const E = HttpErrorCode;
const ERR_HOST_MISSING = badRequest(E.BAD_HOST, "Host header field is required");
const ERR_HOST_REPEATED = badRequest(E.BAD_HOST, "more than one Host header field");
const ERR_HOST_VALUE = badRequest(E.BAD_HOST, "invalid Host header field value");
const ERR_LENGTH = badRequest(E.BAD_CONTENT_LENGTH, "invalid Content-Length");
const ERR_LENGTH_CONFLICT = badRequest(E.BAD_CONTENT_LENGTH, "conflicting Content-Length values");
const ERR_BODY_TOO_LARGE = httpError(413, E.BODY_TOO_LARGE, "request body too large");
const ERR_TE_WITH_LENGTH = badRequest(
  E.BAD_TRANSFER_ENCODING,
  "both Transfer-Encoding and Content-Length",
);
const ERR_TE_NOT_CHUNKED = badRequest(
  E.BAD_TRANSFER_ENCODING,
  "chunked must be the final transfer coding, and only once",
);
const ERR_TE_IN_HTTP10 = badRequest(
  E.BAD_TRANSFER_ENCODING,
  "Transfer-Encoding in an HTTP/1.0 request",
);
const ERR_TE_UNSUPPORTED = httpError(
  501,
  E.UNSUPPORTED_TRANSFER_ENCODING,
  "only the chunked transfer coding is supported",
);

/**
 * How many body bytes follow the head: a length ≥ 0, CHUNKED_BODY or NO_BODY; or why the
 * framing is refused. Transfer-Encoding with Content-Length is refused (RFC 9112 §6.1 lets a
 * server reject it; accepting it is the classic request-smuggling hole); so is a length over
 * `maxBodyBytes` (413), decided before any body byte arrives.
 */
export function requestBodyLength(
  headers: ReadonlyMap<string, string>,
  maxBodyBytes: number,
): number | HttpError {
  const transferEncoding = headers.get(TRANSFER_ENCODING);
  const contentLength = headers.get(CONTENT_LENGTH);
  if (transferEncoding !== undefined) {
    if (contentLength !== undefined) return ERR_TE_WITH_LENGTH;
    return checkTransferEncoding(transferEncoding) ?? CHUNKED_BODY;
  }
  if (contentLength === undefined) return NO_BODY;
  const length = parseContentLength(contentLength);
  if (length === -1) return ERR_LENGTH;
  if (length === -2) return ERR_LENGTH_CONFLICT;
  return length > maxBodyBytes ? ERR_BODY_TOO_LARGE : length;
}

/**
 * RFC 9112 §3.2: origin-form ("/..."), asterisk-form ("*", OPTIONS only), authority-form
 * (CONNECT only) or absolute-form (scheme ":" ...). Anything else cannot name a resource.
 */
export function checkTargetForm(method: string, target: string): HttpError | null {
  if (target.charCodeAt(0) === 0x2f) return null;
  if (target === "*") return method === "OPTIONS" ? null : ERR_TARGET;
  if (method === "CONNECT") return null;
  return isAbsoluteUri(target) ? null : ERR_TARGET;
}

/** scheme ":" with scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986 §3.1). */
function isAbsoluteUri(target: string): boolean {
  const colon = target.indexOf(":");
  if (colon < 1) return false;
  for (let i = 0; i < colon; i++) {
    const code = target.charCodeAt(i) | 0x20; // ASCII lower case for letters
    const isLetter = code >= 0x61 && code <= 0x7a;
    const isOther = i > 0 && (isDigit(target.charCodeAt(i)) || "+-.".includes(target[i] as string));
    if (!isLetter && !isOther) return false;
  }
  return true;
}

/**
 * RFC 9112 §3.2: one Host, whose value is the target URI's authority without userinfo,
 * `host [":" port]` (RFC 3986 §3.2.2, §3.2.3), or empty. HTTP/1.1 requires the field; an
 * HTTP/1.0 client may leave it out (`required` false). A malformed value is refused here,
 * before the URL of a Web Request is built from it (web-request.ts), so it is the client's
 * 400 and not our failure.
 */
export function checkHost(
  headers: ReadonlyMap<string, string>,
  repeated: ReadonlySet<string>,
  required: boolean,
): HttpError | null {
  const host = headers.get(HOST);
  if (host === undefined) return required ? ERR_HOST_MISSING : null;
  if (repeated.has(HOST)) return ERR_HOST_REPEATED;
  return host.length === 0 || isAuthority(host) ? null : ERR_HOST_VALUE;
}

/**
 * RFC 9112 §6.1: a Transfer-Encoding in an HTTP/1.0 request means its framing is faulty (an
 * HTTP/1.0 recipient would not decode it, so a proxy and we could disagree on the body).
 */
export function checkHttp10Framing(headers: ReadonlyMap<string, string>): HttpError | null {
  return headers.has(TRANSFER_ENCODING) ? ERR_TE_IN_HTTP10 : null;
}

/** unreserved / sub-delims (RFC 3986 §2.2, §2.3): the characters of a reg-name besides "%". */
const REG_NAME_CHAR = new Uint8Array(256);
for (const char of "-._~!$&'()*+,;=0123456789") REG_NAME_CHAR[char.charCodeAt(0)] = 1;
for (let letter = 0; letter < 26; letter++) {
  REG_NAME_CHAR[0x41 + letter] = 1;
  REG_NAME_CHAR[0x61 + letter] = 1;
}
const COLON = 0x3a;
const OPEN_BRACKET = 0x5b;
const PERCENT = 0x25;
const DOT = 0x2e;
const PORT_MAX = 65535;

/**
 * `host [":" port]` with a non-empty host (an http URI has one, RFC 9110 §4.2.1). IPv4address
 * is spelled with reg-name characters, so the reg-name rule covers it. Decisions: IPvFuture
 * ("[v1.x]") is refused, as no client sends it and the URL standard cannot parse it; a port
 * is digits up to 65535 (a TCP port; the URL standard refuses more).
 */
function isAuthority(value: string): boolean {
  const hostEnd = value.charCodeAt(0) === OPEN_BRACKET ? ipLiteralEnd(value) : regNameEnd(value);
  if (hostEnd <= 0) return false;
  if (hostEnd === value.length) return true;
  return value.charCodeAt(hostEnd) === COLON && isPort(value, hostEnd + 1);
}

/** Where the reg-name at the start of `value` ends (its length), or -1 if malformed. */
function regNameEnd(value: string): number {
  let i = 0;
  while (i < value.length) {
    const code = value.charCodeAt(i);
    if (code === COLON) return i;
    if (code === PERCENT) {
      // pct-encoded = "%" HEXDIG HEXDIG
      if (!isHexDigit(value.charCodeAt(i + 1)) || !isHexDigit(value.charCodeAt(i + 2))) return -1;
      i += 3;
    } else if (code < 256 && REG_NAME_CHAR[code] === 1) {
      i++;
    } else {
      return -1;
    }
  }
  return i;
}

/** "[" IPv6address "]" at the start of `value`: the index after "]", or -1. */
function ipLiteralEnd(value: string): number {
  const close = value.indexOf("]");
  if (close < 0 || !isIpv6(value, 1, close)) return -1;
  return close + 1;
}

/**
 * RFC 3986 §3.2.2 IPv6address in `text[start, end)`: eight groups of 1-4 hex digits, or fewer
 * around one "::", the last two groups optionally written as an IPv4address.
 */
function isIpv6(text: string, start: number, end: number): boolean {
  let i = start;
  let groups = 0;
  let elided = false;
  if (text.charCodeAt(i) === COLON) {
    if (text.charCodeAt(i + 1) !== COLON) return false;
    elided = true;
    i += 2;
  }
  while (i < end) {
    let digitsEnd = i;
    while (digitsEnd < end && digitsEnd - i < 5 && isHexDigit(text.charCodeAt(digitsEnd))) {
      digitsEnd++;
    }
    if (digitsEnd < end && text.charCodeAt(digitsEnd) === DOT) {
      // The IPv4 form of the last 32 bits: nothing may follow it.
      if (!isIpv4(text, i, end)) return false;
      groups += 2;
      break;
    }
    const digits = digitsEnd - i;
    if (digits === 0 || digits > 4) return false;
    groups++;
    i = digitsEnd;
    if (i === end) break;
    if (text.charCodeAt(i) !== COLON) return false;
    i++;
    if (text.charCodeAt(i) === COLON) {
      if (elided) return false; // "::" at most once
      elided = true;
      i++;
    } else if (i === end) {
      return false; // a group must follow a single ":"
    }
  }
  return elided ? groups <= 7 : groups === 8;
}

/** dec-octet "." dec-octet "." dec-octet "." dec-octet (RFC 3986 §3.2.2) in `text[start, end)`. */
function isIpv4(text: string, start: number, end: number): boolean {
  let i = start;
  for (let octet = 0; octet < 4; octet++) {
    if (octet > 0) {
      if (text.charCodeAt(i) !== DOT) return false;
      i++;
    }
    const first = i;
    let value = 0;
    while (i < end && i - first < 3 && isDigit(text.charCodeAt(i))) {
      value = value * 10 + (text.charCodeAt(i) - 0x30);
      i++;
    }
    const digits = i - first;
    // dec-octet has no leading zero ("01") and stops at 255.
    if (digits === 0 || value > 255 || (digits > 1 && text.charCodeAt(first) === 0x30)) {
      return false;
    }
  }
  return i === end;
}

/** port = *DIGIT (RFC 3986 §3.2.3) from `start` to the end, at most PORT_MAX. */
function isPort(text: string, start: number): boolean {
  let value = 0;
  for (let i = start; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (!isDigit(code)) return false;
    value = value * 10 + (code - 0x30);
    if (value > PORT_MAX) return false;
  }
  return true;
}

function isHexDigit(code: number): boolean {
  return isDigit(code) || ((code | 0x20) >= 0x61 && (code | 0x20) <= 0x66);
}

/** Only exactly "chunked" is accepted (RFC 9112 §6.1, §6.3 item 4). */
function checkTransferEncoding(value: string): HttpError | null {
  const codings = splitList(value);
  let chunkedCount = 0;
  for (const coding of codings) {
    if (coding.toLowerCase() === "chunked") chunkedCount++;
  }
  const last = codings[codings.length - 1];
  if (last === undefined || last.toLowerCase() !== "chunked" || chunkedCount > 1) {
    return ERR_TE_NOT_CHUNKED;
  }
  return codings.length === 1 ? null : ERR_TE_UNSUPPORTED;
}

/**
 * Content-Length = 1*DIGIT; a list of identical values ("5, 5", or repeated lines joined
 * that way) stands for one (RFC 9110 §8.6). Returns the length, -1 when malformed, -2 when
 * values differ. More digits than CONTENT_LENGTH_DIGITS_MAX read as MAX_SAFE_INTEGER, which
 * every body limit refuses with 413.
 */
export function parseContentLength(value: string): number {
  let length = -1;
  let start = 0;
  while (start <= value.length) {
    let stop = value.indexOf(",", start);
    if (stop === -1) stop = value.length;
    const element = parseDigits(value, start, stop);
    if (element === -1) return -1;
    if (length !== -1 && element !== length) return -2;
    length = element;
    start = stop + 1;
  }
  return length;
}

function parseDigits(value: string, start: number, stop: number): number {
  let first = start;
  let last = stop;
  while (first < last && isOwsByte(value.charCodeAt(first))) first++;
  while (last > first && isOwsByte(value.charCodeAt(last - 1))) last--;
  if (first === last) return -1;
  let number = 0;
  for (let i = first; i < last; i++) {
    const code = value.charCodeAt(i);
    if (!isDigit(code)) return -1;
    number = number * 10 + (code - 0x30);
  }
  return last - first > CONTENT_LENGTH_DIGITS_MAX ? Number.MAX_SAFE_INTEGER : number;
}

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

function isOwsByte(code: number): boolean {
  return code === 0x20 || code === 0x09;
}
