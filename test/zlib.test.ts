/**
 * The zlib binding (src/ffi/zlib.ts): z_stream layout through real calls, zlib's own memory
 * counted with a JSCallback allocator against the formulas, window-bit limits, errors.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { JSCallback } from "bun:ffi";
import { constants, deflateRawSync, inflateRawSync } from "node:zlib";
import { Prng } from "../src/fake/prng.ts";
import { viewOf } from "../src/ffi/memory.ts";
import {
  DeflateStream, deflateStateBytes, heap, InflateStream, inflateStateBytes, NativeBuffer,
  Z_BUF_ERROR, Z_DATA_ERROR, Z_MEM_ERROR, Z_OK, Z_STREAM_END, Z_SYNC_FLUSH, ZlibError, zlibCodeName,
  zlibVersion, type ZlibAllocator,
} from "../src/ffi/zlib.ts";

/** A zalloc/zfree pair that counts live bytes (runs only inside zlib's init and first output). */
class CountingAllocator {
  private readonly sizes = new Map<number, number>();
  live = 0;
  readonly requests: number[] = [];
  private readonly alloc = new JSCallback((_opaque: number, items: number, size: number) => {
    const bytes = items * size;
    const address = heap.malloc(bytes);
    this.sizes.set(address, bytes);
    this.live += bytes;
    this.requests.push(bytes);
    return address;
  }, { args: ["ptr", "u32", "u32"], returns: "ptr" });
  private readonly release = new JSCallback((_opaque: number, address: number) => {
    this.live -= this.sizes.get(address) ?? 0;
    this.sizes.delete(address);
    heap.free(address);
  }, { args: ["ptr", "ptr"], returns: "void" });
  readonly pointers: ZlibAllocator = { zalloc: Number(this.alloc.ptr), zfree: Number(this.release.ptr) };
  close(): void {
    this.alloc.close();
    this.release.close();
  }
}

const counting = new CountingAllocator();
afterAll(() => counting.close());

/** Copies `bytes` into a fresh malloc'd block (caller frees). */
function nativeCopy(bytes: Uint8Array): number {
  const address = heap.malloc(Math.max(1, bytes.length));
  viewOf(address, Math.max(1, bytes.length)).set(bytes);
  return address;
}

/** Raw deflate of `messages` with one stream, Z_SYNC_FLUSH after each (tails kept). */
function deflateSequence(stream: DeflateStream, messages: Uint8Array[]): Uint8Array[] {
  stream.init();
  const out = new NativeBuffer();
  out.resize(1 << 20);
  const results = messages.map((message) => {
    const input = nativeCopy(message);
    const code = stream.run(input, message.length, out.address, out.capacity, Z_SYNC_FLUSH);
    heap.free(input);
    expect(code).toBe(Z_OK);
    expect(stream.availIn).toBe(0);
    return out.view.slice(0, out.capacity - stream.availOut);
  });
  out.free();
  return results;
}

/**
 * Inflates a concatenation of sync-flushed messages with one stream of `windowBits`,
 * `chunk` output bytes per call. zlib also lets a match reach into the output of the
 * current call, so only a small `chunk` makes every far reference go through the window.
 */
function inflateAll(windowBits: number, compressed: Uint8Array, chunk = 1 << 20): { code: number; text: Uint8Array; message: string } {
  const stream = new InflateStream({ windowBits });
  stream.init();
  const out = new NativeBuffer();
  out.resize(chunk);
  const input = nativeCopy(compressed);
  const parts: Uint8Array[] = [];
  let used = 0;
  let code = Z_OK;
  while (code === Z_OK && used < compressed.length) {
    code = stream.run(input + used, compressed.length - used, out.address, chunk);
    used = compressed.length - stream.availIn;
    parts.push(out.view.slice(0, chunk - stream.availOut));
  }
  const result = { code, text: concat(parts), message: stream.message() };
  heap.free(input);
  out.free();
  stream.end();
  return result;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const total = parts.reduce((sum, part) => sum + part.length, 0);
  const result = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    result.set(part, at);
    at += part.length;
  }
  return result;
}

