/**
 * One WebSocket after the handshake: the `ServerWebSocket` users hold, and the FrameSink the
 * frame parser calls. Frames go out through the transport; control frames (pong, close)
 * answer the peer as RFC 6455 §5.5 requires. Nothing here allocates per message except the
 * string of a text message and the view of a binary one.
 */
import {
  ReadyState, SEND_BACKPRESSURE, SEND_DROPPED, type BinaryType, type ServerWebSocket,
} from "../api/websocket.ts";
import { ErrorCode, UsageError } from "../api/errors.ts";
import { ENOBUFS } from "../api/errno.ts";
import { CloseMode } from "../api/transport.ts";
import {
  CLOSE_ABNORMAL, CLOSE_INVALID_PAYLOAD, CLOSE_MESSAGE_TOO_BIG, CLOSE_NO_STATUS, CLOSE_NORMAL,
  CLOSE_POLICY_VIOLATION, CLOSE_TRY_AGAIN_LATER,
  OPCODE_BINARY,
  OPCODE_PING, OPCODE_PONG, OPCODE_TEXT, type ProtocolError,
} from "../protocol/constants.ts";
import { isValidCloseCode } from "../protocol/close.ts";
import { classifyText, TEXT_ASCII, TEXT_INVALID } from "../protocol/utf8.ts";
import type { FrameParser, FrameSink } from "../protocol/frame-parser.ts";
import {
  frameHeaderSize, writeCloseFrame, writeControlFrame, writeFrameHeader,
} from "../protocol/frame-writer.ts";
import { LENDABLE_BYTES } from "./message-buffers.ts";
import { COPY_MAX, isMessageView, messageBytes } from "./message-view.ts";
import type { SocketHost } from "./hosts.ts";
import { checkTopic, type PublishedFrame } from "./topics.ts";
import { viewBytes } from "./outgoing-bytes.ts";
import { INFLATE_TOO_BIG } from "./message-inflater.ts";

/** Where text is encoded in the scratch buffer: room for the longest header in front. */
const TEXT_AT = 14;

/** Bun's Buffer has Node's latin1/utf8 fast paths; they take ranges, so no subarray. */
interface Utf8Buffer extends Buffer {
  utf8Write(text: string, offset: number, length: number): number;
  utf8Slice(start: number, end: number): string;
  latin1Slice(start: number, end: number): string;
}
/** Queued bytes the kernel has not taken, above which a send reports backpressure. */
export const BACKPRESSURE_HIGH_WATER = 64 * 1024;
/**
 * Pongs a socket may have queued since its queue was last empty; one more closes it (1008).
 * Far above what a reading peer reaches (keepalive is one ping per interval; a peer that
 * pings while a big stream to it is still queued stays well under it), and at most ~127 KiB
 * of pongs: far below what fills memory.
 */
export const MAX_PONGS_QUEUED = 1024;
/** sendState bit: the socket was evicted. */
const EVICTED = 1 << 30;
/** sendState bit: permessage-deflate was negotiated (core.deflate has its agreement). */
const DEFLATE = 1 << 29;
/** sendState bits 27-28: binaryType (0 nodebuffer, 1 arraybuffer, 2 uint8array). */
const BINARY_TYPE_SHIFT = 27;
const BINARY_TYPE_MASK = 3 << BINARY_TYPE_SHIFT;
/** What queueEmptied keeps of sendState. */
const KEPT_STATE = EVICTED | DEFLATE | BINARY_TYPE_MASK;
const BINARY_TYPES: readonly BinaryType[] = ["nodebuffer", "arraybuffer", "uint8array"];

/** How a socket closed: the code and reason reported to `close`. */
interface CloseRecord {
  readonly code: number;
  readonly reason: string;
}
const NOT_CLOSED: CloseRecord = { code: CLOSE_ABNORMAL, reason: "" };
/** remoteAddress once computed: here rather than in a field that every socket carries. */
const remoteAddresses = new WeakMap<object, string>();

/**
 * The text message being handled, while its handler runs, when it is long enough to lend:
 * sending that same string (echo, broadcast) queues its received bytes, already UTF-8,
 * instead of encoding it again, and without a copy when they lie in a lendable buffer.
 */
