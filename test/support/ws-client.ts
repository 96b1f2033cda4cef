/**
 * A WebSocket test client over any Transport (the fake or io_uring), built on the project's
 * own codec in the client role: it sends exactly the bytes a test asks for (masked frames,
 * broken frames, fragments, raw bytes) and records every frame the server sends back.
 */
import { CloseMode, type Transport, type TransportHandler } from "../../src/api/transport.ts";
import { OPCODE_BINARY, OPCODE_TEXT, Role, type ProtocolError } from "../../src/protocol/constants.ts";
import { FrameParser, type FrameSink } from "../../src/protocol/frame-parser.ts";
import { writeCloseFrame, writeFrame } from "../../src/protocol/frame-writer.ts";
import zlib from "node:zlib";
import { waitFor } from "./wait-for.ts";

const DEFLATE_TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

export type ClientEvent =
  | { type: "message"; opcode: number; data: Uint8Array; text: string; compressed: boolean }
  | { type: "ping" | "pong"; data: Uint8Array }
  | { type: "close"; code: number; reason: string }
  | { type: "error"; error: ProtocolError };

export interface ConnectOptions {
  path?: string;
  headers?: Record<string, string>;
  /** Replace the whole request (for malformed-handshake tests). */
  rawRequest?: string;
  /** Split the request into pieces of this many bytes (each its own send). */
  requestChunk?: number;
  /**
   * Accept RSV1 frames and inflate them (send the offer yourself in `headers`). Inflating
   * uses node:zlib, independent of the server's codec: context takeover is done by passing
   * the last 32 KiB inflated as the dictionary, unless the 101 said server_no_context_takeover.
   */
  deflate?: boolean;
}

const decoder = new TextDecoder();
/** A copy of data[start, end) (a Buffer's own slice() would be a view of reused memory). */
const copyOf = (data: Uint8Array, start: number, end: number): Uint8Array =>
  Uint8Array.prototype.slice.call(data, start, end);
const KEY = "dGhlIHNhbXBsZSBub25jZQ==";

export class TestWsClient implements TransportHandler {
  readonly events: ClientEvent[] = [];
  /** The server's HTTP response head, once complete. */
  responseHead = "";
  responseStatus = 0;
  /** Bytes of the response body after the head (plain HTTP answers). */
  responseBody = "";
  opened = false;
  closedReason: number | undefined;
  private headBuffer = "";
  private readonly parser: FrameParser;
  /** What the server's compressed messages inflated to, the last 32 KiB (its LZ77 window). */
  private window = new Uint8Array(0);
  private readonly conn: number;
  private maskKey = 0x12345678;

  private constructor(private readonly transport: Transport, port: number,
    private readonly options: ConnectOptions) {
    this.parser = new FrameParser({ role: Role.Client, maxPayloadLength: 64 << 20, allowRsv1: options.deflate === true });
    this.conn = transport.connect("127.0.0.1", port, this);
  }

  static connect(transport: Transport, port: number, options: ConnectOptions = {}) {
    return new TestWsClient(transport, port, options);
  }

  /** Request bytes a normal client sends. */
  static request(options: ConnectOptions = {}): string {
    const headers: Record<string, string> = {
      Host: "127.0.0.1", Upgrade: "websocket", Connection: "Upgrade",
      "Sec-WebSocket-Key": KEY, "Sec-WebSocket-Version": "13", ...options.headers,
    };
    const lines = Object.entries(headers).filter(([, v]) => v !== "").map(([k, v]) => `${k}: ${v}`);
    return `GET ${options.path ?? "/"} HTTP/1.1\r\n${lines.join("\r\n")}\r\n\r\n`;
  }

  onOpen(): void {
    this.opened = true;
    const bytes = new TextEncoder().encode(this.options.rawRequest ?? TestWsClient.request(this.options));
    const chunk = this.options.requestChunk ?? bytes.length;
    for (let i = 0; i < bytes.length; i += chunk) {
      this.transport.send(this.conn, bytes, i, Math.min(bytes.length, i + chunk));
    }
  }

  onData(_conn: number, data: Uint8Array, start: number, end: number): void {
    if (this.responseStatus === 0 || (this.responseStatus !== 101 && this.responseHead)) {
      this.headBuffer += Buffer.from(data.subarray(start, end)).toString("latin1");
      const split = this.headBuffer.indexOf("\r\n\r\n");
      if (split < 0) return;
      if (this.responseStatus === 0) {
        this.responseHead = this.headBuffer.slice(0, split);
        this.responseStatus = Number(this.responseHead.split(" ")[1]);
      }
      this.responseBody = this.headBuffer.slice(split + 4);
      if (this.responseStatus !== 101) return;
      const rest = Buffer.from(this.responseBody, "latin1");
      this.responseBody = "";
      if (rest.length > 0) this.parser.consume(rest, 0, rest.length, this.sink);
      return;
    }
    this.parser.consume(data, start, end, this.sink);
  }

