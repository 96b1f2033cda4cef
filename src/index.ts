/**
 * hioload-ws public surface. The WebSocket server (`serve`) lands on top of this engine;
 * today the package exposes the engine: transports, pools and their errors.
 */
export type {
  BackendChoice, BackendName, ListenOptions, Transport, TransportHandler, TransportOptions, TransportStats,
} from "./api/transport.ts";
export { CloseMode } from "./api/transport.ts";
export type { MemoryRegionInfo, NodePoolStats, PoolStats, RegionKind, RegionOptions } from "./api/pool.ts";
export { SystemError, UsageError } from "./api/errors.ts";
export { errnoName } from "./api/errno.ts";
export { createTransport } from "./reactor/select.ts";
export { UringTransport, type UringTransportOptions } from "./reactor/uring-transport.ts";

// The WebSocket server.
export { serve } from "./server/serve.ts";
export type {
  BinaryType, Clock, Compressor, FetchUpgradeOptions, PerMessageDeflateOptions, PubSubStats, Server, ServerStats, ServerWebSocket, ServeOptions, ReloadOptions, UpgradeAcceptance,
  WebSocketHandler, WebSocketOptions,
} from "./api/websocket.ts";
export { ReadyState, SEND_BACKPRESSURE, SEND_DROPPED } from "./api/websocket.ts";
