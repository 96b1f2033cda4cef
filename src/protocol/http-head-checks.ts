/**
 * Checks on a decoded request head that HTTP/1.1 requires of every request (RFC 9112): the
 * request-target form, the Host field, and how the body is delimited. Each returns an
 * HttpError (a shared constant) or a plain value, so the failure path allocates nothing.
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
 * RFC 3986 authority without userinfo: unreserved, pct-encoded, sub-delims, ":" and the
 * brackets of an IP-literal. "/", "?", "#", "@" and whitespace would let a Host value
 * reshape the URL built from it (see web-request.ts), so they are refused here.
 */
const HOST_CHAR = new Uint8Array(256);
for (const char of "-._~%!$&'()*+,;=:[]0123456789") HOST_CHAR[char.charCodeAt(0)] = 1;
for (let letter = 0; letter < 26; letter++) {
  HOST_CHAR[0x41 + letter] = 1;
  HOST_CHAR[0x61 + letter] = 1;
}

/** RFC 9112 §3.2: exactly one Host, whose value is a URI authority (host [":" port]). */
export function checkHost(
  headers: ReadonlyMap<string, string>,
  repeated: ReadonlySet<string>,
): HttpError | null {
  const host = headers.get(HOST);
  if (host === undefined) return ERR_HOST_MISSING;
  if (repeated.has(HOST)) return ERR_HOST_REPEATED;
  for (let i = 0; i < host.length; i++) {
    if (HOST_CHAR[host.charCodeAt(i)] !== 1) return ERR_HOST_VALUE;
  }
  return null;
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
