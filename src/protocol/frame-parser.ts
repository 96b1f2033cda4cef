/**
 * The RFC 6455 §5 frame parser: resumable and push-based. Bytes arrive in any chunking (down
 * to one byte per call); the parser keeps a few numbers, a 14-byte header spill (only while
 * a header is cut by a chunk end) and at most one message buffer between calls, unmasks
 * payloads in place, and hands messages out as `(data, start, end)` views. It never writes:
 * pongs and close replies are the caller's.
 *
 * Zero copy where possible: a data message whose single frame lies whole in one chunk goes
 * to the sink as a view into that chunk. Only a message that spans chunks or frames is
 * assembled, into a buffer from `messageBuffers` (doubling as bytes arrive, so memory stays
 * within twice what the peer actually sent, bounded by maxPayloadLength).
 */
import { assert } from "../api/errors.ts";
import { parseClosePayload } from "./close.ts";
import {
  CONTROL_PAYLOAD_MAX,
  FRAME_HEADER_BYTES_MAX,
  isControlOpcode,
  isProtocolError,
  OPCODE_BINARY,
  OPCODE_CLOSE,
  OPCODE_CONTINUATION,
  OPCODE_PING,
  OPCODE_TEXT,
  type ProtocolError,
  Role,
  WS_ERR_BUFFER_UNAVAILABLE,
  WS_ERR_CONTROL_TOO_LONG,
  WS_ERR_EXPECTED_CONTINUATION,
  WS_ERR_FRAGMENTED_CONTROL,
  WS_ERR_INVALID_UTF8,
  WS_ERR_MESSAGE_TOO_BIG,
  WS_ERR_PAYLOAD_LENGTH_64BIT_MSB,
  WS_ERR_RESERVED_OPCODE,
  WS_ERR_RSV_BITS,
  WS_ERR_UNEXPECTED_CONTINUATION,
  WS_ERR_UNEXPECTED_MASK,
  WS_ERR_UNMASKED_FRAME,
} from "./constants.ts";
import { maskInto, unmaskInPlace } from "./mask.ts";
import {
  classifyText, isCompleteUtf8, TEXT_ASCII, TEXT_INVALID, UTF8_ACCEPT, UTF8_INVALID, validateUtf8,
} from "./utf8.ts";
import { copyRange } from "./bytes.ts";

/**
 * Receives what the parser decodes. Every `data` view is valid only during the call (it is
 * the caller's receive buffer or a message buffer released right after); copy to keep it.
 * A sink may call `parser.destroy()` from any method to stop parsing the rest of the chunk.
 */
export interface FrameSink {
  /**
   * A whole data message, `opcode` OPCODE_TEXT or OPCODE_BINARY. Text is already validated
   * as UTF-8 unless `compressed` (RSV1, permessage-deflate): then the bytes are still
   * compressed and the inflating layer validates what it inflates. `ascii`: the text is
   * known to be 7-bit (a hint for a faster decode; false does not mean it is not).
   */
  onMessage(
    opcode: number,
    data: Uint8Array,
    start: number,
    end: number,
    compressed: boolean,
    ascii: boolean,
  ): void;
  /** A Ping (§5.5.2); the connection should answer with a Pong carrying the same bytes. */
  onPing(data: Uint8Array, start: number, end: number): void;
  /** A Pong (§5.5.3), solicited or not. */
  onPong(data: Uint8Array, start: number, end: number): void;
  /**
   * A valid Close (§5.5.1): `code` is 1005 when the payload was empty, the reason is valid
   * UTF-8. The parser ignores any bytes after it.
   */
  onClose(code: number, data: Uint8Array, reasonStart: number, reasonEnd: number): void;
  /**
   * The peer broke the protocol (or no message buffer was available). The parser is dead
   * after this; the caller closes the connection with `error.closeCode`.
   */
  onError(error: ProtocolError): void;
}

