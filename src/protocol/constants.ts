/**
 * RFC 6455 numbers: opcodes (§5.2, §11.8), roles, close codes (§7.4.1 and the IANA
 * "WebSocket Close Code Number Registry"), and the protocol errors the frame layer reports.
 * Plain `const` numbers, no TS enums, so they inline and grep like the RFC spells them.
 */

/** §5.4: continues a fragmented message. */
export const OPCODE_CONTINUATION = 0x0;
/** §5.6: a UTF-8 text message (validated, §8.1). */
export const OPCODE_TEXT = 0x1;
/** §5.6: a binary message. */
export const OPCODE_BINARY = 0x2;
/** §5.5.1. */
export const OPCODE_CLOSE = 0x8;
/** §5.5.2. */
export const OPCODE_PING = 0x9;
/** §5.5.3. */
export const OPCODE_PONG = 0xa;

/** §5.5: control frames have the opcode's most significant bit set. */
export function isControlOpcode(opcode: number): boolean {
  return (opcode & 0x8) !== 0;
}

/**
 * Which end of the connection the codec serves: a server receives masked frames and sends
 * unmasked ones; a client the reverse (§5.1, §5.3).
 */
export const Role = { Server: 0, Client: 1 } as const;
export type Role = (typeof Role)[keyof typeof Role];

/** §7.4.1: the purpose for which the connection was established has been fulfilled. */
export const CLOSE_NORMAL = 1000;
/** §7.4.1: an endpoint is going away (server shutdown, page navigated away). */
export const CLOSE_GOING_AWAY = 1001;
/** §7.4.1: the peer broke the protocol. */
export const CLOSE_PROTOCOL_ERROR = 1002;
/** §7.4.1: a message of a type the endpoint cannot accept (e.g. binary when only text). */
export const CLOSE_UNSUPPORTED_DATA = 1003;
/** §7.4.1: reported locally when a Close frame had no status code; never sent on the wire. */
export const CLOSE_NO_STATUS = 1005;
/** §7.4.1: reported locally when the connection dropped without a Close frame; never sent. */
export const CLOSE_ABNORMAL = 1006;
/** §7.4.1: message data inconsistent with its type (invalid UTF-8 in a text message). */
export const CLOSE_INVALID_PAYLOAD = 1007;
/** §7.4.1: a message violates the endpoint's policy. */
export const CLOSE_POLICY_VIOLATION = 1008;
/** §7.4.1: a message too big to process. */
export const CLOSE_MESSAGE_TOO_BIG = 1009;
/** §7.4.1: (client) the server did not negotiate an extension the client requires. */
export const CLOSE_MANDATORY_EXTENSION = 1010;
/** §7.4.1: the server met an unexpected condition. */
export const CLOSE_INTERNAL_ERROR = 1011;
/** IANA registry: the service is restarting. */
export const CLOSE_SERVICE_RESTART = 1012;
/** IANA registry: temporary overload; try again later. */
export const CLOSE_TRY_AGAIN_LATER = 1013;
/** IANA registry: a gateway or proxy got an invalid response from upstream. */
export const CLOSE_BAD_GATEWAY = 1014;

/** §5.5: control frames carry at most 125 payload bytes. */
export const CONTROL_PAYLOAD_MAX = 125;
/** §5.5.1: a close payload is a 2-byte code then the reason, so the reason fits in 123. */
export const CLOSE_REASON_BYTES_MAX = CONTROL_PAYLOAD_MAX - 2;
/** §5.2: 2 fixed bytes + 8 bytes of 64-bit length + 4 bytes of masking key. */
export const FRAME_HEADER_BYTES_MAX = 14;

/** Every `code` a protocol error can carry (stable strings: tests and logs match on them). */
export type ProtocolErrorCode =
  | "WS_ERR_UNMASKED_FRAME"
  | "WS_ERR_UNEXPECTED_MASK"
  | "WS_ERR_RSV_BITS"
  | "WS_ERR_RESERVED_OPCODE"
  | "WS_ERR_CONTROL_TOO_LONG"
  | "WS_ERR_FRAGMENTED_CONTROL"
  | "WS_ERR_UNEXPECTED_CONTINUATION"
  | "WS_ERR_EXPECTED_CONTINUATION"
  | "WS_ERR_PAYLOAD_LENGTH_64BIT_MSB"
  | "WS_ERR_MESSAGE_TOO_BIG"
  | "WS_ERR_INVALID_UTF8"
  | "WS_ERR_INVALID_CLOSE_CODE"
  | "WS_ERR_CLOSE_PAYLOAD_1_BYTE"
  | "WS_ERR_BUFFER_UNAVAILABLE";

/**
 * What the frame layer reports when the peer breaks the protocol: the close code to send
 * back, a stable `code`, and a sentence for logs. Instances are shared constants (nothing is
 * allocated when a peer misbehaves); compare them by identity or by `code`.
 */
export interface ProtocolError {
  readonly closeCode: number;
  readonly code: ProtocolErrorCode;
  readonly message: string;
}

function protocolError(
  closeCode: number,
  code: ProtocolErrorCode,
  message: string,
): ProtocolError {
  return Object.freeze({ closeCode, code, message });
}

