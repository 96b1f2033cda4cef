/**
 * The server side of the WebSocket opening handshake (RFC 6455 §4.2): deciding whether a
 * parsed request asks for an upgrade, validating it, computing Sec-WebSocket-Accept and
 * checking the subprotocol the server picks. Pure: responses are written by http-response.ts.
 *
 * Decisions:
 * - `isUpgradeRequest` looks only at `Upgrade: websocket`, whatever the method, so a POST
 *   that asks for WebSocket gets a clear 405 instead of reaching the fetch hook.
 * - HTTP/1.0: 400, checked first (RFC 6455 §4.2.1 asks for HTTP/1.1 or higher). RFC 9110
 *   §7.8 would have a server ignore Upgrade in an HTTP/1.0 request, which would hand the
 *   `fetch` hook a WebSocket request it cannot honour; refusing tells the client why. Only
 *   the upgrade is refused: plain HTTP/1.0 requests are served.
 * - A method other than GET (exactly: methods are case-sensitive, so `get` too): 405 with
 *   `Allow: GET` (RFC 9110 §15.5.6 requires Allow).
 * - Sec-WebSocket-Version missing or not 13: 426 with `Sec-WebSocket-Version: 13` (RFC 6455
 *   §4.4) and `Upgrade: websocket` (RFC 9110 §15.5.22 requires Upgrade in a 426). Checked
 *   before the key, so a client speaking an old draft is told which version to use.
 * - Other failures are 400, as RFC 6455 §4.2.1 suggests. An upgrade request with a body is
 *   refused: a GET body has no meaning (RFC 9110 §9.3.1) and the bytes after the head must
 *   be WebSocket frames.
 */
import { UsageError } from "../api/errors.ts";
import { HttpErrorCode, type HttpError } from "./http-errors.ts";
import { isToken, listHasToken, splitList, trimOws } from "./http-grammar.ts";
import {
  CONNECTION,
  HOST,
  SEC_WEBSOCKET_EXTENSIONS,
  SEC_WEBSOCKET_KEY,
  SEC_WEBSOCKET_PROTOCOL,
  SEC_WEBSOCKET_VERSION,
  TRANSFER_ENCODING,
  UPGRADE,
} from "./http-header-names.ts";
import type { HttpRequest } from "./http-request-parser.ts";

/** RFC 6455 §1.3: appended to the client's key before hashing. */
export const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** The only protocol version this server speaks (RFC 6455 §4.1). */
export const WEBSOCKET_VERSION = 13;

/** `code` of the UsageError thrown by selectProtocol. */
export const PROTOCOL_NOT_OFFERED = "WS_ERR_PROTOCOL_NOT_OFFERED";

/** The parts of a valid upgrade request the server needs to answer it. */
export interface UpgradeAccepted {
  readonly ok: true;
  /** Sec-WebSocket-Key as sent (24 base64 chars): input of acceptKey. */
  readonly key: string;
  readonly version: 13;
  /** Offered subprotocols, in the client's order; empty when none. */
  readonly protocols: string[];
  /** The raw Sec-WebSocket-Extensions value (repeated lines joined with ", "); "" if none. */
  readonly extensions: string;
}

/** A refused upgrade: answer with buildErrorResponse(status, reason, headers), then close. */
export interface UpgradeRejected extends HttpError {
  readonly ok: false;
  /** Headers the answer must carry (Allow for 405; Sec-WebSocket-Version for 426). */
  readonly headers: Readonly<Record<string, string>>;
}

export type UpgradeValidation = UpgradeAccepted | UpgradeRejected;

const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});
/** `protocols` of a request that offers none: shared (frozen), not a new array per request. */
const NO_PROTOCOLS = Object.freeze([]) as unknown as string[];

function rejection(
  status: number,
  code: HttpErrorCode,
  reason: string,
  headers: Readonly<Record<string, string>> = NO_HEADERS,
): UpgradeRejected {
  return Object.freeze({ ok: false, status, headers: Object.freeze(headers), reason, code });
}