/** Where assembled messages (and control frames split across chunks) are buffered. */
export interface MessageBuffers {
  /** A buffer of at least `size` bytes, or null when none is available (closes with 1013). */
  acquire(size: number): Uint8Array | null;
  /** Takes back a buffer from `acquire`; the parser never touches it afterwards. */
  release(buffer: Uint8Array): void;
}

export interface FrameParserOptions {
  /** Role.Server expects masked frames (§5.1); Role.Client expects unmasked ones. */
  role: Role;
  /** Largest assembled message accepted, in bytes (default 16 MiB); larger closes with 1009. */
  maxPayloadLength?: number;
  /** True only when permessage-deflate was negotiated (RFC 7692 §6: RSV1 = compressed). */
  allowRsv1?: boolean;
  /** Default: plain `new Uint8Array(size)`; the server plugs pool memory in. */
  messageBuffers?: MessageBuffers;
}

export const DEFAULT_MAX_PAYLOAD_LENGTH = 16 * 1024 * 1024;

/**
 * First buffer for a message that spans chunks (capped by its known final size); doubled as
 * bytes arrive. 64 KiB: a 64 KiB message is assembled without regrowth copies, while a peer
 * that declares a huge frame and stalls holds at most this much.
 */
const MESSAGE_BUFFER_INITIAL = 64 * 1024;

const heapBuffers: MessageBuffers = {
  acquire: (size) => new Uint8Array(size),
  release: () => {},
};

const EMPTY = new Uint8Array(0);
const TWO_POW_32 = 0x1_0000_0000;

/** The byte of a spill array after the header bytes: how many of them it holds. */
const SPILL_COUNT = FRAME_HEADER_BYTES_MAX;
/** A spill array no parser holds, kept for the next header cut by the end of a chunk. */
let spareSpill: Uint8Array | null = null;

// Parser states: one method each.
const STATE_HEADER = 0; // reading a frame header (readHeader)
const STATE_PAYLOAD = 1; // reading a frame's payload (readPayload)
const STATE_DONE = 2; // after a Close, an error or destroy(): input is ignored

/** Header size from its second byte: 2, plus 2 or 8 bytes of length, plus 4 of mask key. */
function headerSizeOf(secondByte: number): number {
  const length7 = secondByte & 0x7f;
  const lengthBytes = length7 === 126 ? 2 : length7 === 127 ? 8 : 0;
  return 2 + lengthBytes + ((secondByte & 0x80) !== 0 ? 4 : 0);
}

function readUint32(bytes: Uint8Array, offset: number): number {
  const high = (bytes[offset] << 24) | (bytes[offset + 1] << 16);
  return (high | (bytes[offset + 2] << 8) | bytes[offset + 3]) >>> 0;
}

/** One connection's frame parser; see the module comment. */
export class FrameParser {
  private readonly role: Role;
  private readonly maxPayloadLength: number;
  private readonly allowRsv1: boolean;
  private readonly messageBuffers: MessageBuffers;
  /**
   * A header cut by the end of a chunk is gathered here (at most 14 bytes, §5.2; their count
   * in byte SPILL_COUNT); null when no header is being gathered. The array goes back to
   * `spareSpill` after each use, so an idle connection holds none and no count field is
   * needed: with 18 fields a parser takes 160 bytes, a 19th would make it 224 (JSC's size
   * classes, measured on Bun 1.4.5), per connection.
   */
  private spill: Uint8Array | null = null;
  private state = STATE_HEADER;
  // The frame being read.
  private frameOpcode = 0;
  private frameFin = false;
  private frameLength = 0;
  private frameRemaining = 0;
  /** The frame's masking key (big-endian u32, see mask.ts), or -1 when unmasked. */
  private maskKey = -1;
  // The data message in progress: messageOpcode is 0 when there is none.
  private messageOpcode = 0;
  private messageCompressed = false;
  /** Payload bytes of the message assembled into messageBuffer so far. */
  private messageLength = 0;
  private messageBuffer: Uint8Array | null = null;
  private utf8State = UTF8_ACCEPT;
  // A control frame whose payload spans chunks.
  private controlBuffer: Uint8Array | null = null;
  private controlLength = 0;

