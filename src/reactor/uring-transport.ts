/**
 * The io_uring backend of the Transport contract. One ring per transport (one per thread):
 * multishot ACCEPT per listener, one multishot RECV per connection selecting buffers from a
 * provided-buffer ring (an idle connection owns no receive buffer), sends from pool chunks
 * (SEND, or SENDMSG over several chunks), CLOSE/ASYNC_CANCEL for teardown, CONNECT for the
 * client side. Each loop turn enters the kernel once: submit everything queued, run task
 * work, then dispatch the completions from the CQ in place.
 *
 * Connection state is struct-of-arrays indexed by slot; nothing is allocated per message.
 */
import {
  EAGAIN, ECANCELED, ECONNABORTED, EINTR, EMFILE, ENFILE, ENOBUFS, ENOMEM, EPIPE,
} from "../api/errno.ts";
import { checkConnectAddress, checkListenAddress } from "../api/address.ts";
import { assert, ErrorCode, UsageError } from "../api/errors.ts";
import { HandlerErrors } from "../api/handler-errors.ts";
import type { RegionKind } from "../api/pool.ts";
import {
  checkSendRange, CloseMode, resolveTransportSizing, type Lender, type ListenOptions,
  type Transport, type TransportHandler, type TransportOptions, type TransportStats,
} from "../api/transport.ts";
import * as abi from "../ffi/io-uring-abi.ts";
import { libc, SOCK_CLOEXEC } from "../ffi/libc.ts";
import { BytePool } from "../pool/byte-pool.ts";
import { MemoryRegion } from "../pool/region.ts";
import { grown, nextCapacity } from "../pool/grown-array.ts";
import { SegmentedViews } from "../pool/segmented-views.ts";
import { EventfdPark } from "./eventfd-park.ts";
import { ConnectionFifo } from "./connection-fifo.ts";
import { HeldBuffers } from "./held-buffers.ts";
import { LoopScheduler } from "./loop-scheduler.ts";
import {
  LOAN_HEADER_SIZE, LOANS_MAX, MESSAGE_AREA_SIZE, MESSAGE_SEGMENT_CONNECTIONS, SendQueues,
} from "./send-queues.ts";
import {
  endpointOf, formatEndpoint, openListener, peerEndpoint, SOCKADDR_IN_SIZE, setResetOnClose,
  tcpSocket, writeSockaddrIn,
} from "./sockets.ts";
import { ProvidedBufferRing } from "./uring-buf-ring.ts";
import { UringRing } from "./uring-ring.ts";
import { SqeWriter } from "./uring-sqe.ts";
import * as ud from "./user-data.ts";

/** Options of the io_uring backend beyond the common TransportOptions. */
export interface UringTransportOptions extends TransportOptions {
  /** SQ entries (power of two); default 4096. */
  ringEntries?: number;
  /** CQ entries; default 4 × ringEntries. Small values exercise CQ overflow in tests. */
  cqEntries?: number;
  /** Use SINGLE_ISSUER | DEFER_TASKRUN where the kernel has them (6.1+); default true. */
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

// Connection states.
const FREE = 0;
const CONNECTING = 1;
const OPEN = 2;
/** close(Graceful) asked: waiting for the send queue to drain. */
const CLOSING = 3;
/** Cancel + CLOSE submitted: waiting for every in-flight operation to report. */
const TEARDOWN = 4;

// Connection flag bits.
const RECV_ARMED = 1;
const PAUSED = 2;
const WANTS_BUFFERS = 4;
const DIRTY = 8;
const EOF_SEEN = 16;

const RECV_BUFFER_GROUP = 0;
/** How often an idle send pool is offered to give its pages back (BytePool.trimIfIdle). */
const SEND_TRIM_INTERVAL_MS = 1000;

export class UringTransport implements Transport {
  readonly backend = "io_uring" as const;

  private readonly ring: UringRing;
  private readonly sqe: SqeWriter;
  private readonly buffers: ProvidedBufferRing;
  private readonly recvRegion: MemoryRegion;
  private readonly sendPool: BytePool;
  private readonly metaRegion: MemoryRegion;
  private readonly sockaddrBase: number;
  private readonly queues: SendQueues;
  private readonly urgent: SendQueues;
  private readonly park: EventfdPark;
  private readonly maxConnections: number;
  /** Slots the per-connection arrays hold now (grows up to maxConnections). */
  private slotCapacity: number;
  private readonly zeroCopyThreshold: number;
  /** Result of a zero-copy send, kept until its notification says the pages are free. */
  private zeroCopyResults: Int32Array;

