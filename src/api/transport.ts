/**
 * The transport contract: a completion-based byte-stream reactor. The io_uring backend
 * implements it natively; the fake backend in memory; epoll and IOCP backends adapt to it
 * (try the call, park on EAGAIN, complete when ready). The WebSocket server above it never
 * knows which backend runs.
 *
 * Identities are small integers: a connection id is a slot index that is valid from
 * `onOpen` until `onClose` returns, after which the transport may reuse it for a new
 * connection, so callers must drop an id in `onClose` and never use it afterwards.
 *
 * Rules every backend follows (the contract suite in test/support/transport-contract.ts
 * pins each one on every backend):
 *  - Results are numbers: >= 0 is success, < 0 is -errno with the Linux values of ./errno.ts
 *    on every platform (a Windows backend translates its WSA codes into them).
 *  - Misuse throws a UsageError whose `code` comes from ErrorCode (./errors.ts), the same code
 *    for the same misuse on every backend, before any slot or descriptor is taken; a failed
 *    system call throws a SystemError (EADDRINUSE...).
 *  - Handlers run only inside the transport's turns, never inside a call such as `send` or
 *    `close`. A handler that throws aborts its own connection (CloseMode.Abort: its peer sees
 *    a reset, other connections carry on); the error is reported after the turn through
 *    `TransportOptions.onHandlerError` (default: re-thrown from a microtask).
 *  - Sizes left out of TransportOptions come from TRANSPORT_DEFAULTS; a size out of range
 *    throws UsageError WS_ERR_BAD_OPTION at creation (resolveTransportSizing).
 */
import { ErrorCode, UsageError } from "./errors.ts";
import type { PoolStats, RegionKind } from "./pool.ts";

/**
 * Which backend a transport runs on: io_uring (Linux, the fast path), epoll (Linux where
 * io_uring is forbidden: containers' seccomp profiles, kernel.io_uring_disabled), iocp
 * (Windows), bun (Bun.listen: everywhere Bun runs, the slow path), fake (in memory, tests).
 */
export type BackendName = "io_uring" | "epoll" | "iocp" | "bun" | "fake";
/** What a caller may ask for: a backend by name, or "auto" (the fastest this machine allows). */
export type BackendChoice = "auto" | Exclude<BackendName, "fake">;

/** Events a transport delivers. One handler object per listener (or per outgoing connection). */
export interface TransportHandler {
  /** A connection is ready: accepted on `listener`, or connected (`listener` = -1). */
  onOpen(conn: number, listener: number): void;
  /**
   * Bytes arrived. `data[start, end)` is a view into pool memory that is valid only until
   * this call returns (zero copy): copy what must outlive the call. `data` may be the whole
   * pool slot, so always honour `start`/`end`.
   */
  onData(conn: number, data: Uint8Array, start: number, end: number): void;
  /** Everything queued with `send` has been handed to the kernel. */
  onDrain(conn: number): void;
  /**
   * The peer finished sending (EOF). The handler may still `send`; when it returns the
   * transport closes the connection gracefully (queued bytes are flushed first).
   */
  onEnd(conn: number): void;
  /**
   * The connection is gone: `reason` is 0 after an orderly close, or -errno (ECONNRESET,
   * ECONNREFUSED for a failed connect, ECANCELED on dispose...). This is the last event
   * for `conn`; its id may be reused afterwards.
   */
  onClose(conn: number, reason: number): void;
}

export interface ListenOptions {
  /** IPv4 address to bind; default "0.0.0.0". */
  hostname?: string;
  /** 0 picks a free port; read it back with `listenerPort`. */
  port: number;
  /** listen(2) backlog; default 4096 (the kernel caps it at net.core.somaxconn). */
  backlog?: number;
  /** Set SO_REUSEPORT so several transports (one per worker) share the port. */
  reusePort?: boolean;
}

/** How `close` ends a connection. */
export const CloseMode = {
  /** Flush what is queued, then close. */
  Graceful: 0,
  /** Drop what is queued and reset the connection now (SO_LINGER 0). */
  Abort: 1,
} as const;
export type CloseMode = (typeof CloseMode)[keyof typeof CloseMode];

