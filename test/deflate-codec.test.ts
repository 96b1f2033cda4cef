/**
 * The permessage-deflate codec (MessageDeflater / MessageInflater): round trips over every
 * window size with and without context takeover, interop with node:zlib both ways, BFINAL
 * input, RFC 7692's examples, bombs against the output limit, corrupt input, memory.
 */
import { afterAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { JSCallback } from "bun:ffi";
import { constants, deflateRawSync, inflateRawSync } from "node:zlib";
import { ErrorCode } from "../src/api/errors.ts";
import { Prng } from "../src/fake/prng.ts";
import { heap } from "../src/ffi/zlib.ts";
import { MessageDeflater } from "../src/server/message-deflater.ts";
import { INFLATE_CORRUPT, INFLATE_TOO_BIG, MessageInflater } from "../src/server/message-inflater.ts";

const TAIL = new Uint8Array([0x00, 0x00, 0xff, 0xff]);
const MiB = 1024 * 1024;
const encoder = new TextEncoder();
const disposeLater: { dispose(): void }[] = [];
afterAll(() => {
  for (const codec of disposeLater) codec.dispose();
});

function deflater(options: ConstructorParameters<typeof MessageDeflater>[0] = {}): MessageDeflater {
  const codec = new MessageDeflater(options);
  disposeLater.push(codec);
  return codec;
}

function inflater(options: ConstructorParameters<typeof MessageInflater>[0] = {}): MessageInflater {
  const codec = new MessageInflater(options);
  disposeLater.push(codec);
  return codec;
}

function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const result = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    result.set(part, at);
    at += part.length;
  }
  return result;
}

/** Compresses and copies the result out (the deflater's view lives until its next call). */
function compress(codec: MessageDeflater, message: Uint8Array): Uint8Array<ArrayBuffer> {
  const length = codec.compress(message);
  expect(codec.output.length).toBe(length);
  return codec.output.slice();
}

/** Inflates a whole payload; returns the bytes, or the failure result. */
function inflate(codec: MessageInflater, payload: Uint8Array, limit = 16 * MiB): Uint8Array<ArrayBuffer> | number {
  const result = codec.inflate(payload, 0, payload.length, limit);
  return result < 0 ? result : codec.output.slice();
}

const WORDS = ["id", "user", "name", "true", "false", "null", "score", "tags", "lorem", "ipsum", "{", "}", ":", ",", "\""];

/** JSON-ish text (compressible) or random bytes (incompressible), `length` bytes, from `seed`. */
function sampleMessage(seed: number, length: number, text: boolean): Uint8Array<ArrayBuffer> {
  const prng = new Prng(seed);
  const bytes = new Uint8Array(length);
  if (!text) {
    for (let i = 0; i < length; i++) bytes[i] = prng.int(256);
    return bytes;
  }
  let at = 0;
  while (at < length) {
    const word = prng.chance(0.2) ? String(prng.int(100000)) : WORDS[prng.int(WORDS.length)];
    for (let i = 0; i < word.length && at < length; i++) bytes[at++] = word.charCodeAt(i);
  }
  return bytes;
}

/** Sizes from 0 B to 256 KiB, small ones most often. */
const messageSpec = fc.record({
  seed: fc.integer(),
  text: fc.boolean(),
  length: fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 0, max: 2048 }) },
    { weight: 3, arbitrary: fc.integer({ min: 2049, max: 40_000 }) },
    { weight: 1, arbitrary: fc.integer({ min: 40_001, max: 256 * 1024 }) },
  ),
});

function jsonLike(length: number, seed: number): Uint8Array<ArrayBuffer> {
  const prng = new Prng(seed);
  let text = "[";
  for (let id = 0; text.length < length; id++) {
    text += JSON.stringify({ id, user: `user${prng.int(1000)}`, active: prng.chance(0.5),
      score: prng.int(10007), tags: [`t${prng.int(7)}`, `k${prng.int(13)}`] }) + ",";
  }
  return encoder.encode(text.slice(0, length));
}