let receivedText: string | undefined;
let receivedBytes: Uint8Array = new Uint8Array(0); // EMPTY when none
let receivedStart = 0;
let receivedEnd = 0;
/**
 * Text this long or longer is remembered while its handler runs (below, re-encoding a short
 * string measured cheaper than tracking it: 16 B echo 3% slower, 4 KiB even).
 */
const RESEND_MIN = LENDABLE_BYTES;
/** sendLoaned's "no loan was made: copy instead". */
const NOT_LOANED = -(2 ** 31);

const textDecoder = new TextDecoder("utf-8");
const textEncoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

/**
 * Memory: one of these (and its FrameParser) is all an open connection holds in the JS heap,
 * so its fields are kept to 8: JSC rounds an object of 9 to 12 fields up to 112 bytes, of 8
 * to 80 (measured, Bun 1.4.5). Rarely used state lives elsewhere: the close code and reason
 * in one record made at close, the remote address in a WeakMap on first use.
 */
export class WebSocketConnection<T> implements ServerWebSocket<T>, FrameSink {
  data: T;
  readonly protocol: string;
  readyState: ReadyState = ReadyState.OPEN;
  /**
   * Bit 0: a send returned backpressure, so `drain` is due when the queue empties. Bit 30
   * (EVICTED): closed for its share of send memory. Between them (in steps of 2): pongs
   * queued since the queue was last empty. One field for all keeps this object at 8 fields
   * (see above).
   */
  private sendState = 0;
  private closeRecord: CloseRecord = NOT_CLOSED;

  /**
   * This socket's frame parser while a frame or message is half read; null between frames
   * (the core lends a spare one for each read: see ServerCore.parse).
   */
  parser: FrameParser | null = null;

  constructor(
    private readonly core: SocketHost<T>,
    readonly conn: number,
    data: T,
    protocol: string,
  ) {
    this.data = data;
    this.protocol = protocol;
  }

  get binaryType(): BinaryType {
    return BINARY_TYPES[(this.sendState & BINARY_TYPE_MASK) >>> BINARY_TYPE_SHIFT];
  }

  set binaryType(type: BinaryType) {
    const index = BINARY_TYPES.indexOf(type);
    if (index < 0) {
      throw new UsageError(ErrorCode.BAD_BINARY_TYPE,
        `binaryType is "nodebuffer", "arraybuffer" or "uint8array", not ${JSON.stringify(type)}`);
    }
    this.sendState = (this.sendState & ~BINARY_TYPE_MASK) | (index << BINARY_TYPE_SHIFT);
  }

  /** permessage-deflate was negotiated (its frames may carry RSV1). */
  get compressed(): boolean {
    return (this.sendState & DEFLATE) !== 0;
  }

  /** permessage-deflate was negotiated for this socket (set once, before `open`). */
  markCompressed(): void {
    this.sendState |= DEFLATE;
  }

  /** A send returned backpressure and `drain` has not been called since. */
  get needsDrain(): boolean {
    return (this.sendState & 1) !== 0;
  }

  /**
   * The transport's queue for this socket is empty: pongs no longer pile up. Returns true
   * when `drain` is due (a send returned backpressure since the last one).
   */
  queueEmptied(): boolean {
    const due = (this.sendState & 1) !== 0;
    this.sendState &= KEPT_STATE;
    return due;
  }

  /** Closed by `evict()` (its queue is already dropped: evicting it again frees nothing). */
  get evicted(): boolean {
    return (this.sendState & EVICTED) !== 0;
  }

  /** Close code and reason reported to `close`: from the peer's frame, or the one we sent. */
  get closeCode(): number {
    return this.closeRecord.code;
  }

  get closeReason(): string {
    return this.closeRecord.reason;
  }

  get remoteAddress(): string {
    let address = remoteAddresses.get(this);
    if (address === undefined) {
      // Once closed, `conn` may already belong to another client: never ask the transport.
      if (this.readyState === ReadyState.CLOSED) return "";
      address = hostOf(this.core.transport.remoteAddress(this.conn));
      remoteAddresses.set(this, address);
    }
    return address;
  }

  /**
   * The connection is gone (the transport's onClose): remember the address while the
   * transport still knows it, for `close` handlers and for whoever keeps this object.
   */
  markClosed(): void {
    if (!remoteAddresses.has(this)) {
      remoteAddresses.set(this, hostOf(this.core.transport.remoteAddress(this.conn)));
    }
    this.readyState = ReadyState.CLOSED;
  }

