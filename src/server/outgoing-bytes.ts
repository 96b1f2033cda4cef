/** What user code hands to send/publish, as bytes. */

/** A view of `data`'s bytes (no copy). */
export function viewBytes(data: ArrayBufferView | ArrayBuffer): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

const encoder = new TextEncoder();

/**
 * `text` as UTF-8 in `scratch` when it surely fits (3 bytes per UTF-16 unit at most), else
 * in a new array. The bytes are valid until `scratch` is written again.
 */
export function encodeText(text: string, scratch: Buffer): { array: Uint8Array; length: number } {
  if (text.length * 3 <= scratch.length) {
    return { array: scratch, length: scratch.write(text, 0, scratch.length, "utf8") };
  }
  const array = encoder.encode(text);
  return { array, length: array.length };
}
