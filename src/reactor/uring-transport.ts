/**
 * The io_uring backend of the Transport contract. One ring per transport (one per thread):
 * multishot ACCEPT per listener, one multishot RECV per connection selecting buffers from a
 * provided-buffer ring (an idle connection owns no receive buffer), sends from pool chunks
 * (SEND, or SENDMSG over several chunks), CLOSE/ASYNC_CANCEL for teardown, CONNECT for the
 * client side. Each loop turn enters the kernel once: submit everything queued, run task
 * work, then dispatch the completions from the CQ in place.
 *
 * What every backend shares lives beside this file: the connection table (state, slots,
 * settling a teardown), the listener table, the handler rule, the send queues and the loop
 * scheduler. This file keeps only what touches the ring. Nothing is allocated per message.
 */
import {
  EAGAIN, ECANCELED, ECONNABORTED, EINTR, EMFILE, ENFILE, ENOBUFS, ENOMEM, EPIPE,
} from "../api/errno.ts";
import { checkConnectAddress, checkListenAddress } from "../api/address.ts";
import { assert, ErrorCode, UsageError } from "../api/errors.ts";
import { HandlerErrors } from "../api/handler-errors.ts";
import type { RegionKind } from "../api/pool.ts";
import {
  CloseMode, resolveTransportSizing, type Lender, type ListenOptions,
  type Transport, type TransportHandler, type TransportOptions, type TransportStats,
} from "../api/transport.ts";
import * as abi from "../ffi/io-uring-abi.ts";
import { libc, SOCK_CLOEXEC } from "../ffi/libc.ts";
import { grown } from "../pool/grown-array.ts";
import { MemoryRegion } from "../pool/region.ts";
import { ConnectionFifo } from "./connection-fifo.ts";
import { ConnectionSends } from "./connection-sends.ts";
import { SendFront } from "./send-front.ts";
import { ConnectionTable, ConnState } from "./connection-table.ts";
import { HandlerCalls } from "./handler-calls.ts";
import { ListenerTable } from "./listener-table.ts";
import { LoopScheduler } from "./loop-scheduler.ts";
import {
  endpointOf, openListener, peerEndpoint, SOCKADDR_IN_SIZE, setResetOnClose, tcpSocket,
  writeSockaddrIn,
} from "./sockets.ts";
import { ProvidedBufferRing } from "./uring-buf-ring.ts";
import { EventfdPark } from "./uring-eventfd-park.ts";
import { HeldBuffers } from "./uring-held-buffers.ts";
import { UringRing } from "./uring-ring.ts";
import { SqeWriter } from "./uring-sqe.ts";
import * as ud from "./uring-user-data.ts";

/** Options of the io_uring backend beyond the common TransportOptions. */
export interface UringTransportOptions extends TransportOptions {
  /** SQ entries (power of two); default 4096. */
  ringEntries?: number;
  /** CQ entries; default 4 × ringEntries. Small values exercise CQ overflow in tests. */
  cqEntries?: number;
  /**
   * Use SINGLE_ISSUER | DEFER_TASKRUN where the kernel has them (6.1+); default false: with
   * it a parked ring woke ~14 ms late on kernel 6.18 (p50 of an echo after a quiet 50 ms:
   * 13.8 ms, against 0.5 ms without). The kernel queues the deferred work at once but
   * signals the registered eventfd 12–19 ms later, and only the ring's submitter blocking in
   * io_uring_enter is woken sooner, which Bun's thread cannot do (test/tools/
   * defer-taskrun-wake.c shows it in C). Measured A/B: plain full-load echo no faster with
   * it, zlib-bound compressed echo ~28% faster (bench/RESULTS.md).
   */
  deferTaskrun?: boolean;
  /**
   * Sends of at least this many bytes use SEND_ZC / SENDMSG_ZC (6.0/6.1): the kernel pins
   * the pool pages instead of copying, and reports a second (notification) CQE when it
   * lets go of them. Default Infinity (off): on loopback, zero copy is never faster (see
   * bench/RESULTS.md); on real NICs try 16 KiB with a larger sendChunkSize.
   */
  zeroCopyThreshold?: number;
  /** Keep polling this long after the last completion before parking; default 50 µs. */
  spinMicros?: number;
  /**
   * The receive ring starts with `recvBufferCount` buffers and doubles while connections
   * wait for buffers, up to this many (a power of two); default max(recvBufferCount, 1024):
   * 32 MiB of 32 KiB buffers, touched only as the ring grows. Equal to recvBufferCount: fixed.
   */
  recvBufferCountMax?: number;
}