  // ------------------------------------------------------------ sending

  /**
   * `compress`: with permessage-deflate negotiated, messages of `threshold` bytes or more
   * are compressed unless this is false (Bun 1.4.5 compresses only when it is true).
   */
  send(data: string | ArrayBufferView | ArrayBuffer, compress?: boolean): number {
    return typeof data === "string" ? this.sendText(data, compress) : this.sendBinary(data, compress);
  }

  sendText(data: string, compress?: boolean): number {
    if (data === receivedText) {
      return this.sendFrame(OPCODE_TEXT, receivedBytes, receivedStart, receivedEnd, compress);
    }
    const scratch = this.core.scratch;
    // UTF-8 takes at most 3 bytes per UTF-16 unit: encode in place behind the header room.
    if (data.length * 3 <= scratch.length - TEXT_AT) {
      const written = (scratch as Utf8Buffer).utf8Write(data, TEXT_AT, scratch.length - TEXT_AT);
      return this.sendFrame(OPCODE_TEXT, scratch, TEXT_AT, TEXT_AT + written, compress);
    }
    const bytes = textEncoder.encode(data);
    return this.sendFrame(OPCODE_TEXT, bytes, 0, bytes.length, compress);
  }

  sendBinary(data: ArrayBufferView | ArrayBuffer, compress?: boolean): number {
    const bytes = viewBytes(data);
    return this.sendFrame(OPCODE_BINARY, bytes, 0, bytes.length, compress);
  }

  // ------------------------------------------------------------ pub/sub

  subscribe(topic: string): void {
    if (this.readyState === ReadyState.CLOSED) return;
    this.core.topics.subscribe(this, checkTopic(topic));
  }

  unsubscribe(topic: string): void {
    this.core.topics.unsubscribe(this, checkTopic(topic));
  }

  isSubscribed(topic: string): boolean {
    return this.core.topics.isSubscribed(this, checkTopic(topic));
  }

  get subscriptions(): string[] {
    return this.core.topics.subscriptionsOf(this);
  }

  /** To every subscriber of `topic` but this socket (unless publishToSelf); `compress` as for send. */
  publish(topic: string, data: string | ArrayBufferView | ArrayBuffer, compress?: boolean): number {
    return this.core.publish(checkTopic(topic), data, this.core.options.publishToSelf ? undefined : this,
      compress !== false);
  }

  publishText(topic: string, data: string, compress?: boolean): number {
    return this.publish(topic, String(data), compress);
  }

  publishBinary(topic: string, data: ArrayBufferView | ArrayBuffer, compress?: boolean): number {
    return this.publish(topic, data, compress);
  }

  ping(data?: string | ArrayBufferView | ArrayBuffer): number {
    return this.sendControl(OPCODE_PING, data);
  }

  pong(data?: string | ArrayBufferView | ArrayBuffer): number {
    return this.sendControl(OPCODE_PONG, data);
  }

  cork<R>(callback: (ws: ServerWebSocket<T>) => R): R {
    // Every send of a loop turn already leaves in one write per connection.
    return callback(this);
  }

  getBufferedAmount(): number {
    return this.readyState === ReadyState.CLOSED ? 0 : this.core.transport.bufferedAmount(this.conn);
  }

  /**
   * One data frame: `payload[start, end)`. The header goes in front of a payload already in
   * the scratch buffer (text encoded in place), else header and payload are queued as a pair:
   * all or nothing, no intermediate copy.
   */
  private sendFrame(opcode: number, payload: Uint8Array, start: number, end: number,
    compress: boolean | undefined): number {
    const compressed = compress !== false && (this.sendState & DEFLATE) !== 0 &&
      this.core.deflate!.agreementOf(this.conn)!.serverCompresses;
    return this.sendChecked(opcode, payload, start, end, null, undefined, compressed);
  }

  /**
   * A frame published to a topic (framed once for all its subscribers): queued under this
   * socket's backpressure limit like a send. Topics call it for each subscriber.
   */
  deliver(frame: PublishedFrame, topic: string): number {
    if ((this.sendState & DEFLATE) !== 0 && frame.compressible) return this.deliverCompressed(frame, topic);
    return this.sendChecked(0, frame.payload, frame.start, frame.end, frame, topic, false);
  }

