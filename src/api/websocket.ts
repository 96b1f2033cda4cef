/**
 * The user-facing WebSocket server API. It follows `Bun.serve({ websocket })` so that code
 * written for Bun ports with few changes; where we differ (binary messages from 129 bytes
 * arrive as views into pool memory, zero copy) the docs say so.
 */
import type {
  BackendChoice, BackendName, Transport, TransportOptions, TransportStats,
} from "./transport.ts";

/** Time for timeouts: real by default, advanced by hand in deterministic tests. */
export interface Clock {
  now(): number;
  /** Call `callback` every `intervalMs`; returns a function that stops it. */
  every(intervalMs: number, callback: () => void): () => void;
}

/** `ws.readyState`, as in the WebSocket standard. */
export const ReadyState = { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 } as const;
export type ReadyState = (typeof ReadyState)[keyof typeof ReadyState];

/**
 * Result of `ws.send*`: the number of bytes queued for an immediate write (> 0),
 * `SEND_BACKPRESSURE` (-1: queued, but the socket is backed up; wait for `drain`), or
 * `SEND_DROPPED` (0: not sent — the socket is closing, or the backpressure limit is hit).
 */
export const SEND_BACKPRESSURE = -1;
export const SEND_DROPPED = 0;

export type BinaryType = "nodebuffer" | "arraybuffer" | "uint8array";

export interface ServerWebSocket<T = undefined> {
  /**
   * Send a string as a text message, or bytes as a binary message. With permessage-deflate
   * negotiated, messages of `threshold` bytes or more are compressed unless `compress` is false.
   */
  send(data: string | ArrayBufferView | ArrayBuffer, compress?: boolean): number;
  sendText(data: string, compress?: boolean): number;
  sendBinary(data: ArrayBufferView | ArrayBuffer, compress?: boolean): number;
  /** Start the closing handshake (code 1000 by default; reason ≤ 123 bytes UTF-8). */
  close(code?: number, reason?: string): void;
  /** Drop the TCP connection at once, without a closing handshake. */
  terminate(): void;
  ping(data?: string | ArrayBufferView | ArrayBuffer): number;
  pong(data?: string | ArrayBufferView | ArrayBuffer): number;
  /** Run `callback`; every send inside it leaves in one write (they already coalesce per turn). */
  cork<R>(callback: (ws: ServerWebSocket<T>) => R): R;
  /** Bytes queued and not yet taken by the kernel. */
  getBufferedAmount(): number;
  /** Data attached by the `upgrade` hook. */
  data: T;
  readonly remoteAddress: string;
  readonly readyState: ReadyState;
  /** The negotiated subprotocol, or "" */
  readonly protocol: string;
  /**
   * What binary messages are handed as, as in Bun: "nodebuffer" (default, a Buffer),
   * "arraybuffer" (an ArrayBuffer of the message's own: a copy, kept safely), "uint8array"
   * (a Uint8Array; from 129 bytes a view valid during the handler, whose slice() copies).
   * The `message` handler's type stays `string | Buffer`, as Bun's does.
   */
  binaryType: BinaryType;
  /** Receive messages published to `topic` (a string). */
  subscribe(topic: string): void;
  unsubscribe(topic: string): void;
  isSubscribed(topic: string): boolean;
  /** The topics this socket is subscribed to. */
  readonly subscriptions: string[];
  /**
   * Send to every subscriber of `topic` but this socket (unless `publishToSelf`), framed
   * once. Returns the byte count when at least one subscriber queued it, -1 when one of them
   * is backed up, 0 when none did; each subscriber's own drop reaches `dropped`.
   */
  publish(topic: string, data: string | ArrayBufferView | ArrayBuffer, compress?: boolean): number;
  publishText(topic: string, data: string, compress?: boolean): number;
  publishBinary(topic: string, data: ArrayBufferView | ArrayBuffer, compress?: boolean): number;
}