  // Per-connection state (struct of arrays).
  private fds: Int32Array;
  private states: Uint8Array;
  private flags: Uint8Array;
  private generations: Uint32Array;
  /** Operations in flight per connection; the slot is freed when it drops to 0 in TEARDOWN. */
  private pendingOps: Uint8Array;
  private listenerOf: Int32Array;
  private closeReasons: Int32Array;
  /** The peer as an endpoint number (sockets.ts), kept from open until onClose returns. */
  private peers: Float64Array;
  /** The connection whose onClose runs now: its slot is free, its address still readable. */
  private closingConn = -1;
  private handlers: (TransportHandler | undefined)[];
  private freeSlots: Int32Array;
  private freeSlotCount: number;
  /** Received buffers held while a connection is paused. */
  private readonly held: HeldBuffers;

  // Work lists (stacks of connection ids, bounded by maxConnections).
  private dirty: Int32Array;
  private dirtyCount = 0;
  /** Connections whose receive ran out of buffers, in the order they did. */
  private readonly starving = new ConnectionFifo();
  /** Buffers handed back by handlers this turn, re-added to the ring in one batch. */
  private readonly returned: Int32Array;
  private returnedCount = 0;

  // Listeners.
  private readonly listenerFds: number[] = [];
  private readonly listenerPorts: number[] = [];
  private readonly listenerHandlers: (TransportHandler | undefined)[] = [];
  private readonly listenerOpen: boolean[] = [];

  // Loop state.
  private readonly scheduler: LoopScheduler;
  private disposed = false;
  private disposing: Promise<void> | undefined;
  private readonly trimTimer: ReturnType<typeof setInterval>;
  /** Throws from handlers, reported when the turn is over (TransportOptions.onHandlerError). */
  private readonly handlerErrors: HandlerErrors;

  // Counters.
  private connections = 0;
  private accepted = 0;
  private connected = 0;
  private closedCount = 0;
  private bytesIn = 0;
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
    this.handlerErrors = new HandlerErrors(options.onHandlerError);
    const recvBufferCountMax = options.recvBufferCountMax ?? Math.max(recvBufferCount, 1024);
    if (!(Number.isInteger(recvBufferCountMax) && recvBufferCountMax >= recvBufferCount &&
      recvBufferCountMax <= 32768 && (recvBufferCountMax & (recvBufferCountMax - 1)) === 0)) {
      throw new UsageError(ErrorCode.BAD_OPTION,
        `recvBufferCountMax must be a power of two from recvBufferCount to 32768, got ${recvBufferCountMax}`);
    }
    const memory = { node: options.node, hugepages: options.hugepages ?? "auto" } as const;
    this.maxConnections = maxConnections;
    // Per-connection state starts small and doubles as slots are used (grown-array.ts).
    const initialSlots = initialConnections;
    this.scheduler = new LoopScheduler({
      turn: () => this.turn(),
      hasPendingSubmissions: () => this.ring.pendingSubmissions() > 0,
      park: () => this.park.park(),
    }, options.spinMicros ?? 50);
    this.zeroCopyThreshold = options.zeroCopyThreshold ?? Infinity;

