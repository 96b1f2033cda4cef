/**
 * permessage-deflate (RFC 7692) decompression of ONE whole message: the frame payloads,
 * already concatenated, followed by 00 00 ff ff (§7.2.2), through raw inflate. The output
 * is bounded while inflating: it never grows past `limit + 1` bytes, so a small bomb costs
 * at most about `limit` bytes of memory. zlib state is allocated on the first message.
 *
 * Results: a length >= 0, or INFLATE_TOO_BIG (close with 1009), or INFLATE_CORRUPT (close
 * with 1007: the payload is not valid data for the negotiated extension — RFC 7692 asks to
 * _Fail the WebSocket Connection_ and RFC 6455 §7.4.1 gives 1007 for payload data that is
 * inconsistent with the message; `ws` and others use it). After either failure the stream
 * is reset: with context takeover the peer's window is lost, so the connection must close;
 * the object stays safe to use (and correct for peers without context takeover).
 */
import { ErrorCode, UsageError } from "../api/errors.ts";
import { MessageCodec } from "./message-codec.ts";
import { addressOf, viewOf } from "../ffi/memory.ts";
import {
  heap, InflateStream, inflateStateBytes, NativeBuffer, Z_DATA_ERROR, Z_NEED_DICT,
  Z_STREAM_BYTES, Z_STREAM_END, type ZlibAllocator,
} from "../ffi/zlib.ts";

/** The message would inflate to more than `limit` bytes (close 1009). */
export const INFLATE_TOO_BIG = -1;
/** The compressed data is invalid (close 1007); `corruptReason` says why. */
export const INFLATE_CORRUPT = -2;

export interface MessageInflaterOptions {
  /** LZ77 window, 8..15 (the negotiated client_max_window_bits); default 15. */
  readonly windowBits?: number;
  /** false (client_no_context_takeover): every message starts with an empty window. */
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

/** Output scratch kept between messages; a bigger one is shrunk back at the next call. */
const SCRATCH_KEEP_BYTES = 64 * 1024;
const SCRATCH_MIN_BYTES = 16 * 1024;
/** Compressed text usually expands 3–10×: a first guess that saves most regrowth. */
const EXPANSION_GUESS = 4;
const TAIL_BYTES = 4;
/** strm->data_type bits after inflate(): stopped before a block header; unused bit count. */
const AT_BLOCK_BOUNDARY = 128;
const UNUSED_BITS_MASK = 63;

let tailAddress = 0;

/** 00 00 ff ff in native memory, allocated once for the process (4 bytes, never freed). */
function nativeTail(): number {
  if (tailAddress === 0) {
    const address = heap.malloc(TAIL_BYTES);
    viewOf(address, TAIL_BYTES).set([0x00, 0x00, 0xff, 0xff]);
    tailAddress = address;
  }
  return tailAddress;
}

export class MessageInflater extends MessageCodec {
  readonly windowBits: number;
  readonly contextTakeover: boolean;
  protected readonly stream: InflateStream;
  private peakCapacity = 0;
  private reason = "";

  constructor(options: MessageInflaterOptions = {}) {
    super(options.scratch, "MessageInflater");
    const windowBits = options.windowBits ?? 15;
    this.contextTakeover = options.contextTakeover ?? true;
    try {
      this.stream = new InflateStream({ windowBits, allocator: options.allocator });
    } catch (error) {
      throw new UsageError(ErrorCode.BAD_OPTION, (error as Error).message);
    }
    this.windowBits = windowBits;
  }