/**
 * WebSocket options, as Bun.serve takes them under `websocket`; each may also be given at the
 * top level of serve()'s options (the older spelling). Meanings and defaults: ServeOptions.
 */
export interface WebSocketOptions {
  maxPayloadLength?: number;
  idleTimeout?: number;
  sendPings?: boolean;
  backpressureLimit?: number;
  closeOnBackpressureLimit?: boolean;
}

/** Bun's (uWS's) compressor names for `perMessageDeflate` (see the README's "Compression"). */
export type Compressor =
  | "disable" | "shared" | "dedicated"
  | "3KB" | "4KB" | "8KB" | "16KB" | "32KB" | "64KB" | "128KB" | "256KB";

export interface PerMessageDeflateOptions {
  /** How the server compresses what it sends; default "shared". false/"disable": never. */
  compress?: boolean | Compressor;
  /**
   * How the server inflates what clients send; default "shared". A negotiated client may
   * always compress, so "disable" (or false) inflates with the shared stream: no memory per
   * socket. Both directions disabled: the extension is not negotiated at all.
   */
  decompress?: boolean | Compressor;
  /** Messages shorter than this many bytes are sent uncompressed; default 1024 (as `ws`). */
  threshold?: number;
  /** zlib level 1..9; default 1 (see message-deflater.ts). */
  level?: number;
}

export interface WebSocketHandler<T = undefined> extends WebSocketOptions {
  /** `ws.publish` reaches the publishing socket too, when it is subscribed. Default false. */
  publishToSelf?: boolean;
  /**
   * permessage-deflate (RFC 7692), as Bun.serve takes it: `true` is `{ compress: "shared",
   * decompress: "shared" }` (no memory per socket); a compressor name per direction; plus
   * `threshold` (bytes; shorter messages go uncompressed, default 1024) and `level` (zlib
   * 1..9, default 1). See "Compression" in the README for the memory of each setting.
   */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
  open?(ws: ServerWebSocket<T>): void | Promise<void>;
  /**
   * A whole message: text as a string; binary as a `Buffer` (as in Bun.serve) that is
   * **valid only until this call returns**: from 129 bytes up it is a view into pool memory
   * (zero copy) that is reused afterwards. Keep it with `message.slice()`, which copies
   * (unlike Node's `Buffer#slice`); `subarray()` is a view. Up to 128 bytes it is a copy.
   */
  message(ws: ServerWebSocket<T>, message: string | Buffer): void | Promise<void>;
  /** The connection is closed: `code` from the peer's close frame, 1005 without, 1006 abnormal. */
  close?(ws: ServerWebSocket<T>, code: number, reason: string): void | Promise<void>;
  /** A send returned SEND_BACKPRESSURE earlier and the queue is empty again. */
  drain?(ws: ServerWebSocket<T>): void | Promise<void>;
  /** The peer's ping (already answered): `data` is a copy (≤ 125 bytes), yours to keep. */
  ping?(ws: ServerWebSocket<T>, data: Buffer): void | Promise<void>;
  /** The peer's pong: `data` is a copy (≤ 125 bytes), yours to keep. */
  pong?(ws: ServerWebSocket<T>, data: Buffer): void | Promise<void>;
  /**
   * A message for `ws` was dropped at its backpressure limit (a send that returned 0, or a
   * publish to a topic it is subscribed to: `topic` is set): `message` is what it lost (a
   * copy, yours to keep), so no subscriber's loss goes unseen.
   */
  dropped?(ws: ServerWebSocket<T>, message: string | Buffer, topic: string | undefined): void;
}

/** What an `upgrade` hook may return to accept a WebSocket (a `Response` refuses it). */
export interface UpgradeAcceptance<T> {
  data?: T;
  /** Extra response headers for the 101 (e.g. Set-Cookie). */
  headers?: Headers | Record<string, string> | [string, string][];
  /** The chosen subprotocol: must be one the client offered. */
  protocol?: string;
}

