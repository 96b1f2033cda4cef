/**
 * serve(): options → transport (io_uring, or the in-memory fake) → ServerCore → listening.
 * Shaped like `Bun.serve({ websocket })`.
 */
import type { Transport } from "../api/transport.ts";
import type { Server, ServeOptions } from "../api/websocket.ts";
import { FakeNetwork } from "../fake/fake-network.ts";
import { FakeTransport } from "../fake/fake-transport.ts";
import { createTransport } from "../reactor/select.ts";
import { realClock } from "./clock.ts";
import { resolveOptions, type ResolvedOptions } from "./options.ts";
import { ServerCore } from "./server-core.ts";

function createBackend<T>(options: ResolvedOptions<T>, network: unknown): Transport {
  const transportOptions = { maxConnections: options.maxConnections, ...options.transport };
  if (options.backend === "fake") {
    const fakeNetwork = network instanceof FakeNetwork ? network : new FakeNetwork();
    return new FakeTransport(fakeNetwork, transportOptions);
  }
  return createTransport(options.backend, transportOptions);
}

/**
 * Start a WebSocket server. Throws at once when the options are invalid or the port cannot
 * be bound (SystemError EADDRINUSE...).
 */
export function serve<T = undefined>(options: ServeOptions<T>): Server {
  const resolved = resolveOptions(options);
  const transport = createBackend(resolved, options.network);
  const core = new ServerCore<T>(transport, resolved, options.clock ?? realClock);
  try {
    core.listener = transport.listen(
      { hostname: resolved.hostname, port: resolved.port, reusePort: resolved.reusePort }, core);
  } catch (error) {
    void core.stop(false);
    throw error;
  }
  const port = transport.listenerPort(core.listener);
  return {
    port,
    hostname: resolved.hostname,
    stop: (graceful = true) => core.stop(graceful),
    stats: () => core.stats(),
  };
}
