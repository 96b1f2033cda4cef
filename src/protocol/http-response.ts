/**
 * HTTP/1.1 responses of the upgrade layer, as bytes ready to send: the 101 that completes a
 * WebSocket handshake, short error answers, and the head of any Web `Response` a user hook
 * returns (buildResponseHead: the server writes its body itself, see
 * src/server/http-response-writer.ts), or such a Response read whole (serializeResponse).
 *
 * Error answers always close the connection (`Connection: close`): after a request we could
 * not read or would not serve, the next bytes on the connection cannot be trusted to start a
 * request. A hook's Response says `Connection: keep-alive` or `close`, as its caller decides
 * (RFC 9112 §9.3, §9.6). Header names and values given by callers are validated (token
 * names; no CR, LF, NUL or other controls in values, RFC 9110 §5.5) so nothing can inject a
 * header line.
 */
import { UsageError } from "../api/errors.ts";
import { concatBytes } from "./bytes.ts";
import { ACCEPT_KEY_LENGTH, writeAcceptKey } from "./handshake.ts";
import { encodeLatin1, isFieldValue, isToken } from "./http-grammar.ts";

/** `code` of the UsageErrors thrown here. */
export const INVALID_HEADER = "WS_ERR_INVALID_HEADER";
export const INVALID_STATUS = "WS_ERR_INVALID_STATUS";
export const RESPONSE_TOO_LARGE = "WS_ERR_HTTP_RESPONSE_TOO_LARGE";
export const RESPONSE_BODY_USED = "WS_ERR_HTTP_RESPONSE_BODY_USED";
export const RESPONSE_BODY_INVALID = "WS_ERR_HTTP_RESPONSE_BODY_INVALID";

/** Default bound on a fetch/upgrade hook's response body read by serializeResponse. */
export const DEFAULT_MAX_RESPONSE_BODY_BYTES = 8 * 1024 * 1024;

/** Extra headers in any of the shapes the Fetch API accepts. */
export type HeadersInput =
  | Headers
  | Readonly<Record<string, string>>
  | readonly (readonly [string, string])[];

/** Standard reason phrases (RFC 9110 §15, RFC 6585, RFC 7725, RFC 8297, RFC 4918). */
export const STATUS_TEXT: Readonly<Record<number, string>> = Object.freeze({
  100: "Continue",
  101: "Switching Protocols",
  102: "Processing",
  103: "Early Hints",
  200: "OK",
  201: "Created",
  202: "Accepted",
  203: "Non-Authoritative Information",
  204: "No Content",
  205: "Reset Content",
  206: "Partial Content",
  207: "Multi-Status",
  208: "Already Reported",
  226: "IM Used",
  300: "Multiple Choices",
  301: "Moved Permanently",
  302: "Found",
  303: "See Other",
  304: "Not Modified",
  305: "Use Proxy",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  402: "Payment Required",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  406: "Not Acceptable",
  407: "Proxy Authentication Required",
  408: "Request Timeout",
  409: "Conflict",
  410: "Gone",
  411: "Length Required",
  412: "Precondition Failed",
  413: "Content Too Large",
  414: "URI Too Long",
  415: "Unsupported Media Type",
  416: "Range Not Satisfiable",
  417: "Expectation Failed",
  421: "Misdirected Request",
  422: "Unprocessable Content",
  423: "Locked",
  424: "Failed Dependency",
  425: "Too Early",
  426: "Upgrade Required",
  428: "Precondition Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  451: "Unavailable For Legal Reasons",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
  506: "Variant Also Negotiates",
  507: "Insufficient Storage",
  508: "Loop Detected",
  510: "Not Extended",
  511: "Network Authentication Required",
});

/** Headers the 101 writes itself, or that a 1xx must not carry (RFC 9110 §8.6, RFC 9112 §6.1). */
const RESERVED_IN_101 = new Set([
  "upgrade",
  "connection",
  "sec-websocket-accept",
  "sec-websocket-protocol",
  "content-length",
  "transfer-encoding",
]);
/** Headers buildErrorResponse writes itself. */
const RESERVED_IN_ERROR = new Set([
  "connection",
  "content-length",
  "content-type",
  "transfer-encoding",
]);
/**
 * Hop-by-hop and framing headers of a hook's Response that serializeResponse replaces with
 * its own (RFC 9110 §7.6.1); set-cookie is written from getSetCookie(), one line per cookie.
 */
const REPLACED_FROM_RESPONSE = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "transfer-encoding",
  "content-length",
  "set-cookie",
]);

const CRLF = "\r\n";
const SWITCHING_PROTOCOLS_HEAD =
  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
  "Sec-WebSocket-Accept: ";

