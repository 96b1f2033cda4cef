/**
 * serve() options: defaults and validation, done once. Everything past this point reads
 * plain, checked numbers (milliseconds, bytes).
 */
import { ErrorCode, UsageError } from "../api/errors.ts";
import type { BackendChoice, Transport } from "../api/transport.ts";
import type { ServeOptions, WebSocketHandler, WebSocketOptions } from "../api/websocket.ts";
import { resolveDeflate, type DeflateConfig } from "./deflate-options.ts";

export interface ResolvedOptions<T> {
  port: number;
  hostname: string;
  /** A backend to create by name, or a transport the caller made (the fake, in tests). */
  backend: BackendChoice | Transport;
  maxPayloadLength: number;
  idleTimeoutMs: number;
  sendPings: boolean;
  backpressureLimit: number;
  closeOnBackpressureLimit: boolean;
  /** ws.publish also reaches the publishing socket (Bun's websocket.publishToSelf). */
  publishToSelf: boolean;
  maxHeaderBytes: number;
  closeTimeoutMs: number;
  maxConnections: number;
  reusePort: boolean;
  upgrade: ServeOptions<T>["upgrade"];
  fetch: ServeOptions<T>["fetch"];
  /** Bun's `error(err)`: the Response for a request whose hook failed. */
  error: ServeOptions<T>["error"];
  /** 500 bodies carry the error's stack (Bun's `development`); default false. */
  development: boolean;
  websocket: WebSocketHandler<T>;
  /** permessage-deflate settings; null when it is not negotiated. */
  deflate: DeflateConfig | null;
  poisonMessageViews: boolean;
  transport: Record<string, unknown>;
  /** Bun.shrink() once quiet after a burst of handshakes (idle-shrink.ts). */
  shrinkWhenIdle: boolean;
  /** How often timeouts are checked: a quarter of the shortest timeout, 50 ms to 1 s. */
  tickMs: number;
}

const MiB = 1024 * 1024;

function count(name: string, value: number | undefined, fallback: number, min = 0, max = 2 ** 53): number {
  const chosen = value ?? fallback;
  if (typeof chosen !== "number" || !Number.isFinite(chosen) || chosen < min || chosen > max) {
    throw new UsageError(ErrorCode.BAD_OPTION, `${name} must be a number from ${min} to ${max}`);
  }
  return chosen;
}

const BACKEND_CHOICES: readonly string[] = ["auto", "io_uring", "epoll", "bun", "iocp"];

/** A backend name this build knows, or a Transport object; anything else is refused. */
function resolveBackend(backend: ServeOptions<unknown>["backend"]): BackendChoice | Transport {
  if (backend === undefined) return "auto";
  if (typeof backend === "object" && backend !== null && typeof backend.listen === "function") {
    return backend;
  }
  if (backend === ("fake" as string)) {
    throw new UsageError(ErrorCode.BAD_OPTION, 'backend "fake" is passed as a transport: ' +
      'serve({ backend: new FakeTransport(network) }) with FakeTransport from "hioload-ws/testing"');
  }
  if (typeof backend === "string" && BACKEND_CHOICES.includes(backend)) return backend as BackendChoice;
  throw new UsageError(ErrorCode.BAD_OPTION,
    `unknown backend "${String(backend)}" (one of ${BACKEND_CHOICES.join(", ")}, or a Transport)`);
}

type WebSocketOptionName = keyof WebSocketOptions;

/**
 * A WebSocket option from `websocket` (Bun's place) or the top level (ours before); both
 * given and different is a mistake worth saying.
 */
function webSocketOption<K extends WebSocketOptionName>(options: ServeOptions<unknown>,
  name: K): WebSocketOptions[K] {
  const nested = options.websocket[name];
  const top = options[name];
  if (nested !== undefined && top !== undefined && nested !== top) {
    throw new UsageError(ErrorCode.BAD_OPTION, `${name} is given twice, as websocket.${name} ` +
      `(${String(nested)}) and at the top level (${String(top)}): keep one`);
  }
  return nested ?? top;
}

export function resolveOptions<T>(options: ServeOptions<T>): ResolvedOptions<T> {
  if (options === null || typeof options !== "object") {
    throw new UsageError(ErrorCode.BAD_OPTION, "serve() needs an options object");
  }
  if (typeof options.websocket?.message !== "function") {
    throw new UsageError(ErrorCode.BAD_OPTION, "websocket.message(ws, message) is required");
  }
  if ((options as { routes?: unknown }).routes !== undefined) {
    // Ignoring it would answer every route from fetch (or 426) without a word.
    throw new UsageError(ErrorCode.BAD_OPTION, "routes are not supported yet: route inside fetch " +
      "(new URL(req.url).pathname)");
  }
  const backend = resolveBackend(options.backend);
  const ws = (name: WebSocketOptionName) => webSocketOption(options as ServeOptions<unknown>, name);
  const idleTimeoutMs = count("idleTimeout", ws("idleTimeout") as number | undefined, 120, 0, 86_400) * 1000;
  const closeTimeoutMs = count("closeTimeout", options.closeTimeout, 5, 0.01, 3600) * 1000;
  const shortest = Math.min(idleTimeoutMs || Infinity, closeTimeoutMs);
  return {
    port: count("port", options.port, NaN, 0, 65_535),
    hostname: options.hostname ?? "0.0.0.0",
    backend,
    // 1 GiB: the largest message buffer class (and far past any sane message).
    maxPayloadLength: count("maxPayloadLength", ws("maxPayloadLength") as number | undefined, 16 * MiB, 1,
      1024 * MiB),
    idleTimeoutMs,
    sendPings: (ws("sendPings") as boolean | undefined) ?? true,
    backpressureLimit: count("backpressureLimit", ws("backpressureLimit") as number | undefined, 16 * MiB, 1),
    closeOnBackpressureLimit: (ws("closeOnBackpressureLimit") as boolean | undefined) ?? false,
    publishToSelf: options.websocket.publishToSelf ?? false,
    maxHeaderBytes: count("maxHeaderBytes", options.maxHeaderBytes, 16 * 1024, 256),
    closeTimeoutMs,
    maxConnections: count("maxConnections", options.maxConnections, 65_536, 1, 1 << 24),
    reusePort: options.reusePort ?? false,
    upgrade: options.upgrade,
    fetch: options.fetch,
    error: options.error,
    development: options.development ?? false,
    websocket: options.websocket,
    deflate: resolveDeflate(options.websocket.perMessageDeflate),
    poisonMessageViews: options.poisonMessageViews ?? false,
    shrinkWhenIdle: options.shrinkWhenIdle ?? false,
    transport: { ...(options.transport ?? {}) },
    tickMs: Math.max(50, Math.min(1000, Math.floor(shortest / 4))),
  };
}