const { FREE, CONNECTING, OPEN, CLOSING, TEARDOWN } = ConnState;

// Connection flag bits (ConnectionTable.flags).
const RECV_ARMED = 1;
const PAUSED = 2;
const WANTS_BUFFERS = 4;
const DIRTY = 8;
const EOF_SEEN = 16;

const RECV_BUFFER_GROUP = 0;
/** Quiet time (parked, nothing received) after which receive memory is given back. */
const RECEIVE_TRIM_AFTER_MS = 1000;

export class UringTransport implements Transport {
  readonly backend = "io_uring" as const;

  private readonly ring: UringRing;
  private readonly sqe: SqeWriter;
  private readonly buffers: ProvidedBufferRing;
  private readonly recvRegion: MemoryRegion;
  /** A sockaddr per connection for CONNECT (the kernel reads it after submission). */
  private readonly sockaddrs: MemoryRegion;
  private readonly sends: ConnectionSends;
  /** The send methods, shared with the other ConnectionSends backends. */
  private readonly front: SendFront;
  private readonly park: EventfdPark;
  private readonly table: ConnectionTable;
  private readonly listeners = new ListenerTable();
  private readonly calls: HandlerCalls;
  private readonly zeroCopyThreshold: number;
  /** Result of a zero-copy send, kept until its notification says the pages are free. */
  private zeroCopyResults: Int32Array;
  /** Received buffers held while a connection is paused. */
  private readonly held: HeldBuffers;

  // Work lists.
  private dirty: Int32Array;
  private dirtyCount = 0;
  /** Connections whose receive ran out of buffers, in the order they did. */
  private readonly starving = new ConnectionFifo();
  /** Buffers handed back by handlers this turn, re-added to the ring in one batch. */
  private readonly returned: Int32Array;
  private returnedCount = 0;

  // Loop state.
  private readonly scheduler: LoopScheduler;
  private disposed = false;
  private disposing: Promise<void> | undefined;

  // Counters.
  private accepted = 0;
  private connected = 0;
  private closedCount = 0;
  private bytesIn = 0;
  /** The pending check for quiet receive memory to give back (see scheduleReceiveTrim). */
  private receiveTrim: ReturnType<typeof setTimeout> | undefined = undefined;
  /** bytesIn when the receive memory was last given back (nothing received since: nothing to give). */
  private bytesInAtTrim = 0;
  /** Times the receive buffers' memory was given back to the kernel while quiet. */
  receiveTrims = 0;
  private bytesOut = 0;
  private turns = 0;
  private recvBufferStalls = 0;
  /** recvBufferStalls when the ring last considered growing. */
  private stallsSeen = 0;
  private cqOverflows = 0;
  private refusedAccepts = 0;

