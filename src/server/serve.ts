/**
 * serve(): options → transport (io_uring, or the in-memory fake) → ServerCore → listening.
 * Shaped like `Bun.serve({ websocket })`.
 */
import { ErrorCode, UsageError } from "../api/errors.ts";
import type { Transport } from "../api/transport.ts";
import type { Server, ServeOptions } from "../api/websocket.ts";
import { createTransport } from "../reactor/select.ts";
import { realClock } from "./clock.ts";
import { resolveOptions, type ResolvedOptions } from "./options.ts";
import {
  enterAssignment, reportToSupervisor, superviseWorkers, threadCount, workerAssignment,
} from "./cluster.ts";
import { ServerCore } from "./server-core.ts";
import { reloadHandlers } from "./reload.ts";
import { stopModeOf } from "./stop-mode.ts";
import { checkTopic } from "./topics.ts";
import { WorkerBus } from "./worker-bus.ts";

function createBackend<T>(options: ResolvedOptions<T>): Transport {
  if (typeof options.backend === "object") return options.backend; // injected (the fake, tests)
  const transportOptions = { maxConnections: options.maxConnections, ...options.transport };
  return createTransport(options.backend, transportOptions);
}

/**
 * Start a WebSocket server. Throws at once when the options are invalid or the port cannot
 * be bound (SystemError EADDRINUSE...). With `threads`, the main thread supervises workers
 * that each re-run the entry module and land in the worker branch below.
 */
/** `R`: Bun.serve's route-type parameter, accepted so `serve<Data, Routes>` compiles. */
export function serve<T = undefined, _R extends string = string>(options: ServeOptions<T>): Server<T> {
  const assignment = workerAssignment();
  if (assignment !== undefined) {
    enterAssignment(assignment);
    // Before the server: news of other workers may come as soon as the supervisor hears us.
    const bus = assignment.bus === undefined ? undefined : new WorkerBus(assignment.bus);
    const server = reportToSupervisor(() => {
      const here = serveHere({
        ...options, port: assignment.port, reusePort: true, threads: 0,
        transport: { node: assignment.node, ...options.transport },
      });
      // Descriptors and mappings belong to the process, not the thread: if this worker
      // exits, close them, or its listener keeps taking connections nobody serves.
      process.on("exit", () => here.core.abandon());
      if (bus !== undefined) {
        const topics = here.core.topics;
        topics.attachPeers(bus);
        // Another worker's publish: to this worker's subscribers only, never passed on.
        bus.start((topic, opcode, payload, start, end) => void topics.deliverFromPeer(topic, opcode, payload, start, end));
      }
      return here.server;
    }, bus);
    // A worker that could not serve has told the supervisor (which stops the others): end it.
    if (server === undefined) process.exit(1);
    return server;
  }
  const threads = threadCount(options.threads);
  if (threads > 0) {
    const resolved = resolveOptions(options);
    if (typeof resolved.backend === "object") {
      throw new UsageError(ErrorCode.BAD_OPTION, "threads need a backend by name (each worker " +
        "makes its own transport), not a Transport object");
    }
    return superviseWorkers(threads, {
      hostname: resolved.hostname, port: resolved.port, closeTimeoutMs: resolved.closeTimeoutMs,
      development: resolved.development, id: options.id ?? "",
    });
  }
  return serveHere(options).server;
}

/** One reactor on this thread. */
function serveHere<T>(options: ServeOptions<T>): { server: Server<T>; core: ServerCore<T> } {
  const resolved = resolveOptions(options);
  const transport = createBackend(resolved);
  const core = new ServerCore<T>(transport, resolved, options.clock ?? realClock);
  try {
    core.listener = transport.listen(
      { hostname: resolved.hostname, port: resolved.port, reusePort: resolved.reusePort }, core);
  } catch (error) {
    void core.stop("abort");
    throw error;
  }
  const upgrades = core.fetchUpgrades;
  const port = transport.listenerPort(core.listener);
  const server: Server<T> = {
    port,
    hostname: resolved.hostname,
    url: new URL(`http://${resolved.hostname}:${port}/`),
    get pendingWebSockets() {
      return core.stats().connections;
    },
    get pendingRequests() {
      return core.stats().pendingHandshakes;
    },
    development: resolved.development,
    id: options.id ?? "",
    ready: Promise.resolve(),
    threads: 0,
    stop: (closeActiveConnections) => core.stop(stopModeOf(closeActiveConnections)),
    stats: () => core.stats(),
    upgrade: (request, upgradeOptions) => upgrades.upgrade(request, upgradeOptions),
    requestIP: (request) => upgrades.requestIP(request),
    publish: (topic, data, compress) => core.publish(checkTopic(topic), data, undefined, compress !== false),
    // With threads, every worker's (the others' as last told: see worker-bus.ts).
    subscriberCount: (topic) => core.topics.totalSubscriberCount(topic),
    reload(reloadOptions) {
      reloadHandlers(core, reloadOptions);
      return server;
    },
    [Symbol.dispose]: () => void core.stop("close"),
  };
  core.server = server;
  return { server, core };
}
