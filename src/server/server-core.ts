/**
 * The server between the transport and the user's handlers: TCP connection → HTTP upgrade
 * (or a plain HTTP answer) → WebSocket. It owns the per-connection tables, the timeouts
 * (handshake, closing handshake, idle with pings), the counters and graceful shutdown.
 * Connection ids come from the transport; every table here is indexed by them.
 */
import type { Clock, Server, ServerStats, WebSocketHandler } from "../api/websocket.ts";
import { ReadyState } from "../api/websocket.ts";
import { CloseMode, type Transport, type TransportHandler } from "../api/transport.ts";
import {
  CLOSE_GOING_AWAY, CLOSE_INTERNAL_ERROR, OPCODE_BINARY, OPCODE_TEXT, Role,
} from "../protocol/constants.ts";
import { FrameParser, type FrameParserOptions } from "../protocol/frame-parser.ts";
import { HttpRequestParser } from "../protocol/http-request-parser.ts";
import { FetchUpgrades } from "./fetch-upgrades.ts";
import { isStronger, type StopMode } from "./stop-mode.ts";
import { HandshakeState } from "./handshake-flow.ts";
import { IdleShrink } from "./idle-shrink.ts";
import { encodeText, viewBytes } from "./outgoing-bytes.ts";
import { Topics, type PublishedFrame, type Subscriber } from "./topics.ts";
import { grown, initialCapacity } from "../pool/grown-array.ts";
import { IntrusiveList } from "./intrusive-list.ts";
import { MessageBufferPool } from "./message-buffers.ts";
import { DeflateSessions, NO_COMPRESSION, zlibLoads } from "./deflate-sessions.ts";
import type { DeflateAgreement } from "../protocol/permessage-deflate.ts";
import type { ResolvedOptions } from "./options.ts";
import type { HandshakeHost, SocketHost } from "./hosts.ts";
import { WebSocketConnection } from "./ws-connection.ts";

/** Room for a coalesced frame: header + 16 KiB payload, or a 64 KiB text encoded in place. */
const SCRATCH_BYTES = 192 * 1024 + 16;
/**
 * HTTP parsers kept for the next handshakes: as many as handshakes usually overlap. A parser
 * whose head buffer grew past POOLED_PARSER_BYTES (a head that came in many pieces) is dropped
 * rather than kept.
 */
const PARSER_POOL_SIZE = 64;
const POOLED_PARSER_BYTES = 4096;
/** Frame parsers kept at rest for lending (a parser is needed only while a socket reads). */
const SPARE_PARSERS_MAX = 1024;
/** Handshake states kept for reuse (see HandshakeState.start for when one comes back). */
const HANDSHAKE_POOL_SIZE = 64;
/** Message buffers idle this long give their memory back (MessageBufferPool.trimIdle). */
const TRIM_INTERVAL_MS = 1000;