  /**
   * A publish to a compressed socket: the frame compressed once for every socket sharing
   * the server's stream of its window size; a socket with a window of its own (a dedicated
   * compressor) compresses it through that window, as a send.
   */
  private deliverCompressed(frame: PublishedFrame, topic: string): number {
    const agreement = this.core.deflate!.agreementOf(this.conn)!;
    if (!agreement.serverCompresses) return this.sendChecked(0, frame.payload, frame.start, frame.end, frame, topic, false);
    if (!agreement.serverNoContextTakeover) {
      return this.sendChecked(frame.header[0] & 0x0f, frame.payload, frame.start, frame.end, null, topic, true);
    }
    const variant = this.core.topics.compressedFrame(frame, agreement.serverWindowBits);
    return this.sendChecked(0, variant.payload, variant.start, variant.end, variant, topic, false);
  }

  /**
   * The send rules, for a frame to build (`published` null: header from `opcode`) or one
   * already built: open sockets only; at the backpressure limit drop it (or close, with
   * closeOnBackpressureLimit) and tell `dropped`; if shared send memory ran out, reclaim it
   * and try once more; -1 once the queue crosses the high-water mark.
   */
  private sendChecked(opcode: number, payload: Uint8Array, start: number, end: number,
    published: PublishedFrame | null, topic: string | undefined, compress: boolean): number {
    if (this.readyState !== ReadyState.OPEN) return SEND_DROPPED;
    const core = this.core;
    const transport = core.transport;
    const length = end - start;
    const buffered = transport.bufferedAmount(this.conn);
    if (buffered > 0 && buffered + length > core.options.backpressureLimit) {
      core.counters.dropped++;
      if (core.options.closeOnBackpressureLimit) {
        this.fail(CLOSE_POLICY_VIOLATION, "backpressure limit");
      }
      const original = published?.source ?? published;
      if (original !== null) core.droppedMessage(this, 0, original, original.payload, original.start, original.end, topic);
      else core.droppedMessage(this, opcode, null, payload, start, end, topic);
      return SEND_DROPPED;
    }
    if (compress && published === null && length >= core.deflate!.threshold) {
      return this.countQueued(this.queueCompressed(opcode, payload, start, end), buffered, length);
    }
    let queued = published === null ? this.queueFrame(opcode, payload, start, end)
      : this.queuePublished(published);
    // Send memory is shared and ran out: the socket holding the most is closed to free it
    // (maybe this one), then the send is tried once more. Never silently an innocent's loss.
    if (queued === -ENOBUFS && core.reclaimSendMemory(this)) {
      queued = published === null ? this.queueFrame(opcode, payload, start, end)
        : this.queuePublished(published);
    }
    return this.countQueued(queued, buffered, length);
  }

  /** A queue attempt's result as send() returns it, counted. */
  private countQueued(queued: number, buffered: number, length: number): number {
    const core = this.core;
    if (queued < 0) {
      core.counters.dropped++;
      return SEND_DROPPED;
    }
    core.counters.messagesOut++;
    // Counted with this message: the send that fills the queue is the one that says so.
    if (buffered + length >= BACKPRESSURE_HIGH_WATER) {
      this.sendState |= 1;
      return SEND_BACKPRESSURE;
    }
    return length === 0 ? 1 : length;
  }

  /**
   * payload[start, end) compressed (RSV1) through this socket's agreement, header and
   * compressed bytes queued as a pair (the transport copies them). When the socket keeps a
   * window (a dedicated compressor) the message is in it now: if it cannot be queued even
   * after send memory was reclaimed, the stream would be out of step, so the socket closes.
   */
  private queueCompressed(opcode: number, payload: Uint8Array, start: number, end: number): number {
    const core = this.core;
    const deflate = core.deflate!;
    const length = deflate.compress(this.conn, payload, start, end);
    const scratch = core.scratch;
    const headerSize = writeFrameHeader(scratch, 0, opcode, true, true, length);
    const generation = deflate.generation;
    let queued = core.transport.sendPair(this.conn, scratch, 0, headerSize, deflate.output, 0, length);
    if (queued === -ENOBUFS && core.reclaimSendMemory(this) && deflate.generation === generation) {
      writeFrameHeader(scratch, 0, opcode, true, true, length); // scratch may have been reused
      queued = core.transport.sendPair(this.conn, scratch, 0, headerSize, deflate.output, 0, length);
    }
    if (queued < 0 && !deflate.agreementOf(this.conn)!.serverNoContextTakeover) this.evict();
    return queued;
  }

