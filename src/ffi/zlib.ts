/**
 * The system zlib (libz.so.1) through bun:ffi, opened lazily on first use, for
 * permessage-deflate. One class per direction wraps one z_stream that lives in native
 * memory (malloc), so zlib may keep pointers into it between calls.
 *
 * Pointer rule: zlib must never keep a pointer into a JS array across calls. The stream
 * classes take input/output as native addresses for ONE call: callers compute them with
 * `ptr(array) + offset` right before each `run()` (a small JS typed array lives in the GC
 * heap and can move; Bun issue 32054) or pass addresses of native buffers from `heap`.
 *
 * Window bits: deflate accepts 9..15 (raw). zlib >= 1.2.9 rejects raw windowBits 8 with
 * Z_STREAM_ERROR; inflate accepts 8..15. A 9-bit zlib deflater never emits a distance
 * beyond 250 (its MAX_DIST is the window minus 262 bytes of lookahead), so its output
 * decodes with an 8-bit window: callers needing 8 may use 9 (test/zlib.test.ts checks it).
 */
import { CString, dlopen, type Pointer } from "bun:ffi";
import { libc } from "./libc.ts";
import { arrayBufferAt } from "./memory.ts";

// Return codes and flush values from zlib.h.
export const Z_OK = 0;
export const Z_STREAM_END = 1;
export const Z_NEED_DICT = 2;
export const Z_ERRNO = -1;
export const Z_STREAM_ERROR = -2;
export const Z_DATA_ERROR = -3;
export const Z_MEM_ERROR = -4;
export const Z_BUF_ERROR = -5;
export const Z_VERSION_ERROR = -6;
export const Z_NO_FLUSH = 0;
export const Z_SYNC_FLUSH = 2;
export const Z_FINISH = 4;
const Z_DEFLATED = 8;
const Z_DEFAULT_STRATEGY = 0;

/** sizeof(z_stream) on LP64 (checked by deflateInit2_/inflateInit2_ through stream_size). */
export const Z_STREAM_BYTES = 112;

/**
 * sizeof(deflate_state) and sizeof(inflate_state) in zlib 1.2.13 on x86_64, counted with
 * a custom zalloc (test/zlib.test.ts). Other zlib builds differ by a few bytes at most.
 */
const DEFLATE_STATE_STRUCT_BYTES = 5952;
const INFLATE_STATE_STRUCT_BYTES = 7160;

/**
 * Bytes zlib allocates for a deflate stream: deflate_state, window (2 × 2^w), prev
 * (2 × 2^w), head (2 × 2^(m+7)) and pending_buf (4 × 2^(m+6)) — zlib.h's documented
 * (1 << (windowBits+2)) + (1 << (memLevel+9)) plus the state struct.
 */
export function deflateStateBytes(windowBits: number, memLevel: number): number {
  return (1 << (windowBits + 2)) + (1 << (memLevel + 9)) + DEFLATE_STATE_STRUCT_BYTES;
}

/**
 * Bytes zlib allocates for an inflate stream once it has produced output: inflate_state
 * plus the 2^windowBits window (allocated on the first output, kept by inflateReset).
 */
export function inflateStateBytes(windowBits: number): number {
  return (1 << windowBits) + INFLATE_STATE_STRUCT_BYTES;
}

const zlibSymbols = {
  zlibVersion: { args: [], returns: "ptr" },
  deflateInit2_: { args: ["ptr", "i32", "i32", "i32", "i32", "i32", "ptr", "i32"], returns: "i32" },
  deflate: { args: ["ptr", "i32"], returns: "i32" },
  deflateReset: { args: ["ptr"], returns: "i32" },
  deflateEnd: { args: ["ptr"], returns: "i32" },
  inflateInit2_: { args: ["ptr", "i32", "ptr", "i32"], returns: "i32" },
  inflate: { args: ["ptr", "i32"], returns: "i32" },
  inflateReset: { args: ["ptr"], returns: "i32" },
  inflateEnd: { args: ["ptr"], returns: "i32" },
  inflateGetDictionary: { args: ["ptr", "ptr", "ptr"], returns: "i32" },
  inflateSetDictionary: { args: ["ptr", "ptr", "u32"], returns: "i32" },
} as const;

type ZlibSymbols = ReturnType<typeof dlopen<typeof zlibSymbols>>["symbols"];

let zlibOpened: ZlibSymbols | undefined;
/** "1.2.13\0": zlib checks only the major digit; stream_size is the real ABI check. */
let versionString: Uint8Array | undefined;

