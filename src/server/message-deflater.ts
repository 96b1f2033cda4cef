/**
 * permessage-deflate (RFC 7692) compression of ONE whole message: raw deflate with
 * Z_SYNC_FLUSH over the message, minus the trailing 00 00 ff ff (§7.2.1). The output lives
 * in a native scratch buffer owned by the deflater; zlib state is allocated on the first
 * non-empty message.
 */
import { ErrorCode, UsageError } from "../api/errors.ts";
import { MessageCodec } from "./message-codec.ts";
import { addressOf } from "../ffi/memory.ts";
import {
  DeflateStream, deflateStateBytes, NativeBuffer, Z_BUF_ERROR, Z_STREAM_BYTES, Z_SYNC_FLUSH,
  type ZlibAllocator,
} from "../ffi/zlib.ts";

export interface MessageDeflaterOptions {
  /**
   * LZ77 window, 8..15 (the negotiated server_max_window_bits); default 15. zlib refuses a
   * raw 8-bit window, so 8 runs zlib with 9, whose matches never reach past 250 bytes: the
   * output stays decodable by a peer with a 256-byte window.
   */
  readonly windowBits?: number;
  /** zlib memLevel 1..9 (hash table 2^(memLevel+9) bytes); default 8. */
  readonly memLevel?: number;
  /** zlib level 0..9; default DEFAULT_DEFLATE_LEVEL. */
  readonly level?: number;
  /** false (server_no_context_takeover): every message starts with an empty window. */
  readonly contextTakeover?: boolean;
  /** Test hook: count zlib's allocations (see test/zlib.test.ts). */
  readonly allocator?: ZlibAllocator;
  /**
   * Output memory shared with other streams (the server's: one per direction, so a socket
   * with its own stream holds only zlib's state). The caller owns it; `output` is then
   * valid until the next call of any stream sharing it.
   */
  readonly scratch?: NativeBuffer;
}

/**
 * Level 1. On 4 KiB JSON-like messages with the system zlib 1.2.13 (bench/deflate-codec.ts,
 * AMD EPYC): level 1 costs ~24 µs per message, level 6 ~42 µs without context takeover and
 * ~68 µs with it (longer hash chains over a full window); level 6 output is only 13–22%
 * smaller (0.219 vs 0.251, 0.191 vs 0.244 of the input). CPU per message is what limits a
 * busy server, so the default buys speed; pass `level` to trade it for bytes.
 */
export const DEFAULT_DEFLATE_LEVEL = 1;

/** Scratch kept between messages; a bigger one is shrunk back at the next call or trim(). */
const SCRATCH_KEEP_BYTES = 64 * 1024;
const SCRATCH_MIN_BYTES = 4 * 1024;
/** The four bytes every Z_SYNC_FLUSH ends with; RFC 7692 §7.2.1 removes them. */
const TAIL_BYTES = 4;

export class MessageDeflater extends MessageCodec {
  readonly windowBits: number;
  readonly memLevel: number;
  readonly level: number;
  readonly contextTakeover: boolean;
  protected readonly stream: DeflateStream;

  constructor(options: MessageDeflaterOptions = {}) {
    super(options.scratch, "MessageDeflater");
    const windowBits = options.windowBits ?? 15;
    if (!Number.isInteger(windowBits) || windowBits < 8 || windowBits > 15) {
      throw new UsageError(ErrorCode.BAD_OPTION,
        `deflate windowBits must be an integer in 8..15, got ${windowBits}`);
    }
    this.windowBits = windowBits;
    this.memLevel = options.memLevel ?? 8;
    this.level = options.level ?? DEFAULT_DEFLATE_LEVEL;
    this.contextTakeover = options.contextTakeover ?? true;
    try {
      this.stream = new DeflateStream({
        windowBits: Math.max(windowBits, 9), memLevel: this.memLevel, level: this.level,
        allocator: options.allocator,
      });
    } catch (error) {
      throw new UsageError(ErrorCode.BAD_OPTION, (error as Error).message);
    }
  }

  /**
   * Compresses data[start, end) as one message; returns the compressed length. The bytes
   * are `output` (valid until the next compress/trim/dispose). An empty message gives the
   * single byte 0x00 (an empty stored block once the peer appends the tail, §7.2.3.6).
   */
  compress(data: Uint8Array, start = 0, end = data.length): number {
    this.checkLive();
    if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end && end <= data.length)) {
      throw new UsageError(ErrorCode.BAD_RANGE,
        `compress range ${start}..${end} is not within 0..${data.length}`);
    }
    const length = end - start;
    this.prepareScratch(length + (length >> 10) + 64);
    if (length === 0) {
      // Nothing to deflate: zlib would answer Z_BUF_ERROR after a previous flush anyway.
      this.scratch.view[0] = 0;
      this.outputLength = 1;
      return 1;
    }
    this.stream.init();
    const scratch = this.scratch;
    let consumed = 0;
    let produced = 0;
    for (;;) {
      const remaining = length - consumed;
      // The address is taken right before the call: a JS array may move between calls.
      const input = remaining === 0 ? 0 : addressOf(data) + start + consumed;
      const code = this.stream.run(input, remaining, scratch.address + produced,
        scratch.capacity - produced, Z_SYNC_FLUSH);
      consumed = length - this.stream.availIn;
      produced = scratch.capacity - this.stream.availOut;
      // Output space left over means the flush is complete; Z_BUF_ERROR: it already was.
      if (this.stream.availOut !== 0 || code === Z_BUF_ERROR) break;
      scratch.resize(scratch.capacity * 2);
    }
    const view = scratch.view;
    if (consumed !== length || produced < TAIL_BYTES || view[produced - 4] !== 0 ||
        view[produced - 3] !== 0 || view[produced - 2] !== 0xff || view[produced - 1] !== 0xff) {
      throw new Error("zlib's Z_SYNC_FLUSH output did not end with 00 00 ff ff");
    }
    if (!this.contextTakeover) this.stream.reset();
    this.outputLength = produced - TAIL_BYTES;
    return this.outputLength;
  }

  /** Native bytes held now: z_stream + zlib state (zlib's formula) + its own scratch. */
  get memoryBytes(): number {
    const zlibBytes = this.stream.initialized
      ? Z_STREAM_BYTES + deflateStateBytes(this.stream.windowBits, this.memLevel) : 0;
    return zlibBytes + (this.ownsScratch ? this.scratch.capacity : 0);
  }

  /** Ensures room for `estimate` bytes, and shrinks back a scratch that an earlier big message grew. */
  private prepareScratch(estimate: number): void {
    const wanted = Math.max(SCRATCH_MIN_BYTES, estimate);
    const capacity = this.scratch.capacity;
    if (capacity < wanted) {
      this.scratch.resize(Math.max(wanted, capacity * 2));
    } else if (capacity > SCRATCH_KEEP_BYTES && wanted * 2 <= capacity) {
      this.scratch.resize(wanted);
    }
  }
}
