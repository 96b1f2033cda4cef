/**
 * BunTransport: the Transport contract on Bun's own sockets (`Bun.listen`, `Bun.connect`),
 * the portable fallback where neither io_uring nor epoll exists (macOS, BSD), or forced with
 * `backend: "bun"`. It is the slow path: every read is a fresh Buffer from Bun and every
 * flush a `socket.write` call, but it runs wherever Bun does.
 *
 * How the contract maps onto Bun's socket API:
 *  - Turns (bun-turns.ts): one Bun socket callback, or a microtask we queue. Handlers run only
 *    there; at its end we deliver what waited, flush, run onClose, report handler errors.
 *  - onData hands Bun's Buffer of that read as it is (0..length): a fresh one per read, so a
 *    view valid during the call, as promised, and one we may hold while paused. A read may be
 *    larger than recvBufferSize (Bun reads up to its own buffer, 512 KiB in Bun 1.4.5).
 *  - Sends are copied into per-connection queues (bun-outbound.ts), flushed at the end of the
 *    turn with one `socket.write` each; what the kernel does not take waits for `drain`.
 *  - `allowHalfOpen` keeps a socket open after the peer's FIN, so onEnd can still send. A
 *    graceful close ends with `end()` (FIN), an abort with `terminate()` (SO_LINGER 0: a
 *    reset). Both make Bun call `close` synchronously: we detach the socket first and report
 *    onClose in the turn.
 *  - `pause()`/`resume()` are Bun's: a paused socket is not read at all, so TCP pushes back.
 *
 * Counters: turns counts turns as above; parks, recvBufferStalls, cqOverflows and loansOut
 * stay 0 (Bun's loop parks out of our sight, Bun allocates every read's buffer, loans are
 * copied). recvBuffers reports the configured sizes, its inUse the reads being delivered or
 * held while paused. Checked, then without effect here: backlog (Bun picks its own),
 * initialConnections (slots grow one by one), node, hugepages.
 */
import type { SocketHandler } from "bun";
import { checkConnectAddress, checkListenAddress } from "../api/address.ts";
import { ECANCELED, ECONNRESET, EIO, EMFILE, EPIPE } from "../api/errno.ts";
import { ErrorCode, UsageError } from "../api/errors.ts";
import { HandlerErrors, rethrowLater } from "../api/handler-errors.ts";
import {
  checkSendRange, CloseMode, resolveTransportSizing, type Lender, type ListenOptions,
  type Transport, type TransportHandler, type TransportOptions, type TransportSizing,
  type TransportStats,
} from "../api/transport.ts";
import { BunConnState, type BunConnection, type BunSocket } from "./bun-connection.ts";
import { errnoOfBunError } from "./bun-errno.ts";
import { BunListeners, ipv4Host } from "./bun-listeners.ts";
import { BunInbound } from "./bun-inbound.ts";
import { BunOutbound, Flushed } from "./bun-outbound.ts";
import { BunSlots } from "./bun-slots.ts";
import { BunTurns, type TurnSteps } from "./bun-turns.ts";
import { HandlerCalls } from "./handler-calls.ts";

const { CONNECTING, OPEN, CLOSING, GONE } = BunConnState;
const NOTHING = new Uint8Array(0);
/**
 * Sends this large, inside a turn and with nothing queued, are written at once instead of
 * copied first (the copy cost more than the write it would batch).
 */
const DIRECT_SEND_MIN = 4096;
/** How a connection's socket is ended: `end()` after a graceful close, else `terminate()`. */
const FIN = 0;
const RESET = 1;

function ignore(): void {}

export class BunTransport implements Transport, TurnSteps {
  readonly backend = "bun" as const;
  private readonly sizing: TransportSizing;
  private readonly outbound: BunOutbound;
  private readonly inbound: BunInbound;
  private readonly listeners = new BunListeners();
  private readonly turns = new BunTurns(this);
  private readonly handlerErrors: HandlerErrors;
  private readonly calls: HandlerCalls;
  private readonly slots: BunSlots;
  /** Bun's callbacks for outgoing connections (one object for all of them). */
  private readonly connectHandlers: SocketHandler<BunConnection | null>;
  private disposed = false;
  private disposing: Promise<void> | null = null;
  private resolveDispose: (() => void) | null = null;
  private accepted = 0;
  private connected = 0;
  private closed = 0;
  private refusedAccepts = 0;

