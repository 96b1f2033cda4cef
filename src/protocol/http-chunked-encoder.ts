/**
 * The chunked transfer coding on the sending side (RFC 9112 §7.1): each chunk is its size in
 * hex, CRLF, the data, CRLF; the body ends with a zero-size chunk and an empty trailer
 * section. The server sends the size line and the data with one sendPair (no copy of the
 * data here) and the CRLF after it, so every chunk is complete on the wire as soon as it is
 * written: a reader that waits for the CRLF (a line-based parser) gets each chunk without
 * waiting for the next one.
 */
import { encodeLatin1 } from "./http-grammar.ts";

/** Longest size line written: 8 hex digits (chunks stay far below 4 GiB) and CRLF. */
export const CHUNK_HEADER_MAX = 10;

/** The CRLF that ends a chunk's data. */
export const CHUNK_END = encodeLatin1("\r\n");

/** The last chunk (size 0) and an empty trailer section: the end of a chunked body. */
export const LAST_CHUNK = encodeLatin1("0\r\n\r\n");

const HEX_DIGITS = "0123456789abcdef";

/**
 * Writes the size line of a chunk of `size` bytes (1 <= size < 2^32) at the start of
 * `target` (at least CHUNK_HEADER_MAX bytes); returns its length. A zero size would end the
 * body: the caller never writes an empty chunk.
 */
export function writeChunkHeader(target: Uint8Array, size: number): number {
  if (!(size >= 1 && size <= 0xffffffff && Number.isInteger(size))) {
    throw new RangeError(`writeChunkHeader: chunk size must be 1..2^32-1, got ${size}`);
  }
  let digits = 1;
  while (digits < 8 && size >>> (digits * 4) !== 0) digits++;
  for (let i = 0; i < digits; i++) {
    target[i] = HEX_DIGITS.charCodeAt((size >>> ((digits - 1 - i) * 4)) & 0xf);
  }
  target[digits] = 0x0d;
  target[digits + 1] = 0x0a;
  return digits + 2;
}
