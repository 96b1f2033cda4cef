/**
 * WebSocket echo server: `bun examples/echo.ts` (port 9001, or PORT / argv[2]).
 * Echoes text and binary; Ctrl-C (SIGINT) or SIGTERM shuts down gracefully (close 1001 to
 * every client, wait for their answers, flush) and exits 0.
 *
 * SHRINK_WHEN_IDLE=1 gives back the JIT's warm-up memory once quiet after a burst of
 * connections (the shrinkWhenIdle option).
 * THREADS=auto (or a number) runs one pinned io_uring reactor per CPU in worker threads;
 * each worker re-runs this module, so only the main thread prints and handles signals.
 */
import { isMainThread } from "node:worker_threads";
import { serve } from "../src/index.ts";

const port = Number(process.argv[2] ?? process.env.PORT ?? 9001);
const threads = process.env.THREADS === "auto" ? "auto" : Number(process.env.THREADS ?? 0);

const server = serve({
  port,
  threads,
  shrinkWhenIdle: process.env.SHRINK_WHEN_IDLE === "1",
  websocket: {
    // `message` is a string for text, or a Buffer for binary (from 129 bytes a view into
    // pool memory, valid during this call): send() queues its bytes, so echoing is safe.
    message(ws, message) {
      ws.send(message);
    },
  },
});

if (isMainThread) {
  await server.ready;
  const where = server.threads > 0 ? ` (${server.threads} threads)` : "";
  console.log(`Echo WebSocket server started on :${server.port}...${where}`);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: closing connections...`);
    await server.stop(true);
    console.log("stopped");
    process.exit(0);
  };
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
}