export class ServerCore<T> implements TransportHandler, SocketHost<T>, HandshakeHost<T> {
  /** A Buffer, so text can be encoded in place with utf8Write (no subarray per send). */
  readonly scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES);
  readonly counters = {
    messagesIn: 0, messagesOut: 0, messagesLent: 0, dropped: 0, protocolErrors: 0, idleTimeouts: 0,
    evictions: 0, connections: 0, handshakes: 0,
  };
  /** The user's handlers; replaced by `server.reload` (read at every call, never cached). */
  handlers: WebSocketHandler<T>;
  readonly messageBuffers = new MessageBufferPool();
  readonly topics = new Topics<Subscriber>(this.messageBuffers);
  /** Where published text is encoded (not `scratch`: a handler during the walk may send). */
  private readonly publishScratch = Buffer.allocUnsafeSlow(64 * 1024);
  private publishDepth = 0;
  /** One options object for every connection's frame parser (and one for compressed ones). */
  private readonly frameParserOptions: FrameParserOptions;
  private readonly deflateParserOptions: FrameParserOptions;
  /** Parsers at rest, lent to sockets for each read (see parse). */
  private readonly spareParsers: FrameParser[] = [];
  private readonly spareDeflateParsers: FrameParser[] = [];
  /** permessage-deflate state; null when the server does not negotiate it. */
  readonly deflate: DeflateSessions | null;
  private readonly requestParsers: HttpRequestParser[] = [];
  private readonly handshakeStates: HandshakeState<T>[] = [];
  private sockets: (WebSocketConnection<T> | undefined)[];
  private pending: (HandshakeState<T> | undefined)[];
  /** Open sockets, least recently active first (idle timeouts and pings). */
  private activity: IntrusiveList;
  /** Handshaking and closing connections, oldest first (closeTimeout). */
  private deadlines: IntrusiveList;
  private lastActivity: Float64Array;
  private deadlineStart: Float64Array;
  private pinged: Uint8Array;
  private readonly stopTicking: () => void;
  /** Coarse time, refreshed by the tick: good enough for second-scale timeouts, and free. */
  private now: number;
  private liveConnections = 0;
  private lastTrim = 0;
  private stopping = false;
  private stopMode: StopMode = "drain";
  private backstop: ReturnType<typeof setTimeout> | undefined = undefined;
  private stopped: Promise<void> | undefined;
  private whenEmpty: (() => void) | undefined;
  listener = -1;
  /** The Server serve() made around this core (handed to `fetch`). */
  server: Server | undefined = undefined;
  readonly fetchUpgrades = new FetchUpgrades();
  /** Gives warm-up memory back after a burst of handshakes (null: shrinkWhenIdle off). */
  private readonly idleShrink: IdleShrink | null;

  constructor(
    readonly transport: Transport,
    readonly options: ResolvedOptions<T>,
    private readonly clock: Clock,
  ) {
    this.handlers = options.websocket;
    this.frameParserOptions = {
      role: Role.Server, maxPayloadLength: options.maxPayloadLength,
      messageBuffers: this.messageBuffers,
    };
    this.deflateParserOptions = { ...this.frameParserOptions, allowRsv1: true };
    this.deflate = options.deflate === null || !zlibLoads() ? null : new DeflateSessions(options.deflate);
    this.topics.useCompression(this.deflate);
    // Per-connection state grows with the slots the transport hands out (grown-array.ts).
    const initial = options.transport.initialConnections;
    const slots = initialCapacity(options.maxConnections, typeof initial === "number" ? initial : undefined);
    this.sockets = new Array(slots).fill(undefined);
    this.pending = new Array(slots).fill(undefined);
    this.activity = new IntrusiveList(slots);
    this.deadlines = new IntrusiveList(slots);
    this.lastActivity = new Float64Array(slots);
    this.deadlineStart = new Float64Array(slots);
    this.pinged = new Uint8Array(slots);
    this.now = clock.now();
    this.stopTicking = clock.every(options.tickMs, () => this.tick());
    this.idleShrink = options.shrinkWhenIdle ? new IdleShrink(clock, () => this.counters.messagesIn) : null;
  }

  // ------------------------------------------------------------ transport events

  onOpen(conn: number): void {
    if (conn >= this.sockets.length) this.growSlots(conn);
    this.liveConnections++;
    if (this.stopping) {
      this.transport.close(conn, CloseMode.Abort);
      return;
    }
    const handshake = this.handshakeStates.pop() ?? new HandshakeState(this);
    handshake.start(conn);
    this.pending[conn] = handshake;
    this.counters.handshakes++;
    this.deadlineStart[conn] = this.now;
    this.deadlines.pushTail(conn);
  }

  /** A slot beyond the per-connection arrays opened: double them until it fits. */
  private growSlots(conn: number): void {
    let slots = this.sockets.length;
    while (slots <= conn) slots *= 2;
    for (let id = this.sockets.length; id < slots; id++) {
      this.sockets.push(undefined);
      this.pending.push(undefined);
    }
    this.activity.grow(slots);
    this.deadlines.grow(slots);
    this.lastActivity = grown(this.lastActivity, slots);
    this.deadlineStart = grown(this.deadlineStart, slots);
    this.pinged = grown(this.pinged, slots);
  }

  onData(conn: number, data: Uint8Array, start: number, end: number): void {
    const socket = this.sockets[conn];
    if (socket !== undefined) {
      this.lastActivity[conn] = this.now;
      this.pinged[conn] = 0;
      if (socket.readyState === ReadyState.OPEN) this.activity.touch(conn);
      this.parse(socket, data, start, end);
      return;
    }
    this.pending[conn]?.feed(data, start, end);
  }

  onDrain(conn: number): void {
    const socket = this.sockets[conn];
    if (socket === undefined) {
      this.pending[conn]?.drained(); // a plain HTTP response waiting for room
      return;
    }
    if (!socket.queueEmptied()) return;
    const drain = this.handlers.drain;
    if (drain) this.invoke(socket, drain);
  }

  onEnd(): void {
    // The peer closed TCP; the transport closes our side after flushing. Without a close
    // frame the socket reports 1006 in onClose.
  }

  onClose(conn: number): void {
    this.liveConnections--;
    this.activity.remove(conn);
    this.deadlines.remove(conn);
    const socket = this.sockets[conn];
    if (socket !== undefined) {
      this.sockets[conn] = undefined;
      this.counters.connections--;
      socket.markClosed();
      socket.parser?.destroy();
      socket.parser = null;
      const close = this.handlers.close;
      if (close) this.invoke(socket, close, socket.closeCode, socket.closeReason);
      // After `close`, which may still read its subscriptions (to tell a room it left).
      this.topics.dropSocket(socket);
      this.deflate?.close(conn);
    } else if (this.pending[conn] !== undefined) {
      this.pending[conn]!.abandon();
      this.pending[conn] = undefined;
      this.counters.handshakes--;
    }
    if (this.liveConnections === 0 && this.whenEmpty) this.whenEmpty();
  }

  // ------------------------------------------------------------ handshake → WebSocket

  /** An HTTP parser for a handshake: from the pool, else new. */
  takeRequestParser(): HttpRequestParser {
    return this.requestParsers.pop() ?? new HttpRequestParser({
      maxHeaderBytes: this.options.maxHeaderBytes, reuseRequest: true,
    });
  }

  /**
   * A handshake is done with its parser, and with the request it parsed: the parser reuses
   * that object for its next request.
   */
  releaseRequestParser(parser: HttpRequestParser): void {
    parser.reset();
    if (this.requestParsers.length >= PARSER_POOL_SIZE) return;
    if (parser.bufferBytes <= POOLED_PARSER_BYTES) this.requestParsers.push(parser);
  }

  /** A handshake state that was accepted with no hook pending: kept for the next one. */
  releaseHandshake(handshake: HandshakeState<T>): void {
    if (this.handshakeStates.length < HANDSHAKE_POOL_SIZE) this.handshakeStates.push(handshake);
  }

  /** The handshake succeeded and the 101 is queued: the connection becomes a WebSocket. */
  accept(conn: number, data: T | undefined, protocol: string,
    leftover: Uint8Array | undefined, deflate: DeflateAgreement | null): void {
    this.pending[conn] = undefined;
    this.counters.handshakes--;
    this.deadlines.remove(conn);
    const socket = new WebSocketConnection(this, conn, data as T, protocol);
    if (deflate !== null) {
      this.deflate!.open(conn, deflate);
      socket.markCompressed();
    }
    this.sockets[conn] = socket;
    this.counters.connections++;
    this.lastActivity[conn] = this.now;
    this.pinged[conn] = 0;
    this.activity.pushTail(conn);
    this.idleShrink?.handshake();
    const open = this.handlers.open;
    if (open) this.invoke(socket, open);
    // Frames the client sent right behind its handshake.
    if (leftover !== undefined && this.sockets[conn] === socket) {
      this.parse(socket, leftover, 0, leftover.length);
    }
  }

  /**
   * Feeds a socket's bytes to its frame parser. A socket holds a parser only while a frame
   * or message is half read: otherwise one is lent from the spares for this read and taken
   * back after it (160 bytes of JS heap per idle connection saved, measured on Bun 1.4.5).
   */
  private parse(socket: WebSocketConnection<T>, data: Uint8Array, start: number, end: number): void {
    const compressed = socket.compressed;
    const spares = compressed ? this.spareDeflateParsers : this.spareParsers;
    let parser = socket.parser;
    if (parser === null) {
      parser = spares.pop() ?? new FrameParser(compressed ? this.deflateParserOptions : this.frameParserOptions);
      socket.parser = parser;
    }
    parser.consume(data, start, end, socket);
    // Not if a handler closed the socket meanwhile (then it was destroyed, and is not at rest).
    if (socket.parser === parser && parser.atRest) {
      socket.parser = null;
      if (spares.length < SPARE_PARSERS_MAX) spares.push(parser);
    }
  }

  /** A socket sent its close frame: wait up to closeTimeout for the peer's. */
  closing(conn: number): void {
    this.activity.remove(conn);
    this.deadlineStart[conn] = this.now;
    this.deadlines.pushTail(conn);
  }

  /** The handshake was answered with an HTTP response: it stays on the deadline list. */
  handshakeDone(conn: number): void {
    this.transport.close(conn, CloseMode.Graceful);
  }

  restartDeadline(conn: number): void {
    // To the tail: the list stays ordered by start, which expireDeadlines relies on.
    this.deadlineStart[conn] = this.now;
    this.deadlines.pushTail(conn);
  }

  clearDeadline(conn: number): void {
    this.deadlines.remove(conn);
  }

  // ------------------------------------------------------------ shared send memory

  /**
   * A send found the shared send memory exhausted. The socket holding the most queued bytes
   * is closed (1013) and its queue dropped at once, which frees its memory for the others.
   * Returns true when that was another socket (so `requester` may try again), false when
   * `requester` itself held the most (it is the one closed) or nobody holds anything.
   * A scan of every socket, but only when memory ran out, which eviction makes rare.
   */
  reclaimSendMemory(requester: WebSocketConnection<T> | undefined): boolean {
    let heaviest: WebSocketConnection<T> | undefined;
    let most = 0;
    for (const socket of this.sockets) {
      if (socket === undefined || socket.readyState === ReadyState.CLOSED || socket.evicted) continue;
      const queued = this.transport.bufferedAmount(socket.conn);
      if (queued > most) {
        most = queued;
        heaviest = socket;
      }
    }
    if (heaviest === undefined) return false;
    this.counters.evictions++;
    heaviest.evict();
    return heaviest !== requester;
  }

  // ------------------------------------------------------------ user handlers

  // ------------------------------------------------------------ pub/sub

  publish(topic: string, data: string | Uint8Array | ArrayBufferView | ArrayBuffer,
    except: Subscriber | undefined, compress = true): number {
    if (typeof data !== "string") {
      const bytes = viewBytes(data);
      return this.topics.publish(topic, OPCODE_BINARY, bytes, 0, bytes.length, except, compress);
    }
    // Text is encoded once into the publish scratch; a publish from a handler that the
    // walk calls (`dropped`) must not overwrite it, so that one gets its own bytes.
    const scratch = this.publishDepth === 0 ? this.publishScratch : Buffer.alloc(0);
    const bytes = encodeText(data, scratch);
    this.publishDepth++;
    try {
      return this.topics.publish(topic, OPCODE_TEXT, bytes.array, 0, bytes.length, except, compress);
    } finally {
      this.publishDepth--;
    }
  }

  droppedMessage(socket: WebSocketConnection<T>, opcode: number, published: PublishedFrame | null,
    payload: Uint8Array, start: number, end: number, topic: string | undefined): void {
    const dropped = this.handlers.dropped;
    if (dropped === undefined) return;
    const kind = published === null ? opcode : published.header[0] & 0x0f;
    const bytes = Buffer.from(payload.buffer, payload.byteOffset + start, end - start);
    const message = kind === OPCODE_TEXT ? bytes.toString("utf8") : Buffer.from(bytes); // a copy
    this.invoke(socket, dropped, message, topic);
  }

  invokeMessage(socket: WebSocketConnection<T>, message: string | Buffer): void {
    try {
      const result = this.handlers.message(socket, message);
      if (result instanceof Promise) result.catch((error) => this.handlerFailed(socket, error));
    } catch (error) {
      this.handlerFailed(socket, error);
    }
  }

  invoke<A extends unknown[]>(socket: WebSocketConnection<T>,
    handler: (ws: WebSocketConnection<T>, ...args: A) => unknown, ...args: A): void {
    try {
      const result = handler(socket, ...args);
      if (result instanceof Promise) result.catch((error) => this.handlerFailed(socket, error));
    } catch (error) {
      this.handlerFailed(socket, error);
    }
  }

  /** A handler threw: report it and close that socket with 1011, keep the server up. */
  private handlerFailed(socket: WebSocketConnection<T>, error: unknown): void {
    console.error("hioload-ws: a websocket handler threw:", error);
    if (socket.readyState === ReadyState.OPEN) socket.fail(CLOSE_INTERNAL_ERROR, "handler error");
  }

  // ------------------------------------------------------------ timeouts

  private tick(): void {
    this.now = this.clock.now();
    this.expireDeadlines();
    this.expireIdle();
    if (this.now - this.lastTrim >= TRIM_INTERVAL_MS) {
      this.lastTrim = this.now;
      this.messageBuffers.trimIdle();
    }
  }

  private expireDeadlines(): void {
    const limit = this.options.closeTimeoutMs;
    for (let conn = this.deadlines.head; conn !== -1;) {
      if (this.now - this.deadlineStart[conn] < limit) break;
      const next = this.deadlines.after(conn);
      this.deadlines.remove(conn);
      const handshake = this.pending[conn];
      if (handshake !== undefined && handshake.timedOut()) {
        // Answered (408) and closing with FIN: abort only if it is still here next time.
        this.deadlineStart[conn] = this.now;
        this.deadlines.pushTail(conn);
      } else {
        this.transport.close(conn, CloseMode.Abort); // slow handshake or no close frame back
      }
      conn = next;
    }
  }

  private expireIdle(): void {
    const idleMs = this.options.idleTimeoutMs;
    if (idleMs === 0) return;
    const pingAfterMs = this.options.sendPings ? idleMs - Math.min(idleMs / 2, 10_000) : idleMs;
    for (let conn = this.activity.head; conn !== -1;) {
      const idle = this.now - this.lastActivity[conn];
      if (idle < pingAfterMs) break;
      const next = this.activity.after(conn);
      const socket = this.sockets[conn]!;
      if (idle >= idleMs) {
        this.counters.idleTimeouts++;
        this.activity.remove(conn);
        socket.fail(CLOSE_GOING_AWAY, "idle timeout");
      } else if (this.pinged[conn] === 0) {
        this.pinged[conn] = 1;
        socket.ping();
      }
      conn = next;
    }
  }

  // ------------------------------------------------------------ shutdown and stats

  /**
   * One shutdown, whoever asks and how often: every call returns the same promise, and a
   * later call may make it stronger (see stop-mode.ts): drain, then close, then abort.
   */
  stop(mode: StopMode): Promise<void> {
    if (this.stopped === undefined) {
      this.stopMode = mode;
      this.stopped = this.shutdown();
    } else if (isStronger(mode, this.stopMode)) {
      this.stopMode = mode;
      this.closeAs(mode);
    }
    return this.stopped;
  }

  private async shutdown(): Promise<void> {
    this.stopping = true;
    if (this.listener >= 0) this.transport.closeListener(this.listener);
    this.closeAs(this.stopMode);
    if (this.liveConnections > 0) await new Promise<void>((resolve) => (this.whenEmpty = resolve));
    clearTimeout(this.backstop);
    this.stopTicking();
    this.idleShrink?.dispose();
    await this.transport.dispose();
    this.messageBuffers.dispose(); // after the transport: it may have read loans until now
    this.deflate?.dispose();
  }

  /** Close the connections as `mode` asks (drain: leave them be). */
  private closeAs(mode: StopMode): void {
    if (mode === "abort") {
      this.abortAll();
    } else if (mode === "close") {
      this.closeAllGracefully();
      // The deadline tick aborts sockets whose peers never answer; this bound is the backstop.
      clearTimeout(this.backstop);
      this.backstop = setTimeout(() => this.abortAll(), this.options.closeTimeoutMs + 1000);
    }
  }

  /** 1001 to every open socket; handshakes in progress are closed once answered. */
  private closeAllGracefully(): void {
    for (let conn = 0; conn < this.sockets.length; conn++) {
      const socket = this.sockets[conn];
      if (socket !== undefined) {
        if (socket.readyState === ReadyState.OPEN) socket.close(CLOSE_GOING_AWAY, "server shutting down");
      } else if (this.pending[conn] !== undefined) {
        this.transport.close(conn, CloseMode.Graceful);
      }
    }
  }

  /** The thread is exiting: free everything now (see Transport.closeNow). */
  abandon(): void {
    this.stopTicking();
    this.idleShrink?.dispose();
    this.transport.closeNow();
    this.messageBuffers.dispose();
    this.deflate?.dispose();
  }

  private abortAll(): void {
    for (let conn = 0; conn < this.sockets.length; conn++) {
      if (this.sockets[conn] !== undefined || this.pending[conn] !== undefined) {
        this.transport.close(conn, CloseMode.Abort);
      }
    }
  }

  get isStopping(): boolean {
    return this.stopping;
  }

  stats(): ServerStats {
    const transport = this.transport.stats();
    return {
      backend: transport.backend,
      connections: this.counters.connections,
      pendingHandshakes: this.counters.handshakes,
      messagesIn: this.counters.messagesIn,
      messagesOut: this.counters.messagesOut,
      messagesLent: this.counters.messagesLent,
      bytesIn: transport.bytesIn,
      bytesOut: transport.bytesOut,
      dropped: this.counters.dropped,
      protocolErrors: this.counters.protocolErrors,
      idleTimeouts: this.counters.idleTimeouts,
      evictions: this.counters.evictions,
      idleShrinks: this.idleShrink?.count ?? 0,
      pubsub: this.topics.stats(),
      compression: this.deflate?.stats() ?? NO_COMPRESSION,
      transport,
    };
  }
}