describe("round trips", () => {
  test("message sequences survive deflate → inflate for windowBits 8..15, context takeover on and off", () => {
    fc.assert(fc.property(
      fc.integer({ min: 8, max: 15 }), fc.boolean(), fc.array(messageSpec, { minLength: 1, maxLength: 6 }),
      (windowBits, contextTakeover, specs) => {
        const sender = new MessageDeflater({ windowBits, contextTakeover, memLevel: 1 + (windowBits % 9) });
        const receiver = new MessageInflater({ windowBits, contextTakeover });
        try {
          for (const spec of specs) {
            const message = sampleMessage(spec.seed, spec.length, spec.text);
            const payload = compress(sender, message);
            expect(inflate(receiver, payload)).toEqual(message);
          }
        } finally {
          sender.dispose();
          receiver.dispose();
        }
      }), { seed: 0x7692, numRuns: 100 });
  });

  test("with context takeover a repeated message shrinks to a back-reference (RFC 7692 §7.2.3.2)", () => {
    const sender = deflater({ level: 6 });
    const receiver = inflater();
    const hello = encoder.encode("Hello");
    const first = compress(sender, hello);
    const second = compress(sender, hello);
    expect([...first]).toEqual([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    expect([...second]).toEqual([0xf2, 0x00, 0x11, 0x00, 0x00]);
    expect(inflate(receiver, first)).toEqual(hello);
    expect(inflate(receiver, second)).toEqual(hello);
  });

  test("without context takeover every message compresses on its own", () => {
    const sender = deflater({ contextTakeover: false, level: 6 });
    const hello = encoder.encode("Hello");
    const first = compress(sender, hello);
    expect(compress(sender, hello)).toEqual(first);
    expect(new Uint8Array(inflateRawSync(concat([first, TAIL]), { finishFlush: constants.Z_SYNC_FLUSH })))
      .toEqual(hello);
  });

  test("input taken from a range of a bigger array, and from arrays the GC may move between calls", () => {
    const sender = deflater();
    const receiver = inflater();
    const message = jsonLike(3000, 5);
    const framed = concat([new Uint8Array(17), message, new Uint8Array(9)]);
    const length = sender.compress(framed, 17, 17 + message.length);
    const payload = concat([new Uint8Array(3), sender.output, new Uint8Array(5)]);
    expect(receiver.inflate(payload, 3, 3 + length, MiB)).toBe(message.length);
    expect(receiver.output).toEqual(message);
    for (let i = 0; i < 50; i++) {
      const small = jsonLike(40 + i, i); // small arrays live in the GC heap
      const compressed = compress(sender, small);
      Bun.gc(i % 10 === 0);
      expect(inflate(receiver, compressed)).toEqual(small);
    }
  });

  test("an empty message is one 0x00 byte and inflates to nothing, mid-sequence too", () => {
    for (const contextTakeover of [true, false]) {
      const sender = deflater({ contextTakeover });
      const receiver = inflater({ contextTakeover });
      const text = jsonLike(500, 9);
      expect(inflate(receiver, compress(sender, text))).toEqual(text);
      const empty = compress(sender, new Uint8Array(0));
      expect([...empty]).toEqual([0x00]);
      expect(inflate(receiver, empty)).toEqual(new Uint8Array(0));
      expect(inflate(receiver, new Uint8Array(0))).toEqual(new Uint8Array(0));
      expect(inflate(receiver, compress(sender, text))).toEqual(text);
    }
  });
});

describe("interop with node:zlib", () => {
  test("our messages inflate with inflateRawSync, alone and (context takeover) as one stream", () => {
    for (let windowBits = 9; windowBits <= 15; windowBits++) {
      const messages = [jsonLike(4096, windowBits), sampleMessage(windowBits, 3000, false), jsonLike(100, 1)];
      const independent = deflater({ windowBits, contextTakeover: false });
      for (const message of messages) {
        const payload = compress(independent, message);
        expect(new Uint8Array(inflateRawSync(concat([payload, TAIL]),
          { windowBits, finishFlush: constants.Z_SYNC_FLUSH }))).toEqual(message);
      }
      const shared = deflater({ windowBits });
      const stream = concat(messages.flatMap((message) => [compress(shared, message), TAIL]));
      expect(new Uint8Array(inflateRawSync(stream, { windowBits, finishFlush: constants.Z_SYNC_FLUSH })))
        .toEqual(concat(messages));
    }
  });

  test("deflateRawSync output (sync flush, tail stripped) inflates, with a shared window as a dictionary", () => {
    const messages = [jsonLike(5000, 1), jsonLike(5000, 1), jsonLike(2000, 2)];
    const receiver = inflater();
    const independent = inflater({ contextTakeover: false });
    let history = new Uint8Array(0);
    for (const message of messages) {
      const options = { finishFlush: constants.Z_SYNC_FLUSH, ...(history.length > 0 ? { dictionary: history.slice(-32768) } : {}) };
      const full = new Uint8Array(deflateRawSync(message, options));
      expect([...full.subarray(-4)]).toEqual([...TAIL]);
      const payload = full.subarray(0, full.length - 4);
      expect(inflate(receiver, payload)).toEqual(message);
      if (history.length === 0) expect(inflate(independent, payload)).toEqual(message);
      history = concat([history, message]);
    }
  });

  test("BFINAL input (Z_FINISH one-shots) is accepted bare, with a 0x00 block, or with the tail", () => {
    const hello = encoder.encode("Hello");
    // RFC 7692 §7.2.3.4: a BFINAL block followed by 0x00 (an empty stored block's header).
    expect(inflate(inflater(), new Uint8Array([0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00]))).toEqual(hello);
    // §7.2.3.3: a stored block.
    expect(inflate(inflater(), new Uint8Array([0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00])))
      .toEqual(hello);
    for (const contextTakeover of [true, false]) {
      const receiver = inflater({ contextTakeover });
      for (const [index, message] of [jsonLike(3000, 3), jsonLike(10, 4), new Uint8Array(0), jsonLike(70_000, 5)].entries()) {
        const finished = new Uint8Array(deflateRawSync(message));
        const forms = {
          bare: finished,
          "RFC 7692 0x00": concat([finished, new Uint8Array([0])]),
          "tail not stripped": concat([finished, new Uint8Array([0]), TAIL]),
          "Bun.deflateSync": new Uint8Array(Bun.deflateSync(message)),
        };
        for (const [form, payload] of Object.entries(forms)) {
          expect(inflate(receiver, payload), `message ${index}, ${form}`).toEqual(message);
        }
      }
    }
  });

  test("a sync-flushed message whose sender kept the 00 00 ff ff tail is accepted", () => {
    for (const contextTakeover of [true, false]) {
      const receiver = inflater({ contextTakeover });
      for (const seed of [1, 2, 3]) {
        const message = jsonLike(2000 * seed, seed);
        const kept = new Uint8Array(deflateRawSync(message, { finishFlush: constants.Z_SYNC_FLUSH }));
        expect(inflate(receiver, kept)).toEqual(message);
      }
    }
  });

  test("after a BFINAL message the window is kept: the next message may refer back into it", () => {
    const first = jsonLike(6000, 11);
    const second = jsonLike(6000, 11).subarray(1000, 5000);
    const firstPayload = new Uint8Array(deflateRawSync(first));
    const secondFull = new Uint8Array(deflateRawSync(second, { dictionary: first, finishFlush: constants.Z_SYNC_FLUSH }));
    const secondPayload = secondFull.subarray(0, secondFull.length - 4);
    // The second payload really needs the first message's window ...
    expect(inflate(inflater(), secondPayload)).toBe(INFLATE_CORRUPT);
    // ... and a context-takeover inflater still has it after the BFINAL block.
    const receiver = inflater();
    expect(inflate(receiver, firstPayload)).toEqual(first);
    expect(inflate(receiver, secondPayload)).toEqual(second);
    // A BFINAL block in the middle of one payload, the rest referring back across it.
    const joined = concat([firstPayload, secondPayload]);
    expect(inflate(inflater({ contextTakeover: false }), joined)).toEqual(concat([first, second]));
  });
});

describe("output limit", () => {
  const limit = MiB;

  test("16 KiB of compressed zeros (→ 16 MiB) stops at the limit with the buffer ≤ limit + 1", () => {
    const bomb = new Uint8Array(deflateRawSync(new Uint8Array(16 * MiB), { finishFlush: constants.Z_SYNC_FLUSH }));
    expect(bomb.length).toBeLessThan(17 * 1024);
    const receiver = inflater();
    expect(receiver.inflate(bomb, 0, bomb.length - 4, limit)).toBe(INFLATE_TOO_BIG);
    expect(receiver.peakScratchCapacity).toBeLessThanOrEqual(limit + 1);
  });

  test("a 1 MiB payload that would inflate to 1 GiB is refused fast, memory bounded", () => {
    // 16 MiB of zeros, sync-flushed; in a window of zeros the chunk decodes the same again.
    const chunk = new Uint8Array(deflateRawSync(new Uint8Array(16 * MiB), { finishFlush: constants.Z_SYNC_FLUSH }));
    const bomb = concat(Array.from({ length: 64 }, () => chunk));
    const receiver = inflater();
    const started = performance.now();
    expect(receiver.inflate(bomb, 0, bomb.length - 4, limit)).toBe(INFLATE_TOO_BIG);
    expect(performance.now() - started).toBeLessThan(500);
    expect(receiver.peakScratchCapacity).toBeLessThanOrEqual(limit + 1);
    expect(receiver.memoryBytes).toBeLessThanOrEqual(limit + 1 + 64 * 1024);
    // The next message shrinks the scratch back.
    expect(inflate(receiver, compress(deflater(), jsonLike(100, 1)))).toBeInstanceOf(Uint8Array);
    expect(receiver.scratchCapacity).toBeLessThanOrEqual(64 * 1024);
  });

  test("a message of exactly `limit` bytes is accepted; one byte more is too big", () => {
    for (const size of [0, 1, 16 * 1024, 16 * 1024 + 1, 100_000]) {
      const message = sampleMessage(size, size, true);
      const payload = compress(deflater(), message);
      expect(inflate(inflater(), payload, size)).toEqual(message);
      if (size > 0) expect(inflate(inflater(), payload, size - 1)).toBe(INFLATE_TOO_BIG);
    }
  });

  test("a big message grows the scratch; the next small one shrinks it back", () => {
    const sender = deflater({ contextTakeover: false });
    const receiver = inflater({ contextTakeover: false });
    const big = sampleMessage(1, 600_000, false);
    expect(inflate(receiver, compress(sender, big))).toEqual(big);
    expect(sender.scratchCapacity).toBeGreaterThan(600_000);
    expect(receiver.scratchCapacity).toBeGreaterThan(600_000);
    const small = jsonLike(200, 2);
    expect(inflate(receiver, compress(sender, small))).toEqual(small);
    expect(sender.scratchCapacity).toBeLessThanOrEqual(64 * 1024);
    expect(receiver.scratchCapacity).toBeLessThanOrEqual(64 * 1024);
    receiver.trimScratch();
    expect(receiver.scratchCapacity).toBe(0);
  });
});

describe("corrupt input", () => {
  test("invalid data, a truncated stream and a reserved block type are INFLATE_CORRUPT with a reason", () => {
    const receiver = inflater({ contextTakeover: false });
    expect(inflate(receiver, new Uint8Array([0xff, 0xff, 0xff]))).toBe(INFLATE_CORRUPT);
    expect(receiver.corruptReason).toBe("invalid block type");
    const good = compress(deflater({ level: 6 }), jsonLike(4000, 8));
    expect(inflate(receiver, good.subarray(0, good.length >> 1))).toBe(INFLATE_CORRUPT);
    expect(receiver.corruptReason).not.toBe("");
    // A stored block whose length check fails.
    expect(inflate(receiver, new Uint8Array([0x00, 0x05, 0x00, 0x00, 0x00, 0x48]))).toBe(INFLATE_CORRUPT);
    expect(receiver.corruptReason).toBe("invalid stored block lengths");
    // Without context takeover the same inflater decodes the next good message.
    expect(inflate(receiver, good)).toEqual(jsonLike(4000, 8));
    expect(receiver.corruptReason).toBe("");
  });

  test("random garbage never throws, never overruns the limit", () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 300 }), (garbage) => {
      const receiver = new MessageInflater({ contextTakeover: false });
      try {
        const result = receiver.inflate(garbage, 0, garbage.length, 4096);
        expect(result === INFLATE_CORRUPT || result === INFLATE_TOO_BIG || (result >= 0 && result <= 4096)).toBe(true);
      } finally {
        receiver.dispose();
      }
    }), { seed: 1007, numRuns: 300 });
  });
});