  constructor(options: UringTransportOptions = {}) {
    // Defaults (TRANSPORT_DEFAULTS) and range checks shared by every backend, before allocating.
    const { maxConnections, initialConnections, recvBufferSize, recvBufferCount, sendChunkSize,
      sendChunkCount } = resolveTransportSizing(options);
    const recvBufferCountMax = options.recvBufferCountMax ?? Math.max(recvBufferCount, 1024);
    if (!(Number.isInteger(recvBufferCountMax) && recvBufferCountMax >= recvBufferCount &&
      recvBufferCountMax <= 32768 && (recvBufferCountMax & (recvBufferCountMax - 1)) === 0)) {
      throw new UsageError(ErrorCode.BAD_OPTION,
        `recvBufferCountMax must be a power of two from recvBufferCount to 32768, got ${recvBufferCountMax}`);
    }
    const memory = { node: options.node, hugepages: options.hugepages ?? "auto" } as const;
    // Per-connection state starts small and doubles as slots are used (grown-array.ts).
    const initialSlots = initialConnections;
    this.table = new ConnectionTable(initialSlots, maxConnections, ud.GENERATION_MASK,
      (slots) => this.growSlots(slots));
    this.calls = new HandlerCalls(new HandlerErrors(options.onHandlerError),
      (conn) => this.close(conn, CloseMode.Abort));
    this.scheduler = new LoopScheduler({
      turn: () => this.turn(),
      hasPendingSubmissions: () => this.ring.pendingSubmissions() > 0,
      park: () => {
        this.park.park();
        this.scheduleReceiveTrim();
      },
    }, options.spinMicros ?? 50);
    this.zeroCopyThreshold = options.zeroCopyThreshold ?? Infinity;

    this.ring = new UringRing({ entries: options.ringEntries ?? 4096, cqEntries: options.cqEntries,
      deferTaskrun: options.deferTaskrun ?? false });
    this.sqe = new SqeWriter(this.ring);
    const cleanup: (() => void)[] = [() => this.ring.close()];
    try {
      // Room for the largest ring; pages are touched only as buffers join it, and sparsely
      // (a 16-byte message touches one page of its 32 KiB buffer): no THP, which would make
      // every buffer touched cost 2 MiB resident (measured: 4 MiB for 5,000 handshakes).
      const recvMemory = { ...memory, hugepages: memory.hugepages === "auto" ? "hugetlb" : memory.hugepages } as const;
      this.recvRegion = MemoryRegion.allocate(recvBufferCountMax * recvBufferSize, recvMemory);
      cleanup.push(() => this.recvRegion.free());
      this.buffers = new ProvidedBufferRing(this.ring, RECV_BUFFER_GROUP, recvBufferCountMax,
        recvBufferCount, recvBufferSize, this.recvRegion);
      cleanup.push(() => this.buffers.close());
      this.sends = new ConnectionSends(initialSlots, maxConnections, sendChunkSize,
        sendChunkCount, memory, options.node);
      cleanup.push(() => this.sends.destroy());
      this.front = new SendFront(this.table, this.sends, (conn) => this.markDirty(conn));
      this.sockaddrs = MemoryRegion.allocate(maxConnections * SOCKADDR_IN_SIZE,
        { hugepages: "off", node: options.node });
      cleanup.push(() => this.sockaddrs.free());
      this.park = new EventfdPark(this.ring, this.scheduler.wake);
    } catch (error) {
      for (const undo of cleanup.reverse()) undo();
      throw error;
    }
    this.held = new HeldBuffers(recvBufferCountMax, initialSlots);
    this.dirty = new Int32Array(initialSlots);
    this.zeroCopyResults = new Int32Array(initialSlots);
    this.returned = new Int32Array(recvBufferCountMax);
  }

  /** Ring set-up facts for diagnostics: flags the kernel accepted, where the calls come from. */
  get ringInfo() {
    return {
      flags: this.ring.flags, features: this.ring.features,
      deferTaskrun: this.ring.deferTaskrun, sqEntries: this.ring.sqEntries,
      cqEntries: this.ring.cqEntries,
    };
  }

  // ---------------------------------------------------------------- listeners

  listen(options: ListenOptions, handler: TransportHandler): number {
    this.assertLive();
    checkListenAddress(options.hostname ?? "0.0.0.0", options.port);
    const { fd, port } = openListener(options.hostname ?? "0.0.0.0", options.port,
      options.backlog ?? 4096, options.reusePort ?? false);
    const id = this.listeners.add(fd, port, handler);
    this.armAccept(id);
    this.scheduler.scheduleFlush();
    return id;
  }

  listenerPort(listener: number): number {
    return this.listeners.port(listener);
  }

  closeListener(listener: number): void {
    if (!this.listeners.stopAccepting(listener)) return;
    this.reserveSqes(2); // a link must not be split across two submissions
    const sqe = this.takeSqe();
    // Cancel the multishot accept, then close the socket once the cancel has run.
    this.sqe.prepCancel(sqe, listener, ud.userHigh(ud.OP_ACCEPT, 0), -1, 0,
      listener, ud.userHigh(ud.OP_LISTENER_CANCEL, 0));
    this.sqe.setFlags(sqe, abi.IOSQE_IO_HARDLINK); // close even when nothing was cancelled
    this.sqe.prepClose(this.takeSqe(), this.listeners.fd(listener), listener,
      ud.userHigh(ud.OP_LISTENER_CLOSE, 0));
    this.scheduler.scheduleFlush();
  }

  private armAccept(listener: number): void {
    this.sqe.prepMultishotAccept(this.takeSqe(), this.listeners.fd(listener), SOCK_CLOEXEC,
      listener, ud.userHigh(ud.OP_ACCEPT, 0));
  }

  // ---------------------------------------------------------------- connections