    this.ring = new UringRing({ entries: options.ringEntries ?? 4096, cqEntries: options.cqEntries,
      deferTaskrun: options.deferTaskrun });
    this.sqe = new SqeWriter(this.ring);
    const cleanup: (() => void)[] = [() => this.ring.close()];
    try {
      // Room for the largest ring; pages are touched only as buffers join it.
      this.recvRegion = MemoryRegion.allocate(recvBufferCountMax * recvBufferSize, memory);
      cleanup.push(() => this.recvRegion.free());
      this.buffers = new ProvidedBufferRing(this.ring, RECV_BUFFER_GROUP, recvBufferCountMax,
        recvBufferCount, recvBufferSize, this.recvRegion);
      cleanup.push(() => this.buffers.close());
      this.sendPool = new BytePool(sendChunkSize, sendChunkCount, memory);
      cleanup.push(() => this.sendPool.destroy());
      // Native scratch the kernel reads after submission: per connection a msghdr + iovecs
      // for SENDMSG and a sockaddr for CONNECT, and the loans' frame headers. Touched and
      // viewed lazily, so it costs (in RSS and in JSC's heap accounting) only what is used.
      const messageBytes = maxConnections * MESSAGE_AREA_SIZE;
      const sockaddrBytes = maxConnections * SOCKADDR_IN_SIZE;
      const loanHeaderBytes = LOANS_MAX * LOAN_HEADER_SIZE;
      this.metaRegion = MemoryRegion.allocate(messageBytes + sockaddrBytes + loanHeaderBytes,
        { hugepages: "off", node: options.node });
      cleanup.push(() => this.metaRegion.free());
      const messageAreas = new SegmentedViews(this.metaRegion, messageBytes,
        MESSAGE_SEGMENT_CONNECTIONS * MESSAGE_AREA_SIZE);
      const loanHeadersAt = messageBytes + sockaddrBytes;
      const loanHeaders = {
        address: this.metaRegion.pointer + loanHeadersAt,
        view: this.metaRegion.viewRange(loanHeadersAt, loanHeadersAt + loanHeaderBytes),
      };
      this.queues = new SendQueues(initialSlots, this.sendPool, this.sendPool.slotSize,
        sendChunkCount, messageAreas, loanHeaders, LOANS_MAX);
      // sendUrgent's bytes (pongs, pings): their own chains in the same chunks, no loans.
      // One send per connection is in flight, so both may use its message area.
      this.urgent = new SendQueues(initialSlots, this.sendPool, this.sendPool.slotSize,
        sendChunkCount, messageAreas, loanHeaders, 0);
      this.sockaddrBase = messageBytes;
      this.park = new EventfdPark(this.ring, this.scheduler.wake);
    } catch (error) {
      for (const undo of cleanup.reverse()) undo();
      throw error;
    }

    // Send memory left resident by a burst goes back to the system once the pool idles.
    this.trimTimer = setInterval(() => this.sendPool.trimIfIdle(), SEND_TRIM_INTERVAL_MS);
    this.trimTimer.unref();
    this.slotCapacity = initialSlots;
    this.fds = new Int32Array(initialSlots).fill(-1);
    this.states = new Uint8Array(initialSlots);
    this.flags = new Uint8Array(initialSlots);
    this.generations = new Uint32Array(initialSlots);
    this.pendingOps = new Uint8Array(initialSlots);
    this.listenerOf = new Int32Array(initialSlots).fill(-1);
    this.closeReasons = new Int32Array(initialSlots);
    this.peers = new Float64Array(initialSlots).fill(-1);
    this.handlers = new Array<TransportHandler | undefined>(initialSlots).fill(undefined);
    this.freeSlots = new Int32Array(initialSlots);
    for (let i = 0; i < initialSlots; i++) this.freeSlots[i] = initialSlots - 1 - i;
    this.freeSlotCount = initialSlots;
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
    const id = this.listenerFds.length;
    this.listenerFds.push(fd);
    this.listenerPorts.push(port);
    this.listenerHandlers.push(handler);
    this.listenerOpen.push(true);
    this.armAccept(id);
    this.scheduler.scheduleFlush();
    return id;
  }

  listenerPort(listener: number): number {
    const port = this.listenerPorts[listener];
    if (port === undefined) throw new UsageError(ErrorCode.NO_LISTENER, "no such listener");
    return port;
  }

  closeListener(listener: number): void {
    if (!this.listenerOpen[listener]) return;
    this.listenerOpen[listener] = false;
    this.reserveSqes(2); // a link must not be split across two submissions
    const sqe = this.takeSqe();
    // Cancel the multishot accept, then close the socket once the cancel has run.
    this.sqe.prepCancel(sqe, listener, ud.userHigh(ud.OP_ACCEPT, 0), -1, 0,
      listener, ud.userHigh(ud.OP_LISTENER_CANCEL, 0));
    this.sqe.setFlags(sqe, abi.IOSQE_IO_HARDLINK); // close even when nothing was cancelled
    this.sqe.prepClose(this.takeSqe(), this.listenerFds[listener], listener,
      ud.userHigh(ud.OP_LISTENER_CLOSE, 0));
    this.scheduler.scheduleFlush();
  }

