/**
 * Peer for bench/deflate-echo.ts: the hioload-ws echo with permessage-deflate, on 127.0.0.1,
 * argv[2] (0: a free port, printed in the ready line); the backend from HIOLOAD_BACKEND.
 *
 *   bun bench/servers/hioload-deflate-echo.ts PORT [shared|dedicated|off]
 *
 * shared: `perMessageDeflate: true`; dedicated: `{ compress: "dedicated", decompress:
 * "dedicated" }`; off: no perMessageDeflate (the uncompressed reference). A line "stats" on
 * stdin prints `stats {json}` (server.stats()) on stdout.
 */
import { serve } from "../../src/index.ts";

const port = Number(process.argv[2] ?? 0);
const mode = process.argv[3] ?? "shared";
const perMessageDeflate = mode === "off" ? undefined
  : mode === "dedicated" ? { compress: "dedicated", decompress: "dedicated" } as const
  : true;
const server = serve({
  port,
  hostname: "127.0.0.1",
  websocket: {
    maxPayloadLength: 16 * 1024 * 1024,
    perMessageDeflate,
    message(ws, message) {
      ws.send(message);
    },
  },
});
await server.ready;
console.log(`hioload-ws deflate echo (${mode}) listening on :${server.port}`);

for await (const line of console) {
  if (line.trim() === "stats") console.log(`stats ${JSON.stringify(server.stats())}`);
}