  /** Header + payload into the transport's queue: bytes queued or -errno (all or nothing). */
  private queueFrame(opcode: number, payload: Uint8Array, start: number, end: number): number {
    const core = this.core;
    const transport = core.transport;
    const length = end - start;
    const scratch = core.scratch;
    if (payload === scratch && length < 126) {
      // The common case, a short text: a 2-byte header (FIN + opcode, 7-bit length).
      scratch[start - 2] = 0x80 | opcode;
      scratch[start - 1] = length;
      return transport.send(this.conn, scratch, start - 2, end);
    }
    if (payload === scratch) {
      const headerAt = start - frameHeaderSize(length, false);
      writeFrameHeader(scratch, headerAt, opcode, true, false, length);
      return transport.send(this.conn, scratch, headerAt, end);
    }
    const headerSize = writeFrameHeader(scratch, 0, opcode, true, false, length);
    const loaned = length >= LENDABLE_BYTES && !core.options.poisonMessageViews
      ? this.sendLoaned(headerSize, payload, start, end) : NOT_LOANED;
    if (loaned !== NOT_LOANED) return loaned;
    return transport.sendPair(this.conn, scratch, 0, headerSize, payload, start, end);
  }

  /** A published frame: its payload lent when it lies in native memory, else copied. */
  private queuePublished(frame: PublishedFrame): number {
    const transport = this.core.transport;
    const lender = frame.lender;
    if (lender !== null) {
      const view = frame.payload;
      const token = lender.lend(view);
      if (token >= 0) {
        const queued = transport.sendLoaned(this.conn, frame.header, 0, frame.headerSize, view,
          frame.start, frame.end, lender.addressOf(token, view) + frame.start, lender, token);
        if (queued > 0) return queued;
        lender.giveBack(token);
        if (queued !== -ENOBUFS) return queued;
      }
    }
    return transport.sendPair(this.conn, frame.header, 0, frame.headerSize, frame.payload,
      frame.start, frame.end);
  }

  /**
   * Header (in scratch) plus a payload lent from a received message's buffer, not copied:
   * bytes queued, -errno, or NOT_LOANED when the payload is not lendable or the transport
   * has no loan to spare.
   */
  private sendLoaned(headerSize: number, payload: Uint8Array, start: number, end: number): number {
    const core = this.core;
    const lender = core.messageBuffers;
    const token = lender.lend(payload);
    if (token < 0) return NOT_LOANED;
    const queued = core.transport.sendLoaned(this.conn, core.scratch, 0, headerSize, payload, start,
      end, lender.addressOf(token, payload) + start, lender, token);
    if (queued > 0) {
      core.counters.messagesLent++;
      return queued;
    }
    lender.giveBack(token);
    return queued === -ENOBUFS ? NOT_LOANED : queued;
  }

  private sendControl(opcode: number, data?: string | ArrayBufferView | ArrayBuffer): number {
    if (this.readyState !== ReadyState.OPEN) return SEND_DROPPED;
    const payload = data === undefined ? EMPTY
      : typeof data === "string" ? textEncoder.encode(data) : viewBytes(data);
    if (payload.length > 125) {
      throw new UsageError(ErrorCode.PING_PAYLOAD_TOO_LONG, "ping/pong payloads are at most 125 bytes");
    }
    return this.writeControl(opcode, payload, 0, payload.length);
  }

  /**
   * Pings and pongs leave ahead of queued data (between two frames: sendUrgent), so that
   * keepalive works across a slow reader's backlog, and bypass the backpressure limit; they
   * are bounded otherwise (see onPing). When send memory ran out, the socket holding the
   * most pays first (reclaimSendMemory), as for data.
   */
  private writeControl(opcode: number, payload: Uint8Array, start: number, end: number): number {
    const core = this.core;
    const size = writeControlFrame(core.scratch, 0, opcode, payload, start, end);
    let queued = core.transport.sendUrgent(this.conn, core.scratch, 0, size);
    if (queued === -ENOBUFS && core.reclaimSendMemory(this)) {
      writeControlFrame(core.scratch, 0, opcode, payload, start, end); // scratch may be reused
      queued = core.transport.sendUrgent(this.conn, core.scratch, 0, size);
    }
    return queued < 0 ? SEND_DROPPED : size;
  }