/** Text that repeats with `period`, so an LZ77 coder wants distances of exactly `period`. */
function periodic(prng: Prng, period: number, length: number): Uint8Array {
  const unit = new Uint8Array(period);
  for (let i = 0; i < period; i++) unit[i] = 97 + prng.int(26);
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = unit[i % period];
  return bytes;
}

describe("zlib binding", () => {
  test("the system zlib loads and reports a 1.x version", () => {
    expect(zlibVersion()).toMatch(/^1\.\d+\.\d+/);
  });

  test("z_stream fields round-trip through deflate and inflate (next/avail in/out, msg)", () => {
    const text = new TextEncoder().encode("hello hello hello hello permessage-deflate");
    const deflater = new DeflateStream({ windowBits: 15, memLevel: 8, level: 6 });
    const [compressed] = deflateSequence(deflater, [text]);
    deflater.end();
    // Sync flush output ends with the empty stored block RFC 7692 strips.
    expect([...compressed.subarray(-4)]).toEqual([0, 0, 0xff, 0xff]);
    const node = inflateRawSync(compressed, { finishFlush: constants.Z_SYNC_FLUSH });
    expect(new Uint8Array(node)).toEqual(text);
    const mine = inflateAll(15, compressed);
    expect(mine.code).toBe(Z_OK);
    expect(mine.text).toEqual(text);
    // msg (offset 48) is read back as zlib's own text on corrupt input: BTYPE 11 is reserved.
    const broken = inflateAll(15, new Uint8Array([0xff, 0xff, 0xff]));
    expect(broken.code).toBe(Z_DATA_ERROR);
    expect(broken.message).toBe("invalid block type");
  });

  test("deflate state size equals zlib's formula, counted through zalloc", () => {
    for (const [windowBits, memLevel] of [[15, 8], [12, 5], [9, 1], [9, 9], [15, 1], [10, 3]]) {
      counting.requests.length = 0;
      const stream = new DeflateStream({ windowBits, memLevel, level: 6, allocator: counting.pointers });
      stream.init();
      expect(counting.live).toBe(deflateStateBytes(windowBits, memLevel));
      stream.end();
      expect(counting.live).toBe(0);
    }
  });

  test("inflate state size equals the formula once the window exists", () => {
    const hello = new Uint8Array([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x00, 0xff, 0xff]);
    for (let windowBits = 8; windowBits <= 15; windowBits++) {
      const stream = new InflateStream({ windowBits, allocator: counting.pointers });
      stream.init();
      const stateOnly = counting.live;
      const input = nativeCopy(hello);
      const out = heap.malloc(64);
      expect(stream.run(input, hello.length, out, 64)).toBe(Z_OK);
      expect(new TextDecoder().decode(viewOf(out, 64 - stream.availOut))).toBe("Hello");
      expect(counting.live).toBe(inflateStateBytes(windowBits));
      expect(counting.live - stateOnly).toBe(1 << windowBits); // the window came with the output
      stream.reset();
      expect(counting.live).toBe(inflateStateBytes(windowBits)); // reset keeps allocations
      stream.end();
      expect(counting.live).toBe(0);
      heap.free(input);
      heap.free(out);
    }
  });

  test("a 9-bit deflater never reaches past 256 bytes: an 8-bit inflater decodes it", () => {
    const prng = new Prng(0x5eed_0008);
    for (const period of [40, 200, 250, 251, 255, 256, 300, 1000]) {
      const messages = [periodic(prng, period, 5000), periodic(prng, period, 3000)];
      const nine = new DeflateStream({ windowBits: 9, memLevel: 8, level: 9 });
      const compressed = concat(deflateSequence(nine, messages));
      nine.end();
      const decoded = inflateAll(8, compressed, 16);
      expect(decoded.code).toBe(Z_OK);
      expect(decoded.text).toEqual(concat(messages));
    }
    // Control: a 10-bit deflater does use distance 300, which an 8-bit window rejects
    // (and which a 9-bit window would accept: the test can tell windows apart).
    const ten = new DeflateStream({ windowBits: 10, memLevel: 8, level: 9 });
    const far = concat(deflateSequence(ten, [periodic(prng, 300, 5000)]));
    ten.end();
    expect(inflateAll(9, far, 16).code).toBe(Z_OK);
    const rejected = inflateAll(8, far, 16);
    expect(rejected.code).toBe(Z_DATA_ERROR);
    expect(rejected.message).toBe("invalid distance too far back");
  });

  test("an inflate stream keeps its window across Z_STREAM_END with resetKeepingWindow", () => {
    const text = new TextEncoder().encode("abcdefgh-abcdefgh");
    const first = new Uint8Array(deflateRawSync(text)); // BFINAL=1
    // A second raw stream that copies from the first one's output (preset dictionary).
    const second = new Uint8Array(deflateRawSync(text, { dictionary: text }));
    expect(() => inflateRawSync(second)).toThrow(/distance too far back/);
    const stream = new InflateStream({ windowBits: 15 });
    stream.init();
    const out = new NativeBuffer();
    out.resize(64);
    for (const [index, part] of [first, second].entries()) {
      const input = nativeCopy(part);
      expect(stream.run(input, part.length, out.address, 64)).toBe(Z_STREAM_END);
      expect(new TextDecoder().decode(out.view.subarray(0, 64 - stream.availOut))).toBe("abcdefgh-abcdefgh");
      heap.free(input);
      if (index === 0) stream.resetKeepingWindow();
    }
    out.free();
    stream.end();
    stream.end(); // idempotent
  });

  test("window bits and levels outside zlib's ranges are refused with the range in the message", () => {
    expect(() => new DeflateStream({ windowBits: 8, memLevel: 8, level: 6 })).toThrow(/9\.\.15, got 8/);
    expect(() => new DeflateStream({ windowBits: 15, memLevel: 10, level: 6 })).toThrow(/memLevel.*1\.\.9/);
    expect(() => new DeflateStream({ windowBits: 15, memLevel: 8, level: 10 })).toThrow(/level.*0\.\.9/);
    expect(() => new InflateStream({ windowBits: 7 })).toThrow(/8\.\.15, got 7/);
    expect(() => new InflateStream({ windowBits: 16 })).toThrow(/8\.\.15, got 16/);
  });

  test("ZlibError names the call, the code and zlib's message", () => {
    const error = new ZlibError("inflate", Z_DATA_ERROR, "invalid block type");
    expect(error.message).toBe("inflate failed: Z_DATA_ERROR (the compressed data is corrupt): invalid block type");
    expect(error.codeName).toBe("Z_DATA_ERROR");
    expect(new ZlibError("deflateInit2_", Z_MEM_ERROR).message).toBe("deflateInit2_ failed: Z_MEM_ERROR (out of memory)");
    expect(zlibCodeName(Z_BUF_ERROR)).toBe("Z_BUF_ERROR");
    expect(zlibCodeName(-99)).toBe("Z_-99");
  });

  test("a stream used before init() says so instead of touching memory", () => {
    const stream = new InflateStream({ windowBits: 15 });
    expect(() => stream.availIn).toThrow(/before init\(\) or after end\(\)/);
  });

  test("NativeBuffer keeps its bytes when it grows and shrinks", () => {
    const buffer = new NativeBuffer();
    buffer.resize(16);
    buffer.view.set([1, 2, 3, 4]);
    buffer.resize(1 << 20);
    expect([...buffer.view.subarray(0, 4)]).toEqual([1, 2, 3, 4]);
    buffer.resize(2);
    expect([...buffer.view]).toEqual([1, 2]);
    buffer.free();
    buffer.free();
    expect(buffer.capacity).toBe(0);
  });
});