  connect(host: string, port: number, handler: TransportHandler): number {
    this.assertLive();
    // Everything that can throw comes before a slot or a descriptor is taken.
    checkConnectAddress(host, port);
    const peer = endpointOf(host, port);
    const conn = this.table.allocate();
    if (conn < 0) return -EMFILE;
    let fd: number;
    try {
      fd = tcpSocket();
    } catch (error) {
      this.table.unallocate(conn);
      throw error;
    }
    this.table.open(conn, fd, -1, handler, CONNECTING, peer);
    const offset = conn * SOCKADDR_IN_SIZE;
    writeSockaddrIn(this.sockaddrs.viewRange(offset, offset + SOCKADDR_IN_SIZE), 0, host, port);
    this.sqe.prepConnect(this.takeSqe(), fd, this.sockaddrs.pointer + offset, SOCKADDR_IN_SIZE,
      conn, ud.userHigh(ud.OP_CONNECT, this.table.generations[conn]));
    this.table.pendingOps[conn]++;
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
    if (table.states[conn] !== OPEN || (table.flags[conn] & PAUSED) !== 0) return;
    table.flags[conn] |= PAUSED;
    if ((table.flags[conn] & RECV_ARMED) === 0) return;
    // Stop the multishot receive so a paused peer cannot drain the shared buffer ring; what
    // arrives before the cancel lands is held and delivered on resume.
    const generation = table.generations[conn];
    this.sqe.prepCancel(this.takeSqe(), conn, ud.userHigh(ud.OP_RECV, generation),
      -1, 0, conn, ud.userHigh(ud.OP_CANCEL, generation));
    table.pendingOps[conn]++;
    this.scheduler.scheduleFlush();
  }

  resume(conn: number): void {
    const table = this.table;
    if ((table.flags[conn] & PAUSED) === 0) return;
    table.flags[conn] &= ~PAUSED;
    if (table.states[conn] !== OPEN) return;
    this.markDirty(conn); // the flush step delivers held buffers and re-arms the receive
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
    table.states[conn] = CLOSING;
    if (this.bufferedAmount(conn) === 0) {
      this.teardown(conn, 0);
    } else {
      this.markDirty(conn);
    }
  }

  remoteAddress(conn: number): string {
    return this.table.remoteAddress(conn);
  }

  /** The connection table doubled to `slots`: this backend's own per-slot state follows. */
  private growSlots(slots: number): void {
    this.dirty = grown(this.dirty, slots);
    this.zeroCopyResults = grown(this.zeroCopyResults, slots);
    this.held.grow(slots);
    this.sends.grow(slots);
  }

  private armRecv(conn: number): void {
    const table = this.table;
    this.sqe.prepRecvMultishot(this.takeSqe(), table.fds[conn], RECV_BUFFER_GROUP, conn,
      ud.userHigh(ud.OP_RECV, table.generations[conn]));
    table.flags[conn] |= RECV_ARMED;
    table.pendingOps[conn]++;
  }

  /** Cancel whatever is in flight on the socket, then CLOSE it; onClose when all report. */
  private teardown(conn: number, reason: number): void {
    const table = this.table;
    if (!table.startTeardown(conn, reason)) return;
    // Nothing beyond the send in flight will be sent now: its memory is free for others.
    this.sends.dropUnsent(conn);
    const generation = table.generations[conn];
    if (table.pendingOps[conn] > 0) {
      // Both SQEs of the link in this submission: submitted alone, the cancel could run
      // after the CLOSE, fail with EBADF, and leave the connection in teardown for good.
      this.reserveSqes(2);
      const cancel = this.takeSqe();
      this.sqe.prepCancel(cancel, 0, 0, table.fds[conn],
        abi.IORING_ASYNC_CANCEL_FD | abi.IORING_ASYNC_CANCEL_ALL,
        conn, ud.userHigh(ud.OP_CANCEL, generation));
      this.sqe.setFlags(cancel, abi.IOSQE_IO_HARDLINK); // the close runs whatever the cancel found
      table.pendingOps[conn]++;
    }
    this.sqe.prepClose(this.takeSqe(), table.fds[conn], conn, ud.userHigh(ud.OP_CLOSE, generation));
    table.pendingOps[conn]++;
    this.scheduler.scheduleFlush();
  }