  constructor(options: FrameParserOptions) {
    const maxPayloadLength = options.maxPayloadLength ?? DEFAULT_MAX_PAYLOAD_LENGTH;
    assert(options.role === Role.Server || options.role === Role.Client, "role must be a Role");
    assert(
      Number.isSafeInteger(maxPayloadLength) && maxPayloadLength >= 0,
      "maxPayloadLength must be a non-negative safe integer",
    );
    this.role = options.role;
    this.maxPayloadLength = maxPayloadLength;
    this.allowRsv1 = options.allowRsv1 ?? false;
    this.messageBuffers = options.messageBuffers ?? heapBuffers;
  }

  /**
   * Between frames with no message in progress and nothing held: the parser could serve
   * another connection as it is (a server lends one to each idle connection only while it
   * reads, so an idle connection holds none).
   */
  get atRest(): boolean {
    return this.state === STATE_HEADER && this.messageOpcode === 0 && this.spill === null;
  }

  /** True once a Close or an error was reported or destroy() was called: input is ignored. */
  get done(): boolean {
    return this.state === STATE_DONE;
  }

  /**
   * Parses `data[start..end)`, the next bytes from the peer, calling `sink` for each complete
   * message, control frame or error. Masked payloads are unmasked in place in `data`.
   */
  consume(data: Uint8Array, start: number, end: number, sink: FrameSink): void {
    assert(start >= 0 && start <= end && end <= data.length, "consume range outside the array");
    let position = start;
    for (;;) {
      if (this.state === STATE_HEADER) {
        if (position >= end) return;
        position = this.readHeader(data, position, end, sink);
      } else if (this.state === STATE_PAYLOAD) {
        // A frame with nothing left to read (an empty payload) completes without input.
        if (position >= end && this.frameRemaining > 0) return;
        position = this.readPayload(data, position, end, sink);
      } else {
        return;
      }
    }
  }

  /** Stops parsing for good and releases any buffer held (call when the connection ends). */
  destroy(): void {
    this.state = STATE_DONE;
    this.releaseBuffers();
    this.releaseSpill();
  }

  /** Back to the state of a new parser (same options), releasing any buffer held. */
  reset(): void {
    this.releaseBuffers();
    this.releaseSpill();
    this.state = STATE_HEADER;
    this.frameOpcode = 0;
    this.frameFin = false;
    this.frameLength = 0;
    this.frameRemaining = 0;
    this.maskKey = -1;
    this.messageOpcode = 0;
    this.messageCompressed = false;
    this.utf8State = UTF8_ACCEPT;
  }

  private releaseSpill(): void {
    if (this.spill === null) return;
    spareSpill = this.spill;
    this.spill = null;
  }

  private releaseBuffers(): void {
    if (this.messageBuffer !== null) this.messageBuffers.release(this.messageBuffer);
    if (this.controlBuffer !== null) this.messageBuffers.release(this.controlBuffer);
    this.messageBuffer = null;
    this.controlBuffer = null;
    this.messageLength = 0;
    this.controlLength = 0;
  }

  private fail(error: ProtocolError, sink: FrameSink): void {
    this.destroy();
    sink.onError(error);
  }

  /** STATE_HEADER: parses the header in place when the chunk holds all of it, else spills. */
  private readHeader(data: Uint8Array, position: number, end: number, sink: FrameSink): number {
    if (this.spill === null && end - position >= 2) {
      const size = headerSizeOf(data[position + 1]);
      if (end - position >= size) {
        this.startFrame(data, position, sink);
        return position + size;
      }
    }
    return this.spillHeader(data, position, end, sink);
  }

