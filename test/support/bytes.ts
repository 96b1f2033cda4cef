/** Byte helpers for transport tests: reproducible patterns and a comparison that says where. */

/** `length` bytes of a pattern that differs for every `salt` (a tiny LCG, reproducible). */
export function patternBytes(length: number, salt: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let state = (salt * 2654435761 + 1) >>> 0;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    bytes[i] = state >>> 24;
  }
  return bytes;
}

export { concatBytes } from "../../src/protocol/bytes.ts";

/** null when equal, else a sentence naming the first difference (for expect messages). */
export function firstDifference(actual: Uint8Array, expected: Uint8Array): string | null {
  const common = Math.min(actual.length, expected.length);
  for (let i = 0; i < common; i++) {
    if (actual[i] !== expected[i]) {
      const lengths = `lengths ${actual.length}/${expected.length}`;
      return `byte ${i} is ${actual[i]}, expected ${expected[i]} (${lengths})`;
    }
  }
  if (actual.length !== expected.length) {
    return `length is ${actual.length}, expected ${expected.length}`;
  }
  return null;
}
