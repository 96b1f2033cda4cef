/**
 * The hioload-ws echo on 127.0.0.1 with transport options from the command line, for benches
 * that compare settings (bench/fixed-load.ts): argv[2] the port (0: a free one, printed in the
 * ready line), argv[3] a JSON object of `transport` options (`{"spinMicros":0}`); the backend
 * comes from HIOLOAD_BACKEND; argv[4] an optional JSON object of more serve options
 * (`{"hostname":"127.0.0.2","reusePort":true}`, bench/scale.ts). Prints `stats {json}` (server.stats()) on a "stats" line on
 * stdin and on SIGTERM.
 */
import { serve } from "../../src/index.ts";

const server = serve({
  port: Number(process.argv[2] ?? 0),
  hostname: "127.0.0.1",
  transport: JSON.parse(process.argv[3] ?? "{}"),
  ...JSON.parse(process.argv[4] ?? "{}"),
  websocket: {
    message(ws, message) {
      ws.send(message);
    },
  },
});
await server.ready;
console.log(`hioload-ws echo listening on :${server.port}`);

const printStats = () => console.log(`stats ${JSON.stringify(server.stats())}`);
process.stdin.on("data", (chunk) => {
  if (String(chunk).includes("stats")) printStats();
});
process.on("SIGTERM", () => {
  printStats();
  process.exit(0);
});