/** `server.upgrade(request, options)`: as in Bun.serve. */
export interface FetchUpgradeOptions<T> {
  /** Becomes `ws.data`. */
  data?: T;
  /**
   * Extra headers for the 101 response (e.g. Set-Cookie). A `Sec-WebSocket-Protocol` here
   * chooses the subprotocol, as in Bun: it must be one the client offered.
   */
  headers?: Headers | Record<string, string> | [string, string][];
}

export interface ServeOptions<T = undefined> {
  /** Port to listen on; 0 picks a free one (read it back from `server.port`). */
  port: number;
  /** IPv4 address to bind; default "0.0.0.0". */
  hostname?: string;
  /**
   * Transport backend: "auto" (default) picks the fastest this machine allows (io_uring on
   * Linux), or a name; or a Transport you made, such as `new FakeTransport(network)` from
   * `hioload-ws/testing` to run the whole server in memory. An injected transport is the
   * server's from then on: `stop()` disposes it. Not with `threads`.
   */
  backend?: BackendChoice | Transport;
  /** Largest message (after reassembly) accepted; larger → close 1009. Default 16 MiB. */
  maxPayloadLength?: number;
  /** Seconds without traffic before a connection is closed; 0 = never. Default 120. */
  idleTimeout?: number;
  /** Ping idle connections before the idle timeout closes them. Default true. */
  sendPings?: boolean;
  /** Bytes a connection may have queued before sends are dropped. Default 16 MiB. */
  backpressureLimit?: number;
  /** Close (1008) instead of dropping when the backpressure limit is hit. Default false. */
  closeOnBackpressureLimit?: boolean;
  /** Largest HTTP request head accepted (request line + headers). Default 16 KiB. */
  maxHeaderBytes?: number;
  /** Seconds to wait for the peer's close frame (and the handshake) before dropping. Default 5. */
  closeTimeout?: number;
  /** Most simultaneous connections; more are refused at accept. Default 65536. */
  maxConnections?: number;
  /** SO_REUSEPORT, so several processes or workers share the port. */
  reusePort?: boolean;
  /**
   * Run N reactors, one per CPU, in Bun workers ("auto": every CPU this process may use).
   * Each worker re-runs the entry module (like Node's cluster), so handlers are written
   * once; `serve()` inside a worker serves on its own pinned CPU, ring, SO_REUSEPORT
   * listener and NUMA-local pool. The main thread supervises. Default 0: serve here.
   */
  threads?: number | "auto";
  /**
   * Decide whether to accept a WebSocket: return `{ data, headers, protocol }` (or nothing)
   * to accept, or a `Response` to refuse with it. May be async.
   */
  upgrade?(request: Request): UpgradeAcceptance<T> | Response | void |
    Promise<UpgradeAcceptance<T> | Response | void>;
  /**
   * HTTP requests, as Bun.serve's `fetch`: return a Response, or call
   * `server.upgrade(request, { data, headers })` (at once or after an `await`) to make a
   * WebSocket upgrade request a WebSocket, and return nothing. Upgrade requests come here
   * only when there is no `upgrade` hook; without either, they are accepted. Without
   * `fetch`, plain requests get 426 Upgrade Required.
   */
  fetch?(request: Request, server: Server<T>): Response | undefined | void |
    Promise<Response | undefined | void>;
  websocket: WebSocketHandler<T>;
  /**
   * As in Bun.serve: called when `fetch` (or `upgrade`) throws or rejects; its Response is
   * sent (and the connection closed after it). Without it, or when it fails too: a 500.
   */
  error?(error: unknown): Response | Promise<Response>;
  /**
   * Bun.serve's `development`: 500 answers carry the error's message and stack. Default
   * false (Bun's default is true outside NODE_ENV=production: we do not show stacks to
   * clients unless asked).
   */
  development?: boolean;
  /**
   * Testing aid: overwrite each binary message view after `message` returns, so code that
   * keeps a view past the callback reads garbage at once. Default false.
   */
  poisonMessageViews?: boolean;
  /**
   * After a burst of 512 handshakes or more, once a second passes with no handshake and
   * little traffic, ask Bun to give back what warming up cost (Bun.shrink(): compiled code
   * is discarded and recompiled as it runs again, free allocator memory goes back to the
   * OS). At most once per 512 handshakes and per 30 s. Default false: it acts on the whole
   * thread (the application's compiled code is discarded too, and the next messages run
   * slower while it is rebuilt), for a one-time saving (~3 MB at 5,000 connections), not a
   * per-connection one; for memory-tight deployments that see bursts of connections.
   */
  shrinkWhenIdle?: boolean;
  /**
   * Passed to the transport: buffer sizes and counts, hugepages, NUMA node, and backend
   * knobs such as io_uring's `ringEntries`, `spinMicros`, `zeroCopyThreshold`.
   */
  transport?: TransportOptions & Record<string, unknown>;
  /** Testing aid: the clock that drives timeouts (default: performance.now + setInterval). */
  clock?: Clock;
  /** A name for this server, read back as `server.id` (as in Bun.serve). */
  id?: string;
}

