/**
 * The epoll backend of the Transport contract, for Linux where io_uring is forbidden
 * (Docker's and Kubernetes' default seccomp profiles, kernel.io_uring_disabled). Sockets are
 * non-blocking and registered once, edge-triggered, for reading, writing and the peer's
 * half-close. A loop turn waits for events without blocking (epoll_wait with timeout 0),
 * accepts, reads and writes with plain system calls, and settles closed connections; a
 * quiet loop parks (EpollParker) inside Bun's event loop.
 *
 * Receive: every connection reads into one shared receive buffer, handed to onData as a
 * view valid during the call, so no buffer belongs to an idle connection (the server keeps
 * only what a partial frame needs). Reads are budgeted per connection per turn; a
 * connection with more to read waits in a first-come first-served line for the next turn.
 * Send: the same ConnectionSends as io_uring (chunks, loans, urgent queue), written with
 * send/sendmsg until the kernel says EAGAIN, then on EPOLLOUT.
 */
import {
  EAGAIN, ECANCELED, ECONNABORTED, EINTR, EMFILE, ENFILE, ENOBUFS, ENOMEM, EPIPE,
} from "../api/errno.ts";
import { checkConnectAddress, checkListenAddress } from "../api/address.ts";
import { ErrorCode, UsageError } from "../api/errors.ts";
import { HandlerErrors } from "../api/handler-errors.ts";
import {
  CloseMode, resolveTransportSizing, type Lender, type ListenOptions,
  type Transport, type TransportHandler, type TransportOptions, type TransportStats,
} from "../api/transport.ts";
import {
  EPOLL_CTL_ADD, EPOLLERR, EPOLLET, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP, MSG_DONTWAIT,
  MSG_NOSIGNAL,
} from "../ffi/epoll-abi.ts";
import {
  ACCEPT_FLAGS, closeFd, CONNECT_PENDING, connectStart, EpollEventArray, epollCreate, epollCtl, epollSyscalls,
  errno, nonBlockingTcpSocket, setNonBlocking, socketError, type EpollSyscalls,
} from "../ffi/epoll.ts";
import { MemoryRegion } from "../pool/region.ts";
import { ConnectionFifo } from "./connection-fifo.ts";
import { ConnectionSends } from "./connection-sends.ts";
import { SendFront } from "./send-front.ts";
import { ConnectionTable, ConnState } from "./connection-table.ts";
import { epollParker } from "./epoll-parker.ts";
import { HandlerCalls } from "./handler-calls.ts";
import { ListenerTable } from "./listener-table.ts";
import { LoopScheduler } from "./loop-scheduler.ts";
import {
  endpointOf, openListener, peerEndpoint, SOCKADDR_IN_SIZE, setResetOnClose, writeSockaddrIn,
} from "./sockets.ts";

/** Options of the epoll backend beyond the common TransportOptions. */
export interface EpollTransportOptions extends TransportOptions {
  /** Keep polling this long after the last event before parking; default 50 µs. */
  spinMicros?: number;
}

const { FREE, CONNECTING, OPEN, CLOSING, TEARDOWN } = ConnState;

// Connection flag bits (ConnectionTable.flags).
const PAUSED = 1;
/** An edge said there is data, and it was not read to the end yet. */
const READABLE = 2;
/** In the line of connections to read next turn. */
const IN_READ_LINE = 4;
/** The kernel's send buffer was full: write again on EPOLLOUT. */
const WAIT_WRITABLE = 8;
const DIRTY = 16;
const EOF_SEEN = 32;
/** The peer shut down its side (EPOLLRDHUP/HUP): read to the end, a short read proves nothing. */
const PEER_SHUT = 64;

/**
 * epoll data: slot in the low half; in the high half, a listener bit or the generation
 * (epollCtl takes data below 2^53: 21 bits up there).
 */
const LISTENER_BIT = 1 << 20;
const GENERATION_MASK = LISTENER_BIT - 1;
const CONNECTION_EVENTS = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
const EVENTS_PER_TURN = 512;
/** Bytes read from one connection per turn before the others get their turn. */
const READ_BUDGET = 256 * 1024;
/** Sends tried for one connection per flush (each is a system call). */
const SENDS_PER_FLUSH = 8;
const RETRY_ACCEPT_MS = 50;