  /** Gathers a header cut by the end of a chunk; starts the frame once it is whole. */
  private spillHeader(data: Uint8Array, position: number, end: number, sink: FrameSink): number {
    let spill = this.spill;
    if (spill === null) {
      spill = spareSpill ?? new Uint8Array(FRAME_HEADER_BYTES_MAX + 1);
      spareSpill = null;
      spill[SPILL_COUNT] = 0;
      this.spill = spill;
    }
    let count = spill[SPILL_COUNT];
    while (count < 2 && position < end) spill[count++] = data[position++];
    if (count < 2) {
      spill[SPILL_COUNT] = count;
      return position;
    }
    // Fail fast: the first 2 bytes already show most violations.
    const headerError = this.checkHeader(spill[0], spill[1]);
    if (headerError !== null) {
      this.fail(headerError, sink);
      return end;
    }
    const size = headerSizeOf(spill[1]);
    while (count < size && position < end) spill[count++] = data[position++];
    if (count < size) {
      spill[SPILL_COUNT] = count;
      return position;
    }
    this.spill = null;
    this.startFrame(spill, 0, sink);
    spareSpill = spill;
    return position;
  }

  /** The checks the first two header bytes allow (§5.1, §5.2, §5.4, §5.5); null when fine. */
  private checkHeader(firstByte: number, secondByte: number): ProtocolError | null {
    const opcode = firstByte & 0x0f;
    const control = isControlOpcode(opcode);
    if ((firstByte & 0x30) !== 0) return WS_ERR_RSV_BITS; // RSV2, RSV3: no extension uses them
    if ((firstByte & 0x40) !== 0) {
      // RFC 7692 §6.1: RSV1 marks a compressed message, on its first frame only.
      const firstDataFrame = opcode === OPCODE_TEXT || opcode === OPCODE_BINARY;
      if (!this.allowRsv1 || !firstDataFrame) return WS_ERR_RSV_BITS;
    }
    if ((opcode > OPCODE_BINARY && !control) || opcode > 0xa) return WS_ERR_RESERVED_OPCODE;
    if (control) {
      if ((firstByte & 0x80) === 0) return WS_ERR_FRAGMENTED_CONTROL;
      if ((secondByte & 0x7f) > CONTROL_PAYLOAD_MAX) return WS_ERR_CONTROL_TOO_LONG;
    } else if (opcode === OPCODE_CONTINUATION) {
      if (this.messageOpcode === 0) return WS_ERR_UNEXPECTED_CONTINUATION;
    } else if (this.messageOpcode !== 0) {
      return WS_ERR_EXPECTED_CONTINUATION;
    }
    const masked = (secondByte & 0x80) !== 0;
    if (this.role === Role.Server && !masked) return WS_ERR_UNMASKED_FRAME;
    if (this.role === Role.Client && masked) return WS_ERR_UNEXPECTED_MASK;
    return null;
  }

  /** Decodes the whole header at `bytes[offset..]`, checks it, and enters STATE_PAYLOAD. */
  private startFrame(bytes: Uint8Array, offset: number, sink: FrameSink): void {
    const firstByte = bytes[offset];
    const secondByte = bytes[offset + 1];
    const headerError = this.checkHeader(firstByte, secondByte);
    if (headerError !== null) return this.fail(headerError, sink);
    let position = offset + 2;
    let length = secondByte & 0x7f;
    if (length === 126) {
      length = (bytes[position] << 8) | bytes[position + 1];
      position += 2;
    } else if (length === 127) {
      // Two u32 halves, no BigInt: exact up to 2^53, and anything above exceeds the limit.
      const high = readUint32(bytes, position);
      if (high >= 0x8000_0000) return this.fail(WS_ERR_PAYLOAD_LENGTH_64BIT_MSB, sink);
      length = high * TWO_POW_32 + readUint32(bytes, position + 4);
      position += 8;
    }
    this.maskKey = (secondByte & 0x80) !== 0 ? readUint32(bytes, position) : -1;
    const opcode = firstByte & 0x0f;
    if (!isControlOpcode(opcode)) {
      // The limit applies to the assembled message; check before buffering anything.
      const assembled = opcode === OPCODE_CONTINUATION ? this.messageLength : 0;
      if (length > this.maxPayloadLength - assembled) {
        return this.fail(WS_ERR_MESSAGE_TOO_BIG, sink);
      }
      if (opcode !== OPCODE_CONTINUATION) {
        this.messageOpcode = opcode;
        this.messageCompressed = (firstByte & 0x40) !== 0;
        this.messageLength = 0;
        this.utf8State = UTF8_ACCEPT;
      }
    }
    this.frameOpcode = opcode;
    this.frameFin = (firstByte & 0x80) !== 0;
    this.frameLength = length;
    this.frameRemaining = length;
    this.state = STATE_PAYLOAD;
  }

