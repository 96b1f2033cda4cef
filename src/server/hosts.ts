/**
 * What a socket and a handshake may ask of the server core that owns them. ServerCore
 * implements both; the socket and handshake files know only these, so src/server has no
 * import circle and each child sees just what it may call.
 */
import type { DeflateAgreement } from "../protocol/permessage-deflate.ts";
import type { DeflateSessions } from "./deflate-sessions.ts";
import type { Transport } from "../api/transport.ts";
import type { Server, ServerWebSocket, WebSocketHandler } from "../api/websocket.ts";
import type { FetchUpgrades } from "./fetch-upgrades.ts";
import type { HttpRequestParser } from "../protocol/http-request-parser.ts";
import type { MessageBufferPool } from "./message-buffers.ts";
import type { ResolvedOptions } from "./options.ts";
import type { PublishedFrame, Subscriber, Topics } from "./topics.ts";

/** Counters a socket adds to (the rest of ServerStats is the core's). */
export interface SocketCounters {
  messagesIn: number;
  messagesOut: number;
  messagesLent: number;
  dropped: number;
  protocolErrors: number;
}

/** Both children: the transport, the options, and the shared send memory's one rule. */
interface CoreServices<T> {
  readonly transport: Transport;
  readonly options: ResolvedOptions<T>;
  /**
   * Send memory ran out: close the socket holding the most. True when that was another
   * socket than `requester` (so it may try again).
   */
  reclaimSendMemory(requester: ServerWebSocket<T> | undefined): boolean;
}

export interface SocketHost<T> extends CoreServices<T> {
  /** A Buffer where frames are built before they are queued (the transport copies). */
  readonly scratch: Buffer;
  readonly counters: SocketCounters;
  readonly handlers: WebSocketHandler<T>;
  readonly messageBuffers: MessageBufferPool;
  /** permessage-deflate streams (null when the server does not negotiate it). */
  readonly deflate: DeflateSessions | null;
  /** The socket of `conn` sent its close frame: wait up to closeTimeout for the peer's. */
  closing(conn: number): void;
  /** Run the message handler under the handler rule (a throw closes that socket, 1011). */
  invokeMessage(socket: ServerWebSocket<T>, message: string | Buffer): void;
  invoke<A extends unknown[]>(socket: ServerWebSocket<T>,
    handler: (ws: ServerWebSocket<T>, ...args: A) => unknown, ...args: A): void;
  /** This server's topics. */
  readonly topics: Topics<Subscriber>;
  /** Publish `data` to `topic`'s subscribers but `except`: Topics.publish's result. */
  publish(topic: string, data: string | Uint8Array | ArrayBufferView | ArrayBuffer,
    except: Subscriber | undefined, compress?: boolean): number;
  /**
   * A send or publish to `socket` was dropped at its backpressure limit: tell the `dropped`
   * handler (when there is one) what it lost.
   */
  droppedMessage(socket: ServerWebSocket<T>, opcode: number, published: PublishedFrame | null,
    payload: Uint8Array, start: number, end: number, topic: string | undefined): void;
}

/** A handshake state the core keeps for reuse. */
export interface PooledHandshake {
  start(conn: number): void;
}

export interface HandshakeHost<T> extends CoreServices<T> {
  readonly isStopping: boolean;
  /** The Server handed to `fetch` (set once serve() made it). */
  readonly server: Server | undefined;
  /** Upgrade requests `fetch` may still accept with server.upgrade. */
  readonly fetchUpgrades: FetchUpgrades;
  takeRequestParser(): HttpRequestParser;
  releaseRequestParser(parser: HttpRequestParser): void;
  releaseHandshake(handshake: PooledHandshake): void;
  /** permessage-deflate, when the server negotiates it (the 101 carries the agreement). */
  readonly deflate: DeflateSessions | null;
  /**
   * The 101 is queued: `conn` becomes a WebSocket (frames that came behind: `leftover`),
   * compressed when `deflate` is an agreement.
   */
  accept(conn: number, data: T | undefined, protocol: string, leftover: Uint8Array | undefined,
    deflate: DeflateAgreement | null): void;
  /** The handshake was answered with an HTTP response: close after it is flushed. */
  handshakeDone(conn: number): void;
  /**
   * The handshake deadline of `conn` starts over now (closeTimeout from this moment): the
   * next request on a kept-alive connection, a response waiting for the client to read.
   */
  restartDeadline(conn: number): void;
  /** No deadline for `conn` until restartDeadline (a response body waits for its stream). */
  clearDeadline(conn: number): void;
}
