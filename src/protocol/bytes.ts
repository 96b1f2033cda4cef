/** Byte helpers shared by the protocol and server layers. */

/** One array holding `parts` back to back (the single part itself when there is one). */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  let total = 0;
  for (const part of parts) total += part.length;
  const joined = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    joined.set(part, offset);
    offset += part.length;
  }
  return joined;
}

/** Below this many bytes a plain loop is cheaper than any native copy. */
const SMALL_COPY = 64;
const bufferCopy = Buffer.prototype.copy as (this: Uint8Array, target: Uint8Array,
  targetStart: number, sourceStart: number, sourceEnd: number) => number;

/**
 * Copies `source[start, end)` to `target[targetOffset..)` without making a subarray (one
 * allocation per call on the message path adds up: 64 KiB messages spanning receive buffers
 * made two per message). The ranges must not overlap.
 */
export function copyRange(target: Uint8Array, targetOffset: number, source: Uint8Array,
  start: number, end: number): void {
  const length = end - start;
  if (length < SMALL_COPY) {
    for (let i = 0; i < length; i++) target[targetOffset + i] = source[start + i];
    return;
  }
  bufferCopy.call(source, target, targetOffset, start, end);
}
