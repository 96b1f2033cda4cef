/**
 * Close frame payloads (RFC 6455 §5.5.1, §7.4): an optional 2-byte big-endian status code,
 * then an optional UTF-8 reason; the whole payload is at most 125 bytes.
 */
import { assert } from "../api/errors.ts";
import {
  CLOSE_NO_STATUS,
  CLOSE_REASON_BYTES_MAX,
  type ProtocolError,
  WS_ERR_CLOSE_PAYLOAD_1_BYTE,
  WS_ERR_INVALID_CLOSE_CODE,
  WS_ERR_INVALID_UTF8,
} from "./constants.ts";
import { isValidUtf8 } from "./utf8.ts";

/**
 * Whether `code` may appear in a Close frame on the wire (§7.4.1, §7.4.2, and the IANA
 * registry, as the Autobahn suite checks): 1000-1003 and 1007-1014 (defined), 3000-4999
 * (libraries, frameworks, applications). Rejected: 0-999 (unused), 1004 (reserved), 1005
 * and 1006 (local-only), 1015 (TLS failure, local-only), 1016-2999 (unassigned), 5000+.
 */
export function isValidCloseCode(code: number): boolean {
  if (!Number.isInteger(code)) return false;
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999);
}

/** A parsed close payload: `data[reasonStart..reasonEnd)` is the UTF-8 reason. */
export interface ClosePayload {
  /** The status code, or 1005 (CLOSE_NO_STATUS) when the payload was empty. */
  readonly code: number;
  readonly reasonStart: number;
  readonly reasonEnd: number;
}

/**
 * Parses the (unmasked) close payload `data[start..end)`. Errors: a 1-byte payload and an
 * invalid code give 1002, a reason that is not UTF-8 gives 1007 (§5.5.1, §7.4, §8.1). Close
 * frames are rare, so this returns a fresh object (`isProtocolError` tells the two apart).
 */
export function parseClosePayload(
  data: Uint8Array,
  start: number,
  end: number,
): ClosePayload | ProtocolError {
  assert(start >= 0 && start <= end && end <= data.length, "close range outside the array");
  const length = end - start;
  if (length === 0) return { code: CLOSE_NO_STATUS, reasonStart: end, reasonEnd: end };
  if (length === 1) return WS_ERR_CLOSE_PAYLOAD_1_BYTE;
  const code = (data[start] << 8) | data[start + 1];
  if (!isValidCloseCode(code)) return WS_ERR_INVALID_CLOSE_CODE;
  if (!isValidUtf8(data, start + 2, end)) return WS_ERR_INVALID_UTF8;
  return { code, reasonStart: start + 2, reasonEnd: end };
}

/** Bytes writeClosePayload needs at most: the code and a reason of 123 bytes. */
export const CLOSE_PAYLOAD_BYTES_MAX = 2 + CLOSE_REASON_BYTES_MAX;

const encoder = new TextEncoder();

/**
 * Writes a close payload at `target[offset..]` and returns its length (0..125): nothing for
 * code 1005 (CLOSE_NO_STATUS: "close without a status", the reason must then be empty),
 * otherwise the code and the reason as UTF-8.
 *
 * A reason longer than 123 UTF-8 bytes is truncated at a character boundary (never inside a
 * multi-byte sequence, so the peer's UTF-8 check passes): closing must not fail because a
 * message was long. Lone surrogates in `reason` are written as U+FFFD. Throws (misuse) for a
 * code that must not be sent (see isValidCloseCode) and when `target` has less room than
 * min(125, 2 + 3 * reason.length) bytes after `offset`.
 */
export function writeClosePayload(
  target: Uint8Array,
  offset: number,
  code: number,
  reason = "",
): number {
  if (code === CLOSE_NO_STATUS) {
    assert(reason.length === 0, "a close without a status code cannot carry a reason");
    return 0;
  }
  assert(isValidCloseCode(code), "close code must not be sent on the wire (RFC 6455 §7.4)");
  // A UTF-16 code unit takes at most 3 UTF-8 bytes: room for that, or for the whole 123.
  const reasonRoom = Math.min(CLOSE_REASON_BYTES_MAX, reason.length * 3);
  assert(offset >= 0 && offset + 2 + reasonRoom <= target.length, "close payload target small");
  target[offset] = code >>> 8;
  target[offset + 1] = code & 0xff;
  if (reason.length === 0) return 2;
  // encodeInto stops before a character that does not fit whole: the truncation we want.
  const reasonStart = offset + 2;
  const { written } = encoder.encodeInto(
    reason,
    target.subarray(reasonStart, reasonStart + reasonRoom),
  );
  return 2 + written;
}