export interface ServerStats {
  readonly backend: BackendName;
  /** Open WebSocket connections (after the handshake). */
  readonly connections: number;
  /** TCP connections still in the HTTP handshake. */
  readonly pendingHandshakes: number;
  readonly messagesIn: number;
  readonly messagesOut: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /**
   * Sends of a received message's own bytes (echo, broadcast; 16 KiB or more) queued
   * without a copy: the transport read them from the message buffer.
   */
  readonly messagesLent: number;
  /** Sends dropped at the backpressure limit. */
  readonly dropped: number;
  /** Connections closed for a protocol error (1002/1007/1009). */
  readonly protocolErrors: number;
  readonly idleTimeouts: number;
  /**
   * Sockets closed (1013) because the shared send memory ran out while they held the most
   * of it: clients that do not read, seen from the others' side.
   */
  readonly evictions: number;
  /** Times the server asked Bun to give back warm-up memory (see shrinkWhenIdle). */
  readonly idleShrinks: number;
  /** Pub/sub: topics with subscribers now, and publishes, deliveries and drops so far. */
  readonly pubsub: PubSubStats;
  /** permessage-deflate: zlib memory now and bytes through it so far (zeros when it is off). */
  readonly compression: CompressionStats;
  readonly transport: TransportStats;
}

export interface CompressionStats {
  /** Open sockets that negotiated permessage-deflate. */
  readonly sockets: number;
  /** Sockets holding a zlib stream of their own to compress with (a dedicated compressor). */
  readonly dedicatedCompressors: number;
  /** Sockets holding one to inflate with (a dedicated decompressor). */
  readonly dedicatedDecompressors: number;
  /** Native bytes those sockets' streams hold: zlib state (output memory is the server's). */
  readonly socketBytes: number;
  /** socketBytes / sockets, rounded: what a compressed socket costs on average. */
  readonly bytesPerSocket: number;
  /**
   * The server's shared streams (no context takeover) and the output memory every stream
   * writes into: the same for 1 socket or 100,000.
   */
  readonly sharedBytes: number;
  readonly messagesCompressed: number;
  readonly bytesBeforeCompression: number;
  readonly bytesAfterCompression: number;
  readonly messagesInflated: number;
  /** Compressed bytes received; bytesAfterInflation is what they inflated to. */
  readonly bytesBeforeInflation: number;
  readonly bytesAfterInflation: number;
}