/** §5.1: a server must close when it receives an unmasked frame. */
export const WS_ERR_UNMASKED_FRAME = protocolError(
  CLOSE_PROTOCOL_ERROR,
  "WS_ERR_UNMASKED_FRAME",
  "a client frame must be masked (RFC 6455 §5.1)",
);
/** §5.1: a client must close when it receives a masked frame. */
export const WS_ERR_UNEXPECTED_MASK = protocolError(
  CLOSE_PROTOCOL_ERROR,
  "WS_ERR_UNEXPECTED_MASK",
  "a server frame must not be masked (RFC 6455 §5.1)",
);
/** §5.2: RSV1-3 must be 0 unless an extension defines them. */
export const WS_ERR_RSV_BITS = protocolError(
  CLOSE_PROTOCOL_ERROR,
  "WS_ERR_RSV_BITS",
  "RSV bits set without a negotiated extension that defines them (RFC 6455 §5.2)",
);
/** §5.2: opcodes 0x3-0x7 and 0xB-0xF are reserved. */
export const WS_ERR_RESERVED_OPCODE = protocolError(
  CLOSE_PROTOCOL_ERROR,
  "WS_ERR_RESERVED_OPCODE",
  "reserved opcode (RFC 6455 §5.2)",
);
/** §5.5: control frame payloads are at most 125 bytes. */
export const WS_ERR_CONTROL_TOO_LONG = protocolError(
  CLOSE_PROTOCOL_ERROR,
  "WS_ERR_CONTROL_TOO_LONG",
  "control frame payload longer than 125 bytes (RFC 6455 §5.5)",
);
/** §5.5: control frames must not be fragmented. */
export const WS_ERR_FRAGMENTED_CONTROL = protocolError(
  CLOSE_PROTOCOL_ERROR,
  "WS_ERR_FRAGMENTED_CONTROL",
  "control frame without FIN (RFC 6455 §5.5)",
);
/** §5.4: a continuation frame needs a fragmented message in progress. */
export const WS_ERR_UNEXPECTED_CONTINUATION = protocolError(
  CLOSE_PROTOCOL_ERROR,
  "WS_ERR_UNEXPECTED_CONTINUATION",
  "continuation frame with no fragmented message in progress (RFC 6455 §5.4)",
);
/** §5.4: fragments of one message must not interleave with another data message. */
export const WS_ERR_EXPECTED_CONTINUATION = protocolError(
  CLOSE_PROTOCOL_ERROR,
  "WS_ERR_EXPECTED_CONTINUATION",
  "new data message while a fragmented message is in progress (RFC 6455 §5.4)",
);
/** §5.2: the most significant bit of a 64-bit payload length must be 0. */
export const WS_ERR_PAYLOAD_LENGTH_64BIT_MSB = protocolError(
  CLOSE_PROTOCOL_ERROR,
  "WS_ERR_PAYLOAD_LENGTH_64BIT_MSB",
  "64-bit payload length with the most significant bit set (RFC 6455 §5.2)",
);
/** §7.4.1 (1009): the assembled message would exceed maxPayloadLength. */
export const WS_ERR_MESSAGE_TOO_BIG = protocolError(
  CLOSE_MESSAGE_TOO_BIG,
  "WS_ERR_MESSAGE_TOO_BIG",
  "message longer than maxPayloadLength",
);
/** §8.1 (1007): a text message or close reason is not valid UTF-8. */
export const WS_ERR_INVALID_UTF8 = protocolError(
  CLOSE_INVALID_PAYLOAD,
  "WS_ERR_INVALID_UTF8",
  "invalid UTF-8 in a text message or close reason (RFC 6455 §8.1)",
);
/** §7.4: a close code that must not appear on the wire or is unassigned. */
export const WS_ERR_INVALID_CLOSE_CODE = protocolError(
  CLOSE_PROTOCOL_ERROR,
  "WS_ERR_INVALID_CLOSE_CODE",
  "invalid close code (RFC 6455 §7.4)",
);
/** §5.5.1: a close payload is empty or starts with a 2-byte code; 1 byte is malformed. */
export const WS_ERR_CLOSE_PAYLOAD_1_BYTE = protocolError(
  CLOSE_PROTOCOL_ERROR,
  "WS_ERR_CLOSE_PAYLOAD_1_BYTE",
  "close frame payload of 1 byte (RFC 6455 §5.5.1)",
);
/**
 * Not the peer's fault: `messageBuffers.acquire` returned null (the pool is exhausted), so
 * the message cannot be assembled. 1013 tells the peer to try again later.
 */
export const WS_ERR_BUFFER_UNAVAILABLE = protocolError(
  CLOSE_TRY_AGAIN_LATER,
  "WS_ERR_BUFFER_UNAVAILABLE",
  "no buffer available to assemble the message",
);

/** Tells a ProtocolError from any other result (its `code` is a string). */
export function isProtocolError(value: unknown): value is ProtocolError {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { code?: unknown }).code === "string" &&
    typeof (value as { closeCode?: unknown }).closeCode === "number"
  );
}