  constructor(options: TransportOptions = {}) {
    this.sizing = resolveTransportSizing(options);
    this.outbound = new BunOutbound(this.sizing.sendChunkSize, this.sizing.sendChunkCount);
    this.inbound = new BunInbound(this.sizing.recvBufferSize, this.sizing.recvBufferCount);
    this.slots = new BunSlots(this.sizing.maxConnections, this.outbound.cache);
    this.handlerErrors = new HandlerErrors(options.onHandlerError);
    this.calls = new HandlerCalls(this.handlerErrors, (conn) => this.abortId(conn));
    this.connectHandlers = {
      ...this.socketHandlers((socket) => this.onConnectOpen(socket)),
      connectError: (socket, error) => this.onConnectError(socket, error),
    };
  }

  // ---------------------------------------------------------------- listeners and connects

  listen(options: ListenOptions, handler: TransportHandler): number {
    this.assertUsable("listen");
    checkListenAddress(options.hostname ?? "0.0.0.0", options.port);
    return this.listeners.open(options, handler,
      (listener) => this.socketHandlers((socket) => this.onAccept(socket, listener)));
  }

  listenerPort(listener: number): number {
    return this.listeners.port(listener);
  }

  closeListener(listener: number): void {
    this.listeners.close(listener);
  }

  connect(host: string, port: number, handler: TransportHandler): number {
    this.assertUsable("connect");
    checkConnectAddress(host, port);
    const hostname = ipv4Host(host);
    const c = this.slots.open(handler, -1, CONNECTING, `${hostname}:${port}`);
    // No free slot: answered like socket(2) over RLIMIT_NOFILE, as the other backends do.
    if (c === null) return -EMFILE;
    try {
      Bun.connect<BunConnection | null>({
        hostname, port, data: c, allowHalfOpen: true, socket: this.connectHandlers,
      }).catch(ignore); // reported through connectError
    } catch (error) {
      c.closeReason = -errnoOfBunError(error, EIO);
      this.endConnection(c, RESET);
    }
    return c.id;
  }

  /** Bun's callbacks for a socket, `open` aside (accepted and outgoing sockets differ there). */
  private socketHandlers(open: (socket: BunSocket) => void): SocketHandler<BunConnection | null> {
    return {
      open, data: this.onSocketData, drain: this.onSocketDrain, end: this.onSocketEnd,
      close: this.onSocketClose, error: this.onSocketError,
    };
  }

  // ---------------------------------------------------------------- sending

  send(conn: number, data: Uint8Array, start: number, end: number): number {
    checkSendRange(data, start, end);
    const c = this.slots.get(conn);
    if (c !== null && end - start >= DIRECT_SEND_MIN && this.turns.inTurn && c.state === OPEN
      && c.buffered === 0 && !c.awaitingDrain) {
      const sent = this.outbound.sendDirect(c, c.socket!, data, start, end);
      if (sent > 0) this.turns.toFlush(c); // onDrain at the turn's end
      else if (sent === -EPIPE) this.abort(c, -EPIPE);
      return sent;
    }
    return this.enqueue(conn, data, start, end, NOTHING, 0, 0, false);
  }

  sendUrgent(conn: number, data: Uint8Array, start: number, end: number): number {
    checkSendRange(data, start, end);
    return this.enqueue(conn, data, start, end, NOTHING, 0, 0, true);
  }

  sendPair(conn: number, first: Uint8Array, firstStart: number, firstEnd: number,
    second: Uint8Array, secondStart: number, secondEnd: number): number {
    checkSendRange(first, firstStart, firstEnd);
    checkSendRange(second, secondStart, secondEnd);
    return this.enqueue(conn, first, firstStart, firstEnd, second, secondStart, secondEnd, false);
  }

  /** Copied like a pair, so the loan goes back before this returns. */
  sendLoaned(conn: number, header: Uint8Array, headerStart: number, headerEnd: number,
    payload: Uint8Array, payloadStart: number, payloadEnd: number, _payloadAddress: number,
    lender: Lender, token: number): number {
    const queued = this.sendPair(conn, header, headerStart, headerEnd, payload, payloadStart,
      payloadEnd);
    if (queued >= 0) lender.giveBack(token);
    return queued;
  }

  bufferedAmount(conn: number): number {
    return this.slots.get(conn)?.buffered ?? 0;
  }

  private enqueue(conn: number, first: Uint8Array, firstStart: number, firstEnd: number,
    second: Uint8Array, secondStart: number, secondEnd: number, urgent: boolean): number {
    const c = this.slots.get(conn);
    if (c === null || (c.state !== OPEN && c.state !== CONNECTING)) {
      return -EPIPE;
    }
    const queued = this.outbound.enqueue(c, first, firstStart, firstEnd, second, secondStart,
      secondEnd, urgent);
    if (queued > 0) this.turns.toFlush(c);
    return queued;
  }

