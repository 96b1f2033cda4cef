/**
 * Errors of the HTTP/1.1 upgrade layer. A request that fails to parse or validate yields one
 * of these plain records (never a throw): the server answers `status` (with `reason` as the
 * body, see buildErrorResponse) and closes the connection. Tests assert on `code`.
 */

/** Stable codes, one per rule broken. */
export const HttpErrorCode = {
  /** Request line is not `method SP request-target SP HTTP-version CRLF` (RFC 9112 §3). */
  BAD_REQUEST_LINE: "WS_ERR_HTTP_BAD_REQUEST_LINE",
  /** Well-formed HTTP-version other than HTTP/1.1 and HTTP/1.0 (RFC 9110 §15.6.6: 505). */
  VERSION_NOT_SUPPORTED: "WS_ERR_HTTP_VERSION_NOT_SUPPORTED",
  /** Request-target longer than the header byte limit allows (RFC 9112 §3: 414). */
  URI_TOO_LONG: "WS_ERR_HTTP_URI_TOO_LONG",
  /** Request line plus header fields exceed maxHeaderBytes (RFC 6585 §5: 431). */
  HEADERS_TOO_LARGE: "WS_ERR_HTTP_HEADERS_TOO_LARGE",
  /** More header field lines than maxHeaderCount (431). */
  TOO_MANY_HEADERS: "WS_ERR_HTTP_TOO_MANY_HEADERS",
  /** A field line that is not `token ":" OWS value OWS` (RFC 9112 §5, RFC 9110 §5.5). */
  BAD_HEADER: "WS_ERR_HTTP_BAD_HEADER",
  /** Line folding (obs-fold), rejected as RFC 9112 §5.2 allows. */
  OBS_FOLD: "WS_ERR_HTTP_OBS_FOLD",
  /** A CR not followed by LF (RFC 9112 §2.2). */
  BARE_CR: "WS_ERR_HTTP_BARE_CR",
  /** A line ended by LF alone: we require CRLF (RFC 9112 §2.2 makes accepting it optional). */
  BARE_LF: "WS_ERR_HTTP_BARE_LF",
  /** Host missing, repeated or not a valid authority (RFC 9112 §3.2: 400). */
  BAD_HOST: "WS_ERR_HTTP_BAD_HOST",
  /** Content-Length not 1*DIGIT, or conflicting values (RFC 9110 §8.6, RFC 9112 §6.3). */
  BAD_CONTENT_LENGTH: "WS_ERR_HTTP_BAD_CONTENT_LENGTH",
  /** Body larger than maxBodyBytes (RFC 9110 §15.5.14: 413). */
  BODY_TOO_LARGE: "WS_ERR_HTTP_BODY_TOO_LARGE",
  /** Transfer-Encoding with Content-Length, chunked not last or twice (RFC 9112 §6.1, §6.3). */
  BAD_TRANSFER_ENCODING: "WS_ERR_HTTP_BAD_TRANSFER_ENCODING",
  /** A transfer coding other than chunked (RFC 9112 §6.1: 501). */
  UNSUPPORTED_TRANSFER_ENCODING: "WS_ERR_HTTP_UNSUPPORTED_TRANSFER_ENCODING",
  /** Malformed chunked framing (RFC 9112 §7.1). */
  BAD_CHUNK: "WS_ERR_HTTP_BAD_CHUNK",

  // Building the Web Request a hook receives (web-request.ts).
  /** A method the Web Request cannot carry as sent (RFC 9110 §9.1: 501), see web-request.ts. */
  METHOD_NOT_IMPLEMENTED: "WS_ERR_HTTP_METHOD_NOT_IMPLEMENTED",
  /** Host (or an absolute-form target) that the WHATWG URL parser refuses (400). */
  BAD_URL: "WS_ERR_HTTP_BAD_URL",

  // RFC 6455 §4.2.1 handshake checks (validateUpgrade).
  /** Upgrade handshake with a method other than GET (405 with Allow: GET). */
  METHOD_NOT_ALLOWED: "WS_ERR_HTTP_METHOD_NOT_ALLOWED",
  /** `Upgrade` lacks the token "websocket". */
  BAD_UPGRADE_HEADER: "WS_ERR_HTTP_BAD_UPGRADE_HEADER",
  /** `Connection` lacks the token "upgrade". */
  BAD_CONNECTION_HEADER: "WS_ERR_HTTP_BAD_CONNECTION_HEADER",
  /** `Sec-WebSocket-Version` missing or not 13 (426 with Sec-WebSocket-Version: 13). */
  BAD_WEBSOCKET_VERSION: "WS_ERR_HTTP_BAD_WEBSOCKET_VERSION",
  /** `Sec-WebSocket-Key` missing, repeated, or not base64 of 16 bytes. */
  BAD_WEBSOCKET_KEY: "WS_ERR_HTTP_BAD_WEBSOCKET_KEY",
  /** `Sec-WebSocket-Protocol` not a list of unique tokens (RFC 6455 §4.1). */
  BAD_WEBSOCKET_PROTOCOL: "WS_ERR_HTTP_BAD_WEBSOCKET_PROTOCOL",
  /** An upgrade request that carries a body. */
  UPGRADE_WITH_BODY: "WS_ERR_HTTP_UPGRADE_WITH_BODY",
  /** An upgrade request over HTTP/1.0 (RFC 6455 §4.2.1 asks for HTTP/1.1 or higher: 400). */
  UPGRADE_NEEDS_HTTP11: "WS_ERR_HTTP_UPGRADE_NEEDS_HTTP11",
} as const;

export type HttpErrorCode = (typeof HttpErrorCode)[keyof typeof HttpErrorCode];

/** Why a request was refused: the status to answer, a short human reason, a stable code. */
export interface HttpError {
  readonly status: number;
  readonly reason: string;
  readonly code: HttpErrorCode;
}

/** Errors are built once at module load, so the failure path allocates nothing. */
export function httpError(status: number, code: HttpErrorCode, reason: string): HttpError {
  return Object.freeze({ status, reason, code });
}

/** A 400 Bad Request with a stable code. */
export function badRequest(code: HttpErrorCode, reason: string): HttpError {
  return httpError(400, code, reason);
}

/** Shared by the request-line scanner and the target-form checks. */
export const ERR_TARGET = badRequest(HttpErrorCode.BAD_REQUEST_LINE, "invalid request-target");
