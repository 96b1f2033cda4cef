/**
 * Peer for the hardening benches (bench/hogs.ts, large-messages.ts, never-reader.ts): the
 * hioload-ws echo on 127.0.0.1, argv[2] (0: a free port, printed in the ready line).
 *
 *   bun bench/servers/hioload-echo.ts PORT [--backpressure-limit BYTES] [--stats-every MS]
 *
 * Prints `stats {json}` (server.stats()) every --stats-every ms and on SIGTERM, so the
 * figures survive a server too stuck to answer the signal; SIGTERM then stops gracefully
 * (1001 to every client, as examples/echo.ts does) and prints `stopped`.
 */
import { parseArgs } from "node:util";
import { serve } from "../../src/index.ts";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    "backpressure-limit": { type: "string", default: String(16 * 1024 * 1024) },
    "stats-every": { type: "string", default: "1000" },
  },
});

const server = serve({
  port: Number(positionals[0] ?? 0),
  hostname: "127.0.0.1",
  backpressureLimit: Number(values["backpressure-limit"]),
  websocket: {
    message(ws, message) {
      ws.send(message);
    },
  },
});
await server.ready;
console.log(`hioload-ws echo listening on :${server.port}`);

const printStats = () => console.log(`stats ${JSON.stringify(server.stats())}`);
const ticker = setInterval(printStats, Number(values["stats-every"]));
let stopping = false;
process.on("SIGTERM", async () => {
  if (stopping) return;
  stopping = true;
  clearInterval(ticker);
  printStats();
  await server.stop(true);
  console.log("stopped");
  process.exit(0);
});