  private armAccept(listener: number): void {
    this.sqe.prepMultishotAccept(this.takeSqe(), this.listenerFds[listener], SOCK_CLOEXEC,
      listener, ud.userHigh(ud.OP_ACCEPT, 0));
  }

  // ---------------------------------------------------------------- connections

  connect(host: string, port: number, handler: TransportHandler): number {
    this.assertLive();
    // Everything that can throw comes before a slot or a descriptor is taken.
    checkConnectAddress(host, port);
    const peer = endpointOf(host, port);
    const conn = this.allocateSlot();
    if (conn < 0) return -EMFILE;
    let fd: number;
    try {
      fd = tcpSocket();
    } catch (error) {
      this.freeSlots[this.freeSlotCount++] = conn;
      throw error;
    }
    this.openSlot(conn, fd, -1, handler, CONNECTING);
    this.peers[conn] = peer;
    const offset = this.sockaddrBase + conn * SOCKADDR_IN_SIZE;
    writeSockaddrIn(this.metaRegion.viewRange(offset, offset + SOCKADDR_IN_SIZE), 0, host, port);
    this.sqe.prepConnect(this.takeSqe(), fd, this.metaRegion.pointer + offset, SOCKADDR_IN_SIZE,
      conn, ud.userHigh(ud.OP_CONNECT, this.generations[conn]));
    this.pendingOps[conn]++;
    this.scheduler.scheduleFlush();
    return conn;
  }

  send(conn: number, data: Uint8Array, start: number, end: number): number {
    checkSendRange(data, start, end);
    const state = this.states[conn];
    if (state !== OPEN && state !== CONNECTING) return -EPIPE;
    const queued = this.queues.append(conn, data, start, end);
    if (queued > 0) this.markDirty(conn);
    return queued;
  }

  sendUrgent(conn: number, data: Uint8Array, start: number, end: number): number {
    checkSendRange(data, start, end);
    const state = this.states[conn];
    if (state !== OPEN && state !== CONNECTING) return -EPIPE;
    // With nothing queued ahead there is nothing to overtake: the ordinary queue will do.
    const ahead = this.queues.queuedBytes(conn) > 0 || this.urgent.queuedBytes(conn) > 0;
    const queued = ahead ? this.urgent.append(conn, data, start, end)
      : this.queues.append(conn, data, start, end);
    if (queued > 0) this.markDirty(conn);
    return queued;
  }

  sendPair(conn: number, first: Uint8Array, firstStart: number, firstEnd: number,
    second: Uint8Array, secondStart: number, secondEnd: number): number {
    checkSendRange(first, firstStart, firstEnd);
    checkSendRange(second, secondStart, secondEnd);
    const state = this.states[conn];
    if (state !== OPEN && state !== CONNECTING) return -EPIPE;
    const queued = this.queues.appendPair(conn, first, firstStart, firstEnd,
      second, secondStart, secondEnd);
    if (queued > 0) this.markDirty(conn);
    return queued;
  }

  sendLoaned(conn: number, header: Uint8Array, headerStart: number, headerEnd: number,
    payload: Uint8Array, payloadStart: number, payloadEnd: number, payloadAddress: number,
    lender: Lender, token: number): number {
    checkSendRange(header, headerStart, headerEnd);
    checkSendRange(payload, payloadStart, payloadEnd);
    const state = this.states[conn];
    if (state !== OPEN && state !== CONNECTING) return -EPIPE;
    assert(payloadEnd > payloadStart, "a loan of at least one byte");
    const queued = this.queues.appendLoan(conn, header, headerStart, headerEnd, payloadAddress,
      payloadEnd - payloadStart, lender, token);
    if (queued > 0) this.markDirty(conn);
    return queued;
  }

  bufferedAmount(conn: number): number {
    return this.states[conn] === FREE ? 0
      : this.queues.queuedBytes(conn) + this.urgent.queuedBytes(conn);
  }