  /** STATE_PAYLOAD: routes to the control or data payload reader. */
  private readPayload(data: Uint8Array, position: number, end: number, sink: FrameSink): number {
    if (isControlOpcode(this.frameOpcode)) {
      return this.readControlPayload(data, position, end, sink);
    }
    const wholeMessageHere =
      this.frameOpcode !== OPCODE_CONTINUATION &&
      this.frameFin &&
      this.frameRemaining === this.frameLength &&
      end - position >= this.frameLength;
    if (wholeMessageHere) return this.deliverWholeMessage(data, position, sink);
    return this.assemblePayload(data, position, end, sink);
  }

  /** The fast path: a one-frame message lying whole in this chunk goes out as a view. */
  private deliverWholeMessage(data: Uint8Array, position: number, sink: FrameSink): number {
    const payloadEnd = position + this.frameLength;
    if (this.maskKey !== -1) unmaskInPlace(data, position, payloadEnd, this.maskKey, 0);
    const opcode = this.messageOpcode;
    const compressed = this.messageCompressed;
    let ascii = false;
    if (opcode === OPCODE_TEXT && !compressed) {
      const kind = classifyText(data, position, payloadEnd);
      if (kind === TEXT_INVALID) {
        this.fail(WS_ERR_INVALID_UTF8, sink);
        return payloadEnd;
      }
      ascii = kind === TEXT_ASCII;
    }
    this.messageOpcode = 0;
    this.state = STATE_HEADER;
    sink.onMessage(opcode, data, position, payloadEnd, compressed, ascii);
    return payloadEnd;
  }

  /**
   * Copies (unmasking) the payload bytes of this chunk into the message buffer, validating
   * text as it goes so that invalid UTF-8 fails at the first bad fragment (§8.1).
   */
  private assemblePayload(
    data: Uint8Array,
    position: number,
    end: number,
    sink: FrameSink,
  ): number {
    const take = Math.min(end - position, this.frameRemaining);
    const offset = this.messageLength;
    if (take > 0) {
      const buffer = this.reserveMessageBuffer(offset + take);
      if (buffer === null) {
        this.fail(WS_ERR_BUFFER_UNAVAILABLE, sink);
        return end;
      }
      this.copyPayload(buffer, offset, data, position, position + take);
      if (this.messageOpcode === OPCODE_TEXT && !this.messageCompressed) {
        this.utf8State = validateUtf8(buffer, offset, offset + take, this.utf8State);
        if (this.utf8State === UTF8_INVALID) {
          this.fail(WS_ERR_INVALID_UTF8, sink);
          return end;
        }
      }
      this.messageLength = offset + take;
      this.frameRemaining -= take;
    }
    if (this.frameRemaining === 0) {
      this.state = STATE_HEADER;
      if (this.frameFin) this.finishMessage(sink);
    }
    return position + take;
  }

  /** Copies `data[start..end)` to `target[offset..]`, unmasking with the frame's key. */
  private copyPayload(
    target: Uint8Array,
    offset: number,
    data: Uint8Array,
    start: number,
    end: number,
  ): void {
    if (this.maskKey === -1) {
      copyRange(target, offset, data, start, end);
      return;
    }
    // The key index of this chunk's first byte: frame bytes already read, mod 4 (§5.3).
    const phase = (this.frameLength - this.frameRemaining) & 3;
    maskInto(target, offset, data, start, end, this.maskKey, phase);
  }