describe("lifecycle and memory", () => {
  test("zlib state is allocated on the first message; dispose frees it, twice is fine", () => {
    const sender = new MessageDeflater();
    const receiver = new MessageInflater();
    expect(sender.memoryBytes).toBe(0);
    expect(receiver.memoryBytes).toBe(0);
    const payload = compress(sender, jsonLike(100, 1));
    expect(inflate(receiver, payload)).toEqual(jsonLike(100, 1));
    expect(sender.memoryBytes).toBeGreaterThan(256 * 1024);
    expect(receiver.memoryBytes).toBeGreaterThan(32 * 1024);
    sender.dispose();
    sender.dispose();
    receiver.dispose();
    receiver.dispose();
    expect(sender.memoryBytes).toBe(0);
    expect(receiver.memoryBytes).toBe(0);
    expect(() => sender.compress(payload)).toThrow(expect.objectContaining({ code: ErrorCode.USE_AFTER_FREE }));
    expect(() => receiver.inflate(payload, 0, 1, 10)).toThrow(expect.objectContaining({ code: ErrorCode.USE_AFTER_FREE }));
  });

  test("bad options and ranges are UsageErrors that name the range", () => {
    expect(() => new MessageDeflater({ windowBits: 7 })).toThrow(/8\.\.15, got 7/);
    expect(() => new MessageDeflater({ memLevel: 0 })).toThrow(expect.objectContaining({ code: ErrorCode.BAD_OPTION }));
    expect(() => new MessageDeflater({ level: 11 })).toThrow(/level must be an integer in 0\.\.9/);
    expect(() => new MessageInflater({ windowBits: 16 })).toThrow(/8\.\.15, got 16/);
    const sender = deflater();
    expect(() => sender.compress(new Uint8Array(4), 3, 2)).toThrow(expect.objectContaining({ code: ErrorCode.BAD_RANGE }));
    expect(() => inflater().inflate(new Uint8Array(4), 0, 4, -1)).toThrow(/limit must be an integer >= 0/);
  });

  test("memoryBytes per setting matches what zlib allocates (counted through zalloc)", () => {
    const sizes = new Map<number, number>();
    let live = 0;
    const zalloc = new JSCallback((_opaque: number, items: number, size: number) => {
      const address = heap.malloc(items * size);
      sizes.set(address, items * size);
      live += items * size;
      return address;
    }, { args: ["ptr", "u32", "u32"], returns: "ptr" });
    const zfree = new JSCallback((_opaque: number, address: number) => {
      live -= sizes.get(address) ?? 0;
      heap.free(address);
    }, { args: ["ptr", "ptr"], returns: "void" });
    const allocator = { zalloc: Number(zalloc.ptr), zfree: Number(zfree.ptr) };
    const message = jsonLike(1000, 3);
    const rows: string[] = [];
    // [windowBits, memLevel, expected KiB range of zlib's deflate state]
    const deflateSettings: [number, number, number, number][] = [[15, 8, 255, 270], [15, 9, 383, 400], [12, 5, 30, 45], [9, 1, 8, 10]];
    for (const [windowBits, memLevel, minKiB, maxKiB] of deflateSettings) {
      const sender = new MessageDeflater({ windowBits, memLevel, allocator });
      const payload = compress(sender, message);
      const zlibPart = sender.memoryBytes - sender.scratchCapacity;
      expect(zlibPart - 112).toBe(live); // memoryBytes counts the 112-byte z_stream on top
      expect(zlibPart / 1024).toBeGreaterThanOrEqual(minKiB);
      expect(zlibPart / 1024).toBeLessThanOrEqual(maxKiB);
      rows.push(`deflate w${windowBits} m${memLevel}: zlib ${zlibPart} B + scratch ${sender.scratchCapacity} B`);
      const receiver = new MessageInflater({ windowBits, allocator });
      expect(inflate(receiver, payload)).toEqual(message);
      const inflatePart = receiver.memoryBytes - receiver.scratchCapacity;
      expect(inflatePart - 112).toBe(live - (zlibPart - 112));
      expect(inflatePart).toBe((1 << windowBits) + 7160 + 112);
      rows.push(`inflate w${windowBits}: zlib ${inflatePart} B + scratch ${receiver.scratchCapacity} B`);
      sender.dispose();
      receiver.dispose();
      expect(live).toBe(0);
    }
    zalloc.close();
    zfree.close();
    console.log(`permessage-deflate memory per connection direction:\n  ${rows.join("\n  ")}`);
  });
});