export class EpollTransport implements Transport {
  readonly backend = "epoll" as const;

  private readonly sys: EpollSyscalls;
  private readonly epfd: number;
  private readonly events: EpollEventArray;
  /** The shared receive buffer: native memory, viewed as a Buffer (text decodes in place). */
  private readonly recvRegion: MemoryRegion;
  private readonly recvView: Buffer;
  private readonly recvAddress: number;
  private readonly recvSize: number;
  private readonly sends: ConnectionSends;
  /** The send methods, shared with the other ConnectionSends backends. */
  private readonly front: SendFront;
  private readonly table: ConnectionTable;
  private readonly listeners = new ListenerTable();
  private readonly calls: HandlerCalls;
  private readonly scheduler: LoopScheduler;
  /** A sockaddr for connect() (copied by the kernel during the call: ≥ 1 KiB, not moved). */
  private readonly sockaddr = new Uint8Array(new ArrayBuffer(1024));

  // Work lists.
  /** Connections that queued bytes (or must flush before closing), first come first served. */
  private readonly dirty = new ConnectionFifo();
  /** Connections with data left to read, first come first served. */
  private readonly readLine = new ConnectionFifo();
  /** Torn down this turn: onClose at the end of it. */
  private readonly closed = new ConnectionFifo();

  private disposed = false;
  private disposing: Promise<void> | undefined;

  // Counters.
  private accepted = 0;
  private connected = 0;
  private closedCount = 0;
  private bytesIn = 0;
  private bytesOut = 0;
  private turns = 0;
  private refusedAccepts = 0;

  constructor(options: EpollTransportOptions = {}) {
    const { maxConnections, initialConnections, recvBufferSize, sendChunkSize,
      sendChunkCount } = resolveTransportSizing(options);
    const memory = { node: options.node, hugepages: options.hugepages ?? "auto" } as const;
    this.sys = epollSyscalls();
    this.table = new ConnectionTable(initialConnections, maxConnections, GENERATION_MASK,
      (slots) => this.growSlots(slots));
    this.calls = new HandlerCalls(new HandlerErrors(options.onHandlerError),
      (conn) => this.close(conn, CloseMode.Abort));
    this.scheduler = new LoopScheduler({
      turn: () => this.turn(),
      hasPendingSubmissions: () => this.dirty.size > 0 || this.readLine.size > 0,
      park: () => epollParker().park(this.epfd, this.scheduler.wake),
    }, options.spinMicros ?? 50);
    this.epfd = epollCreate();
    const cleanup: (() => void)[] = [() => closeFd(this.epfd)];
    try {
      this.events = EpollEventArray.allocate(EVENTS_PER_TURN);
      cleanup.push(() => this.events.free());
      this.recvSize = recvBufferSize;
      this.recvRegion = MemoryRegion.allocate(this.recvSize, { hugepages: "off", node: options.node });
      cleanup.push(() => this.recvRegion.free());
      // Now, not at the first park: parking must not need descriptors when they run out.
      epollParker().register(this.epfd);
      cleanup.push(() => epollParker().forget(this.epfd));
      this.sends = new ConnectionSends(initialConnections, maxConnections, sendChunkSize,
        sendChunkCount, memory, options.node);
      this.front = new SendFront(this.table, this.sends, (conn) => this.markDirty(conn));
    } catch (error) {
      for (const undo of cleanup.reverse()) undo();
      throw error;
    }
    const view = this.recvRegion.view;
    this.recvView = Buffer.from(view.buffer, view.byteOffset, this.recvSize);
    this.recvAddress = this.recvRegion.pointer;
  }

  // ---------------------------------------------------------------- listeners

  listen(options: ListenOptions, handler: TransportHandler): number {
    this.assertLive();
    checkListenAddress(options.hostname ?? "0.0.0.0", options.port);
    const { fd, port } = openListener(options.hostname ?? "0.0.0.0", options.port,
      options.backlog ?? 4096, options.reusePort ?? false);
    try {
      setNonBlocking(fd);
    } catch (error) {
      closeFd(fd);
      throw error;
    }
    const id = this.listeners.add(fd, port, handler);
    epollCtl(this.epfd, EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLET, LISTENER_BIT * 2 ** 32 + id);
    this.acceptAll(id); // connections may be waiting already
    this.scheduler.scheduleFlush();
    return id;
  }