  /** When the teardown of `conn` has nothing left in flight: release and report onClose. */
  private settle(conn: number): void {
    if (!this.table.settled(conn)) return;
    this.held.release(conn, this.giveBackBuffer);
    this.sends.clear(conn);
    this.closedCount++;
    this.table.finish(conn, this.calls);
  }

  // ---------------------------------------------------------------- the loop

  private takeSqe(): number {
    let sqe = this.ring.getSqe();
    if (sqe < 0) {
      // SQ full: submit what is queued (no wait) and try again.
      this.ring.enter(0, false);
      sqe = this.ring.getSqe();
      assert(sqe >= 0, "SQ still full after submit");
    }
    return sqe;
  }

  /** Make room for `count` SQEs written one after another (the SQEs of one link). */
  private reserveSqes(count: number): void {
    if (this.ring.sqSpace() >= count) return;
    this.ring.enter(0, false);
    assert(this.ring.sqSpace() >= count, "SQ still full after submit");
  }

  private markDirty(conn: number): void {
    const flags = this.table.flags;
    if ((flags[conn] & DIRTY) !== 0) return;
    flags[conn] |= DIRTY;
    this.dirty[this.dirtyCount++] = conn;
    this.scheduler.scheduleFlush();
  }

  /**
   * One turn: submit + reap in one io_uring_enter, dispatch every completion from the CQ,
   * publish returned buffers, queue sends of connections that wrote. Returns completions seen.
   */
  private turn(): number {
    this.flushConnections();
    const entered = this.ring.enter(0, true);
    if (entered < 0 && entered !== -EINTR && entered !== -EAGAIN) {
      throw new Error(`io_uring_enter failed: ${entered}`);
    }
    if (this.ring.cqOverflowPending()) this.cqOverflows++;
    const seen = this.reap();
    this.flushConnections();
    for (let i = 0; i < this.returnedCount; i++) this.buffers.add(this.returned[i]);
    this.returnedCount = 0;
    this.buffers.publish();
    this.feedStarving();
    this.turns++;
    this.calls.report();
    return seen;
  }

  private reap(): number {
    const ready = this.ring.readyCount();
    if (ready === 0) return 0;
    const words = this.ring.cqeWords;
    const results = this.ring.cqeResults;
    const mask = this.ring.cqMask;
    let head = this.ring.cqHead();
    for (let i = 0; i < ready; i++, head++) {
      const base = (head & mask) << 2;
      this.complete(words[base], words[base + 1], results[base + 2], words[base + 3]);
    }
    this.ring.advanceCq(ready);
    return ready;
  }

  private complete(slot: number, high: number, result: number, cqeFlags: number): void {
    switch (ud.opOf(high)) {
      case ud.OP_RECV:
        return this.recvCallback(slot, high, result, cqeFlags);
      case ud.OP_SEND:
        return this.sendCallback(slot, high, result);
      case ud.OP_SEND_ZC:
        return this.zeroCopyCallback(slot, high, result, cqeFlags);
      case ud.OP_ACCEPT:
        return this.acceptCallback(slot, result, cqeFlags);
      case ud.OP_CONNECT:
        return this.connectCallback(slot, high, result);
      case ud.OP_CLOSE:
      case ud.OP_CANCEL:
        return this.opDone(slot, high);
      case ud.OP_LISTENER_CLOSE:
        this.listeners.closed(slot); // closed by the ring: never close this number again
        return;
      default:
        return; // OP_WAKE, OP_LISTENER_CANCEL: nothing to do
    }
  }

  private isCurrent(conn: number, high: number): boolean {
    return this.table.isCurrent(conn, ud.generationOf(high));
  }

  private opDone(conn: number, high: number): void {
    if (!this.isCurrent(conn, high)) return;
    this.table.pendingOps[conn]--;
    this.settle(conn);
  }

  private acceptCallback(listener: number, result: number, cqeFlags: number): void {
    const rearm = (cqeFlags & abi.IORING_CQE_F_MORE) === 0 && this.listeners.isAccepting(listener);
    if (result >= 0) {
      const handler = this.listeners.handler(listener);
      const conn = handler === undefined ? -1 : this.table.allocate();
      if (conn < 0 || handler === undefined) {
        this.refusedAccepts++;
        libc().close(result); // over maxConnections: the peer sees the connection closed
      } else {
        this.accepted++;
        // The peer is read now: after a reset the kernel no longer knows it, and onClose may ask.
        this.table.open(conn, result, listener, handler, OPEN, peerEndpoint(result));
        this.armRecv(conn);
        this.calls.opened(handler, conn, listener);
      }
    } else if (result === -EMFILE || result === -ENFILE || result === -ENOMEM ||
      result === -ENOBUFS) {
      // Out of descriptors or memory: retry after a pause instead of spinning on errors.
      if (rearm) this.rearmAcceptLater(listener);
      return;
    }
    if (rearm && result !== -ECANCELED) this.armAccept(listener);
  }

