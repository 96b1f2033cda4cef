/**
 * FakeTransport: the Transport contract in memory, on a FakeNetwork shared with other fake
 * transports. It checks arguments, owns connection slots, receive buffers and send memory, and
 * keeps the stats; moving bytes and calling handlers is the network's turn engine. Sizes and
 * their defaults, argument checks and the rule for a throwing handler are the ones every
 * backend shares (src/api), so what passes here behaves the same on io_uring.
 */
import { checkConnectAddress, checkListenAddress } from "../api/address.ts";
import { EMFILE, EPIPE, ECANCELED } from "../api/errno.ts";
import { assert, ErrorCode, UsageError } from "../api/errors.ts";
import { HandlerErrors } from "../api/handler-errors.ts";
import {
  checkSendRange,
  CloseMode,
  resolveTransportSizing,
  type Lender,
  type ListenOptions,
  type Transport,
  type TransportHandler,
  type TransportOptions,
  type TransportStats,
} from "../api/transport.ts";
import { FakeRecvBuffers, FakeSendMemory } from "./fake-memory.ts";
import type { FakeNetwork } from "./fake-network.ts";
import type { FakeListenerEntry } from "./fake-ports.ts";
import { FakeSocket, SocketState, type FakeEndpoint } from "./fake-socket.ts";

export interface FakeTransportOptions extends TransportOptions {
  /**
   * Overwrite each receive buffer with 0xDD after onData returns, so handler code that keeps
   * the view past the call reads garbage in tests; default true.
   */
  poisonAfterCallback?: boolean;
  /**
   * This transport's own IPv4 address: its peers see it in `remoteAddress` (one fake
   * transport per simulated host). Default "127.0.0.1".
   */
  address?: string;
}

interface ListenerRecord {
  readonly entry: FakeListenerEntry;
  open: boolean;
}

export class FakeTransport implements Transport, FakeEndpoint {
  readonly backend = "fake" as const;
  readonly network: FakeNetwork;
  readonly recvBuffers: FakeRecvBuffers;
  readonly poisonAfterCallback: boolean;
  /** What peers see as this end's address (without the port). */
  readonly address: string;
  private readonly sendMemory: FakeSendMemory;
  private readonly maxConnections: number;
  private readonly handlerErrors: HandlerErrors;
  /** Slot table: the connection id is the index. Grows up to maxConnections, never past it. */
  private readonly slots: (FakeSocket | null)[] = [];
  /** Freed ids, reused last-in first-out. */
  private readonly freeIds: number[] = [];
  private readonly listeners: ListenerRecord[] = [];
  private disposed = false;
  private disposeDone: Promise<void> | null = null;
  private resolveDispose: (() => void) | null = null;
  private lastActiveTurn = -1;
  private readonly counters = {
    connections: 0, accepted: 0, connected: 0, closed: 0, bytesIn: 0, bytesOut: 0,
    turns: 0, parks: 0, recvBufferStalls: 0,
  };

  constructor(network: FakeNetwork, options: FakeTransportOptions = {}) {
    // Slots grow on demand here, so initialConnections is checked but has nothing to size.
    const sizing = resolveTransportSizing(options);
    this.network = network;
    this.maxConnections = sizing.maxConnections;
    this.recvBuffers = new FakeRecvBuffers(sizing.recvBufferSize, sizing.recvBufferCount);
    this.sendMemory = new FakeSendMemory(sizing.sendChunkSize, sizing.sendChunkCount);
    this.handlerErrors = new HandlerErrors(options.onHandlerError);
    this.poisonAfterCallback = options.poisonAfterCallback ?? true;
    this.address = options.address ?? "127.0.0.1";
    network.attach(this);
  }

  listen(options: ListenOptions, handler: TransportHandler): number {
    this.assertUsable("listen");
    checkListenAddress(options.hostname ?? "0.0.0.0", options.port);
    const reusePort = options.reusePort ?? false;
    const port = this.network.ports.choosePort(options.port, reusePort);
    const listenerId = this.listeners.length;
    const entry: FakeListenerEntry = { transport: this, listenerId, handler, port, reusePort };
    this.network.ports.add(entry);
    this.listeners.push({ entry, open: true });
    return listenerId;
  }

  listenerPort(listener: number): number {
    const record = this.listeners[listener];
    if (record === undefined) throw new UsageError(ErrorCode.NO_LISTENER, "no such listener");
    return record.entry.port;
  }

  closeListener(listener: number): void {
    const record = this.listeners[listener];
    if (record === undefined || !record.open) return;
    record.open = false;
    this.network.ports.remove(record.entry);
  }