export interface PubSubStats {
  /** Topics that have at least one subscriber. */
  readonly topics: number;
  /** publish() calls that reached at least one subscriber. */
  readonly published: number;
  /** Messages queued to subscribers (one publish to N subscribers counts N). */
  readonly delivered: number;
  /** Messages a subscriber's backpressure limit dropped (or closed it for). */
  readonly dropped: number;
  /** With threads: messages written to other workers' rings (one per worker, not per subscriber). */
  readonly sentToWorkers: number;
  /** With threads: messages read from other workers' rings and delivered here. */
  readonly receivedFromWorkers: number;
  /**
   * With threads: messages for another worker given up on (32 MiB already waited for it,
   * or it died first; also logged).
   */
  readonly droppedToWorkers: number;
  /** With threads: messages waiting now for room in another worker's ring. */
  readonly queuedToWorkers: number;
}

/**
 * The running server. Generic in the sockets' `data` type as Bun's `Server<T>` is, so both
 * `Server` and `Server<Data>` annotations compile.
 */
export interface Server<T = undefined> {
  readonly port: number;
  readonly hostname: string;
  /** `http://hostname:port/`, as Bun.serve's `server.url`. */
  readonly url: URL;
  /** Open WebSocket connections (Bun.serve's name for it); with threads, the workers' sum. */
  readonly pendingWebSockets: number;
  /** Connections still speaking HTTP (a request being read or answered, or kept alive). */
  readonly pendingRequests: number;
  /** Whether 500 answers carry stacks (the `development` option). */
  readonly development: boolean;
  /** The `id` option (Bun's name for telling servers apart), or "". */
  readonly id: string;
  /** Resolves once every listener accepts (at once without threads); rejects if one failed. */
  readonly ready: Promise<void>;
  /** Worker threads serving (0 without the `threads` option). */
  readonly threads: number;
  /**
   * Stop, as Bun.serve's `stop(closeActiveConnections)`. Without it (or false): stop
   * accepting and let open connections end by themselves; resolves once the last is gone
   * (then all memory is freed). `true`: close every connection — 1001 to each WebSocket,
   * wait for the answers up to `closeTimeout`, flush, then drop the rest (Bun drops them at
   * once). `"abort"` (ours): drop every connection now. One shutdown: every call returns the
   * same promise; a later call may only make it stronger.
   */
  stop(closeActiveConnections?: boolean | "abort"): Promise<void>;
  /** With threads: the sum of the workers' latest reports (refreshed every 250 ms). */
  stats(): ServerStats;
  /**
   * Inside `fetch`: accept the WebSocket upgrade `request` asks for. True when the 101 is
   * queued and the socket is open (its `open` handler has run, as in Bun); false when the
   * request is not a valid upgrade request, was already upgraded, or `fetch` has settled.
   */
  upgrade<D = T>(request: Request, options?: FetchUpgradeOptions<D>): boolean;
  /** Send to every subscriber of `topic` (framed once); ws.publish's return values. */
  publish(topic: string, data: string | ArrayBufferView | ArrayBuffer, compress?: boolean): number;
  /** Sockets subscribed to `topic`. */
  subscriberCount(topic: string): number;
  /** The peer of a Request handed to `fetch` or `upgrade`; null for any other Request. */
  requestIP(request: Request): { address: string; family: "IPv4"; port: number } | null;
  /**
   * Bun.serve's `reload`: swap the handlers without restarting. The `fetch`, `error`,
   * `upgrade` and `websocket` given replace the running ones (for open sockets too, from
   * their next event); the ones left out stay; listening options (port, hostname, limits)
   * have no effect, as in Bun. With threads, each worker runs your module and reloads its own
   * server; on the main thread's server it does nothing.
   */
  // Generic in its own D (defaulting to T), as `upgrade` is: that keeps a Server<Data>
  // assignable to Server, which a parameter typed with T would forbid.
  reload<D = T>(options: ReloadOptions<D>): Server<T>;
  /** `using server = serve(...)`: stop(true) when the scope ends (Bun's Server is Disposable). */
  [Symbol.dispose](): void;
}

/** What `server.reload` takes: serve()'s options, of which only the handlers apply. */
export type ReloadOptions<T> = Partial<ServeOptions<T>>;