  listenerPort(listener: number): number {
    return this.listeners.port(listener);
  }

  closeListener(listener: number): void {
    if (!this.listeners.stopAccepting(listener)) return;
    closeFd(this.listeners.fd(listener)); // leaves the epoll set with it
    this.listeners.closed(listener);
  }

  /** Accept until the backlog is empty (edge-triggered: no new event for what waits). */
  private acceptAll(listener: number): void {
    const fd = this.listeners.fd(listener);
    for (;;) {
      if (!this.listeners.isAccepting(listener)) return;
      const client = this.sys.accept4(fd, 0, 0, ACCEPT_FLAGS);
      if (client < 0) {
        const reason = errno();
        if (reason === EINTR || reason === ECONNABORTED) continue;
        // Out of descriptors or memory: keep serving, try again a little later.
        if (reason === EMFILE || reason === ENFILE || reason === ENOMEM || reason === ENOBUFS) {
          this.acceptLater(listener);
        }
        return;
      }
      this.adopt(listener, client);
    }
  }

  private acceptLater(listener: number): void {
    setTimeout(() => {
      if (!this.disposed) {
        this.acceptAll(listener);
        this.scheduler.scheduleFlush();
      }
    }, RETRY_ACCEPT_MS);
  }

  /** A connection accepted on `listener`: a slot, the epoll registration, onOpen. */
  private adopt(listener: number, fd: number): void {
    const handler = this.listeners.handler(listener);
    const conn = handler === undefined ? -1 : this.table.allocate();
    if (conn < 0 || handler === undefined) {
      this.refusedAccepts++;
      closeFd(fd); // over maxConnections: the peer sees the connection closed
      return;
    }
    this.accepted++;
    this.table.open(conn, fd, listener, handler, OPEN, peerEndpoint(fd));
    this.register(conn);
    this.calls.opened(handler, conn, listener);
  }

  private register(conn: number): void {
    const table = this.table;
    epollCtl(this.epfd, EPOLL_CTL_ADD, table.fds[conn], CONNECTION_EVENTS,
      table.generations[conn] * 2 ** 32 + conn);
  }

  // ---------------------------------------------------------------- connections

  connect(host: string, port: number, handler: TransportHandler): number {
    this.assertLive();
    checkConnectAddress(host, port);
    const peer = endpointOf(host, port);
    const conn = this.table.allocate();
    if (conn < 0) return -EMFILE;
    let fd: number;
    try {
      fd = nonBlockingTcpSocket();
    } catch (error) {
      this.table.unallocate(conn);
      throw error;
    }
    this.table.open(conn, fd, -1, handler, CONNECTING, peer);
    writeSockaddrIn(this.sockaddr, 0, host, port);
    const started = connectStart(fd, this.sockaddr, SOCKADDR_IN_SIZE);
    this.register(conn); // EPOLLOUT says when the handshake is over (at once, if it is)
    if (started < 0 && started !== CONNECT_PENDING) this.teardown(conn, started);
    this.scheduler.scheduleFlush();
    return conn;
  }

  send(conn: number, data: Uint8Array, start: number, end: number): number {
    return this.front.send(conn, data, start, end);
  }

  sendUrgent(conn: number, data: Uint8Array, start: number, end: number): number {
    return this.front.sendUrgent(conn, data, start, end);
  }

  sendPair(conn: number, first: Uint8Array, firstStart: number, firstEnd: number,
    second: Uint8Array, secondStart: number, secondEnd: number): number {
    return this.front.sendPair(conn, first, firstStart, firstEnd, second, secondStart, secondEnd);
  }

  sendLoaned(conn: number, header: Uint8Array, headerStart: number, headerEnd: number,
    payload: Uint8Array, payloadStart: number, payloadEnd: number, payloadAddress: number,
    lender: Lender, token: number): number {
    return this.front.sendLoaned(conn, header, headerStart, headerEnd, payload, payloadStart,
      payloadEnd, payloadAddress, lender, token);
  }