  connect(host: string, port: number, handler: TransportHandler): number {
    this.assertUsable("connect");
    checkConnectAddress(host, port);
    const socket = this.openSlot(handler, -1, this.network.ports.ephemeralPort(), port,
      host === "localhost" ? "127.0.0.1" : host);
    // No free slot: answered like socket(2) over RLIMIT_NOFILE (see the report on the contract).
    if (socket === null) return -EMFILE;
    this.network.queueConnect(socket);
    return socket.id;
  }

  send(conn: number, data: Uint8Array, start: number, end: number): number {
    return this.queue(conn, data, start, end, false);
  }

  sendUrgent(conn: number, data: Uint8Array, start: number, end: number): number {
    return this.queue(conn, data, start, end, true);
  }

  private queue(conn: number, data: Uint8Array, start: number, end: number, urgent: boolean): number {
    checkSendRange(data, start, end);
    const socket = this.socketOf(conn);
    const writable = socket !== null && socket.closeReason === null
      && (socket.state === SocketState.Open || socket.state === SocketState.Connecting);
    if (!writable) return -EPIPE;
    if (end === start) return 0;
    const queued = socket.queueSend(data, start, end, urgent);
    if (queued > 0) this.network.wake();
    return queued;
  }

  sendPair(conn: number, first: Uint8Array, firstStart: number, firstEnd: number,
    second: Uint8Array, secondStart: number, secondEnd: number): number {
    checkSendRange(first, firstStart, firstEnd);
    checkSendRange(second, secondStart, secondEnd);
    const firstLength = firstEnd - firstStart;
    const joined = new Uint8Array(firstLength + (secondEnd - secondStart));
    joined.set(first.subarray(firstStart, firstEnd));
    joined.set(second.subarray(secondStart, secondEnd), firstLength);
    return this.send(conn, joined, 0, joined.length);
  }

  /** The fake copies everything it queues, so a loan is given back before this returns. */
  sendLoaned(conn: number, header: Uint8Array, headerStart: number, headerEnd: number,
    payload: Uint8Array, payloadStart: number, payloadEnd: number, _payloadAddress: number,
    lender: Lender, token: number): number {
    const queued = this.sendPair(conn, header, headerStart, headerEnd, payload, payloadStart,
      payloadEnd);
    if (queued > 0) lender.giveBack(token);
    return queued;
  }

  bufferedAmount(conn: number): number {
    const socket = this.socketOf(conn);
    return socket === null ? 0 : socket.sendQueue.length;
  }

  pause(conn: number): void {
    const socket = this.socketOf(conn);
    if (socket !== null) socket.paused = true;
  }

  resume(conn: number): void {
    const socket = this.socketOf(conn);
    if (socket === null || !socket.paused) return;
    socket.paused = false;
    this.network.wake();
  }

  close(conn: number, mode: CloseMode = CloseMode.Graceful): void {
    const socket = this.socketOf(conn);
    if (socket === null || !socket.alive) return;
    if (mode === CloseMode.Abort) {
      socket.dropSendQueue();
      socket.inbound.clear();
      socket.closeReason = 0;
      this.network.resetPeer(socket);
    } else if (socket.state === SocketState.Connecting) {
      // Closed before the connect completed: no onOpen, only onClose(0).
      socket.dropSendQueue();
      socket.closeReason = 0;
    } else if (socket.state === SocketState.Open) {
      socket.state = SocketState.Closing;
    }
    this.network.wake();
  }

  remoteAddress(conn: number): string {
    const socket = this.socketOf(conn);
    return socket === null ? "" : `${socket.remoteHost}:${socket.remotePort}`;
  }

  stats(): TransportStats {
    const c = this.counters;
    return {
      backend: this.backend,
      connections: c.connections,
      accepted: c.accepted,
      connected: c.connected,
      closed: c.closed,
      bytesIn: c.bytesIn,
      bytesOut: c.bytesOut,
      turns: c.turns,
      parks: c.parks,
      recvBufferStalls: c.recvBufferStalls,
      cqOverflows: 0,
      recvBuffers: this.recvBuffers.stats(),
      loansOut: 0, // given back as soon as the bytes are copied
      sendBuffers: this.sendMemory.stats(),
      regionKind: "plain",
      node: -1,
    };
  }

  /** In memory there is nothing to leak: drop every connection without callbacks. */
  closeNow(): void {
    this.disposed = true;
    for (const socket of this.slots) socket?.dropSendQueue();
  }