  pause(conn: number): void {
    if (this.states[conn] !== OPEN || (this.flags[conn] & PAUSED) !== 0) return;
    this.flags[conn] |= PAUSED;
    if ((this.flags[conn] & RECV_ARMED) === 0) return;
    // Stop the multishot receive so a paused peer cannot drain the shared buffer ring; what
    // arrives before the cancel lands is held and delivered on resume.
    this.sqe.prepCancel(this.takeSqe(), conn, ud.userHigh(ud.OP_RECV, this.generations[conn]),
      -1, 0, conn, ud.userHigh(ud.OP_CANCEL, this.generations[conn]));
    this.pendingOps[conn]++;
    this.scheduler.scheduleFlush();
  }

  resume(conn: number): void {
    if ((this.flags[conn] & PAUSED) === 0) return;
    this.flags[conn] &= ~PAUSED;
    if (this.states[conn] !== OPEN) return;
    this.markDirty(conn); // the flush step delivers held buffers and re-arms the receive
  }

  close(conn: number, mode: CloseMode = CloseMode.Graceful): void {
    const state = this.states[conn];
    if (state === FREE || state === TEARDOWN) return;
    if (mode === CloseMode.Abort) {
      setResetOnClose(this.fds[conn]);
      this.teardown(conn, 0);
      return;
    }
    if (state === CLOSING) return;
    this.states[conn] = CLOSING;
    if (this.bufferedAmount(conn) === 0) {
      this.teardown(conn, 0);
    } else {
      this.markDirty(conn);
    }
  }

  remoteAddress(conn: number): string {
    if (this.states[conn] === FREE && conn !== this.closingConn) return "";
    return formatEndpoint(this.peers[conn]);
  }

  private allocateSlot(): number {
    if (this.freeSlotCount === 0) {
      if (this.slotCapacity === this.maxConnections) return -1;
      this.growSlots();
    }
    return this.freeSlots[--this.freeSlotCount];
  }

  /** Every slot is taken: double the per-connection state (up to maxConnections). */
  private growSlots(): void {
    const old = this.slotCapacity;
    const slots = nextCapacity(old, this.maxConnections);
    this.fds = grown(this.fds, slots, -1);
    this.states = grown(this.states, slots);
    this.flags = grown(this.flags, slots);
    this.generations = grown(this.generations, slots);
    this.pendingOps = grown(this.pendingOps, slots);
    this.listenerOf = grown(this.listenerOf, slots, -1);
    this.closeReasons = grown(this.closeReasons, slots);
    this.peers = grown(this.peers, slots, -1);
    for (let conn = old; conn < slots; conn++) this.handlers.push(undefined);
    this.dirty = grown(this.dirty, slots);
    this.zeroCopyResults = grown(this.zeroCopyResults, slots);
    // Only called with no free slot: the new ids, lowest on top.
    this.freeSlots = new Int32Array(slots);
    for (let i = 0; i < slots - old; i++) this.freeSlots[i] = slots - 1 - i;
    this.freeSlotCount = slots - old;
    this.held.grow(slots);
    this.queues.grow(slots);
    this.urgent.grow(slots);
    this.slotCapacity = slots;
  }

  private openSlot(conn: number, fd: number, listener: number, handler: TransportHandler,
    state: number): void {
    assert(this.states[conn] === FREE, "slot reused while in use");
    this.fds[conn] = fd;
    this.states[conn] = state;
    this.flags[conn] = 0;
    this.pendingOps[conn] = 0;
    this.listenerOf[conn] = listener;
    this.closeReasons[conn] = 0;
    this.handlers[conn] = handler;
    this.connections++;
  }

  private armRecv(conn: number): void {
    this.sqe.prepRecvMultishot(this.takeSqe(), this.fds[conn], RECV_BUFFER_GROUP, conn,
      ud.userHigh(ud.OP_RECV, this.generations[conn]));
    this.flags[conn] |= RECV_ARMED;
    this.pendingOps[conn]++;
  }

