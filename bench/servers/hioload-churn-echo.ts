/**
 * The echo bench/churn.ts runs against: argv[2] the port (0: a free one, in the ready line).
 * `fetch` upgrades `/async` after an await (an async upgrade) and anything else at once.
 * A "stats" line on stdin prints `stats {json}`: server.stats() plus this process's open
 * descriptors, so the bench can see that churn gives everything back.
 */
import { readdirSync } from "node:fs";
import { serve } from "../../src/index.ts";

const server = serve({
  port: Number(process.argv[2] ?? 0),
  hostname: "127.0.0.1",
  async fetch(request, server) {
    if (new URL(request.url).pathname === "/async") await Bun.sleep(0);
    if (server.upgrade(request)) return;
    return new Response("WebSocket only", { status: 426 });
  },
  websocket: {
    message(ws, message) {
      ws.send(message);
    },
  },
});
await server.ready;
console.log(`hioload-ws churn echo listening on :${server.port}`);

process.stdin.on("data", (chunk) => {
  if (!String(chunk).includes("stats")) return;
  Bun.gc(true);
  const fds = readdirSync("/proc/self/fd").length;
  console.log(`stats ${JSON.stringify({ ...server.stats(), fds, heapBytes: process.memoryUsage().heapUsed })}`);
});
process.on("SIGTERM", () => process.exit(0));