  // ------------------------------------------------------------ closing

  close(code: number = CLOSE_NORMAL, reason = ""): void {
    if (this.readyState !== ReadyState.OPEN) return;
    if (!isValidCloseCode(code)) {
      throw new UsageError(ErrorCode.CLOSE_CODE_NOT_SENDABLE, `close code ${code} may not be sent`);
    }
    this.sendClose(code, reason);
    this.closeRecord = { code, reason };
    this.core.closing(this.conn); // wait for the peer's close frame, up to closeTimeout
  }

  terminate(): void {
    if (this.readyState === ReadyState.CLOSED) return;
    this.readyState = ReadyState.CLOSING;
    this.core.transport.close(this.conn, CloseMode.Abort);
  }

  /** Close frame with `code` (1005: empty payload); after it nothing more is sent (§5.5.1). */
  private sendClose(code: number, reason: string): void {
    const core = this.core;
    const size = writeCloseFrame(core.scratch, 0, code, reason);
    let queued = core.transport.send(this.conn, core.scratch, 0, size);
    if (queued === -ENOBUFS && core.reclaimSendMemory(this)) {
      writeCloseFrame(core.scratch, 0, code, reason);
      queued = core.transport.send(this.conn, core.scratch, 0, size);
    }
    this.readyState = ReadyState.CLOSING;
  }

  /**
   * Closed for what it holds of the shared send memory (1013: it held the most when that ran
   * out; 1008: pongs it does not read). The peer does not read, so it would never see a
   * close frame: its queue is dropped with a reset, its memory free at once, and `close`
   * reports `code`.
   */
  evict(code = CLOSE_TRY_AGAIN_LATER, reason = "send memory exhausted"): void {
    if (this.readyState === ReadyState.CLOSED) return;
    this.sendState |= EVICTED;
    if (this.readyState === ReadyState.OPEN || this.closeRecord === NOT_CLOSED) {
      this.closeRecord = { code, reason };
    }
    this.readyState = ReadyState.CLOSING;
    this.core.transport.close(this.conn, CloseMode.Abort);
  }

  /** Server-side failure (idle, shutdown, protocol error): close frame, then TCP close. */
  fail(code: number, reason: string): void {
    if (this.readyState === ReadyState.OPEN) {
      this.sendClose(code, reason);
      this.closeRecord = { code, reason };
      this.core.closing(this.conn); // a peer that never reads cannot hold the flush past closeTimeout
    }
    this.core.transport.close(this.conn, CloseMode.Graceful);
  }

  // ------------------------------------------------------------ FrameSink

  onMessage(opcode: number, data: Uint8Array, start: number, end: number, compressed: boolean,
    ascii: boolean): void {
    if (this.readyState !== ReadyState.OPEN) return; // data after our close frame: ignored
    if (compressed) {
      this.onCompressedMessage(opcode, data, start, end);
      return;
    }
    const core = this.core;
    core.counters.messagesIn++;
    if (opcode === OPCODE_TEXT) {
      // Pool buffers are Buffers: decode in place (ASCII as latin1: measured 5% more 16 B
      // echoes than utf8Slice). Other arrays (the fake transport's) go through TextDecoder.
      const text = !(data instanceof Buffer) ? textDecoder.decode(data.subarray(start, end))
        : ascii ? (data as Utf8Buffer).latin1Slice(start, end)
        : (data as Utf8Buffer).utf8Slice(start, end);
      if (end - start < RESEND_MIN) {
        core.invokeMessage(this, text);
        return;
      }
      receivedText = text;
      receivedBytes = data;
      receivedStart = start;
      receivedEnd = end;
      core.invokeMessage(this, text); // catches what the handler throws
      receivedText = undefined;
      receivedBytes = EMPTY;
      return;
    }
    const binaryType = this.sendState & BINARY_TYPE_MASK;
    if (binaryType !== 0) {
      // Handed as the type asked for; the handler's declared type stays Buffer (as Bun's).
      core.invokeMessage(this, otherBinary(binaryType >>> BINARY_TYPE_SHIFT, data, start, end) as Buffer);
      return;
    }
    const message = messageBytes(data, start, end);
    core.invokeMessage(this, message);
    if (core.options.poisonMessageViews && isMessageView(message)) message.fill(0xdd);
  }