  /** Its own method, so the accept path itself allocates no closure per connection. */
  private rearmAcceptLater(listener: number): void {
    setTimeout(() => {
      if (this.listeners.isAccepting(listener) && !this.disposed) {
        this.armAccept(listener);
        this.scheduler.scheduleFlush();
      }
    }, 50);
  }

  private connectCallback(conn: number, high: number, result: number): void {
    if (!this.isCurrent(conn, high)) return;
    const table = this.table;
    table.pendingOps[conn]--;
    if (table.states[conn] !== CONNECTING) {
      this.settle(conn);
      return;
    }
    if (result < 0) {
      this.teardown(conn, result);
      return;
    }
    this.connected++;
    table.states[conn] = OPEN;
    this.armRecv(conn);
    this.calls.opened(table.handlers[conn]!, conn, -1);
    if (this.bufferedAmount(conn) > 0) this.markDirty(conn);
  }

  private recvCallback(conn: number, high: number, result: number, cqeFlags: number): void {
    const hasBuffer = (cqeFlags & abi.IORING_CQE_F_BUFFER) !== 0;
    const bid = cqeFlags >>> abi.IORING_CQE_BUFFER_SHIFT;
    if (hasBuffer) this.buffers.taken();
    const more = (cqeFlags & abi.IORING_CQE_F_MORE) !== 0;
    if (!this.isCurrent(conn, high)) {
      if (hasBuffer) this.buffers.add(bid);
      return;
    }
    const table = this.table;
    if (!more) {
      table.flags[conn] &= ~RECV_ARMED;
      table.pendingOps[conn]--;
    }
    const state = table.states[conn];
    if (result > 0) {
      this.bytesIn += result;
      if (state === TEARDOWN || !hasBuffer) {
        if (hasBuffer) this.buffers.add(bid);
      } else if ((table.flags[conn] & PAUSED) !== 0 || this.held.has(conn)) {
        this.held.hold(conn, bid, result);
      } else {
        this.deliver(conn, bid, result);
      }
      if (!more && table.states[conn] !== TEARDOWN) this.rearmRecv(conn);
    } else if (result === 0 || result === -ECONNABORTED) {
      if (hasBuffer) this.buffers.add(bid);
      this.endOfStream(conn);
    } else if (result === -ENOBUFS) {
      this.recvBufferStalls++;
      if (state !== TEARDOWN) this.starve(conn);
    } else if (result === -ECANCELED) {
      // A pause's cancel landed. If resume() ran before it did, the receive was still armed
      // then, so nothing re-armed it: do it now (a no-op while paused or tearing down).
      if (!more) this.rearmRecv(conn);
    } else {
      if (hasBuffer) this.buffers.add(bid);
      this.teardown(conn, result); // ECONNRESET, ETIMEDOUT...
    }
    this.settle(conn);
  }

  /**
   * After a second parked with nothing received, the receive buffers' pages go back to the
   * kernel (madvise DONTNEED; the next receive faults fresh ones in): a burst that grew the
   * ring, or 5,000 handshakes that touched every buffer, leaves no resident memory behind
   * once the server is quiet. Safe only when every buffer sits in the ring (none held, lent
   * or waiting to be returned); the kernel fills buffers in task work on this thread (never
   * SQPOLL or io-wq here), so never while madvise runs, and a buffer zapped before it is
   * filled just faults a fresh page in. Not for hugetlb regions (a re-fault could find the
   * administrator's pool empty, and those pages are reserved whether we use them or not).
   */
  private scheduleReceiveTrim(): void {
    if (this.receiveTrim !== undefined || this.bytesIn === this.bytesInAtTrim || this.disposed) return;
    if (this.recvRegion.kind === "hugetlb") return;
    const bytesInAtPark = this.bytesIn;
    this.receiveTrim = setTimeout(() => {
      this.receiveTrim = undefined;
      if (this.disposed) return;
      // Something arrived meanwhile: not quiet yet; the next park looks again.
      if (this.bytesIn !== bytesInAtPark || !this.park.parked) return;
      const buffers = this.buffers;
      if (buffers.availableCount() !== buffers.count || this.returnedCount > 0) return;
      this.recvRegion.release(0, buffers.count * buffers.bufferSize);
      this.bytesInAtTrim = this.bytesIn;
      this.receiveTrims++;
    }, RECEIVE_TRIM_AFTER_MS);
    this.receiveTrim.unref?.();
  }

