/**
 * The client side of the WebSocket benches (bench/load.ts, bench/broadcast.ts): connections
 * over this project's io_uring transport that send the upgrade request, wait for the 101,
 * then feed every byte to a client-role FrameParser and report messages per connection.
 */
import type { TransportHandler } from "../../src/api/transport.ts";
import { Role, type ProtocolError } from "../../src/protocol/constants.ts";
import { FrameParser, type FrameSink } from "../../src/protocol/frame-parser.ts";
import type { UringTransport } from "../../src/reactor/uring-transport.ts";
import { upgradeRequest } from "./ws-client.ts";

export interface ClientEvents {
  /** The 101 arrived on `conn`: frames may be sent. */
  opened(conn: number): void;
  /** A whole message on `conn` (the view is valid during the call only). */
  message(conn: number, opcode: number, data: Uint8Array, start: number, end: number): void;
  /** Something went wrong on a connection (refused handshake, protocol error, early close). */
  failed(reason: string): void;
}

export class ClientConnections implements TransportHandler {
  /** Set once the run is over: closes are expected from then on. */
  stopping = false;
  opened = 0;
  private readonly request: Uint8Array;
  private readonly parsers: FrameParser[] = [];
  private readonly handshakes: string[] = [];
  private current = -1;

  constructor(
    private readonly transport: UringTransport,
    private readonly host: string,
    private readonly port: number,
    path: string,
    private readonly maxPayloadLength: number,
    private readonly events: ClientEvents,
  ) {
    this.request = upgradeRequest(host, port, path);
  }

  /** Opens `count` connections (in waves, so the listener's backlog is never the limit). */
  async connect(count: number): Promise<number[]> {
    const ids: number[] = [];
    for (let i = 0; i < count; i++) {
      ids.push(this.transport.connect(this.host, this.port, this));
      if (i % 256 === 255) await Bun.sleep(5);
    }
    return ids;
  }

  /** Waits until every connection has its 101 (throws after `timeoutMs`). */
  async allOpen(count: number, timeoutMs = 30_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.opened < count && performance.now() < deadline) await Bun.sleep(5);
    if (this.opened < count) throw new Error(`only ${this.opened}/${count} connections opened`);
  }

  // ------------------------------------------------------------ TransportHandler

  onOpen(conn: number): void {
    this.transport.send(conn, this.request, 0, this.request.length);
  }

  onData(conn: number, data: Uint8Array, start: number, end: number): void {
    const parser = this.parsers[conn];
    if (parser !== undefined) {
      this.current = conn;
      parser.consume(data, start, end, this.sink);
      return;
    }
    const text = (this.handshakes[conn] ?? "") +
      Buffer.from(data.buffer, data.byteOffset + start, end - start).toString("latin1");
    const split = text.indexOf("\r\n\r\n");
    if (split < 0) {
      this.handshakes[conn] = text;
      return;
    }
    this.handshakes[conn] = "";
    if (!text.startsWith("HTTP/1.1 101")) {
      this.events.failed(`handshake refused: ${text.split("\r\n")[0]}`);
      return;
    }
    const created = new FrameParser({ role: Role.Client, maxPayloadLength: this.maxPayloadLength });
    this.parsers[conn] = created;
    this.opened++;
    this.events.opened(conn);
    const rest = Buffer.from(text.slice(split + 4), "latin1");
    if (rest.length === 0) return;
    this.current = conn;
    created.consume(rest, 0, rest.length, this.sink);
  }

  onDrain(): void {}
  onEnd(): void {}

  onClose(_conn: number, reason: number): void {
    if (!this.stopping) this.events.failed(`connection closed during the run: ${reason}`);
  }

  /** Messages of the connection being fed go to `events`; the server closing is a failure. */
  private readonly sink: FrameSink = {
    onMessage: (opcode, data, start, end) => this.events.message(this.current, opcode, data, start, end),
    onPing() {},
    onPong() {},
    onClose: () => {
      if (!this.stopping) this.events.failed("the server sent a close frame");
    },
    onError: (error: ProtocolError) => this.events.failed(`protocol error from the server: ${error.code}`),
  };
}