/**
 * Counters of a transport. Common to every backend, with the same meaning: connections,
 * accepted, connected, closed, bytesIn, bytesOut, turns, parks, recvBuffers and sendBuffers.
 * Backend counters may stay 0 (or "plain", -1) where the backend has no such thing:
 * recvBufferStalls, cqOverflows, loansOut, regionKind, node.
 */
export interface TransportStats {
  readonly backend: BackendName;
  /** Connections whose onClose has not returned yet (connecting ones included). */
  readonly connections: number;
  readonly accepted: number;
  readonly connected: number;
  readonly closed: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** Event-loop turns that reaped or submitted work. */
  readonly turns: number;
  /** Times the loop went quiet and parked (io_uring: on its eventfd). */
  readonly parks: number;
  /** Backend counter: receives that waited for a free buffer (io_uring: ENOBUFS). */
  readonly recvBufferStalls: number;
  /** Backend counter: completion-queue overflows the kernel reported and we flushed. */
  readonly cqOverflows: number;
  /** Backend counter: loans (`sendLoaned`) queued, not yet given back (0 where copied). */
  readonly loansOut: number;
  /**
   * The receive buffers: slotSize = recvBufferSize, capacity = the buffers there are now
   * (recvBufferCount at creation; io_uring may grow its ring up to recvBufferCountMax).
   */
  readonly recvBuffers: PoolStats;
  /** The send memory: slotSize = sendChunkSize, capacity = sendChunkCount. */
  readonly sendBuffers: PoolStats;
  /** Backend counter: what memory the pools got ("plain" where there is no choice). */
  readonly regionKind: RegionKind;
  /** Backend counter: NUMA node of the transport's memory, -1 when not placed. */
  readonly node: number;
}

export interface Transport {
  readonly backend: BackendName;
  /**
   * Bind and start accepting; returns a listener id. Throws SystemError (EADDRINUSE...), or
   * UsageError WS_ERR_BAD_ADDRESS for a hostname that is no IPv4 literal or a port outside
   * 0..65535, WS_ERR_DISPOSED after dispose.
   */
  listen(options: ListenOptions, handler: TransportHandler): number;
  /**
   * The bound port of a listener (useful after `port: 0`). UsageError WS_ERR_NO_LISTENER for
   * an id `listen` never returned.
   */
  listenerPort(listener: number): number;
  /** Stop accepting on a listener; open connections are untouched. */
  closeListener(listener: number): void;
  /**
   * Open an outgoing connection to an IPv4 address. Returns the connection id at once
   * (`onOpen` follows, or `onClose(conn, -ECONNREFUSED...)`), or -EMFILE when
   * maxConnections connections exist. Bytes sent before `onOpen` are queued. Throws
   * UsageError WS_ERR_BAD_ADDRESS (host no IPv4 literal, port outside 1..65535) or
   * WS_ERR_DISPOSED, with no slot taken.
   */
  connect(host: string, port: number, handler: TransportHandler): number;
  /**
   * Queue `data[start, end)` for sending; the bytes are copied, so `data` may be reused when
   * this returns. All or nothing: returns `end - start`, or -errno with nothing queued:
   * -EPIPE when the connection is closing or closed, -ENOBUFS when send memory is exhausted.
   * A range that is not integers 0 <= start <= end <= data.length throws UsageError
   * WS_ERR_BAD_RANGE (sendPair and sendLoaned check each of their ranges the same way).
   */
  send(conn: number, data: Uint8Array, start: number, end: number): number;
  /**
   * Queue `first[firstStart, firstEnd)` then `second[secondStart, secondEnd)`, all or nothing
   * (a frame header and its payload without an intermediate copy). Returns the total queued,
   * or -errno as `send` does.
   */
  sendPair(conn: number, first: Uint8Array, firstStart: number, firstEnd: number,
    second: Uint8Array, secondStart: number, secondEnd: number): number;
  /**
   * Queue `header[headerStart, headerEnd)` (copied) then `payload[payloadStart, payloadEnd)`
   * WITHOUT copying it: the payload is native memory at `payloadAddress` that the transport
   * reads until it calls `lender.giveBack(token)`, once, when the bytes were sent or dropped
   * (a transport that copies anyway may call it before returning). The lender keeps the
   * memory mapped and unchanged until then. All or nothing: returns the total queued, or
   * -errno as `send` does, and then nothing was kept and giveBack is not called; -ENOBUFS
   * also when the transport has no room for another loan (copy with sendPair instead).
   */
  sendLoaned(conn: number, header: Uint8Array, headerStart: number, headerEnd: number,
    payload: Uint8Array, payloadStart: number, payloadEnd: number, payloadAddress: number,
    lender: Lender, token: number): number;
  /**
   * Like `send`, but the bytes go out ahead of what is queued and not yet handed to the
   * kernel: at the first boundary between earlier send calls (never inside the bytes of
   * one), so a small control message (a WebSocket pong or ping) is not stuck behind a slow
   * reader's backlog. Urgent sends keep their own order. Results as `send`.
   */
  sendUrgent(conn: number, data: Uint8Array, start: number, end: number): number;
  /** Bytes queued and not yet handed to the kernel. */
  bufferedAmount(conn: number): number;
  /** Stop delivering `onData` (inbound flow control) until `resume`. */
  pause(conn: number): void;
  resume(conn: number): void;
  /** End a connection; `onClose` follows. Closing a closed id is a no-op. */
  close(conn: number, mode?: CloseMode): void;
  /** "127.0.0.1:54321", looked up on demand. */
  remoteAddress(conn: number): string;
  stats(): TransportStats;
  /** Close every listener and connection (onClose with -ECANCELED) and free all memory. */
  dispose(): Promise<void>;
  /**
   * For a thread about to die (process.exit in a worker): close every descriptor and free
   * all memory synchronously, with no callbacks, so nothing outlives the thread.
   */
  closeNow(): void;
}