/** The raw zlib symbols (dlopen on first use). */
export function zlib(): ZlibSymbols {
  if (zlibOpened === undefined) {
    try {
      zlibOpened = dlopen("libz.so.1", zlibSymbols).symbols;
    } catch (cause) {
      throw new Error(
        "libz.so.1 could not be opened: permessage-deflate needs the system zlib " +
          "(install zlib1g / zlib)", { cause });
    }
    versionString = new TextEncoder().encode("1.2.13\0");
  }
  return zlibOpened;
}

/** The version string of the zlib that was loaded, e.g. "1.2.13". */
export function zlibVersion(): string {
  return new CString(zlib().zlibVersion() as Pointer).toString();
}

/** libc malloc for buffers zlib (or a view) must reach across calls. Throws when out of memory. */
export const heap = {
  malloc(bytes: number): number {
    const address = Number(libc().malloc(bytes) ?? 0);
    if (address === 0) throw new ZlibError("malloc", Z_MEM_ERROR, `${bytes} bytes`);
    return address;
  },
  calloc(bytes: number): number {
    const address = Number(libc().calloc(1, bytes) ?? 0);
    if (address === 0) throw new ZlibError("calloc", Z_MEM_ERROR, `${bytes} bytes`);
    return address;
  },
  /** Keeps the first min(old, bytes) bytes; the old address is invalid afterwards. */
  realloc(address: number, bytes: number): number {
    const moved = Number(libc().realloc(address as Pointer, bytes) ?? 0);
    if (moved === 0) throw new ZlibError("realloc", Z_MEM_ERROR, `${bytes} bytes`);
    return moved;
  },
  free(address: number): void {
    if (address !== 0) libc().free(address as Pointer);
  },
};

const CODE_NAMES: Record<number, string> = {
  [Z_OK]: "Z_OK", [Z_STREAM_END]: "Z_STREAM_END", [Z_NEED_DICT]: "Z_NEED_DICT",
  [Z_ERRNO]: "Z_ERRNO", [Z_STREAM_ERROR]: "Z_STREAM_ERROR", [Z_DATA_ERROR]: "Z_DATA_ERROR",
  [Z_MEM_ERROR]: "Z_MEM_ERROR", [Z_BUF_ERROR]: "Z_BUF_ERROR", [Z_VERSION_ERROR]: "Z_VERSION_ERROR",
};

const CODE_MEANINGS: Record<number, string> = {
  [Z_NEED_DICT]: "the stream needs a preset dictionary",
  [Z_STREAM_ERROR]: "invalid parameter or inconsistent stream state",
  [Z_DATA_ERROR]: "the compressed data is corrupt",
  [Z_MEM_ERROR]: "out of memory",
  [Z_BUF_ERROR]: "no progress was possible",
  [Z_VERSION_ERROR]: "the loaded libz is incompatible with the z_stream layout used here",
};

/** The symbolic name of a zlib return code ("Z_DATA_ERROR"), or "Z_<n>" when unknown. */
export function zlibCodeName(code: number): string {
  return CODE_NAMES[code] ?? `Z_${code}`;
}

/** A zlib call that failed: the call, its return code, and zlib's own message when it set one. */
export class ZlibError extends Error {
  readonly call: string;
  readonly code: number;
  readonly codeName: string;
  /** zlib's `msg` ("invalid distance too far back"), or "" when it set none. */
  readonly detail: string;

  constructor(call: string, code: number, detail = "") {
    const name = zlibCodeName(code);
    const meaning = CODE_MEANINGS[code] ?? "unexpected return code";
    super(`${call} failed: ${name} (${meaning})${detail === "" ? "" : `: ${detail}`}`);
    this.name = "ZlibError";
    this.call = call;
    this.code = code;
    this.codeName = name;
    this.detail = detail;
  }
}

/** zalloc/zfree function pointers (e.g. JSCallback) to count what zlib allocates; 0 = malloc. */
export interface ZlibAllocator {
  readonly zalloc: number;
  readonly zfree: number;
}

// u32 word indexes of z_stream fields (LP64 offsets / 4).
const NEXT_IN = 0;
const AVAIL_IN = 2;
const NEXT_OUT = 6;
const AVAIL_OUT = 8;
const MSG = 12;
const ZALLOC = 16;
const ZFREE = 18;
const DATA_TYPE = 22;
const TWO_TO_32 = 4294967296;

/** One z_stream in native memory; fields written as u32 pairs (no BigInt). */
abstract class NativeZStream {
  /** Address of the z_stream, 0 before init() and after end(). */
  protected address = 0;
  private words: Uint32Array | undefined;

