import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { MASK_WORD_THRESHOLD, maskInto, unmaskInPlace } from "../../src/protocol/mask.ts";
import { hostWord, wordViewOf } from "../../src/protocol/word-view.ts";
import { hex } from "./frame-support.ts";

/** The obviously correct loop (RFC 6455 §5.3) the fast one must agree with. */
function naiveMask(bytes: Uint8Array, start: number, end: number, key: number, phase: number) {
  const out = bytes.slice();
  for (let i = start; i < end; i++) {
    const keyIndex = (i - start + phase) & 3;
    out[i] ^= (key >>> (24 - 8 * keyIndex)) & 0xff;
  }
  return out;
}

function randomBytes(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    bytes[i] = state;
  }
  return bytes;
}

/** `length` bytes placed `byteOffset` bytes into a buffer with junk around them. */
function placed(bytes: Uint8Array, byteOffset: number, slack: number): Uint8Array {
  const backing = new Uint8Array(byteOffset + bytes.length + slack).fill(0x5a);
  backing.set(bytes, byteOffset);
  return backing.subarray(byteOffset, byteOffset + bytes.length);
}

describe("unmaskInPlace", () => {
  test("RFC 6455 §5.7: 'Hello' under key 37fa213d", () => {
    const data = hex("7f9f4d5158");
    expect(unmaskInPlace(data, 0, 5, 0x37fa213d, 0)).toBe(1);
    expect(new TextDecoder().decode(data)).toBe("Hello");
  });

  test("masking twice is the identity at every start offset and phase", () => {
    const original = randomBytes(300, 7);
    for (let byteOffset = 0; byteOffset < 8; byteOffset++) {
      for (let start = 0; start < 9; start++) {
        for (let phase = 0; phase < 4; phase++) {
          const data = placed(original, byteOffset, 3);
          const end = data.length - (start % 5);
          unmaskInPlace(data, start, end, 0xdeadbeef, phase);
          expect(data).not.toEqual(original);
          unmaskInPlace(data, start, end, 0xdeadbeef, phase);
          expect(data).toEqual(original);
        }
      }
    }
  });

  test("agrees with the naive loop on random lengths, offsets, phases and keys", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 3000 }),
        fc.integer({ min: 0, max: 7 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 3 }),
        fc.nat(),
        fc.nat(),
        (length, byteOffset, key, phase, startSeed, endSeed) => {
          const original = randomBytes(length, startSeed + 1);
          const start = length === 0 ? 0 : startSeed % (length + 1);
          const end = start + (endSeed % (length - start + 1));
          const data = placed(original, byteOffset, 5);
          const expected = naiveMask(original, start, end, key, phase);
          const nextPhase = unmaskInPlace(data, start, end, key, phase);
          expect(data).toEqual(expected);
          expect(nextPhase).toBe((phase + end - start) & 3);
          // Nothing outside the window changed.
          const backing = new Uint8Array(data.buffer);
          for (let i = 0; i < byteOffset; i++) expect(backing[i]).toBe(0x5a);
          for (let i = byteOffset + length; i < backing.length; i++) expect(backing[i]).toBe(0x5a);
        },
      ),
      { numRuns: 300 },
    );
  });

  test("resuming chunk by chunk with the returned phase equals one pass", () => {
    const original = randomBytes(1000, 3);
    const whole = original.slice();
    unmaskInPlace(whole, 0, whole.length, 0x01020304, 0);
    const pieces = original.slice();
    let phase = 0;
    for (const [start, end] of [[0, 3], [3, 70], [70, 71], [71, 500], [500, 1000]]) {
      phase = unmaskInPlace(pieces, start, end, 0x01020304, phase);
    }
    expect(pieces).toEqual(whole);
  });

  test("works across buffers of different sizes (view cache) and odd byte lengths", () => {
    for (const size of [1 << 16, 4099, 1 << 20, 64 + 3, 1 << 16]) {
      const original = randomBytes(size, size);
      const data = new Uint8Array(original);
      unmaskInPlace(data, 1, size, 0xa1b2c3d4, 2);
      expect(data).toEqual(naiveMask(original, 1, size, 0xa1b2c3d4, 2));
    }
    expect(MASK_WORD_THRESHOLD).toBeGreaterThan(0);
  });

  test("rejects a range outside the array and a bad phase", () => {
    expect(() => unmaskInPlace(new Uint8Array(4), 0, 5, 1, 0)).toThrow();
    expect(() => unmaskInPlace(new Uint8Array(4), 3, 2, 1, 0)).toThrow();
    expect(() => unmaskInPlace(new Uint8Array(4), 0, 4, 1, 4)).toThrow();
  });
});

describe("maskInto", () => {
  test("copies and masks; the source is untouched; agrees with the naive loop", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 3000 }),
        fc.integer({ min: 0, max: 7 }),
        fc.integer({ min: 0, max: 7 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 3 }),
        (length, sourceOffset, targetOffset, key, phase) => {
          const original = randomBytes(length + 4, key + 1);
          const source = placed(original, sourceOffset, 0);
          const target = new Uint8Array(length + targetOffset + 4).fill(0x5a);
          const nextPhase = maskInto(target, targetOffset, source, 2, 2 + length, key, phase);
          expect(source).toEqual(original);
          const expected = naiveMask(original, 2, 2 + length, key, phase).subarray(2, 2 + length);
          expect(target.subarray(targetOffset, targetOffset + length)).toEqual(expected);
          expect(target[targetOffset + length]).toBe(0x5a);
          expect(nextPhase).toBe((phase + length) & 3);
        },
      ),
      { numRuns: 300 },
    );
  });

  test("rejects a target that is too small", () => {
    expect(() => maskInto(new Uint8Array(3), 0, new Uint8Array(4), 0, 4, 1)).toThrow();
  });
});

describe("wordViewOf", () => {
  test("covers the whole buffer; reused for the last two buffers; odd lengths", () => {
    const first = new Uint8Array(4099).subarray(5, 4099);
    const second = new Uint8Array(64).subarray(1);
    const words = wordViewOf(first);
    expect(words.buffer).toBe(first.buffer);
    expect(words.length).toBe(1024);
    expect(wordViewOf(first)).toBe(words);
    const secondWords = wordViewOf(second);
    expect(wordViewOf(first)).toBe(words);
    expect(wordViewOf(second)).toBe(secondWords);
    // data[k] lies in word (byteOffset + k) >>> 2, in host byte order.
    first.set([1, 2, 3, 4], 3); // buffer bytes 8..11
    expect(words[2]).toBe(hostWord(1, 2, 3, 4));
  });
});