/**
 * The 101 response completing a handshake (RFC 6455 §4.2.2 item 5). `protocol` must be a
 * token (check it with selectProtocol first); `extraHeaders` (Sec-WebSocket-Extensions,
 * Set-Cookie...) must not repeat the headers written here, nor Content-Length or
 * Transfer-Encoding (RFC 9110 §8.6). Throws UsageError(INVALID_HEADER) on any of that.
 */
export function build101Response(
  acceptKey: string,
  protocol?: string | null,
  extraHeaders?: HeadersInput,
  extensions?: string,
): Uint8Array {
  if (acceptKey.length === 0 || !isFieldValue(acceptKey)) {
    throw new UsageError(INVALID_HEADER, "build101Response: acceptKey must come from acceptKey()");
  }
  let text = SWITCHING_PROTOCOLS_HEAD + acceptKey + CRLF;
  if (protocol !== undefined && protocol !== null) {
    if (!isToken(protocol)) {
      const quoted = JSON.stringify(protocol);
      const message = `build101Response: subprotocol ${quoted} is not a token`;
      throw new UsageError(INVALID_HEADER, message);
    }
    text += "Sec-WebSocket-Protocol: " + protocol + CRLF;
  }
  if (extensions !== undefined) text += "Sec-WebSocket-Extensions: " + extensions + CRLF;
  if (extraHeaders !== undefined) {
    text += headerLines(extraHeaders, RESERVED_IN_101, "build101Response");
  }
  return encodeLatin1(text + CRLF);
}

/** The head of every 101 up to the accept value, as bytes (written by write101Response). */
const SWITCHING_PROTOCOLS_HEAD_BYTES = encodeLatin1(SWITCHING_PROTOCOLS_HEAD);

/**
 * The same bytes as `build101Response(acceptKey(clientKey), protocol, extraHeaders)`, written
 * into `target` from offset 0; returns their length, or -1 when they do not fit (nothing
 * useful is written then: build the response instead). Without a subprotocol or extra
 * headers it allocates nothing: the server writes every 101 into one scratch buffer, which
 * the transport copies on send. Throws as build101Response does. `clientKey` is the
 * Sec-WebSocket-Key as sent.
 */
export function write101Response(
  target: Uint8Array,
  clientKey: string,
  protocol?: string | null,
  extraHeaders?: HeadersInput,
  extensions?: string,
): number {
  let lines = "";
  if (protocol !== undefined && protocol !== null) {
    if (!isToken(protocol)) {
      const quoted = JSON.stringify(protocol);
      const message = `build101Response: subprotocol ${quoted} is not a token`;
      throw new UsageError(INVALID_HEADER, message);
    }
    lines = "Sec-WebSocket-Protocol: " + protocol + CRLF;
  }
  // Built by negotiateDeflate from tokens only: nothing to check.
  if (extensions !== undefined) lines += "Sec-WebSocket-Extensions: " + extensions + CRLF;
  if (extraHeaders !== undefined) {
    lines += headerLines(extraHeaders, RESERVED_IN_101, "build101Response");
  }
  const head = SWITCHING_PROTOCOLS_HEAD_BYTES;
  const length = head.length + ACCEPT_KEY_LENGTH + 2 + lines.length + 2;
  if (length > target.length) return -1;
  target.set(head);
  let at = writeAcceptKey(clientKey, target, head.length);
  target[at++] = 0x0d;
  target[at++] = 0x0a;
  for (let i = 0; i < lines.length; i++) target[at++] = lines.charCodeAt(i);
  target[at++] = 0x0d;
  target[at++] = 0x0a;
  return at;
}

/**
 * A short error answer: status line with the standard phrase, `Connection: close`,
 * `Content-Type: text/plain; charset=utf-8`, `Content-Length`, a Date, the given headers
 * (a Date among them replaces ours), and `reason` as the body. When `headers` carry
 * `Upgrade` (a 426), Connection also lists "Upgrade" (RFC 9110 §7.8).
 */
export function buildErrorResponse(
  status: number,
  reason: string,
  headers?: HeadersInput,
): Uint8Array {
  if (!Number.isInteger(status) || status < 400 || status > 599) {
    const message = `buildErrorResponse: status must be 400-599, got ${status}`;
    throw new UsageError(INVALID_STATUS, message);
  }
  const extra =
    headers === undefined ? "" : headerLines(headers, RESERVED_IN_ERROR, "buildErrorResponse");
  const body = textEncoder.encode(reason);
  const connection = hasHeaderLine(extra, "upgrade") ? "Upgrade, close" : "close";
  const date = hasHeaderLine(extra, "date") ? "" : "Date: " + httpDate() + CRLF;
  const head =
    statusLine(status, "") +
    "Connection: " + connection + CRLF +
    "Content-Type: text/plain; charset=utf-8" + CRLF +
    "Content-Length: " + body.length + CRLF +
    date +
    extra +
    CRLF;
  return concatHead(head, body, true);
}