/** Owner of memory lent to a transport by `sendLoaned`. */
export interface Lender {
  /** The transport is done with loan `token`: it reads that memory no more. */
  giveBack(token: number): void;
}

/** The sizes TransportOptions set, defaults filled in (see resolveTransportSizing). */
export interface TransportSizing {
  readonly maxConnections: number;
  readonly initialConnections: number;
  readonly recvBufferSize: number;
  readonly recvBufferCount: number;
  readonly sendChunkSize: number;
  readonly sendChunkCount: number;
}

/**
 * The sizes every backend uses for an option left out. 128 receive buffers of 32 KiB: a
 * receive of several 4 KiB frames fits one buffer more often than in 16 KiB ones (fewer
 * assemblies: +7% at 4 KiB, +5% at 64 KiB measured on io_uring), and 128 did not run out
 * with 2,000 busy connections (64 × 64 KiB did, rarely).
 */
export const TRANSPORT_DEFAULTS: TransportSizing = Object.freeze({
  maxConnections: 65536,
  initialConnections: 8192,
  recvBufferSize: 32 * 1024,
  recvBufferCount: 128,
  sendChunkSize: 16 * 1024,
  sendChunkCount: 4096,
});

/** Bounds of the sizes (beyond them the per-connection state or a ring cannot be built). */
const MAX_CONNECTIONS = 1 << 24;
/** The kernel's limit on a provided-buffer ring. */
const MAX_RECV_BUFFERS = 32768;
const MAX_SIZE = 0x7fffffff;

/**
 * Sizing of a transport, fixed at creation (io_uring may grow its receive ring up to its own
 * recvBufferCountMax), and how it reports a throwing handler.
 */
