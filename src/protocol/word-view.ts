/**
 * 32-bit word access to a byte array's memory, for the loops that go 4 bytes at a time
 * (masking, the UTF-8 ASCII scan). Words are read and written in host byte order; callers
 * build their constants through `hostWord` so the result is the same on either endianness.
 */

// Two cached views, most recent first: the receive path alternates between the pool's
// receive buffers and its message buffers, which may be two ArrayBuffers, so after the first
// calls no view is created. The cache holds strong references to the last two buffers seen
// (they stay alive until two other buffers have been used).
let recentBuffer: ArrayBufferLike | null = null;
let recentWords: Int32Array<ArrayBufferLike> = new Int32Array(0);
let olderBuffer: ArrayBufferLike | null = null;
let olderWords: Int32Array<ArrayBufferLike> = new Int32Array(0);

/**
 * An Int32Array over the whole ArrayBuffer behind `data` (not just its window): word `i`
 * covers bytes `4i..4i+3` of the buffer, so the byte at `data[k]` lies in word
 * `(data.byteOffset + k) >>> 2`. Int32, not Uint32: JSC keeps int32 values unboxed, and XOR
 * results are int32 anyway.
 */
export function wordViewOf(data: Uint8Array): Int32Array<ArrayBufferLike> {
  const buffer = data.buffer;
  // Only whole words inside `data` are accessed. The length check also catches a resizable
  // buffer that grew or shrank under a cached view.
  const dataEnd = data.byteOffset + data.byteLength;
  const needed = dataEnd - (dataEnd & 3);
  if (buffer === recentBuffer && recentWords.byteLength >= needed) return recentWords;
  let words: Int32Array<ArrayBufferLike>;
  if (buffer === olderBuffer && olderWords.byteLength >= needed) {
    words = olderWords;
  } else {
    words = new Int32Array(buffer, 0, buffer.byteLength >>> 2);
  }
  olderBuffer = recentBuffer;
  olderWords = recentWords;
  recentBuffer = buffer;
  recentWords = words;
  return words;
}

const wordBytes = new Uint8Array(4);
const wordValue = new Int32Array(wordBytes.buffer);

/** The int32 whose memory holds bytes b0, b1, b2, b3 in that order, on this host. */
export function hostWord(b0: number, b1: number, b2: number, b3: number): number {
  wordBytes[0] = b0;
  wordBytes[1] = b1;
  wordBytes[2] = b2;
  wordBytes[3] = b3;
  return wordValue[0];
}