export interface SerializeOptions {
  /** Bound on the body read from the Response (default 8 MiB): past it, UsageError. */
  maxBodyBytes?: number;
  /** The request's method: for HEAD the body is left out, its Content-Length kept. */
  requestMethod?: string;
}

/**
 * A Web `Response` from a user hook as HTTP/1.1 bytes: the head buildResponseHead writes
 * with `Connection: close` and a `Content-Length` computed from the body (read fully, up to
 * `maxBodyBytes`), then the body. 204 and 304 go without body or Content-Length (RFC 9110
 * §8.6, §15.4.5).
 * Rejects with UsageError: RESPONSE_TOO_LARGE past the bound (the stream is cancelled),
 * RESPONSE_BODY_USED when the body was already read, INVALID_HEADER for a value that is not
 * Latin-1. The server should then answer 500.
 */
export async function serializeResponse(
  response: Response,
  options: SerializeOptions = {},
): Promise<Uint8Array> {
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_RESPONSE_BODY_BYTES;
  const bodyless = isBodylessStatus(response.status);
  const body = bodyless ? await discardBody(response) : await readBody(response, maxBodyBytes);
  const head = buildResponseHead(response, {
    keepAlive: false,
    framing: bodyless ? BodyFraming.NONE : BodyFraming.LENGTH,
    contentLength: body.length,
  });
  if (bodyless || options.requestMethod === "HEAD" || body.length === 0) return head;
  const bytes = new Uint8Array(head.length + body.length);
  bytes.set(head);
  bytes.set(body, head.length);
  return bytes;
}

/** How a response's body is delimited on the wire (RFC 9112 §6.3). */
export const BodyFraming = {
  /** No body and no framing header: 1xx, 204, 304. */
  NONE: 0,
  /** `Content-Length: contentLength`. */
  LENGTH: 1,
  /** `Transfer-Encoding: chunked`. */
  CHUNKED: 2,
  /** No framing header: the body ends when the connection closes (HTTP/1.0 clients). */
  CLOSE: 3,
} as const;
export type BodyFraming = (typeof BodyFraming)[keyof typeof BodyFraming];

export interface ResponseHeadOptions {
  /** `Connection: keep-alive` when true, else `Connection: close`. */
  keepAlive: boolean;
  /** With keepAlive: `Keep-Alive: timeout=N` (seconds), so clients drop an idle connection
   * before we do; 0 or absent leaves the header out. */
  keepAliveTimeoutSeconds?: number;
  framing: BodyFraming;
  /** With BodyFraming.LENGTH: the body's length in bytes. */
  contentLength?: number;
}

/**
 * The head of a hook's Response: status line (standard phrase, else the Response's
 * statusText), its headers (hop-by-hop and framing ones replaced by ours, RFC 9110 §7.6.1;
 * one line per Set-Cookie), `Connection` (listing "Upgrade" too when the Response has an
 * Upgrade header, RFC 9110 §7.8), a Date unless the Response has one, and the framing header
 * `options.framing` asks for. Throws UsageError(INVALID_HEADER) for a value that is not
 * Latin-1.
 */
export function buildResponseHead(response: Response, options: ResponseHeadOptions): Uint8Array {
  let head = statusLine(response.status, response.statusText);
  let hasDate = false;
  const headers = response.headers;
  for (const [name, value] of headers) {
    if (REPLACED_FROM_RESPONSE.has(name)) continue;
    if (name === "date") hasDate = true;
    head += checkedLine(name, value, "serializeResponse");
  }
  for (const cookie of headers.getSetCookie()) {
    head += checkedLine("set-cookie", cookie, "serializeResponse");
  }
  const persistence = options.keepAlive ? "keep-alive" : "close";
  head += "Connection: " + (headers.has("upgrade") ? "Upgrade, " : "") + persistence + CRLF;
  const timeout = options.keepAliveTimeoutSeconds ?? 0;
  if (options.keepAlive && timeout > 0) head += "Keep-Alive: timeout=" + timeout + CRLF;
  if (!hasDate) head += "Date: " + httpDate() + CRLF;
  if (options.framing === BodyFraming.LENGTH) {
    head += "Content-Length: " + (options.contentLength ?? 0) + CRLF;
  } else if (options.framing === BodyFraming.CHUNKED) {
    head += "Transfer-Encoding: chunked" + CRLF;
  }
  return encodeLatin1(head + CRLF);
}

/** 1xx, 204 and 304 have no body (RFC 9110 §6.4.1). */
export function isBodylessStatus(status: number): boolean {
  return status === 204 || status === 304 || (status >= 100 && status < 200);
}