  bufferedAmount(conn: number): number {
    return this.front.bufferedAmount(conn);
  }


  pause(conn: number): void {
    const table = this.table;
    if (table.states[conn] !== OPEN) return;
    table.flags[conn] |= PAUSED; // unread data stays in the kernel: TCP holds the peer back
  }

  resume(conn: number): void {
    const flags = this.table.flags;
    if ((flags[conn] & PAUSED) === 0) return;
    flags[conn] &= ~PAUSED;
    if (this.table.states[conn] !== OPEN) return;
    if ((flags[conn] & READABLE) !== 0) this.queueRead(conn);
    this.scheduler.scheduleFlush();
  }

  close(conn: number, mode: CloseMode = CloseMode.Graceful): void {
    const table = this.table;
    const state = table.states[conn];
    if (state === FREE || state === TEARDOWN) return;
    if (mode === CloseMode.Abort) {
      setResetOnClose(table.fds[conn]);
      this.teardown(conn, 0);
      return;
    }
    if (state === CLOSING) return;
    if (state === CONNECTING) {
      this.teardown(conn, 0);
      return;
    }
    table.states[conn] = CLOSING;
    if (this.bufferedAmount(conn) === 0) this.teardown(conn, 0);
    else this.markDirty(conn);
  }

  remoteAddress(conn: number): string {
    return this.table.remoteAddress(conn);
  }

  private growSlots(slots: number): void {
    this.sends.grow(slots);
  }

  /** Close the socket now (it leaves the epoll set); onClose at the end of the turn. */
  private teardown(conn: number, reason: number): void {
    const table = this.table;
    if (!table.startTeardown(conn, reason)) return;
    this.sends.dropUnsent(conn); // nothing is in flight here: all of it is free at once
    closeFd(table.fds[conn]);
    table.fds[conn] = -1;
    this.closed.push(conn);
    this.scheduler.scheduleFlush();
  }

  /** Deliver onClose for what was torn down (in the order it was). */
  private settleClosed(): void {
    while (this.closed.size > 0) {
      const conn = this.closed.shift();
      if (!this.table.settled(conn)) continue;
      this.sends.clear(conn);
      this.closedCount++;
      this.table.finish(conn, this.calls);
    }
  }

  // ---------------------------------------------------------------- the loop

  private markDirty(conn: number): void {
    const flags = this.table.flags;
    if ((flags[conn] & DIRTY) !== 0) return;
    flags[conn] |= DIRTY;
    this.dirty.push(conn);
    this.scheduler.scheduleFlush();
  }

  private queueRead(conn: number): void {
    const flags = this.table.flags;
    if ((flags[conn] & IN_READ_LINE) !== 0) return;
    flags[conn] |= IN_READ_LINE;
    this.readLine.push(conn);
  }

  /**
   * One turn: write what handlers queued, take the ready events without waiting, read the
   * connections that have data (oldest in line first), write again, settle closes, and
   * report handler errors. Returns the events and reads seen (0: a quiet turn).
   */
  private turn(): number {
    this.flush();
    let seen = this.readQueued();
    const ready = this.events.wait(this.epfd, 0);
    if (ready < 0 && errno() !== EINTR) throw new Error(`epoll_wait failed: errno ${errno()}`);
    for (let i = 0; i < ready; i++) {
      this.dispatch(this.events.eventsAt(i), this.events.dataLowAt(i), this.events.dataHighAt(i));
      // Write what that connection's handler queued before reading the next one: replies
      // leave as requests come in, so send memory holds what the kernel cannot take yet,
      // not a whole batch of echoes.
      if (this.dirty.size > 0) this.flush();
    }
    if (ready > 0) seen += ready;
    this.flush();
    this.settleClosed();
    this.turns++;
    this.calls.report();
    return seen;
  }