  /**
   * A message with RSV1 (the parser allows it only when permessage-deflate was negotiated):
   * inflated within maxPayloadLength — a bomb is cut off as soon as it passes the limit
   * (1009), never inflated further — then text is validated as UTF-8 (1007) and the
   * message handled as if it had arrived plain.
   */
  private onCompressedMessage(opcode: number, data: Uint8Array, start: number, end: number): void {
    const core = this.core;
    const deflate = core.deflate!;
    const length = deflate.inflate(this.conn, data, start, end, core.options.maxPayloadLength);
    if (length < 0) {
      core.counters.protocolErrors++;
      if (length === INFLATE_TOO_BIG) this.fail(CLOSE_MESSAGE_TOO_BIG, "message too big");
      else this.fail(CLOSE_INVALID_PAYLOAD, "invalid compressed data");
      this.parser?.destroy();
      return;
    }
    const output = deflate.output;
    // A Buffer over the inflated bytes: text decodes in place, binary is handed as a view.
    const bytes = Buffer.from(output.buffer, output.byteOffset, length);
    let ascii = false;
    if (opcode === OPCODE_TEXT) {
      const kind = classifyText(bytes, 0, length);
      if (kind === TEXT_INVALID) {
        core.counters.protocolErrors++;
        this.fail(CLOSE_INVALID_PAYLOAD, "invalid UTF-8");
        this.parser?.destroy();
        return;
      }
      ascii = kind === TEXT_ASCII;
    }
    this.onMessage(opcode, bytes, 0, length, false, ascii);
  }

  onPing(data: Uint8Array, start: number, end: number): void {
    if (this.readyState !== ReadyState.OPEN) return;
    // Pongs leave even past backpressureLimit, so they are bounded by count: a peer that
    // pings without reading the answers would otherwise fill the shared send memory.
    this.sendState += 2;
    if (((this.sendState & ~KEPT_STATE) >>> 1) > MAX_PONGS_QUEUED) {
      this.core.counters.protocolErrors++;
      this.evict(CLOSE_POLICY_VIOLATION, "pongs not read");
      return;
    }
    this.writeControl(OPCODE_PONG, data, start, end); // §5.5.2: same application data
    const handler = this.core.handlers.ping;
    if (handler) this.core.invoke(this, handler, messageBytes(data, start, end)); // ≤ 125 B: a copy
  }

  onPong(data: Uint8Array, start: number, end: number): void {
    const handler = this.core.handlers.pong;
    if (handler && this.readyState === ReadyState.OPEN) {
      this.core.invoke(this, handler, messageBytes(data, start, end));
    }
  }

  onClose(code: number, data: Uint8Array, reasonStart: number, reasonEnd: number): void {
    const reason = reasonEnd > reasonStart ? textDecoder.decode(data.subarray(reasonStart, reasonEnd)) : "";
    if (this.readyState === ReadyState.OPEN) {
      // Echo the peer's code (§5.5.1), then close TCP: the server closes first (§7.1.1).
      this.sendClose(code === CLOSE_NO_STATUS ? CLOSE_NO_STATUS : code, "");
      this.closeRecord = { code, reason };
    }
    this.core.transport.close(this.conn, CloseMode.Graceful);
  }

  onError(error: ProtocolError): void {
    this.core.counters.protocolErrors++;
    this.fail(error.closeCode, error.message);
  }
}

/** "127.0.0.1:54321" → "127.0.0.1" (Bun's remoteAddress carries no port). */
function hostOf(endpoint: string): string {
  return endpoint.slice(0, endpoint.lastIndexOf(":")) || endpoint;
}

/** A binary message as an ArrayBuffer of its own (1) or a Uint8Array (2, see binaryType). */
function otherBinary(type: number, data: Uint8Array, start: number, end: number): ArrayBuffer | Uint8Array {
  if (type === 1) return data.buffer.slice(data.byteOffset + start, data.byteOffset + end) as ArrayBuffer;
  if (end - start <= COPY_MAX) return Uint8Array.prototype.slice.call(data, start, end);
  return new Uint8Array(data.buffer, data.byteOffset + start, end - start);
}