/**
 * The Content-Length a Response's own headers declare, when it is one valid value
 * (digits only, RFC 9110 §8.6); else undefined. The Fetch API keeps such a header as given.
 */
export function declaredContentLength(response: Response): number | undefined {
  const value = response.headers.get("content-length");
  if (value === null || !/^[0-9]{1,15}$/.test(value)) return undefined;
  return Number(value);
}

function statusLine(status: number, statusText: string): string {
  const phrase = STATUS_TEXT[status] ?? (isFieldValue(statusText) ? statusText : "");
  return "HTTP/1.1 " + status + " " + phrase + CRLF;
}

/** Validated "Name: value\r\n" lines; throws UsageError on injection or reserved names. */
function headerLines(
  headers: HeadersInput,
  reserved: ReadonlySet<string>,
  caller: string,
): string {
  let lines = "";
  const add = (name: string, value: string) => {
    if (typeof name === "string" && reserved.has(name.toLowerCase())) {
      const message = `${caller}: header ${JSON.stringify(name)} is written by ${caller} itself`;
      throw new UsageError(INVALID_HEADER, message);
    }
    lines += checkedLine(name, value, caller);
  };
  if (headers instanceof Headers) {
    headers.forEach((value, name) => {
      if (name !== "set-cookie") add(name, value);
    });
    for (const cookie of headers.getSetCookie()) add("set-cookie", cookie);
  } else if (Array.isArray(headers)) {
    for (const [name, value] of headers as readonly (readonly [string, string])[]) add(name, value);
  } else {
    for (const [name, value] of Object.entries(headers)) add(name, value);
  }
  return lines;
}

function checkedLine(name: string, value: string, caller: string): string {
  if (typeof name !== "string" || !isToken(name)) {
    const message = `${caller}: header name ${JSON.stringify(name)} is not a token`;
    throw new UsageError(INVALID_HEADER, message);
  }
  if (typeof value !== "string" || !isFieldValue(value)) {
    throw new UsageError(
      INVALID_HEADER,
      `${caller}: value of header ${JSON.stringify(name)} has CR, LF, another control ` +
        "character or a character above U+00FF",
    );
  }
  return name + ": " + value + CRLF;
}

/** True when `lines` (from headerLines) has a line named `lowerName`. */
function hasHeaderLine(lines: string, lowerName: string): boolean {
  if (lines.length === 0) return false;
  for (const line of lines.split(CRLF)) {
    const colon = line.indexOf(":");
    if (colon === lowerName.length && line.slice(0, colon).toLowerCase() === lowerName) return true;
  }
  return false;
}

const textEncoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

function concatHead(head: string, body: Uint8Array, includeBody: boolean): Uint8Array {
  const bodyLength = includeBody ? body.length : 0;
  const bytes = new Uint8Array(head.length + bodyLength);
  for (let i = 0; i < head.length; i++) bytes[i] = head.charCodeAt(i);
  if (bodyLength > 0) bytes.set(body, head.length);
  return bytes;
}

async function discardBody(response: Response): Promise<Uint8Array> {
  if (response.body !== null && !response.bodyUsed) await response.body.cancel();
  return EMPTY;
}

async function readBody(response: Response, maxBodyBytes: number): Promise<Uint8Array> {
  if (response.bodyUsed) {
    const message = "serializeResponse: the Response body was already read";
    throw new UsageError(RESPONSE_BODY_USED, message);
  }
  if (response.body === null) return EMPTY;
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const chunk = toBodyBytes(value);
    total += chunk.length;
    if (total > maxBodyBytes) {
      await reader.cancel();
      throw new UsageError(
        RESPONSE_TOO_LARGE,
        `serializeResponse: response body exceeds ${maxBodyBytes} bytes (maxBodyBytes)`,
      );
    }
    chunks.push(chunk);
  }
  return chunks.length === 0 ? new Uint8Array(0) : concatBytes(chunks);
}

/**
 * A chunk a body stream yielded, as bytes: Uint8Arrays as they are, other views and
 * ArrayBuffers viewed (not copied), strings UTF-8 encoded (Bun's streams carry them).
 * Throws UsageError(RESPONSE_BODY_INVALID) for anything else.
 */
export function toBodyBytes(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (typeof value === "string") return textEncoder.encode(value);
  if (ArrayBuffer.isView(value)) {
    return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  const message = "serializeResponse: the body stream yielded a chunk that is not bytes";
  throw new UsageError(RESPONSE_BODY_INVALID, message);
}

let dateSecond = -1;
let dateText = "";

/** IMF-fixdate of now (RFC 9110 §5.6.7), formatted at most once a second. */
export function httpDate(nowMs: number = Date.now()): string {
  const second = Math.floor(nowMs / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(second * 1000).toUTCString();
  }
  return dateText;
}