const E = HttpErrorCode;
const REJECT_METHOD = rejection(405, E.METHOD_NOT_ALLOWED, "WebSocket upgrade requires GET", {
  Allow: "GET",
});
const REJECT_HTTP10 = rejection(
  400,
  E.UPGRADE_NEEDS_HTTP11,
  "WebSocket upgrade requires HTTP/1.1",
);
const REJECT_HOST = rejection(400, E.BAD_HOST, "Host header field is required");
const REJECT_UPGRADE = rejection(
  400,
  E.BAD_UPGRADE_HEADER,
  "Upgrade header must include websocket",
);
const REJECT_CONNECTION = rejection(
  400,
  E.BAD_CONNECTION_HEADER,
  "Connection header must include upgrade",
);
const REJECT_BODY = rejection(
  400,
  E.UPGRADE_WITH_BODY,
  "WebSocket upgrade request must not have a body",
);
const REJECT_VERSION = rejection(
  426,
  E.BAD_WEBSOCKET_VERSION,
  "Sec-WebSocket-Version must be 13",
  { "Sec-WebSocket-Version": "13", Upgrade: "websocket" },
);
const REJECT_KEY_MISSING = rejection(400, E.BAD_WEBSOCKET_KEY, "Sec-WebSocket-Key is required");
const REJECT_KEY_REPEATED = rejection(
  400,
  E.BAD_WEBSOCKET_KEY,
  "Sec-WebSocket-Key sent more than once",
);
const REJECT_KEY = rejection(
  400,
  E.BAD_WEBSOCKET_KEY,
  "Sec-WebSocket-Key must be base64 of 16 bytes",
);
const REJECT_PROTOCOL = rejection(
  400,
  E.BAD_WEBSOCKET_PROTOCOL,
  "Sec-WebSocket-Protocol must be a list of unique tokens",
);

/** True when the request asks to switch to WebSocket (`Upgrade` lists the token "websocket"). */
export function isUpgradeRequest(request: HttpRequest): boolean {
  return listHasToken(request.headers.get(UPGRADE), "websocket");
}

/**
 * Checks a request against RFC 6455 §4.2.1; see the module comment for the statuses. With
 * `into` (an earlier result its caller is done with), an accepted upgrade is written there
 * and `into` returned, instead of a new object: the server keeps one per pooled handshake.
 */
export function validateUpgrade(request: HttpRequest, into?: UpgradeAccepted): UpgradeValidation {
  const headers = request.headers;
  if (request.version !== "1.1") return REJECT_HTTP10;
  if (request.method !== "GET") return REJECT_METHOD;
  if (!headers.has(HOST)) return REJECT_HOST;
  if (!listHasToken(headers.get(UPGRADE), "websocket")) return REJECT_UPGRADE;
  if (!listHasToken(headers.get(CONNECTION), "upgrade")) return REJECT_CONNECTION;
  if ((request.body !== null && request.body.length > 0) || headers.has(TRANSFER_ENCODING)) {
    return REJECT_BODY;
  }
  const version = headers.get(SEC_WEBSOCKET_VERSION);
  if (version === undefined || trimOws(version) !== "13") return REJECT_VERSION;
  const key = headers.get(SEC_WEBSOCKET_KEY);
  if (key === undefined) return REJECT_KEY_MISSING;
  if (request.repeatedHeaderNames.has(SEC_WEBSOCKET_KEY)) return REJECT_KEY_REPEATED;
  if (!isWebSocketKey(key)) return REJECT_KEY;
  const protocolHeader = headers.get(SEC_WEBSOCKET_PROTOCOL);
  const protocols =
    protocolHeader === undefined ? NO_PROTOCOLS : parseProtocolList(protocolHeader);
  if (protocols === null) return REJECT_PROTOCOL;
  const extensions = headers.get(SEC_WEBSOCKET_EXTENSIONS) ?? "";
  if (into === undefined) {
    return { ok: true, key, version: WEBSOCKET_VERSION, protocols, extensions };
  }
  const result = into as { -readonly [K in keyof UpgradeAccepted]: UpgradeAccepted[K] };
  result.key = key;
  result.protocols = protocols;
  result.extensions = extensions;
  return into;
}

const BASE64_CHAR = new Uint8Array(128);
for (const char of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") {
  BASE64_CHAR[char.charCodeAt(0)] = 1;
}

/**
 * True when `key` is base64 that decodes to exactly 16 bytes (RFC 6455 §4.2.1 item 5):
 * 22 alphabet chars and "==". The last char's unused low bits are not checked, as lenient
 * decoders (and the ws package) do not check them either.
 */
export function isWebSocketKey(key: string): boolean {
  if (key.length !== 24 || key.charCodeAt(22) !== 0x3d || key.charCodeAt(23) !== 0x3d) {
    return false;
  }
  for (let i = 0; i < 22; i++) {
    const code = key.charCodeAt(i);
    if (code >= 128 || BASE64_CHAR[code] === 0) return false;
  }
  return true;
}