  get initialized(): boolean {
    return this.address !== 0;
  }

  protected allocate(allocator: ZlibAllocator | undefined): Uint32Array {
    const address = heap.calloc(Z_STREAM_BYTES);
    const words = new Uint32Array(arrayBufferAt(address, Z_STREAM_BYTES));
    if (allocator !== undefined) {
      writePointer(words, ZALLOC, allocator.zalloc);
      writePointer(words, ZFREE, allocator.zfree);
    }
    this.address = address;
    this.words = words;
    return words;
  }

  protected release(): void {
    heap.free(this.address as Pointer);
    this.address = 0;
    this.words = undefined;
  }

  protected fields(): Uint32Array {
    if (this.words === undefined) throw new Error("zlib stream used before init() or after end()");
    return this.words;
  }

  /** Sets next_in/avail_in and next_out/avail_out for the next call only. */
  protected setBuffers(input: number, inputLength: number, output: number, outputLength: number): void {
    const words = this.fields();
    writePointer(words, NEXT_IN, input);
    words[AVAIL_IN] = inputLength;
    writePointer(words, NEXT_OUT, output);
    words[AVAIL_OUT] = outputLength;
  }

  /** Input bytes the last call left unread. */
  get availIn(): number {
    return this.fields()[AVAIL_IN];
  }

  /** Output space the last call left unused. */
  get availOut(): number {
    return this.fields()[AVAIL_OUT];
  }

  /** strm->data_type: for inflate, bit 128 = stopped at a block boundary, 64 = in the last block. */
  get dataType(): number {
    return this.fields()[DATA_TYPE];
  }

  /** zlib's `msg` after an error, "" when none. */
  message(): string {
    const words = this.fields();
    const address = words[MSG] + words[MSG + 1] * TWO_TO_32;
    return address === 0 ? "" : new CString(address as Pointer).toString();
  }

  protected check(call: string, code: number): number {
    if (code < 0 || code === Z_NEED_DICT) throw new ZlibError(call, code, this.message());
    return code;
  }
}

function writePointer(words: Uint32Array, index: number, address: number): void {
  const low = address >>> 0;
  words[index] = low;
  words[index + 1] = (address - low) / TWO_TO_32;
}

export interface DeflateStreamOptions {
  /** LZ77 window, 9..15 (raw deflate; see the file comment for 8). */
  readonly windowBits: number;
  /** Hash table size, 1..9: memory 2^(memLevel+9) bytes. */
  readonly memLevel: number;
  /** 0 (store) .. 9 (best); -1 = zlib's default (6). */
  readonly level: number;
  readonly allocator?: ZlibAllocator;
}

/** A raw-deflate z_stream: init(), run() per chunk of work, reset(), end(). */
export class DeflateStream extends NativeZStream {
  readonly windowBits: number;
  readonly memLevel: number;
  readonly level: number;
  private readonly allocator: ZlibAllocator | undefined;

  constructor(options: DeflateStreamOptions) {
    super();
    const { windowBits, memLevel, level } = options;
    checkRange("deflate windowBits", windowBits, 9, 15);
    checkRange("deflate memLevel", memLevel, 1, 9);
    if (level !== -1) checkRange("deflate level", level, 0, 9);
    this.windowBits = windowBits;
    this.memLevel = memLevel;
    this.level = level;
    this.allocator = options.allocator;
  }

  /** Allocates the z_stream and zlib's state (deflateStateBytes()). */
  init(): void {
    if (this.initialized) return;
    const z = zlib();
    this.allocate(this.allocator);
    const code = z.deflateInit2_(this.address as Pointer, this.level, Z_DEFLATED, -this.windowBits,
      this.memLevel, Z_DEFAULT_STRATEGY, versionString!, Z_STREAM_BYTES);
    if (code !== Z_OK) {
      this.release();
      throw new ZlibError("deflateInit2_", code);
    }
  }

  /**
   * One deflate() call over native `input`/`output` (addresses valid for this call only).
   * Returns Z_OK, Z_STREAM_END or Z_BUF_ERROR (no progress possible: nothing left to do);
   * throws ZlibError otherwise. Read availIn/availOut afterwards.
   */
  run(input: number, inputLength: number, output: number, outputLength: number, flush: number): number {
    this.setBuffers(input, inputLength, output, outputLength);
    const code = zlibOpened!.deflate(this.address as Pointer, flush);
    return code === Z_BUF_ERROR ? code : this.check("deflate", code);
  }