  private dispatch(events: number, slot: number, high: number): void {
    if (high >= LISTENER_BIT) {
      this.acceptAll(slot);
      return;
    }
    const table = this.table;
    if (!table.isCurrent(slot, high)) return; // a connection closed earlier in this batch
    const state = table.states[slot];
    if (state === TEARDOWN) return;
    if (state === CONNECTING) {
      if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) !== 0) this.connectDone(slot);
      // Data may have come with the same edge: read it now or never hear of it again.
      if (table.states[slot] !== OPEN) return;
    }
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) !== 0) {
      table.flags[slot] |= (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) !== 0
        ? READABLE | PEER_SHUT : READABLE;
      if ((table.flags[slot] & PAUSED) === 0) this.read(slot);
    }
    if ((events & EPOLLOUT) !== 0 && (table.flags[slot] & WAIT_WRITABLE) !== 0 &&
      table.states[slot] !== TEARDOWN) {
      table.flags[slot] &= ~WAIT_WRITABLE;
      this.write(slot);
    }
  }

  private connectDone(conn: number): void {
    const failure = socketError(this.table.fds[conn]);
    if (failure !== 0) {
      this.teardown(conn, -failure);
      return;
    }
    this.connected++;
    this.table.states[conn] = OPEN;
    this.calls.opened(this.table.handlers[conn]!, conn, -1);
    if (this.table.states[conn] === OPEN && this.bufferedAmount(conn) > 0) this.write(conn);
  }

  /** The connections left in line by the last turn's read budget. */
  private readQueued(): number {
    let reads = 0;
    const flags = this.table.flags;
    for (let count = this.readLine.size; count > 0; count--) {
      const conn = this.readLine.shift();
      flags[conn] &= ~IN_READ_LINE;
      if (this.table.states[conn] === FREE || (flags[conn] & (READABLE | PAUSED)) !== READABLE) continue;
      this.read(conn);
      reads++;
      if (this.dirty.size > 0) this.flush();
    }
    return reads;
  }

  /**
   * Read until the kernel has no more (a short read says so, unless the peer shut down),
   * the budget is spent (then wait in line), the peer ended, or the handler paused.
   */
  private read(conn: number): void {
    const table = this.table;
    const flags = table.flags;
    let budget = READ_BUDGET;
    while (budget > 0) {
      const state = table.states[conn];
      if ((state !== OPEN && state !== CLOSING) || (flags[conn] & PAUSED) !== 0) return;
      const got = this.sys.recv(table.fds[conn], this.recvAddress, this.recvSize, 0);
      if (got > 0) {
        this.bytesIn += got;
        budget -= got;
        this.calls.data(table.handlers[conn]!, conn, this.recvView, 0, got);
        // A short read emptied the socket: the next arrival raises a new edge. Not so for
        // the peer's FIN when it came with this data: no edge will follow, read on to it.
        if (got < this.recvSize && (flags[conn] & PEER_SHUT) === 0) {
          flags[conn] &= ~READABLE;
          return;
        }
        continue;
      }
      if (got === 0) {
        flags[conn] &= ~READABLE;
        this.endOfStream(conn);
        return;
      }
      const reason = errno();
      if (reason === EAGAIN) {
        flags[conn] &= ~READABLE;
        return;
      }
      if (reason === EINTR) continue;
      this.teardown(conn, -reason); // ECONNRESET, ETIMEDOUT...
      return;
    }
    this.queueRead(conn); // more may wait: the others read first
  }

  private endOfStream(conn: number): void {
    const table = this.table;
    if ((table.flags[conn] & EOF_SEEN) !== 0) return;
    table.flags[conn] |= EOF_SEEN;
    if (table.states[conn] === OPEN) this.calls.ended(table.handlers[conn]!, conn);
    this.close(conn, CloseMode.Graceful);
  }

  /** For each connection that wrote, resumed or closes: write what it queued. */
  private flush(): void {
    const table = this.table;
    // Those in line now: a connection that queues more while it writes waits for the next.
    for (let count = this.dirty.size; count > 0; count--) {
      const conn = this.dirty.shift();
      table.flags[conn] &= ~DIRTY;
      const state = table.states[conn];
      if (state !== OPEN && state !== CLOSING) continue;
      if ((table.flags[conn] & WAIT_WRITABLE) === 0) this.write(conn);
    }
  }

  /** Write queued bytes until the queue is empty or the kernel's send buffer is full. */
  private write(conn: number): void {
    const table = this.table;
    const sends = this.sends;
    for (let attempt = 0; attempt < SENDS_PER_FLUSH; attempt++) {
      const source = sends.nextSource(conn);
      if (source === null) return;
      const kind = source.prepare(conn, sends.wantsUnitEnd(conn));
      if (kind === 0) return;
      const fd = table.fds[conn];
      const flags = MSG_NOSIGNAL | MSG_DONTWAIT;
      const length = source.sendLength;
      const sent = kind === 1 ? this.sys.send(fd, source.sendAddress, length, flags)
        : this.sys.sendmsg(fd, source.sendAddress, flags);
      if (sent < 0) {
        const reason = errno();
        sends.abandonInFlight(conn);
        if (reason === EAGAIN) {
          table.flags[conn] |= WAIT_WRITABLE;
        } else if (reason !== EINTR) {
          this.teardown(conn, reason === ECANCELED ? -EPIPE : -reason);
        } else {
          continue;
        }
        return;
      }
      this.bytesOut += sent;
      if (!sends.complete(conn, sent)) {
        if (sent < length) {
          table.flags[conn] |= WAIT_WRITABLE; // the kernel took what fit: EPOLLOUT follows
          return;
        }
        continue;
      }
      if (table.states[conn] === CLOSING) this.teardown(conn, 0);
      else this.calls.drained(table.handlers[conn]!, conn);
      return;
    }
    this.markDirty(conn); // more queued than one flush writes: again next turn
  }

  // ---------------------------------------------------------------- stats and disposal

  stats(): TransportStats {
    const pool = this.sends.pool;
    const recvBuffers = {
      slotSize: this.recvSize, capacity: 1, inUse: 0, highWater: 1,
      regionKind: this.recvRegion.freed ? "plain" as const : this.recvRegion.kind,
      node: this.recvRegion.freed ? -1 : this.recvRegion.node, bytes: this.recvSize,
    };
    return {
      backend: this.backend,
      connections: this.table.live,
      accepted: this.accepted,
      connected: this.connected,
      closed: this.closedCount,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      turns: this.turns,
      parks: this.scheduler.parks,
      recvBufferStalls: 0,
      cqOverflows: 0,
      recvBuffers,
      loansOut: this.sends.loansOut,
      sendBuffers: pool.destroyed ? { ...recvBuffers, inUse: 0 } : pool.stats(),
      regionKind: pool.destroyed ? "plain" : pool.region.kind,
      node: pool.destroyed ? -1 : pool.region.node,
    };
  }

  /** Accepts refused because maxConnections was reached. */
  get refused(): number {
    return this.refusedAccepts;
  }

  dispose(): Promise<void> {
    this.disposing ??= this.disposeNow();
    return this.disposing;
  }

  private async disposeNow(): Promise<void> {
    const table = this.table;
    for (let id = 0; id < this.listeners.count; id++) this.closeListener(id);
    for (let conn = 0; conn < table.capacity; conn++) {
      if (table.states[conn] === FREE) continue;
      table.closeReasons[conn] = -ECANCELED;
      this.close(conn, CloseMode.Abort);
    }
    // From a handler, a turn is still using the event array and the receive buffer.
    if (this.scheduler.turning) await new Promise((resolve) => setImmediate(resolve));
    this.settleClosed();
    this.calls.report();
    this.release();
  }

  closeNow(): void {
    if (this.disposed) return;
    const table = this.table;
    for (let conn = 0; conn < table.capacity; conn++) {
      if (table.states[conn] !== FREE && table.fds[conn] >= 0) closeFd(table.fds[conn]);
    }
    for (const fd of this.listeners.openFds()) closeFd(fd);
    this.release();
  }

  private release(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.scheduler.stop();
    epollParker().forget(this.epfd);
    closeFd(this.epfd);
    this.events.free();
    this.sends.destroy();
    this.recvRegion.free();
  }

  private assertLive(): void {
    if (this.disposed || this.disposing !== undefined) {
      throw new UsageError(ErrorCode.DISPOSED, "the transport was disposed");
    }
  }
}