  // ---------------------------------------------------------------- flow control and closing

  pause(conn: number): void {
    const c = this.slots.get(conn);
    if (c === null || !c.live || c.paused) return;
    c.paused = true;
    c.socket?.pause();
  }

  resume(conn: number): void {
    const c = this.slots.get(conn);
    if (c === null || !c.paused) return;
    c.paused = false;
    if (c.state !== OPEN) return;
    c.socket!.resume();
    if (c.held !== null || c.endPending) this.turns.toDeliver(c);
  }

  close(conn: number, mode: CloseMode = CloseMode.Graceful): void {
    const c = this.slots.get(conn);
    if (c === null || !c.live) return;
    if (mode === CloseMode.Abort || c.state === CONNECTING) {
      // Before the connect completed: no onOpen, only onClose(0); queued bytes are dropped.
      this.abort(c, 0);
    } else if (c.state === OPEN) {
      c.state = CLOSING;
      this.turns.toFlush(c); // FIN once the queues are empty
    }
  }

  remoteAddress(conn: number): string {
    return this.slots.get(conn)?.remote ?? "";
  }

  /** Resets the connection now; onClose(`reason`, unless one was set already) follows. */
  private abort(c: BunConnection, reason: number): void {
    if (!c.live) return;
    c.closeReason ??= reason;
    this.endConnection(c, RESET);
  }

  private abortId(conn: number): void {
    const c = this.slots.get(conn);
    if (c !== null) this.abort(c, 0);
  }

  /** The connection is over: its socket goes (`how`: FIN or reset), onClose is due. */
  private endConnection(c: BunConnection, how: typeof FIN | typeof RESET): void {
    c.state = GONE;
    this.outbound.drop(c);
    this.inbound.dropHeld(c);
    const socket = c.detach(); // so the `close` Bun raises inside end()/terminate() is ignored
    if (socket !== null) {
      if (how === FIN) socket.end();
      else socket.terminate();
    }
    this.turns.toFinish(c);
  }

  // ---------------------------------------------------------------- Bun's events

  private onAccept(socket: BunSocket, listener: number): void {
    const handler = this.listeners.handler(listener);
    const c = handler === undefined ? null : this.slots.open(handler, listener, OPEN, "");
    if (c === null) { // over maxConnections (or the listener closing): accepted, then closed
      this.refusedAccepts++;
      socket.data = null;
      socket.end();
      return;
    }
    this.accepted++;
    socket.setNoDelay(true);
    c.attach(socket);
    this.opened(c);
  }

  private onConnectOpen(socket: BunSocket): void {
    const c = socket.data;
    if (c === null || c.state !== CONNECTING) { // closed before it connected
      socket.data = null;
      socket.terminate();
      return;
    }
    this.connected++;
    socket.setNoDelay(true);
    c.attach(socket);
    c.state = OPEN;
    if (c.paused) socket.pause();
    if (c.buffered > 0) this.turns.toFlush(c); // bytes sent before onOpen
    this.opened(c);
  }

  private opened(c: BunConnection): void {
    c.openPending = true;
    this.turns.toDeliver(c);
    this.turns.settle();
  }

  private onConnectError(socket: BunSocket, error: Error): void {
    const c = socket.data;
    if (c === null || c.state !== CONNECTING) return;
    c.closeReason ??= -errnoOfBunError(error, EIO);
    this.endConnection(c, RESET);
    this.turns.settle();
  }

  private readonly onSocketData = (socket: BunSocket, data: Buffer): void => {
    const c = socket.data;
    if (c === null || c.state !== OPEN) return; // closing: what still arrives is dropped
    this.inbound.received(data);
    if (this.turns.inTurn || c.paused || c.held !== null || c.openPending) {
      this.inbound.hold(c, data);
      this.turns.toDeliver(c);
      return;
    }
    this.turns.begin();
    try {
      this.deliverData(c, data);
    } finally {
      this.turns.end();
    }
  };

  private readonly onSocketDrain = (socket: BunSocket): void => {
    const c = socket.data;
    if (c === null || (c.state !== OPEN && c.state !== CLOSING)) return;
    c.awaitingDrain = false;
    this.turns.toFlush(c);
    this.turns.settle();
  };

  private readonly onSocketEnd = (socket: BunSocket): void => {
    const c = socket.data;
    if (c === null || c.state !== OPEN) return;
    c.endPending = true;
    this.turns.toDeliver(c);
    this.turns.settle();
  };