  onDrain(): void {}
  onEnd(): void {}
  onClose(_conn: number, reason: number): void {
    this.closedReason = reason;
  }

  /** Frames from the server land here (a separate object: FrameSink and TransportHandler
   * both name a method onClose). */
  private readonly sink: FrameSink = {
    onMessage: (opcode, data, start, end, compressed) => {
      const bytes = compressed ? this.inflate(data.subarray(start, end)) : copyOf(data, start, end);
      this.events.push({ type: "message", opcode, data: bytes, text: decoder.decode(bytes), compressed });
    },
    onPing: (data, start, end) => void this.events.push({ type: "ping", data: copyOf(data, start, end) }),
    onPong: (data, start, end) => void this.events.push({ type: "pong", data: copyOf(data, start, end) }),
    onClose: (code, data, start, end) => {
      this.events.push({ type: "close", code, reason: decoder.decode(data.subarray(start, end)) });
    },
    onError: (error) => void this.events.push({ type: "error", error }),
  };

  private inflate(payload: Uint8Array): Uint8Array {
    const takeover = !/server_no_context_takeover/i.test(this.responseHead);
    const input = Buffer.concat([payload, DEFLATE_TAIL]);
    const output = new Uint8Array(zlib.inflateRawSync(input, {
      finishFlush: zlib.constants.Z_SYNC_FLUSH, ...(takeover && this.window.length > 0 ? { dictionary: this.window } : {}),
    }));
    if (takeover) {
      const joined = Buffer.concat([this.window, output]);
      this.window = joined.subarray(Math.max(0, joined.length - 32768));
    }
    return output;
  }

  /** A compressed message (RSV1), deflated by node:zlib with no context (always valid). */
  sendCompressed(opcode: number, payload: Uint8Array | string, options: { keepTail?: boolean; final?: boolean } = {}): void {
    const bytes = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
    const deflated = options.final ? zlib.deflateRawSync(bytes)
      : zlib.deflateRawSync(bytes, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    const body = options.final || options.keepTail ? deflated : deflated.subarray(0, deflated.length - 4);
    this.sendFrame(opcode, body, true, true);
  }

  /** One masked frame (fin and rsv1 as given). */
  sendFrame(opcode: number, payload: Uint8Array | string, fin = true, rsv1 = false): void {
    const bytes = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
    const frame = new Uint8Array(bytes.length + 14);
    this.maskKey = (this.maskKey * 1103515245 + 12345) >>> 0;
    const size = writeFrame(frame, 0, opcode, fin, rsv1, bytes, 0, bytes.length, this.maskKey);
    this.sendRaw(frame.subarray(0, size));
  }

  sendText(text: string): void {
    this.sendFrame(OPCODE_TEXT, text);
  }

  sendBinary(bytes: Uint8Array): void {
    this.sendFrame(OPCODE_BINARY, bytes);
  }

  sendClose(code: number, reason = ""): void {
    const frame = new Uint8Array(200);
    const size = writeCloseFrame(frame, 0, code, reason, 0x0badf00d);
    this.sendRaw(frame.subarray(0, size));
  }

  sendRaw(bytes: Uint8Array): void {
    const result = this.transport.send(this.conn, bytes, 0, bytes.length);
    if (result < 0) throw new Error(`client send failed: ${result}`);
  }

  terminate(): void {
    this.transport.close(this.conn, CloseMode.Abort);
  }

  /** Stop reading (the server's sends to it back up), and read again. */
  pauseReading(): void {
    this.transport.pause(this.conn);
  }

  resumeReading(): void {
    this.transport.resume(this.conn);
  }

  end(): void {
    this.transport.close(this.conn, CloseMode.Graceful);
  }

  messages(): Extract<ClientEvent, { type: "message" }>[] {
    return this.events.filter((e) => e.type === "message") as Extract<ClientEvent, { type: "message" }>[];
  }

  closeFrame(): Extract<ClientEvent, { type: "close" }> | undefined {
    return this.events.find((e) => e.type === "close") as Extract<ClientEvent, { type: "close" }> | undefined;
  }

  async opened101(timeoutMs = 5000): Promise<void> {
    await waitFor(() => this.responseStatus !== 0, timeoutMs, "handshake response");
    if (this.responseStatus !== 101) throw new Error(`handshake answered ${this.responseHead}`);
  }

  waitClosed(timeoutMs = 5000): Promise<void> {
    return waitFor(() => this.closedReason !== undefined, timeoutMs, "client connection closed");
  }

  waitMessages(count: number, timeoutMs = 5000): Promise<void> {
    return waitFor(() => this.messages().length >= count, timeoutMs,
      () => `${count} messages (have ${this.messages().length})`);
  }
}

