import { errnoName } from "./errno.ts";

/**
 * A failed system call: carries the call's name, the errno, its symbolic name and, where we
 * know the usual cause, a hint that says what to do.
 */
export class SystemError extends Error {
  readonly call: string;
  readonly errno: number;
  readonly code: string;
  readonly hint: string | undefined;

  constructor(call: string, errno: number, hint?: string) {
    const positive = errno < 0 ? -errno : errno;
    const code = errnoName(positive);
    super(`${call} failed: ${code} (errno ${positive})${hint ? ` — ${hint}` : ""}`);
    this.name = "SystemError";
    this.call = call;
    this.errno = positive;
    this.code = code;
    this.hint = hint;
  }
}

/**
 * Every `code` a UsageError carries, one line each on when it is thrown. These are local
 * misuse (a bug in the calling code); what a peer does wrong is never thrown, it is reported
 * with its own codes: ProtocolErrorCode (src/protocol/constants.ts) and HttpErrorCode
 * (src/protocol/http-errors.ts). No value here equals one of those.
 */
export const ErrorCode = {
  // ---- transports (every backend throws the same code for the same misuse)
  /** `listenerPort(id)` with an id that `listen` never returned. */
  NO_LISTENER: "WS_ERR_NO_LISTENER",
  /**
   * `listen`/`connect` with a host that is not an IPv4 literal ("localhost" is accepted), or
   * a port outside 1..65535 (connect) or 0..65535 (listen). Thrown before a slot is taken.
   */
  BAD_ADDRESS: "WS_ERR_BAD_ADDRESS",
  /** `send`/`sendPair`/`sendLoaned` with a range not of integers 0 <= start <= end <= length. */
  BAD_RANGE: "WS_ERR_BAD_RANGE",
  /** `listen`/`connect` after `dispose()` (or `closeNow()`) began. */
  DISPOSED: "WS_ERR_DISPOSED",
  /** `createTransport` with a backend name it does not know. */
  BAD_BACKEND: "WS_ERR_BAD_BACKEND",
  /** `createTransport` on a platform that has no native backend yet. */
  NO_BACKEND: "WS_ERR_NO_BACKEND",
  /** A `serve()` option or a transport size out of its range (see TRANSPORT_DEFAULTS). */
  BAD_OPTION: "WS_ERR_BAD_OPTION",
  /** `FakeNetwork.step()`/`runUntilIdle()` called from inside a handler. */
  REENTRANT_STEP: "WS_ERR_REENTRANT_STEP",

  // ---- memory (src/pool)
  /** A region, pool or slot used after free()/destroy(). */
  USE_AFTER_FREE: "WS_ERR_USE_AFTER_FREE",
  /** free()/destroy() called twice. */
  DOUBLE_FREE: "WS_ERR_DOUBLE_FREE",
  /** A slot or object released while it was not in use. */
  DOUBLE_RELEASE: "WS_ERR_DOUBLE_RELEASE",
  /** A slot id that this pool never handed out (out of range or not an integer). */
  FOREIGN_SLOT: "WS_ERR_FOREIGN_SLOT",
  /** More objects released than the pool ever handed out. */
  OVER_RELEASE: "WS_ERR_OVER_RELEASE",
  /** A size, count, CPU or node outside what a pool or affinity call accepts. */
  INVALID_ARGUMENT: "WS_ERR_INVALID_ARGUMENT",

  // ---- WebSocket API (ServerWebSocket)
  /** `ws.ping()`/`ws.pong()` with more than 125 payload bytes (the peer's is CONTROL_TOO_LONG). */
  PING_PAYLOAD_TOO_LONG: "WS_ERR_PING_PAYLOAD_TOO_LONG",
  /** `ws.close(code)` with a code an endpoint may not send (the peer's is INVALID_CLOSE_CODE). */
  CLOSE_CODE_NOT_SENDABLE: "WS_ERR_CLOSE_CODE_NOT_SENDABLE",
  /** A pub/sub topic that is not a string. */
  BAD_TOPIC: "WS_ERR_BAD_TOPIC",
  /** `ws.binaryType` set to something other than nodebuffer, arraybuffer or uint8array. */
  BAD_BINARY_TYPE: "WS_ERR_BAD_BINARY_TYPE",

  // ---- what upgrade/fetch hooks answer (src/protocol)
  /** An upgrade hook chose a subprotocol the client did not offer. */
  PROTOCOL_NOT_OFFERED: "WS_ERR_PROTOCOL_NOT_OFFERED",
  /** A response header name that is no token, or a value with CR, LF or other controls. */
  INVALID_HEADER: "WS_ERR_INVALID_HEADER",
  /** `buildErrorResponse` with a status outside 400..599. */
  INVALID_STATUS: "WS_ERR_INVALID_STATUS",
  /** A hook's Response body longer than maxBodyBytes. */
  RESPONSE_TOO_LARGE: "WS_ERR_HTTP_RESPONSE_TOO_LARGE",
  /** A hook's Response whose body was already read. */
  RESPONSE_BODY_USED: "WS_ERR_HTTP_RESPONSE_BODY_USED",
  /** A hook's Response body stream that yields a chunk that is not bytes. */
  RESPONSE_BODY_INVALID: "WS_ERR_HTTP_RESPONSE_BODY_INVALID",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Misuse of an API (double release, use after free...): a bug in the caller, not the system. */
export class UsageError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = "UsageError";
    this.code = code;
  }
}

/** `asserts cond`; keep messages constant so the hot path builds no strings. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}