  /**
   * Closes every listener and connection: own connections get onClose(-ECANCELED) in the next
   * turn, their peers on other transports onClose(-ECONNRESET). Resolves once every onClose ran
   * (with autoRun: false, run the network before awaiting). Later calls return the same promise.
   */
  dispose(): Promise<void> {
    if (this.disposeDone !== null) return this.disposeDone;
    this.disposed = true;
    for (let id = 0; id < this.listeners.length; id++) this.closeListener(id);
    for (const socket of this.slots) {
      if (socket === null || socket.state === SocketState.Closed) continue;
      // Overrides a close already due: dispose promises ECANCELED to every connection.
      socket.closeReason = -ECANCELED;
      socket.dropSendQueue();
      socket.inbound.clear();
      if (socket.peer !== null && socket.peer.transport !== this) this.network.resetPeer(socket);
    }
    this.disposeDone = new Promise<void>((resolve) => {
      this.resolveDispose = resolve;
    });
    this.finishDisposeIfDone();
    this.network.wake();
    return this.disposeDone;
  }

  // ---- test hooks ------------------------------------------------------------------------------

  /** Takes up to `count` free receive buffers away from delivery (exhaustion tests). */
  holdRecvBuffers(count: number): number {
    return this.recvBuffers.hold(count);
  }

  /** Gives back what `holdRecvBuffers` took; stalled deliveries resume. */
  releaseRecvBuffers(): void {
    this.recvBuffers.releaseHeld();
    this.network.wake();
  }

  // ---- used by the network's turn engine -------------------------------------------------------

  /** A server-side socket for a connect to `entry`, or null when maxConnections is reached. */
  acceptSocket(entry: FakeListenerEntry, remoteHost: string, remotePort: number): FakeSocket | null {
    const socket = this.openSlot(entry.handler, entry.listenerId, entry.port, remotePort, remoteHost);
    if (socket === null) return null;
    socket.state = SocketState.Open;
    this.counters.accepted++;
    this.noteActivity();
    return socket;
  }

  /** After onClose returned: the id is free again. */
  releaseSocket(socket: FakeSocket): void {
    assert(this.slots[socket.id] === socket, "fake socket released once");
    this.slots[socket.id] = null;
    this.freeIds.push(socket.id);
    this.counters.connections--;
    this.counters.closed++;
    this.noteActivity();
  }

  noteConnected(): void {
    this.counters.connected++;
    this.noteActivity();
  }

  noteBytesIn(count: number): void {
    this.counters.bytesIn += count;
    this.noteActivity();
  }

  noteBytesOut(count: number): void {
    this.counters.bytesOut += count;
    this.noteActivity();
  }

  noteRecvStall(): void {
    this.counters.recvBufferStalls++;
    this.noteActivity();
  }

  /** Counts the current turn once in stats.turns. */
  noteActivity(): void {
    if (this.lastActiveTurn === this.network.turn) return;
    this.lastActiveTurn = this.network.turn;
    this.counters.turns++;
  }

  /** A handler of `socket` threw: the one rule of every backend, abort now, report later. */
  handlerThrew(socket: FakeSocket, error: unknown): void {
    this.handlerErrors.add(error, socket.id);
    this.close(socket.id, CloseMode.Abort); // a no-op once onClose ran
  }

  /** End of every network turn: count parks, report handler errors, finish a dispose. */
  afterTurn(quiet: boolean): void {
    if (quiet && this.lastActiveTurn === this.network.turn) this.counters.parks++;
    this.handlerErrors.report();
    this.finishDisposeIfDone();
  }

  // ---- private ---------------------------------------------------------------------------------

  private openSlot(
    handler: TransportHandler,
    listener: number,
    localPort: number,
    remotePort: number,
    remoteHost: string,
  ): FakeSocket | null {
    let id: number;
    if (this.freeIds.length > 0) id = this.freeIds.pop()!;
    else if (this.slots.length < this.maxConnections) id = this.slots.push(null) - 1;
    else return null;
    const socket = new FakeSocket(
      this, this.sendMemory, id, handler, listener, localPort, remotePort, remoteHost,
    );
    this.slots[id] = socket;
    this.counters.connections++;
    this.network.addSocket(socket);
    return socket;
  }

  private socketOf(conn: number): FakeSocket | null {
    const socket = this.slots[conn];
    return socket === undefined ? null : socket;
  }

  private assertUsable(call: string): void {
    if (this.disposed) throw new UsageError(ErrorCode.DISPOSED, `${call} after dispose`);
  }

  private finishDisposeIfDone(): void {
    if (this.resolveDispose === null || this.counters.connections > 0) return;
    const resolve = this.resolveDispose;
    this.resolveDispose = null;
    this.recvBuffers.freeMemory();
    this.network.detach(this);
    resolve();
  }
}
