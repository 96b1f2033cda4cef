/**
 * Frame encoding (RFC 6455 §5.2). Pure functions that write into a caller's buffer (a cork
 * buffer, pool memory) and return the bytes written; nothing here touches a socket.
 *
 * `maskKey`: -1 (or omitted) writes an unmasked frame (server role); a u32 (0..0xFFFFFFFF,
 * the 4 key bytes read big-endian, see mask.ts) writes a masked one (client role, §5.3).
 */
import { assert } from "../api/errors.ts";
import { writeClosePayload } from "./close.ts";
import {
  CONTROL_PAYLOAD_MAX,
  isControlOpcode,
  OPCODE_CLOSE,
  OPCODE_PING,
  OPCODE_PONG,
} from "./constants.ts";
import { maskInto, unmaskInPlace } from "./mask.ts";

/** The longest payload length a JS number encodes exactly; §5.2 allows up to 2^63 - 1. */
export const PAYLOAD_LENGTH_MAX = Number.MAX_SAFE_INTEGER;
/** A whole control frame at most: 2-byte header, 4-byte key, 125-byte payload (§5.5). */
export const CONTROL_FRAME_BYTES_MAX = 2 + 4 + CONTROL_PAYLOAD_MAX;

const TWO_POW_32 = 0x1_0000_0000;

/** Header bytes for a payload of `length` bytes: 2, plus 2 or 8 of length, plus 4 of key. */
export function frameHeaderSize(length: number, masked: boolean): number {
  const lengthBytes = length < 126 ? 0 : length < 0x10000 ? 2 : 8;
  return 2 + lengthBytes + (masked ? 4 : 0);
}

/**
 * Writes a frame header at `target[offset..]`; returns its size (2 to 14 bytes). The length
 * uses the shortest form (§5.2: 7 bits up to 125, 16 bits up to 65535, else 64 bits written
 * as two u32 halves, no BigInt). The payload itself is the caller's to write (and to mask
 * with the same key: see maskInto).
 */
export function writeFrameHeader(
  target: Uint8Array,
  offset: number,
  opcode: number,
  fin: boolean,
  rsv1: boolean,
  length: number,
  maskKey = -1,
): number {
  assert(opcode >= 0 && opcode <= 0xf, "opcode must be 0..15");
  assert(Number.isInteger(length) && length >= 0 && length <= PAYLOAD_LENGTH_MAX, "bad length");
  assert(maskKey >= -1 && maskKey <= 0xffffffff, "mask key must be -1 or a u32");
  const masked = maskKey !== -1;
  const size = frameHeaderSize(length, masked);
  assert(offset >= 0 && offset + size <= target.length, "target too small for the header");
  target[offset] = (fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode;
  const maskBit = masked ? 0x80 : 0;
  let position = offset + 2;
  if (length < 126) {
    target[offset + 1] = maskBit | length;
  } else if (length < 0x10000) {
    target[offset + 1] = maskBit | 126;
    target[position++] = length >>> 8;
    target[position++] = length & 0xff;
  } else {
    target[offset + 1] = maskBit | 127;
    position = writeUint32(target, position, Math.floor(length / TWO_POW_32));
    position = writeUint32(target, position, length >>> 0);
  }
  if (masked) position = writeUint32(target, position, maskKey);
  return position - offset;
}

/** Big-endian u32 at `target[offset..]` (the Uint8Array stores keep the low 8 bits). */
function writeUint32(target: Uint8Array, offset: number, value: number): number {
  target[offset] = value >>> 24;
  target[offset + 1] = value >>> 16;
  target[offset + 2] = value >>> 8;
  target[offset + 3] = value;
  return offset + 4;
}

/**
 * Writes a whole frame, header then `payload[start..end)` (masked when `maskKey` is not -1),
 * at `target[offset..]`; returns the bytes written. Suits small frames headed for a cork
 * buffer; large payloads are better sent as [header, payload] without this copy.
 */
export function writeFrame(
  target: Uint8Array,
  offset: number,
  opcode: number,
  fin: boolean,
  rsv1: boolean,
  payload: Uint8Array,
  start: number,
  end: number,
  maskKey = -1,
): number {
  assert(start >= 0 && start <= end && end <= payload.length, "payload range outside array");
  const length = end - start;
  const headerSize = writeFrameHeader(target, offset, opcode, fin, rsv1, length, maskKey);
  const payloadOffset = offset + headerSize;
  assert(payloadOffset + length <= target.length, "target too small for the payload");
  if (maskKey !== -1) {
    maskInto(target, payloadOffset, payload, start, end, maskKey);
  } else if (length > 0) {
    target.set(payload.subarray(start, end), payloadOffset);
  }
  return headerSize + length;
}

/**
 * A whole control frame (§5.5: FIN set, payload ≤ 125 bytes); returns the bytes written
 * (at most CONTROL_FRAME_BYTES_MAX).
 */
export function writeControlFrame(
  target: Uint8Array,
  offset: number,
  opcode: number,
  payload: Uint8Array,
  start: number,
  end: number,
  maskKey = -1,
): number {
  assert(isControlOpcode(opcode), "not a control opcode");
  assert(end - start <= CONTROL_PAYLOAD_MAX, "control payload longer than 125 bytes");
  return writeFrame(target, offset, opcode, true, false, payload, start, end, maskKey);
}

/** A Ping frame (§5.5.2) carrying `payload[start..end)` (≤ 125 bytes). */
export function writePing(
  target: Uint8Array,
  offset: number,
  payload: Uint8Array,
  start: number,
  end: number,
  maskKey = -1,
): number {
  return writeControlFrame(target, offset, OPCODE_PING, payload, start, end, maskKey);
}

/** A Pong frame (§5.5.3); answering a Ping, it echoes the Ping's payload. */
export function writePong(
  target: Uint8Array,
  offset: number,
  payload: Uint8Array,
  start: number,
  end: number,
  maskKey = -1,
): number {
  return writeControlFrame(target, offset, OPCODE_PONG, payload, start, end, maskKey);
}

/**
 * A Close frame (§5.5.1) with `code` and `reason` (see writeClosePayload: 1005 writes an
 * empty payload; a reason over 123 bytes is cut at a character boundary). `target` needs
 * CONTROL_FRAME_BYTES_MAX bytes after `offset`. Returns the bytes written.
 */
export function writeCloseFrame(
  target: Uint8Array,
  offset: number,
  code: number,
  reason = "",
  maskKey = -1,
): number {
  assert(offset >= 0 && offset + CONTROL_FRAME_BYTES_MAX <= target.length, "target too small");
  const masked = maskKey !== -1;
  // A control payload is < 126 bytes, so the header size is known before the payload is.
  const headerSize = frameHeaderSize(0, masked);
  const payloadOffset = offset + headerSize;
  const length = writeClosePayload(target, payloadOffset, code, reason);
  writeFrameHeader(target, offset, OPCODE_CLOSE, true, false, length, maskKey);
  if (masked) unmaskInPlace(target, payloadOffset, payloadOffset + length, maskKey, 0);
  return headerSize + length;
}
