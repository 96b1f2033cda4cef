/**
 * A WebSocket client on a plain `Bun.connect` socket (Bun's uSockets, not the transport under
 * test): the upgrade, masked frames out, a client-role FrameParser for what comes back. It
 * can stop reading (`pause`), so the server's send queue for it fills the way a slow or
 * hostile peer's does, and `pump` writes a block of frames as fast as the kernel takes them.
 */
import type { Socket } from "bun";
import { readFileSync } from "node:fs";
import { OPCODE_PONG, Role, type ProtocolError } from "../../src/protocol/constants.ts";
import { FrameParser, type FrameSink } from "../../src/protocol/frame-parser.ts";
import { writeCloseFrame, writeControlFrame, writeFrame } from "../../src/protocol/frame-writer.ts";

/** Any mask will do (§5.3); a fixed one keeps the frames reproducible. */
const MASK_KEY = 0x5a17c3e9;

/** The upgrade request every bench client sends (the RFC 6455 sample key). */
export function upgradeRequest(host: string, port: number, path = "/"): Uint8Array {
  return new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\n` +
    "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
}

/** One masked frame carrying `payload`. */
export function maskedFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(payload.length + 14);
  const length = writeFrame(frame, 0, opcode, true, false, payload, 0, payload.length, MASK_KEY);
  return frame.subarray(0, length);
}

/** `count` copies of `frame` back to back: one write hands the kernel many frames. */
export function frameBlock(frame: Uint8Array, count: number): Uint8Array {
  const block = new Uint8Array(frame.length * count);
  for (let i = 0; i < count; i++) block.set(frame, i * frame.length);
  return block;
}

export interface RawClientEvents {
  /** A whole message (the view is valid during the call only). */
  message?(opcode: number, data: Uint8Array, start: number, end: number): void;
  /** A close frame arrived; the client has answered it. */
  closeFrame?(code: number): void;
}

/** How a connection ended, as far as this side saw. */
export type Ending = "open" | "fin" | "reset" | "error";

export class RawClient {
  /** Code of the first close frame received, -1 when none. */
  closeCode = -1;
  ending: Ending = "open";
  error = "";
  bytesWritten = 0;
  bytesRead = 0;
  localPort = -1;
  private socket: Socket<undefined> | null = null;
  private pending: Uint8Array | null = null;
  private head = "";
  private parser: FrameParser | null = null;
  private pumpBlock: Uint8Array | null = null;
  private pumpLeft = 0;
  private pumpDone: (() => void) | null = null;
  private readonly sink: FrameSink;

  private constructor(private readonly serverPort: number, private readonly events: RawClientEvents) {
    this.sink = {
      onMessage: (opcode, data, start, end) => this.events.message?.(opcode, data, start, end),
      onPing: (data, start, end) => this.control(OPCODE_PONG, data.slice(start, end)),
      onPong() {},
      onClose: (code) => this.onCloseFrame(code),
      onError: (error: ProtocolError) => this.fail(`protocol error from the server: ${error.code}`),
    };
  }

  /** Connects and upgrades; resolves once the 101 is in (rejects on refusal or timeout). */
  static async open(port: number, events: RawClientEvents = {}, timeoutMs = 10_000, path = "/"): Promise<RawClient> {
    const client = new RawClient(port, events);
    const upgraded = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no 101 within the timeout")), timeoutMs);
      client.onUpgrade = (error) => {
        clearTimeout(timer);
        if (error) reject(new Error(error));
        else resolve();
      };
    });
    client.socket = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        data: (_, chunk) => client.onData(chunk),
        drain: () => client.flush(),
        end: () => client.onEnd("fin"),
        error: (_, error) => client.fail(error.message),
        close: (_, error) => client.onEnd(error ? "reset" : "fin"),
      },
    });
    client.socket.setNoDelay(true);
    client.localPort = client.socket.localPort;
    client.write(upgradeRequest("127.0.0.1", port, path));
    await upgraded;
    return client;
  }

  /** Stop reading: what the server sends stays in the kernel, then in its own queue. */
  pause(): void {
    this.socket?.pause();
  }

  resume(): void {
    this.socket?.resume();
  }

  /** Writes `bytes` whole (the rest of a short write goes out on drain). */
  write(bytes: Uint8Array): void {
    if (this.socket === null || this.ending !== "open") return;
    if (this.pending !== null) {
      const joined = new Uint8Array(this.pending.length + bytes.length);
      joined.set(this.pending);
      joined.set(bytes, this.pending.length);
      this.pending = joined;
      return;
    }
    const written = Math.max(0, this.socket.write(bytes));
    this.bytesWritten += written;
    if (written < bytes.length) this.pending = bytes.subarray(written);
  }

  /** Bytes accepted by write() but not yet by the kernel. */
  get backlog(): number {
    return this.pending?.length ?? 0;
  }

  /**
   * Writes `block` over and over, as fast as the kernel takes it, until `totalBytes` went
   * out (Infinity: until `stopPump`); resolves then, or when the connection ends.
   */
  pump(block: Uint8Array, totalBytes: number): Promise<void> {
    this.pumpBlock = block;
    this.pumpLeft = totalBytes;
    const done = new Promise<void>((resolve) => (this.pumpDone = resolve));
    this.flush();
    return done;
  }

  stopPump(): void {
    this.pumpLeft = 0;
    this.finishPump();
  }

  /** Answers a close frame, or starts the closing handshake with `code`. */
  sendClose(code: number): void {
    const frame = new Uint8Array(2 + 4 + 125);
    this.write(frame.subarray(0, writeCloseFrame(frame, 0, code, "", MASK_KEY)));
  }

  /** Drops the connection at once (RST when unread data is left, as a vanished peer's). */
  terminate(): void {
    this.socket?.terminate();
  }

  /**
   * The kernel's view of this connection (from /proc/net/tcp): "ESTABLISHED", "CLOSE_WAIT"
   * (the server sent FIN), another state name, or "gone" (reset or fully closed). Tells a
   * paused client's fate without reading from it.
   */
  kernelState(): string {
    if (this.localPort < 0) return "gone";
    // Both ends: an earlier connection from the same local port may linger in TIME_WAIT.
    const local = `0100007F:${hexPort(this.localPort)}`;
    const remote = `0100007F:${hexPort(this.serverPort)}`;
    for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields[1] === local && fields[2] === remote) {
        return TCP_STATES[parseInt(fields[3] ?? "0", 16)] ?? `state ${fields[3]}`;
      }
    }
    return "gone";
  }

  // ------------------------------------------------------------ internals

  private onUpgrade: (error?: string) => void = () => {};

  private onData(chunk: Uint8Array): void {
    this.bytesRead += chunk.length;
    if (this.parser !== null) {
      this.parser.consume(chunk, 0, chunk.length, this.sink);
      return;
    }
    this.head += Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length).toString("latin1");
    const split = this.head.indexOf("\r\n\r\n");
    if (split < 0) return;
    if (!this.head.startsWith("HTTP/1.1 101")) {
      this.onUpgrade(`handshake refused: ${this.head.split("\r\n")[0]}`);
      return;
    }
    this.parser = new FrameParser({ role: Role.Client, maxPayloadLength: 64 * 1024 * 1024 });
    const rest = Buffer.from(this.head.slice(split + 4), "latin1");
    this.head = "";
    this.onUpgrade();
    if (rest.length > 0) this.parser.consume(rest, 0, rest.length, this.sink);
  }

  private flush(): void {
    if (this.socket === null || this.ending !== "open") return;
    if (this.pending !== null) {
      const rest = this.pending;
      this.pending = null;
      this.write(rest);
      if (this.pending !== null) return;
    }
    while (this.pumpBlock !== null && this.pumpLeft > 0 && this.pending === null) {
      const block = this.pumpLeft >= this.pumpBlock.length ? this.pumpBlock
        : this.pumpBlock.subarray(0, this.pumpLeft);
      this.pumpLeft -= block.length;
      this.write(block);
    }
    if (this.pumpLeft <= 0 && this.pending === null) this.finishPump();
  }

  private finishPump(): void {
    this.pumpBlock = null;
    const done = this.pumpDone;
    this.pumpDone = null;
    done?.();
  }

  private control(opcode: number, payload: Uint8Array): void {
    const frame = new Uint8Array(payload.length + 6);
    this.write(frame.subarray(0, writeControlFrame(frame, 0, opcode, payload, 0, payload.length, MASK_KEY)));
  }

  private onCloseFrame(code: number): void {
    if (this.closeCode >= 0) return;
    this.closeCode = code;
    this.sendClose(code === 1005 ? 1000 : code);
    this.events.closeFrame?.(code);
  }

  private onEnd(how: Ending): void {
    if (this.ending === "open") this.ending = how;
    this.finishPump();
    this.onUpgrade("closed during the handshake");
  }

  private fail(reason: string): void {
    this.error ||= reason;
    if (this.ending === "open") this.ending = /ECONNRESET|reset/i.test(reason) ? "reset" : "error";
    this.finishPump();
    this.onUpgrade(reason);
  }
}

/** A port as /proc/net/tcp writes it: four hex digits, upper case. */
const hexPort = (port: number) => port.toString(16).toUpperCase().padStart(4, "0");

/** Linux TCP states by number (include/net/tcp_states.h). */
const TCP_STATES: Record<number, string> = {
  1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
  6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING",
};
