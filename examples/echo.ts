/**
 * WebSocket echo server: `bun examples/echo.ts` (port 9001, or PORT / argv[2]).
 * Echoes text and binary; Ctrl-C (SIGINT) or SIGTERM shuts down gracefully (close 1001 to
 * every client, wait for their answers, flush) and exits 0.
 */
import { serve } from "../src/index.ts";

const port = Number(process.argv[2] ?? process.env.PORT ?? 9001);

const server = serve({
  port,
  websocket: {
    // `message` is a string for text, or a Uint8Array view into pool memory for binary:
    // send() copies it, so echoing it straight back is safe.
    message(ws, message) {
      ws.send(message);
    },
  },
});

console.log(`Echo WebSocket server started on :${server.port}...`);

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: closing connections...`);
  await server.stop(true);
  console.log("stopped");
  process.exit(0);
}
process.on("SIGINT", () => void shutdown("SIGINT"));
process.on("SIGTERM", () => void shutdown("SIGTERM"));