  /**
   * The message buffer, grown (doubling) to hold `needed` bytes: never beyond the message's
   * known final size or maxPayloadLength. Null when messageBuffers has none to give.
   */
  private reserveMessageBuffer(needed: number): Uint8Array | null {
    const current = this.messageBuffer;
    if (current !== null && current.length >= needed) return current;
    // The final frame's header tells the message's final size; before it, only the limit.
    const finalSize = this.frameFin
      ? this.messageLength + this.frameRemaining
      : this.maxPayloadLength;
    const doubled = current === null ? MESSAGE_BUFFER_INITIAL : current.length * 2;
    const size = Math.max(needed, Math.min(doubled, finalSize));
    const grown = this.messageBuffers.acquire(size);
    if (grown === null) return null;
    assert(grown.length >= size, "messageBuffers.acquire returned a short buffer");
    if (current !== null) {
      copyRange(grown, 0, current, 0, this.messageLength);
      this.messageBuffers.release(current);
    }
    this.messageBuffer = grown;
    return grown;
  }

  /** The last fragment is in: checks the text is complete, then hands the message out. */
  private finishMessage(sink: FrameSink): void {
    const opcode = this.messageOpcode;
    const compressed = this.messageCompressed;
    if (opcode === OPCODE_TEXT && !compressed && !isCompleteUtf8(this.utf8State)) {
      return this.fail(WS_ERR_INVALID_UTF8, sink);
    }
    const buffer = this.messageBuffer;
    const length = this.messageLength;
    this.messageOpcode = 0;
    this.messageBuffer = null;
    this.messageLength = 0;
    try {
      sink.onMessage(opcode, buffer ?? EMPTY, 0, length, compressed, false);
    } finally {
      if (buffer !== null) this.messageBuffers.release(buffer);
    }
  }

  /**
   * A control frame's payload (≤ 125 bytes, checked in the header): a view when it lies
   * whole in this chunk, else gathered in a small buffer from messageBuffers. Control frames
   * may arrive between the fragments of a data message (§5.4) and leave it untouched.
   */
  private readControlPayload(
    data: Uint8Array,
    position: number,
    end: number,
    sink: FrameSink,
  ): number {
    if (this.controlBuffer === null && end - position >= this.frameRemaining) {
      const payloadEnd = position + this.frameRemaining;
      if (this.maskKey !== -1) unmaskInPlace(data, position, payloadEnd, this.maskKey, 0);
      this.state = STATE_HEADER;
      this.deliverControl(data, position, payloadEnd, sink);
      return payloadEnd;
    }
    if (this.controlBuffer === null) {
      this.controlBuffer = this.messageBuffers.acquire(this.frameLength);
      this.controlLength = 0;
      if (this.controlBuffer === null) {
        this.fail(WS_ERR_BUFFER_UNAVAILABLE, sink);
        return end;
      }
    }
    const buffer = this.controlBuffer;
    const take = Math.min(end - position, this.frameRemaining);
    this.copyPayload(buffer, this.controlLength, data, position, position + take);
    this.controlLength += take;
    this.frameRemaining -= take;
    if (this.frameRemaining === 0) {
      this.controlBuffer = null;
      this.state = STATE_HEADER;
      try {
        this.deliverControl(buffer, 0, this.controlLength, sink);
      } finally {
        this.messageBuffers.release(buffer);
      }
    }
    return position + take;
  }

  private deliverControl(data: Uint8Array, start: number, end: number, sink: FrameSink): void {
    const opcode = this.frameOpcode;
    if (opcode === OPCODE_PING) return sink.onPing(data, start, end);
    if (opcode !== OPCODE_CLOSE) return sink.onPong(data, start, end);
    const close = parseClosePayload(data, start, end);
    if (isProtocolError(close)) return this.fail(close, sink);
    // §5.5.1: nothing may follow a Close; the closing handshake is the caller's to finish.
    this.destroy();
    sink.onClose(close.code, data, close.reasonStart, close.reasonEnd);
  }
}