  /** Not raised for our own end()/terminate() (detached first): the peer or the kernel ended it. */
  private readonly onSocketClose = (socket: BunSocket, error?: Error): void => {
    const c = socket.data;
    if (c === null || !c.live) return;
    c.detach();
    c.closeReason ??= error === undefined ? 0 : -errnoOfBunError(error, ECONNRESET);
    this.endConnection(c, RESET); // detached: nothing more is sent
    this.turns.settle();
  };

  /** Bun raises `error` when a callback threw: ours catch handler throws, so a bug of ours. */
  private readonly onSocketError = (_socket: BunSocket, error: Error): void => {
    rethrowLater(error);
  };

  // ---------------------------------------------------------------- the steps of a turn

  /** onOpen if due, then held reads while not paused, then onEnd behind them. */
  deliver(c: BunConnection): void {
    if (c.openPending && c.state === OPEN) {
      c.openPending = false;
      this.calls.opened(c.handler, c.id, c.listener);
    }
    while (c.held !== null && !c.paused && c.state === OPEN) {
      this.deliverData(c, this.inbound.takeHeld(c));
    }
    if (c.endPending && c.held === null && !c.paused && c.state === OPEN) {
      c.endPending = false;
      this.calls.ended(c.handler, c.id);
      if (c.state === OPEN) this.close(c.id, CloseMode.Graceful); // the contract, after onEnd
    }
  }

  flush(c: BunConnection): void {
    if ((c.state !== OPEN && c.state !== CLOSING) || c.awaitingDrain) return;
    const flushed = this.outbound.flush(c, c.socket!);
    if (flushed === Flushed.WAITING) {
      c.awaitingDrain = true;
    } else if (flushed === Flushed.CLOSED) {
      this.abort(c, -EPIPE); // Bun's close event, if it comes, finds it ended
    } else if (c.state === CLOSING) {
      c.closeReason ??= 0;
      this.endConnection(c, FIN);
    } else if (c.drainWanted) {
      c.drainWanted = false;
      this.calls.drained(c.handler, c.id);
    }
  }

  finish(c: BunConnection): void {
    this.calls.closed(c.handler, c.id, c.closeReason ?? 0);
    this.slots.free(c);
    this.closed++;
  }

  afterTurn(): void {
    this.calls.report();
    if (this.resolveDispose !== null && this.slots.count === 0) this.disposeDone();
  }

  /** `data` is Bun's own Buffer of one read: valid during the call, as the contract says. */
  private deliverData(c: BunConnection, data: Uint8Array): void {
    this.calls.data(c.handler, c.id, data, 0, data.length);
    this.inbound.release();
  }

  private assertUsable(call: string): void {
    if (this.disposed) throw new UsageError(ErrorCode.DISPOSED, `${call} after dispose`);
  }

  // ---------------------------------------------------------------- stats and disposal

  stats(): TransportStats {
    return {
      backend: this.backend,
      connections: this.slots.count,
      accepted: this.accepted,
      connected: this.connected,
      closed: this.closed,
      bytesIn: this.inbound.bytesIn,
      bytesOut: this.outbound.bytesOut,
      turns: this.turns.count,
      parks: 0,
      recvBufferStalls: 0,
      cqOverflows: 0,
      loansOut: 0,
      recvBuffers: this.inbound.stats(),
      sendBuffers: this.outbound.stats(),
      regionKind: "plain",
      node: -1,
    };
  }

  /** Accepts closed at once: over maxConnections, or the listener was closing. */
  get refused(): number {
    return this.refusedAccepts;
  }

  /** Resets every connection (onClose -ECANCELED in the next turn); resolves after the last. */
  dispose(): Promise<void> {
    if (this.disposing !== null) return this.disposing;
    this.disposed = true;
    this.disposing = new Promise<void>((resolve) => {
      this.resolveDispose = resolve;
    });
    this.listeners.closeAll();
    for (const c of this.slots.all()) {
      c.closeReason = -ECANCELED; // overrides a close already due, as every backend does
      if (c.live) this.endConnection(c, RESET);
    }
    if (this.slots.count === 0) this.disposeDone();
    return this.disposing;
  }

  /** For a dying thread: every socket reset and listener closed now, no callbacks. */
  closeNow(): void {
    this.disposed = true;
    this.listeners.closeAll();
    for (const c of this.slots.all()) c.detach()?.terminate();
    this.slots.clear();
    this.turns.clear();
    this.outbound.cache.clear();
    if (this.resolveDispose !== null) this.disposeDone();
  }

  private disposeDone(): void {
    const resolve = this.resolveDispose!;
    this.resolveDispose = null;
    this.outbound.cache.clear();
    resolve();
  }
}