  private deliver(conn: number, bid: number, length: number): void {
    this.calls.data(this.table.handlers[conn]!, conn, this.buffers.views[bid], 0, length);
    this.returned[this.returnedCount++] = bid;
  }

  private deliverHeld(conn: number): void {
    const table = this.table;
    while (this.held.has(conn) && (table.flags[conn] & PAUSED) === 0 &&
      table.states[conn] !== TEARDOWN && table.states[conn] !== FREE) {
      const bid = this.held.take(conn);
      this.deliver(conn, bid, this.held.lengthOf(bid));
    }
  }

  private readonly giveBackBuffer = (bid: number): void => this.buffers.add(bid);

  private rearmRecv(conn: number): void {
    const table = this.table;
    const state = table.states[conn];
    if ((table.flags[conn] & (RECV_ARMED | EOF_SEEN | PAUSED)) !== 0) return;
    if (state !== OPEN && state !== CLOSING) return;
    this.armRecv(conn);
  }

  private starve(conn: number): void {
    const flags = this.table.flags;
    if ((flags[conn] & WANTS_BUFFERS) !== 0) return;
    flags[conn] |= WANTS_BUFFERS;
    this.starving.push(conn);
  }

  /**
   * Re-arm receives that ran out of buffers, oldest first, as far as published buffers
   * allow. After a turn in which the ring ran dry, it doubles (up to its cap): a fixed
   * ring left large messages queueing for buffers for seconds under load.
   */
  private feedStarving(): void {
    if (this.stallsSeen !== this.recvBufferStalls) {
      this.stallsSeen = this.recvBufferStalls;
      if (this.buffers.count < this.buffers.capacity) this.buffers.grow(this.buffers.count * 2);
    }
    const flags = this.table.flags;
    while (this.starving.size > 0 && this.buffers.availableCount() > 0) {
      const conn = this.starving.shift();
      if ((flags[conn] & WANTS_BUFFERS) === 0) continue; // closed meanwhile
      flags[conn] &= ~WANTS_BUFFERS;
      this.rearmRecv(conn);
    }
  }

  private endOfStream(conn: number): void {
    const table = this.table;
    const state = table.states[conn];
    if ((table.flags[conn] & EOF_SEEN) !== 0 || state === TEARDOWN) return;
    table.flags[conn] |= EOF_SEEN;
    if (state === OPEN) this.calls.ended(table.handlers[conn]!, conn); // a throw aborts it
    this.close(conn, CloseMode.Graceful);
  }

  /**
   * SEND_ZC posts the result with F_MORE, then a NOTIF CQE once the kernel no longer reads
   * our pages: only then may the chunks go back to the pool.
   */
  private zeroCopyCallback(conn: number, high: number, result: number, cqeFlags: number): void {
    if ((cqeFlags & abi.IORING_CQE_F_NOTIF) !== 0) {
      this.sendCallback(conn, high, this.zeroCopyResults[conn]);
      return;
    }
    if ((cqeFlags & abi.IORING_CQE_F_MORE) !== 0) {
      this.zeroCopyResults[conn] = result; // wait for the notification
      return;
    }
    this.sendCallback(conn, high, result); // failed before pinning anything: no notification
  }

  private sendCallback(conn: number, high: number, result: number): void {
    if (!this.isCurrent(conn, high)) return;
    const table = this.table;
    table.pendingOps[conn]--;
    const state = table.states[conn];
    if (state === TEARDOWN) {
      this.sends.abandonInFlight(conn);
      this.settle(conn);
      return;
    }
    if (result < 0) {
      this.sends.abandonInFlight(conn);
      this.teardown(conn, result === -ECANCELED ? -EPIPE : result);
      return;
    }
    this.bytesOut += result;
    if (!this.sends.complete(conn, result)) {
      this.markDirty(conn);
      return;
    }
    if (state === CLOSING) {
      this.teardown(conn, 0);
      return;
    }
    this.calls.drained(table.handlers[conn]!, conn);
  }

