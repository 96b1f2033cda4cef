/**
 * Peer for the benchmarks: Bun.serve's WebSocket echo (uWebSockets inside), on argv[2]
 * (0: a free port, printed in the ready line).
 *
 *   bun bench/servers/bun-serve-echo.ts PORT [--backpressure-limit BYTES] [--graceful]
 *
 * --graceful: on SIGTERM close every socket with 1001 (what hioload-ws's stop() sends), wait
 * up to 5 s for them to go, then exit; without it SIGTERM ends the process at once.
 */
import type { ServerWebSocket } from "bun";
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    "backpressure-limit": { type: "string", default: String(16 * 1024 * 1024) },
    graceful: { type: "boolean", default: false },
  },
});

const sockets = new Set<ServerWebSocket<unknown>>();
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(positionals[0] ?? 9002),
  fetch(request, server) {
    if (server.upgrade(request)) return;
    return new Response("WebSocket only", { status: 426 });
  },
  websocket: {
    maxPayloadLength: 16 * 1024 * 1024,
    backpressureLimit: Number(values["backpressure-limit"]),
    idleTimeout: 120,
    open(ws) {
      if (values.graceful) sockets.add(ws);
    },
    close(ws) {
      sockets.delete(ws);
    },
    message(ws, message) {
      ws.send(message);
    },
  },
});
console.log(`Bun.serve WebSocket echo listening on :${server.port}`);

if (values.graceful) {
  process.on("SIGTERM", async () => {
    for (const ws of sockets) ws.close(1001, "server shutting down");
    const deadline = performance.now() + 5000;
    while (sockets.size > 0 && performance.now() < deadline) await Bun.sleep(20);
    server.stop(true);
    console.log("stopped");
    process.exit(0);
  });
}
