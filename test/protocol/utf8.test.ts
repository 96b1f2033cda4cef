import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  classifyText,
  isCompleteUtf8,
  isValidUtf8,
  TEXT_ASCII,
  TEXT_INVALID,
  TEXT_UTF8,
  UTF8_ACCEPT,
  UTF8_INVALID,
  validateUtf8,
  validateUtf8InJs,
} from "../../src/protocol/utf8.ts";
import { hex } from "./frame-support.ts";

const fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
function decoderAccepts(bytes: Uint8Array): boolean {
  try {
    fatal.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

const validators = [
  ["validateUtf8", validateUtf8],
  ["validateUtf8InJs", validateUtf8InJs],
] as const;

/** Validates in pieces cut at `cuts` (sorted), as fragments of one message would be. */
function validateInPieces(
  validate: (data: Uint8Array, start: number, end: number, state: number) => number,
  bytes: Uint8Array,
  cuts: number[],
): boolean {
  let state = UTF8_ACCEPT;
  let previous = 0;
  for (const cut of [...cuts, bytes.length]) {
    state = validate(bytes, previous, cut, state);
    previous = cut;
  }
  return isCompleteUtf8(state);
}

/** Also embedded at unaligned offsets and padded past the native threshold. */
function expectVerdict(bytes: Uint8Array, valid: boolean) {
  const paddings = [0, 300];
  for (const [name, validate] of validators) {
    for (const padding of paddings) {
      for (const offset of [0, 1, 3]) {
        const backing = new Uint8Array(offset + padding + bytes.length + 2).fill(0x41);
        backing.set(bytes, offset + padding);
        const end = offset + padding + bytes.length;
        const state = validate(backing, offset, end, UTF8_ACCEPT);
        expect({ name, padding, offset, valid: isCompleteUtf8(state) }).toEqual({
          name,
          padding,
          offset,
          valid,
        });
      }
    }
    // And split at every point.
    for (let cut = 0; cut <= bytes.length; cut++) {
      expect({ name, cut, valid: validateInPieces(validate, bytes, [cut]) }).toEqual({
        name,
        cut,
        valid,
      });
    }
  }
  expect(decoderAccepts(bytes)).toBe(valid);
}

describe("valid sequences (RFC 3629)", () => {
  const cases: Record<string, string> = {
    empty: "",
    ascii: "48656c6c6f2d3c3e7f00",
    "2-byte U+0080, U+07FF": "c280dfbf",
    "3-byte U+0800, U+D7FF, U+E000, U+FFFD, U+FFFF": "e0a080ed9fbfee8080efbfbdefbfbf",
    "4-byte U+10000, U+10FFFF": "f0908080f48fbfbf",
    "Autobahn 6.2: κόσμε": "cebae1bdb9cf83cebcceb5",
    "Autobahn 6.4.x prefix: κόσμε then U+FFFF": "cebae1bdb9cf83cebcceb5efbfbf",
    "emoji 😀 and €": "f09f9880e282ac",
  };
  for (const [name, bytes] of Object.entries(cases)) {
    test(name, () => expectVerdict(hex(bytes), true));
  }
});

describe("invalid sequences", () => {
  const cases: Record<string, string> = {
    "overlong 2-byte C0 80": "c080",
    "overlong 2-byte C1 BF": "c1bf",
    "overlong 3-byte (E0 80 80)": "e08080",
    "overlong 3-byte (E0 9F BF)": "e09fbf",
    "overlong 4-byte (F0 80 80 80)": "f0808080",
    "overlong 4-byte (F0 8F BF BF)": "f08fbfbf",
    "overlong '/' in 5 bytes": "f880808080af",
    "surrogate U+D800": "eda080",
    "surrogate U+DFFF": "edbfbf",
    "surrogate pair in CESU-8": "eda0bdedb880",
    "above U+10FFFF (F4 90 80 80)": "f4908080",
    "F5 lead": "f5808080",
    FE: "fe",
    FF: "ff",
    "lone continuation 80": "80",
    "lone continuation BF": "41bf42",
    "truncated 2-byte": "c2",
    "truncated 3-byte": "e282",
    "truncated 4-byte": "f09f98",
    "bad continuation": "c241",
    "3-byte with ASCII inside": "e228a1",
    "Autobahn 6.3.1: κόσμε + surrogate": "cebae1bdb9cf83cebcceb5eda080656469746564",
    "too many continuations": "c28080",
  };
  for (const [name, bytes] of Object.entries(cases)) {
    test(name, () => expectVerdict(hex(bytes), false));
  }

  test("fails fast: UTF8_INVALID at the first bad byte, before the message ends", () => {
    expect(validateUtf8(hex("41c0"), 0, 2, UTF8_ACCEPT)).toBe(UTF8_INVALID);
    expect(validateUtf8(hex("eda0"), 0, 2, UTF8_ACCEPT)).toBe(UTF8_INVALID);
    expect(validateUtf8(hex("f490"), 0, 2, UTF8_ACCEPT)).toBe(UTF8_INVALID);
    const edThenA0 = validateUtf8(hex("41ed"), 0, 2, UTF8_ACCEPT);
    expect(edThenA0).not.toBe(UTF8_INVALID);
    expect(isCompleteUtf8(edThenA0)).toBe(false);
    expect(validateUtf8(hex("a0"), 0, 1, edThenA0)).toBe(UTF8_INVALID);
    expect(validateUtf8(hex("4141"), 0, 2, UTF8_INVALID)).toBe(UTF8_INVALID);
    expect(isValidUtf8(hex("e282ac"), 0, 3)).toBe(true);
  });

  test("long texts: an error far into a native-checked range is found", () => {
    const long = new TextEncoder().encode("añ€😀".repeat(500));
    expect(isValidUtf8(long, 0, long.length)).toBe(true);
    for (const at of [0, 1, 700, long.length - 1]) {
      const broken = long.slice();
      broken[at] = 0xff;
      expect(isValidUtf8(broken, 0, broken.length)).toBe(false);
    }
  });
});

describe("agreement with TextDecoder (fatal)", () => {
  // Bytes biased toward the interesting values: ASCII, continuations and every lead range.
  const interestingByte = fc.oneof(
    fc.integer({ min: 0, max: 0x7f }),
    fc.integer({ min: 0x80, max: 0xbf }),
    fc.constantFrom(0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf4),
    fc.constantFrom(0xf5, 0xf8, 0xfe, 0xff, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf),
  );
  const byteArrays = fc.oneof(
    fc.uint8Array({ maxLength: 40 }),
    fc.array(interestingByte, { maxLength: 40 }).map((bytes) => Uint8Array.from(bytes)),
    fc.array(interestingByte, { minLength: 250, maxLength: 600 }).map((b) => Uint8Array.from(b)),
  );

  test("random byte arrays, whole and split at random points", () => {
    fc.assert(
      fc.property(byteArrays, fc.array(fc.nat(), { maxLength: 4 }), (bytes, cutSeeds) => {
        const expected = decoderAccepts(bytes);
        const cuts = cutSeeds.map((seed) => seed % (bytes.length + 1)).sort((a, b) => a - b);
        for (const [, validate] of validators) {
          expect(isCompleteUtf8(validate(bytes, 0, bytes.length, UTF8_ACCEPT))).toBe(expected);
          expect(validateInPieces(validate, bytes, cuts)).toBe(expected);
        }
      }),
      { numRuns: 1500 },
    );
  });

  test("random strings encoded then split at random points are valid", () => {
    const encoder = new TextEncoder();
    fc.assert(
      fc.property(
        fc.string({ unit: "binary", maxLength: 200 }),
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        (value, repeat, cutSeeds) => {
          const bytes = encoder.encode(value.repeat(repeat));
          const cuts = cutSeeds.map((seed) => seed % (bytes.length + 1)).sort((a, b) => a - b);
          for (const [, validate] of validators) {
            expect(validateInPieces(validate, bytes, cuts)).toBe(true);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  test("encoded strings with one byte changed agree with TextDecoder under any split", () => {
    const encoder = new TextEncoder();
    fc.assert(
      fc.property(
        fc.string({ unit: "binary", minLength: 1, maxLength: 150 }),
        fc.integer({ min: 1, max: 4 }),
        fc.nat(),
        fc.integer({ min: 0, max: 255 }),
        fc.array(fc.nat(), { maxLength: 4 }),
        (value, repeat, atSeed, byte, cutSeeds) => {
          const bytes = encoder.encode(value.repeat(repeat));
          bytes[atSeed % bytes.length] = byte;
          const expected = decoderAccepts(bytes);
          const cuts = cutSeeds.map((seed) => seed % (bytes.length + 1)).sort((a, b) => a - b);
          for (const [, validate] of validators) {
            expect(validateInPieces(validate, bytes, cuts)).toBe(expected);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe("classifyText", () => {
  const ascii = (length: number) => Uint8Array.from({ length }, (_, i) => 32 + (i % 90));

  test("ASCII of any length is reported as ASCII, at any offset", () => {
    for (const length of [0, 1, 16, 31, 32, 100, 255, 256, 4096, 70_000]) {
      const bytes = new Uint8Array(length + 7);
      bytes.set(ascii(length), 3);
      expect(classifyText(bytes, 3, 3 + length)).toBe(TEXT_ASCII);
    }
  });

  test("non-ASCII text is UTF-8, broken text is invalid, at any length", () => {
    const encoder = new TextEncoder();
    expect(classifyText(encoder.encode("héllo"), 0, 6)).toBe(TEXT_UTF8);
    expect(classifyText(encoder.encode("a".repeat(100) + "é"), 0, 102)).toBe(TEXT_UTF8);
    expect(classifyText(Uint8Array.of(0x61, 0xc3), 0, 2)).toBe(TEXT_INVALID);
    expect(classifyText(Uint8Array.of(0xed, 0xa0, 0x80), 0, 3)).toBe(TEXT_INVALID);
    const long = encoder.encode("a".repeat(4000) + "é" + "b".repeat(90));
    expect(classifyText(long, 0, long.length)).toBe(TEXT_UTF8);
    const broken = ascii(4096);
    broken[4000] = 0xff;
    expect(classifyText(broken, 0, broken.length)).toBe(TEXT_INVALID);
  });

  test("agrees with isValidUtf8, and ASCII is only said of 7-bit bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (raw, sevenBit) => {
        const bytes = sevenBit ? raw.map((b) => b & 0x7f) : raw;
        const kind = classifyText(bytes, 0, bytes.length);
        expect(kind !== TEXT_INVALID).toBe(isValidUtf8(bytes, 0, bytes.length));
        if (kind === TEXT_ASCII) expect(bytes.every((b) => b < 0x80)).toBe(true);
        if (sevenBit && bytes.length < 256) expect(kind).toBe(TEXT_ASCII);
      }),
      { numRuns: 1000 },
    );
  });
});