  /** For each connection that wrote or resumed: deliver held data, submit its next send. */
  private flushConnections(): void {
    const table = this.table;
    while (this.dirtyCount > 0) {
      const conn = this.dirty[--this.dirtyCount];
      table.flags[conn] &= ~DIRTY;
      const state = table.states[conn];
      if (state === FREE || state === TEARDOWN) continue;
      if (this.held.has(conn)) this.deliverHeld(conn);
      this.rearmRecv(conn);
      if (state === CONNECTING) continue;
      const source = this.sends.nextSource(conn);
      if (source === null) continue;
      const kind = source.prepare(conn, this.sends.wantsUnitEnd(conn));
      if (kind === 0) continue;
      const sqe = this.takeSqe();
      const zeroCopy = source.sendLength >= this.zeroCopyThreshold;
      const high = ud.userHigh(zeroCopy ? ud.OP_SEND_ZC : ud.OP_SEND, table.generations[conn]);
      const msgFlags = abi.MSG_NOSIGNAL | abi.MSG_WAITALL;
      const fd = table.fds[conn];
      const address = source.sendAddress;
      if (kind === 1) {
        this.sqe.prepSend(sqe, fd, address, source.sendLength, msgFlags, conn, high);
      } else {
        this.sqe.prepSendmsg(sqe, fd, address, msgFlags, conn, high);
      }
      if (zeroCopy) {
        this.sqe.setOpcode(sqe, kind === 1 ? abi.IORING_OP_SEND_ZC : abi.IORING_OP_SENDMSG_ZC);
      }
      table.pendingOps[conn]++;
    }
  }

  // ---------------------------------------------------------------- stats and disposal

  stats(): TransportStats {
    const recvRegionKind: RegionKind = this.recvRegion.freed ? "plain" : this.recvRegion.kind;
    const recvStats = {
      slotSize: this.buffers.bufferSize, capacity: this.buffers.count,
      inUse: this.buffers.inUse(), highWater: this.buffers.highWater(),
      regionKind: recvRegionKind, node: this.recvRegion.node,
      bytes: this.buffers.count * this.buffers.bufferSize,
    };
    const pool = this.sends.pool;
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
      recvBufferStalls: this.recvBufferStalls,
      cqOverflows: this.cqOverflows,
      recvBuffers: recvStats,
      loansOut: this.sends.loansOut,
      sendBuffers: pool.destroyed ? { ...recvStats, inUse: 0 } : pool.stats(),
      regionKind: recvRegionKind,
      node: this.recvRegion.node,
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
    // Called from a handler, we are inside a turn that is still walking the CQ: neither
    // drive the ring (a nested turn would reap the same completions) nor unmap anything
    // until that turn has ended.
    if (this.scheduler.turning) await new Promise((resolve) => setImmediate(resolve));
    // Drive the ring until every connection reported (bounded: a stuck op must not hang us).
    const deadline = performance.now() + 2000;
    while (table.live > 0 && performance.now() < deadline) {
      if (this.scheduler.runTurn() === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    this.disposed = true;
    clearTimeout(this.receiveTrim);
    this.scheduler.stop();
    this.park.close();
    this.buffers.close();
    this.ring.close(); // closing the ring cancels anything left and closes listener sockets
    for (const fd of this.listeners.openFds()) libc().close(fd);
    this.freeMemory();
  }

  closeNow(): void {
    if (this.disposed) return;
    this.disposed = true;
    clearTimeout(this.receiveTrim);
    this.scheduler.stop();
    const table = this.table;
    for (let conn = 0; conn < table.capacity; conn++) {
      if (table.states[conn] !== FREE && table.fds[conn] >= 0) libc().close(table.fds[conn]);
    }
    for (const fd of this.listeners.openFds()) libc().close(fd);
    this.park.close();
    this.buffers.close();
    this.ring.close(); // cancels every pending request: the sockets really close now
    this.freeMemory();
  }

  private freeMemory(): void {
    this.sends.destroy();
    this.recvRegion.free();
    this.sockaddrs.free();
  }

  private assertLive(): void {
    if (this.disposed || this.disposing !== undefined) {
      throw new UsageError(ErrorCode.DISPOSED, "the transport was disposed");
    }
  }
}