  /** Forgets the window (no context takeover); keeps the allocations. */
  reset(): void {
    this.check("deflateReset", zlibOpened!.deflateReset(this.address as Pointer));
  }

  /** Frees zlib's state and the z_stream; idempotent. */
  end(): void {
    if (!this.initialized) return;
    // Z_DATA_ERROR here only means "freed while a flush was pending": nothing to report.
    zlibOpened!.deflateEnd(this.address as Pointer);
    this.release();
  }
}

export interface InflateStreamOptions {
  /** LZ77 window, 8..15 (raw inflate). */
  readonly windowBits: number;
  readonly allocator?: ZlibAllocator;
}

/** A raw-inflate z_stream: init(), run() per chunk of input, reset(), end(). */
export class InflateStream extends NativeZStream {
  readonly windowBits: number;
  private readonly allocator: ZlibAllocator | undefined;

  constructor(options: InflateStreamOptions) {
    super();
    checkRange("inflate windowBits", options.windowBits, 8, 15);
    this.windowBits = options.windowBits;
    this.allocator = options.allocator;
  }

  /** Allocates the z_stream and inflate_state; the window comes with the first output. */
  init(): void {
    if (this.initialized) return;
    const z = zlib();
    this.allocate(this.allocator);
    const code = z.inflateInit2_(this.address as Pointer, -this.windowBits, versionString!, Z_STREAM_BYTES);
    if (code !== Z_OK) {
      this.release();
      throw new ZlibError("inflateInit2_", code);
    }
  }

  /**
   * One inflate() call. Returns Z_OK, Z_STREAM_END (a BFINAL block ended), Z_BUF_ERROR (no
   * progress possible) or Z_DATA_ERROR (corrupt input: message() says why); throws
   * ZlibError for the rest (memory, misuse).
   */
  run(input: number, inputLength: number, output: number, outputLength: number): number {
    this.setBuffers(input, inputLength, output, outputLength);
    const code = zlibOpened!.inflate(this.address as Pointer, Z_SYNC_FLUSH);
    if (code === Z_DATA_ERROR || code === Z_BUF_ERROR || code === Z_NEED_DICT) return code;
    return this.check("inflate", code);
  }

  /** Forgets the window and any half-read block; keeps the allocations. */
  reset(): void {
    this.check("inflateReset", zlibOpened!.inflateReset(this.address as Pointer));
  }

  /**
   * Starts a new deflate stream after Z_STREAM_END while keeping the LZ77 window (the last
   * 2^windowBits output bytes), so later data may still refer back across the BFINAL block.
   */
  resetKeepingWindow(): void {
    const z = zlibOpened!;
    const windowBytes = 1 << this.windowBits;
    const scratch = heap.malloc(windowBytes + 8);
    try {
      const lengthAddress = scratch + windowBytes;
      this.check("inflateGetDictionary", z.inflateGetDictionary(this.address as Pointer, scratch as Pointer, lengthAddress as Pointer));
      const length = new Uint32Array(arrayBufferAt(lengthAddress, 4))[0];
      this.reset();
      if (length > 0) {
        this.check("inflateSetDictionary", z.inflateSetDictionary(this.address as Pointer, scratch as Pointer, length));
      }
    } finally {
      heap.free(scratch);
    }
  }

  /** Frees zlib's state and the z_stream; idempotent. */
  end(): void {
    if (!this.initialized) return;
    zlibOpened!.inflateEnd(this.address as Pointer);
    this.release();
  }
}

function checkRange(what: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${what} must be an integer in ${min}..${max}, got ${value}`);
  }
}

const EMPTY: Uint8Array<ArrayBuffer> = new Uint8Array(0);

/**
 * A malloc'd byte buffer that zlib writes into and JS reads through `view`. Resizing may
 * move it: views taken before a resize or free() must not be used again.
 */
export class NativeBuffer {
  address = 0;
  capacity = 0;
  /** A view over all `capacity` bytes; empty while nothing is allocated. */
  view: Uint8Array<ArrayBuffer> = EMPTY;

  /** Grows or shrinks to exactly `bytes` (> 0), keeping the first min(old, new) bytes. */
  resize(bytes: number): void {
    this.address = this.address === 0 ? heap.malloc(bytes) : heap.realloc(this.address as Pointer, bytes);
    this.capacity = bytes;
    this.view = new Uint8Array(arrayBufferAt(this.address as Pointer, bytes));
  }

  /** Frees the memory; idempotent. */
  free(): void {
    heap.free(this.address as Pointer);
    this.address = 0;
    this.capacity = 0;
    this.view = EMPTY;
  }
}