/**
 * The tokens of a Sec-WebSocket-Protocol value (RFC 6455 §4.1: 1#token, unique), or null
 * when an element is not a token or repeats. Empty list elements are skipped (RFC 9110
 * §5.6.1). Comparison is exact: subprotocol names are case-sensitive.
 */
export function parseProtocolList(value: string): string[] | null {
  const protocols = splitList(value);
  for (let i = 0; i < protocols.length; i++) {
    const protocol = protocols[i] as string;
    if (!isToken(protocol) || protocols.indexOf(protocol) !== i) return null;
  }
  return protocols;
}

/** Sec-WebSocket-Accept for a client key: base64(SHA-1(key + GUID)) (RFC 6455 §4.2.2). */
export function acceptKey(key: string): string {
  return Bun.CryptoHasher.hash("sha1", key + WEBSOCKET_GUID, "base64");
}

/** Length of a Sec-WebSocket-Accept value: base64 of a 20-byte SHA-1 digest. */
export const ACCEPT_KEY_LENGTH = 28;

/** SHA-1 input for a 24-char key: the key's bytes, then the GUID (written once). */
const acceptInput = new Uint8Array(24 + WEBSOCKET_GUID.length);
for (let i = 0; i < WEBSOCKET_GUID.length; i++) {
  acceptInput[24 + i] = WEBSOCKET_GUID.charCodeAt(i);
}
const acceptDigest = new Uint8Array(20);
const BASE64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64_DIGITS = new Uint8Array(64);
for (let i = 0; i < 64; i++) BASE64_DIGITS[i] = BASE64_ALPHABET.charCodeAt(i);

/**
 * Writes acceptKey(key) as Latin-1 bytes at `target[offset]` and returns the offset after it
 * (offset + ACCEPT_KEY_LENGTH). For a valid key (24 ASCII chars, the case after
 * validateUpgrade) it allocates nothing: the key's bytes and the GUID are hashed from a
 * module buffer into another and base64-encoded straight into `target`. Any other string
 * goes through acceptKey, with the same result.
 */
export function writeAcceptKey(key: string, target: Uint8Array, offset: number): number {
  if (key.length !== 24) return writeLatin1(acceptKey(key), target, offset);
  for (let i = 0; i < 24; i++) {
    const code = key.charCodeAt(i);
    if (code >= 0x80) return writeLatin1(acceptKey(key), target, offset); // UTF-8 differs
    acceptInput[i] = code;
  }
  Bun.SHA1.hash(acceptInput, acceptDigest);
  const digest = acceptDigest;
  let at = offset;
  for (let i = 0; i < 18; i += 3) {
    const triple = (digest[i] << 16) | (digest[i + 1] << 8) | digest[i + 2];
    target[at++] = BASE64_DIGITS[triple >>> 18];
    target[at++] = BASE64_DIGITS[(triple >>> 12) & 63];
    target[at++] = BASE64_DIGITS[(triple >>> 6) & 63];
    target[at++] = BASE64_DIGITS[triple & 63];
  }
  const pair = (digest[18] << 8) | digest[19]; // 2 bytes left: 3 digits and one "="
  target[at++] = BASE64_DIGITS[pair >>> 10];
  target[at++] = BASE64_DIGITS[(pair >>> 4) & 63];
  target[at++] = BASE64_DIGITS[(pair << 2) & 63];
  target[at++] = 0x3d;
  return at;
}

function writeLatin1(text: string, target: Uint8Array, offset: number): number {
  for (let i = 0; i < text.length; i++) target[offset + i] = text.charCodeAt(i);
  return offset + text.length;
}

/**
 * Checks the subprotocol a server hook chose: it must be one the client offered (RFC 6455
 * §4.2.2 item 5.4). Returns it, or null when `chosen` is null/undefined (no subprotocol).
 * Throws UsageError(PROTOCOL_NOT_OFFERED) otherwise: answering with a protocol the client
 * did not offer makes every conforming client fail the connection.
 */
export function selectProtocol(
  offered: readonly string[],
  chosen: string | null | undefined,
): string | null {
  if (chosen === null || chosen === undefined) return null;
  if (offered.includes(chosen)) return chosen;
  const list = offered.length === 0 ? "none" : offered.map((p) => JSON.stringify(p)).join(", ");
  throw new UsageError(
    PROTOCOL_NOT_OFFERED,
    `subprotocol ${JSON.stringify(chosen)} was not offered by the client (offered: ${list}); ` +
      "choose one of the offered values or none",
  );
}
