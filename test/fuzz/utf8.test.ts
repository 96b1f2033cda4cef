import { expect, test } from "bun:test";
import { Prng } from "../../src/fake/prng.ts";
import {
  isCompleteUtf8, isValidUtf8, UTF8_ACCEPT, UTF8_INVALID, validateUtf8,
} from "../../src/protocol/utf8.ts";
import { referenceIsValidUtf8 } from "./reference-utf8.ts";

// Bytes near the RFC 3629 range boundaries, where validators usually go wrong.
const EDGES = [0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf,
  0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0x41];

function randomInput(prng: Prng): Uint8Array {
  const length = prng.int(prng.chance(0.1) ? 600 : 12);
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    bytes[i] = prng.chance(0.7) ? EDGES[prng.int(EDGES.length)]! : prng.int(256);
  }
  return bytes;
}

test("UTF-8 validator agrees with the RFC 3629 reference, whole and in random chunks", () => {
  for (let seed = 1; seed <= 8; seed++) {
    const prng = new Prng(seed);
    for (let n = 0; n < 2000; n++) {
      const bytes = randomInput(prng);
      const expected = referenceIsValidUtf8(bytes);
      expect(isValidUtf8(bytes, 0, bytes.length)).toBe(expected);
      let state = UTF8_ACCEPT;
      let at = 0;
      while (at < bytes.length && state !== UTF8_INVALID) {
        const stop = Math.min(bytes.length, at + 1 + prng.int(5));
        state = validateUtf8(bytes, at, stop, state);
        at = stop;
      }
      expect(state !== UTF8_INVALID && isCompleteUtf8(state)).toBe(expected);
    }
  }
});