  /** Cancel whatever is in flight on the socket, then CLOSE it; onClose when all report. */
  private teardown(conn: number, reason: number): void {
    if (this.states[conn] === TEARDOWN) return;
    if (this.closeReasons[conn] === 0) this.closeReasons[conn] = reason;
    this.states[conn] = TEARDOWN;
    // Nothing beyond the send in flight will be sent now: its memory is free for others.
    this.queues.dropUnsent(conn);
    this.urgent.dropUnsent(conn);
    const high = this.generations[conn];
    if (this.pendingOps[conn] > 0) {
      // Both SQEs of the link in this submission: submitted alone, the cancel could run
      // after the CLOSE, fail with EBADF, and leave the connection in teardown for good.
      this.reserveSqes(2);
      const cancel = this.takeSqe();
      this.sqe.prepCancel(cancel, 0, 0, this.fds[conn],
        abi.IORING_ASYNC_CANCEL_FD | abi.IORING_ASYNC_CANCEL_ALL,
        conn, ud.userHigh(ud.OP_CANCEL, high));
      this.sqe.setFlags(cancel, abi.IOSQE_IO_HARDLINK); // the close runs whatever the cancel found
      this.pendingOps[conn]++;
    }
    this.sqe.prepClose(this.takeSqe(), this.fds[conn], conn, ud.userHigh(ud.OP_CLOSE, high));
    this.pendingOps[conn]++;
    this.scheduler.scheduleFlush();
  }