export interface TransportOptions {
  /** Most simultaneous connections (1..2^24); default TRANSPORT_DEFAULTS.maxConnections. */
  maxConnections?: number;
  /**
   * Connections whose state is allocated up front; it doubles as more arrive, up to
   * maxConnections. Default TRANSPORT_DEFAULTS.initialConnections (8192, ~1 MB): small
   * enough to keep the JS heap, and so the collector's young generation, small (which
   * measurably speeds up text-heavy traffic), large enough that common servers never pay
   * for a regrowth. Clamped to maxConnections.
   */
  initialConnections?: number;
  /** Size of one receive buffer; default TRANSPORT_DEFAULTS.recvBufferSize (32 KiB). */
  recvBufferSize?: number;
  /**
   * Receive buffers shared by all connections (a power of two, at most 32768); default
   * TRANSPORT_DEFAULTS.recvBufferCount (128: 4 MiB with 32 KiB buffers).
   */
  recvBufferCount?: number;
  /** Size of one send chunk; default TRANSPORT_DEFAULTS.sendChunkSize (16 KiB). */
  sendChunkSize?: number;
  /**
   * Send chunks shared by all connections; default TRANSPORT_DEFAULTS.sendChunkCount (4096:
   * 64 MiB with 16 KiB chunks).
   */
  sendChunkCount?: number;
  /** NUMA node for pool memory; default: the node of the CPU this thread runs on. */
  node?: number;
  /** "auto" tries hugepages first; "off" uses plain pages. */
  hugepages?: "auto" | "off";
  /**
   * Told about every throw from a handler of this transport: `error` as thrown, `conn` the
   * connection whose handler threw (already aborted; in onClose, already gone: log it, do
   * not use it). Called after the turn in which the handler threw, once per throw, in order.
   * Default (and when this hook throws): the error is re-thrown from a microtask, so it
   * surfaces as an uncaught exception, as a throw from any event handler does.
   */
  onHandlerError?(error: unknown, conn: number): void;
}

/**
 * The sizes of `options` with TRANSPORT_DEFAULTS for those left out, checked: every backend
 * builds from this, so they agree on defaults and reject the same values (UsageError
 * WS_ERR_BAD_OPTION) before allocating anything.
 */
export function resolveTransportSizing(options: TransportOptions): TransportSizing {
  const defaults = TRANSPORT_DEFAULTS;
  const maxConnections = sizeOption("maxConnections", options.maxConnections,
    defaults.maxConnections, MAX_CONNECTIONS);
  const initialConnections = sizeOption("initialConnections", options.initialConnections,
    defaults.initialConnections, MAX_CONNECTIONS);
  const recvBufferCount = sizeOption("recvBufferCount", options.recvBufferCount,
    defaults.recvBufferCount, MAX_RECV_BUFFERS);
  if ((recvBufferCount & (recvBufferCount - 1)) !== 0) {
    throw new UsageError(ErrorCode.BAD_OPTION,
      `recvBufferCount must be a power of two, got ${recvBufferCount}`);
  }
  return {
    maxConnections,
    initialConnections: Math.min(initialConnections, maxConnections),
    recvBufferSize: sizeOption("recvBufferSize", options.recvBufferSize,
      defaults.recvBufferSize, MAX_SIZE),
    recvBufferCount,
    sendChunkSize: sizeOption("sendChunkSize", options.sendChunkSize,
      defaults.sendChunkSize, MAX_SIZE),
    sendChunkCount: sizeOption("sendChunkCount", options.sendChunkCount,
      defaults.sendChunkCount, MAX_SIZE),
  };
}

/**
 * The range rule of `send`, `sendPair` and `sendLoaned` on every backend: integers with
 * 0 <= start <= end <= data.length, else UsageError WS_ERR_BAD_RANGE. Four comparisons on the
 * hot path; the throw lives in its own function so this one stays small enough to inline.
 */
export function checkSendRange(data: Uint8Array, start: number, end: number): void {
  // `x >>> 0 === x` holds only for integers in 0..2^32-1: NaN, fractions and negatives fail.
  if ((start >>> 0) !== start || (end >>> 0) !== end || start > end || end > data.length) {
    throwBadRange(data, start, end);
  }
}

function throwBadRange(data: Uint8Array, start: number, end: number): never {
  throw new UsageError(ErrorCode.BAD_RANGE,
    `send range ${start}..${end} is not within 0..${data.length}`);
}

function sizeOption(name: string, value: number | undefined, fallback: number,
  max: number): number {
  const chosen = value ?? fallback;
  if (!(Number.isInteger(chosen) && chosen >= 1 && chosen <= max)) {
    throw new UsageError(ErrorCode.BAD_OPTION,
      `${name} must be an integer from 1 to ${max}, got ${String(chosen)}`);
  }
  return chosen;
}
