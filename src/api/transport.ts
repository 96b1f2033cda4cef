/**
 * The transport contract: a completion-based byte-stream reactor. The io_uring backend
 * implements it natively; the fake backend in memory; epoll and IOCP backends adapt to it
 * (try the call, park on EAGAIN, complete when ready). The WebSocket server above it never
 * knows which backend runs.
 *
 * Identities are small integers: a connection id is a slot index that is valid from
 * `onOpen` until `onClose` returns, after which the transport may reuse it for a new
 * connection, so callers must drop an id in `onClose` and never use it afterwards. Results follow
 * the kernel: >= 0 is success, < 0 is -errno (see ./errno.ts).
 */
import type { PoolStats, RegionKind } from "./pool.ts";

export type BackendName = "io_uring" | "fake" | "epoll" | "iocp";

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

export interface TransportStats {
  readonly backend: BackendName;
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
  /** Receives that found the buffer ring empty and waited for buffers (io_uring: ENOBUFS). */
  readonly recvBufferStalls: number;
  /** Completion-queue overflows the kernel reported and we flushed. */
  readonly cqOverflows: number;
  /** Loans (`sendLoaned`) queued and not yet given back. */
  readonly loansOut: number;
  readonly recvBuffers: PoolStats;
  readonly sendBuffers: PoolStats;
  readonly regionKind: RegionKind;
  /** NUMA node of the transport's memory, -1 when not placed. */
  readonly node: number;
}

export interface Transport {
  readonly backend: BackendName;
  /** Bind and start accepting; returns a listener id. Throws SystemError (EADDRINUSE...). */
  listen(options: ListenOptions, handler: TransportHandler): number;
  /** The bound port of a listener (useful after `port: 0`). */
  listenerPort(listener: number): number;
  /** Stop accepting on a listener; open connections are untouched. */
  closeListener(listener: number): void;
  /**
   * Open an outgoing connection to an IPv4 address. Returns the connection id at once
   * (`onOpen` follows, or `onClose(conn, -ECONNREFUSED...)`), or -EMFILE when
   * maxConnections connections exist. Bytes sent before `onOpen` are queued.
   */
  connect(host: string, port: number, handler: TransportHandler): number;
  /**
   * Queue `data[start, end)` for sending; the bytes are copied, so `data` may be reused when
   * this returns. All or nothing: returns `end - start`, or -errno with nothing queued:
   * -EPIPE when the connection is closing or closed, -ENOBUFS when send memory is exhausted.
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

/** Sizing of a transport, fixed at creation; nothing grows past these. */
export interface TransportOptions {
  /** Most simultaneous connections; default 65536. */
  maxConnections?: number;
  /**
   * Connections whose state is allocated up front; it doubles as more arrive, up to
   * maxConnections. Default 8192 (~1 MB): small enough to keep the JS heap, and so the
   * collector's young generation, small (which measurably speeds up text-heavy traffic),
   * large enough that common servers never pay for a regrowth.
   */
  initialConnections?: number;
  /** Size of one receive buffer; default 32 KiB. */
  recvBufferSize?: number;
  /** Receive buffers shared by all connections (a power of two); default 128 (4 MiB). */
  recvBufferCount?: number;
  /** Size of one send chunk; default 16 KiB. */
  sendChunkSize?: number;
  /** Send chunks shared by all connections; default 4096 (64 MiB with 16 KiB chunks). */
  sendChunkCount?: number;
  /** NUMA node for pool memory; default: the node of the CPU this thread runs on. */
  node?: number;
  /** "auto" tries hugepages first; "off" uses plain pages. */
  hugepages?: "auto" | "off";
}