  private finishTeardown(conn: number): void {
    const handler = this.handlers[conn];
    const reason = this.closeReasons[conn];
    this.held.release(conn, this.giveBackBuffer);
    this.queues.clear(conn);
    this.urgent.clear(conn);
    this.states[conn] = FREE;
    this.flags[conn] = 0;
    this.fds[conn] = -1;
    this.handlers[conn] = undefined;
    this.generations[conn] = (this.generations[conn] + 1) & ud.GENERATION_MASK;
    this.connections--;
    this.closedCount++;
    if (handler !== undefined) {
      this.closingConn = conn;
      try {
        handler.onClose(conn, reason);
      } catch (error) {
        this.handlerErrors.add(error, conn); // already gone: nothing to abort
      }
      this.closingConn = -1;
    }
    // Only now may the id be handed out again (a connect() inside onClose takes another).
    this.peers[conn] = -1;
    this.freeSlots[this.freeSlotCount++] = conn;
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
    if ((this.flags[conn] & DIRTY) !== 0) return;
    this.flags[conn] |= DIRTY;
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
    this.handlerErrors.report();
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
        this.listenerHandlers[slot] = undefined;
        this.listenerFds[slot] = -1; // closed by the ring: never close this number again
        return;
      default:
        return; // OP_WAKE, OP_LISTENER_CANCEL: nothing to do
    }
  }

  private isCurrent(conn: number, high: number): boolean {
    return this.states[conn] !== FREE && ud.generationOf(high) === this.generations[conn];
  }

  private opDone(conn: number, high: number): void {
    if (!this.isCurrent(conn, high)) return;
    if (--this.pendingOps[conn] === 0 && this.states[conn] === TEARDOWN) {
      this.finishTeardown(conn);
    }
  }

  private acceptCallback(listener: number, result: number, cqeFlags: number): void {
    const rearm = (cqeFlags & abi.IORING_CQE_F_MORE) === 0 && this.listenerOpen[listener];
    if (result >= 0) {
      const handler = this.listenerHandlers[listener];
      const conn = this.allocateSlot();
      if (conn < 0 || handler === undefined || !this.listenerOpen[listener]) {
        this.refusedAccepts++;
        libc().close(result); // over maxConnections: the peer sees the connection closed
      } else {
        this.accepted++;
        this.openSlot(conn, result, listener, handler, OPEN);
        // Read now: after a reset the kernel no longer knows it, and onClose may ask.
        this.peers[conn] = peerEndpoint(result);
        this.armRecv(conn);
        this.invokeOpen(conn, listener);
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
      if (this.listenerOpen[listener] && !this.disposed) {
        this.armAccept(listener);
        this.scheduler.scheduleFlush();
      }
    }, 50);
  }

  private connectCallback(conn: number, high: number, result: number): void {
    if (!this.isCurrent(conn, high)) return;
    this.pendingOps[conn]--;
    if (this.states[conn] !== CONNECTING) {
      if (this.pendingOps[conn] === 0 && this.states[conn] === TEARDOWN) this.finishTeardown(conn);
      return;
    }
    if (result < 0) {
      this.teardown(conn, result);
      return;
    }
    this.connected++;
    this.states[conn] = OPEN;
    this.armRecv(conn);
    this.invokeOpen(conn, -1);
    if (this.bufferedAmount(conn) > 0) this.markDirty(conn);
  }

  /** A handler threw: the rule of every backend, abort this connection now, report later. */
  private handlerThrew(conn: number, error: unknown): void {
    this.handlerErrors.add(error, conn);
    this.close(conn, CloseMode.Abort);
  }

  private invokeOpen(conn: number, listener: number): void {
    try {
      this.handlers[conn]!.onOpen(conn, listener);
    } catch (error) {
      this.handlerThrew(conn, error);
    }
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
    if (!more) {
      this.flags[conn] &= ~RECV_ARMED;
      this.pendingOps[conn]--;
    }
    const state = this.states[conn];
    if (result > 0) {
      this.bytesIn += result;
      if (state === TEARDOWN || !hasBuffer) {
        if (hasBuffer) this.buffers.add(bid);
      } else if ((this.flags[conn] & PAUSED) !== 0 || this.held.has(conn)) {
        this.held.hold(conn, bid, result);
      } else {
        this.deliver(conn, bid, result);
      }
      if (!more && this.states[conn] !== TEARDOWN) this.rearmRecv(conn);
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
    if (this.pendingOps[conn] === 0 && this.states[conn] === TEARDOWN) this.finishTeardown(conn);
  }

  private deliver(conn: number, bid: number, length: number): void {
    try {
      this.handlers[conn]!.onData(conn, this.buffers.views[bid], 0, length);
    } catch (error) {
      this.handlerThrew(conn, error);
    }
    this.returned[this.returnedCount++] = bid;
  }

  private deliverHeld(conn: number): void {
    while (this.held.has(conn) && (this.flags[conn] & PAUSED) === 0 &&
      this.states[conn] !== TEARDOWN && this.states[conn] !== FREE) {
      const bid = this.held.take(conn);
      this.deliver(conn, bid, this.held.lengthOf(bid));
    }
  }

  private readonly giveBackBuffer = (bid: number): void => this.buffers.add(bid);

  private rearmRecv(conn: number): void {
    const state = this.states[conn];
    if ((this.flags[conn] & (RECV_ARMED | EOF_SEEN | PAUSED)) !== 0) return;
    if (state !== OPEN && state !== CLOSING) return;
    this.armRecv(conn);
  }

  private starve(conn: number): void {
    if ((this.flags[conn] & WANTS_BUFFERS) !== 0) return;
    this.flags[conn] |= WANTS_BUFFERS;
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
    while (this.starving.size > 0 && this.buffers.availableCount() > 0) {
      const conn = this.starving.shift();
      if ((this.flags[conn] & WANTS_BUFFERS) === 0) continue; // closed meanwhile
      this.flags[conn] &= ~WANTS_BUFFERS;
      this.rearmRecv(conn);
    }
  }

  private endOfStream(conn: number): void {
    const state = this.states[conn];
    if ((this.flags[conn] & EOF_SEEN) !== 0 || state === TEARDOWN) return;
    this.flags[conn] |= EOF_SEEN;
    if (state === OPEN) {
      try {
        this.handlers[conn]!.onEnd(conn);
      } catch (error) {
        this.handlerThrew(conn, error); // the close below is then a no-op
      }
    }
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
    this.pendingOps[conn]--;
    const state = this.states[conn];
    if (state === TEARDOWN) {
      this.queues.abandonInFlight(conn);
      this.urgent.abandonInFlight(conn);
      if (this.pendingOps[conn] === 0) this.finishTeardown(conn);
      return;
    }
    if (result < 0) {
      this.queues.abandonInFlight(conn);
      this.urgent.abandonInFlight(conn);
      this.teardown(conn, result === -ECANCELED ? -EPIPE : result);
      return;
    }
    this.bytesOut += result;
    const sent = this.urgent.isSending(conn) ? this.urgent : this.queues;
    sent.complete(conn, result);
    if (this.bufferedAmount(conn) > 0) {
      this.markDirty(conn);
      return;
    }
    if (state === CLOSING) {
      this.teardown(conn, 0);
      return;
    }
    try {
      this.handlers[conn]!.onDrain(conn);
    } catch (error) {
      this.handlerThrew(conn, error);
    }
  }

  /**
   * Which queue the next send of `conn` comes from: urgent bytes once the ordinary queue is
   * between two of its units, else the ordinary queue; null while a send is in flight.
   */
  private nextSendSource(conn: number): SendQueues | null {
    if (this.queues.isSending(conn) || this.urgent.isSending(conn)) return null;
    if (this.urgent.queuedBytes(conn) > 0 && this.queues.atUnitBoundary(conn)) return this.urgent;
    return this.queues;
  }

  /** For each connection that wrote or resumed: deliver held data, submit its next send. */
  private flushConnections(): void {
    while (this.dirtyCount > 0) {
      const conn = this.dirty[--this.dirtyCount];
      this.flags[conn] &= ~DIRTY;
      const state = this.states[conn];
      if (state === FREE || state === TEARDOWN) continue;
      if (this.held.has(conn)) this.deliverHeld(conn);
      this.rearmRecv(conn);
      if (state === CONNECTING) continue;
      const source = this.nextSendSource(conn);
      if (source === null) continue;
      const kind = source.prepare(conn, this.urgent.queuedBytes(conn) > 0);
      if (kind === 0) continue;
      const sqe = this.takeSqe();
      const zeroCopy = source.sendLength >= this.zeroCopyThreshold;
      const high = ud.userHigh(zeroCopy ? ud.OP_SEND_ZC : ud.OP_SEND, this.generations[conn]);
      const msgFlags = abi.MSG_NOSIGNAL | abi.MSG_WAITALL;
      const fd = this.fds[conn];
      const address = source.sendAddress;
      if (kind === 1) {
        this.sqe.prepSend(sqe, fd, address, source.sendLength, msgFlags, conn, high);
      } else {
        this.sqe.prepSendmsg(sqe, fd, address, msgFlags, conn, high);
      }
      if (zeroCopy) {
        this.sqe.setOpcode(sqe, kind === 1 ? abi.IORING_OP_SEND_ZC : abi.IORING_OP_SENDMSG_ZC);
      }
      this.pendingOps[conn]++;
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
    return {
      backend: this.backend,
      connections: this.connections,
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
      loansOut: this.queues.loansOut,
      sendBuffers: this.sendPool.destroyed ? { ...recvStats, inUse: 0 } : this.sendPool.stats(),
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
    for (let id = 0; id < this.listenerFds.length; id++) this.closeListener(id);
    for (let conn = 0; conn < this.slotCapacity; conn++) {
      if (this.states[conn] === FREE) continue;
      this.closeReasons[conn] = -ECANCELED;
      this.close(conn, CloseMode.Abort);
    }
    // Called from a handler, we are inside a turn that is still walking the CQ: neither
    // drive the ring (a nested turn would reap the same completions) nor unmap anything
    // until that turn has ended.
    if (this.scheduler.turning) await new Promise((resolve) => setImmediate(resolve));
    // Drive the ring until every connection reported (bounded: a stuck op must not hang us).
    const deadline = performance.now() + 2000;
    while (this.connections > 0 && performance.now() < deadline) {
      if (this.scheduler.runTurn() === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    this.disposed = true;
    clearInterval(this.trimTimer);
    this.scheduler.stop();
    this.park.close();
    this.buffers.close();
    this.ring.close(); // closing the ring cancels anything left and closes listener sockets
    for (const fd of this.listenerFds) if (fd >= 0) libc().close(fd);
    this.sendPool.destroy();
    this.recvRegion.free();
    this.metaRegion.free();
  }

  closeNow(): void {
    if (this.disposed) return;
    this.disposed = true;
    clearInterval(this.trimTimer);
    this.scheduler.stop();
    for (let conn = 0; conn < this.slotCapacity; conn++) {
      if (this.states[conn] !== FREE && this.fds[conn] >= 0) libc().close(this.fds[conn]);
    }
    for (const fd of this.listenerFds) if (fd >= 0) libc().close(fd);
    this.park.close();
    this.buffers.close();
    this.ring.close(); // cancels every pending request: the sockets really close now
    this.sendPool.destroy();
    this.recvRegion.free();
    this.metaRegion.free();
  }

  private assertLive(): void {
    if (this.disposed || this.disposing !== undefined) {
      throw new UsageError(ErrorCode.DISPOSED, "the transport was disposed");
    }
  }
}