  /**
   * Inflates data[start, end) + 00 00 ff ff as one message of at most `limit` bytes.
   * Returns the length (bytes in `output`, valid until the next call), INFLATE_TOO_BIG as
   * soon as the output would pass `limit`, or INFLATE_CORRUPT. An empty payload inflates
   * to nothing. A stream that ends with a BFINAL block is accepted, tail or not.
   */
  inflate(data: Uint8Array, start: number, end: number, limit: number): number {
    this.checkLive();
    if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end && end <= data.length)) {
      throw new UsageError(ErrorCode.BAD_RANGE,
        `inflate range ${start}..${end} is not within 0..${data.length}`);
    }
    if (!(Number.isInteger(limit) && limit >= 0)) {
      throw new UsageError(ErrorCode.BAD_OPTION, `inflate limit must be an integer >= 0, got ${limit}`);
    }
    this.outputLength = 0;
    const length = end - start;
    if (length === 0) return 0;
    const ceiling = limit + 1;
    this.prepareScratch(Math.min(ceiling, Math.max(SCRATCH_MIN_BYTES, length * EXPANSION_GUESS)));
    this.stream.init();
    const stream = this.stream;
    const scratch = this.scratch;
    const tail = nativeTail();
    let dataUsed = 0;
    let tailUsed = 0;
    let produced = 0;
    for (;;) {
      const inData = dataUsed < length;
      // The address is taken right before the call: a JS array may move between calls.
      const input = inData ? addressOf(data) + start + dataUsed : tail + tailUsed;
      const inputLength = inData ? length - dataUsed : TAIL_BYTES - tailUsed;
      const room = Math.min(scratch.capacity, ceiling);
      const code = stream.run(input, inputLength, scratch.address + produced, room - produced);
      const used = inputLength - stream.availIn;
      if (inData) dataUsed += used;
      else tailUsed += used;
      const progressed = used > 0 || room - stream.availOut > produced;
      produced = room - stream.availOut;
      if (produced > limit) return this.fail(INFLATE_TOO_BIG, "");
      if (code === Z_DATA_ERROR || code === Z_NEED_DICT) return this.fail(INFLATE_CORRUPT, stream.message());
      if (code === Z_STREAM_END) {
        // A BFINAL block ended. What follows in the payload is a new deflate stream that
        // may still refer back into the window; if nothing follows, the message is done
        // (the tail is not needed after BFINAL).
        if (dataUsed === length && !this.contextTakeover) return this.succeed(produced);
        stream.resetKeepingWindow();
        if (dataUsed < length) continue;
        return this.succeed(produced);
      }
      if (stream.availOut === 0) {
        // Out of room: grow geometrically, never past limit + 1 (one byte proves "too big").
        if (scratch.capacity < ceiling) this.grow(Math.min(ceiling, scratch.capacity * 2));
        continue;
      }
      // Input and room were offered and nothing moved: never spin on a confused stream.
      if (!progressed && inputLength > 0) return this.fail(INFLATE_CORRUPT, "inflate made no progress");
      if (inData) {
        if (dataUsed < length) continue;
        // A payload that ends byte-aligned before a block header (the sender kept the
        // 00 00 ff ff, or a BFINAL block ended exactly here): appending the tail would
        // open a bogus stored block, so the message is complete.
        const dataType = stream.dataType;
        if ((dataType & AT_BLOCK_BOUNDARY) !== 0 && (dataType & UNUSED_BITS_MASK) === 0) {
          return this.succeed(produced);
        }
        continue;
      }
      if (tailUsed < TAIL_BYTES) continue;
      // All input read and room left over: zlib holds no more output. A conforming payload
      // + tail ends just before the next block header; anything else was cut short.
      if ((stream.dataType & AT_BLOCK_BOUNDARY) === 0) {
        return this.fail(INFLATE_CORRUPT, "the message does not end at a deflate block boundary");
      }
      return this.succeed(produced);
    }
  }

  /** Why the last INFLATE_CORRUPT happened (zlib's message), "" otherwise. */
  get corruptReason(): string {
    return this.reason;
  }

  /** Native bytes held now: z_stream + zlib state (zlib's formula) + its own scratch. */
  get memoryBytes(): number {
    const zlibBytes = this.stream.initialized ? Z_STREAM_BYTES + inflateStateBytes(this.windowBits) : 0;
    return zlibBytes + (this.ownsScratch ? this.scratch.capacity : 0);
  }

  /** The largest scratch capacity ever reached (bounded by limit + 1). */
  get peakScratchCapacity(): number {
    return this.peakCapacity;
  }

  private succeed(length: number): number {
    if (!this.contextTakeover) this.stream.reset();
    this.outputLength = length;
    this.reason = "";
    return length;
  }

  private fail(result: number, reason: string): number {
    this.stream.reset();
    this.reason = reason;
    return result;
  }

  private grow(bytes: number): void {
    this.scratch.resize(bytes);
    if (bytes > this.peakCapacity) this.peakCapacity = bytes;
  }

  /** Ensures `wanted` bytes of room, and shrinks back a scratch that a big message grew. */
  private prepareScratch(wanted: number): void {
    const capacity = this.scratch.capacity;
    if (capacity === 0 || (capacity > SCRATCH_KEEP_BYTES && wanted * 2 <= capacity)) {
      this.grow(wanted);
    }
  }
}
